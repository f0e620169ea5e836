{{- /*
The `merge` and `patch` of every component block (the grammar of the nats-io/k8s chart).

natsctl.render
  input: dict with
    doc:   the object the template built (a map, e.g. from `include ... | fromYaml`)
    merge: a map deep-merged into it (Sprig mergeOverwrite: maps merge, anything else, lists
           included, is replaced)
    patch: a JSON Patch (RFC 6902) applied after the merge; ops add, replace and remove, paths
           as JSON Pointers ("/spec/template/spec/containers/0/env/-"; "~1" is "/", "~0" is "~")
  output: the object as YAML

    web:
      merge:
        metadata: {annotations: {team: platform}}
      patch:
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: A, value: "1"}}
*/ -}}
{{- define "natsctl.render" -}}
{{- $doc := .doc -}}
{{- if .merge -}}
{{- $doc = mergeOverwrite $doc (deepCopy .merge) -}}
{{- end -}}
{{- range $i, $op := (.patch | default list) -}}
{{- $doc = get (include "natsctl.patch.op" (dict "doc" $doc "op" $op "index" $i) | fromJson) "node" -}}
{{- end -}}
{{- toYaml $doc -}}
{{- end -}}

{{- /*
natsctl.patch.op: one patch operation, checked, applied to doc -> JSON {"node": patched doc}.
*/ -}}
{{- define "natsctl.patch.op" -}}
{{- $op := .op -}}
{{- if not (kindIs "map" $op) -}}
{{- fail (printf "patch[%d]: an operation is a map {op, path, value}" .index) -}}
{{- end -}}
{{- if not (has $op.op (list "add" "replace" "remove")) -}}
{{- fail (printf "patch[%d]: op must be add, replace or remove, not %v" .index $op.op) -}}
{{- end -}}
{{- $path := $op.path | default "" | toString -}}
{{- if not (hasPrefix "/" $path) -}}
{{- fail (printf "patch[%d]: path %q must start with /" .index $path) -}}
{{- end -}}
{{- if and (ne $op.op "remove") (not (hasKey $op "value")) -}}
{{- fail (printf "patch[%d]: %s %s needs a value" .index $op.op $path) -}}
{{- end -}}
{{- $tokens := list -}}
{{- range (rest (splitList "/" $path)) -}}
{{- $tokens = append $tokens (. | replace "~1" "/" | replace "~0" "~") -}}
{{- end -}}
{{- include "natsctl.patch.at" (dict "node" .doc "tokens" $tokens "op" $op.op "value" $op.value "path" $path) -}}
{{- end -}}

{{- /*
natsctl.patch.at: apply op at the JSON Pointer tokens below node, recursing one token at a time
-> JSON {"node": the patched node}. Maps are changed in place; lists are rebuilt.
*/ -}}
{{- define "natsctl.patch.at" -}}
{{- $node := .node -}}
{{- $key := first .tokens -}}
{{- $rest := rest .tokens -}}
{{- $last := eq (len $rest) 0 -}}
{{- if kindIs "map" $node -}}
  {{- if not $last -}}
    {{- if not (hasKey $node $key) -}}
      {{- fail (printf "patch %s: %q does not exist" .path $key) -}}
    {{- end -}}
    {{- $child := get (include "natsctl.patch.at" (dict "node" (get $node $key) "tokens" $rest "op" .op "value" .value "path" .path) | fromJson) "node" -}}
    {{- $_ := set $node $key $child -}}
  {{- else if eq .op "add" -}}
    {{- $_ := set $node $key .value -}}
  {{- else if not (hasKey $node $key) -}}
    {{- fail (printf "patch %s: %q does not exist" .path $key) -}}
  {{- else if eq .op "replace" -}}
    {{- $_ := set $node $key .value -}}
  {{- else -}}
    {{- $_ := unset $node $key -}}
  {{- end -}}
{{- else if kindIs "slice" $node -}}
  {{- $n := len $node -}}
  {{- $i := $n -}}
  {{- if eq $key "-" -}}
    {{- if or (not $last) (ne .op "add") -}}
      {{- fail (printf "patch %s: \"-\" (past the end) only names where to add" .path) -}}
    {{- end -}}
  {{- else if regexMatch "^(0|[1-9][0-9]*)$" $key -}}
    {{- $i = atoi $key -}}
  {{- else -}}
    {{- fail (printf "patch %s: %q is not a list index" .path $key) -}}
  {{- end -}}
  {{- $insert := and $last (eq .op "add") -}}
  {{- if or (gt $i $n) (and (not $insert) (ge $i $n)) -}}
    {{- fail (printf "patch %s: index %d is out of range (length %d)" .path $i $n) -}}
  {{- end -}}
  {{- $before := slice $node 0 $i -}}
  {{- if not $last -}}
    {{- $child := get (include "natsctl.patch.at" (dict "node" (index $node $i) "tokens" $rest "op" .op "value" .value "path" .path) | fromJson) "node" -}}
    {{- $node = concat $before (list $child) (slice $node (add $i 1)) -}}
  {{- else if $insert -}}
    {{- $node = concat $before (list .value) (slice $node $i) -}}
  {{- else if eq .op "replace" -}}
    {{- $node = concat $before (list .value) (slice $node (add $i 1)) -}}
  {{- else -}}
    {{- $node = concat $before (slice $node (add $i 1)) -}}
  {{- end -}}
  {{- if not $node -}}
    {{- $node = list -}}{{- /* concat of nothing is null, not [] */ -}}
  {{- end -}}
{{- else -}}
  {{- fail (printf "patch %s: cannot go into a %s" .path (kindOf $node)) -}}
{{- end -}}
{{- toJson (dict "node" $node) -}}
{{- end -}}

{{- /*
natsctl.object: input dict(ctx, template, block[, args]) -> the object the named template renders (with
ctx, or with dict(ctx, args) when args are given), after the block's `merge` and `patch`, as YAML.
*/ -}}
{{- define "natsctl.object" -}}
{{- $input := .ctx -}}
{{- if hasKey . "args" -}}
{{- $input = dict "ctx" .ctx "args" .args -}}
{{- end -}}
{{- $doc := include .template $input | fromYaml -}}
{{- if hasKey $doc "Error" -}}
{{- fail (printf "%s does not render valid YAML: %s" .template (get $doc "Error")) -}}
{{- end -}}
{{- include "natsctl.render" (dict "doc" $doc "merge" .block.merge "patch" .block.patch) -}}
{{- end -}}
