{{- /*
`helm test`: a request/reply round trip through the fleet, like the nats chart's own test, as a user of
a dedicated test account (its .creds in the Secret test.credsSecret, made once by the control plane:
docs/DEPLOY.md). The replier connects to the first pod of the first region and the requester to the last
pod of the last region here, so with more than one node the request and its reply cross a route (with
several regions, a gateway). A pod that is not up yet or an account not yet
pushed to every node shows as no responders; the request is retried for up to a minute.
*/ -}}
{{- define "natsctl.test.pod" -}}
{{- $t := .Values.test -}}
{{- $n := .Values.nats -}}
{{- $local := (include "natsctl.nats.regions" . | fromJson).local -}}
{{- $first := first $local -}}
{{- $last := last $local -}}
{{- $labels := dict "ctx" . "component" "test-request-reply" -}}
{{- $url := "nats://%s-%d.%s.%s.svc.%s:%d" -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "natsctl.componentName" $labels }}
  labels: {{- include "natsctl.labels" $labels | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext: {{- toYaml $t.podSecurityContext | nindent 4 }}
  {{- with .Values.global.imagePullSecrets }}
  imagePullSecrets: {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
  - name: request-reply
    {{- include "natsctl.image" (dict "ctx" . "image" $t.image) | nindent 4 }}
    env:
    - {name: HOME, value: /tmp}
    - {name: NATS_CREDS, value: /creds/{{ $t.credsSecret.key }}}
    - {name: REPLY_URL, value: {{ printf $url $first.names.statefulSet 0 $first.names.headless .Release.Namespace .Values.clusterDomain (int64 $n.config.ports.client) | quote }}}
    - {name: REQUEST_URL, value: {{ printf $url $last.names.statefulSet (sub (int64 $last.replicas) 1) $last.names.headless .Release.Namespace .Values.clusterDomain (int64 $n.config.ports.client) | quote }}}
    - {name: SUBJECT, value: {{ $t.subject | quote }}}
    command:
    - sh
    - -ec
    - |
      nats --creds "$NATS_CREDS" --server "$REPLY_URL" reply "$SUBJECT" --echo &
      replier=$!
      ok=
      for attempt in $(seq 1 30); do
        if nats --creds "$NATS_CREDS" --server "$REQUEST_URL" request --timeout 2s "$SUBJECT" "helm test $attempt" > /tmp/reply 2>&1 \
           && grep -qF "helm test $attempt" /tmp/reply; then ok=1; break; fi
        sleep 2
      done
      kill "$replier" 2>/dev/null || true
      cat /tmp/reply
      test -n "$ok"
    {{- with $t.resources }}
    resources: {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext: {{- toYaml $t.containerSecurityContext | nindent 6 }}
    volumeMounts:
    - {name: creds, mountPath: /creds, readOnly: true}
    - {name: tmp, mountPath: /tmp}
  volumes:
  - name: creds
    secret:
      secretName: {{ $t.credsSecret.name | default (printf "%s-helm-test" (include "natsctl.fullname" .)) | quote }}
  - {name: tmp, emptyDir: {}}
{{- end -}}
