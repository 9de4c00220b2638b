#!/bin/sh
# contrib/libvirt/check.sh: proves the <vtpm> patch series for libvirt.
#
# 1. Fetches Debian 12's libvirt 9.0.0 source from Debian's archive (with a
#    private apt sources list: the system's apt configuration is untouched),
#    applies the series on top of Debian's own patches and builds a minimal
#    libvirt (libxl, test and remote drivers, no docs).
# 2. Runs libvirt's whole 'meson test', checks that the series' new test
#    cases ran, and runs those under libvirt's valgrind test setup.
# 3. Asks Xen's own toolstack: unpacks Debian's xen-utils-4.17 (not
#    installed), runs 'xl -N create -n' on the series' xl.cfg test files with
#    a small LD_PRELOAD shim standing in for the hypervisor, and compares the
#    libxl 'vtpms' that xl builds with the expected JSON of libvirt's
#    libxlxml2domconfigtest cases.
# 4. Writes the path of the patched domain.rng into
#    $VTPMD_CACHE_DIR/domain-rng.path for vtpmd's own tests.
#
# The source and the build are cached under
#   ${VTPMD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vtpmd}/libvirt-<hash>
# where <hash> covers the series and this script: a build is reused only
# while both are unchanged. The tests and the xl comparison always run.
#
# Exit status: 0 pass, 1 failure, 77 (automake's SKIP) when a needed tool is
# missing, except with CI=true where that is a failure too.
# Environment: VTPMD_CACHE_DIR, VTPMD_LIBVIRT_JOBS (build jobs, default 2),
# VTPMD_LIBVIRT_VALGRIND=0 skips step 2's valgrind run (it is reported).

set -eu

LIBVIRT_UPSTREAM_VERSION=9.0.0
XEN_UTILS=xen-utils-4.17
XEN_LIBS="libxenmisc4.17 libxenstore4 libxentoollog1 libxenevtchn1
 libxentoolcore1 libxencall1 libxengnttab1 libxenforeignmemory1
 libxendevicemodel1 libxenhypfs1"
DEBIAN_MIRROR=http://deb.debian.org

here=$(cd "$(dirname "$0")" && pwd)
prog=contrib/libvirt/check.sh
jobs=${VTPMD_LIBVIRT_JOBS:-2}

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
missing() {
    if [ "${CI:-}" = true ]; then
        die "$* (CI=true: a missing tool is a failure; see scripts/install-deps.sh)"
    fi
    log "SKIP: $* (scripts/install-deps.sh installs what it needs)"
    exit 77
}

# --- prerequisites -----------------------------------------------------------

for tool in apt-get apt-cache dpkg-source dpkg-deb dpkg-architecture meson \
            ninja cc pkg-config python3 perl patch sha256sum flock valgrind \
            xsltproc xmllint rpcgen; do
    command -v "$tool" >/dev/null 2>&1 || missing "tool '$tool' not found"
done
for mod in xenlight xlutil xenstore xentoollog yajl glib-2.0 gobject-2.0 \
           gio-2.0 libxml-2.0 gnutls libtirpc; do
    pkg-config --exists "$mod" || missing "pkg-config module '$mod' not found"
done

set -- "$here"/[0-9][0-9][0-9][0-9]-*.patch
[ -f "$1" ] || die "no patches found in $here"
patches=
for p in "$@"; do
    case $(basename "$p") in
        0000-*) ;;  # the cover letter
        *) patches="$patches $p" ;;
    esac
done
[ -n "$patches" ] || die "no patches found in $here"

cache_root=${VTPMD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vtpmd}
# shellcheck disable=SC2086
hash=$(cat $patches "$here/check.sh" | sha256sum | cut -c1-16)
cache=$cache_root/libvirt-$hash
tree=$cache/libvirt-$LIBVIRT_UPSTREAM_VERSION
build=$cache/build
mkdir -p "$cache" || die "cannot create the cache directory $cache"
cache=$(cd "$cache" && pwd)
cache_root=$(cd "$cache_root" && pwd)
tree=$cache/libvirt-$LIBVIRT_UPSTREAM_VERSION
build=$cache/build

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vtpmd-libvirt.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# One run at a time per cache entry (make -j, distcheck next to check).
exec 9>"$cache/lock"
flock 9 || die "cannot lock $cache/lock"
touch "$cache/last-used"

# Entries of older series are not reused: drop those unused for two weeks.
find "$cache_root" -mindepth 2 -maxdepth 2 -name last-used -mtime +14 \
    -path "$cache_root/libvirt-*/last-used" 2>/dev/null |
while read -r stale; do
    d=$(dirname "$stale")
    [ "$d" = "$cache" ] || rm -rf "$d"
done

# --- private apt configuration -------------------------------------------------

aptdir=$cache/apt
apt_opts() {
    printf '%s\n' \
        "-o" "Dir::Etc::SourceList=$aptdir/sources.list" \
        "-o" "Dir::Etc::SourceParts=/dev/null" \
        "-o" "Dir::State::Lists=$aptdir/lists" \
        "-o" "Dir::Cache=$aptdir/cache" \
        "-o" "Acquire::Languages=none" \
        "-o" "APT::Sandbox::User=root"
}
# apt_private apt-get|apt-cache ARGS...
apt_private() {
    # shellcheck disable=SC2046
    (cmd=$1; shift; IFS='
'; exec "$cmd" $(apt_opts) "$@")
}
apt_update_done=
apt_update() {
    [ -z "$apt_update_done" ] || return 0
    mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
    cat >"$aptdir/sources.list" <<EOF
deb-src $DEBIAN_MIRROR/debian bookworm main
deb $DEBIAN_MIRROR/debian bookworm main
deb $DEBIAN_MIRROR/debian-security bookworm-security main
EOF
    log "updating the private package lists ($aptdir)"
    apt_private apt-get -q update >"$tmp/apt-update.log" 2>&1 || {
        cat "$tmp/apt-update.log" >&2
        die "apt-get update with the private sources list failed"
    }
    apt_update_done=1
}

# --- 1. source, series, build --------------------------------------------------

if [ -f "$cache/built" ] && [ -d "$tree" ] && [ -d "$build" ]; then
    log "reusing the build in $build"
else
    rm -rf "$tree" "$build" "$cache/built" "$cache/download"
    apt_update
    mkdir -p "$cache/download"
    log "fetching Debian 12's libvirt source"
    (cd "$cache/download" && apt_private apt-get -q source libvirt) \
        >"$tmp/apt-source.log" 2>&1 || {
        cat "$tmp/apt-source.log" >&2
        die "apt-get source libvirt failed"
    }
    dsc=$(ls "$cache/download"/libvirt_*.dsc)
    version=$(sed -n 's/^Version: //p' "$dsc")
    case $version in
        "$LIBVIRT_UPSTREAM_VERSION"-*) ;;
        *) die "bookworm's libvirt is $version, the series is for $LIBVIRT_UPSTREAM_VERSION" ;;
    esac
    [ -d "$cache/download/libvirt-$LIBVIRT_UPSTREAM_VERSION" ] ||
        die "apt-get source did not unpack libvirt-$LIBVIRT_UPSTREAM_VERSION"
    mv "$cache/download/libvirt-$LIBVIRT_UPSTREAM_VERSION" "$tree"
    log "libvirt $version unpacked with Debian's patches applied"

    for p in $patches; do
        log "applying $(basename "$p")"
        patch -d "$tree" -p1 -F0 -N --no-backup-if-mismatch --quiet <"$p" ||
            die "$(basename "$p") does not apply"
    done

    log "configuring a minimal build"
    meson setup "$build" "$tree" \
        -Dauto_features=disabled -Ddocs=disabled -Dtests=enabled \
        -Dexpensive_tests=disabled -Ddriver_libxl=enabled \
        -Ddriver_libvirtd=enabled -Ddriver_remote=enabled \
        -Ddriver_test=enabled -Dyajl=enabled \
        >"$tmp/meson-setup.log" 2>&1 || {
        tail -n 60 "$tmp/meson-setup.log" >&2
        die "meson setup failed"
    }
    log "building (ninja -j$jobs): 3 minutes on 2 idle cores, more on busy ones"
fi

# Always: a no-op when up to date, a rebuild if system headers changed.
ninja -C "$build" -j"$jobs" >"$tmp/ninja.log" 2>&1 || {
    tail -n 80 "$tmp/ninja.log" >&2
    rm -f "$cache/built"
    die "building libvirt failed"
}
touch "$cache/built"

# --- 2. libvirt's tests -----------------------------------------------------------

log "running libvirt's meson test"
if ! meson test -C "$build" --no-rebuild --num-processes "$jobs" \
        --print-errorlogs >"$tmp/meson-test.log" 2>&1; then
    grep -E ' (FAIL|TIMEOUT|ERROR) ' "$tmp/meson-test.log" >&2 || true
    tail -n 100 "$tmp/meson-test.log" >&2
    die "libvirt's meson test failed"
fi
summary=$(python3 - "$tmp/meson-test.log" <<'EOF'
import re, sys
counts = {}
for line in open(sys.argv[1]):
    m = re.match(r'^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout):\s+(\d+)', line)
    if m:
        counts[m.group(1)] = int(m.group(2))
if 'Ok' not in counts:
    sys.exit("no meson test summary found")
print("%d ok, %d failed, %d skipped" % (
    counts['Ok'], counts.get('Fail', 0) + counts.get('Timeout', 0) +
    counts.get('Unexpected Pass', 0), counts.get('Skipped', 0)))
EOF
) || die "cannot read meson test's summary"
log "libvirt meson test: $summary"

# The series' own cases must be among them (run verbosely, one by one).
check_cases() {
    bin=$1
    shift
    VIR_TEST_VERBOSE=1 "$build/tests/$bin" >"$tmp/$bin.log" 2>&1 ||
        die "$bin failed"
    python3 - "$tmp/$bin.log" "$@" <<'EOF' || die "$bin: a case of the series did not run or did not pass"
import re, sys
log, cases = open(sys.argv[1]).read(), sys.argv[2:]
# "N) NAME ... OK", possibly with the expected error printed before OK
results = {}
for chunk in re.split(r"(?m)^ *(?=\d+\) )", log):
    m = re.match(r"\d+\) (.*?) +\.\.\. (.*)", chunk, re.S)
    if m:
        results.setdefault(m.group(1).split()[-1], []).append(
            m.group(2).rstrip().endswith("OK"))
bad = [c for c in cases if not results.get(c) or not all(results[c])]
if bad:
    sys.exit("not run or failed: %s" % " ".join(bad))
EOF
}
check_cases genericxml2xmltest vtpm-stubdom vtpm-guest \
    vtpm-missing-backend-invalid vtpm-backend-name-invalid \
    vtpm-backend-empty-invalid vtpm-uuid-invalid vtpm-uuid-nil \
    vtpm-multiple-invalid vtpm-non-xen
check_cases libxlxml2domconfigtest vtpm-stubdom-pv vtpm-guest-pv vtpm-none-pv
check_cases xlconfigtest vtpm-stubdom vtpm-stubdom-spaces vtpm-guest \
    vtpm-multiple vtpm-missing-backend vtpm-unknown-key vtpm-malformed-uuid
log "the series' 19 test cases ran and passed"

if [ "${VTPMD_LIBVIRT_VALGRIND:-1}" = 0 ]; then
    log "NOTE: valgrind run skipped (VTPMD_LIBVIRT_VALGRIND=0)"
else
    log "running the new cases' tests under meson test --setup valgrind"
    if ! meson test -C "$build" --no-rebuild --setup valgrind \
            --num-processes "$jobs" --print-errorlogs \
            genericxml2xmltest libxlxml2domconfigtest xlconfigtest \
            >"$tmp/valgrind.log" 2>&1; then
        tail -n 100 "$tmp/valgrind.log" >&2
        die "valgrind found errors or leaks"
    fi
    log "valgrind: no errors, no leaks"
fi

# --- 3. Xen's xl as the reference peer ---------------------------------------------

xenroot=$cache/xen
if [ ! -f "$xenroot/unpacked" ]; then
    rm -rf "$xenroot"
    apt_update
    xv=$(apt_private apt-cache policy "$XEN_UTILS" |
         sed -n 's/^ *Candidate: //p')
    case $xv in
        ''|'(none)') die "$XEN_UTILS not found in Debian's archive" ;;
    esac
    mkdir -p "$xenroot/debs" "$xenroot/root"
    pkgs=
    for p in $XEN_UTILS $XEN_LIBS; do
        pkgs="$pkgs $p=$xv"
    done
    log "downloading $XEN_UTILS $xv and its libraries (not installed)"
    # shellcheck disable=SC2086
    (cd "$xenroot/debs" && apt_private apt-get -q download $pkgs) \
        >"$tmp/apt-download.log" 2>&1 || {
        cat "$tmp/apt-download.log" >&2
        die "apt-get download $XEN_UTILS failed"
    }
    for deb in "$xenroot"/debs/*.deb; do
        dpkg-deb -x "$deb" "$xenroot/root" || die "cannot unpack $deb"
    done
    echo "$xv" >"$xenroot/unpacked"
fi
xl=$(find "$xenroot/root" -path '*/bin/xl' -type f | head -n 1)
if [ -z "$xl" ] || [ ! -x "$xl" ]; then
    die "no xl in $XEN_UTILS"
fi
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
xl_libs=$xenroot/root/usr/lib/$multiarch:$xenroot/root/lib/$multiarch

# shellcheck disable=SC2046
cc -shared -fPIC -O2 -Wall -Wextra -Werror $(pkg-config --cflags xenlight) \
    -o "$tmp/xl-dryrun-shim.so" "$here/xl-dryrun-shim.c" ||
    die "cannot build xl-dryrun-shim.c"

xl_dryrun() {
    # /etc/xen/xl.conf (on a Xen host) does not change a vtpm
    LD_LIBRARY_PATH=$xl_libs LD_PRELOAD=$tmp/xl-dryrun-shim.so \
        "$xl" -N create -n "$1"
}

compared=0
compare() {
    cfg=$1
    json=$2
    log "  $(basename "$cfg") (xl) vs $(basename "$json") (libvirt):"
    xlout=$tmp/$(basename "$cfg").xl.json
    xl_dryrun "$cfg" >"$xlout" 2>"$xlout.err" || {
        cat "$xlout.err" >&2
        die "xl -N create -n $cfg failed"
    }
    python3 - "$xlout" "$json" <<'EOF' || die "xl and libvirt disagree on the vtpms of $(basename "$cfg")"
import json, sys
xl = json.load(open(sys.argv[1]))
lv = json.load(open(sys.argv[2]))
# Both must describe a domain (a guard against comparing two empty files).
for name, doc in (("xl", xl), ("libvirt", lv)):
    if "c_info" not in doc or "b_info" not in doc:
        sys.exit("%s: not a libxl domain config" % name)
a, b = xl.get("vtpms"), lv.get("vtpms")
print("  xl:      %s" % json.dumps(a, sort_keys=True))
print("  libvirt: %s" % json.dumps(b, sort_keys=True))
if a != b:
    sys.exit("vtpms differ")
EOF
    compared=$((compared + 1))
}

xld=$tree/tests/xlconfigdata
lxd=$tree/tests/libxlxml2domconfigdata

# The pairs describe the same vTPM: xlconfigtest proves that libvirt turns
# the xl.cfg into the <vtpm> element below, libxlxml2domconfigtest that it
# turns that element into the expected JSON.
python3 - "$xld" "$lxd" <<'EOF' || die "the xl.cfg and libxl test cases describe different vTPMs"
import sys, xml.etree.ElementTree as ET
xld, lxd = sys.argv[1:]
for cfgxml, lxxml in (("test-vtpm-stubdom.xml", "vtpm-stubdom-pv.xml"),
                      ("test-vtpm-guest.xml", "vtpm-guest-pv.xml")):
    a = ET.parse("%s/%s" % (xld, cfgxml)).findall("./devices/vtpm")
    b = ET.parse("%s/%s" % (lxd, lxxml)).findall("./devices/vtpm")
    if len(a) != 1 or len(b) != 1 or a[0].attrib != b[0].attrib:
        sys.exit("%s and %s differ in <vtpm>" % (cfgxml, lxxml))
if ET.parse("%s/vtpm-none-pv.xml" % lxd).findall("./devices/vtpm"):
    sys.exit("vtpm-none-pv.xml has a <vtpm>")
EOF

log "comparing the vtpms of xl -N create -n with libvirt's expected JSON"
compare "$xld/test-vtpm-stubdom.cfg" "$lxd/vtpm-stubdom-pv.json"
compare "$xld/test-vtpm-stubdom-spaces.cfg" "$lxd/vtpm-stubdom-pv.json"
compare "$xld/test-vtpm-guest.cfg" "$lxd/vtpm-guest-pv.json"
grep -v '^vtpm *=' "$xld/test-vtpm-stubdom.cfg" >"$tmp/test-vtpm-none.cfg"
compare "$tmp/test-vtpm-none.cfg" "$lxd/vtpm-none-pv.json"

# Specs that libvirt refuses and xl refuses too (several vTPMs, which xl
# accepts, is a limitation of libvirt's device and not checked here).
for bad in missing-backend unknown-key malformed-uuid; do
    if xl_dryrun "$xld/test-vtpm-$bad.cfg" >"$tmp/bad.json" 2>"$tmp/bad.err"; then
        die "xl accepts test-vtpm-$bad.cfg, which libvirt refuses"
    fi
    log "xl refuses test-vtpm-$bad.cfg too: $(grep -v -e '^Parsing config' \
        -e '^Failed to read config file' "$tmp/bad.err" | head -n 1)"
done
log "xl $(cat "$xenroot/unpacked") and libvirt agree on the vtpms of $compared domains"

# --- 4. the patched schema for vtpmd's tests ------------------------------------

rng=$tree/src/conf/schemas/domain.rng
[ -f "$rng" ] || die "no domain.rng at $rng"
grep -q '<define name="vtpm">' "$tree/src/conf/schemas/domaincommon.rng" ||
    die "the patched schema has no vtpm"
printf '%s\n' "$rng" >"$cache_root/domain-rng.path.tmp.$$"
mv "$cache_root/domain-rng.path.tmp.$$" "$cache_root/domain-rng.path"
log "patched schema: $rng (path in $cache_root/domain-rng.path)"

log "PASS: libvirt meson test $summary; xl comparison: $compared passed, 0 failed"
