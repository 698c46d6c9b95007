#!/usr/bin/env bash
# Builds the image from the Containerfile and runs it the way OpenShift does, with no registry:
#
#   1. a Debian bookworm rootfs with python3 (debootstrap; cached in .cache/image/), imported
#      into podman as localhost/ecommerce-saga-base:bookworm;
#   2. ./build-podman.sh --wheels: a wheelhouse for that image's Python (wheels/, `pip download`
#      on the host), then buildah bud --isolation chroot --build-arg BASE_IMAGE=<that base>
#      (offline: the Containerfile installs from wheels/ with --no-index, then imports the app,
#      so an undeclared runtime dependency fails the build);
#   3. podman run --runtime runc as an arbitrary UID in group 0 (--user 123456:0), read-only root
#      filesystem, a tmpfs for the data folder, SHOP_PORT on a free port, embedded database;
#   4. asserts: /readyz answers 200, /healthz answers, the process runs as that UID in group 0,
#      the root filesystem is read-only, the image has no pip or compiler, its HEALTHCHECK
#      passes; /metrics answers 200 on the management port (SHOP_METRICS_PORT, where the chart's
#      scrape annotations point) and is not served on the API port.
#
# Usage: scripts/image-test.sh [--keep] [--rebuild-base]
#   --keep          leave the container running (its name and port are printed)
#   --rebuild-base  debootstrap the base rootfs again instead of using the cache
# Environment: IMAGE (default localhost/ecommerce-saga:image-test), DEBIAN_MIRROR.
# Needs root (podman as root, debootstrap); installs podman/buildah/runc/debootstrap if missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/.cache/image
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
BASE_IMAGE=localhost/ecommerce-saga-base:$SUITE
BASE_TAR=$CACHE/$SUITE-python-rootfs.tar
IMAGE=${IMAGE:-localhost/ecommerce-saga:image-test}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CONTAINER=ecommerce-saga-image-test-$$
RUN_AS=123456:0
KEEP=false
REBUILD_BASE=false
STARTED=$SECONDS

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; }
step() { printf '\n==> %s (%ss)\n' "$*" "$((SECONDS - STARTED))"; }
die() { printf 'image-test: FAIL: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case $1 in
        --keep) KEEP=true ;;
        --rebuild-base) REBUILD_BASE=true ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done

[[ $(id -u) -eq 0 ]] || die "run as root (podman as root and debootstrap need it)"

PODMAN=(podman)
RUNTIME_FLAGS=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
RUN_FLAGS=("${RUNTIME_FLAGS[@]}" --network host)
# No systemd timer for the image's HEALTHCHECK (none here); the test runs it by hand instead.
CHECK_FLAGS=(--health-interval disable)

ROOTFS_TMP=

cleanup() {
    local status=$?
    [[ -z $ROOTFS_TMP ]] || rm -rf "$ROOTFS_TMP" "$BASE_TAR.tmp"
    if [[ $KEEP == false ]]; then
        "${PODMAN[@]}" rm --force --time 5 "$CONTAINER" >/dev/null 2>&1 || true
    fi
    if ((status != 0)); then
        printf 'image-test: failed after %ss\n' "$((SECONDS - STARTED))" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_base() {
    # Builds the base rootfs tarball: python3 and venv, no apt caches, no docs.
    local rootfs
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    ROOTFS_TMP=$rootfs
    echo "debootstrap $SUITE ($BASE_PACKAGES) from $DEBIAN_MIRROR; takes about 2 minutes once"
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$DEBIAN_MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1; then
        tail -20 "$CACHE/debootstrap.log" >&2
        die "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar --numeric-owner -C "$rootfs" -cf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf "$rootfs"
    ROOTFS_TMP=
}

ensure_base_image() {
    if [[ $REBUILD_BASE == true ]]; then
        rm -f "$BASE_TAR"
        "${PODMAN[@]}" rmi --force "$BASE_IMAGE" >/dev/null 2>&1 || true
    fi
    if "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
        echo "reusing $BASE_IMAGE"
        return
    fi
    [[ -f $BASE_TAR ]] || build_base
    "${PODMAN[@]}" import --quiet \
        --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' \
        "$BASE_TAR" "$BASE_IMAGE" >/dev/null
    echo "imported $BASE_TAR as $BASE_IMAGE"
}

# Offline: build-podman.sh downloads wheels for the base image's Python into wheels/ (cached by a
# stamp) and builds with buildah bud --isolation chroot.
build_image() {
    local log=$CACHE/build.log
    if ! PODMAN_RUN_ARGS="${RUNTIME_FLAGS[*]}" "$ROOT/build-podman.sh" --base "$BASE_IMAGE" --wheels \
        --tag "$IMAGE" >"$log" 2>&1; then
        tail -30 "$log" >&2
        die "the image build failed (log: $log)"
    fi
    grep -E '^(wheels/|pip download|building)' "$log" || true
    echo "built $IMAGE ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec)B)"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

http_status() {  # http_status URL -> the status code, or 000 when nothing answers
    python3 - "$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print("000")
EOF
}

run_and_check() {
    local port metrics_port status deadline pid uid
    port=$(free_port)
    metrics_port=$(free_port)
    "${PODMAN[@]}" run --detach --name "$CONTAINER" "${RUN_FLAGS[@]}" "${CHECK_FLAGS[@]}" \
        --user "$RUN_AS" --read-only --tmpfs /var/lib/ecommerce-saga:rw,mode=0770 \
        -e SHOP_PORT="$port" -e SHOP_METRICS_PORT="$metrics_port" -e SHOP_LOG_FORMAT=text "$IMAGE" \
        2> >(grep -v 'systemd connection' >&2) >/dev/null  # no systemd here for healthcheck timers
    echo "started $CONTAINER as $RUN_AS on port $port"

    deadline=$((SECONDS + 90))
    status=000
    while ((SECONDS < deadline)); do
        status=$(http_status "http://127.0.0.1:$port/readyz")
        [[ $status == 200 ]] && break
        if [[ $("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$CONTAINER") != true ]]; then
            "${PODMAN[@]}" logs "$CONTAINER" 2>&1 | tail -30 >&2
            die "the container exited before it was ready"
        fi
        sleep 0.5
    done
    if [[ $status != 200 ]]; then
        "${PODMAN[@]}" logs "$CONTAINER" 2>&1 | tail -30 >&2
        die "/readyz answered $status, not 200, within 90s"
    fi
    echo "ok: /readyz 200 (embedded database inside the container)"

    [[ $(http_status "http://127.0.0.1:$port/healthz") == 200 ]] || die "/healthz did not answer 200"
    echo "ok: /healthz 200"

    status=$(http_status "http://127.0.0.1:$metrics_port/metrics")
    [[ $status == 200 ]] || die "/metrics answered $status on the management port $metrics_port, not 200"
    [[ $(http_status "http://127.0.0.1:$port/metrics") == 404 ]] || die "/metrics is served on the API port"
    echo "ok: /metrics 200 on the management port (where the pods' prometheus.io annotations point), not on the API port"

    pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$CONTAINER")
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
    [[ $uid == "${RUN_AS%:*}" ]] || die "the server runs as UID $uid, expected ${RUN_AS%:*}"
    [[ $(awk '/^Gid:/ {print $2}' "/proc/$pid/status") == 0 ]] || die "the server is not in group 0"
    echo "ok: the server runs as UID $uid, group 0 (not root)"

    if "${PODMAN[@]}" exec "$CONTAINER" sh -c 'touch /opt/ecommerce-saga/probe' 2>/dev/null; then
        die "the root filesystem is writable"
    fi
    echo "ok: the root filesystem is read-only; the data folder is a tmpfs"

    if "${PODMAN[@]}" exec "$CONTAINER" sh -c 'command -v pip || command -v gcc || command -v cc'; then
        die "the runtime image carries pip or a compiler"
    fi
    echo "ok: no pip, no compiler in the runtime image"

    "${PODMAN[@]}" healthcheck run "$CONTAINER" >/dev/null || die "the image's HEALTHCHECK failed"
    echo "ok: the image's HEALTHCHECK passes"

    if [[ $KEEP == true ]]; then
        echo "kept: $CONTAINER on http://127.0.0.1:$port (podman rm -f $CONTAINER)"
    fi
}

"$ROOT/scripts/tools.sh" containers
mkdir -p "$CACHE"
step "base image"
ensure_base_image
step "wheels and build"
build_image
step "run as an arbitrary UID, read-only"
run_and_check
printf '\nimage-test: PASS in %ss\n' "$((SECONDS - STARTED))"
