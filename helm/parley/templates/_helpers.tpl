{{/* Names and labels. */}}
{{- define "parley.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "parley.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "parley.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "parley.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Name of one component's objects, e.g. "<fullname>-slack". */}}
{{- define "parley.componentName" -}}
{{- printf "%s-%s" (include "parley.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "parley.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "parley.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component; takes (dict "root" $ "component" "slack"). */}}
{{- define "parley.selectorLabels" -}}
app.kubernetes.io/name: {{ include "parley.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "parley.componentLabels" -}}
{{ include "parley.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "parley.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "parley.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "parley.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "parley.secretName" -}}
{{- default (include "parley.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Seconds Kubernetes waits after SIGTERM: the pre-stop pause, the app's grace, a margin. */}}
{{- define "parley.terminationGrace" -}}
{{- add .Values.preStopSleep .Values.shutdownGrace 15 }}
{{- end }}

{{/*
A settings file mounted from a ConfigMap: the chart's (made from values) or the
operator's. Takes (dict "root" $ "file" "policy"|"mcp"); empty when the feature is off.
*/}}
{{- define "parley.fileConfigMap" -}}
{{- $values := index .root.Values .file }}
{{- $inline := eq .file "policy" | ternary (dig "content" "" $values) (dig "servers" dict $values) }}
{{- if $values.existingConfigMap }}
{{- $values.existingConfigMap }}
{{- else if $inline }}
{{- include "parley.componentName" (dict "root" .root "component" .file) }}
{{- end }}
{{- end }}

{{/* Where a settings file's directory is mounted: /etc/parley/<file>. */}}
{{- define "parley.fileDir" -}}
{{- printf "/etc/parley/%s" . }}
{{- end }}

{{/* One environment variable read from the token Secret. */}}
{{- define "parley.secretEnv" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "parley.secretName" .root }}
      key: {{ .key }}
{{- end }}

{{/*
Environment every Parley container gets: settings, the model API key, Redis. Each workload
adds only its own platform's tokens, so a Slack pod never opens a Discord gateway and the
other way round.
*/}}
{{- define "parley.commonEnv" -}}
- name: PORT
  value: {{ .Values.port | quote }}
- name: BOT_SHUTDOWN_GRACE
  value: {{ .Values.shutdownGrace | quote }}
{{ include "parley.secretEnv" (dict "root" . "key" "EVOLINK_API_KEY") }}
{{- if .Values.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s:6379/0" (include "parley.componentName" (dict "root" . "component" "redis")) | quote }}
{{- else }}
{{ include "parley.secretEnv" (dict "root" . "key" "REDIS_URL") }}
{{- end }}
{{- if ne .Values.redis.mode "single" }}
- name: REDIS_MODE
  value: {{ .Values.redis.mode | quote }}
{{- end }}
{{- if eq .Values.redis.mode "sentinel" }}
- name: REDIS_SENTINEL_MASTER
  value: {{ .Values.redis.sentinelMaster | quote }}
{{- end }}
{{- if .Values.admin.enabled }}
{{ include "parley.secretEnv" (dict "root" . "key" "ADMIN_TOKEN") }}
{{- end }}
{{- if include "parley.fileConfigMap" (dict "root" . "file" "policy") }}
- name: BOT_POLICY_FILE
  value: {{ printf "%s/%s" (include "parley.fileDir" "policy") .Values.policy.key | quote }}
{{- end }}
{{- if include "parley.fileConfigMap" (dict "root" . "file" "mcp") }}
- name: BOT_MCP_CONFIG
  value: {{ printf "%s/%s" (include "parley.fileDir" "mcp") .Values.mcp.key | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod annotations: scrape hints, and checksums so a settings change rolls the pods. */}}
{{- define "parley.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- /* No checksum of the policy: the app re-reads the mounted file, no restart needed. */}}
{{- if and .Values.mcp.servers (not .Values.mcp.existingConfigMap) }}
checksum/mcp: {{ include (print .Template.BasePath "/mcp-configmap.yaml") . | sha256sum }}
{{- end }}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The pod spec shared by the Slack Deployment and the Discord StatefulSet; takes
(dict "root" $ "secretKeys" <token keys> "env" <YAML EnvVar list or ""> "command" <list or nil>
"resources" <map>).
*/}}
{{- define "parley.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "parley.serviceAccountName" $root }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ include "parley.terminationGrace" $root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: parley
    image: {{ include "parley.image" $root | quote }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    {{- with .command }}
    command:
      {{- toYaml . | nindent 6 }}
    args: ["parley", "serve"]
    {{- end }}
    ports:
      - name: http
        containerPort: {{ $root.Values.port }}
        protocol: TCP
    envFrom:
      - configMapRef:
          name: {{ include "parley.fullname" $root }}
    env:
      {{- include "parley.commonEnv" $root | nindent 6 }}
      {{- range .secretKeys }}
      {{- include "parley.secretEnv" (dict "root" $root "key" .) | nindent 6 }}
      {{- end }}
      {{- with .env }}
      {{- . | nindent 6 }}
      {{- end }}
    startupProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
      failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
      timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
      failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
      timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
      failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
    lifecycle:
      preStop:
        exec:
          command: ["sleep", {{ $root.Values.preStopSleep | quote }}]
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- /* Whole directories, not subPaths: only then does a ConfigMap update reach the pod. */}}
      {{- range $file := list "policy" "mcp" }}
      {{- if include "parley.fileConfigMap" (dict "root" $root "file" $file) }}
      - name: {{ $file }}
        mountPath: {{ include "parley.fileDir" $file }}
        readOnly: true
      {{- end }}
      {{- end }}
volumes:
  # The root filesystem is read-only; Python and the libraries get a scratch /tmp.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- range $file := list "policy" "mcp" }}
  {{- with include "parley.fileConfigMap" (dict "root" $root "file" $file) }}
  - name: {{ $file }}
    configMap:
      name: {{ . }}
      items:
        - key: {{ (index $root.Values $file).key }}
          path: {{ (index $root.Values $file).key }}
  {{- end }}
  {{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Run by each Discord pod before `parley serve`: the pod's ordinal (from its name) picks a
contiguous block of the DISCORD_SHARD_COUNT shards, the blocks of all pods covering every
shard exactly once, e.g. 4 shards over 2 pods -> pod 0: 0,1 and pod 1: 2,3.
*/}}
{{- define "parley.discordShardScript" -}}
ordinal="${POD_NAME##*-}"
if [ "$ordinal" -ge "$PARLEY_DISCORD_PODS" ]; then
  echo "pod $POD_NAME is beyond the chart's discord.replicas ($PARLEY_DISCORD_PODS)" >&2
  exit 1
fi
start=$(( ordinal * DISCORD_SHARD_COUNT / PARLEY_DISCORD_PODS ))
end=$(( (ordinal + 1) * DISCORD_SHARD_COUNT / PARLEY_DISCORD_PODS ))
ids=""
shard="$start"
while [ "$shard" -lt "$end" ]; do
  ids="${ids:+$ids,}$shard"
  shard=$(( shard + 1 ))
done
export DISCORD_SHARD_IDS="$ids"
echo "pod $POD_NAME runs Discord shards $ids of $DISCORD_SHARD_COUNT" >&2
exec "$@"
{{- end }}

{{/* Combinations the schema cannot express; each names what to change. */}}
{{- define "parley.validate" -}}
{{- if not (or .Values.slack.enabled .Values.discord.enabled) }}
{{- fail "enable slack.enabled, discord.enabled or both" }}
{{- end }}
{{- if and .Values.discord.enabled (gt (int .Values.discord.replicas) (int .Values.discord.shardCount)) }}
{{- fail "discord.replicas must not exceed discord.shardCount: every pod needs at least one shard" }}
{{- end }}
{{- if not (or .Values.redis.enabled .Values.externalRedis.url .Values.secrets.existingSecret) }}
{{- fail "redis.enabled is false: set externalRedis.url, or REDIS_URL in secrets.existingSecret" }}
{{- end }}
{{- if and .Values.redis.enabled (ne .Values.redis.mode "single") }}
{{- fail "redis.mode cluster or sentinel needs your own Redis: set redis.enabled=false and externalRedis.url to its nodes" }}
{{- end }}
{{- if and (eq .Values.redis.mode "sentinel") (not .Values.redis.sentinelMaster) }}
{{- fail "redis.mode sentinel needs redis.sentinelMaster, the master's name as the sentinels know it" }}
{{- end }}
{{- if and .Values.admin.enabled (not (or .Values.secrets.adminToken .Values.secrets.existingSecret)) }}
{{- fail "admin.enabled needs secrets.adminToken, or ADMIN_TOKEN in secrets.existingSecret" }}
{{- end }}
{{- if and .Values.policy.content .Values.policy.existingConfigMap }}
{{- fail "set policy.content or policy.existingConfigMap, not both" }}
{{- end }}
{{- if and .Values.mcp.servers .Values.mcp.existingConfigMap }}
{{- fail "set mcp.servers or mcp.existingConfigMap, not both" }}
{{- end }}
{{- end }}
