{{- /*
Names, labels, images and the environment every control plane pod shares.

Conventions (as in the nats-io/k8s chart): a template renders one object as YAML from a named
template, parses it, then hands it to "natsctl.render" with its component's `merge` and `patch`
(see _mergepatch.tpl). Numbers from values arrive as float64, so every number printed into text
goes through int64 (a float prints as 2.097152e+06).
*/ -}}

{{- /*
natsctl.name: the chart name, or nameOverride.
*/ -}}
{{- define "natsctl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /*
natsctl.fullname: the release-qualified name every object name starts with (63 characters at most,
the DNS label limit; component suffixes are short, so object names stay valid up to a 45-character
fullname, which the schema enforces for fullnameOverride).
*/ -}}
{{- define "natsctl.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
natsctl.componentName: input dict(ctx, component) -> "<fullname>-<component>".
*/ -}}
{{- define "natsctl.componentName" -}}
{{- printf "%s-%s" (include "natsctl.fullname" .ctx) .component }}
{{- end }}

{{- /*
natsctl.selectorLabels: input dict(ctx, component) -> the labels a component's selector matches.
*/ -}}
{{- define "natsctl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "natsctl.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /*
natsctl.labels: input dict(ctx, component) -> every label of a component's objects.
*/ -}}
{{- define "natsctl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "natsctl.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: natsctl
{{- with .ctx.Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- /*
natsctl.image: input dict(ctx, image) -> the `image` and `imagePullPolicy` lines of a container.
An empty tag means the chart's appVersion (the control plane image is versioned with the chart).
*/ -}}
{{- define "natsctl.image" -}}
{{- $registry := .image.registry | default .ctx.Values.global.image.registry }}
{{- $ref := printf "%s:%s" .image.repository (.image.tag | default .ctx.Chart.AppVersion | toString) }}
{{- if .image.digest }}
{{- $ref = printf "%s@%s" .image.repository .image.digest }}
{{- end }}
{{- if $registry }}
{{- $ref = printf "%s/%s" $registry $ref }}
{{- end }}
image: {{ $ref | quote }}
imagePullPolicy: {{ .image.pullPolicy | default .ctx.Values.global.image.pullPolicy }}
{{- end }}

{{- /*
natsctl.env: a map of environment variables -> a container's env list. A string value is a plain
value; a map is used as it is (valueFrom: ...).
*/ -}}
{{- define "natsctl.env" -}}
{{- range $k, $v := . }}
{{- if kindIs "map" $v }}
- {{ merge (dict "name" $k) $v | toYaml | nindent 2 | trim }}
{{- else }}
- name: {{ $k | quote }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
natsctl.nats.regions: the broker fleet's regions as JSON {"supercluster": bool, "regions": [...]}, computed once
per render and kept on the root context. Each region:
  name          the region: its NATS cluster's and gateway's name
  local         true: a StatefulSet in this release; false: a region elsewhere, known by its gatewayUrls only
  replicas      pods (local regions)
  legacy        its objects keep the names of a chart without regions (<fullname>-nats...)
  names         {statefulSet, headless, service, configMap, gatewayService}
  gatewayUrls   its gateway URLs: each pod's DNS name under the headless Service (local), or as given (remote)
  labels        the labels that tell its pods from other regions' ({} for a chart without regions)
  resources, storage, nodeSelector, tolerations, affinity: nats.* with the region's own values over them

nats.regions empty: one region, nats.replicas pods, named nats.config.clusterName, with today's names and
labels, and no gateway. Otherwise one region per entry, and with more than one region in all (local or not)
every region is a gateway of the supercluster.
*/ -}}
{{- define "natsctl.nats.regions" -}}
{{- if not (hasKey . "natsctlNatsRegions") }}
{{- $n := .Values.nats }}
{{- $base := include "natsctl.componentName" (dict "ctx" . "component" "nats") }}
{{- $ports := $n.config.ports }}
{{- $entries := $n.regions | default list }}
{{- $legacyMode := empty $entries }}
{{- if $legacyMode }}
{{- $entries = list (dict "name" $n.config.clusterName "replicas" $n.replicas "legacyNames" true) }}
{{- end }}
{{- $out := list }}
{{- $seen := dict }}
{{- $legacyCount := 0 }}
{{- range $entries }}
{{- if hasKey $seen .name }}
{{- fail (printf "nats.regions: region %s is given twice (each region is one NATS cluster)" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- $r := dict "name" .name "local" (empty .gatewayUrls) "legacy" (and .legacyNames (empty .gatewayUrls) | default false) }}
{{- if $r.legacy }}{{ $legacyCount = add1 $legacyCount }}{{ end }}
{{- $sts := $r.legacy | ternary $base (printf "%s-%s" $base .name) }}
{{- if and $r.local (gt (len $sts) 52) }}
{{- fail (printf "nats.regions: region %s: its StatefulSet name %s is %d characters, more than 52 (its pods' controller-revision-hash label must stay a 63-character label): shorten fullnameOverride or the region's name" .name $sts (len $sts)) }}
{{- end }}
{{- $_ := set $r "names" (dict "statefulSet" $sts "headless" (printf "%s-headless" $sts) "service" $sts "configMap" (printf "%s-config" $sts) "gatewayService" (printf "%s-gateway" $sts)) }}
{{- $_ := set $r "labels" ($legacyMode | ternary (dict) (dict "natsctl.io/region" .name)) }}
{{- if $r.local }}
{{- $_ := set $r "replicas" (int64 (.replicas | default $n.replicas)) }}
{{- $urls := list }}
{{- range $i := until (int $r.replicas) }}
{{- $urls = append $urls (printf "nats://%s-%d.%s.%s.svc.%s:%d" $sts $i $r.names.headless $.Release.Namespace $.Values.clusterDomain (int64 $ports.gateway)) }}
{{- end }}
{{- $_ := set $r "gatewayUrls" $urls }}
{{- $_ := set $r "resources" (hasKey . "resources" | ternary .resources $n.resources) }}
{{- $_ := set $r "storage" (mergeOverwrite (deepCopy $n.storage) (.storage | default dict)) }}
{{- $_ := set $r "nodeSelector" (.nodeSelector | default $n.nodeSelector) }}
{{- $_ := set $r "tolerations" (.tolerations | default $n.tolerations) }}
{{- $_ := set $r "affinity" (.affinity | default $n.affinity) }}
{{- else }}
{{- $_ := set $r "replicas" 0 }}
{{- $_ := set $r "gatewayUrls" .gatewayUrls }}
{{- end }}
{{- $out = append $out $r }}
{{- end }}
{{- if gt $legacyCount 1 }}
{{- fail "nats.regions: legacyNames is for one region only (the one that keeps the StatefulSet <fullname>-nats)" }}
{{- end }}
{{- $local := list }}
{{- range $out }}{{ if .local }}{{ $local = append $local . }}{{ end }}{{ end }}
{{- if and $n.enabled (empty $local) }}
{{- fail "nats.regions: every region has gatewayUrls (a region elsewhere): at least one must run here (no gatewayUrls), or set nats.enabled false" }}
{{- end }}
{{- $_ := set . "natsctlNatsRegions" (dict "supercluster" (gt (len $out) 1) "regions" $out "local" $local) }}
{{- end }}
{{- toJson .natsctlNatsRegions }}
{{- end }}

{{- /*
natsctl.nats.names: the first local region's names as JSON {statefulSet, headless, service, configMap}: a
chart without regions has only that one. The control plane reads every region's StatefulSet from
K8S_STATEFULSETS (below), spelled once, in natsctl.nats.regions.
*/ -}}
{{- define "natsctl.nats.names" -}}
{{- $local := (include "natsctl.nats.regions" . | fromJson).local }}
{{- if $local }}
{{- (first $local).names | toJson }}
{{- else }}
{{- $sts := include "natsctl.componentName" (dict "ctx" . "component" "nats") }}
{{- dict "statefulSet" $sts "headless" (printf "%s-headless" $sts) "service" $sts "configMap" (printf "%s-config" $sts) | toJson }}
{{- end }}
{{- end }}

{{- /*
natsctl.nats.ready: whether the fleet is rendered: enabled, and the operator's public material given
(`manage.py config chart-values`). Before that, an install brings up the control plane only, so the
operator can be created there (docs/DEPLOY.md); NOTES.txt says so.
*/ -}}
{{- define "natsctl.nats.ready" -}}
{{- with .Values.nats }}
{{- if and .enabled .operator.jwt .operator.systemAccount .operator.systemAccountJwt }}true{{ end }}
{{- end }}
{{- end }}

{{- /*
natsctl.secretName: the chart's own Secret (values given inline and values it generates).
*/ -}}
{{- define "natsctl.secretName" -}}
{{- include "natsctl.fullname" . }}
{{- end }}

{{- /*
natsctl.secretValues: JSON of what the chart's own Secret holds, computed once per render and kept on
the root context, so the Secret and every checksum of it agree. A value not given is taken from the
Secret of a previous release (lookup), else generated on install. An upgrade never generates: Helm
cannot look up in `helm template` or a client-side dry run, and a new SEED_ENCRYPTION_KEYS would orphan
every sealed seed (a new POSTGRES_PASSWORD would lock the control plane out), so it fails instead.
*/ -}}
{{- define "natsctl.secretValues" -}}
{{- if not (hasKey . "natsctlSecretValues") }}
{{- $v := .Values }}
{{- $previous := dict }}
{{- with lookup "v1" "Secret" .Release.Namespace (include "natsctl.secretName" .) }}
{{- range $k, $b64 := (.data | default dict) }}
{{- $_ := set $previous $k ($b64 | b64dec) }}
{{- end }}
{{- end }}
{{- $out := dict }}
{{- $generated := list }}
{{- if not $v.secretKey.existingSecret.name }}
{{- $value := $v.secretKey.value | default (get $previous "DJANGO_SECRET_KEY") }}
{{- if not $value }}
{{- $generated = append $generated "secretKey" }}
{{- $value = randAlphaNum 50 }}
{{- end }}
{{- $_ := set $out "DJANGO_SECRET_KEY" $value }}
{{- end }}
{{- if not $v.seedEncryptionKeys.existingSecret.name }}
{{- $value := $v.seedEncryptionKeys.value | default (get $previous "SEED_ENCRYPTION_KEYS") }}
{{- if not $value }}
{{- $generated = append $generated "seedEncryptionKeys" }}
{{- $value = printf "k%s:%s" (randAlphaNum 8 | lower) (randBytes 32) }}
{{- end }}
{{- $_ := set $out "SEED_ENCRYPTION_KEYS" $value }}
{{- end }}
{{- if and $v.postgresql.enabled (not $v.postgresql.existingSecret.name) }}
{{- $value := $v.postgresql.password | default (get $previous "POSTGRES_PASSWORD") }}
{{- if not $value }}
{{- $generated = append $generated "postgresql.password" }}
{{- $value = randAlphaNum 32 }}
{{- end }}
{{- $_ := set $out "POSTGRES_PASSWORD" $value }}
{{- end }}
{{- if and .Release.IsUpgrade $generated }}
{{- fail (printf "%s: no value, no existingSecret, and the release's Secret could not be read (a dry run, or `helm template`?): refusing to generate new ones on an upgrade (a new seed key would orphan every sealed seed). Give them as values or existingSecret." (join ", " $generated)) }}
{{- end }}
{{- if and (not $v.postgresql.enabled) $v.externalDatabase.url (not $v.externalDatabase.existingSecret.name) }}
{{- $_ := set $out "DATABASE_URL" $v.externalDatabase.url }}
{{- end }}
{{- if and (not $v.redis.enabled) $v.externalRedis.url (not $v.externalRedis.existingSecret.name) }}
{{- $_ := set $out "REDIS_URL" $v.externalRedis.url }}
{{- end }}
{{- $_ := set . "natsctlSecretValues" $out }}
{{- end }}
{{- toJson .natsctlSecretValues }}
{{- end }}

{{- /*
natsctl.secretRef: input dict(ctx, existing (a {name, key} value), key) -> a secretKeyRef to the
existing Secret when one is named, else to the chart's own Secret.
*/ -}}
{{- define "natsctl.secretRef" -}}
valueFrom:
  secretKeyRef:
    {{- if .existing.name }}
    name: {{ .existing.name | quote }}
    key: {{ .existing.key | quote }}
    {{- else }}
    name: {{ include "natsctl.secretName" .ctx | quote }}
    key: {{ .key | quote }}
    {{- end }}
{{- end }}

{{- /*
natsctl.controlPlaneEnv: the environment of every control plane container (web, worker, beat,
collector, fleet, migrate): secrets by reference, the settings the NATS fleet was rendered with (so
the control plane's own config rendering agrees with the chart's), then django.env.
*/ -}}
{{- define "natsctl.controlPlaneEnv" -}}
{{- $v := .Values }}
{{- $names := include "natsctl.nats.names" . | fromJson }}
{{- $web := include "natsctl.componentName" (dict "ctx" . "component" "web") }}
- name: DJANGO_SECRET_KEY
  {{- include "natsctl.secretRef" (dict "ctx" . "existing" $v.secretKey.existingSecret "key" "DJANGO_SECRET_KEY") | nindent 2 }}
- name: SEED_ENCRYPTION_KEYS
  {{- include "natsctl.secretRef" (dict "ctx" . "existing" $v.seedEncryptionKeys.existingSecret "key" "SEED_ENCRYPTION_KEYS") | nindent 2 }}
{{- if $v.postgresql.enabled }}
- name: POSTGRES_PASSWORD
  {{- include "natsctl.secretRef" (dict "ctx" . "existing" $v.postgresql.existingSecret "key" "POSTGRES_PASSWORD") | nindent 2 }}
- name: DATABASE_URL
  value: {{ printf "postgres://%s:$(POSTGRES_PASSWORD)@%s:5432/%s" $v.postgresql.username (include "natsctl.componentName" (dict "ctx" . "component" "postgresql")) $v.postgresql.database | quote }}
{{- else if or $v.externalDatabase.url $v.externalDatabase.existingSecret.name }}
- name: DATABASE_URL
  {{- include "natsctl.secretRef" (dict "ctx" . "existing" $v.externalDatabase.existingSecret "key" "DATABASE_URL") | nindent 2 }}
{{- else }}
{{- fail "the database: set externalDatabase.url or externalDatabase.existingSecret.name, or postgresql.enabled for the in-chart quick-start PostgreSQL" }}
{{- end }}
{{- if $v.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s:6379/0" (include "natsctl.componentName" (dict "ctx" . "component" "redis")) | quote }}
{{- else if or $v.externalRedis.url $v.externalRedis.existingSecret.name }}
- name: REDIS_URL
  {{- include "natsctl.secretRef" (dict "ctx" . "existing" $v.externalRedis.existingSecret "key" "REDIS_URL") | nindent 2 }}
{{- else }}
{{- fail "Redis: set externalRedis.url or externalRedis.existingSecret.name, or redis.enabled for the in-chart quick-start Redis" }}
{{- end }}
{{- $hosts := list "localhost" "127.0.0.1" $web (printf "%s.%s.svc" $web .Release.Namespace) }}
{{- range $v.web.ingress.hosts }}
{{- $hosts = append $hosts .host }}
{{- end }}
{{- $hosts = concat $hosts $v.django.allowedHosts | uniq }}
- name: DJANGO_ALLOWED_HOSTS
  value: {{ join "," $hosts | quote }}
{{- with $v.django.csrfTrustedOrigins }}
- name: DJANGO_CSRF_TRUSTED_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
- name: DJANGO_SECURE
  value: {{ $v.django.secure | toString | quote }}
- name: DJANGO_DEBUG
  value: "false"
- name: LOG_LEVEL
  value: {{ $v.django.logLevel | quote }}
- name: NATS_RESOLVER_INTERVAL
  value: {{ $v.nats.config.resolver.interval | quote }}
- name: FLEET_CLUSTER_NAME
  value: {{ $v.nats.config.clusterName | quote }}
- name: FLEET_LAME_DUCK_DURATION
  value: {{ $v.nats.config.lameDuckDuration | quote }}
- name: FLEET_DRIVER
  value: {{ $v.fleet.driver | quote }}
{{- with $v.nats.publicUrls }}
- name: NATS_PUBLIC_URLS
  value: {{ join "," . | quote }}
{{- end }}
{{- if eq $v.fleet.driver "kubernetes" }}
# The Kubernetes FleetDriver (broker_gateway/fleet/kubernetes.py): nodes are this StatefulSet's pods,
# discovered, not created as node-N rows, so FLEET_NODES is 0.
- name: FLEET_NODES
  value: "0"
- name: K8S_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: K8S_STATEFULSET
  value: {{ $names.statefulSet | quote }}
{{- if $v.nats.regions }}
{{- $regions := include "natsctl.nats.regions" . | fromJson }}
{{- $pairs := list }}
{{- range $regions.local }}{{ $pairs = append $pairs (printf "%s=%s" .name .names.statefulSet) }}{{ end }}
# One StatefulSet per region here: the supervisor registers each one's pods in its region.
- name: K8S_STATEFULSETS
  value: {{ join "," $pairs | quote }}
{{- with $regions.local }}
- name: FLEET_REGION
  value: {{ (first .).name | quote }}
{{- end }}
{{- end }}
- name: K8S_CONTAINER
  value: nats
- name: K8S_NODE_HOST
  value: {{ printf "{pod}.{service}.{namespace}.svc.%s" $v.clusterDomain | quote }}
- name: K8S_RESOLVER_DIR
  value: {{ printf "%s/resolver" ($v.nats.storage.mountPath | trimSuffix "/") | quote }}
- name: K8S_JETSTREAM_DIR
  value: {{ printf "%s/jetstream" ($v.nats.storage.mountPath | trimSuffix "/") | quote }}
{{- end }}
- name: FLEET_CLIENT_PORT
  value: {{ int64 $v.nats.config.ports.client | toString | quote }}
- name: FLEET_CLUSTER_PORT
  value: {{ int64 $v.nats.config.ports.cluster | toString | quote }}
- name: FLEET_MONITORING_PORT
  value: {{ int64 $v.nats.config.ports.monitoring | toString | quote }}
- name: FLEET_LEAFNODE_PORT
  value: {{ int64 $v.nats.config.ports.leafnode | toString | quote }}
- name: FLEET_GATEWAY_PORT
  value: {{ int64 $v.nats.config.ports.gateway | toString | quote }}
{{- with $v.django.env }}
{{ include "natsctl.env" . }}
{{- end }}
{{- end }}
