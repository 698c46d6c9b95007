{{/* Names, labels and the list of app workloads shared by every template. */}}

{{- define "ecommerce-saga.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ecommerce-saga.fullname" -}}
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

{{- define "ecommerce-saga.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: include with (dict "root" $ "component" "order"). */}}
{{- define "ecommerce-saga.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecommerce-saga.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All recommended labels of one component: include with (dict "root" $ "component" "order"). */}}
{{- define "ecommerce-saga.labels" -}}
helm.sh/chart: {{ include "ecommerce-saga.chart" .root }}
{{ include "ecommerce-saga.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: {{ include "ecommerce-saga.name" .root }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* Labels of the release as a whole (Secrets, ServiceAccount, ServiceMonitor). */}}
{{- define "ecommerce-saga.commonLabels" -}}
helm.sh/chart: {{ include "ecommerce-saga.chart" . }}
app.kubernetes.io/name: {{ include "ecommerce-saga.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: {{ include "ecommerce-saga.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* An image reference: include with (dict "image" .Values.image "global" .Values.global "appVersion" ...). */}}
{{- define "ecommerce-saga.imageRef" -}}
{{- $registry := .global.imageRegistry | default .image.registry }}
{{- $repository := .image.repository }}
{{- if $registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) .image.repository }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repository .image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.image.tag | default .appVersion) }}
{{- end }}
{{- end }}

{{/* A pull policy: the given one, else IfNotPresent for a digest (immutable), Always for a tag (it may be re-pushed). */}}
{{- define "ecommerce-saga.pullPolicy" -}}
{{- if .pullPolicy }}
{{- .pullPolicy }}
{{- else if .digest -}}
IfNotPresent
{{- else -}}
Always
{{- end }}
{{- end }}

{{- define "ecommerce-saga.image" -}}
{{- include "ecommerce-saga.imageRef" (dict "image" .Values.image "global" .Values.global "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "ecommerce-saga.mongodbImage" -}}
{{- include "ecommerce-saga.imageRef" (dict "image" .Values.mongodb.image "global" .Values.global "appVersion" "") }}
{{- end }}

{{/* "true" on OpenShift: platform=openshift, or platform=auto and the cluster serves security.openshift.io/v1. */}}
{{- define "ecommerce-saga.isOpenShift" -}}
{{- if eq .Values.platform "openshift" -}}
true
{{- else if and (eq .Values.platform "auto") (.Capabilities.APIVersions.Has "security.openshift.io/v1") -}}
true
{{- end }}
{{- end }}

{{/* The pod security context: OpenShift assigns the UID and fsGroup (restricted-v2 SCC); plain Kubernetes gets ours. Include with (dict "root" $ "extra" MAP). */}}
{{- define "ecommerce-saga.podSecurityContext" -}}
{{- $context := deepCopy .root.Values.podSecurityContext }}
{{- if not (include "ecommerce-saga.isOpenShift" .root) }}
{{- $context = mergeOverwrite $context (deepCopy .root.Values.kubernetesPodSecurityContext) }}
{{- end }}
{{- toYaml (mergeOverwrite $context (deepCopy (.extra | default dict))) }}
{{- end }}

{{/*
checkov annotations for what a scanner cannot know, each with its reason; include with
(dict "root" $ "images" (list IMAGE...) "extra" (list "CKV_K8S_8=reason" ...)).
*/}}
{{- define "ecommerce-saga.checkovSkips" -}}
{{- $skips := .extra | default list }}
{{- if include "ecommerce-saga.isOpenShift" .root }}
{{- $skips = append $skips "CKV_K8S_40=OpenShift's restricted-v2 SCC assigns a UID from the project's range (above 1000000000); setting one would be rejected" }}
{{- end }}
{{- range $image := .images }}
{{- if $image.digest }}
{{- $skips = append $skips "CKV_K8S_15=the image is pinned by digest: its content cannot change, so IfNotPresent is the right pull policy" }}
{{- else }}
{{- $skips = append $skips "CKV_K8S_43=pinned by tag for development; production sets the digest (image.digest, mongodb.image.digest), as the deploy scripts do" }}
{{- end }}
{{- end }}
{{- range $index, $skip := uniq $skips }}
checkov.io/skip{{ add1 $index }}: {{ $skip | quote }}
{{- end }}
{{- end }}

{{- define "ecommerce-saga.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecommerce-saga.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ecommerce-saga.tokensSecretName" -}}
{{- .Values.tokens.existingSecret | default (printf "%s-tokens" (include "ecommerce-saga.fullname" .)) }}
{{- end }}

{{- define "ecommerce-saga.mongodbName" -}}
{{- printf "%s-mongodb" (include "ecommerce-saga.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the in-chart MongoDB's passwords and the app user's URL. */}}
{{- define "ecommerce-saga.mongodbAuthSecretName" -}}
{{- .Values.mongodb.auth.existingSecret | default (include "ecommerce-saga.mongodbName" .) }}
{{- end }}

{{/* The Secret holding SHOP_MONGODB_URL (key: ecommerce-saga.mongodbUrlKey). */}}
{{- define "ecommerce-saga.mongodbSecretName" -}}
{{- if .Values.mongodb.enabled }}
{{- include "ecommerce-saga.mongodbAuthSecretName" . }}
{{- else if .Values.externalMongodb.existingSecret }}
{{- .Values.externalMongodb.existingSecret }}
{{- else }}
{{- include "ecommerce-saga.mongodbName" . }}
{{- end }}
{{- end }}

{{- define "ecommerce-saga.mongodbUrlKey" -}}
{{- if and (not .Values.mongodb.enabled) .Values.externalMongodb.existingSecret }}
{{- .Values.externalMongodb.existingSecretKey }}
{{- else -}}
mongodb-url
{{- end }}
{{- end }}

{{/*
A secret value kept across upgrades. Include with
(dict "root" $ "secret" NAME "key" KEY "given" VALUE "value" "tokens.adminToken" "existing" "tokens.existingSecret").
The given value; else the one in the release's Secret (lookup); else, on a first install with
cluster access and secrets.generate, a new random one. Everything else fails the render rather
than invent a value: a new MongoDB password would not match the initialised database, and tokens
would change on every sync of a GitOps tool (whose renders have no cluster access).
*/}}
{{- define "ecommerce-saga.keptSecretValue" -}}
{{- $root := .root }}
{{- if .given }}
{{- .given }}
{{- else if not $root.Values.secrets.generate }}
{{- fail (printf "secrets.generate=false (GitOps mode) generates nothing: set %s, or %s to a Secret you manage" .value .existing) }}
{{- else }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace .secret | default dict }}
{{- $current := dig "data" .key "" $existing }}
{{- if $current }}
{{- $current | b64dec }}
{{- else if $root.Release.IsUpgrade }}
{{- fail (printf "upgrade: Secret %s has no %s to keep, and a new one would not match what is in use (MongoDB keeps the password it was initialised with); set %s to the current value, or %s" .secret .key .value .existing) }}
{{- else if not (lookup "v1" "ServiceAccount" $root.Release.Namespace "default") }}
{{- fail (printf "%s is empty and this render has no cluster access (helm template, --dry-run, Argo CD / OpenShift GitOps), so a generated value would change on every render: set secrets.generate=false (GitOps mode) with %s or %s, or install with helm install/upgrade (namespace %s must exist: no --create-namespace)" .value .value .existing $root.Release.Namespace) }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Fails the render on contradictory or missing settings. */}}
{{- define "ecommerce-saga.validate" -}}
{{- $external := or .Values.externalMongodb.url .Values.externalMongodb.existingSecret }}
{{- if and .Values.mongodb.enabled $external }}
{{- fail "set either mongodb.enabled=true (in-chart MongoDB) or externalMongodb.url/existingSecret, not both" }}
{{- end }}
{{- if not (or .Values.mongodb.enabled $external) }}
{{- fail "no database: set mongodb.enabled=true, or externalMongodb.url or externalMongodb.existingSecret" }}
{{- end }}
{{- if and .Values.externalMongodb.url .Values.externalMongodb.existingSecret }}
{{- fail "set externalMongodb.url or externalMongodb.existingSecret, not both" }}
{{- end }}
{{- if not (has .Values.topology (list "monolith" "split")) }}
{{- fail (printf "topology must be monolith or split, not %q" .Values.topology) }}
{{- end }}
{{- $oidc := .Values.oidc }}
{{- $configured := or $oidc.issuer $oidc.existingSecret }}
{{- if and $configured $oidc.developmentIssuer }}
{{- fail "oidc.developmentIssuer is for demos without an identity provider: unset it when oidc.issuer or oidc.existingSecret is set" }}
{{- end }}
{{- if not (or $configured $oidc.developmentIssuer) }}
{{- fail "oidc.issuer (and oidc.audience) or oidc.existingSecret is required; for a demo without an identity provider, set oidc.developmentIssuer=true" }}
{{- end }}
{{- if and $oidc.issuer (not $oidc.audience) }}
{{- fail "oidc.audience is required with oidc.issuer" }}
{{- end }}
{{- if and $oidc.existingSecret (or $oidc.issuer $oidc.audience $oidc.jwksUrl) }}
{{- fail "set oidc.issuer/audience/jwksUrl or oidc.existingSecret, not both" }}
{{- end }}
{{- $smtp := .Values.smtp }}
{{- if and $smtp.password $smtp.existingSecret }}
{{- fail "set smtp.password or smtp.existingSecret, not both" }}
{{- end }}
{{- if and (or $smtp.password $smtp.existingSecret) (not $smtp.host) }}
{{- fail "smtp.password/existingSecret is set but smtp.host is empty: set the relay's host (without it, messages go to the development outbox)" }}
{{- end }}
{{- if and (or $smtp.password $smtp.existingSecret) (not $smtp.username) }}
{{- fail "smtp.password/existingSecret needs smtp.username (the app logs in with both)" }}
{{- end }}
{{- end }}

{{/* Seconds the pod may take to stop: preStop, then the engine's hand-over, then a margin. Include with (dict "root" $ "settings" $s). */}}
{{- define "ecommerce-saga.terminationGrace" -}}
{{- $shutdown := .settings.shutdown }}
{{- $needed := add $shutdown.preStopSeconds .root.Values.config.sagaShutdownGraceSeconds }}
{{- if $shutdown.terminationGracePeriodSeconds }}
{{- if le (int $shutdown.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSeconds + config.sagaShutdownGraceSeconds (%v)" $shutdown.terminationGracePeriodSeconds $needed) }}
{{- end }}
{{- $shutdown.terminationGracePeriodSeconds }}
{{- else }}
{{- add $needed 10 }}
{{- end }}
{{- end }}

{{/*
The app workloads as YAML: {workloads: [{name, component, port, modules, public, settings}]}.
monolith: one workload hosting every module. split: one per module, named <prefix><module>-svc;
`settings` is `workload` overridden key by key by the monolith's or the module's own values.
*/}}
{{- define "ecommerce-saga.workloads" -}}
{{- include "ecommerce-saga.validate" . }}
{{- $modules := list "order" "inventory" "payment" "shipping" "notification" }}
{{- $workloads := list }}
{{- if eq .Values.topology "monolith" }}
{{- $settings := mergeOverwrite (deepCopy .Values.workload) (deepCopy (omit .Values.monolith "port")) }}
{{- $workloads = append $workloads (dict "name" (include "ecommerce-saga.fullname" .) "component" "monolith" "port" (int .Values.monolith.port) "modules" $modules "public" true "settings" $settings) }}
{{- else }}
{{- range $module := $modules }}
{{- $own := index $.Values.split.services $module }}
{{- $settings := mergeOverwrite (deepCopy $.Values.workload) (deepCopy (omit $own "port")) }}
{{- $workloads = append $workloads (dict "name" (printf "%s%s-svc" $.Values.split.namePrefix $module) "component" $module "port" (int $own.port) "modules" (list $module) "public" (eq $module "order") "settings" $settings) }}
{{- end }}
{{- end }}
{{- range $w := $workloads }}
{{- $a := $w.settings.autoscaling }}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) }}
{{- fail (printf "%s: autoscaling.minReplicas (%v) is above autoscaling.maxReplicas (%v)" $w.name $a.minReplicas $a.maxReplicas) }}
{{- end }}
{{- if eq (int $w.port) (int $.Values.metrics.port) }}
{{- fail (printf "metrics.port %v is also the port of %s: the management port must be a port of its own" $.Values.metrics.port $w.name) }}
{{- end }}
{{- end }}
{{- toYaml (dict "workloads" $workloads) }}
{{- end }}

{{/* The public workload (monolith, or the order service): its Service name and port. */}}
{{- define "ecommerce-saga.publicWorkload" -}}
{{- range (include "ecommerce-saga.workloads" . | fromYaml).workloads }}
{{- if .public }}
{{- toYaml (dict "name" .name "port" .port) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the secrets are mounted as files in the app containers (SHOP_<NAME>_FILE). */}}
{{- define "ecommerce-saga.secretsDir" -}}
/var/run/secrets/ecommerce-saga
{{- end }}

{{/* The projected volume of the app's secrets: the database URL, the two tokens and, in the pods hosting the notification module, the relay's password. Include with (dict "root" $ "workload" $w). */}}
{{- define "ecommerce-saga.secretsVolume" -}}
{{- $root := .root }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      - secret:
          name: {{ include "ecommerce-saga.mongodbSecretName" $root }}
          items:
            - key: {{ include "ecommerce-saga.mongodbUrlKey" $root }}
              path: mongodb-url
      - secret:
          name: {{ include "ecommerce-saga.tokensSecretName" $root }}
          items:
            - key: service-token
              path: service-token
            - key: admin-token
              path: admin-token
      {{- $smtpSecret := include "ecommerce-saga.smtpPasswordSecretName" $root }}
      {{- if and $smtpSecret (has "notification" .workload.modules) }}
      - secret:
          name: {{ $smtpSecret }}
          items:
            - key: {{ if $root.Values.smtp.existingSecret }}{{ $root.Values.smtp.existingSecretKey }}{{ else }}smtp-password{{ end }}
              path: smtp-password
      {{- end }}
{{- end }}

{{/* Pod labels matching every app pod of the release (not MongoDB). */}}
{{- define "ecommerce-saga.appPodSelector" -}}
matchLabels:
  app.kubernetes.io/name: {{ include "ecommerce-saga.name" . }}
  app.kubernetes.io/instance: {{ .Release.Name }}
matchExpressions:
  - key: app.kubernetes.io/component
    operator: In
    values: [monolith, order, inventory, payment, shipping, notification, audit]
{{- end }}

{{/* SHOP_OIDC_* of the app containers: from values, from oidc.existingSecret, or none (development issuer). */}}
{{- define "ecommerce-saga.oidcEnv" -}}
{{- $oidc := .Values.oidc }}
{{- if $oidc.existingSecret }}
{{- range $name, $key := dict "SHOP_OIDC_ISSUER" "issuer" "SHOP_OIDC_AUDIENCE" "audience" "SHOP_OIDC_JWKS_URL" "jwks-url" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $oidc.existingSecret }}
      key: {{ $key }}
      {{- if eq $key "jwks-url" }}
      optional: true
      {{- end }}
{{- end }}
{{- else if $oidc.issuer }}
- name: SHOP_OIDC_ISSUER
  value: {{ $oidc.issuer | quote }}
- name: SHOP_OIDC_AUDIENCE
  value: {{ $oidc.audience | quote }}
{{- with $oidc.jwksUrl }}
- name: SHOP_OIDC_JWKS_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: SHOP_OIDC_CUSTOMER_CLAIM
  value: {{ $oidc.customerClaim | quote }}
- name: SHOP_OIDC_ROLES_CLAIM
  value: {{ $oidc.rolesClaim | quote }}
- name: SHOP_OIDC_ADMIN_ROLE
  value: {{ $oidc.adminRole | quote }}
{{- end }}

{{/*
Email settings (docs/notifications.md), only in the pods hosting the notification module: include
with (dict "root" $ "workload" $w). The relay's password is a file of the secrets volume.
*/}}
{{- define "ecommerce-saga.smtpEnv" -}}
{{- $smtp := .root.Values.smtp }}
{{- if has "notification" .workload.modules }}
{{- if $smtp.host }}
- name: SHOP_SMTP_HOST
  value: {{ $smtp.host | quote }}
{{- with $smtp.port }}
- name: SHOP_SMTP_PORT
  value: {{ . | quote }}
{{- end }}
- name: SHOP_SMTP_TLS
  value: {{ $smtp.tls | quote }}
{{- with $smtp.username }}
- name: SHOP_SMTP_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if include "ecommerce-saga.smtpPasswordSecretName" .root }}
- name: SHOP_SMTP_PASSWORD_FILE
  value: {{ include "ecommerce-saga.secretsDir" .root }}/smtp-password
{{- end }}
- name: SHOP_SMTP_TIMEOUT_SECONDS
  value: {{ $smtp.timeoutSeconds | quote }}
{{- end }}
- name: SHOP_SMTP_FROM
  value: {{ $smtp.from | quote }}
- name: SHOP_SHOP_NAME
  value: {{ $smtp.shopName | quote }}
- name: SHOP_SHOP_SUPPORT_EMAIL
  value: {{ $smtp.supportEmail | quote }}
{{- end }}
{{- end }}

{{/* The Secret holding the relay's password: smtp.existingSecret, the chart's (smtp.password), or none. */}}
{{- define "ecommerce-saga.smtpPasswordSecretName" -}}
{{- if .Values.smtp.host }}
{{- if .Values.smtp.existingSecret }}
{{- .Values.smtp.existingSecret }}
{{- else if .Values.smtp.password }}
{{- printf "%s-smtp" (include "ecommerce-saga.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The relay's port: smtp.port, else the usual one for smtp.tls (as the app does). */}}
{{- define "ecommerce-saga.smtpPort" -}}
{{- .Values.smtp.port | default (get (dict "starttls" 587 "tls" 465 "none" 25) .Values.smtp.tls) }}
{{- end }}

{{/*
Egress rules every pod of the release needs when networkPolicy.egress.enabled: DNS and MongoDB.
Peers left empty mean any address on that port.
*/}}
{{- define "ecommerce-saga.egressBase" -}}
{{- $egress := .Values.networkPolicy.egress }}
- ports:
    {{- $ports := list 53 }}
    {{- if include "ecommerce-saga.isOpenShift" . }}
    {{- $ports = append $ports 5353 }}
    {{- end }}
    {{- range $port := $ports }}
    - port: {{ $port }}
      protocol: UDP
    - port: {{ $port }}
      protocol: TCP
    {{- end }}
  {{- with $egress.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if .Values.mongodb.enabled }}
- ports:
    - port: 27017
      protocol: TCP
  to:
    - podSelector:
        matchLabels:
          {{- include "ecommerce-saga.selectorLabels" (dict "root" . "component" "mongodb") | nindent 10 }}
{{- else }}
- ports:
    - port: {{ $egress.mongodb.port }}
      protocol: TCP
  {{- with $egress.mongodb.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Egress to the release's app pods' API port (split: the order service calls the participants; helm test calls the API). */}}
{{- define "ecommerce-saga.egressToApp" -}}
- ports:
    - port: http
      protocol: TCP
  to:
    - podSelector:
        {{- include "ecommerce-saga.appPodSelector" . | nindent 8 }}
{{- end }}
