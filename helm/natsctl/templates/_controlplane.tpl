{{- /*
The control plane's workloads: one image (the repository's Dockerfile), run as web, worker, beat,
collector, fleet supervisor or migration by its command.

natsctl.controlPlane.podSpec
  input: dict with
    ctx:       the root context
    component: web | worker | beat | collector | fleet | migrate
    values:    the component's block
    command:   the container's command (a list)
    extra:     a map merged into the container (ports, probes)
    waitForMigrations: bool, start only once `migrate --check` passes (not for the migration itself)
  output: a pod spec as YAML
*/ -}}
{{- define "natsctl.controlPlane.podSpec" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
{{- $container := dict
  "name" .component
  "command" .command
  "env" (include "natsctl.controlPlaneEnv" $ctx | fromYamlArray)
  "resources" (.values.resources | default dict)
  "securityContext" $v.controlPlane.containerSecurityContext
  "volumeMounts" (list (dict "name" "tmp" "mountPath" "/tmp"))
-}}
{{- $_ := mergeOverwrite $container (include "natsctl.image" (dict "ctx" $ctx "image" $v.image) | fromYaml) -}}
{{- $_ := mergeOverwrite $container (.extra | default dict) -}}
automountServiceAccountToken: {{ eq .component "fleet" }}
{{- if eq .component "fleet" }}
serviceAccountName: {{ $v.fleet.rbac.enabled | ternary (include "natsctl.componentName" (dict "ctx" $ctx "component" "fleet")) ($v.fleet.rbac.serviceAccountName | default "default") }}
{{- end }}
enableServiceLinks: false
securityContext: {{- toYaml $v.controlPlane.podSecurityContext | nindent 2 }}
{{- with $v.global.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .waitForMigrations }}
initContainers:
- name: wait-for-migrations
  {{- include "natsctl.image" (dict "ctx" $ctx "image" $v.image) | nindent 2 }}
  # Pods started with a release wait for its migration Job (a post-install hook) instead of
  # crash-looping on missing tables; after an upgrade (pre-upgrade hook) this passes at once.
  command:
  - sh
  - -c
  - until python manage.py migrate --check >/dev/null 2>&1; do echo "waiting for migrations"; sleep 3; done
  env: {{- include "natsctl.controlPlaneEnv" $ctx | nindent 2 }}
  securityContext: {{- toYaml $v.controlPlane.containerSecurityContext | nindent 4 }}
  volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}
containers:
- {{- toYaml $container | nindent 2 }}
volumes:
- name: tmp
  emptyDir: {}
{{- end }}

{{- /*
natsctl.controlPlane.deployment: input as for the pod spec, plus
    strategy: "Recreate" for the singletons (beat, collector, fleet: never two at once)
  output: the component's Deployment as YAML, before merge and patch
*/ -}}
{{- define "natsctl.controlPlane.deployment" -}}
{{- $ctx := .ctx -}}
{{- $labels := dict "ctx" $ctx "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
spec:
  replicas: {{ int64 .values.replicas }}
  {{- with .strategy }}
  strategy:
    type: {{ . }}
  {{- end }}
  selector:
    matchLabels: {{- include "natsctl.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels: {{- include "natsctl.labels" $labels | nindent 8 }}
      annotations:
        # Pods roll when the secrets they read change.
        checksum/secret: {{ include "natsctl.secretValues" $ctx | sha256sum }}
    spec: {{- include "natsctl.controlPlane.podSpec" (merge (dict "waitForMigrations" $ctx.Values.controlPlane.waitForMigrations) .) | nindent 6 }}
{{- end }}
