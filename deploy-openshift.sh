#!/usr/bin/env bash
# Installs or upgrades the Helm chart on OpenShift with the image that ./push-to-openshift.sh pushed.
#
# Usage: ./deploy-openshift.sh [-n NAMESPACE] [--split] [--tag TAG] [--release NAME]
#                              [--oidc-issuer URL --oidc-audience AUDIENCE]
#                              [--external-mongodb-secret NAME] [--demo] [--test] [-- HELM_ARGS...]
#   -n, --namespace NS    project (default: the current `oc project`)
#   --split               five services (order-svc ... notification-svc) instead of the monolith
#   --tag TAG             image tag in the internal registry (default: the chart's appVersion); the
#                         image is deployed by the digest that tag points at now, read back from the
#                         ImageStreamTag, so a rebuilt and re-pushed image always rolls out
#   --oidc-issuer URL, --oidc-audience AUDIENCE
#                         the identity provider (SHOP_OIDC_ISSUER, SHOP_OIDC_AUDIENCE)
#   --release NAME        Helm release name (default ecommerce-saga)
#   --external-mongodb-secret NAME
#                         use the MongoDB whose URL is in Secret NAME, key mongodb-url, instead of
#                         the in-chart MongoDB StatefulSet
#   --demo                load the demo catalog into an empty catalog; without --oidc-issuer, run the
#                         app's development issuer (demos only: anyone reaching it gets tokens)
#   --test                run `helm test` (an order placed through the public service) after the rollout
#   -- HELM_ARGS          passed to helm as is (they win), e.g. -- --set route.host=shop.apps-crc.testing
#
# Routes are on (edge TLS, HTTP redirected to HTTPS); the image comes from the internal registry,
# image-registry.openshift-image-registry.svc:5000/<namespace>/ecommerce-saga@<digest>. Secrets
# left unset are generated on the first install and kept (helm has cluster access here).
# Uses helm from PATH, or installs it into .tools/ (scripts/tools.sh helm).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHART=$ROOT/helm/ecommerce-saga
NAMESPACE=""
TOPOLOGY=monolith
TAG=""
RELEASE=ecommerce-saga
MONGODB_SECRET=""
OIDC_ISSUER=""
OIDC_AUDIENCE=""
DEMO=false
TEST=false
EXTRA=()

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; }
die() { printf 'deploy-openshift: error: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case $1 in
        -n | --namespace) NAMESPACE=${2:?--namespace needs a value}; shift ;;
        --split) TOPOLOGY="split" ;;
        --tag) TAG=${2:?--tag needs a value}; shift ;;
        --release) RELEASE=${2:?--release needs a value}; shift ;;
        --external-mongodb-secret) MONGODB_SECRET=${2:?--external-mongodb-secret needs a value}; shift ;;
        --oidc-issuer) OIDC_ISSUER=${2:?--oidc-issuer needs a value}; shift ;;
        --oidc-audience) OIDC_AUDIENCE=${2:?--oidc-audience needs a value}; shift ;;
        --demo) DEMO=true ;;
        --test) TEST=true ;;
        --) shift; EXTRA=("$@"); break ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

command -v oc >/dev/null || die "oc is missing (crc: eval \$(crc oc-env))"
oc whoami >/dev/null 2>&1 || die "not logged in: oc login -u developer https://api.crc.testing:6443"
if ! command -v helm >/dev/null; then
    "$ROOT/scripts/tools.sh" helm
    export PATH=$ROOT/.tools/bin:$PATH
fi

NAMESPACE=${NAMESPACE:-$(oc project -q)}
TAG=${TAG:-$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' "$CHART/Chart.yaml")}
[[ -n $OIDC_ISSUER || $DEMO == true ]] ||
    die "no identity provider: pass --oidc-issuer URL --oidc-audience AUDIENCE (or --demo for the development issuer)"
[[ -z $OIDC_ISSUER || -n $OIDC_AUDIENCE ]] || die "--oidc-issuer needs --oidc-audience"
DIGEST=$(oc get istag "ecommerce-saga:$TAG" -n "$NAMESPACE" -o jsonpath='{.image.metadata.name}' 2>/dev/null) ||
    die "no image ecommerce-saga:$TAG in $NAMESPACE: push it first (./push-to-openshift.sh -n $NAMESPACE)"
[[ $DIGEST == sha256:* ]] || die "ImageStreamTag ecommerce-saga:$TAG has no digest ($DIGEST)"
echo "deploying ecommerce-saga:$TAG as $DIGEST"

# One host for every Route, so the participants' path Routes and the /metrics block share it:
# <release>-<namespace>.<apps domain>, the domain read off the console's URL (any user may).
domain=$(oc whoami --show-console 2>/dev/null | sed -n 's|^https://console-openshift-console\.||p')
values=(
    --set "topology=$TOPOLOGY"
    --set "image.registry=image-registry.openshift-image-registry.svc:5000/$NAMESPACE"
    --set image.repository=ecommerce-saga
    --set "image.tag=$TAG"
    --set "image.digest=$DIGEST"
    --set route.enabled=true
    --set "config.demoCatalog=$DEMO"
)
if [[ -n $domain ]]; then
    values+=(--set "route.host=$RELEASE-$NAMESPACE.$domain")
fi
if [[ -n $OIDC_ISSUER ]]; then
    values+=(--set "oidc.issuer=$OIDC_ISSUER" --set "oidc.audience=$OIDC_AUDIENCE")
else
    values+=(--set oidc.developmentIssuer=true)
fi
if [[ -n $MONGODB_SECRET ]]; then
    values+=(--set mongodb.enabled=false --set "externalMongodb.existingSecret=$MONGODB_SECRET")
fi

helm upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" \
    "${values[@]}" "${EXTRA[@]}" --wait --timeout 10m
if [[ $TEST == true ]]; then
    helm test "$RELEASE" --namespace "$NAMESPACE" --logs
fi

host=$(oc get route -n "$NAMESPACE" -o jsonpath='{.items[0].spec.host}' \
    -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component in (monolith,order)" 2>/dev/null || true)
if [[ -n $host ]]; then
    echo "public API: https://$host/docs"
fi
