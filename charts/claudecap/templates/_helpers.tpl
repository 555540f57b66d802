{{/*
Names and labels shared by every template. Resource names follow `make deploy`
(<fullname>-controller-manager, <fullname>-manager-role, ...), so docs fit both installs.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "claudecap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, else the release name when it
already contains the chart name (the usual `helm install claudecap ...`), else both.
*/}}
{{- define "claudecap.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "claudecap.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "claudecap.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the manager pods; fixed for the life of a release. */}}
{{- define "claudecap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "claudecap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{/* The ServiceAccount the manager runs as. */}}
{{- define "claudecap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "claudecap.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The manager image reference: repository@digest when a digest is given, else repository:tag. */}}
{{- define "claudecap.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The metrics Service, and the name its certificate is checked against. */}}
{{- define "claudecap.metricsService" -}}
{{- include "claudecap.fullname" . }}-controller-manager-metrics-service
{{- end }}
{{- define "claudecap.metricsServerName" -}}
{{- default (printf "%s.%s.svc" (include "claudecap.metricsService" .) .Release.Namespace) .Values.serviceMonitor.tlsConfig.serverName }}
{{- end }}

{{/*
Where controller-runtime's metrics server looks for tls.crt and tls.key (its CertDir default,
<os.TempDir()>/k8s-metrics-server/serving-certs; the image sets no TMPDIR).
*/}}
{{- define "claudecap.metricsCertDir" -}}/tmp/k8s-metrics-server/serving-certs{{- end }}

{{/* Where the catalog ConfigMap is mounted, and the file the manager reads. */}}
{{- define "claudecap.catalogDir" -}}/etc/claudecap{{- end }}
{{- define "claudecap.catalogFile" -}}catalog.yaml{{- end }}

{{/*
Combinations the schema cannot express; each fails with the fix in the message.
Included once, from the Deployment.
*/}}
{{- define "claudecap.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: without it every replica would scale the same workers" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled=true needs metrics.enabled=true: there is no metrics Service to monitor" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.healthProbePort)) }}
{{- fail "metrics.port and healthProbePort must differ: both servers listen in the same pod" }}
{{- end }}
{{- if and .Values.metrics.certSecret (not (and .Values.metrics.enabled .Values.metrics.secure)) }}
{{- fail "metrics.certSecret needs metrics.enabled=true and metrics.secure=true: only the HTTPS metrics endpoint serves a certificate" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.metrics.secure (not .Values.serviceMonitor.tlsConfig.insecureSkipVerify) (not .Values.metrics.certSecret) }}
{{- fail "serviceMonitor verifies the metrics certificate, but without metrics.certSecret the manager serves a self-signed one: set metrics.certSecret to a TLS Secret (e.g. from cert-manager) for the metrics Service's name, or serviceMonitor.tlsConfig.insecureSkipVerify=true" }}
{{- end }}
{{- with .Values.podDisruptionBudget }}
{{- if .enabled }}
{{- $min := toString .minAvailable }}
{{- $replicas := int $.Values.replicaCount }}
{{- $blocks := false }}
{{- if hasSuffix "%" $min }}
{{- $blocks = ge (int (trimSuffix "%" $min)) 100 }}
{{- else if ne $min "" }}
{{- $blocks = and (gt $replicas 0) (ge (int $min) $replicas) }}
{{- end }}
{{- if $blocks }}
{{- fail (printf "podDisruptionBudget.minAvailable=%s with replicaCount=%d lets no manager pod be evicted, so node drains hang: set it below replicaCount" $min $replicas) }}
{{- end }}
{{- if and (eq $min "") (or (eq (toString .maxUnavailable) "0") (eq (toString .maxUnavailable) "0%")) }}
{{- fail "podDisruptionBudget.maxUnavailable=0 lets no manager pod be evicted, so node drains hang: set it to 1 or more" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
