# The vtpmmgr-*.sh tests' client: tests/tools/vtpmmgr-client (under
# valgrind when it is there) against the fake Keylime-VM proxy. Source
# after tests/lib/common.sh; it sources tests/lib/fake_proxy.sh.
#
#   run CONFIG ARGS...   runs the client: sets OUT (stdout), RC, RETRIES
#   live                 the fake proxy's count of live vTPMs
#   U1 .. U4             instance UUIDs
. "$top_srcdir/tests/lib/fake_proxy.sh"

CLIENT="$top_builddir/tests/tools/vtpmmgr-client"
[ -x "$CLIENT" ] || fail "missing $CLIENT"
use_valgrind

U1=0f8fad5b-d9cb-469f-a165-70867728950e
U2=7c9e6679-7425-40de-944b-e07fc1f90ae7
U3=16fd2706-8baf-433b-82eb-8c7fada847da
U4=9b2f37e1-2a9c-4f2e-b3c6-6d1a3e8f0c11

run() {
    _cfg=$1
    shift
    $VALGRIND "$CLIENT" -c "$_cfg" "$@" > "$T/out" 2> "$T/err"
    RC=$?
    OUT=$(cat "$T/out")
    RETRIES=$(sed -n 's/^stats .*retries=\([0-9]*\).*/\1/p' "$T/err")
    [ "$RC" != 42 ] || fail "valgrind: $(cat "$T/err")"
}
live() { fake_proxy_state live; }
