#!/usr/bin/env bash
# Pushes the local image to the OpenShift internal registry (e.g. OpenShift Local, `crc`).
#
# Usage: ./push-to-openshift.sh [-n NAMESPACE] [--image IMAGE] [--tag TAG] [--tls-verify=false]
#   -n, --namespace NS   project to push into (default: the current `oc project`); created if missing
#   --image IMAGE        local image (default localhost/ecommerce-saga:<version>; ./build-podman.sh)
#   --tag TAG            tag in the registry (default: the local image's tag)
#   --tls-verify=false   skip TLS verification of the registry route (crc's self-signed certificate)
#
# Needs `oc login` first. Logs podman in to the registry's external route with `oc whoami -t` (the
# token goes through stdin), tags and pushes <route>/<namespace>/ecommerce-saga:<tag>, which creates
# the ImageStream. Prints the in-cluster image name and the digest the registry gave it: the digest,
# not the tag (which every push reuses), is what ./deploy-openshift.sh deploys, so that a rebuilt
# image always rolls out.
# The registry's external route must exist; on crc it does, elsewhere an admin enables it:
#   oc patch configs.imageregistry.operator.openshift.io/cluster --type merge -p '{"spec":{"defaultRoute":true}}'
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -1)
IMAGE=localhost/ecommerce-saga:$VERSION
NAMESPACE=""
TAG=""
TLS_VERIFY=true
INTERNAL_REGISTRY=image-registry.openshift-image-registry.svc:5000

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; }
die() { printf 'push-to-openshift: error: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case $1 in
        -n | --namespace) NAMESPACE=${2:?--namespace needs a value}; shift ;;
        --image) IMAGE=${2:?--image needs a value}; shift ;;
        --tag) TAG=${2:?--tag needs a value}; shift ;;
        --tls-verify=false) TLS_VERIFY=false ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

command -v oc >/dev/null || die "oc is missing (crc: eval \$(crc oc-env))"
command -v podman >/dev/null || die "podman is missing"
oc whoami >/dev/null 2>&1 || die "not logged in: oc login -u developer https://api.crc.testing:6443"
podman image exists "$IMAGE" || die "no local image $IMAGE: build it with ./build-podman.sh"

NAMESPACE=${NAMESPACE:-$(oc project -q)}
TAG=${TAG:-${IMAGE##*:}}
if ! oc get project "$NAMESPACE" >/dev/null 2>&1; then
    oc new-project "$NAMESPACE" >/dev/null
    echo "created project $NAMESPACE"
fi

REGISTRY=$(oc get route default-route -n openshift-image-registry --template '{{ .spec.host }}' 2>/dev/null) ||
    die "the internal registry has no external route (see --help for the oc patch that adds it)"
TARGET=$REGISTRY/$NAMESPACE/ecommerce-saga:$TAG

oc whoami -t | podman login --tls-verify="$TLS_VERIFY" --username "$(oc whoami)" --password-stdin "$REGISTRY" \
    >/dev/null || die "podman login $REGISTRY failed (crc's certificate: add --tls-verify=false)"
podman tag "$IMAGE" "$TARGET"
digest_file=$(mktemp)
trap 'rm -f "$digest_file"' EXIT
podman push --tls-verify="$TLS_VERIFY" --digestfile "$digest_file" "$TARGET"
DIGEST=$(cat "$digest_file")
[[ $DIGEST == sha256:* ]] || die "the registry returned no digest for $TARGET"

echo "pushed $TARGET ($DIGEST)"
echo "in-cluster image: $INTERNAL_REGISTRY/$NAMESPACE/ecommerce-saga@$DIGEST"
echo "deploy it with:   ./deploy-openshift.sh -n $NAMESPACE --tag $TAG   (reads the digest back from the ImageStreamTag)"
