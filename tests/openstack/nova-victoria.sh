# Sourced by the tests of the Nova stable/victoria patch, after
# tests/lib/common.sh. nova_victoria_tree sets NOVA_VICTORIA to a directory
# holding Nova 22's (victoria) Python tree, nova/, with its unit tests, and
# NOVA_VICTORIA_VERSION to its Debian version.
#
# The tree is Debian 11 (bullseye)'s python3-nova 2:22.x, the Nova that a
# Debian 11 Xen compute host runs (and patches: /usr/lib/python3/
# dist-packages/nova). It comes from Debian's archive through a private apt
# configuration (the system's apt sources and lists are untouched), and is
# cached, per version, under
#   ${VTPMD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vtpmd}/nova-victoria/
# (Debian's nova source package would do too, but the archive mirror here
# refuses it; the binary package carries the same tree with Debian's
# patches applied, and nova/tests.)
#
# VTPMD_DEBIAN_MIRROR replaces http://deb.debian.org/debian. Without the
# archive (and no cached tree) the tests skip (exit 77); under CI=true
# they fail.

NOVA_VICTORIA_SUITE=bullseye
NOVA_VICTORIA_MIRROR=${VTPMD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

nova_victoria_missing() {
    [ "${CI:-}" = true ] && fail "CI: $*"
    echo "SKIP: $*"
    exit 77
}

nova_victoria_tree() {
    _cache=${VTPMD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vtpmd}/nova-victoria
    for _t in apt-get apt-cache dpkg-deb flock; do
        command -v "$_t" > /dev/null 2>&1 || nova_victoria_missing "$_t not found"
    done
    mkdir -p "$_cache/apt/lists/partial" "$_cache/apt/cache/archives/partial" ||
        fail "cannot create $_cache"
    # One fetch at a time (make -j runs several tests that need the tree).
    exec 8> "$_cache/lock"
    flock 8 || fail "cannot lock $_cache/lock"
    cat > "$_cache/apt/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $NOVA_VICTORIA_MIRROR $NOVA_VICTORIA_SUITE main
EOF
    set -- -o "Dir::Etc::SourceList=$_cache/apt/sources.list" \
        -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$_cache/apt/lists" \
        -o "Dir::Cache=$_cache/apt/cache" -o Dir::State::status=/dev/null \
        -o Acquire::Languages=none -o APT::Sandbox::User=root
    # The lists are refreshed once a day; a cached tree is used offline.
    if [ -z "$(find "$_cache/apt/lists" -name '*_Packages*' -mtime -1 2>/dev/null)" ]; then
        apt-get "$@" -q update > "$_cache/update.log" 2>&1 ||
            echo "# apt-get update of $NOVA_VICTORIA_SUITE failed (see $_cache/update.log)"
    fi
    NOVA_VICTORIA_VERSION=$(apt-cache "$@" madison python3-nova 2>/dev/null |
        awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep '^2:22\.' | head -n 1)
    if [ -z "$NOVA_VICTORIA_VERSION" ]; then
        # Offline: the newest tree fetched before.
        NOVA_VICTORIA_VERSION=$(ls "$_cache" | sed -n 's/^tree-//p' | sort -V | tail -n 1 | tr '_' ':')
    fi
    [ -n "$NOVA_VICTORIA_VERSION" ] ||
        nova_victoria_missing "no python3-nova 2:22.x from Debian $NOVA_VICTORIA_SUITE ($NOVA_VICTORIA_MIRROR)"
    NOVA_VICTORIA=$_cache/tree-$(echo "$NOVA_VICTORIA_VERSION" | tr ':' '_')
    if [ ! -f "$NOVA_VICTORIA/.complete" ]; then
        rm -rf "$NOVA_VICTORIA" "$_cache/deb"
        mkdir -p "$_cache/deb" "$NOVA_VICTORIA"
        (cd "$_cache/deb" && apt-get "$@" -q download "python3-nova=$NOVA_VICTORIA_VERSION") \
            > "$_cache/download.log" 2>&1 ||
            nova_victoria_missing "cannot download python3-nova=$NOVA_VICTORIA_VERSION: $(tail -n 1 "$_cache/download.log")"
        dpkg-deb -x "$_cache"/deb/python3-nova_*.deb "$_cache/deb/x" || fail "dpkg-deb -x"
        mv "$_cache/deb/x/usr/lib/python3/dist-packages/nova" "$NOVA_VICTORIA/nova" ||
            fail "no nova/ in python3-nova $NOVA_VICTORIA_VERSION"
        rm -rf "$_cache/deb"
        touch "$NOVA_VICTORIA/.complete"
    fi
    touch "$NOVA_VICTORIA/.complete"
    exec 8>&-
    grep -q "'xen'" "$NOVA_VICTORIA/nova/conf/libvirt.py" ||
        fail "$NOVA_VICTORIA is no Nova whose libvirt driver drives Xen"
    echo "# Nova victoria tree: Debian $NOVA_VICTORIA_SUITE python3-nova $NOVA_VICTORIA_VERSION ($NOVA_VICTORIA)"
}

# nova_victoria_copy DIR: a private, writable copy of the tree in DIR.
nova_victoria_copy() {
    mkdir -p "$1" && cp -a "$NOVA_VICTORIA/nova" "$1/" || fail "cannot copy the tree"
}
