{{- /*
The background pieces, all from the control plane image: the Celery worker (pushes, reconcile), beat
(the schedule: one replica, or every task runs twice), the metering collector, and the fleet
supervisor (`manage.py fleet run` with the Kubernetes FleetDriver), which watches the NATS pods,
records their health and runs a full sync on every node that (re)becomes healthy.
*/ -}}
{{- define "natsctl.worker.deployment" -}}
{{- $c := .Values.worker -}}
{{- $command := list "celery" "-A" "accounts_service" "worker" "--loglevel" .Values.django.logLevel
  "--concurrency" (int64 $c.concurrency | toString) "--hostname" "natsctl-worker@%h" "-Q" (join "," $c.queues) -}}
{{- include "natsctl.controlPlane.deployment" (dict "ctx" . "component" "worker" "values" $c "command" $command) -}}
{{- end -}}

{{- define "natsctl.beat.deployment" -}}
{{- $command := list "celery" "-A" "accounts_service" "beat" "--loglevel" .Values.django.logLevel
  "--schedule" "/tmp/celerybeat-schedule" -}}
{{- include "natsctl.controlPlane.deployment" (dict "ctx" . "component" "beat" "values" .Values.beat "command" $command "strategy" "Recreate") -}}
{{- end -}}

{{- define "natsctl.collector.deployment" -}}
{{- $command := list "python" "manage.py" "collector" -}}
{{- include "natsctl.controlPlane.deployment" (dict "ctx" . "component" "collector" "values" .Values.collector "command" $command "strategy" "Recreate") -}}
{{- end -}}

{{- define "natsctl.fleet.deployment" -}}
{{- $command := list "python" "manage.py" "fleet" "run" -}}
{{- include "natsctl.controlPlane.deployment" (dict "ctx" . "component" "fleet" "values" .Values.fleet "command" $command "strategy" "Recreate") -}}
{{- end -}}

{{- define "natsctl.fleet.serviceAccount" -}}
{{- $labels := dict "ctx" . "component" "fleet" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
automountServiceAccountToken: false
{{- end -}}

{{- /*
What the supervisor may do, in its own namespace only, and only what the Kubernetes FleetDriver calls:
read the NATS StatefulSet and its pods, scale it through the scale subresource, delete a pod (a frozen
node: the StatefulSet recreates it). A removed node's volume goes with the StatefulSet's
persistentVolumeClaimRetentionPolicy. fleet.rbac.extraRules adds to it.
*/ -}}
{{- define "natsctl.fleet.role" -}}
{{- $labels := dict "ctx" . "component" "fleet" -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [statefulsets/scale]
  verbs: [get, patch, update]
{{- with .Values.fleet.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "natsctl.fleet.roleBinding" -}}
{{- $labels := dict "ctx" . "component" "fleet" -}}
{{- $name := include "natsctl.componentName" $labels -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
- kind: ServiceAccount
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
{{- end -}}

{{- /*
The migration Job: after the first install (its Secret and in-chart database exist by then) and
before every upgrade (the new code's pods start only on a migrated schema). Control plane pods wait
for it in their wait-for-migrations init container.
*/ -}}
{{- define "natsctl.migrate.job" -}}
{{- $c := .Values.migrate -}}
{{- $labels := dict "ctx" . "component" "migrate" -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
  annotations:
    helm.sh/hook: post-install,pre-upgrade
    helm.sh/hook-weight: "0"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ int64 $c.backoffLimit }}
  activeDeadlineSeconds: {{ int64 $c.activeDeadlineSeconds }}
  template:
    metadata:
      labels: {{- include "natsctl.labels" $labels | nindent 8 }}
    spec:
      restartPolicy: Never
      {{- $command := list "python" "manage.py" "migrate" "--noinput" }}
      {{- include "natsctl.controlPlane.podSpec" (dict "ctx" . "component" "migrate" "values" $c "command" $command) | nindent 6 }}
{{- end -}}
