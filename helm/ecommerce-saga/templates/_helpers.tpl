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

{{- define "ecommerce-saga.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
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

{{/* The Secret holding SHOP_MONGODB_URL (key: ecommerce-saga.mongodbUrlKey). */}}
{{- define "ecommerce-saga.mongodbSecretName" -}}
{{- if and (not .Values.mongodb.enabled) .Values.externalMongodb.existingSecret }}
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
A value kept across upgrades: the given one, else the one already in the Secret (lookup; empty
under `helm template`), else a new random one. Include with
(dict "root" $ "secret" NAME "key" KEY "given" VALUE).
*/}}
{{- define "ecommerce-saga.keptSecretValue" -}}
{{- if .given }}
{{- .given }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret | default dict }}
{{- $current := dig "data" .key "" $existing }}
{{- if $current }}
{{- $current | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Fails the render on contradictory or missing database settings. */}}
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

{{/* Pod labels matching every app pod of the release (not MongoDB). */}}
{{- define "ecommerce-saga.appPodSelector" -}}
matchLabels:
  app.kubernetes.io/name: {{ include "ecommerce-saga.name" . }}
  app.kubernetes.io/instance: {{ .Release.Name }}
matchExpressions:
  - key: app.kubernetes.io/component
    operator: In
    values: [monolith, order, inventory, payment, shipping, notification]
{{- end }}

{{/*
Email settings of a workload hosting the notification module (docs/notifications.md): the env,
and the relay's password Secret mounted as a file. Called with (dict "root" $ "workload" $w).
*/}}
{{- define "ecommerce-saga.smtpEnv" -}}
{{- $smtp := .root.Values.smtp }}
{{- if and $smtp.host (has "notification" .workload.modules) }}
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
{{- if $smtp.passwordSecret.name }}
- name: SHOP_SMTP_PASSWORD_FILE
  value: /etc/ecommerce-saga/smtp/password
{{- end }}
{{- end }}
{{- if has "notification" .workload.modules }}
- name: SHOP_SMTP_FROM
  value: {{ $smtp.from | quote }}
- name: SHOP_SHOP_NAME
  value: {{ $smtp.shopName | quote }}
- name: SHOP_SHOP_SUPPORT_EMAIL
  value: {{ $smtp.supportEmail | quote }}
{{- end }}
{{- end }}

{{- define "ecommerce-saga.smtpVolumeMounts" -}}
{{- if and .root.Values.smtp.host .root.Values.smtp.passwordSecret.name (has "notification" .workload.modules) }}
- name: smtp-password
  mountPath: /etc/ecommerce-saga/smtp
  readOnly: true
{{- end }}
{{- end }}

{{- define "ecommerce-saga.smtpVolumes" -}}
{{- $smtp := .root.Values.smtp }}
{{- if and $smtp.host $smtp.passwordSecret.name (has "notification" .workload.modules) }}
- name: smtp-password
  secret:
    secretName: {{ $smtp.passwordSecret.name }}
    items:
      - key: {{ $smtp.passwordSecret.key }}
        path: password
{{- end }}
{{- end }}
