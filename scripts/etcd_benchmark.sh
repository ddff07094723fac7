#!/bin/sh
# Builds etcd 3.4.23's own v3 load generator, tools/benchmark ("benchmark put|range ..."), from
# Debian's packages only, for bench/bench_v3.py --loadgens cn,etcd. Offline once the packages are in.
#
#   scripts/etcd_benchmark.sh [OUT]     # OUT defaults to build/bench/etcd-benchmark
#
# Debian's golang-etcd-server-dev ships etcd's Go packages but not tools/, so the benchmark's
# sources come from Debian's *source* package etcd 3.4.23-4 (apt-get source, with a private
# deb-src list and lists dir: the system's apt configuration is not touched). It builds in GOPATH
# mode (GO111MODULE=off) against /usr/share/gocode, where the -dev packages put clientv3, grpc,
# cobra and cheggaaa/pb, so nothing else is fetched (GOPROXY=off). Needs root for apt-get install.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/build/bench/etcd-benchmark}
pkgs="golang-go golang-etcd-server-dev golang-gopkg-cheggaaa-pb.v1-dev golang-github-spf13-cobra-dev"

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "etcd_benchmark: installing$missing" >&2
    apt-get install -y --no-install-recommends $missing >&2
fi

work=$(mktemp -d /tmp/etcd-benchmark.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/parts" "$work/src"
cat > "$work/apt/parts/src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts="-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$work/apt/parts
          -o Dir::State::Lists=$work/apt/lists -o APT::Sandbox::User=root"
# shellcheck disable=SC2086
apt-get $apt_opts -qq update >&2
# shellcheck disable=SC2086
(cd "$work/src" && apt-get $apt_opts -qq source --download-only etcd=3.4.23-4 >&2)

gopath="$work/gopath"
dest="$gopath/src/go.etcd.io/etcd"
mkdir -p "$dest"
tar -xzf "$work"/src/etcd_3.4.23.orig.tar.gz -C "$work/src" etcd-3.4.23/tools/benchmark
mv "$work/src/etcd-3.4.23/tools" "$dest/"

mkdir -p "$(dirname "$out")"
(cd "$dest/tools/benchmark" &&
    GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOPROXY=off GOFLAGS= \
        GOCACHE="$work/gocache" go build -o "$out" .)
echo "etcd_benchmark: built $out" >&2
