#!/usr/bin/env bash
# Checks the Helm chart helm/ecommerce-saga without a cluster:
#
#   1. helm lint --strict: monolith, split, external MongoDB, GitOps mode;
#   2. helm template for monolith/split x in-chart/external-URL/external-Secret MongoDB x plain
#      Kubernetes/OpenShift (--api-versions security.openshift.io/v1, route.openshift.io/v1,
#      monitoring.coreos.com/v1) x secrets given/GitOps mode, plus special cases (digests,
#      registry mirror, identity, HPA, Ingress, alerts, dashboard, audit job, helm test, SMTP with
#      egress restricted, both topologies) and the
#      renders that must fail, with assertions (helm/ecommerce-saga/ci/check_chart.py);
#   3. kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION schemas) on every manifest;
#   4. check-jsonschema with the Route CRD schema on every Route;
#   5. checkov on every render: zero failures (each skip is annotated in its template with why);
#   6. the chart README's parameter table is what readme-generator makes of values.yaml;
#   7. compose.yaml: the compose-spec schema (check-jsonschema's vendored copy), and the same
#      split wiring as the chart (names, ports, SHOP_MODULES, URLs, secrets as files).
#
# Usage: scripts/helm-check.sh
# Installs helm and the validators into .tools/ on first use (scripts/tools.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHART=$ROOT/helm/ecommerce-saga
OUT=$ROOT/.cache/helm-check
# OpenShift 4.19 runs Kubernetes 1.32; kubernetes-validate 1.37.0 ships schemas for 1.25 to 1.37.
KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.32.0}
STARTED=$SECONDS

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"
    exit 0
fi

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'helm-check: FAIL: %s\n' "$*" >&2; exit 1; }

# The Route CRD schema (openshift/api, Apache-2.0): the shared copy beside the repository when
# there is one, else the copy vendored with the chart's test fixtures.
route_schema() {
    local top shared vendored=$CHART/ci/route-v1.schema.json
    top=$(git -C "$ROOT" rev-parse --show-toplevel 2>/dev/null || echo "$ROOT")
    shared=$top/../shared/schemas/route-v1.json
    if [[ -f $shared ]]; then
        cmp -s "$shared" "$vendored" ||
            echo "note: $vendored differs from $shared; using the shared one (refresh the vendored copy)" >&2
        echo "$shared"
    else
        echo "$vendored"
    fi
}

"$ROOT/scripts/tools.sh" helm validators checkov readme
export PATH=$ROOT/.tools/bin:$PATH

# helm lint renders without cluster access: the secrets are given, or come from Secrets (GitOps).
lint() {
    helm lint --strict --quiet "$CHART" --namespace shop \
        --set oidc.issuer=https://sso.example.com/realms/shop --set oidc.audience=shop "$@" >/dev/null ||
        helm lint --strict "$CHART" --namespace shop \
            --set oidc.issuer=https://sso.example.com/realms/shop --set oidc.audience=shop "$@" ||
        die "helm lint $*"
}
given=(--set tokens.serviceToken=s --set tokens.adminToken=a)
step "helm lint --strict"
lint "${given[@]}" --set mongodb.auth.rootPassword=r --set mongodb.auth.password=p
lint "${given[@]}" --set mongodb.auth.rootPassword=r --set mongodb.auth.password=p --set topology=split
lint "${given[@]}" --set mongodb.enabled=false --set externalMongodb.url=mongodb://db:27017
lint --set secrets.generate=false --set tokens.existingSecret=t --set mongodb.auth.existingSecret=m
echo "ok: monolith, split, external MongoDB, GitOps mode"

step "helm template and assertions"
"$ROOT/.tools/venv/bin/python" "$CHART/ci/check_chart.py" --helm "$(command -v helm)" --chart "$CHART" --out "$OUT" \
    --compose "$ROOT/compose.yaml"

step "kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION)"
validation=$(kubernetes-validate --strict --quiet -k "$KUBERNETES_VERSION" "$OUT"/native/*.yaml 2>&1) ||
    die "kubernetes-validate:"$'\n'"$validation"
[[ -z $validation ]] || die "kubernetes-validate:"$'\n'"$validation"
echo "ok: $(cat "$OUT"/native/*.yaml | grep -c '^kind:') manifests in $(find "$OUT/native" -name '*.yaml' | wc -l) renders"

step "Routes against the Route CRD schema"
schema=$(route_schema)
routes=("$OUT"/routes/*.json)
[[ -e ${routes[0]} ]] || die "no Route was rendered"
check-jsonschema --schemafile "$schema" "${routes[@]}" >/dev/null ||
    check-jsonschema --schemafile "$schema" "${routes[@]}"
echo "ok: ${#routes[@]} Routes valid against ${schema#"$ROOT"/}"

step "checkov on every render"
# --skip-download: no call home; the checks are in the package. Files, not --directory: checkov
# skips folders under a hidden one (.cache).
renders=()
for render in "$OUT"/all/*.yaml; do renders+=(--file "$render"); done
checkov --quiet --compact --skip-download --framework kubernetes "${renders[@]}" --output cli >"$OUT/checkov.txt" 2>&1 || { cat "$OUT/checkov.txt"; die "checkov found failures"; }
summary=$(grep -m1 -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$OUT/checkov.txt") ||
    die "checkov printed no summary: $(cat "$OUT/checkov.txt")"
[[ $summary == *"Failed checks: 0,"* ]] || die "checkov: $summary"
echo "ok: $summary (skips annotated in the templates)"

step "the chart README's parameter table"
readme=$OUT/README.md
cp "$CHART/README.md" "$readme"
readme-generator --values "$CHART/values.yaml" --readme "$readme" >"$OUT/readme-generator.log" 2>&1 ||
    die "readme-generator: $(cat "$OUT/readme-generator.log")"
diff -u "$CHART/README.md" "$readme" >&2 ||
    die "helm/ecommerce-saga/README.md is stale: run .tools/bin/readme-generator -v $CHART/values.yaml -r $CHART/README.md"
echo "ok: README.md matches values.yaml"

step "compose.yaml against the compose-spec schema"
check-jsonschema --builtin-schema vendor.compose-spec "$ROOT/compose.yaml" >/dev/null ||
    check-jsonschema --builtin-schema vendor.compose-spec "$ROOT/compose.yaml"
cmp -s "$ROOT/.containerignore" "$ROOT/.dockerignore" ||
    die ".dockerignore (docker) differs from .containerignore (podman/buildah): keep them identical"
echo "ok: compose.yaml; .dockerignore = .containerignore"

printf '\nhelm-check: PASS in %ss\n' "$((SECONDS - STARTED))"
