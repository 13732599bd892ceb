{{- define "bosun.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "bosun.labels" -}}
app.kubernetes.io/name: bosun
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "bosun.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- /* Leader election: "auto" means on with more than one replica. Renders "true" or "". */ -}}
{{- define "bosun.leaderElection" -}}
{{- $mode := toString .Values.operator.leaderElection.enabled -}}
{{- if or (eq $mode "true") (and (eq $mode "auto") (gt (int .Values.operator.replicas) 1)) }}true{{ end -}}
{{- end }}

{{- /*
A container's env: the chart's own entries ($own, a list of EnvVar dicts) minus those the user set again in
$extra (extraEnv), then $extra — so every BOSUN_* setting can be given or overridden without a duplicate.
*/ -}}
{{- define "bosun.env" -}}
{{- $names := dict -}}
{{- range .extra }}{{ $_ := set $names .name true }}{{ end -}}
{{- $env := list -}}
{{- range .own }}{{ if not (hasKey $names .name) }}{{ $env = append $env . }}{{ end }}{{ end -}}
{{- concat $env .extra | toYaml -}}
{{- end }}

{{- /* Pod-level settings shared by the operator and the tool server. */ -}}
{{- define "bosun.podSpec" -}}
serviceAccountName: {{ include "bosun.fullname" . }}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- /* Pod metadata; called with (dict "root" $ "component" "operator"). */ -}}
{{- define "bosun.podMetadata" -}}
labels:
  {{- include "bosun.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .root.Values.podAnnotations }}
annotations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
