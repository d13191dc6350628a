{{/* The chart name, or nameOverride. */}}
{{- define "foundry-gateway-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, else the release name when it already
contains the chart name, else `<release>-<chart>`. Cluster-scoped objects carry it too, so two
releases never share a ClusterRole.
*/}}
{{- define "foundry-gateway-operator.fullname" -}}
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

{{/* Name and version of the chart, for the helm.sh/chart label. */}}
{{- define "foundry-gateway-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "foundry-gateway-operator.labels" -}}
helm.sh/chart: {{ include "foundry-gateway-operator.chart" . }}
{{ include "foundry-gateway-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: foundry-gateway-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "foundry-gateway-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "foundry-gateway-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "foundry-gateway-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "foundry-gateway-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The name of the leader-election Lease. */}}
{{- define "foundry-gateway-operator.leaseName" -}}
{{- default (include "foundry-gateway-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Where the extra CA bundle is mounted. */}}
{{- define "foundry-gateway-operator.extraCADir" -}}
/etc/foundry-gateway-operator/extra-ca
{{- end }}

{{/*
What the operator may do: exactly the rules of config/rbac/role.yaml (the chart tests compare
them), in three parts. Rendered together into the ClusterRole, or into the Role of watchNamespace;
with rbac.namespaces the reference rules go into a Role per listed namespace instead.
*/}}
{{- define "foundry-gateway-operator.rules" -}}
{{ include "foundry-gateway-operator.kindRules" . }}
{{ include "foundry-gateway-operator.referenceRules" . }}
{{ include "foundry-gateway-operator.eventRules" . }}
{{- end }}

{{/* The three kinds: watch them, add and remove the finalizer, write status. */}}
{{- define "foundry-gateway-operator.kindRules" -}}
# The three kinds: watch them, add and remove the finalizer, write status.
- apiGroups: ["gateway.foundry.dev"]
  resources: ["foundryprojects", "gatewayconnections", "promptagents"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["gateway.foundry.dev"]
  resources: ["foundryprojects/status", "gatewayconnections/status", "promptagents/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["gateway.foundry.dev"]
  resources: ["foundryprojects/finalizers", "gatewayconnections/finalizers", "promptagents/finalizers"]
  verbs: ["update"]
{{- end }}

{{/* What the objects reference: Secrets, ConfigMaps and ServiceAccount tokens. */}}
{{- define "foundry-gateway-operator.referenceRules" -}}
# Referenced Secrets (API keys, client secrets, header values) and ConfigMaps (instructions):
# read in the object's own namespace; watched as metadata so a rotation reaches Foundry at once.
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch"]
# Workload identity: a token of the ServiceAccount a FoundryProject names, in its namespace.
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
{{- end }}

{{/* Events for what a user should see. */}}
{{- define "foundry-gateway-operator.eventRules" -}}
# Events for what a user should see.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The Secret in the release namespace holding the HMAC key of the credentials digest. */}}
{{- define "foundry-gateway-operator.digestKeySecret" -}}
{{- printf "%s-digest-key" (include "foundry-gateway-operator.fullname" .) }}
{{- end }}

{{/* Checks of values that the schema cannot express. */}}
{{- define "foundry-gateway-operator.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicas > 1 needs leaderElection.enabled: without a leader every replica would write" }}
{{- end }}
{{- if and .Values.azureWorkloadIdentity.enabled (not .Values.azureWorkloadIdentity.clientId) }}
{{- fail "azureWorkloadIdentity.enabled needs azureWorkloadIdentity.clientId" }}
{{- end }}
{{- if and .Values.watchNamespace .Values.rbac.namespaces }}
{{- fail "set watchNamespace or rbac.namespaces, not both: watchNamespace already confines the operator to one namespace" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.apiServerCIDRs) }}
{{- fail "networkPolicy.enabled needs networkPolicy.apiServerCIDRs: the addresses of the API server endpoints (kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes)" }}
{{- end }}
{{- end }}

{{/* The operator's image: repository@digest when a digest is given, else repository:tag (the
chart's appVersion when no tag is given). */}}
{{- define "foundry-gateway-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}
