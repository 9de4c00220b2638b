#!/bin/sh
# vtpmd's domxml emits exactly the <vtpm> element that the contrib/libvirt
# series accepts: the stub domain XML vtpmd builds, and a Xen guest with
# vtpmd's guest-side snippet, validate against the RNG schema of the
# libvirt that contrib/libvirt/check.sh built with the series (it runs
# first: see mk/virt.mk). Unpatched libvirt's schema rejects both.
. "$(dirname "$0")/../lib/common.sh"

cache=${VTPMD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vtpmd}
if [ ! -s "$cache/domain-rng.path" ]; then
    echo "no patched schema: contrib/libvirt/check.sh has not built it ($cache/domain-rng.path)"
    [ "${CI:-}" = true ] && fail "CI: the patched libvirt schema must exist"
    exit 77
fi
rng=$(cat "$cache/domain-rng.path")
[ -f "$rng" ] || fail "schema $rng missing"
command -v xmllint > /dev/null || fail "xmllint missing (libxml2-utils)"
print="$top_builddir/tests/tools/domxml-print"

i=2a0f9f2c-1d0d-4c6e-9d65-1b8e7a0e2f11
v=8b3d4b07-3299-4f4c-9078-e8e9ecf6be46
"$print" stub "$i" "$v" "/var/lib/vtpmd/images/$i.img" > "$T/stub.xml" || fail "domxml_build"
grep -q "<vtpm backend=\"vtpmmgr\" uuid=\"$v\"/>\|<vtpm backend='vtpmmgr' uuid='$v'/>" "$T/stub.xml" ||
    fail "stub XML lacks the vtpm element: $(cat "$T/stub.xml")"
xmllint --noout --relaxng "$rng" "$T/stub.xml" 2> "$T/stub.err" ||
    fail "the stub domain XML does not validate against the patched schema: $(cat "$T/stub.err")"
pass "stub domain XML validates against the patched schema"

# virt's probe domain (vtpmd-vtpm-probe): a libvirt with the series
# accepts it, so the start-up check says "supported" there.
"$print" probe > "$T/probe.xml" || fail "domxml_build_probe"
xmllint --noout --relaxng "$rng" "$T/probe.xml" 2> "$T/probe.err" ||
    fail "the probe domain does not validate against the patched schema: $(cat "$T/probe.err")"
pass "probe domain validates against the patched schema"

"$print" guest "vtpm-$i" > "$T/snippet.xml" || fail "domxml_guest_vtpm"
{
    cat <<XML
<domain type='xen'>
  <name>instance-0000002a</name>
  <uuid>$i</uuid>
  <memory unit='KiB'>524288</memory>
  <os><type arch='x86_64' machine='xenpv'>linux</type><kernel>/boot/vmlinuz</kernel></os>
  <devices>
XML
    cat "$T/snippet.xml"
    printf '  </devices>\n</domain>\n'
} > "$T/guest.xml"
xmllint --noout --relaxng "$rng" "$T/guest.xml" 2> "$T/guest.err" ||
    fail "a guest with vtpmd's snippet does not validate: $(cat "$T/guest.err")"
pass "guest snippet validates against the patched schema"

# And the unpatched schema rejects the element (so the check means something).
stock=$(pkg-config --variable=datarootdir libvirt 2>/dev/null)/libvirt/schemas/domain.rng
if [ -f "$stock" ]; then
    xmllint --noout --relaxng "$stock" "$T/stub.xml" 2> /dev/null &&
        fail "the unpatched schema accepts <vtpm>: the check proves nothing"
    pass "the unpatched schema rejects it"
fi
