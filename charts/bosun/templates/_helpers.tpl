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

{{- /* Pod metadata; called with (dict "root" $ "component" "operator"), plus "shard" for a shard's pods. */ -}}
{{- define "bosun.podMetadata" -}}
labels:
  {{- include "bosun.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
  {{- with .shard }}
  bosun.dev/shard: {{ . }}
  {{- end }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .root.Values.podAnnotations }}
annotations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- /*
The admissionregistration.k8s.io version of the identity MutatingAdmissionPolicies. "auto": the newest
version that existed in the cluster's Kubernetes and that it serves — v1 from 1.36; v1beta1 on 1.34 and 1.35
and v1alpha1 on 1.32 and 1.33, both only behind the MutatingAdmissionPolicy feature gate and
--runtime-config. Fails closed, naming the flags, when none is served: without the policies no requester or
approver could be trusted. Offline (`helm template` without a cluster) helm knows API versions but no kinds,
so the Kubernetes version alone decides.
*/ -}}
{{- define "bosun.admissionPolicyVersion" -}}
{{- $wanted := toString .Values.identityPolicies.apiVersion -}}
{{- $since := dict "v1" ">=1.36.0-0" "v1beta1" ">=1.34.0-0" "v1alpha1" ">=1.32.0-0" -}}
{{- if eq $wanted "auto" -}}
{{- $found := "" -}}
{{- $offline := not (.Capabilities.APIVersions.Has "v1/ConfigMap") -}}
{{- range list "v1" "v1beta1" "v1alpha1" -}}
{{- if and (not $found) (semverCompare (get $since .) $.Capabilities.KubeVersion.Version) (or $offline ($.Capabilities.APIVersions.Has (printf "admissionregistration.k8s.io/%s/MutatingAdmissionPolicy" .))) -}}
{{- $found = . -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "identityPolicies: Kubernetes %s serves no MutatingAdmissionPolicy API, and without it Bosun cannot trust who asked or approved. On 1.34 and 1.35 start kube-apiserver with --feature-gates=MutatingAdmissionPolicy=true --runtime-config=admissionregistration.k8s.io/v1beta1=true (on 1.32 and 1.33: admissionregistration.k8s.io/v1alpha1=true), or upgrade to 1.36. If you install the policies yourself, set identityPolicies.install=false." .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- $found -}}
{{- else if hasKey $since $wanted -}}
{{- $wanted -}}
{{- else -}}
{{- fail (printf "identityPolicies.apiVersion: %q is not one of auto, v1, v1beta1, v1alpha1" $wanted) -}}
{{- end -}}
{{- end }}

{{- /*
How the operator's ServiceAccount may impersonate: "constrained" (KEP-5284; on by default from 1.36, behind
the ConstrainedImpersonation feature gate in 1.35) or "legacy" (the impersonate verb, every version). "auto"
is constrained from 1.36 and otherwise refuses to guess: legacy hands the token system:masters, so it must
be chosen knowingly.
*/ -}}
{{- define "bosun.impersonation" -}}
{{- $mode := toString .Values.impersonation.mode -}}
{{- if eq $mode "auto" -}}
{{- if semverCompare ">=1.36.0-0" .Capabilities.KubeVersion.Version -}}constrained
{{- else -}}
{{- fail (printf "impersonation.mode: Kubernetes %s has no constrained impersonation on by default. Set impersonation.mode=constrained if the ConstrainedImpersonation feature gate is on (1.35), or impersonation.mode=legacy, which grants the operator's ServiceAccount the impersonate verb: whoever holds its token could act as anyone, system:masters included (see the chart README, \"Impersonation\")." .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- else if has $mode (list "constrained" "legacy") -}}
{{- $mode -}}
{{- else -}}
{{- fail (printf "impersonation.mode: %q is not one of auto, constrained, legacy" $mode) -}}
{{- end -}}
{{- end }}

{{- /*
The operator Deployments, as a JSON list of {"name", "shard", "namespaces"}: one watching watchNamespaces
(every namespace when empty), or one per entry of operator.shards (sharding by namespace, docs/scaling.md).
Each Deployment's Lease is named like it, so shards never elect one leader among them. Fails on shards
that would let two operators handle one task: a namespace in two shards, or a shard without namespaces
(an operator without BOSUN_NAMESPACES watches every namespace).
*/ -}}
{{- define "bosun.operators" -}}
{{- $full := include "bosun.fullname" . -}}
{{- $shards := .Values.operator.shards | default list -}}
{{- if not $shards -}}
{{- list (dict "name" (printf "%s-operator" $full) "shard" "" "namespaces" (.Values.watchNamespaces | default list)) | toJson -}}
{{- else -}}
{{- if .Values.watchNamespaces -}}
{{- fail "watchNamespaces and operator.shards are both set: list each shard's namespaces under operator.shards and leave watchNamespaces empty" -}}
{{- end -}}
{{- $operators := list -}}
{{- $owner := dict -}}
{{- range $shard := $shards -}}
{{- $name := toString $shard.name -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$" $name) -}}
{{- fail (printf "operator.shards: %q is not a shard name (1-20 lowercase letters, digits and '-', a letter or digit at both ends)" $name) -}}
{{- end -}}
{{- range $operators -}}
{{- if eq .shard $name -}}
{{- fail (printf "operator.shards: shard %q is listed twice" $name) -}}
{{- end -}}
{{- end -}}
{{- if not $shard.namespaces -}}
{{- fail (printf "operator.shards: shard %q lists no namespaces; an operator without BOSUN_NAMESPACES watches every namespace and would handle the other shards' tasks too" $name) -}}
{{- end -}}
{{- range $namespace := $shard.namespaces -}}
{{- if hasKey $owner $namespace -}}
{{- fail (printf "operator.shards: namespace %q is in shards %q and %q; each namespace belongs to exactly one shard, or two operators would handle its tasks" $namespace (get $owner $namespace) $name) -}}
{{- end -}}
{{- $_ := set $owner $namespace $name -}}
{{- end -}}
{{- $operators = append $operators (dict "name" (printf "%s-operator-%s" $full $name) "shard" $name "namespaces" $shard.namespaces) -}}
{{- end -}}
{{- $operators | toJson -}}
{{- end -}}
{{- end }}
