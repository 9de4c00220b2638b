/* The engine's state machine, against link-time fakes of its neighbours
 * (tests/mocks/: bus and status, virt, vtpmmgr, image, journal; see
 * fakes.h). Each row of the table below starts an engine on a loaded
 * journal and a fake world (libvirt's domains, the image directory),
 * plays a script of notifications and events, answers every request of
 * the engine in the order it asked (failures injected through cmocka's
 * will_return queue) and compares what the engine did (acks, rejects,
 * status notifications, journal records, vtpmmgr and libvirt calls: one
 * trace) and the instance's final state.
 *
 * The engine's transitions (instance state / op, event -> effects, next).
 * Every one has a row (the row names start with its id).
 *
 * An idle instance and a notification (inst_kick):
 *  K1  none + create.start, the policy selects -> provisioning, op
 *      CREATE, step ACQUIRE; vtpm.create.start published
 *  K2  none + create.start, the policy denies -> ack, not remembered (the
 *      other format's copy may be selected: the legacy+versioned pair)
 *  K3  deleted + create.start -> ack (tombstone: a create after the
 *      delete does not resurrect the instance)
 *  K4  ready|failed|delete_failed + create.start -> ack (a duplicate: the
 *      other format's copy, or the same one again)
 *  K5  ready + create.start redelivered -> op RESEND, vtpm.create.end
 *      again, the delivery acked once confirmed
 *  K6  failed + create.start redelivered -> op RESEND, vtpm.create.error
 *  K7  ready|failed|delete_failed + delete.end|create.error -> deleting,
 *      op TEARDOWN, step REMOVE; vtpm.delete.start published
 *  K8  none + delete.end|create.error -> deleted in memory; ack
 *  K9  deleted by a teardown + delete.end redelivered -> op RESEND,
 *      vtpm.delete.end again
 *  K10 deleted + delete.end not redelivered, or not by a teardown -> ack
 *  K11 an instance with work under way + a notification -> queued, handled
 *      when the work ends; while draining, left queued
 *  K12 a notification for nothing of this host -> ack; malformed -> reject
 *
 * Create (op CREATE):
 *  C1  ACQUIRE ok -> step BUILD (worker: image, define and start)
 *  C2  ACQUIRE fails (answer or refused call) -> rollback
 *  C3  BUILD ok -> ready, step COMMIT: vtpm.create.end and journal ready
 *  C4  BUILD: libvirt not connected, within vtpmmgr.retry_for -> BUILD again
 *  C5  BUILD fails otherwise (or the window is over, or the job is
 *      refused) -> rollback
 *  C6  the domain name template gives no name -> rollback at once
 *  C7  local provider: vtpm.create.start waits for the build's outcome
 *
 * Rollback (op ROLLBACK):
 *  R1  REMOVE ok -> RELEASE; fails -> again within the window, then
 *      RELEASE anyway (reconciliation finds what is left)
 *  R2  RELEASE ok, failed or nothing to release -> failed, step COMMIT:
 *      vtpm.create.error and journal failed
 *
 * Teardown (op TEARDOWN):
 *  D1  REMOVE ok -> RELEASE; fails -> again within the window, then
 *      delete_failed, COMMIT: vtpm.delete.error and journal delete_failed
 *  D2  RELEASE ok or nothing to release -> deleted (torn down), COMMIT:
 *      vtpm.delete.end and journal deleted
 *  D3  RELEASE fails -> delete_failed, COMMIT: vtpm.delete.error
 *
 * Commit (step COMMIT):
 *  M1  status confirmed and journal written -> held deliveries acked,
 *      idle; the next queued notification goes on
 *  M2  status not confirmed -> sent again after a backoff; the ack waits
 *  M3  status refused (cannot be sent at all) -> the commit goes on
 *  M4  journal write fails -> written again after 1 s; the ack waits
 *  M5  image from a spare -> the image directory synced before the
 *      journal write; a failed sync -> again after 1 s
 *
 * Resend (op RESEND):
 *  S1  confirmed -> ack, idle, queued notifications go on
 *  S2  status refused -> ack, idle
 *  S3  reconciliation or a domain event during the resend -> a
 *      reconciliation again after it
 *
 * Reconciliation (idle instances, each pass; engine_reconcile.c):
 *  Q1  ready, domain missing or stopped -> op REPAIR (define and start
 *      again); ok -> idle, vtpm.domain.restarted
 *  Q2  repair finds the image missing -> failed, op REPAIR, COMMIT:
 *      vtpm.domain.error and journal failed (never a new image)
 *  Q3  repair fails otherwise -> idle, vtpm.domain.error (libvirt
 *      disconnected: nothing)
 *  Q4  ready, domain running -> nothing
 *  Q5  delete_failed -> the teardown again (D1..D3)
 *  Q6  failed|deleted|none with a domain or an image -> op CLEANUP
 *      (remove) -> idle
 *  Q7  work under way or notifications queued -> skipped
 *  Q8  a domain or an image without a record -> orphan, counted, left alone
 *  Q9  journal provisioning|deleting at start-up -> delete_failed (Q5)
 *  Q10 listing libvirt's domains fails -> postponed, nothing changes
 *
 * Lifecycle events (engine_domain_event):
 *  L1  ready, idle + stopped|crashed|undefined -> op REPAIR; beyond
 *      reconcile.restart_limit in 10 minutes: vtpm.domain.error once
 *  L2  not ready, busy, or not a domain of ours -> nothing
 *
 * Shutdown (engine_shutdown):
 *  X1  held and queued deliveries released (the broker redelivers them);
 *      answers that arrive afterwards change nothing
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "../mocks/fakes.h"
#include "cfg.h"
#include "vconfig.h"
#include "engine_priv.h"
#include "image.h"
#include "log.h"
#include "policy.h"
#include "uuidutil.h"
#include "vtpmmgr.h"
#include "xalloc.h"

#define UUID "11111111-2222-4333-8444-555555555555"
#define OTHER "99999999-2222-4333-8444-555555555555"
#define DOMAIN "vtpm-" UUID
#define HOST "host1"

/* ---- the world around one engine ---------------------------------- */

struct world {
    struct event_base *base;
    struct config *cfg;
    struct policy *policy;
    struct engine *e;
    char dir[64];
    int bus, vtpmmgr, virt, journal; /* the fakes' handles (never read) */
};

static struct world W;

static const char *const yaml =
    "host: " HOST "\n"
    "vtpmmgr:\n  provider: local\n  retry_for: 0\n"
    "reconcile:\n  interval: 0\n  restart_limit: 2\n"
    "policy:\n  default: deny\n  rules:\n"
    "    - name: specs\n      match:\n        flavor_extra_specs:\n"
    "          'hw:tpm_version': '2.0'\n"
    "    - name: flavor\n      match:\n        flavor: 'tpm.*'\n";

static void world_config(void)
{
    struct cfg_errors errs = {0};
    char *text;

    W.cfg = xcalloc(1, sizeof(*W.cfg));
    xasprintf(&text, "%simage:\n  dir: %s\n", yaml, W.dir);
    if (cfg_load_buffer(&config_table, "engine.yaml", text, strlen(text), W.cfg, &errs) < 0)
        fail_msg("%s", errs.n ? errs.msgs[0] : "config load failed");
    free(text);
}

static int world_setup(void **state)
{
    (void)state;
    fake_reset();
    strcpy(W.dir, "/tmp/test_engine.XXXXXX");
    assert_non_null(mkdtemp(W.dir));
    W.base = event_base_new();
    world_config();
    return 0;
}

/* The engine, once the row has set up the journal and the configuration. */
static void world_start(void)
{
    struct engine_deps deps = {
        .bus = (struct bus *)&W.bus,
        .vtpmmgr = (struct vtpmmgr *)&W.vtpmmgr,
        .virt = (struct virt *)&W.virt,
        .journal = (struct journal *)&W.journal,
    };

    assert_int_equal(policy_new(W.cfg, &W.policy), 0);
    assert_int_equal(engine_new(W.base, &deps, W.cfg, W.policy, &W.e), 0);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    while (d && (de = readdir(d))) {
        char *p;

        if (de->d_name[0] == '.')
            continue;
        xasprintf(&p, "%s/%s", dir, de->d_name);
        unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int world_teardown(void **state)
{
    (void)state;
    engine_free(W.e);
    policy_free(W.policy);
    config_free(W.cfg);
    event_base_free(W.base);
    remove_dir(W.dir);
    fake_reset();
    memset(&W, 0, sizeof(W));
    return 0;
}

/* A retry timer armed (the engine's only one-shot events; its other
 * timers persist). */
static int find_oneshot(const struct event_base *b, const struct event *ev, void *arg)
{
    (void)b;
    if (!(event_get_events(ev) & EV_PERSIST)) {
        *(bool *)arg = true;
        return 1;
    }
    return 0;
}

/* Answers every request, in order, waiting for retry timers. */
static void settle(void)
{
    for (;;) {
        bool timer = false;

        if (fake_step())
            continue;
        event_base_foreach_event(W.base, find_oneshot, &timer);
        if (!timer)
            break;
        event_base_loop(W.base, EVLOOP_ONCE);
    }
}

static struct inst *inst_of(const char *uuid)
{
    return hmap_get(W.e->insts, uuid);
}

static const char *state_of(const char *uuid)
{
    static const char *const names[] = {"none",     "provisioning",  "ready",  "failed",
                                        "deleting", "delete_failed", "deleted"};
    struct inst *in = inst_of(uuid);

    return in ? names[in->state] : "gone";
}

/* ---- notifications ------------------------------------------------ */

static char *envelope(json_t *inner)
{
    char *text = json_dumps(inner, 0), *out;
    json_t *env = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", text);

    out = json_dumps(env, 0);
    json_decref(env);
    json_decref(inner);
    free(text);
    return out;
}

/* c/C: create.start legacy/versioned of a flavor the policy selects;
 * p/P: of a plain flavor (the legacy copy is denied, the versioned one
 * selected by its extra specs); e/E: create.error; d/D: delete.end. */
static char *notification(char kind, const char *uuid)
{
    bool legacy = kind >= 'a';
    const char *ev;
    const char *flavor = (kind == 'p' || kind == 'P') ? "plain" : "tpm.small";

    switch (kind | 0x20) {
    case 'c':
    case 'p':
        ev = "create.start";
        break;
    case 'e':
        ev = "create.error";
        break;
    default:
        ev = "delete.end";
        break;
    }
    if (legacy) {
        char *type;
        json_t *m;

        xasprintf(&type, "compute.instance.%s", ev);
        m = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s}}", "event_type", type,
                      "publisher_id", "compute." HOST, "message_id", "m-legacy", "timestamp",
                      "2026-01-01 00:00:00.000000", "payload", "instance_id", uuid,
                      "tenant_id", "t1", "instance_type", flavor, "host", HOST);
        free(type);
        return envelope(m);
    } else {
        char *type;
        json_t *m;

        xasprintf(&type, "instance.%s", ev);
        m = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:{s:s,s:s,s:s,s:s,s:{s:{s:s,s:{s:s}}}}}}",
                      "event_type", type, "publisher_id", "nova-compute:" HOST, "message_id",
                      "m-versioned", "timestamp", "2026-01-01 00:00:00.000000", "payload",
                      "nova_object.name",
                      strcmp(ev, "create.start") == 0 ? "InstanceCreatePayload"
                                                      : "InstanceActionPayload",
                      "nova_object.data", "uuid", uuid, "tenant_id", "t1", "host", HOST,
                      "instance_name", "instance-0001", "flavor", "nova_object.data", "name",
                      flavor, "extra_specs", "hw:tpm_version",
                      kind == 'P' || kind == 'C' ? "2.0" : "none");
        free(type);
        return envelope(m);
    }
}

static void deliver_body(const char *body, bool redelivered)
{
    engine_deliver(fake_delivery(), body, strlen(body), "application/json", redelivered, W.e);
}

static void deliver(char kind, const char *uuid, bool redelivered)
{
    char *body = notification(kind, uuid);

    deliver_body(body, redelivered);
    free(body);
}

/* ---- the table ---------------------------------------------------- */

enum {
    F_RETRY = 1 << 0,   /* vtpmmgr.retry_for: 1 minute (else 0: no retries) */
    F_LOCAL = 1 << 1,   /* the local vtpmmgr provider */
    F_BADNAME = 1 << 2, /* libvirt.domain_name gives no valid name */
};

struct row {
    const char *name;
    int from;          /* the journal's record of UUID; -1: none */
    const char *world; /* "dom" (running), "stopped" (domain), "img" (image file) */
    const char *script;
    const char *fail;  /* injected results: "NAME=VALUE ..." in call order */
    const char *trace; /* expected effects, in order */
    const char *state; /* UUID's final state; "gone": no instance */
    unsigned flags;
};

/* Script, space separated: a notification (c C p P e E d D, see
 * notification(); prefixed by r: redelivered), "other" (another host's),
 * "bad" (malformed), "." (answer everything), "+N" (answer N requests), "up"/"down" (libvirt's
 * connection: up reconciles), "stop"/"crash" (lifecycle event of
 * UUID's domain), "drain", "shutdown", "orphans" (a domain and an
 * image of an instance without a record). The script ends with ".". */
static void play(const char *script)
{
    char *copy = xstrdup(script), *save = NULL;

    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        bool redelivered = t[0] == 'r' && t[1] != '\0' && t[2] == '\0';
        const char *k = redelivered ? t + 1 : t;

        if (strcmp(t, ".") == 0) {
            settle();
        } else if (t[0] == '+') {
            for (int n = atoi(t + 1); n > 0; n--)
                assert_true(fake_step());
        } else if (strcmp(t, "up") == 0) {
            engine_libvirt_state(W.e, true);
        } else if (strcmp(t, "down") == 0) {
            engine_libvirt_state(W.e, false);
        } else if (strcmp(t, "stop") == 0) {
            engine_domain_event(W.e, DOMAIN, VIR_DOMAIN_EVENT_STOPPED, 0);
        } else if (strcmp(t, "crash") == 0) {
            engine_domain_event(W.e, DOMAIN, VIR_DOMAIN_EVENT_CRASHED, 0);
        } else if (strcmp(t, "drain") == 0) {
            engine_drain(W.e);
        } else if (strcmp(t, "shutdown") == 0) {
            engine_shutdown(W.e);
        } else if (strcmp(t, "other") == 0) {
            const char *b = "{\"event_type\":\"compute.instance.create.start\","
                            "\"publisher_id\":\"compute.elsewhere\",\"payload\":{}}";
            deliver_body(b, false);
        } else if (strcmp(t, "bad") == 0) {
            deliver_body("{\"event_type\":\"compute.instance.create.start\"}", false);
        } else if (k[1] == '\0' && strchr("cCpPeEdD", k[0])) {
            deliver(k[0], UUID, redelivered);
        } else {
            fail_msg("bad script token '%s'", t);
        }
    }
    free(copy);
    settle();
}

struct counts {
    size_t by_state[ENGINE_STATES];
    size_t busy;
};

static void count_one(const char *key, void *value, void *arg)
{
    struct counts *c = arg;
    const struct inst *in = value;

    (void)key;
    c->by_state[in->state]++;
    c->busy += in->op != OP_IDLE;
}

/* The counters the transition functions keep match the instances. */
static void check_counters(void)
{
    struct counts c = {.busy = 0};

    hmap_foreach(W.e->insts, count_one, &c);
    for (int s = 0; s < ENGINE_STATES; s++)
        assert_int_equal(W.e->by_state[s], c.by_state[s]);
    assert_int_equal(engine_busy(W.e), c.busy);
}

static void touch_image(const char *uuid)
{
    char *path = NULL;
    int fd;

    assert_int_equal(image_path(W.dir, uuid, &path), 0);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    free(path);
}

static void load_record(enum journal_state s)
{
    struct journal_record r = {0};
    char *path = NULL;

    memcpy(r.instance_uuid, UUID, UUIDUTIL_BUFLEN);
    r.state = s;
    /* A failed create released its vTPM; a tombstone holds nothing. */
    if (s != JOURNAL_FAILED && s != JOURNAL_DELETED)
        memcpy(r.vtpm_uuid, FAKE_VTPM_UUID, UUIDUTIL_BUFLEN);
    if (s != JOURNAL_DELETED) {
        assert_int_equal(image_path(W.dir, UUID, &path), 0);
        r.domain_name = (char *)DOMAIN;
        r.image_path = path;
        r.rule = (char *)"flavor";
    }
    r.updated = time(NULL);
    fake_journal_load(&r);
    free(path);
}

static void inject(const char *fail)
{
    char *copy = xstrdup(fail), *save = NULL;

    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');

        assert_non_null(eq);
        *eq = '\0';
        fake_will(t, strtol(eq + 1, NULL, 0));
    }
    free(copy);
}

static void run_row(void **state)
{
    const struct row *r = *state;

    if (r->flags & F_RETRY)
        W.cfg->vtpmmgr.retry_for_ms = 60000;
    if (r->flags & F_BADNAME) {
        /* Past the configuration's own check (a rule could not pass it
         * either): the engine's last line of defence. */
        free(W.cfg->libvirt.domain_name);
        W.cfg->libvirt.domain_name = xstrdup("bad/{uuid}");
    }
    fake_vtpmmgr_local = r->flags & F_LOCAL;
    if (r->from >= 0)
        load_record((enum journal_state)r->from);
    if (r->world && strstr(r->world, "dom"))
        fake_domain_add(DOMAIN, UUID, true);
    if (r->world && strstr(r->world, "stopped"))
        fake_domain_add(DOMAIN, UUID, false);
    if (r->world && strstr(r->world, "img"))
        touch_image(UUID);
    if (r->fail)
        inject(r->fail);
    fake_defaults();
    world_start();
    play(r->script);
    assert_string_equal(fake_trace_get(), r->trace);
    assert_string_equal(state_of(UUID), r->state);
    check_counters();
    if (strstr(r->script, "shutdown") == NULL && strstr(r->script, "drain") == NULL) {
        struct inst *in = inst_of(UUID);

        assert_int_equal(engine_busy(W.e), 0);
        if (in) {
            assert_int_equal(in->op, OP_IDLE);
            assert_null(in->queue);
            assert_int_equal(in->nacks, 0);
        }
    }
}

#define NONE (-1)
#define CREATE_OK "acquire pub:create.start image+ define pub:create.end journal:ready ack:1"
#define TEARDOWN_OK "pub:delete.start undefine image- release pub:delete.end journal:deleted"
/* libvirt coming up first submits engine_vtpmcheck's <vtpm> probe (untraced
 * when it runs); a row that fails a later submit lets that one through. */
#define PROBE "virt_submit=0 "

static const struct row rows[] = {
    /* ---- an idle instance and a notification ---- */
    {"K1 C1 C3 M1 none + create.start (legacy) selected: provisioned", NONE, NULL, "c", NULL,
     CREATE_OK, "ready", 0},
    {"K1 none + create.start (versioned) selected", NONE, NULL, "C", NULL,
     CREATE_OK, "ready", 0},
    {"K2 none + create.start denied: acked, forgotten", NONE, NULL, "p", NULL,
     "ack:1", "gone", 0},
    {"K2 K1 legacy denied, then its versioned copy selected", NONE, NULL, "p P", NULL,
     "ack:1 acquire pub:create.start image+ define pub:create.end journal:ready ack:2",
     "ready", 0},
    {"K1 K11 K4 legacy+versioned pair: the copy waits, then is a duplicate", NONE, NULL, "c C",
     NULL, CREATE_OK " ack:2", "ready", 0},
    {"K4 ready + create.start: duplicate", JOURNAL_READY, "dom img", "c", NULL, "ack:1",
     "ready", 0},
    {"K4 failed + create.start: duplicate", JOURNAL_FAILED, NULL, "C", NULL, "ack:1", "failed",
     0},
    {"K4 delete_failed + create.start: duplicate", JOURNAL_DELETE_FAILED, NULL, "c", NULL,
     "ack:1", "delete_failed", 0},
    {"K4 delete_failed + create.start redelivered: duplicate, no resend",
     JOURNAL_DELETE_FAILED, NULL, "rc", NULL, "ack:1", "delete_failed", 0},
    {"K3 deleted + create.start: tombstone", JOURNAL_DELETED, NULL, "c", NULL, "ack:1",
     "deleted", 0},
    {"K3 create after delete (memory tombstone)", NONE, NULL, "d . c", NULL, "ack:1 ack:2",
     "deleted", 0},
    {"K3 create after a teardown", NONE, NULL, "c . d . C", NULL,
     CREATE_OK " " TEARDOWN_OK " ack:2 ack:3", "deleted", 0},
    {"K5 S1 ready + create.start redelivered: create.end again", JOURNAL_READY, "dom img", "rc",
     NULL, "pub:create.end ack:1", "ready", 0},
    {"K5 M1 the redelivered copy of a create under way: create.end again", NONE, NULL, "c rC",
     NULL, CREATE_OK " pub:create.end ack:2", "ready", 0},
    {"K6 failed + create.start redelivered: create.error again", JOURNAL_FAILED, NULL, "rC",
     NULL, "pub:create.error ack:1", "failed", 0},
    {"K7 D1 D2 M1 ready + delete.end: torn down", JOURNAL_READY, "dom img", "d", NULL,
     TEARDOWN_OK " ack:1", "deleted", 0},
    {"K7 ready + create.error (versioned): torn down", JOURNAL_READY, "dom img", "E", NULL,
     TEARDOWN_OK " ack:1", "deleted", 0},
    {"K7 D2 failed + delete.end: torn down, nothing to release", JOURNAL_FAILED, NULL, "D",
     NULL, "pub:delete.start undefine image- pub:delete.end journal:deleted ack:1", "deleted",
     0},
    {"K7 delete_failed + delete.end: torn down", JOURNAL_DELETE_FAILED, "dom", "d", NULL,
     TEARDOWN_OK " ack:1", "deleted", 0},
    {"K7 create.error of a create under way: torn down after it", NONE, NULL, "c e", NULL,
     CREATE_OK " " TEARDOWN_OK " ack:2", "deleted", 0},
    {"K8 none + delete.end: tombstone in memory", NONE, NULL, "d", NULL, "ack:1", "deleted", 0},
    {"K8 none + create.error: tombstone in memory", NONE, NULL, "E", NULL, "ack:1", "deleted",
     0},
    {"K9 S1 deleted + delete.end redelivered: delete.end again", JOURNAL_DELETED, NULL, "rd",
     NULL, "pub:delete.end ack:1", "deleted", 0},
    {"K9 legacy+versioned delete pair, both redelivered", JOURNAL_READY, "dom img", "rd rD",
     NULL, TEARDOWN_OK " ack:1 pub:delete.end ack:2", "deleted", 0},
    {"K10 deleted + delete.end: duplicate", JOURNAL_DELETED, NULL, "d", NULL, "ack:1",
     "deleted", 0},
    {"K10 memory tombstone + delete.end redelivered: no resend", NONE, NULL, "d . rD", NULL,
     "ack:1 ack:2", "deleted", 0},
    {"K11 delete.end while creating: queued, torn down after", NONE, NULL, "c d", NULL,
     CREATE_OK " " TEARDOWN_OK " ack:2", "deleted", 0},
    {"K11 draining: the queued event is left for the next vtpmd", NONE, NULL, "c d drain", NULL,
     CREATE_OK, "ready", 0},
    {"K12 another host's notification: acked", NONE, NULL, "other", NULL, "ack:1", "gone", 0},
    {"K12 malformed notification: rejected", NONE, NULL, "bad", NULL, "reject:1", "gone", 0},

    /* ---- create ---- */
    {"C2 R1 R2 acquire fails (transient): rolled back", NONE, NULL, "c", "vtpmmgr_acquire_cb=1",
     "acquire pub:create.start undefine image- pub:create.error journal:failed ack:1", "failed",
     0},
    {"C2 acquire fails (permanent): rolled back", NONE, NULL, "C", "vtpmmgr_acquire_cb=2",
     "acquire pub:create.start undefine image- pub:create.error journal:failed ack:1", "failed",
     0},
    {"C2 acquire refused at once: rolled back", NONE, NULL, "c", "vtpmmgr_acquire=-22",
     "acquire pub:create.start undefine image- pub:create.error journal:failed ack:1", "failed",
     0},
    {"C5 R1 R2 define fails: rolled back, vTPM released", NONE, NULL, "c",
     "virt_define_start=-5",
     "acquire pub:create.start image+ define undefine image- release pub:create.error "
     "journal:failed ack:1", "failed", 0},
    {"C5 disk full: rolled back", NONE, NULL, "c", "image_pool_create=-28",
     "acquire pub:create.start image+ undefine image- release pub:create.error journal:failed "
     "ack:1", "failed", 0},
    {"C5 libvirt down, no retry window: rolled back", NONE, NULL, "c",
     "virt_define_start=-107",
     "acquire pub:create.start image+ define undefine image- release pub:create.error "
     "journal:failed ack:1", "failed", 0},
    {"C5 build job refused: rolled back", NONE, NULL, "c", "virt_submit=-5",
     "acquire pub:create.start submit-failed undefine image- release pub:create.error "
     "journal:failed ack:1", "failed", 0},
    {"C4 libvirt down within the window: build again", NONE, NULL, "c",
     "virt_define_start=-107",
     "acquire pub:create.start image+ define image+ define pub:create.end journal:ready ack:1",
     "ready", F_RETRY},
    {"C6 no valid domain name: rolled back at once", NONE, NULL, "c", NULL,
     "image- pub:create.error journal:failed ack:1", "failed", F_BADNAME},
    {"C7 local provider: create.start just before the outcome", NONE, NULL, "c", NULL,
     "acquire image+ define pub:create.start pub:create.end journal:ready ack:1", "ready",
     F_LOCAL},
    {"C7 local provider, acquire fails: create.start before the error", NONE, NULL, "c",
     "vtpmmgr_acquire_cb=2",
     "acquire pub:create.start undefine image- pub:create.error journal:failed ack:1", "failed",
     F_LOCAL},

    /* ---- rollback ---- */
    {"R1 removal fails in a rollback: released anyway", NONE, NULL, "c",
     "virt_define_start=-5 virt_destroy_undefine_for=-5",
     "acquire pub:create.start image+ define undefine release pub:create.error journal:failed "
     "ack:1", "failed", 0},
    {"R1 removal fails in a rollback, then works within the window", NONE, NULL, "c",
     "virt_define_start=-5 image_remove=-5",
     "acquire pub:create.start image+ define undefine image- undefine image- release "
     "pub:create.error journal:failed ack:1", "failed", F_RETRY},
    {"R2 release fails in a rollback: failed all the same", NONE, NULL, "c",
     "virt_define_start=-5 vtpmmgr_release_cb=1",
     "acquire pub:create.start image+ define undefine image- release pub:create.error "
     "journal:failed ack:1", "failed", 0},
    {"R2 release refused in a rollback: failed all the same", NONE, NULL, "c",
     "virt_define_start=-5 vtpmmgr_release=-5",
     "acquire pub:create.start image+ define undefine image- release pub:create.error "
     "journal:failed ack:1", "failed", 0},

    /* ---- teardown ---- */
    {"D1 removal fails: delete_failed", JOURNAL_READY, "dom img", "d",
     "virt_destroy_undefine_for=-5",
     "pub:delete.start undefine pub:delete.error journal:delete_failed ack:1", "delete_failed",
     0},
    {"D1 removal fails, then works within the window", JOURNAL_READY, "dom img", "d",
     "virt_destroy_undefine_for=-107",
     "pub:delete.start undefine undefine image- release pub:delete.end journal:deleted ack:1",
     "deleted", F_RETRY},
    {"D1 removal job refused: delete_failed", JOURNAL_READY, "dom img", "d", "virt_submit=-5",
     "pub:delete.start submit-failed pub:delete.error journal:delete_failed ack:1",
     "delete_failed", 0},
    {"D3 release fails: delete_failed", JOURNAL_READY, "dom img", "d", "vtpmmgr_release_cb=1",
     "pub:delete.start undefine image- release pub:delete.error journal:delete_failed ack:1",
     "delete_failed", 0},
    {"D3 release refused: delete_failed", JOURNAL_READY, "dom img", "d", "vtpmmgr_release=-5",
     "pub:delete.start undefine image- release pub:delete.error journal:delete_failed ack:1",
     "delete_failed", 0},
    {"D3 K7 delete_failed + delete.end again: torn down", JOURNAL_READY, "dom img", "d . rd",
     "vtpmmgr_release_cb=1",
     "pub:delete.start undefine image- release pub:delete.error journal:delete_failed ack:1 "
     "pub:delete.start undefine image- release pub:delete.end journal:deleted ack:2",
     "deleted", 0},

    /* ---- commit ---- */
    {"M2 create.end not confirmed: sent again, then acked", NONE, NULL, "c",
     "status_confirm=0 status_confirm=-5",
     "acquire pub:create.start image+ define pub:create.end journal:ready pub:create.end ack:1",
     "ready", 0},
    {"M2 create.start not confirmed: sent again, the create goes on", NONE, NULL, "c",
     "status_confirm=-5",
     "acquire pub:create.start image+ define pub:create.end journal:ready ack:1 "
     "pub:create.start", "ready", 0},
    {"M2 outbox full: sent again", NONE, NULL, "c", "status_publish=0 status_publish=-105",
     "acquire pub:create.start image+ define pub:create.end journal:ready pub:create.end ack:1",
     "ready", 0},
    {"M3 create.end refused: the commit goes on", NONE, NULL, "c",
     "status_publish=0 status_publish=-22",
     "acquire pub:create.start image+ define pub:create.end journal:ready ack:1", "ready", 0},
    {"M4 journal write fails: written again, then acked", NONE, NULL, "c", "journal_put=-5",
     "acquire pub:create.start image+ define pub:create.end journal:ready journal:ready ack:1",
     "ready", 0},
    {"M5 image from a spare: synced before the journal", NONE, NULL, "c", "image_pool_spare=1",
     "acquire pub:create.start image+ define pub:create.end sync journal:ready ack:1", "ready",
     0},
    {"M5 the spare's sync fails: synced again", NONE, NULL, "c",
     "image_pool_spare=1 image_pool_sync=-5",
     "acquire pub:create.start image+ define pub:create.end sync sync journal:ready ack:1",
     "ready", 0},
    {"M5 the sync job refused: again", NONE, NULL, "c",
     "image_pool_spare=1 virt_submit=0 virt_submit=-5",
     "acquire pub:create.start image+ define pub:create.end submit-failed sync journal:ready "
     "ack:1", "ready", 0},

    /* ---- resend ---- */
    {"S1 K11 a delete waits for the resend's confirm", JOURNAL_READY, "dom img", "rc d", NULL,
     "pub:create.end ack:1 " TEARDOWN_OK " ack:2", "deleted", 0},
    {"S1 M2 the resend not confirmed: sent again, then acked", JOURNAL_READY, "dom img", "rc",
     "status_confirm=-5", "pub:create.end pub:create.end ack:1", "ready", 0},
    {"S2 the resend refused: acked, idle", JOURNAL_READY, "dom img", "rc",
     "status_publish=-22", "pub:create.end ack:1", "ready", 0},
    {"S2 the resend of delete.end refused: acked", JOURNAL_DELETED, NULL, "rd",
     "status_publish=-22", "pub:delete.end ack:1", "deleted", 0},
    {"S3 Q1 reconciliation during a resend runs again after it", JOURNAL_READY, "img",
     "up rc", NULL,
     "pub:create.end list ack:1 list image+ define pub:domain.restarted", "ready", 0},
    {"S3 a domain event during a resend: reconciliation after it", JOURNAL_READY, "stopped img",
     "rc stop", NULL,
     "pub:create.end ack:1 list image+ define pub:domain.restarted", "ready", 0},

    /* ---- reconciliation ---- */
    {"Q1 ready, domain missing: defined and started again", JOURNAL_READY, "img", "up", NULL,
     "list image+ define pub:domain.restarted", "ready", 0},
    {"Q1 ready, domain stopped: started again", JOURNAL_READY, "stopped img", "up", NULL,
     "list image+ define pub:domain.restarted", "ready", 0},
    {"Q2 ready, image missing: failed, never a new image", JOURNAL_READY, NULL, "up", NULL,
     "list pub:domain.error journal:failed", "failed", 0},
    {"Q3 repair fails: domain.error, still ready", JOURNAL_READY, "img", "up",
     "virt_define_start=-5", "list image+ define pub:domain.error", "ready", 0},
    {"Q3 repair with libvirt gone: nothing", JOURNAL_READY, "img", "up",
     "virt_define_start=-107", "list image+ define", "ready", 0},
    {"Q3 repair job refused: domain.error", JOURNAL_READY, "img", "up",
     PROBE "virt_submit=0 virt_submit=-5", "list submit-failed pub:domain.error", "ready", 0},
    {"Q4 ready, domain running: nothing", JOURNAL_READY, "dom img", "up", NULL, "list", "ready",
     0},
    {"Q5 delete_failed: torn down again", JOURNAL_DELETE_FAILED, "dom img", "up", NULL,
     "list " TEARDOWN_OK, "deleted", 0},
    {"Q6 failed with a domain: removed", JOURNAL_FAILED, "dom img", "up", NULL,
     "list undefine image-", "failed", 0},
    {"Q6 deleted with an image: removed", JOURNAL_DELETED, "img", "up", NULL, "list image-",
     "deleted", 0},
    {"Q6 failed, nothing left: nothing", JOURNAL_FAILED, NULL, "up", NULL, "list", "failed", 0},
    {"Q6 cleanup fails: logged, stays", JOURNAL_FAILED, "dom img", "up",
     "virt_destroy_undefine_for=-5", "list undefine", "failed", 0},
    {"Q6 cleanup job refused", JOURNAL_FAILED, "dom img", "up",
     PROBE "virt_submit=0 virt_submit=-5",
     "list submit-failed", "failed", 0},
    {"Q7 busy instance: skipped by reconciliation", NONE, NULL, "c up", NULL,
     "acquire pub:create.start list image+ define pub:create.end journal:ready ack:1", "ready",
     0},
    {"Q9 journal provisioning at start-up: torn down", JOURNAL_PROVISIONING, "dom img", "up",
     NULL, "list " TEARDOWN_OK, "deleted", 0},
    {"Q9 journal deleting at start-up: torn down", JOURNAL_DELETING, "img", "up", NULL,
     "list " TEARDOWN_OK, "deleted", 0},
    {"Q10 listing fails: postponed", JOURNAL_READY, "img", "up", "virt_list_vtpmd=-5", "list",
     "ready", 0},
    {"Q10 libvirt down at the pass: postponed", JOURNAL_READY, "img", "down up",
     PROBE "virt_submit=-107", "submit-failed", "ready", 0},

    /* ---- lifecycle events ---- */
    {"L1 ready domain stopped: started again", JOURNAL_READY, "dom img", "stop", NULL,
     "image+ define pub:domain.restarted", "ready", 0},
    {"L1 ready domain crashed, beyond the limit: domain.error once", JOURNAL_READY, "dom img",
     "crash . crash . crash . crash", NULL,
     "image+ define pub:domain.restarted image+ define pub:domain.restarted pub:domain.error",
     "ready", 0},
    {"L2 failed instance's domain stopped: nothing", JOURNAL_FAILED, "dom img", "stop", NULL,
     "", "failed", 0},
    {"L2 busy instance's domain stopped: nothing", JOURNAL_READY, "dom img", "d stop", NULL,
     TEARDOWN_OK " ack:1", "deleted", 0},

    /* ---- shutdown ---- */
    {"X1 shutdown during a create: deliveries released, nothing after", NONE, NULL,
     "c shutdown", NULL, "acquire pub:create.start ack:1 image+ define", "provisioning", 0},
    {"X1 shutdown during the commit: the ack is dropped", NONE, NULL,
     "c +3 shutdown", NULL,
     "acquire pub:create.start image+ define pub:create.end journal:ready ack:1", "ready", 0},
};

/* Q8: what reconciliation finds with no record is counted and left alone. */
static void test_orphans(void **state)
{
    (void)state;
    fake_domain_add("vtpm-" OTHER, OTHER, true);
    touch_image("aaaaaaaa-2222-4333-8444-555555555555");
    fake_defaults();
    world_start();
    play("up");
    assert_string_equal(fake_trace_get(), "list");
    assert_int_equal(W.e->orphan_domains, 1);
    assert_int_equal(W.e->orphan_images, 1);
    assert_true(engine_reconciled(W.e));
    assert_string_equal(state_of(OTHER), "gone");
    check_counters();
}

/* What the journal is told: the record of a create, then of its rollback
 * (a failed create holds no vTPM: it was released). */
static void test_records(void **state)
{
    struct inst *in;

    (void)state;
    fake_will(FAKE_DEFINE, -EIO);
    fake_defaults();
    world_start();
    play("C");
    in = inst_of(UUID);
    assert_non_null(in);
    assert_string_equal(in->vtpm_uuid, "");
    assert_string_equal(in->domain_name, DOMAIN);
    assert_string_equal(in->rule, "specs");
    assert_string_equal(in->instance_name, "instance-0001");
    assert_string_equal(in->error_code, "provisioning_failed");
    assert_null(in->image_path);
    play("rD");
    assert_string_equal(state_of(UUID), "deleted");
    assert_null(inst_of(UUID)->error);
}

int main(void)
{
    size_t n = sizeof(rows) / sizeof(rows[0]);
    struct CMUnitTest *tests = xcalloc(n + 2, sizeof(*tests));
    int ret;

    /* TEST_ENGINE_DEBUG=1: the engine's own account of each row. */
    log_init("test_engine", getenv("TEST_ENGINE_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
             LOG_TARGET_STDERR);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = rows[i].name;
        tests[i].test_func = run_row;
        tests[i].setup_func = world_setup;
        tests[i].teardown_func = world_teardown;
        tests[i].initial_state = (void *)&rows[i];
    }
    tests[n] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(test_orphans, world_setup,
                                                                  world_teardown);
    tests[n].name = "Q8 a domain and an image without a record: orphans, left alone";
    tests[n + 1] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(test_records, world_setup,
                                                                      world_teardown);
    tests[n + 1].name = "C5 R2 K7 the instance's record through a rollback and a teardown";
    ret = _cmocka_run_group_tests("engine", tests, n + 2, NULL, NULL);
    free(tests);
    return ret;
}
