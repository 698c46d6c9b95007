#!/usr/bin/env bash
# Writes the secrets compose.yaml reads, once, into .secrets/ (gitignored; existing files are kept):
#   mongodb-root-password, mongodb-password   MongoDB's root and the app user's passwords
#   mongodb-url                               the app user's connection string (readWrite on the shop's database only)
#   service-token, admin-token                the bearer tokens
#
# Usage: scripts/compose-secrets.sh    then: docker compose --profile split up -d  (or podman-compose)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECRETS=$ROOT/.secrets
DATABASE=ecommerce_saga

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"
    exit 0
fi

random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }

# keep NAME VALUE: writes .secrets/NAME unless it exists (a MongoDB volume keeps its first passwords).
keep() {
    [[ -s $SECRETS/$1 ]] && return
    (umask 077 && printf '%s\n' "$2" >"$SECRETS/$1")
    echo "wrote .secrets/$1"
}

mkdir -p "$SECRETS"
chmod 700 "$SECRETS"
keep mongodb-root-password "$(random)"
keep mongodb-password "$(random)"
keep mongodb-url "mongodb://shop:$(cat "$SECRETS/mongodb-password")@mongodb:27017/$DATABASE?authSource=$DATABASE"
keep service-token "$(random)"
keep admin-token "$(random)"
# The containers read the files under their own UID: group and others may read inside the 0700 folder.
chmod 644 "$SECRETS"/*
