{{/* Full name of the release's objects. */}}
{{- define "berth.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "berth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: berth-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: berth-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "berth.serviceAccountName" -}}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The gateway's name: its Deployment, Service, ServiceAccount and RBAC. */}}
{{/* The Secret the operator copies the models' own keys into, the gateway's only Secret of models. */}}
{{- define "berth.modelKeysSecret" -}}
{{- printf "%s-model-keys" (include "berth.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "berth.gatewayName" -}}
{{- printf "%s-gateway" (include "berth.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the gateway's pods. */}}
{{- define "berth.gatewaySelectorLabels" -}}
app.kubernetes.io/name: berth-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* What the gateway may do in each watched namespace (or cluster-wide). */}}
{{- define "berth.gatewayRules" -}}
# Route by model: the resources (read only) and the ready endpoints of their Services.
- apiGroups: [berth.dev]
  resources: [modeldeployments]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
# Scale models with spec.autoscaling: their replicas only, through the scale subresource.
- apiGroups: [berth.dev]
  resources: [modeldeployments/scale]
  verbs: [patch]
{{- end -}}

{{/* The dashboard's token Secret and key: the one named in values, else the chart's own; empty
when the API is left open. */}}
{{- define "berth.dashboardTokenSecret" -}}
{{- if .Values.dashboard.tokenSecretRef.name -}}
{{- .Values.dashboard.tokenSecretRef.name -}}
{{- else if .Values.dashboard.requireToken -}}
{{- printf "%s-dashboard-token" (include "berth.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Who may call model servers (NetworkPolicyPeer objects): the gateway's pods, then
networkPolicy.allowFrom. */}}
{{- define "berth.modelCallers" -}}
{{- if .Values.gateway.enabled }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .Release.Namespace }}
  podSelector:
    matchLabels:
      {{- include "berth.gatewaySelectorLabels" . | nindent 6 }}
{{- end }}
{{- with .Values.networkPolicy.allowFrom }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The Lease the operator's replicas elect their leader on. */}}
{{- define "berth.leaderLease" -}}
{{- printf "%s-leader" (include "berth.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
