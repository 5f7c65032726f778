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
volumes:
  # The root filesystem is read-only; Python and the libraries get a scratch /tmp.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
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
{{- end }}
