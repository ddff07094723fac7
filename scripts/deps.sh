#!/usr/bin/env bash
# Installs what cairn needs to build and test from Debian 12's packages.
# Idempotent: apt-get runs only when a package is missing.
set -euo pipefail

pkgs=(
    build-essential cmake pkg-config clang
    libuv1-dev libhttp-parser-dev libyaml-dev libjansson-dev libsystemd-dev libssl-dev zlib1g-dev
    libcmocka-dev libclang-rt-14-dev
    python3 python3-pytest python3-pytest-xdist python3-etcd python3-requests
    etcd-client curl dnsmasq-base util-linux
)
# Optional: the real etcd for side-by-side benches and compatibility checks.
if [ "${CAIRN_WITH_ETCD:-1}" = 1 ]; then
    pkgs+=(etcd-server)
fi
# Optional: bench/ tools. wrk is a second, independent load generator (bench.py --loadgens
# cn,wrk); stress-ng keeps a core busy for bench.py --busy N (a Python loop stands in without it).
if [ "${CAIRN_WITH_BENCH_TOOLS:-1}" = 1 ]; then
    pkgs+=(wrk stress-ng)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's etcd-server package starts a system etcd on 2379; cairn's tests and `make run`
# need that port, so keep the packaged service stopped (only ever one we just installed).
if printf '%s\n' "${missing[@]}" | grep -qx etcd-server && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
fi
