#!/usr/bin/env bash
# Installs every build, run and test dependency of mjq from Debian 12
# packages. Idempotent: when everything is already installed it does no
# apt work at all and returns at once. Run as root, or as a user with sudo.
#
# Output of apt goes to a log file that is shown only if something fails.
set -euo pipefail

packages=(
    build-essential cmake pkg-config   # toolchain
    libhiredis-dev libcurl4-openssl-dev libjansson-dev libconfig-dev
    libevent-dev libcmocka-dev         # libraries
    redis-server redis-tools           # tests start private redis-servers
    curl jq procps iproute2            # e2e harness: curl, jq, pgrep, ss
    prometheus                         # promtool checks /metrics (e2e)
    valgrind clang-format              # memory and style checks
    yamllint yq                        # deployment checks (tests/deploy)
)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "setup.sh: missing packages: ${missing[*]}" >&2
        echo "setup.sh: not root and no sudo: install them as root" >&2
        exit 1
    fi
    sudo=(sudo)
fi

log=$(mktemp "${TMPDIR:-/tmp}/mjq-setup.XXXXXX.log")
echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -qq -y \
        --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    echo "setup.sh: apt-get failed; its output follows ($log):" >&2
    tail -n 50 "$log" >&2
    echo "setup.sh: FAILED to install: ${missing[*]}" >&2
    exit 1
fi
rm -f "$log"
echo "setup.sh: done" >&2
