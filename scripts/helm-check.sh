#!/usr/bin/env bash
# Checks the Helm chart helm/ecommerce-saga without a cluster:
#
#   1. helm lint --strict, monolith and split;
#   2. helm template for monolith/split x in-chart/external MongoDB x with and without the
#      OpenShift APIs (--api-versions route.openshift.io/v1, monitoring.coreos.com/v1), plus
#      special cases, with assertions on the result (helm/ecommerce-saga/ci/check_chart.py):
#      five Deployments with the right names, SHOP_MODULES and URLs in split mode, Secrets kept
#      and tokens not regenerated when given, securityContext, probes, Routes only with the API;
#   3. kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION schemas) on every manifest;
#   4. check-jsonschema with the Route CRD schema on every Route;
#   5. compose.yaml: the compose-spec schema (check-jsonschema's vendored copy), and the same
#      split wiring as the chart (names, ports, SHOP_MODULES, URLs).
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

"$ROOT/scripts/tools.sh" helm validators
export PATH=$ROOT/.tools/bin:$PATH

step "helm lint --strict"
helm lint --strict --quiet "$CHART" >/dev/null || helm lint --strict "$CHART"
helm lint --strict --quiet "$CHART" --set topology=split >/dev/null || helm lint --strict "$CHART" --set topology=split
helm lint --strict --quiet "$CHART" --set mongodb.enabled=false --set externalMongodb.url=mongodb://db:27017 \
    >/dev/null || die "helm lint with an external MongoDB"
echo "ok: monolith, split, external MongoDB"

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

step "compose.yaml against the compose-spec schema"
check-jsonschema --builtin-schema vendor.compose-spec "$ROOT/compose.yaml" >/dev/null ||
    check-jsonschema --builtin-schema vendor.compose-spec "$ROOT/compose.yaml"
echo "ok: compose.yaml"

printf '\nhelm-check: PASS in %ss\n' "$((SECONDS - STARTED))"
