#!/usr/bin/env bash
# Runs the ecommerce-saga image locally with podman, read-only, as the image's non-root user.
#
# Usage: ./run-local.sh [--split] [--image IMAGE] [--host-network] [--stop]
#   (default)       the monolith on http://127.0.0.1:${PORT:-8000}, embedded database kept in the
#                   volume ecommerce-saga-data
#   --split         five containers, as the Helm chart's split topology: order 8000, inventory 8001,
#                   payment 8002, shipping 8003, notification 8004, in one pod (they reach each
#                   other on localhost). They share the MongoDB at $SHOP_MONGODB_URL or, when it is
#                   unset, a MongoDB-wire-compatible database container (nx-27017, from the same
#                   image; data in the volume ecommerce-saga-db-data)
#   --image IMAGE   default localhost/ecommerce-saga:latest (./build-podman.sh builds it)
#   --host-network  no pod and no published ports: the containers use the host's network
#   --stop          remove the containers and the pod (volumes stay: podman volume rm ...)
# Environment: SHOP_SERVICE_TOKEN, SHOP_ADMIN_TOKEN (generated and printed when unset in split
#   mode; the monolith generates and logs its own), SHOP_MONGODB_URL, PORT (monolith),
#   PODMAN_RUN_ARGS (extra `podman run` options; default: runc if installed, explicit ulimits).
set -euo pipefail

IMAGE=localhost/ecommerce-saga:latest
SPLIT=false
HOST_NETWORK=false
STOP=false
POD=ecommerce-saga
MODULES=(order inventory payment shipping notification)
declare -A PORTS=([order]=8000 [inventory]=8001 [payment]=8002 [shipping]=8003 [notification]=8004)
DB_PORT=27017

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; }
die() { printf 'run-local: error: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case $1 in
        --split) SPLIT=true ;;
        --image) IMAGE=${2:?--image needs a value}; shift ;;
        --host-network) HOST_NETWORK=true ;;
        --stop) STOP=true ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

command -v podman >/dev/null || die "podman is missing (Debian: apt-get install podman runc)"
if [[ -n ${PODMAN_RUN_ARGS:-} ]]; then
    read -r -a RUN_FLAGS <<<"$PODMAN_RUN_ARGS"
else
    RUN_FLAGS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    if command -v runc >/dev/null; then RUN_FLAGS+=(--runtime runc); fi
fi
# No systemd timers for the image's HEALTHCHECK on hosts without systemd (podman healthcheck run works).
[[ -d /run/systemd/system ]] || RUN_FLAGS+=(--health-interval disable)
RUN_FLAGS+=(--detach --read-only --replace)

containers() {
    echo ecommerce-saga ecommerce-saga-db "${MODULES[@]/%/-svc}"
}

stop_all() {
    local name
    for name in $(containers); do
        podman rm --force --time 10 "$name" >/dev/null 2>&1 || true
    done
    podman pod rm --force "$POD" >/dev/null 2>&1 || true
}

wait_ready() {  # wait_ready NAME PORT
    local deadline=$((SECONDS + 90))
    until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$2/readyz" 2>/dev/null; do
        if ((SECONDS > deadline)) || [[ $(podman inspect --format '{{.State.Running}}' "$1") != true ]]; then
            podman logs --tail 30 "$1" >&2 || true
            die "$1 is not ready on port $2"
        fi
        sleep 0.5
    done
    echo "ready: $1 on http://127.0.0.1:$2"
}

random_token() {
    python3 -c 'import secrets; print(secrets.token_urlsafe(32))'
}

run_monolith() {
    local port=${PORT:-8000}
    local network=(-p "127.0.0.1:$port:8000")
    if [[ $HOST_NETWORK == true ]]; then network=(--network host -e "SHOP_PORT=$port"); fi
    local env=(-e SHOP_LOG_FORMAT=text)
    [[ -z ${SHOP_SERVICE_TOKEN:-} ]] || env+=(-e SHOP_SERVICE_TOKEN)
    [[ -z ${SHOP_ADMIN_TOKEN:-} ]] || env+=(-e SHOP_ADMIN_TOKEN)
    [[ -z ${SHOP_MONGODB_URL:-} ]] || env+=(-e SHOP_MONGODB_URL)
    podman run "${RUN_FLAGS[@]}" --name ecommerce-saga "${network[@]}" "${env[@]}" \
        -v ecommerce-saga-data:/var/lib/ecommerce-saga "$IMAGE" >/dev/null
    wait_ready ecommerce-saga "$port"
    echo "API docs: http://127.0.0.1:$port/docs   tokens: podman logs ecommerce-saga | grep -i token"
}

run_split() {
    local placement=() module other env
    : "${SHOP_SERVICE_TOKEN:=$(random_token)}"
    : "${SHOP_ADMIN_TOKEN:=$(random_token)}"
    export SHOP_SERVICE_TOKEN SHOP_ADMIN_TOKEN
    if [[ $HOST_NETWORK == true ]]; then
        placement=(--network host)
    else
        podman pod create --replace --name "$POD" -p 127.0.0.1:8000-8004:8000-8004 >/dev/null
        placement=(--pod "$POD")
    fi
    if [[ -z ${SHOP_MONGODB_URL:-} ]]; then
        # The app's embedded database server as its own container: one database for five services.
        podman run "${RUN_FLAGS[@]}" "${placement[@]}" --name ecommerce-saga-db \
            --no-healthcheck -v ecommerce-saga-db-data:/var/lib/ecommerce-saga --entrypoint nx-27017 "$IMAGE" \
            --host 127.0.0.1 --port "$DB_PORT" --data-dir /var/lib/ecommerce-saga \
            --log-file /var/lib/ecommerce-saga/nx-27017.log --pid-file /tmp/nx-27017.pid >/dev/null
        SHOP_MONGODB_URL="mongodb://127.0.0.1:$DB_PORT/?directConnection=true"
        echo "database: nx-27017 container ecommerce-saga-db on 127.0.0.1:$DB_PORT"
    fi
    export SHOP_MONGODB_URL
    for module in "${MODULES[@]}"; do
        env=(-e SHOP_SERVICE_TOKEN -e SHOP_ADMIN_TOKEN -e SHOP_MONGODB_URL -e SHOP_LOG_FORMAT=text
            -e "SHOP_MODULES=$module" -e "SHOP_PORT=${PORTS[$module]}" -e "SHOP_WORKER_ID=$module-svc")
        [[ $module != inventory ]] || env+=(-e "SHOP_DEMO_CATALOG=${SHOP_DEMO_CATALOG:-true}")
        for other in "${MODULES[@]}"; do
            [[ $other == "$module" ]] || env+=(-e "SHOP_${other^^}_URL=http://127.0.0.1:${PORTS[$other]}")
        done
        podman run "${RUN_FLAGS[@]}" "${placement[@]}" --name "$module-svc" "${env[@]}" \
            --tmpfs /var/lib/ecommerce-saga "$IMAGE" >/dev/null
    done
    for module in "${MODULES[@]}"; do
        wait_ready "$module-svc" "${PORTS[$module]}"
    done
    echo "public API: http://127.0.0.1:8000/docs (order service)"
    echo "SHOP_SERVICE_TOKEN=$SHOP_SERVICE_TOKEN"
    echo "SHOP_ADMIN_TOKEN=$SHOP_ADMIN_TOKEN"
}

stop_all
if [[ $STOP == true ]]; then
    echo "stopped"
    exit 0
fi
podman image exists "$IMAGE" || die "no image $IMAGE: build it with ./build-podman.sh"
if [[ $SPLIT == true ]]; then run_split; else run_monolith; fi
echo "stop with: $0 --stop"
