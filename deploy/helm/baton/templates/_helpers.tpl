{{- define "baton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "baton.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "baton.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "baton.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "baton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "baton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "baton.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "baton.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "baton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "baton.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "baton.cluster" -}}
{{- if eq .Values.mode "cluster" -}}true{{- else if eq .Values.mode "single" -}}{{- else -}}
{{- fail (printf "mode %q: use cluster or single" .Values.mode) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the PostgreSQL URL and its key. */}}
{{- define "baton.postgresSecret" -}}
{{- if .Values.postgres.existingSecret -}}{{ .Values.postgres.existingSecret }}{{- else -}}{{ include "baton.fullname" . }}-postgres{{- end -}}
{{- end -}}

{{- define "baton.secretKeySecret" -}}
{{- if .Values.secretKey.existingSecret -}}{{ .Values.secretKey.existingSecret }}{{- else -}}{{ include "baton.fullname" . }}-secret-key{{- end -}}
{{- end -}}

{{- define "baton.hasSecretKey" -}}
{{- if or .Values.secretKey.existingSecret .Values.secretKey.value -}}true{{- end -}}
{{- end -}}

{{/* Everything the values cannot express as a working deployment fails the render. */}}
{{- define "baton.validate" -}}
{{- $cluster := include "baton.cluster" . -}}
{{- if $cluster -}}
{{- if not (or .Values.postgres.existingSecret .Values.postgres.dsn) -}}
{{- fail "mode cluster needs PostgreSQL: set postgres.existingSecret (a Secret holding the URL) or postgres.dsn" -}}
{{- end -}}
{{- if not (include "baton.hasSecretKey" .) -}}
{{- fail "mode cluster needs the secret-store key shared by every replica: set secretKey.existingSecret or secretKey.value (openssl rand -hex 32)" -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount must be at least 1" -}}
{{- end -}}
{{- end -}}
{{- $drain := add (int .Values.server.drainTimeoutSeconds) 10 -}}
{{- if $cluster -}}{{- $drain = add $drain (int .Values.server.handoverGraceSeconds) -}}{{- end -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds %v must exceed the drain (%v s: handover grace, drain timeout and 10 s for the last requests), or Kubernetes kills replicas mid-drain" .Values.terminationGracePeriodSeconds $drain) -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.serviceMonitor.tokenSecret.name) -}}
{{- fail "metrics.serviceMonitor needs metrics.serviceMonitor.tokenSecret.name: /metrics takes a token of role viewer" -}}
{{- end -}}
{{- end -}}

{{/* The server's configuration, each flag as its BATON_<FLAG> variable. */}}
{{- define "baton.env" -}}
- name: BATON_ADDR
  value: {{ printf "0.0.0.0:%v" .Values.server.port | quote }}
- name: BATON_DATA
  value: /var/lib/baton
- name: BATON_LOG_LEVEL
  value: {{ .Values.server.logLevel | quote }}
- name: BATON_LOG_FORMAT
  value: {{ .Values.server.logFormat | quote }}
- name: BATON_DRAIN_TIMEOUT
  value: {{ printf "%vs" .Values.server.drainTimeoutSeconds | quote }}
{{- if include "baton.cluster" . }}
- name: BATON_STORE
  valueFrom:
    secretKeyRef:
      name: {{ include "baton.postgresSecret" . }}
      key: {{ .Values.postgres.key }}
- name: BATON_HANDOVER_GRACE
  value: {{ printf "%vs" .Values.server.handoverGraceSeconds | quote }}
- name: BATON_LEASE_TTL
  value: {{ printf "%vs" .Values.server.leaseTTLSeconds | quote }}
{{- end }}
{{- if include "baton.hasSecretKey" . }}
- name: BATON_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "baton.secretKeySecret" . }}
      key: {{ .Values.secretKey.key }}
{{- end }}
{{- if .Values.tls.existingSecret }}
- name: BATON_TLS_CERT
  value: /etc/baton/tls/tls.crt
- name: BATON_TLS_KEY
  value: /etc/baton/tls/tls.key
{{- if .Values.tls.clientCA }}
- name: BATON_TLS_CLIENT_CA
  value: /etc/baton/tls/ca.crt
{{- end }}
{{- else if .Values.server.insecure }}
- name: BATON_INSECURE
  value: "true"
{{- end }}
{{- $fullname := include "baton.fullname" . }}
{{- $hosts := list $fullname (printf "%s.%s" $fullname .Release.Namespace) (printf "%s.%s.svc" $fullname .Release.Namespace) (printf "%s.%s.svc.cluster.local" $fullname .Release.Namespace) }}
- name: BATON_ALLOWED_HOSTS
  value: {{ concat $hosts .Values.server.allowedHosts | join "," | quote }}
{{- with .Values.auth.allowedOrigins }}
- name: BATON_ALLOWED_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.auth.oidc }}
{{- if .issuer }}
- name: BATON_OIDC_ISSUER
  value: {{ .issuer | quote }}
{{- if not .audience }}{{ fail "auth.oidc.audience is required with auth.oidc.issuer" }}{{ end }}
- name: BATON_OIDC_AUDIENCE
  value: {{ .audience | quote }}
{{- if .jwksURL }}
- name: BATON_OIDC_JWKS_URL
  value: {{ .jwksURL | quote }}
{{- end }}
{{- if .grantsClaim }}
- name: BATON_OIDC_GRANTS_CLAIM
  value: {{ .grantsClaim | quote }}
{{- end }}
{{- if .namespaceClaim }}
- name: BATON_OIDC_NAMESPACE_CLAIM
  value: {{ .namespaceClaim | quote }}
{{- end }}
{{- if .roleClaim }}
- name: BATON_OIDC_ROLE_CLAIM
  value: {{ .roleClaim | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.server.env }}
{{- if not (hasPrefix "BATON_" $name) }}{{ fail (printf "server.env %s: name flags of baton server as BATON_<FLAG>" $name) }}{{ end }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
