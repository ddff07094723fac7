#!/usr/bin/env bash
# Installs what cairn needs to build and test from Debian 12's packages.
# Idempotent: apt-get runs only when a package is missing.
set -euo pipefail

pkgs=(
    build-essential cmake pkg-config clang
    libuv1-dev libhttp-parser-dev libyaml-dev libjansson-dev libsystemd-dev libssl-dev zlib1g-dev
    libcmocka-dev libclang-rt-14-dev
    libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
    python3 python3-pytest python3-pytest-xdist python3-etcd python3-etcd3 python3-requests
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

# etcd 3.4's .proto files (the v3 API's messages, compiled by protoc-c at build time) come from
# Debian's golang-etcd-server-dev. Installing it pulls in ~140 Go source packages, so unless it is
# installed already, its .deb is downloaded and unpacked into .deps/ (src/etcdpb looks in both).
here="$(cd "$(dirname "$0")/.." && pwd)"
etcd_src=/usr/share/gocode/src/go.etcd.io/etcd
etcd_deps="$here/.deps/golang-etcd-server-dev"
need_protos=0
if [ ! -f "$etcd_src/etcdserver/etcdserverpb/rpc.proto" ] &&
    [ ! -f "$etcd_deps$etcd_src/etcdserver/etcdserverpb/rpc.proto" ]; then
    need_protos=1
fi

fetch_protos() {
    local tmp
    tmp="$(mktemp -d)"
    chmod 755 "$tmp" # apt's _apt user writes the download here
    if ! (cd "$tmp" && apt-get download -qq golang-etcd-server-dev >/dev/null 2>&1); then
        $SUDO apt-get update -qq
        (cd "$tmp" && apt-get download -qq golang-etcd-server-dev >/dev/null)
    fi
    rm -rf "$etcd_deps"
    mkdir -p "$etcd_deps"
    dpkg-deb -x "$tmp"/golang-etcd-server-dev_*.deb "$etcd_deps"
    rm -rf "$tmp"
}

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    if [ $need_protos = 1 ]; then
        echo "deps: fetching etcd's .proto files (golang-etcd-server-dev) into .deps/" >&2
        fetch_protos
    fi
    exit 0
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's etcd-server package starts a system etcd on 2379; cairn's tests and `make run`
# need that port, so keep the packaged service stopped (only ever one we just installed).
if printf '%s\n' "${missing[@]}" | grep -qx etcd-server && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
fi
if [ $need_protos = 1 ]; then
    echo "deps: fetching etcd's .proto files (golang-etcd-server-dev) into .deps/" >&2
    fetch_protos
fi
