#!/usr/bin/env bash
# Builds the ecommerce-saga image from the Containerfile with buildah (or podman build).
#
# Usage: ./build-podman.sh [options]
#   -t, --tag IMAGE        image name (default localhost/ecommerce-saga:<version>, also tagged :latest)
#   --base IMAGE           builder base, BASE_IMAGE (default: the Containerfile's UBI 9 Python 3.11)
#   --runtime-image IMAGE  runtime base, RUNTIME_IMAGE (default: the builder base)
#   --wheels               offline build: download wheels for the base image's Python into wheels/
#                          first (pip download on this machine); the build then reads only wheels/
#   -h, --help             this text
# Environment: BUILD_ISOLATION (default chroot: builds need no runtime, e.g. in a container or CI);
#   PODMAN_RUN_ARGS: options of the one `podman run` that --wheels makes (default: runc if
#   installed, and explicit ulimits, which rootful runc needs on some hosts).
#
# The image is built in Docker format so that its HEALTHCHECK is kept (OCI images drop it).
# wheels/ is used whenever it holds wheels: delete it to build from the package index.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WHEELS=$ROOT/wheels
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -1)
DEFAULT_TAG=localhost/ecommerce-saga:$VERSION
TAG=$DEFAULT_TAG
BASE=""
RUNTIME=""
DOWNLOAD_WHEELS=false
ISOLATION=${BUILD_ISOLATION:-chroot}
if [[ -n ${PODMAN_RUN_ARGS:-} ]]; then
    read -r -a RUN_FLAGS <<<"$PODMAN_RUN_ARGS"
else
    RUN_FLAGS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    if command -v runc >/dev/null; then RUN_FLAGS+=(--runtime runc); fi
fi

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; }
die() { printf 'build-podman: error: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case $1 in
        -t | --tag) TAG=${2:?--tag needs a value}; shift ;;
        --base) BASE=${2:?--base needs a value}; shift ;;
        --runtime-image) RUNTIME=${2:?--runtime-image needs a value}; shift ;;
        --wheels) DOWNLOAD_WHEELS=true ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

command -v podman >/dev/null || die "podman is missing (Debian: apt-get install podman buildah runc)"

base_image() {
    if [[ -n $BASE ]]; then
        echo "$BASE"
    else
        sed -n 's/^ARG BASE_IMAGE=//p' "$ROOT/Containerfile"
    fi
}

# A wheelhouse matching the base image's Python and platform, whatever this machine runs: the
# base image is asked for its Python version, glibc and architecture; pip downloads binary wheels
# of the project's runtime requirements (from pyproject.toml) and of its build backend.
download_wheels() {
    local base pyver glibc arch key minor python platforms=()
    base=$(base_image)
    read -r pyver glibc arch < <(podman run --rm "${RUN_FLAGS[@]}" --network none --entrypoint python3 "$base" -c \
        'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1], platform.machine())')
    [[ -n $pyver && -n $glibc && -n $arch ]] || die "could not read the Python version of $base"
    key="python $pyver glibc $glibc $arch; $(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
    if [[ -f $WHEELS/.stamp && $(cat "$WHEELS/.stamp") == "$key" ]]; then
        echo "wheels/ is up to date ($key)"
        return
    fi
    for ((minor = ${glibc#*.}; minor >= 17; minor--)); do
        platforms+=(--platform "manylinux_2_${minor}_$arch")
    done
    platforms+=(--platform "manylinux2014_$arch" --platform "linux_$arch")
    "$ROOT/scripts/tools.sh" python
    python=$ROOT/.tools/venv/bin/python
    local requirements
    mapfile -t requirements < <("$python" -c '
import sys, tomllib
with open(sys.argv[1], "rb") as file:
    project = tomllib.load(file)
optional = project["project"]["optional-dependencies"]["otel"]  # the image can export traces
print("\n".join(project["project"]["dependencies"] + optional + project["build-system"]["requires"]))' \
        "$ROOT/pyproject.toml")
    rm -rf "$WHEELS"
    mkdir -p "$WHEELS"
    echo "pip download: wheels for Python $pyver ($arch, glibc $glibc) into wheels/"
    "$python" -m pip download --quiet --disable-pip-version-check --dest "$WHEELS" \
        --only-binary=:all: --python-version "$pyver" --implementation cp "${platforms[@]}" \
        "${requirements[@]}" wheel
    printf '%s' "$key" >"$WHEELS/.stamp"
}

if [[ $DOWNLOAD_WHEELS == true ]]; then
    download_wheels
elif compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "note: wheels/ holds wheels ($(cat "$WHEELS/.stamp" 2>/dev/null || echo 'origin unknown')): an offline build from them"
fi

build_args=(
    --build-arg "VERSION=$VERSION"
    --build-arg "REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
)
[[ -z $BASE ]] || build_args+=(--build-arg "BASE_IMAGE=$BASE")
[[ -z $RUNTIME ]] || build_args+=(--build-arg "RUNTIME_IMAGE=$RUNTIME")

echo "building $TAG from $(base_image)"
if command -v buildah >/dev/null; then
    buildah bud --isolation "$ISOLATION" --format docker --layers "${build_args[@]}" \
        --tag "$TAG" --file "$ROOT/Containerfile" "$ROOT"
else
    podman build --isolation "$ISOLATION" --format docker --layers "${build_args[@]}" \
        --tag "$TAG" --file "$ROOT/Containerfile" "$ROOT"
fi
if [[ $TAG == "$DEFAULT_TAG" ]]; then
    podman tag "$TAG" "${TAG%:*}:latest"
fi
echo "built $TAG"
