/* virt against libvirt's real test:///default driver: define+start,
 * idempotence, destroy+undefine, listing by metadata, dumpxml, lifecycle
 * events on the loop thread, reconnects, many concurrent jobs, free with
 * jobs pending, and no libvirt chatter on stderr.
 *
 * test:///default keeps its state in this process only, shared by every
 * connection the process opens to it; the test holds its own connection
 * ("peer") to look at and tamper with what virt did.
 *
 * What libvirt 9.0's test driver does, as found here:
 * - accepts <domain type='xen'> with <os><type machine='xenpv'>, a file
 *   disk on bus xen, and define/start/suspend/resume/destroy/undefine;
 * - silently drops <devices><vtpm/> (never in dumpxml) but keeps
 *   <metadata>; virDomainGetMetadata returns our element with the
 *   namespace stripped, and virDomainSetMetadata refuses an element that
 *   declares the namespace itself;
 * - a name or UUID taken by another domain fails define with
 *   VIR_ERR_OPERATION_FAILED;
 * - emits lifecycle events through the registered event loop,
 *   asynchronously: they may arrive after the job's done callback;
 * - accepts virConnectRegisterCloseCallback but never calls it (no
 *   transport), virConnectIsAlive is always 1, keepalive is unsupported:
 *   reconnecting is exercised here with virt_force_reconnect and against a
 *   real libvirtd in tests/integration/virt-reconnect.sh;
 * - costs ~0.5 ms of CPU per define and as much per start (XML parsing
 *   with XPath; start copies the definition by formatting and re-parsing
 *   it), ~0.05 ms per destroy+undefine (see bench/virt_bench). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "domxml.h"
#include "log.h"
#include "virt.h"
#include "virt_priv.h"
#include "xalloc.h"

/* The libvirt this test stands in for, by wrapping two calls
 * (-Wl,--wrap): LV_REAL is test:///default as it is (its schema refuses
 * <vtpm> under VIR_DOMAIN_DEFINE_VALIDATE, and it drops the element
 * without); LV_NO_VALIDATE a libvirt without the series that ignores the
 * validate flag (drops the element silently); LV_PATCHED one with the
 * series (keeps <vtpm backend='vtpmmgr' uuid='<the domain UUID>'/>, as the
 * stub domains and the probe have it). */
enum lv_mode { LV_REAL, LV_NO_VALIDATE, LV_PATCHED };
static _Atomic int lv_mode = LV_REAL;

virDomainPtr __real_virDomainDefineXMLFlags(virConnectPtr conn, const char *xml, unsigned int flags);
virDomainPtr __wrap_virDomainDefineXMLFlags(virConnectPtr conn, const char *xml, unsigned int flags);
char *__real_virDomainGetXMLDesc(virDomainPtr dom, unsigned int flags);
char *__wrap_virDomainGetXMLDesc(virDomainPtr dom, unsigned int flags);

virDomainPtr __wrap_virDomainDefineXMLFlags(virConnectPtr conn, const char *xml, unsigned int flags)
{
    if (atomic_load(&lv_mode) != LV_REAL)
        flags &= ~(unsigned)VIR_DOMAIN_DEFINE_VALIDATE;
    return __real_virDomainDefineXMLFlags(conn, xml, flags);
}

char *__wrap_virDomainGetXMLDesc(virDomainPtr dom, unsigned int flags)
{
    char *xml = __real_virDomainGetXMLDesc(dom, flags), *end, *out;
    char uuid[VIR_UUID_STRING_BUFLEN];

    if (xml == NULL || atomic_load(&lv_mode) != LV_PATCHED ||
        (end = strstr(xml, "</devices>")) == NULL || virDomainGetUUIDString(dom, uuid) < 0)
        return xml;
    xasprintf(&out, "%.*s  <vtpm backend='vtpmmgr' uuid='%s'/>\n  %s", (int)(end - xml), xml,
              uuid, end);
    free(xml);
    return out;
}

#define URI "test:///default"
#define WAIT_MS 120000 /* only reached on failure; valgrind is slow */

struct fixture {
    struct event_base *base;
    struct virt *v;
    virConnectPtr peer;
    pthread_t loop_thread;
    int ups, downs;
    bool off_loop; /* a callback ran on another thread */
    int ndone;
    /* lifecycle events seen, "name:event" */
    char events[256][160];
    int nevents;
};

enum op { OP_DEFINE_START, OP_DESTROY, OP_GET_XML, OP_LIST, OP_SLEEP, OP_CONN, OP_PROBE };

struct job {
    struct fixture *f;
    enum op op;
    const char *xml;
    const char *name;
    unsigned flags; /* virt_define_start's */
    int sleep_ms;
    /* results */
    bool done;
    int ret;
    char *err;
    char *xml_out;
    struct virt_domain_info *list;
    size_t n;
    bool had_conn;
};

static atomic_int running_now, running_max, work_calls;

static void on_lifecycle(const char *name, int event, int detail, void *arg)
{
    struct fixture *f = arg;

    if (!pthread_equal(pthread_self(), f->loop_thread))
        f->off_loop = true;
    if (f->nevents < 256)
        snprintf(f->events[f->nevents++], sizeof(f->events[0]), "%s:%d", name, event);
}

static void on_connection(bool up, void *arg)
{
    struct fixture *f = arg;

    if (!pthread_equal(pthread_self(), f->loop_thread))
        f->off_loop = true;
    if (up)
        f->ups++;
    else
        f->downs++;
}

static const struct virt_callbacks callbacks = {.lifecycle = on_lifecycle,
                                               .connection = on_connection};

static int work(virConnectPtr conn, void *arg, char **err)
{
    struct job *j = arg;
    int ret = 0, now;

    atomic_fetch_add(&work_calls, 1);
    j->had_conn = conn != NULL;
    switch (j->op) {
    case OP_DEFINE_START:
        return virt_define_start(conn, j->xml, j->name, j->flags, err);
    case OP_PROBE:
        ret = virt_probe_vtpm(conn, "/usr/lib/xen/boot/vtpm-stubdom.gz", err);
        j->n = ret > 0 ? (size_t)ret : 0;
        return ret < 0 ? ret : 0;
    case OP_DESTROY:
        return virt_destroy_undefine(conn, j->name, err);
    case OP_GET_XML:
        return virt_get_xml(conn, j->name, &j->xml_out, err);
    case OP_LIST:
        return virt_list_vtpmd(conn, &j->list, &j->n, err);
    case OP_CONN:
        return conn ? 0 : virt_not_connected(err);
    case OP_SLEEP:
        now = atomic_fetch_add(&running_now, 1) + 1;
        for (int m = atomic_load(&running_max); now > m;) {
            if (atomic_compare_exchange_weak(&running_max, &m, now))
                break;
        }
        usleep((useconds_t)j->sleep_ms * 1000);
        atomic_fetch_sub(&running_now, 1);
        break;
    }
    return ret;
}

static void done(int ret, char *err, void *arg)
{
    struct job *j = arg;

    if (!pthread_equal(pthread_self(), j->f->loop_thread))
        j->f->off_loop = true;
    assert_false(j->done); /* exactly once */
    j->done = true;
    j->f->ndone++;
    j->ret = ret;
    j->err = err;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* Runs the loop until *flag holds (or, with count, until *count >= want). */
static bool run_until(struct fixture *f, const bool *flag, const int *count, int want)
{
    bool expired = false;
    struct timeval tv = {WAIT_MS / 1000, 0};
    struct event *t = evtimer_new(f->base, on_timeout, &expired);

    evtimer_add(t, &tv);
    while (!expired && !(flag && *flag) && !(count && *count >= want))
        event_base_loop(f->base, EVLOOP_ONCE);
    event_free(t);
    return !expired;
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct fixture *f, int ms)
{
    bool expired = false;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *t = evtimer_new(f->base, on_timeout, &expired);

    evtimer_add(t, &tv);
    while (!expired)
        event_base_loop(f->base, EVLOOP_ONCE);
    event_free(t);
}

static int run_job(struct fixture *f, struct job *j)
{
    j->f = f;
    j->done = false;
    free(j->err);
    j->err = NULL;
    assert_int_equal(virt_submit(f->v, work, done, j), 0);
    assert_true(run_until(f, &j->done, NULL, 0));
    return j->ret;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    f->loop_thread = pthread_self();
    f->base = event_base_new();
    assert_int_equal(virt_new(f->base, URI, &callbacks, f, &f->v), 0);
    /* After virt_new: the event implementation is registered by then. */
    f->peer = virConnectOpen(URI);
    assert_non_null(f->peer);
    assert_true(run_until(f, NULL, &f->ups, 1));
    *state = f;
    return 0;
}

/* Just the loop: for tests that make their own struct virt (one per
 * process at a time, as libvirt's event loop is global). */
static int setup_bare(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    f->loop_thread = pthread_self();
    f->base = event_base_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    virt_free(f->v);
    assert_false(f->off_loop);
    if (f->peer)
        virConnectClose(f->peer);
    event_base_free(f->base);
    free(f);
    return 0;
}

static char *make_xml(const char *iuuid, const char *vuuid, char **name)
{
    struct domxml_params p = {
        .vtpm_uuid = vuuid,
        .instance_uuid = iuuid,
        .kernel = "/usr/lib/xen/boot/vtpm-stubdom.gz",
        .memory_bytes = 8 << 20,
        .vtpmmgr_domain = "vtpmmgr",
        .rule = "r1",
        .host = "compute-1",
        .created = 1714564800,
    };
    char img[128], *xml = NULL;

    assert_int_equal(domxml_expand_name("vtpm-{uuid}", iuuid, NULL, name), 0);
    snprintf(img, sizeof(img), "/var/lib/vtpmd/images/%s.img", iuuid);
    p.name = *name;
    p.image_path = img;
    assert_int_equal(domxml_build(&p, &xml), 0);
    return xml;
}

static int peer_state(struct fixture *f, const char *name)
{
    virDomainPtr d = virDomainLookupByName(f->peer, name);
    int state = -1, reason;

    if (d == NULL)
        return -1; /* missing */
    assert_int_equal(virDomainGetState(d, &state, &reason, 0), 0);
    virDomainFree(d);
    return state;
}

static void job_clear(struct job *j)
{
    free(j->err);
    free(j->xml_out);
    virt_domain_info_free(j->list, j->n);
    memset(j, 0, sizeof(*j));
}

static void test_connected(void **state)
{
    struct fixture *f = *state;

    assert_true(virt_is_connected(f->v));
    assert_int_equal(f->ups, 1);
    assert_int_equal(f->downs, 0);
    assert_int_equal(virt_queue_length(f->v), 0);
}

static void test_define_start_idempotent(void **state)
{
    struct fixture *f = *state;
    const char *iu = "11111111-1111-4111-8111-111111111111";
    const char *vu = "aaaaaaaa-1111-4111-8111-111111111111";
    char *name = NULL, *xml = make_xml(iu, vu, &name);
    struct job j = {.op = OP_DEFINE_START, .xml = xml, .name = name};
    char uuid[VIR_UUID_STRING_BUFLEN], *meta;
    struct domxml_meta m;
    virDomainPtr d;

    assert_int_equal(run_job(f, &j), 0);
    assert_null(j.err);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_RUNNING);

    d = virDomainLookupByName(f->peer, name);
    assert_non_null(d);
    assert_int_equal(virDomainGetUUIDString(d, uuid), 0);
    assert_string_equal(uuid, vu);
    assert_int_equal(virDomainIsPersistent(d), 1);
    /* vtpmd's facts survive in libvirt; <vtpm> may not (unpatched). */
    meta = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, DOMXML_NS_URI, 0);
    assert_non_null(meta);
    assert_int_equal(domxml_parse_metadata(meta, &m), 0);
    assert_string_equal(m.instance_uuid, iu);
    assert_string_equal(m.vtpm_uuid, vu);
    assert_string_equal(m.rule, "r1");
    assert_int_equal(m.created, 1714564800);
    domxml_meta_clear(&m);
    free(meta);

    /* Again: still one running domain. */
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_RUNNING);

    /* Paused → resumed; stopped → started. */
    assert_int_equal(virDomainSuspend(d), 0);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_PAUSED);
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_RUNNING);
    assert_int_equal(virDomainDestroy(d), 0);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_SHUTOFF);
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_RUNNING);
    virDomainFree(d);

    j.op = OP_DESTROY;
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(peer_state(f, name), -1);
    job_clear(&j);
    free(xml);
    free(name);
}

static void test_define_conflicts(void **state)
{
    struct fixture *f = *state;
    const char *iu = "22222222-2222-4222-8222-222222222222";
    char *name = NULL, *xml = make_xml(iu, "bbbbbbbb-2222-4222-8222-222222222222", &name);
    char *name2 = NULL;
    char *xml2 = make_xml("22222222-2222-4222-8222-333333333333",
                          "bbbbbbbb-2222-4222-8222-222222222222", &name2);
    struct job j = {.op = OP_DEFINE_START, .xml = xml, .name = name};
    virDomainPtr d;
    char foreign[512];

    /* Someone else's domain holds the name (another UUID). */
    snprintf(foreign, sizeof(foreign),
             "<domain type='xen'><name>%s</name><uuid>cccccccc-2222-4222-8222-222222222222</uuid>"
             "<memory unit='KiB'>8192</memory><os><type machine='xenpv'>linux</type>"
             "<kernel>/k</kernel></os></domain>", name);
    d = virDomainDefineXML(f->peer, foreign);
    assert_non_null(d);
    assert_int_equal(run_job(f, &j), -EEXIST);
    assert_non_null(j.err);
    /* ... and destroy refuses to touch it: it carries no vtpmd metadata. */
    j.op = OP_DESTROY;
    assert_int_equal(run_job(f, &j), -EPERM);
    assert_non_null(strstr(j.err, "not ours"));
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_SHUTOFF);
    assert_int_equal(virDomainUndefine(d), 0);
    virDomainFree(d);

    /* Our vTPM UUID under another name. */
    j.op = OP_DEFINE_START;
    assert_int_equal(run_job(f, &j), 0);
    j.xml = xml2;
    j.name = name2;
    assert_int_equal(run_job(f, &j), -EEXIST);
    assert_int_equal(peer_state(f, name2), -1);

    /* XML naming another domain than the caller expects. */
    j.xml = xml;
    assert_int_equal(run_job(f, &j), -EINVAL);

    /* Invalid XML, hostile names, no connection. */
    j.xml = "<domain type='xen'><name>x</nam>";
    j.name = "x";
    assert_int_equal(run_job(f, &j), -EINVAL);
    assert_non_null(strstr(j.err, "define: "));
    j.name = "../../etc/x";
    assert_int_equal(run_job(f, &j), -EINVAL);
    j.op = OP_DESTROY;
    assert_int_equal(run_job(f, &j), -EINVAL);
    j.op = OP_GET_XML;
    assert_int_equal(run_job(f, &j), -EINVAL);
    assert_int_equal(virt_define_start(NULL, xml, name, 0, NULL), -ENOTCONN);
    assert_int_equal(virt_destroy_undefine(NULL, name, NULL), -ENOTCONN);
    assert_true(virt_error_transient(-ENOTCONN));
    assert_false(virt_error_transient(-EINVAL));

    j.op = OP_DESTROY;
    j.name = name;
    assert_int_equal(run_job(f, &j), 0);
    job_clear(&j);
    free(xml);
    free(xml2);
    free(name);
    free(name2);
}

/* libvirt.require_vtpm: a libvirt that refuses or drops <vtpm> never gets
 * the stub domain started; one with the series does. */
static void test_require_vtpm(void **state)
{
    struct fixture *f = *state;
    const char *iu = "44444444-1111-4111-8111-111111111111";
    const char *vu = "dddddddd-1111-4111-8111-111111111111";
    char *name = NULL, *xml = make_xml(iu, vu, &name);
    struct job j = {.op = OP_DEFINE_START, .xml = xml, .name = name,
                    .flags = VIRT_REQUIRE_VTPM};

    /* test:///default as it is: its schema refuses the device. Nothing
     * is defined. */
    assert_int_equal(run_job(f, &j), -ENODEV);
    assert_non_null(strstr(j.err, "schema refuses"));
    /* libvirt's own words, on one line (virt_error keeps them although
     * virConnectIsAlive resets the last error). */
    assert_non_null(strstr(j.err, "failed to validate against schema"));
    assert_null(strchr(j.err, '\n'));
    assert_int_equal(peer_state(f, name), -1);

    /* A libvirt that does not validate and drops the device: defined,
     * never started; the caller rolls back. */
    atomic_store(&lv_mode, LV_NO_VALIDATE);
    assert_int_equal(run_job(f, &j), -ENODEV);
    assert_non_null(strstr(j.err, "dropped the <vtpm> device"));
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_SHUTOFF);
    j.op = OP_DESTROY;
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(peer_state(f, name), -1);

    /* Without the flag it is not noticed (what test configurations use). */
    j.op = OP_DEFINE_START;
    j.flags = 0;
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_RUNNING);
    j.op = OP_DESTROY;
    assert_int_equal(run_job(f, &j), 0);

    /* A libvirt with the series keeps it: defined and started. */
    atomic_store(&lv_mode, LV_PATCHED);
    j.op = OP_DEFINE_START;
    j.flags = VIRT_REQUIRE_VTPM;
    assert_int_equal(run_job(f, &j), 0);
    assert_null(j.err);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_RUNNING);
    j.op = OP_DESTROY;
    assert_int_equal(run_job(f, &j), 0);
    atomic_store(&lv_mode, LV_REAL);

    /* The flag needs a device to require. */
    j.op = OP_DEFINE_START;
    j.xml = "<domain type='xen'><name>x</name><devices/></domain>";
    j.name = "x";
    assert_int_equal(run_job(f, &j), -EINVAL);
    job_clear(&j);
    free(xml);
    free(name);
}

/* The probe: defined, read back, undefined; the answer per libvirt. */
static void test_probe_vtpm(void **state)
{
    struct fixture *f = *state;
    struct job j = {.op = OP_PROBE};
    static const int modes[] = {LV_REAL, LV_NO_VALIDATE, LV_PATCHED};
    static const char *const why[] = {"schema refuses <vtpm>", "drops the <vtpm> device", NULL};

    for (size_t i = 0; i < 3; i++) {
        atomic_store(&lv_mode, modes[i]);
        j.n = 99;
        assert_int_equal(run_job(f, &j), 0);
        assert_int_equal(j.n, modes[i] == LV_PATCHED ? 1 : 0);
        if (why[i])
            assert_non_null(strstr(j.err, why[i]));
        else
            assert_null(j.err);
        /* Nothing left behind. */
        assert_int_equal(peer_state(f, VIRT_PROBE_NAME), -1);
    }
    atomic_store(&lv_mode, LV_REAL);
    /* A leftover probe domain (a crash between define and undefine) is
     * taken over and removed. */
    {
        char *xml = NULL;
        virDomainPtr d;

        assert_int_equal(domxml_build_probe(VIRT_PROBE_NAME, VIRT_PROBE_UUID, "/k", "vtpmmgr",
                                            &xml), 0);
        d = virDomainDefineXML(f->peer, xml);
        assert_non_null(d);
        virDomainFree(d);
        free(xml);
        assert_int_equal(peer_state(f, VIRT_PROBE_NAME), VIR_DOMAIN_SHUTOFF);
        atomic_store(&lv_mode, LV_NO_VALIDATE);
        assert_int_equal(run_job(f, &j), 0);
        assert_int_equal(j.n, 0);
        assert_int_equal(peer_state(f, VIRT_PROBE_NAME), -1);
        atomic_store(&lv_mode, LV_REAL);
    }
    job_clear(&j);
}

static void test_destroy_undefine(void **state)
{
    struct fixture *f = *state;
    char *name = NULL;
    char *xml = make_xml("33333333-3333-4333-8333-333333333333",
                         "dddddddd-3333-4333-8333-333333333333", &name);
    struct job j = {.op = OP_DESTROY, .name = name};
    virDomainPtr d;

    /* Missing is fine, twice. */
    assert_int_equal(run_job(f, &j), 0);
    assert_null(j.err);
    assert_int_equal(run_job(f, &j), 0);

    /* Defined but not running. */
    d = virDomainDefineXML(f->peer, xml);
    assert_non_null(d);
    virDomainFree(d);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_SHUTOFF);
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(peer_state(f, name), -1);

    /* Transient and running (undefined behind our back). */
    d = virDomainCreateXML(f->peer, xml, 0);
    assert_non_null(d);
    virDomainFree(d);
    assert_int_equal(peer_state(f, name), VIR_DOMAIN_RUNNING);
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(peer_state(f, name), -1);

    /* The driver's own "test" domain is not ours. */
    j.name = "test";
    assert_int_equal(run_job(f, &j), -EPERM);
    assert_int_equal(peer_state(f, "test"), VIR_DOMAIN_RUNNING);
    job_clear(&j);
    free(xml);
    free(name);
}

static void test_get_xml(void **state)
{
    struct fixture *f = *state;
    char *name = NULL;
    char *xml = make_xml("44444444-4444-4444-8444-444444444444",
                         "eeeeeeee-4444-4444-8444-444444444444", &name);
    struct job j = {.op = OP_GET_XML, .name = name};
    struct domxml_meta m;

    assert_int_equal(run_job(f, &j), -ENOENT);
    assert_non_null(j.err);
    assert_null(j.xml_out);

    j.op = OP_DEFINE_START;
    j.xml = xml;
    assert_int_equal(run_job(f, &j), 0);
    j.op = OP_GET_XML;
    assert_int_equal(run_job(f, &j), 0);
    assert_non_null(j.xml_out);
    assert_non_null(strstr(j.xml_out, name));
    assert_non_null(strstr(j.xml_out, "machine='xenpv'"));
    /* The whole dumpxml parses back to vtpmd's facts. */
    assert_int_equal(domxml_parse_metadata(j.xml_out, &m), 0);
    assert_string_equal(m.vtpm_uuid, "eeeeeeee-4444-4444-8444-444444444444");
    assert_string_equal(m.image_path,
                        "/var/lib/vtpmd/images/44444444-4444-4444-8444-444444444444.img");
    domxml_meta_clear(&m);

    j.op = OP_DESTROY;
    assert_int_equal(run_job(f, &j), 0);
    job_clear(&j);
    free(xml);
    free(name);
}

static void test_list(void **state)
{
    struct fixture *f = *state;
    const char *iu[3] = {"55555555-5555-4555-8555-000000000001",
                         "55555555-5555-4555-8555-000000000002",
                         "55555555-5555-4555-8555-000000000003"};
    const char *vu[3] = {"ffffffff-5555-4555-8555-000000000001",
                         "ffffffff-5555-4555-8555-000000000002",
                         "ffffffff-5555-4555-8555-000000000003"};
    char *name[3], *xml[3];
    struct job j = {0};
    virDomainPtr d;
    bool seen[3] = {false};

    for (int i = 0; i < 3; i++) {
        xml[i] = make_xml(iu[i], vu[i], &name[i]);
        j.op = OP_DEFINE_START;
        j.xml = xml[i];
        j.name = name[i];
        assert_int_equal(run_job(f, &j), 0);
    }
    /* One stopped; one foreign domain with broken metadata in our
     * namespace (skipped); the driver's "test" domain has none. */
    d = virDomainLookupByName(f->peer, name[1]);
    assert_int_equal(virDomainDestroy(d), 0);
    virDomainFree(d);
    d = virDomainDefineXML(f->peer,
                           "<domain type='xen'><name>broken-meta</name>"
                           "<memory unit='KiB'>8192</memory><os><type machine='xenpv'>linux</type>"
                           "<kernel>/k</kernel></os></domain>");
    assert_non_null(d);
    assert_int_equal(virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
                                          "<vtpm><vtpm-uuid>../../x</vtpm-uuid></vtpm>",
                                          DOMXML_NS_PREFIX, DOMXML_NS_URI, 0), 0);

    j.op = OP_LIST;
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(j.n, 3);
    for (size_t k = 0; k < j.n; k++) {
        for (int i = 0; i < 3; i++) {
            if (strcmp(j.list[k].name, name[i]) != 0)
                continue;
            seen[i] = true;
            assert_string_equal(j.list[k].meta.instance_uuid, iu[i]);
            assert_string_equal(j.list[k].meta.vtpm_uuid, vu[i]);
            assert_string_equal(j.list[k].meta.host, "compute-1");
            assert_int_equal(j.list[k].active, i != 1);
        }
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    virt_domain_info_free(j.list, j.n);
    j.list = NULL;

    assert_int_equal(virDomainUndefine(d), 0);
    virDomainFree(d);
    for (int i = 0; i < 3; i++) {
        j.op = OP_DESTROY;
        j.name = name[i];
        assert_int_equal(run_job(f, &j), 0);
        free(name[i]);
        free(xml[i]);
    }
    j.op = OP_LIST;
    assert_int_equal(run_job(f, &j), 0);
    assert_int_equal(j.n, 0);
    assert_null(j.list);
    job_clear(&j);
}

static bool has_event(struct fixture *f, const char *name, int event)
{
    char want[160];

    snprintf(want, sizeof(want), "%s:%d", name, event);
    for (int i = 0; i < f->nevents; i++) {
        if (strcmp(f->events[i], want) == 0)
            return true;
    }
    return false;
}

/* Defines, starts, destroys and undefines j's domain, with the events
 * seen from then on in f->events (until UNDEFINED, or 5 s). */
static void create_destroy_events(struct fixture *f, struct job *j)
{
    f->nevents = 0;
    j->op = OP_DEFINE_START;
    assert_int_equal(run_job(f, j), 0);
    j->op = OP_DESTROY;
    assert_int_equal(run_job(f, j), 0);
    /* Events are asynchronous: wait for the last one. */
    for (int tries = 0; tries < 100 && !has_event(f, j->name, VIR_DOMAIN_EVENT_UNDEFINED); tries++)
        run_for(f, 50);
}

/* Lifecycle events reach the loop thread, in order, for our domains. */
static void test_lifecycle_events(void **state)
{
    struct fixture *f = *state;
    char *name = NULL;
    char *xml = make_xml("66666666-6666-4666-8666-666666666666",
                         "abababab-6666-4666-8666-666666666666", &name);
    struct job j = {.op = OP_DEFINE_START, .xml = xml, .name = name};
    static const int want[] = {
        VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_STARTED,
        VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_UNDEFINED,
    };
    int k = 0;

    create_destroy_events(f, &j);
    for (int i = 0; i < f->nevents && k < 4; i++) {
        char w[160];

        snprintf(w, sizeof(w), "%s:%d", name, want[k]);
        if (strcmp(f->events[i], w) == 0)
            k++;
    }
    if (k != 4) {
        for (int i = 0; i < f->nevents; i++)
            print_message("event %s\n", f->events[i]);
        fail_msg("saw %d of the 4 lifecycle events in order", k);
    }
    assert_false(f->off_loop);
    job_clear(&j);
    free(xml);
    free(name);
}

/* With a mask, only the events asked for reach the loop. */
static void test_lifecycle_mask(void **state)
{
    struct fixture *f = *state;
    static const struct virt_callbacks masked = {
        .lifecycle = on_lifecycle,
        .connection = on_connection,
        .lifecycle_events = 1u << VIR_DOMAIN_EVENT_STOPPED | 1u << VIR_DOMAIN_EVENT_UNDEFINED,
    };
    char *name = NULL;
    char *xml = make_xml("77777777-6666-4666-8666-666666666666",
                         "cdcdcdcd-6666-4666-8666-666666666666", &name);
    struct job j = {.op = OP_DEFINE_START, .xml = xml, .name = name};

    assert_int_equal(virt_new(f->base, URI, &masked, f, &f->v), 0);
    f->peer = virConnectOpen(URI);
    assert_non_null(f->peer);
    assert_true(run_until(f, NULL, &f->ups, 1));
    create_destroy_events(f, &j);
    assert_true(has_event(f, name, VIR_DOMAIN_EVENT_STOPPED));
    assert_true(has_event(f, name, VIR_DOMAIN_EVENT_UNDEFINED));
    assert_false(has_event(f, name, VIR_DOMAIN_EVENT_DEFINED));
    assert_false(has_event(f, name, VIR_DOMAIN_EVENT_STARTED));
    job_clear(&j);
    free(xml);
    free(name);
}

/* Reconnect: the connection is dropped and reopened, reported down then
 * up, and jobs and lifecycle events work on the new connection. */
static void test_reconnect(void **state)
{
    struct fixture *f = *state;
    char *name = NULL;
    char *xml = make_xml("77777777-7777-4777-8777-777777777777",
                         "acacacac-7777-4777-8777-777777777777", &name);
    struct job j = {.op = OP_CONN};

    virt_set_backoff(f->v, 10, 100);
    virt_force_reconnect(f->v);
    assert_true(run_until(f, NULL, &f->ups, 2));
    assert_int_equal(f->downs, 1);
    assert_true(virt_is_connected(f->v));

    f->nevents = 0;
    j.op = OP_DEFINE_START;
    j.xml = xml;
    j.name = name;
    assert_int_equal(run_job(f, &j), 0);
    assert_true(j.had_conn);
    for (int tries = 0; tries < 100 && !has_event(f, name, VIR_DOMAIN_EVENT_STARTED); tries++)
        run_for(f, 50);
    assert_true(has_event(f, name, VIR_DOMAIN_EVENT_STARTED));
    j.op = OP_DESTROY;
    assert_int_equal(run_job(f, &j), 0);
    job_clear(&j);
    free(xml);
    free(name);
}

/* Many jobs at once: each completes exactly once, on the loop thread, and
 * the workers run them concurrently. */
static void test_many_concurrent_jobs(void **state)
{
    struct fixture *f = *state;
    enum { N = 400 };
    struct job *jobs = xcalloc(N, sizeof(*jobs));
    char **names = xcalloc(N, sizeof(char *)), **xmls = xcalloc(N, sizeof(char *));

    f->ndone = 0;
    for (int i = 0; i < N; i++) {
        char iu[37];

        snprintf(iu, sizeof(iu), "88888888-8888-4888-8888-%012d", i);
        xmls[i] = make_xml(iu, iu, &names[i]);
        jobs[i] = (struct job){.f = f, .op = OP_DEFINE_START, .xml = xmls[i], .name = names[i]};
        assert_int_equal(virt_submit(f->v, work, done, &jobs[i]), 0);
    }
    assert_true(run_until(f, NULL, &f->ndone, N));
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].ret, 0);
        assert_int_equal(peer_state(f, names[i]), VIR_DOMAIN_RUNNING);
        jobs[i].done = false;
        jobs[i].op = OP_DESTROY;
        assert_int_equal(virt_submit(f->v, work, done, &jobs[i]), 0);
    }
    assert_true(run_until(f, NULL, &f->ndone, 2 * N));
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].ret, 0);
        assert_int_equal(peer_state(f, names[i]), -1);
        free(names[i]);
        free(xmls[i]);
        free(jobs[i].err);
    }
    free(names);
    free(xmls);
    free(jobs);

    /* Concurrency, observed with jobs that just wait. */
    {
        struct job s[8];

        atomic_store(&running_max, 0);
        for (int i = 0; i < 8; i++) {
            s[i] = (struct job){.f = f, .op = OP_SLEEP, .sleep_ms = 100};
            assert_int_equal(virt_submit(f->v, work, done, &s[i]), 0);
        }
        for (int i = 0; i < 8; i++)
            assert_true(run_until(f, &s[i].done, NULL, 0));
        assert_true(atomic_load(&running_max) >= 2);
        assert_true(atomic_load(&running_max) <= VIRT_WORKERS_DEFAULT);
    }
    assert_false(f->off_loop);
}

/* virt_free with a queue full of jobs: it returns promptly, runs none of
 * the pending ones, calls no done callback, and leaks nothing. */
static void test_free_with_pending(void **state)
{
    struct fixture *f = *state;
    enum { N = 200 };
    struct job *jobs = xcalloc(N, sizeof(*jobs));
    struct virt *v;
    int calls;

    assert_int_equal(virt_new_workers(f->base, URI, 1, NULL, NULL, &v), 0);
    atomic_store(&work_calls, 0);
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.f = f, .op = OP_SLEEP, .sleep_ms = 20};
        assert_int_equal(virt_submit(v, work, done, &jobs[i]), 0);
    }
    usleep(50 * 1000);
    virt_free(v);
    calls = atomic_load(&work_calls);
    assert_true(calls < N / 2);
    /* Results that were queued for the loop are dropped with it. */
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    for (int i = 0; i < N; i++)
        assert_false(jobs[i].done);
    free(jobs);
    assert_int_equal(virt_new_workers(f->base, URI, 0, NULL, NULL, &v), -EINVAL);
    assert_int_equal(virt_new_workers(f->base, "", 1, NULL, NULL, &v), -EINVAL);
}

/* Points stderr at a fresh unlinked file; returns its fd. */
static int capture_stderr(int *saved)
{
    char path[] = "/tmp/vtpmd-test-virt-XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    *saved = dup(STDERR_FILENO);
    assert_true(*saved >= 0);
    dup2(fd, STDERR_FILENO);
    return fd;
}

/* Restores stderr; returns how many bytes were written meanwhile. */
static off_t release_stderr(int fd, int saved)
{
    struct stat st;

    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    return st.st_size;
}

/* A connection that cannot be made: reported down once, retried with
 * backoff, jobs run with conn NULL and fail fast with -ENOTCONN. */
static void test_unreachable(void **state)
{
    struct fixture *f = *state;
    struct job j = {.op = OP_CONN};
    int saved, fd = capture_stderr(&saved);

    /* The test driver reads a file at open: a missing one fails. */
    assert_int_equal(virt_new_workers(f->base, "test:///nonexistent/vtpmd-test.xml", 2,
                                      &callbacks, f, &f->v), 0);
    virt_set_backoff(f->v, 5, 20);
    assert_true(run_until(f, NULL, &f->downs, 1));
    assert_false(virt_is_connected(f->v));
    assert_int_equal(run_job(f, &j), -ENOTCONN);
    assert_false(j.had_conn);
    assert_string_equal(j.err, "not connected to libvirt");
    /* Several retries later: still one report. */
    run_for(f, 200);
    assert_int_equal(f->downs, 1);
    assert_int_equal(f->ups, 0);
    virt_free(f->v);
    f->v = NULL;
    /* Neither libvirt nor libxml2 said anything (log level is error). */
    assert_int_equal(release_stderr(fd, saved), 0);
    job_clear(&j);
}

/* libvirt errors are returned, never printed behind vtpmd's back. */
static void test_no_stderr(void **state)
{
    struct fixture *f = *state;
    struct job j = {.op = OP_DEFINE_START, .xml = "<domain", .name = "x"};
    int saved, fd = capture_stderr(&saved);

    assert_int_equal(run_job(f, &j), -EINVAL);
    j.op = OP_GET_XML;
    j.name = "no-such-domain";
    assert_int_equal(run_job(f, &j), -ENOENT);
    assert_null(virDomainLookupByName(f->peer, "no-such-domain-either"));
    assert_int_equal(release_stderr(fd, saved), 0);
    job_clear(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_define_start_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_define_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_vtpm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_vtpm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_undefine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_xml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle_mask, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_no_stderr, setup, teardown),
    };

    /* As main() does: before any event_base exists. */
    evthread_use_pthreads();
    log_init("test_virt", LOG_LEVEL_ERROR, LOG_TARGET_STDERR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
