#!/bin/sh
# The cloud-config fuzz target alone (docs/cloudinit.md): fuzz/run.sh with one name.
#   fuzz/cloudinit/run.sh [SECONDS] [BUILD_DIR]     (default 60 s, build-fuzz)
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
exec "$src/fuzz/run.sh" "${1:-60}" "${2:-$src/build-fuzz}" cloudinit
