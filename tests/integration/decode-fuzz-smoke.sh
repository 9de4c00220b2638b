#!/bin/sh
# A short, bounded libFuzzer run of the novamsg targets in every
# `make check`, whatever compiler built the tree: compiles them with clang
# (-fsanitize=fuzzer,address,undefined) straight from the sources and runs
# each for FUZZ_SMOKE_SECONDS (default 15) from the seed corpus and the
# genuine fixtures. Any crash, leak, sanitizer report or broken invariant
# fails the test; the reproducer is kept in $top_builddir/fuzz-artifacts.
# `./configure --enable-fuzzing` (CC=clang) builds the same targets for
# long runs: fuzz/fuzz_novamsg, fuzz/fuzz_novamsg_diff.
. "$top_srcdir/tests/lib/common.sh"

CLANG=${CLANG:-clang}
SECONDS_EACH=${FUZZ_SMOKE_SECONDS:-15}

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "decode-fuzz-smoke: $CLANG not found (scripts/install-deps.sh installs clang)" >&2
    [ "${CI:-}" = true ] && exit 99
    exit 77
fi
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "decode-fuzz-smoke: pkg-config not found" >&2
    [ "${CI:-}" = true ] && exit 99
    exit 77
fi

s=$top_srcdir/src
pkgs="jansson yaml-0.1 libevent uuid"
cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
 -I$top_srcdir/include -I$top_builddir $(pkg-config --cflags $pkgs)"
libs=$(pkg-config --libs $pkgs)
common="$s/novamsg.c $s/novamsg_scan.c $s/xalloc.c $s/uuidutil.c $s/log.c"

build() {
    name=$1
    shift
    # shellcheck disable=SC2086
    if ! "$CLANG" $cflags -o "$T/$name" "$top_srcdir/fuzz/$name.c" "$@" $common \
        $libs >"$T/build-$name.log" 2>&1; then
        cat "$T/build-$name.log" >&2
        if grep -q "fuzzer" "$T/build-$name.log" && [ "${CI:-}" != true ]; then
            echo "decode-fuzz-smoke: clang cannot build libFuzzer targets here" \
                 "(libclang-rt-14-dev missing?)" >&2
            exit 77
        fi
        fail "building $name"
    fi
}

build fuzz_novamsg "$s/policy.c" "$s/cfg.c"
build fuzz_novamsg_diff

run() {
    ASAN_OPTIONS=detect_leaks=$leaks:abort_on_error=0 \
    UBSAN_OPTIONS=print_stacktrace=1 \
        "$T/$name" -max_total_time="$SECONDS_EACH" -timeout=10 \
            -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
            -dict="$top_srcdir/fuzz/novamsg.dict" \
            -artifact_prefix="$T/artifacts/$name-" \
            "$T/corpus-$name" "$top_srcdir/fuzz/corpus/novamsg" \
            "$top_srcdir/tests/fixtures/nova/genuine" \
            >"$T/$name.log" 2>&1
}

for name in fuzz_novamsg fuzz_novamsg_diff; do
    mkdir -p "$T/corpus-$name" "$T/artifacts"
    leaks=1
    ok=true
    run || ok=false
    # LeakSanitizer needs ptrace, which some containers forbid: then run
    # without leak checks rather than fail for the sandbox's sake.
    if ! $ok && grep -q "LeakSanitizer has encountered a fatal error" "$T/$name.log"; then
        echo "decode-fuzz-smoke: LeakSanitizer cannot run here; without leak checks" >&2
        leaks=0
        ok=true
        run || ok=false
    fi
    if ! $ok; then
        tail -n 60 "$T/$name.log" >&2
        mkdir -p "$top_builddir/fuzz-artifacts"
        cp "$T"/artifacts/* "$top_builddir/fuzz-artifacts/" 2>/dev/null
        fail "$name crashed; reproducer in $top_builddir/fuzz-artifacts"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/$name.log")
    [ -n "$runs" ] && [ "$runs" -gt 0 ] || {
        tail -n 20 "$T/$name.log" >&2
        fail "$name did not run"
    }
    pass "$name: $runs runs in ${SECONDS_EACH}s, no crash"
done
