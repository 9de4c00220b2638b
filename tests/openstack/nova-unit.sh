#!/bin/sh
# The Nova patch's own unit tests, in Nova's tree: applies the patch to
# Debian 11's Nova 22 (stable/victoria, see nova-victoria.sh) and
#  1. runs flake8 with hacking and Nova's local checks (nova/hacking,
#     victoria's tox.ini settings) on the files it touches: it adds no
#     warning (warnings that the untouched tree has on this machine's
#     newer flake8/hacking are not counted);
#  2. runs, with stestr on /usr/bin/python3 and Debian 12's libraries,
#     nova.tests.unit.virt.libvirt.test_vtpmd, test_config, and every test
#     of test_driver whose name has xen or vtpm in it (the patch's own and
#     the existing test_get_guest_config_with_type_xen, which must not
#     touch a socket), and checks that the patch's tests passed.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/openstack/nova-victoria.sh"

set -- "$top_srcdir"/contrib/openstack/nova/*.patch
PATCH=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
command -v git > /dev/null || fail "git not found"

nova_victoria_tree
nova_victoria_copy "$T/pristine"
nova_victoria_copy "$T/nova22"
(cd "$T/nova22" && git apply "$PATCH") > "$T/apply.log" 2>&1 || fail "git apply: $(cat "$T/apply.log")"
files=$(sed -n 's|^+++ b/\(nova/.*\.py\)$|\1|p' "$PATCH")
[ -n "$files" ] || fail "no Python files in the patch"

# 1. flake8 + hacking + Nova's local checks.
if [ -x /usr/bin/flake8 ] && "$PYTHON" -c 'import hacking' 2> /dev/null; then
    cat > "$T/flake8.ini" <<'INI'
[flake8]
enable-extensions = H106,H203,H904
ignore = E121,E122,E123,E124,E125,E126,E127,E128,E129,E131,E251,H405,W504,E731,H238
max-complexity = 40

[hacking]
import_exceptions = typing,nova.i18n

[flake8:local-plugins]
extension =
  N307 = checks:import_no_db_in_virt
  N310 = checks:use_timeutils_utcnow
  N311 = checks:import_no_virt_driver_import_deps
  N312 = checks:import_no_virt_driver_config_deps
  N313 = checks:capital_cfg_help
  N316 = checks:assert_true_instance
  N317 = checks:assert_equal_type
  N335 = checks:assert_raises_regexp
  N319 = checks:no_translate_logs
  N337 = checks:no_import_translation_in_tests
  N320 = checks:no_setting_conf_directly_in_tests
  N322 = checks:no_mutable_default_args
  N323 = checks:check_explicit_underscore_import
  N324 = checks:use_jsonutils
  N326 = checks:CheckForTransAdd
  N334 = checks:assert_true_or_false_with_in
  N336 = checks:dict_constructor_with_list_copy
  N338 = checks:assert_equal_in
  N340 = checks:check_greenthread_spawns
  N341 = checks:check_no_contextlib_nested
  N342 = checks:check_config_option_in_central_place
  N343 = checks:check_doubled_words
  N348 = checks:no_os_popen
  N352 = checks:no_log_warn
  N349 = checks:CheckForUncalledTestClosure
  N353 = checks:check_context_log
  N355 = checks:no_assert_equal_true_false
  N356 = checks:no_assert_true_false_is_not
  N357 = checks:check_uuid4
  N358 = checks:return_followed_by_space
  N359 = checks:no_redundant_import_alias
  N360 = checks:yield_followed_by_space
  N361 = checks:assert_regexpmatches
  N362 = checks:privsep_imports_not_aliased
  N363 = checks:did_you_mean_tuple
  N364 = checks:nonexistent_assertion_methods_and_attributes
  N365 = checks:useless_assertion
paths = ./nova/hacking
INI
    # Where flake8 resolves the local plugins' path: the tree's top.
    cp "$T/flake8.ini" "$T/pristine/flake8.ini"
    cp "$T/flake8.ini" "$T/nova22/flake8.ini"
    # Warnings by file, code and text (line numbers move with the patch).
    lint() {
        (cd "$1" && for f in $files; do
            [ -f "$f" ] && /usr/bin/flake8 --config flake8.ini \
                --format='%(path)s %(code)s %(text)s' "$f"
        done) 2> "$T/flake8-$2.err" | sort > "$T/flake8-$2.txt"
        grep -v '^$' "$T/flake8-$2.err" | grep -qv -i 'warning' &&
            fail "flake8 ($2): $(cat "$T/flake8-$2.err")"
        return 0
    }
    # The untouched tree's warnings are cached beside it.
    key=$( (cat "$T/flake8.ini"; /usr/bin/flake8 --version; echo $files) | sha256sum | cut -c1-16)
    if [ -f "$NOVA_VICTORIA/flake8-$key.txt" ]; then
        cp "$NOVA_VICTORIA/flake8-$key.txt" "$T/flake8-before.txt"
    else
        lint "$T/pristine" before
        cp "$T/flake8-before.txt" "$NOVA_VICTORIA/flake8-$key.tmp.$$" &&
            mv "$NOVA_VICTORIA/flake8-$key.tmp.$$" "$NOVA_VICTORIA/flake8-$key.txt"
    fi
    lint "$T/nova22" after
    # The local checks ran: N-codes are known to flake8.
    (cd "$T/nova22" && printf 'from nova.i18n import _\nLOG.warn("x")\n' > nova/n352.py &&
        /usr/bin/flake8 --config flake8.ini --select=N352 nova/n352.py) | grep -q N352 ||
        fail "Nova's local hacking checks did not run"
    rm -f "$T/nova22/nova/n352.py"
    new=$(comm -13 "$T/flake8-before.txt" "$T/flake8-after.txt")
    [ -z "$new" ] || fail "flake8/hacking: the patch adds warnings:
$new"
    pass "flake8 $(/usr/bin/flake8 --version | head -n 1): the patch adds no warning ($(wc -l < "$T/flake8-before.txt") in the untouched files)"
else
    [ "${CI:-}" = true ] && fail "CI: flake8 and python3-hacking are required"
    echo "# SKIP flake8: /usr/bin/flake8 or python3-hacking missing (scripts/install-deps.sh)"
fi

# 2. The unit tests, with stestr.
"$PYTHON" -c 'import stestr, oslotest, mock, ddt, wsgi_intercept, requests_mock' 2> "$T/imports.err" || {
    [ "${CI:-}" = true ] && fail "CI: $(tail -n 1 "$T/imports.err") (scripts/install-deps.sh)"
    echo "SKIP: $(tail -n 1 "$T/imports.err")"
    exit 77
}
filter='nova\.tests\.unit\.virt\.libvirt\.(test_vtpmd|test_config|test_driver\.[A-Za-z]+\.test_[a-z0-9_]*(xen|vtpm))'
(cd "$T/nova22" && "$PYTHON" -m stestr --test-path ./nova/tests/unit/virt/libvirt --top-dir ./ \
    run --serial --subunit "$filter" > "$T/unit.subunit" 2> "$T/stestr.log")
rc=$?
"$PYTHON" - "$T/unit.subunit" > "$T/unit.log" <<'PY' || fail "unit tests: $(grep -E 'FAIL|ERROR' "$T/unit.log" | head -n 20)"
import sys
import subunit
import testtools

ok, bad = [], []


class R(testtools.StreamResult):
    def status(self, test_id=None, test_status=None, **kw):
        if test_status in ("success",):
            ok.append(test_id)
        elif test_status in ("fail", "uxsuccess"):
            bad.append(test_id)


r = R()
with open(sys.argv[1], "rb") as f:
    subunit.ByteStreamToStreamResult(f, non_subunit_name="stdout").run(r)
for t in ok:
    print("ok", t)
for t in bad:
    print("FAIL", t)
print("%d passed, %d failed" % (len(ok), len(bad)))
sys.exit(1 if bad or not ok else 0)
PY
[ $rc -eq 0 ] || fail "stestr exit $rc: $(tail -n 20 "$T/stestr.log")"
for t in test_vtpmd.VtpmdTestCase.test_get_vtpm_backend_ready \
         test_vtpmd.VtpmdTestCase.test_get_vtpm_backend_not_selected \
         test_vtpmd.VtpmdTestCase.test_get_vtpm_backend_unreachable \
         test_config.LibvirtConfigGuestXenVTPMTest.test_config_xen_vtpm \
         test_config.LibvirtConfigGuestXenVTPMTest.test_config_xen_vtpm_in_guest \
         test_driver.LibvirtConnTestCase.test_get_guest_config_with_type_xen \
         test_driver.LibvirtConnTestCase.test_get_guest_config_with_type_xen_vtpmd \
         test_driver.LibvirtConnTestCase.test_get_guest_config_with_type_xen_vtpmd_not_selected \
         test_driver.LibvirtConnTestCase.test_get_guest_config_with_type_xen_vtpmd_unavailable \
         test_driver.LibvirtConnTestCase.test_get_guest_config_with_type_kvm_vtpmd_not_asked; do
    grep -q "^ok nova\.tests\.unit\.virt\.libvirt\.$t\$" "$T/unit.log" || fail "$t did not pass"
done
pass "Nova $NOVA_VICTORIA_VERSION unit tests with the patch: $(tail -n 1 "$T/unit.log") ($(grep -c 'test_vtpmd\.' "$T/unit.log") test_vtpmd, $(grep -c 'XenVTPMTest' "$T/unit.log") config, $(grep -c 'test_driver\..*vtpmd' "$T/unit.log") driver tests of the patch)"
