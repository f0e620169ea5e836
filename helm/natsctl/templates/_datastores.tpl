{{- /*
Quick-start PostgreSQL and Redis, one replica each, for trying the chart out. Production points
externalDatabase and externalRedis at managed services (with backups) and disables these.
*/ -}}
{{- define "natsctl.postgresql.statefulSet" -}}
{{- $p := .Values.postgresql -}}
{{- $labels := dict "ctx" . "component" "postgresql" -}}
{{- $name := include "natsctl.componentName" $labels -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
spec:
  replicas: {{ int64 $p.replicas }}
  serviceName: {{ $name }}
  selector:
    matchLabels: {{- include "natsctl.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels: {{- include "natsctl.labels" $labels | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext: {{- toYaml $p.podSecurityContext | nindent 8 }}
      {{- with .Values.global.imagePullSecrets }}
      imagePullSecrets: {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
      - name: postgresql
        {{- include "natsctl.image" (dict "ctx" . "image" $p.image) | nindent 8 }}
        env:
        - {name: POSTGRES_USER, value: {{ $p.username | quote }}}
        - {name: POSTGRES_DB, value: {{ $p.database | quote }}}
        - name: POSTGRES_PASSWORD
          {{- include "natsctl.secretRef" (dict "ctx" . "existing" $p.existingSecret "key" "POSTGRES_PASSWORD") | nindent 10 }}
        - {name: PGDATA, value: /var/lib/postgresql/data/pgdata}
        ports:
        - {name: postgresql, containerPort: 5432, protocol: TCP}
        {{- with $p.resources }}
        resources: {{- toYaml . | nindent 10 }}
        {{- end }}
        securityContext: {{- toYaml $p.containerSecurityContext | nindent 10 }}
        readinessProbe:
          exec:
            command: [pg_isready, -U, {{ $p.username | quote }}, -d, {{ $p.database | quote }}]
          periodSeconds: 10
        livenessProbe:
          exec:
            command: [pg_isready, -U, {{ $p.username | quote }}, -d, {{ $p.database | quote }}]
          periodSeconds: 30
          failureThreshold: 6
        volumeMounts:
        - {name: data, mountPath: /var/lib/postgresql/data}
        - {name: run, mountPath: /var/run/postgresql}
        - {name: tmp, mountPath: /tmp}
      volumes:
      - {name: run, emptyDir: {}}
      - {name: tmp, emptyDir: {}}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      {{- with $p.storage.storageClassName }}
      storageClassName: {{ . | quote }}
      {{- end }}
      resources:
        requests:
          storage: {{ $p.storage.size | quote }}
{{- end -}}

{{- define "natsctl.postgresql.service" -}}
{{- $labels := dict "ctx" . "component" "postgresql" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
spec:
  selector: {{- include "natsctl.selectorLabels" $labels | nindent 4 }}
  ports:
  - {name: postgresql, port: 5432, targetPort: postgresql, protocol: TCP}
{{- end -}}

{{- /*
Redis is the Celery broker and cache: losing it loses queued pushes, which the reconciler (beat,
every few seconds) pushes again, so the quick-start one keeps nothing on disk.
*/ -}}
{{- define "natsctl.redis.deployment" -}}
{{- $r := .Values.redis -}}
{{- $labels := dict "ctx" . "component" "redis" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
spec:
  replicas: {{ int64 $r.replicas }}
  strategy:
    type: Recreate
  selector:
    matchLabels: {{- include "natsctl.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels: {{- include "natsctl.labels" $labels | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext: {{- toYaml $r.podSecurityContext | nindent 8 }}
      {{- with .Values.global.imagePullSecrets }}
      imagePullSecrets: {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
      - name: redis
        {{- include "natsctl.image" (dict "ctx" . "image" $r.image) | nindent 8 }}
        command: [redis-server, --save, "", --appendonly, "no", --dir, /data]
        ports:
        - {name: redis, containerPort: 6379, protocol: TCP}
        {{- with $r.resources }}
        resources: {{- toYaml . | nindent 10 }}
        {{- end }}
        securityContext: {{- toYaml $r.containerSecurityContext | nindent 10 }}
        readinessProbe:
          exec:
            command: [redis-cli, ping]
          periodSeconds: 10
        livenessProbe:
          tcpSocket: {port: redis}
          periodSeconds: 30
        volumeMounts:
        - {name: data, mountPath: /data}
      volumes:
      - {name: data, emptyDir: {}}
{{- end -}}

{{- define "natsctl.redis.service" -}}
{{- $labels := dict "ctx" . "component" "redis" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
spec:
  selector: {{- include "natsctl.selectorLabels" $labels | nindent 4 }}
  ports:
  - {name: redis, port: 6379, targetPort: redis, protocol: TCP}
{{- end -}}
