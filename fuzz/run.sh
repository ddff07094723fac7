#!/bin/sh
# Builds every libFuzzer target in one clang + ASan/UBSan build dir and runs each in turn.
#   fuzz/run.sh [SECONDS_PER_TARGET] [BUILD_DIR] [NAME...]    (default 60 s, build-fuzz, all)
# A target is a directory fuzz/<name>/ with a CMakeLists.txt: its executable is fuzz_<name>, its
# seeds are fuzz/<name>/corpus (read-only: new inputs go to a temporary directory), and optional
# extra libFuzzer flags are in fuzz/<name>/flags (one line) and a dictionary in fuzz/<name>/dict.
# The build's log and each target's go to BUILD_DIR/fuzz-logs/ (build.log, <name>.log). The run
# stops at the first target that fails (a crash, a sanitizer report, a leak, a timeout); its input
# is kept as BUILD_DIR/fuzz-artifacts/<name>-crash-<sha1> (or -leak-, -timeout-), replayed with
# BUILD_DIR/fuzz_<name> <file>, and the exit status is non-zero.
set -eu
secs=${1:-60}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$src/build-fuzz}
if [ $# -gt 2 ]; then
    shift 2
    names="$*"
else
    names=""
    for f in "$src"/fuzz/*/CMakeLists.txt; do
        [ -e "$f" ] || continue
        d=${f%/CMakeLists.txt}
        names="$names ${d##*/}"
    done
fi
[ -n "$names" ] || { echo "fuzz: no targets under $src/fuzz" >&2; exit 1; }

targets=""
for n in $names; do targets="$targets fuzz_$n"; done
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DCN_SANITIZE=ON >/dev/null
mkdir -p "$build/fuzz-logs"
# shellcheck disable=SC2086 # one word per target
if ! cmake --build "$build" -j "${FUZZ_JOBS:-2}" --target $targets >"$build/fuzz-logs/build.log" 2>&1
then
    tail -n 40 "$build/fuzz-logs/build.log" >&2
    echo "fuzz: build failed (log: $build/fuzz-logs/build.log)" >&2
    exit 1
fi
build=$(cd "$build" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
for n in $names; do
    dir="$src/fuzz/$n"
    log="$build/fuzz-logs/$n.log"
    mkdir "$work/$n"
    set -- -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$n-"
    if [ -f "$dir/flags" ]; then
        # shellcheck disable=SC2046 # the file holds flags separated by spaces
        set -- "$@" $(cat "$dir/flags")
    fi
    [ -f "$dir/dict" ] && set -- "$@" -dict="$dir/dict"
    set -- "$@" "$work/$n"
    [ -d "$dir/corpus" ] && set -- "$@" "$dir/corpus"
    echo "fuzz: $n for ${secs}s (log: $log)"
    if ! "$build/fuzz_$n" "$@" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz: fuzz_$n FAILED; inputs kept in $build/fuzz-artifacts/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\).*/\1/p' "$log")
    echo "fuzz: $n ok: ${runs:-?} runs, cov ${cov:-?}, $(ls "$work/$n" | wc -l) new inputs"
done
