{{- /*
The web app: gunicorn (liveness /healthz, readiness web.readinessPath) behind a Service and,
optionally, an Ingress. Probes send Host: localhost, which DJANGO_ALLOWED_HOSTS always lists: the
kubelet would otherwise send the pod's IP, which Django refuses.
*/ -}}
{{- define "natsctl.web.deployment" -}}
{{- $w := .Values.web -}}
{{- $probe := dict "port" "http" "httpHeaders" (list (dict "name" "Host" "value" "localhost")) -}}
{{- $extra := dict
  "ports" (list (dict "name" "http" "containerPort" (int64 $w.port) "protocol" "TCP"))
  "startupProbe" (dict "httpGet" (merge (dict "path" "/healthz") $probe) "periodSeconds" 5 "failureThreshold" 60)
  "livenessProbe" (dict "httpGet" (merge (dict "path" "/healthz") $probe) "periodSeconds" 20 "timeoutSeconds" 5 "failureThreshold" 3)
  "readinessProbe" (dict "httpGet" (merge (dict "path" $w.readinessPath) $probe) "periodSeconds" 10 "timeoutSeconds" 5 "failureThreshold" 3)
-}}
{{- $command := list "gunicorn" "accounts_service.wsgi:application"
  "--bind" (printf "0.0.0.0:%d" (int64 $w.port)) "--workers" (int64 $w.workers | toString)
  "--access-logfile" "-" "--logger-class" "core.gunicorn_logging.RedactingLogger" "--worker-tmp-dir" "/dev/shm" -}}
{{- include "natsctl.controlPlane.deployment" (dict "ctx" . "component" "web" "values" $w "command" $command "extra" $extra) -}}
{{- end -}}

{{- define "natsctl.web.service" -}}
{{- $labels := dict "ctx" . "component" "web" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
spec:
  type: {{ .Values.web.service.type }}
  selector: {{- include "natsctl.selectorLabels" $labels | nindent 4 }}
  ports:
  - name: http
    port: {{ int64 .Values.web.service.port }}
    targetPort: http
    protocol: TCP
{{- end -}}

{{- define "natsctl.web.ingress" -}}
{{- $labels := dict "ctx" . "component" "web" -}}
{{- $service := include "natsctl.componentName" $labels -}}
{{- with .Values.web.ingress -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $service }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
  {{- with .annotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with .tls }}
  tls: {{- toYaml . | nindent 2 }}
  {{- end }}
  rules:
  {{- range .hosts }}
  - host: {{ .host | quote }}
    http:
      paths:
      {{- range (.paths | default (list (dict "path" "/" "pathType" "Prefix"))) }}
      - path: {{ .path | quote }}
        pathType: {{ .pathType | default "Prefix" }}
        backend:
          service:
            name: {{ $service }}
            port:
              name: http
      {{- end }}
  {{- end }}
{{- end -}}
{{- end -}}
