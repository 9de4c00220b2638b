#!/bin/sh
# The domxml and virt unit tests under valgrind's memcheck: the worker
# threads, libvirt's real test:///default driver and libxml2 together
# leak nothing and touch no freed or uninitialised memory. Debian 12's
# libvirt 9.0 needs no suppressions for this.
. "$top_srcdir/tests/lib/common.sh"

use_valgrind
if [ -z "$VALGRIND" ]; then
    echo "valgrind not installed: skipped"
    exit 77
fi
for t in test_domxml test_virt; do
    if ! $VALGRIND --log-file="$T/$t.valgrind.log" "$top_builddir/tests/unit/$t" \
            >"$T/$t.out.log" 2>&1; then
        fail "$t under valgrind"
    fi
    pass "$t under valgrind"
done
