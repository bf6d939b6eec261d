{{/*
Names, labels and the one environment every application pod shares.
Names follow the seed (`<release>-backend`, `<release>-redis`), so `fullname` is the release name
unless fullnameOverride is set. Kubernetes names are limited to 63 characters (DNS label).
*/}}

{{- define "soc-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "soc-agent.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* `<fullname>-<component>`: call with (dict "ctx" $ "component" "backend"). */}}
{{- define "soc-agent.componentName" -}}
{{- printf "%s-%s" (include "soc-agent.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "soc-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The seed's `app` label per component, so `kubectl get pods -l app=soc-backend` works. */}}
{{- define "soc-agent.appLabel" -}}
{{- $apps := dict "backend" "soc-backend" "worker" "soc-worker" "beat" "soc-beat" "migrate" "soc-migrate" "seed" "soc-seed" "frontend" "soc-frontend" "redis" "redis" "postgresql" "postgresql" "test" "soc-test" "shared" "soc-agent" "app" "soc-agent" -}}
{{- required (printf "no app label for component %q" .) (get $apps .) }}
{{- end }}

{{/* Labels on every object. Call with (dict "ctx" $ "component" "backend"). */}}
{{- define "soc-agent.labels" -}}
helm.sh/chart: {{ include "soc-agent.chart" .ctx }}
{{ include "soc-agent.selectorLabels" . }}
app: {{ include "soc-agent.appLabel" .component }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: soc-agent-system
{{- end }}

{{/* Selector labels: stable for the life of a release (Deployment selectors are immutable). */}}
{{- define "soc-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "soc-agent.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "soc-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "soc-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "soc-agent.backendImage" -}}
{{- printf "%s:%s" .Values.backend.image.repository (.Values.backend.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{- define "soc-agent.frontendImage" -}}
{{- printf "%s:%s" .Values.frontend.image.repository (.Values.frontend.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* A number as the environment expects it: values files give 1000000 as a float (1e+06). */}}
{{- define "soc-agent.envValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}
{{- printf "%d" (int64 .) }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* Host names Django serves: the user's, the ingress hosts, and the backend Service (probes, helm test). */}}
{{- define "soc-agent.allowedHosts" -}}
{{- $hosts := list -}}
{{- range (splitList "," (.Values.backend.env.DJANGO_ALLOWED_HOSTS | toString)) }}
{{- if trim . }}{{- $hosts = append $hosts (trim .) }}{{- end }}
{{- end }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}{{- $hosts = append $hosts .host }}{{- end }}
{{- end }}
{{- $hosts = append $hosts (include "soc-agent.componentName" (dict "ctx" . "component" "backend")) -}}
{{- $hosts | uniq | join "," }}
{{- end }}

{{/* CSRF origins: the user's, or https://<host> for every TLS ingress host. */}}
{{- define "soc-agent.csrfTrustedOrigins" -}}
{{- if .Values.backend.env.CSRF_TRUSTED_ORIGINS }}
{{- .Values.backend.env.CSRF_TRUSTED_ORIGINS }}
{{- else if .Values.ingress.enabled }}
{{- $origins := list -}}
{{- range .Values.ingress.tls }}{{- range .hosts }}{{- $origins = append $origins (printf "https://%s" .) }}{{- end }}{{- end }}
{{- $origins | uniq | join "," }}
{{- end }}
{{- end }}

{{/* The Secret holding DJANGO_SECRET_KEY and LLM_API_KEY. */}}
{{- define "soc-agent.appSecretName" -}}
{{- default (include "soc-agent.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* A value the chart stores in its Secret, base64-encoded: the one given in values, else the
one already in the cluster (so generated passwords survive upgrades), else a new random one.
Call with (dict "ctx" $ "key" "postgres-password" "value" .Values.postgresql.auth.password). */}}
{{- define "soc-agent.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace (include "soc-agent.fullname" .ctx) | default dict -}}
{{- $data := get $existing "data" | default dict -}}
{{- if .value }}
{{- .value | toString | b64enc }}
{{- else if hasKey $data .key }}
{{- get $data .key }}
{{- else }}
{{- randAlphaNum (.length | default 32) | b64enc }}
{{- end }}
{{- end }}

{{/* The Secret holding REDIS_URL when it is yours (externalRedis.existingSecret); empty otherwise. */}}
{{- define "soc-agent.externalRedisSecret" -}}
{{- if not .Values.redis.enabled }}{{ .Values.externalRedis.existingSecret }}{{ end }}
{{- end }}

{{/* Where DATABASE_URL comes from: (secret name, key). */}}
{{- define "soc-agent.databaseSecretRef" -}}
{{- if and (not .Values.postgresql.enabled) .Values.externalDatabase.existingSecret -}}
name: {{ .Values.externalDatabase.existingSecret }}
key: {{ .Values.externalDatabase.existingSecretKey }}
{{- else -}}
name: {{ include "soc-agent.fullname" . }}
key: database-url
{{- end }}
{{- end }}

{{/*
The environment of every application pod (web, worker, beat, migration and seed jobs): the
variables socproject/settings.py reads, with these exact names (tests/chart checks for drift).
*/}}
{{- define "soc-agent.appEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "soc-agent.componentName" (dict "ctx" . "component" "env") }}
  {{- with .Values.backend.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
env:
  - name: DJANGO_SECRET_KEY
    valueFrom:
      secretKeyRef:
        name: {{ include "soc-agent.appSecretName" . }}
        key: django-secret-key
  - name: LLM_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ include "soc-agent.appSecretName" . }}
        key: llm-api-key
        optional: true
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        {{- include "soc-agent.databaseSecretRef" . | nindent 8 }}
  {{- $external := include "soc-agent.externalRedisSecret" . }}
  - name: REDIS_URL
    valueFrom:
      secretKeyRef:
        name: {{ $external | default (include "soc-agent.fullname" .) }}
        key: {{ ternary .Values.externalRedis.existingSecretKey "redis-url" (ne $external "") }}
  - name: CELERY_BROKER_URL
    valueFrom:
      secretKeyRef:
        {{- if and $external (not .Values.backend.env.CELERY_BROKER_URL) }}
        name: {{ $external }}
        key: {{ .Values.externalRedis.existingSecretKey }}
        {{- else }}
        name: {{ include "soc-agent.fullname" . }}
        key: celery-broker-url
        {{- end }}
  {{- with .Values.backend.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Restart the application pods when their configuration changes. */}}
{{- define "soc-agent.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/values-secret: {{ toJson (list .Values.secrets .Values.externalDatabase .Values.externalRedis .Values.backend.env.REDIS_URL .Values.backend.env.CELERY_BROKER_URL .Values.redis.auth .Values.postgresql.auth) | sha256sum }}
{{- end }}

{{/*
`spec.replicas` of a Deployment with an optional HPA. Without the HPA: replicaCount. With it the
field is left out, so `helm upgrade` never resets what the HPA chose; except on an upgrade that
finds the live Deployment, which gets its live count: dropping a field the previous manifest set
makes Kubernetes reset it to 1 (helm/README.md "Upgrading"). Call with (dict "ctx" $ "component" "backend").
*/}}
{{- define "soc-agent.replicas" -}}
{{- $values := get .ctx.Values .component -}}
{{- if not $values.hpa.enabled }}
replicas: {{ $values.replicaCount }}
{{- else if .ctx.Release.IsUpgrade }}
{{- $live := lookup "apps/v1" "Deployment" .ctx.Release.Namespace (include "soc-agent.componentName" .) | default dict }}
{{- $spec := get $live "spec" | default dict }}
{{- if hasKey $spec "replicas" }}
replicas: {{ int $spec.replicas }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Request body limit of the proxies in front of Daphne (ingress-nginx, the frontend nginx), in nginx
units: whole MiB, 1 MiB above INGEST_MAX_BODY_BYTES so a batch just over the limit still reaches
the API and gets its JSON 413 rather than nginx's HTML one.
*/}}
{{- define "soc-agent.proxyBodySize" -}}
{{- $bytes := include "soc-agent.envValue" .Values.backend.env.INGEST_MAX_BODY_BYTES | int64 -}}
{{- printf "%dm" (add1 (div (add $bytes 1048575) 1048576)) }}
{{- end }}

{{/*
Per-component pod knobs (values `<key>.podLabels`, `.podAnnotations`, `.priorityClassName`,
`.affinity`, `.topologySpreadConstraints`). Call with (dict "ctx" $ "component" "backend" "key"
"backend" "spread" true); `key` is the values section (the jobs share `migrations`), `spread` adds the
default soft anti-affinity of components with several replicas when no affinity is given.
*/}}
{{- define "soc-agent.podMetadata" -}}
{{- $values := get .ctx.Values .key -}}
{{- /* The chart's labels win: selectors and the seed's `app` label must stay what they are. */}}
labels:
  {{- merge (include "soc-agent.labels" . | fromYaml) ($values.podLabels | default dict) | toYaml | nindent 2 }}
{{- with $values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "soc-agent.podPlacement" -}}
{{- $values := get .ctx.Values .key -}}
{{- with $values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- if $values.affinity }}
affinity:
  {{- toYaml $values.affinity | nindent 2 }}
{{- else if .spread }}
affinity:
  {{- include "soc-agent.antiAffinity" . | nindent 2 }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- /* Without a labelSelector a constraint counts no pods: default it to this component's. */}}
  {{- $constraint := . }}
  {{- if not (hasKey . "labelSelector") }}
  {{- $constraint = merge (dict "labelSelector" (dict "matchLabels" (include "soc-agent.selectorLabels" $ | fromYaml))) . }}
  {{- end }}
  - {{- toYaml $constraint | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Extra volumes of every application pod (backend.extraVolumes) besides its own. */}}
{{- define "soc-agent.appVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- with .Values.backend.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The port of a URL: its own, else the default given. Call with (list "https://llm:8443/v1" "443"). */}}
{{- define "soc-agent.urlPort" -}}
{{- $parts := splitList ":" (urlParse (index . 0)).host -}}
{{- if and (gt (len $parts) 1) (last $parts) }}{{ last $parts }}{{ else }}{{ index . 1 }}{{ end }}
{{- end }}

{{/*
Ports the application pods may open to destinations outside the release, from what is configured:
the OTLP collector, the LLM endpoint, an external database and an external Redis. Nothing is opened
for what is off or bundled. One port per line.
*/}}
{{- define "soc-agent.appEgressPorts" -}}
{{- $env := .Values.backend.env -}}
{{- $ports := list -}}
{{- with $env.OTEL_EXPORTER_OTLP_ENDPOINT }}
{{- $ports = append $ports (include "soc-agent.urlPort" (list . (ternary "443" "80" (hasPrefix "https" .)))) }}
{{- end }}
{{- with $env.LLM_BASE_URL }}
{{- $ports = append $ports (include "soc-agent.urlPort" (list . (ternary "443" "80" (hasPrefix "https" .)))) }}
{{- end }}
{{- if not .Values.postgresql.enabled }}
{{- $ports = append $ports (include "soc-agent.urlPort" (list (.Values.externalDatabase.url | default "postgres://db") "5432")) }}
{{- end }}
{{- if not .Values.redis.enabled }}
{{- $ports = append $ports (include "soc-agent.urlPort" (list ($env.REDIS_URL | default "redis://redis") "6379")) }}
{{- with $env.CELERY_BROKER_URL }}
{{- $ports = append $ports (include "soc-agent.urlPort" (list . "6379")) }}
{{- end }}
{{- end }}
{{- $ports | uniq | join "\n" }}
{{- end }}

{{/* Pod-level hardening shared by every pod. */}}
{{- define "soc-agent.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "soc-agent.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Spread replicas of one component over nodes when the cluster has several. */}}
{{- define "soc-agent.antiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "soc-agent.selectorLabels" . | nindent 12 }}
{{- end }}

{{/* nodeSelector, tolerations and image pull secrets for every pod. */}}
{{- define "soc-agent.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Application pods wait until the migration job has applied every migration: `migrate --check`
exits non-zero while one is missing (or the database is unreachable). Web pods never migrate.
*/}}
{{- define "soc-agent.waitForMigrations" -}}
- name: wait-for-migrations
  image: {{ include "soc-agent.backendImage" . }}
  imagePullPolicy: {{ .Values.backend.image.pullPolicy }}
  command: ["sh", "-c", "until python manage.py migrate --check >/dev/null; do echo 'waiting for migrations'; sleep 3; done"]
  {{- include "soc-agent.appEnv" . | nindent 2 }}
  securityContext:
    {{- include "soc-agent.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.migrations.resources | nindent 4 }}
  volumeMounts:
    {{- include "soc-agent.appVolumeMounts" . | nindent 4 }}
{{- end }}

{{/*
Pre-flight of `helm upgrade`, against what the release runs now (lookup; nothing under `helm
template`). Rendering fails before any hook, so the migration Job never runs for an upgrade that
Kubernetes would then refuse half-way, or that would put a production release on the chart's
Kind defaults. helm/README.md "Upgrading" has the way out of each.
*/}}
{{- define "soc-agent.upgradeChecks" -}}
{{- $runbook := "see helm/README.md, Upgrading; upgradeChecks.enabled=false skips these checks" }}
{{- $values := "pass the release's values on every upgrade: the same -f files as before, or --reuse-values" }}
{{- $postgresql := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "soc-agent.componentName" (dict "ctx" . "component" "postgresql")) | default dict }}
{{- if and $postgresql .Values.postgresql.enabled }}
{{- $templates := $postgresql.spec.volumeClaimTemplates | default list }}
{{- $live := "none (emptyDir)" }}
{{- $liveClass := "" }}
{{- with $templates }}
{{- $live = (first .).spec.resources.requests.storage }}
{{- $liveClass = (first .).spec.storageClassName | default "" }}
{{- end }}
{{- $wanted := ternary (toString .Values.postgresql.persistence.size) "none (emptyDir)" .Values.postgresql.persistence.enabled }}
{{- if or (ne $live $wanted) (and $templates (ne $liveClass (.Values.postgresql.persistence.storageClass | default ""))) }}
{{- fail (printf "upgrade refused before anything ran: the PostgreSQL volume is %s (storage class %q) and these values ask for %s (storage class %q), but Kubernetes cannot change a StatefulSet's volumeClaimTemplates. To keep it, %s. To grow it, expand the PVC first and recreate the StatefulSet (%s)" $live $liveClass $wanted (.Values.postgresql.persistence.storageClass | default "") $values $runbook) }}
{{- end }}
{{- end }}
{{- $backend := lookup "apps/v1" "Deployment" .Release.Namespace (include "soc-agent.componentName" (dict "ctx" . "component" "backend")) | default dict }}
{{- if and $backend (eq .Values.backend.image.pullPolicy "Never") }}
{{- range $backend.spec.template.spec.containers }}
{{- if and (eq .name "backend") (ne (.imagePullPolicy | default "Never") "Never") }}
{{- fail (printf "upgrade refused before anything ran: the running backend pulls %s (pullPolicy %s), these values say pullPolicy Never, the chart's default for images loaded into Kind; no pod could start. This is what an upgrade without the release's values gives: %s (%s)" .image .imagePullPolicy $values $runbook) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Cross-field checks the schema cannot express; a failure stops install, upgrade and template. */}}
{{- define "soc-agent.validateValues" -}}
{{- if and .Values.postgresql.enabled (or .Values.externalDatabase.url .Values.externalDatabase.existingSecret) }}
{{- fail "choose one database: postgresql.enabled=true (bundled) or externalDatabase.url / externalDatabase.existingSecret, not both" }}
{{- end }}
{{- if not (or .Values.postgresql.enabled .Values.externalDatabase.url .Values.externalDatabase.existingSecret) }}
{{- fail "no database: set postgresql.enabled=true, externalDatabase.url or externalDatabase.existingSecret" }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.backend.env.REDIS_URL) (not .Values.externalRedis.existingSecret) }}
{{- fail "redis.enabled=false needs backend.env.REDIS_URL or externalRedis.existingSecret: backend pods share WebSocket broadcasts and the Celery broker through Redis" }}
{{- end }}
{{- if and .Values.redis.enabled .Values.externalRedis.existingSecret }}
{{- fail "externalRedis.existingSecret is for your own Redis: set redis.enabled=false" }}
{{- end }}
{{- if and .Values.backend.env.REDIS_URL .Values.externalRedis.existingSecret }}
{{- fail "choose one Redis URL: backend.env.REDIS_URL or externalRedis.existingSecret, not both" }}
{{- end }}
{{- range $name, $hpa := dict "backend" .Values.backend.hpa "worker" .Values.worker.hpa }}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- fail (printf "%s.hpa.minReplicas (%v) is above %s.hpa.maxReplicas (%v)" $name $hpa.minReplicas $name $hpa.maxReplicas) }}
{{- end }}
{{- end }}
{{- if and .Values.observability.serviceMonitor.enabled .Values.networkPolicy.enabled (not .Values.observability.scrapeNamespace) }}
{{- fail "observability.serviceMonitor.enabled needs observability.scrapeNamespace (the namespace Prometheus runs in): with networkPolicy.enabled the pods refuse its scrapes otherwise" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress.enabled=true needs at least one ingress.hosts entry" }}
{{- end }}
{{- if and .Release.IsUpgrade .Values.upgradeChecks.enabled }}
{{- include "soc-agent.upgradeChecks" . }}
{{- end }}
{{- end }}
