{{/* Names, labels and values shared by the templates. */}}

{{- define "jamba-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jamba-operator.fullname" -}}
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

{{- define "jamba-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jamba-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jamba-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "jamba-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: jamba-serving
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the monitoring objects: the chart's plus the ones Prometheus selects by. */}}
{{- define "jamba-operator.monitoringLabels" -}}
{{ include "jamba-operator.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "jamba-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jamba-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "jamba-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "jamba-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "jamba-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jamba-operator.podMonitorName" -}}
{{- printf "%s-runtime" (include "jamba-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The `job` label Prometheus gives each scrape: a ServiceMonitor's is its Service's name, a PodMonitor's "<namespace>/<name>". */}}
{{- define "jamba-operator.operatorJob" -}}
{{- include "jamba-operator.metricsServiceName" . }}
{{- end }}
{{- define "jamba-operator.runtimeJob" -}}
{{- printf "%s/%s" .Release.Namespace (include "jamba-operator.podMonitorName" .) }}
{{- end }}

{{/* Namespaced scope: the allowlist, checked. */}}
{{- define "jamba-operator.watchNamespaces" -}}
{{- if eq .Values.watch.scope "namespaces" }}
{{- if not .Values.watch.namespaces }}
{{- fail "watch.scope is \"namespaces\": list at least one namespace in watch.namespaces" }}
{{- end }}
{{- join "," .Values.watch.namespaces }}
{{- end }}
{{- end }}
