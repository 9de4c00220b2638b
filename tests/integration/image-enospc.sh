#!/bin/sh
# image on a real full filesystem: a 1 MiB tmpfs mounted in a private
# mount namespace (unshare), so nothing outside the test sees it. A full
# disk is a clean "disk full" error that leaves no partial file behind,
# and the images made before it are intact. Also checks the modes on a
# real filesystem and the refusal of a planted symlink directory.
. "$(dirname "$0")/../lib/common.sh"

TOOL="$top_builddir/tests/tools/image-tool"
[ -x "$TOOL" ] || fail "missing $TOOL"

U1=0f8fad5b-d9cb-469f-a165-70867728950e
U2=7c9e6679-7425-40de-944b-e07fc1f90ae7
U3=16fd2706-8baf-433b-82eb-8c7fada847da

# Needs a private mount namespace, as root (in a user namespace / would
# belong to the overflow uid, which image refuses as an ancestor).
mkdir "$T/mnt"
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root for a private mount namespace (CI runs as root)"
    [ "${CI:-}" = true ] && exit 99
    exit 77
fi
if ! unshare -m true 2>/dev/null; then
    # Not a missing package: the kernel or container forbids namespaces.
    echo "SKIP: cannot create a mount namespace here (unshare -m refused)"
    exit 77
fi
NS="unshare -m"

cat > "$T/inner.sh" <<'INNER'
set -u
TOOL=$1 MNT=$2 U1=$3 U2=$4 U3=$5
mount -t tmpfs -o size=1m,mode=0700 vtpmd-test "$MNT" || { echo "mount failed"; exit 3; }
D="$MNT/images"
# 512 KiB fits, a second 512 KiB does not (tmpfs keeps a little itself).
"$TOOL" create "$D" "$U1" 512KiB > "$MNT/../c1.out" 2>&1 || { echo "first create failed: $(cat "$MNT/../c1.out")"; exit 4; }
"$TOOL" create "$D" "$U2" 768KiB > "$MNT/../c2.out" 2>&1
echo "rc2=$?"
cat "$MNT/../c2.out"
echo "--- ls"
ls -A "$D"
echo "--- list"
"$TOOL" list "$D"
# Freeing space makes the retry succeed.
"$TOOL" remove "$D" "$U1" || exit 5
"$TOOL" create "$D" "$U2" 768KiB > /dev/null || { echo "retry after freeing failed"; exit 6; }
echo "--- ls2"
ls -A "$D"
INNER

$NS sh "$T/inner.sh" "$TOOL" "$T/mnt" "$U1" "$U2" "$U3" > "$T/ns.out" 2>&1 || {
    cat "$T/ns.out" >&2
    fail "namespace script failed"
}
cat "$T/ns.out"
grep -q '^rc2=1$' "$T/ns.out" || fail "create on a full disk did not fail"
grep -Eq "^error errno=(28|122): disk full: cannot reserve 786432 bytes for image $T/mnt/images/$U2.img" "$T/ns.out" ||
    fail "no clean disk-full error"
# Only the first image is there: no partial or temporary file.
[ "$(sed -n '/^--- ls$/,/^--- list$/p' "$T/ns.out" | grep -vc '^---')" -eq 1 ] || fail "files left behind"
sed -n '/^--- ls$/,/^--- list$/p' "$T/ns.out" | grep -qx "$U1.img" || fail "first image missing"
sed -n '/^--- list$/,/^--- ls2$/p' "$T/ns.out" | grep -qx "$U1" || fail "list lacks the first image"
sed -n '/^--- ls2$/,$p' "$T/ns.out" | grep -qx "$U2.img" || fail "retry image missing"
pass "full disk: clean error, nothing left behind, retry succeeds after freeing space"

# Modes and sizes on the real disk, idempotence, symlinked directory.
D="$T/images"
umask 022
p=$("$TOOL" create "$D" "$U3" 2MiB) || fail "create on disk"
[ "$p" = "$D/$U3.img" ] || fail "path $p"
[ "$(stat -c %a "$D")" = 700 ] || fail "dir mode $(stat -c %a "$D")"
[ "$(stat -c '%a %s %F' "$p")" = "600 2097152 regular file" ] || fail "image $(stat -c '%a %s %F' "$p")"
[ $(($(stat -c %b "$p") * $(stat -c %B "$p"))) -ge 2097152 ] || fail "image is sparse"
cmp -n 2097152 "$p" /dev/zero || fail "image is not zero-filled"
"$TOOL" create "$D" "$U3" 2MiB > /dev/null || fail "idempotent create"
"$TOOL" create "$D" "$U3" 1MiB 2> "$T/e.out" && fail "wrong size accepted"
grep -q "exists with size 2097152 bytes, want 1048576" "$T/e.out" || fail "size message: $(cat "$T/e.out")"
pass "modes, size, zero fill, idempotence on disk"

mkdir -m 700 "$T/elsewhere"
ln -s "$T/elsewhere" "$T/linked"
"$TOOL" create "$T/linked" "$U1" 64KiB 2> "$T/e.out" && fail "symlinked dir accepted"
grep -q "is a symbolic link" "$T/e.out" || fail "symlink message: $(cat "$T/e.out")"
[ -z "$(ls -A "$T/elsewhere")" ] || fail "wrote through the symlinked dir"
"$TOOL" create "$D" "../../etc/x" 64KiB 2> "$T/e.out" && fail "hostile uuid accepted"
grep -q "not a valid UUID" "$T/e.out" || fail "uuid message"
pass "symlinked directory and hostile UUID refused"
