#!/bin/sh
# Builds the peer wire-format fuzz target with clang + ASan/UBSan in its own build dir and runs it.
#   fuzz/peer/run.sh [SECONDS] [BUILD_DIR]     (default 60 s, build-fuzz)
# The seed corpus is read-only input; new inputs go to a temporary directory. Exit status is
# libFuzzer's: non-zero on a crash, a sanitizer report, a leak or a failed property (abort).
set -eu
secs=${1:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$src/build-fuzz}
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DCN_SANITIZE=ON >/dev/null
cmake --build "$build" --target fuzz_peer >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/fuzz_peer" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$work" "$src/fuzz/peer/corpus"
