{{/*
The chart name, or nameOverride.
*/}}
{{- define "certrollout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release name when it already contains
the chart name, else "<release>-<chart>". Cut to 63 characters (the limit of a label value).
*/}}
{{- define "certrollout.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "certrollout.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels that select the controller's pods. They never change across upgrades (a Deployment's selector is
immutable).
*/}}
{{- define "certrollout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certrollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/*
Labels of every object: the recommended app.kubernetes.io set, helm.sh/chart and commonLabels.
*/}}
{{- define "certrollout.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "certrollout.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: certrollout
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The metadata lines every object shares: labels, then commonAnnotations merged with the object's own
annotations (given as "extra"). Call with (dict "ctx" $ "extra" $annotations).
*/}}
{{- define "certrollout.metadata" -}}
labels:
  {{- include "certrollout.labels" .ctx | nindent 2 }}
{{- $annotations := merge (dict) (.extra | default dict) (.ctx.Values.commonAnnotations | default dict) }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount the controller runs as.
*/}}
{{- define "certrollout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "certrollout.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The namespace of the leader election Lease.
*/}}
{{- define "certrollout.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is set, else repository:tag (tag defaults to the
chart's appVersion).
*/}}
{{- define "certrollout.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
certrollout.bytes converts a Kubernetes memory quantity (plain bytes, or with a suffix k, M, G, T, Ki, Mi,
Gi, Ti; decimals allowed) to bytes, as a float. Anything else fails rendering with a message naming the
value.
*/}}
{{- define "certrollout.bytes" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}
{{- /* a YAML number: bytes (printing it as a string could give 2.68435456e+08) */}}
{{- float64 . }}
{{- else }}
{{- $q := toString . | trim }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $unit := trimPrefix $number $q }}
{{- $factors := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if or (not $number) (not (hasKey $factors $unit)) }}
{{- fail (printf "resources.limits.memory %q: cannot compute GOMEMLIMIT from it; write it as bytes or with a suffix k, M, G, T, Ki, Mi, Gi or Ti, or set goMemLimit.enabled=false" $q) }}
{{- end }}
{{- mulf (float64 $number) (float64 (get $factors $unit)) }}
{{- end }}
{{- end }}

{{/*
certrollout.goMemLimit is GOMEMLIMIT in bytes: goMemLimit.ratio of the memory limit, rounded down. Empty
when there is no memory limit.
*/}}
{{- define "certrollout.goMemLimit" -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) }}
{{- if $limit }}
{{- $bytes := include "certrollout.bytes" $limit | float64 }}
{{- printf "%.0f" (floor (mulf $bytes .Values.goMemLimit.ratio)) }}
{{- end }}
{{- end }}

{{/*
certrollout.args are the arguments of `certrollout controller`. A flag is rendered only when its value is
set, so an unset one keeps the binary's default; leader election is always rendered (a chart-managed
Deployment depends on it).
*/}}
{{- define "certrollout.args" -}}
{{- $v := .Values }}
- controller
- --leader-elect={{ $v.leaderElection.enabled }}
- --leader-election-lease-duration={{ required "leaderElection.leaseDuration is required" $v.leaderElection.leaseDuration }}
- --leader-election-renew-deadline={{ required "leaderElection.renewDeadline is required" $v.leaderElection.renewDeadline }}
- --leader-election-retry-period={{ required "leaderElection.retryPeriod is required" $v.leaderElection.retryPeriod }}
{{- with $v.leaderElection.namespace }}
- --leader-election-namespace={{ . }}
{{- end }}
- --settings-namespace={{ .Release.Namespace }}
{{- if $v.metrics.enabled }}
{{- if $v.metrics.secure }}
- --metrics-secure
{{- end }}
- --metrics-bind-address=:{{ include "certrollout.metricsPort" . }}
{{- else }}
- --metrics-bind-address=0
{{- end }}
- --health-probe-bind-address=:{{ $v.healthProbe.port }}
{{- with $v.watchNamespaces }}
- --namespaces={{ join "," . }}
{{- end }}
{{- if $v.auto }}
- --auto
{{- end }}
{{- with $v.settlePeriod }}
- --settle-period={{ . }}
{{- end }}
{{- with $v.minRestartInterval }}
- --min-restart-interval={{ . }}
{{- end }}
{{- if not (kindIs "invalid" $v.restartRate) }}
- --restart-rate={{ $v.restartRate }}
{{- end }}
{{- if not (kindIs "invalid" $v.restartBurst) }}
- --restart-burst={{ int64 $v.restartBurst }}
{{- end }}
{{- if not (kindIs "invalid" $v.maxConcurrentReconciles) }}
- --max-concurrent-reconciles={{ int64 $v.maxConcurrentReconciles }}
{{- end }}
{{- if not (kindIs "invalid" $v.maxConcurrentRollouts) }}
- --max-concurrent-rollouts={{ int64 $v.maxConcurrentRollouts }}
{{- end }}
{{- if not (kindIs "invalid" $v.maxRestartsPerDay) }}
- --max-restarts-per-day={{ int64 $v.maxRestartsPerDay }}
{{- end }}
{{- if not (kindIs "invalid" $v.maxConcurrentRolloutsPerNamespace) }}
- --max-concurrent-rollouts-per-namespace={{ int64 $v.maxConcurrentRolloutsPerNamespace }}
{{- end }}
{{- if $v.caCascade }}
- --ca-cascade
{{- end }}
{{- if not $v.probes.enabled }}
- --probe=false
{{- end }}
{{- with $v.probes.timeout }}
- --probe-timeout={{ . }}
{{- end }}
{{- with $v.probes.grace }}
- --probe-grace={{ . }}
{{- end }}
{{- if $v.trustSync.enabled }}
- --trust-sync
{{- end }}
{{- with $v.clusterResourceNamespace }}
- --cluster-resource-namespace={{ . }}
{{- end }}
{{- if not (kindIs "invalid" $v.kubeAPI.qps) }}
- --kube-api-qps={{ $v.kubeAPI.qps }}
{{- end }}
{{- if not (kindIs "invalid" $v.kubeAPI.burst) }}
- --kube-api-burst={{ int64 $v.kubeAPI.burst }}
{{- end }}
{{- with $v.pprofBindAddress }}
- --pprof-bind-address={{ . }}
{{- end }}
{{- with $v.logFormat }}
- --log-format={{ . }}
{{- end }}
{{- if not (kindIs "invalid" $v.verbosity) }}
- -v={{ int64 $v.verbosity }}
{{- end }}
{{- range $v.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}

{{/*
certrollout.rules are the controller's RBAC rules, the same as config/rbac/cluster_role.yaml (a test
compares them). With (dict "namespaced" true) they leave out what no Role can grant: cert-manager's
ClusterIssuers, which are cluster-scoped (certrollout.clusterScopedRules grants those), and
NodeCertificates, ClusterTrustBundles and PodCertificateRequests, which only the cluster-wide controller
reads (a tenant install gets no cluster-wide rights it did not have; design/2026-11-29-native-certificate-sources.md).
*/}}
{{- define "certrollout.rules" -}}
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch, patch]
- apiGroups: [batch]
  resources: [cronjobs, jobs]
  verbs: [get, list, watch]
- apiGroups: [cert-manager.io]
  resources: [certificates, issuers{{ if not .namespaced }}, clusterissuers{{ end }}]
  verbs: [get, list, watch]
- apiGroups: [cert-manager.io]
  resources: [certificates/status]
  verbs: [patch]
- apiGroups: [certrollout.io]
  resources: [rolloutpolicies, certrollouts, maintenanceholds, trustbundlesyncs]
  verbs: [get, list, watch]
{{- if not .namespaced }}
- apiGroups: [certrollout.io]
  resources: [nodecertificates]
  verbs: [list, watch]
- apiGroups: [certrollout.io]
  resources: [controlplanerollouts]
  verbs: [get, list, watch, create, update, patch]
- apiGroups: [certrollout.io]
  resources: [controlplanerollouts/status, controlplanepolicies/status]
  verbs: [update, patch]
- apiGroups: [certrollout.io]
  resources: [controlplanepolicies]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [certificates.k8s.io]
  resources: [clustertrustbundles]
  verbs: [get, list, watch]
- apiGroups: [certificates.k8s.io]
  resources: [podcertificaterequests]
  verbs: [list, watch]
{{- end }}
- apiGroups: [certrollout.io]
  resources: [certrollouts]
  verbs: [create, patch, update, delete]
- apiGroups: [certrollout.io]
  resources: [maintenanceholds]
  verbs: [patch, update]
- apiGroups: [certrollout.io]
  resources: [rolloutpolicies/status, certrollouts/status, maintenanceholds/status, trustbundlesyncs/status]
  verbs: [update, patch]
- apiGroups: [certrollout.io]
  resources: [certrollouts/finalizers, maintenanceholds/finalizers]
  verbs: [update]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch, update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- if not .namespaced }}
{{ include "certrollout.metricsAuthRules" . }}
{{- end }}
{{- end }}

{{/*
certrollout.clusterScopedRules: what the controller still needs cluster-wide when it watches only some
namespaces. Its cache watches ClusterIssuers (the CA graph and CA cascades) whatever the namespaces, and
a watch it may not list never syncs, so the controller would not start without this.
*/}}
{{- define "certrollout.clusterScopedRules" -}}
- apiGroups: [cert-manager.io]
  resources: [clusterissuers]
  verbs: [get, list, watch]
{{ include "certrollout.metricsAuthRules" . }}
{{- end }}

{{/*
certrollout.metricsAuthRules: with --metrics-secure the controller asks the API server who a scraper is
(TokenReview) and whether it may GET /metrics (SubjectAccessReview). Both are cluster-scoped, and granted
whether or not metrics.secure is set, as config/rbac does, so switching it needs no RBAC change.
*/}}
{{- define "certrollout.metricsAuthRules" -}}
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}

{{/*
certrollout.metricsPort: the container port of /metrics; metrics.port, else 8443 with metrics.secure and
8080 without (the binary's plain HTTP default).
*/}}
{{- define "certrollout.metricsPort" -}}
{{- if .Values.metrics.port }}{{ int64 .Values.metrics.port }}{{ else if .Values.metrics.secure }}8443{{ else }}8080{{ end }}
{{- end }}

{{/*
certrollout.metricsPortName: the name of the metrics port of the container and the Service: https when
served over TLS (metrics.secure), metrics when plain HTTP.
*/}}
{{- define "certrollout.metricsPortName" -}}
{{- if .Values.metrics.secure }}https{{ else }}metrics{{ end }}
{{- end }}

{{/*
certrollout.scrapeAuth: the scheme, credentials and TLS settings of a ServiceMonitor or PodMonitor endpoint
when metrics.secure: HTTPS, the token of Prometheus's ServiceAccount (bound to the metrics-reader
ClusterRole), and tlsConfig, which by default skips verification of the controller's self-signed
certificate. Called with (dict "ctx" $ "m" <monitor values> "kind" "ServiceMonitor"|"PodMonitor").
*/}}
{{- define "certrollout.scrapeAuth" -}}
{{- if .ctx.Values.metrics.secure }}
scheme: https
{{- if .m.authorization }}
authorization:
  {{- toYaml .m.authorization | nindent 2 }}
{{- else if eq .kind "ServiceMonitor" }}
bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
{{- else }}
{{- fail "podMonitor with metrics.secure needs podMonitor.authorization (type: Bearer, credentials: a Secret key holding a token of Prometheus's ServiceAccount): a PodMonitor cannot use Prometheus's own token file" }}
{{- end }}
{{- with .ctx.Values.metrics.scrapeTLSConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels that select the node agent's pods (immutable, as the DaemonSet's selector is).
*/}}
{{- define "certrollout.nodeAgentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "certrollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-agent
{{- end }}

{{/*
The metadata lines of the node agent's objects: certrollout.metadata's, with component node-agent.
*/}}
{{- define "certrollout.nodeAgentMetadata" -}}
labels:
  helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
  {{- include "certrollout.nodeAgentSelectorLabels" . | nindent 2 }}
  app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
  app.kubernetes.io/part-of: certrollout
  app.kubernetes.io/managed-by: {{ .Release.Service }}
  {{- with .Values.commonLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The node agent's ServiceAccount: <fullname>-node-agent.
*/}}
{{- define "certrollout.nodeAgentName" -}}
{{- printf "%s-node-agent" (include "certrollout.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}
