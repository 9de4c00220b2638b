# Shared helpers for the shell integration tests. Source it first.
# Every test gets a private temp dir ($T) removed on exit, and fails
# with a message through fail().
set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${VTPMD:=$top_builddir/vtpmd}"
: "${PYTHON:=/usr/bin/python3}"
export top_srcdir top_builddir VTPMD PYTHON

T=$(mktemp -d "${TMPDIR:-/tmp}/vtpmd-test.XXXXXX")
CLEANUP_HOOKS=""
FAILED=""

on_exit() {
    rc=$?
    for h in $CLEANUP_HOOKS; do "$h" || true; done
    if [ $rc -ne 0 ] && [ -d "$T" ]; then
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $f (last 40 lines)" >&2
            tail -n 40 "$f" >&2
        done
        # VTPMD_TEST_KEEP=DIR keeps a failed test's files for a post-mortem.
        if [ -n "${VTPMD_TEST_KEEP:-}" ]; then
            mkdir -p "$VTPMD_TEST_KEEP" && cp -a "$T" "$VTPMD_TEST_KEEP/" &&
                echo "# kept $T in $VTPMD_TEST_KEEP" >&2
        fi
        # The reason again, last: the logs above push it out of a tail.
        [ -n "$FAILED" ] && echo "FAIL: $FAILED" >&2
    fi
    rm -rf "$T"
    exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

add_cleanup() { CLEANUP_HOOKS="$1 $CLEANUP_HOOKS"; }

fail() { FAILED="$*"; echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# poll TIMEOUT_S COMMAND...: runs COMMAND every 0.1 s until it succeeds
# (returns 0), at most TIMEOUT_S seconds (returns 1).
poll() {
    _pt=$1
    shift
    _pi=0
    while [ $_pi -lt $((_pt * 10)) ]; do
        "$@" && return 0
        sleep 0.1
        _pi=$((_pi + 1))
    done
    return 1
}

# wait_for FILE PATTERN [TIMEOUT_S]: waits until grep -E finds PATTERN.
wait_for() {
    poll "${3:-20}" has_match "$1" "$2" && return 0
    echo "timed out after ${3:-20}s waiting for /$2/ in $1" >&2
    return 1
}
has_match() { [ -f "$1" ] && grep -Eq -- "$2" "$1"; }

# wait_count FILE PATTERN N [TIMEOUT_S]: waits until PATTERN matched N lines.
wait_count() {
    poll "${4:-20}" has_matches "$1" "$2" "$3" && return 0
    echo "timed out waiting for $3 lines /$2/ in $1" >&2
    return 1
}
has_matches() { [ "$(count_matches "$1" "$2")" -ge "$3" ]; }

# count_matches FILE PATTERN
count_matches() {
    if [ -f "$1" ]; then grep -Ec -- "$2" "$1" || true; else echo 0; fi
}

# valgrind wrapper: set when valgrind is present (required in CI).
VALGRIND=""
use_valgrind() {
    if command -v valgrind >/dev/null 2>&1; then
        VALGRIND="valgrind --quiet --error-exitcode=42 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --track-fds=no"
    elif [ "${CI:-}" = true ]; then
        fail "valgrind is required in CI"
    fi
}

# term_wait PID: SIGTERM, waits; fails unless the exit status is 0 (under
# valgrind 42 means errors found).
term_wait() {
    kill -TERM "$1"
    wait "$1"
    _rc=$?
    [ $_rc -eq 0 ] || fail "exit status $_rc after SIGTERM (42 = valgrind found errors)"
}
