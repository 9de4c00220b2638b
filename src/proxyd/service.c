/* vtpm-proxyd's logic, see include/proxyd/service.h.
 *
 * Two sides. The job side (functions named work_* and what they call)
 * runs on the job thread: it owns the device and the group index cache,
 * and it is the only writer of record files, so a job sees the record
 * directory exactly as every earlier job left it. The loop side (the
 * public functions and done_*) owns the in-memory index, the requests in
 * flight and the health state. Jobs carry a copy of the settings they
 * need, so a reload never races with the job thread. */
#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "proxyd/jobq.h"
#include "proxyd/mgrdev.h"
#include "proxyd/mgrproto.h"
#include "proxyd/service.h"
#include "xalloc.h"

/* vtpmmgr keeps its vTPMs in memory pages; a count above this is garbage. */
#define LIST_MAX (1u << 20)
/* A group whose count changes on every page is listed again, this often. */
#define LIST_ATTEMPTS 5
#define RETRY_MAX_S 60

enum job_kind {
    JOB_CREATE,
    JOB_LEGACY,
    JOB_DELETE,
    JOB_RECONCILE,
};

enum link_state {
    LINK_UNKNOWN = 0,
    LINK_OK,
    LINK_DOWN,
    LINK_TIMEOUT,
    LINK_GARBAGE,
};

/* The settings a job runs with, copied when it is submitted. */
struct env {
    bool has_group;
    uint8_t group[16];
    uint64_t timeout_ms;
    int orphans;
    int missing;
};

/* Job thread only. */
struct wside {
    struct mgrdev *dev;
    uint8_t buf[MGRPROTO_MAX_MSG];
    bool cached;           /* idx/uuid are valid for the cached setting */
    bool cached_has_group;
    uint8_t cached_for[16];
    uint32_t idx;
    uint8_t uuid[16];
};

struct waiter {
    service_cb cb;
    void *arg;
    struct waiter *next;
};

struct job {
    struct service *s;
    enum job_kind kind;
    struct env env;
    struct store_rec rec;
    struct waiter *waiters;     /* create, delete */
    struct job *next;           /* s->inflight */
    service_report_cb rcb;      /* reconcile */
    void *rarg;
    bool startup;               /* the start-up reconcile (retried) */

    /* Outcome, written on the job thread. */
    struct service_result res;
    bool rec_gone;              /* delete: the record file is gone */
    enum link_state link;
    bool refused;               /* failed on vtpmmgr's status 1 */
    bool group_ok;
    uint32_t group_idx;
    uint8_t group_uuid[16];
    struct service_report rep;
};

struct service {
    struct event_base *base;
    struct store *store;
    char *recdir;               /* immutable: read by jobs too */
    struct jobq *q;
    struct wside *w;
    struct env env;
    struct job *inflight;       /* create and delete jobs, for coalescing */

    enum link_state link;
    bool refused;
    char link_msg[320];
    bool group_known;
    uint32_t group_idx;
    uint8_t group_uuid[16];
    bool reconciled;
    size_t last_orphans, last_missing;

    bool started;               /* the start-up reconcile succeeded */
    struct event *retry;
    unsigned backoff_s;

    bool stopping;
    bool drained_called;
    void (*drained)(void *arg);
    void *drained_arg;
};

static void set_env(struct env *e, const struct pconfig *cfg)
{
    e->has_group = cfg->has_group;
    memcpy(e->group, cfg->group_uuid, 16);
    e->timeout_ms = cfg->vtpmmgr.timeout_ms;
    e->orphans = cfg->orphans;
    e->missing = cfg->missing;
}

static void uuids_push(struct service_uuids *l, const uint8_t *u)
{
    l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
    memcpy(l->v[l->n++], u, 16);
}

static bool uuids_has(const struct service_uuids *l, const uint8_t *u)
{
    for (size_t i = 0; i < l->n; i++) {
        if (memcmp(l->v[i], u, 16) == 0)
            return true;
    }
    return false;
}

static void report_free(struct service_report *r)
{
    free(r->orphans.v);
    free(r->missing.v);
    free(r->duplicated.v);
    free(r->deleted.v);
    free(r->recreated.v);
    free(r->finished.v);
    free(r->in_use.v);
}

static void job_free(struct job *j)
{
    while (j->waiters) {
        struct waiter *w = j->waiters;

        j->waiters = w->next;
        free(w);
    }
    report_free(&j->rep);
    free(j);
}

static void resultf(struct job *j, enum service_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void resultf(struct job *j, enum service_code code, const char *fmt, ...)
{
    va_list ap;

    j->res.code = code;
    va_start(ap, fmt);
    vsnprintf(j->res.message, sizeof(j->res.message), fmt, ap);
    va_end(ap);
}

/* ---- job thread ---------------------------------------------------- */

static uint32_t req_ord(const uint8_t *req)
{
    return ((uint32_t)req[6] << 24) | ((uint32_t)req[7] << 16) |
           ((uint32_t)req[8] << 8) | req[9];
}

static void fail_garbage(struct job *j, uint32_t ord, const char *why)
{
    j->link = LINK_GARBAGE;
    /* What is left on the device cannot be trusted: start over. */
    mgrdev_close(j->s->w->dev);
    resultf(j, SERVICE_BAD_GATEWAY, "vtpmmgr answered %s with garbage: %s",
            mgrproto_ord_name(ord), why);
}

static void fail_status(struct job *j, uint32_t ord, uint32_t status)
{
    j->refused = status == MGRPROTO_ST_AUTHFAIL;
    resultf(j, SERVICE_BAD_GATEWAY, "vtpmmgr refused %s: status %" PRIu32 " (%s)",
            mgrproto_ord_name(ord), status, mgrproto_status_str(status));
}

/* One command. Returns vtpmmgr's status (>= 0), or < 0 after recording a
 * transport or framing failure in the job's result. */
static int cmd(struct job *j, const uint8_t *req, size_t len,
               struct mgrproto_rsp *rsp)
{
    struct wside *w = j->s->w;
    uint32_t ord = req_ord(req);
    const char *why = "";
    size_t rlen = 0;
    int ret;

    ret = mgrdev_transact(w->dev, req, len, w->buf, sizeof(w->buf), &rlen,
                          j->env.timeout_ms, &why);
    if (ret == -ETIMEDOUT) {
        j->link = LINK_TIMEOUT;
        resultf(j, SERVICE_TIMEOUT, "vtpmmgr did not answer %s within %" PRIu64 " ms",
                mgrproto_ord_name(ord), j->env.timeout_ms);
        return ret;
    }
    if (ret == -EPROTO) {
        fail_garbage(j, ord, why);
        return ret;
    }
    if (ret < 0) {
        j->link = LINK_DOWN;
        resultf(j, SERVICE_UNAVAILABLE, "vtpmmgr device unavailable: %s: %s",
                why, strerror(-ret));
        return ret;
    }
    if (mgrproto_parse(w->buf, rlen, rsp, &why) < 0) {
        fail_garbage(j, ord, why);
        return -EPROTO;
    }
    j->link = LINK_OK;
    log_debug("vtpmmgr command=%s status=%" PRIu32 " bytes=%zu",
              mgrproto_ord_name(ord), rsp->status, rlen);
    return (int)rsp->status;
}

static int show_group(struct job *j, uint32_t idx, uint8_t *uuid, int *status)
{
    uint8_t req[MGRPROTO_REQ_MAX];
    struct mgrproto_rsp rsp;
    const char *why;
    int st = cmd(j, req, mgrproto_group_show(req, idx), &rsp);

    if (st < 0)
        return st;
    *status = st;
    if (st == 0 && mgrproto_group_show_body(&rsp, uuid, &why) < 0) {
        fail_garbage(j, MGRPROTO_ORD_GROUP_SHOW, why);
        return -EPROTO;
    }
    return 0;
}

static void group_found(struct job *j, uint32_t idx, const uint8_t *uuid)
{
    struct wside *w = j->s->w;

    w->cached = true;
    w->cached_has_group = j->env.has_group;
    memcpy(w->cached_for, j->env.group, 16);
    w->idx = idx;
    memcpy(w->uuid, uuid, 16);
    j->group_ok = true;
    j->group_idx = idx;
    memcpy(j->group_uuid, uuid, 16);
}

/* Finds the index of the configured group. Indices shift when a group is
 * deleted, so a cached index is checked with GROUP_SHOW before use. */
static int ensure_group(struct job *j)
{
    struct wside *w = j->s->w;
    uint8_t req[MGRPROTO_REQ_MAX], uuid[16];
    char want[IDS_UUID_STR];
    struct mgrproto_rsp rsp;
    uint32_t count;
    const char *why;
    int st, ret;

    if (!j->env.has_group) {
        /* The contract's default: whatever group sits at index 0. Shown
         * every time: on TPM 2.0 hosts it is a new group after each
         * vtpmmgr restart, and health reports its UUID. */
        if ((ret = show_group(j, 0, uuid, &st)) < 0)
            return ret;
        if (st == MGRPROTO_ST_BADINDEX) {
            resultf(j, SERVICE_UNAVAILABLE, "vtpmmgr has no group at index 0");
            return -ENOENT;
        }
        if (st != 0) {
            fail_status(j, MGRPROTO_ORD_GROUP_SHOW, (uint32_t)st);
            return -EPERM;
        }
        group_found(j, 0, uuid);
        return 0;
    }
    if (w->cached && w->cached_has_group && memcmp(w->cached_for, j->env.group, 16) == 0) {
        if ((ret = show_group(j, w->idx, uuid, &st)) < 0)
            return ret;
        if (st == 0 && memcmp(uuid, j->env.group, 16) == 0) {
            group_found(j, w->idx, uuid);
            return 0;
        }
        log_info("the group's index moved, resolving it again index=%" PRIu32, w->idx);
    }
    w->cached = false;
    st = cmd(j, req, mgrproto_group_list(req), &rsp);
    if (st < 0)
        return st;
    if (st != 0) {
        fail_status(j, MGRPROTO_ORD_GROUP_LIST, (uint32_t)st);
        return -EPERM;
    }
    if (mgrproto_group_list_body(&rsp, &count, &why) < 0) {
        fail_garbage(j, MGRPROTO_ORD_GROUP_LIST, why);
        return -EPROTO;
    }
    for (uint32_t i = 0; i < count && i < LIST_MAX; i++) {
        if ((ret = show_group(j, i, uuid, &st)) < 0)
            return ret;
        /* Status 1: a group that is not unsealed; it cannot be ours. */
        if (st == 0 && memcmp(uuid, j->env.group, 16) == 0) {
            group_found(j, i, uuid);
            return 0;
        }
    }
    ids_format_uuid(j->env.group, want);
    resultf(j, SERVICE_UNAVAILABLE, "vtpmmgr group %s not found among its %" PRIu32 " groups",
            want, count);
    return -ENOENT;
}

/* Every vTPM UUID of the group, in as many VTPM_LIST pages as it takes
 * (one answer holds at most about 254 through the Xen TPM ring). */
static int list_all(struct job *j, struct service_uuids *out)
{
    uint8_t req[MGRPROTO_REQ_MAX];
    struct mgrproto_rsp rsp;
    const char *why;

    for (int attempt = 0; attempt < LIST_ATTEMPTS; attempt++) {
        struct service_uuids l = {0};
        uint32_t first_total = 0, offset = 0;
        bool changed = false;

        for (;;) {
            const uint8_t *uuids;
            uint32_t total;
            size_t n;
            int st = cmd(j, req, mgrproto_vtpm_list(req, j->group_idx, offset), &rsp);

            if (st != 0) {
                if (st > 0)
                    fail_status(j, MGRPROTO_ORD_VTPM_LIST, (uint32_t)st);
                free(l.v);
                return st < 0 ? st : -EPERM;
            }
            if (mgrproto_vtpm_list_body(&rsp, &total, &uuids, &n, &why) < 0) {
                fail_garbage(j, MGRPROTO_ORD_VTPM_LIST, why);
                free(l.v);
                return -EPROTO;
            }
            if (offset == 0) {
                first_total = total;
                if (total > LIST_MAX) {
                    fail_garbage(j, MGRPROTO_ORD_VTPM_LIST, "implausible vTPM count");
                    free(l.v);
                    return -EPROTO;
                }
            } else if (total != first_total) {
                changed = true; /* a vTPM came or went between pages */
                break;
            }
            if (n > total - offset || (n == 0 && offset < total)) {
                fail_garbage(j, MGRPROTO_ORD_VTPM_LIST,
                             "page does not fit the count it announces");
                free(l.v);
                return -EPROTO;
            }
            for (size_t i = 0; i < n; i++)
                uuids_push(&l, uuids + i * 16);
            offset += (uint32_t)n;
            if (offset >= total)
                break;
        }
        if (!changed) {
            *out = l;
            return 0;
        }
        free(l.v);
    }
    resultf(j, SERVICE_UNAVAILABLE, "the group's vTPMs kept changing while being listed");
    return -EAGAIN;
}

static int del_vtpm(struct job *j, const uint8_t *uuid)
{
    uint8_t req[MGRPROTO_REQ_MAX];
    struct mgrproto_rsp rsp;
    const char *why;
    int st = cmd(j, req, mgrproto_vtpm_del(req, uuid), &rsp);

    if (st == 0 && mgrproto_vtpm_del_body(&rsp, &why) < 0) {
        fail_garbage(j, MGRPROTO_ORD_VTPM_DEL, why);
        return -EPROTO;
    }
    return st;
}

static void work_create(void *arg)
{
    struct job *j = arg;
    const char *dir = j->s->recdir, *why = "";
    char u[IDS_UUID_STR];
    uint8_t req[MGRPROTO_REQ_MAX];
    struct mgrproto_rsp rsp;
    int st, ret;

    if (ensure_group(j) < 0)
        goto out;
    st = cmd(j, req, mgrproto_vtpm_new(req, j->group_idx, NULL), &rsp);
    if (st < 0)
        goto out;
    if (st != 0) {
        fail_status(j, MGRPROTO_ORD_VTPM_NEW, (uint32_t)st);
        goto out;
    }
    if (mgrproto_vtpm_new_body(&rsp, j->rec.uuid, &why) < 0) {
        /* It may exist now; reconciling will report it as an orphan. */
        fail_garbage(j, MGRPROTO_ORD_VTPM_NEW, why);
        goto out;
    }
    ids_format_uuid(j->rec.uuid, u);
    j->rec.created_at = (int64_t)time(NULL);
    j->rec.state = STORE_READY;
    ret = store_write(dir, &j->rec, true, &why);
    if (ret == -EEXIST) {
        /* vtpmmgr never checks for duplicates; this one is not ours. */
        resultf(j, SERVICE_BAD_GATEWAY, "vtpmmgr returned vTPM %s, which is "
                "already recorded for another instance", u);
        goto out;
    }
    if (ret < 0) {
        /* Unrecorded, it would be an orphan: take it back. */
        if (del_vtpm(j, j->rec.uuid) != 0)
            log_error("cannot delete an unrecorded vTPM, it is an orphan now vtpm=%s", u);
        /* Written after del_vtpm, which may have set its own result. */
        resultf(j, SERVICE_INTERNAL, "cannot record vTPM %s: %s: %s", u, why,
                strerror(-ret));
        goto out;
    }
    resultf(j, SERVICE_CREATED, "created");
out:
    mgrdev_close(j->s->w->dev);
}

static void work_delete(void *arg)
{
    struct job *j = arg;
    const char *dir = j->s->recdir, *why = "";
    struct service_uuids l = {0};
    char u[IDS_UUID_STR];
    int st, ret;

    ids_format_uuid(j->rec.uuid, u);
    if (!store_exists(dir, j->rec.uuid)) {
        j->rec_gone = true; /* an earlier reconcile finished it */
        resultf(j, SERVICE_OK, "deleted");
        goto out;
    }
    /* Mark it first: a crash after VTPM_DEL must not look like a vTPM
     * that vanished (which missing: recreate would bring back). */
    j->rec.state = STORE_DELETING;
    if ((ret = store_write(dir, &j->rec, false, &why)) < 0) {
        j->rec.state = STORE_READY;
        resultf(j, SERVICE_INTERNAL, "cannot update the record of %s: %s: %s", u,
                why, strerror(-ret));
        goto out;
    }
    st = del_vtpm(j, j->rec.uuid);
    if (st < 0)
        goto out; /* unknown whether it happened: stays "deleting" */
    if (st == MGRPROTO_ST_FAIL) {
        /* Unknown to vtpmmgr, or still open by its stub domain. */
        if (ensure_group(j) < 0 || list_all(j, &l) < 0)
            goto out;
        if (uuids_has(&l, j->rec.uuid)) {
            j->rec.state = STORE_READY;
            if ((ret = store_write(dir, &j->rec, false, &why)) < 0)
                j->rec.state = STORE_DELETING;
            resultf(j, SERVICE_CONFLICT, "vTPM %s is in use (its stub domain "
                    "is still connected to vtpmmgr)", u);
            goto out;
        }
        log_info("vTPM was already gone from vtpmmgr vtpm=%s", u);
    } else if (st != 0) {
        fail_status(j, MGRPROTO_ORD_VTPM_DEL, (uint32_t)st);
        j->rec.state = STORE_READY; /* vtpmmgr did nothing */
        if (store_write(dir, &j->rec, false, &why) < 0)
            j->rec.state = STORE_DELETING;
        goto out;
    }
    if ((ret = store_unlink(dir, j->rec.uuid, &why)) < 0) {
        resultf(j, SERVICE_INTERNAL, "vTPM %s deleted but its record stays: %s: %s",
                u, why, strerror(-ret));
        goto out;
    }
    j->rec_gone = true;
    resultf(j, SERVICE_OK, "deleted");
out:
    free(l.v);
    mgrdev_close(j->s->w->dev);
}

static const struct store_rec *find_rec(const struct store_rec *v, size_t n,
                                        const uint8_t *uuid)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(v[i].uuid, uuid, 16) == 0)
            return &v[i];
    }
    return NULL;
}

/* Compares the group's vTPMs with the record files (which only jobs
 * write, so no job in flight can be half-way) and acts per policy. */
static void work_reconcile(void *arg)
{
    struct job *j = arg;
    struct service_report *rep = &j->rep;
    const char *dir = j->s->recdir, *why = "";
    struct service_uuids listed = {0}, seen = {0};
    struct store_rec *recs = NULL;
    uint8_t req[MGRPROTO_REQ_MAX];
    struct mgrproto_rsp rsp;
    size_t nrecs = 0;
    int st;

    if (ensure_group(j) < 0 || list_all(j, &listed) < 0)
        goto out;
    if (store_scan(dir, false, &recs, &nrecs) < 0) {
        resultf(j, SERVICE_INTERNAL, "cannot read every record in %s; "
                "nothing was changed", dir);
        goto out;
    }
    ids_format_uuid(j->group_uuid, rep->group);
    rep->group_index = j->group_idx;
    rep->in_group = listed.n;
    rep->records = nrecs;
    for (size_t i = 0; i < listed.n; i++) {
        if (uuids_has(&seen, listed.v[i])) {
            if (!uuids_has(&rep->duplicated, listed.v[i]))
                uuids_push(&rep->duplicated, listed.v[i]);
            continue;
        }
        uuids_push(&seen, listed.v[i]);
        if (find_rec(recs, nrecs, listed.v[i]) == NULL)
            uuids_push(&rep->orphans, listed.v[i]);
    }
    for (size_t i = 0; i < nrecs; i++) {
        const struct store_rec *r = &recs[i];
        bool present = uuids_has(&seen, r->uuid);

        if (r->state == STORE_DELETING) {
            /* A delete that was interrupted: finish it. */
            if (present) {
                st = del_vtpm(j, r->uuid);
                if (st < 0)
                    goto out;
                if (st != 0) {
                    uuids_push(&rep->in_use, r->uuid);
                    continue;
                }
            }
            if (store_unlink(dir, r->uuid, &why) == 0)
                uuids_push(&rep->finished, r->uuid);
            continue;
        }
        if (!present)
            uuids_push(&rep->missing, r->uuid);
    }
    if (j->env.orphans == PCONFIG_ORPHANS_DELETE) {
        for (size_t i = 0; i < rep->orphans.n; i++) {
            st = del_vtpm(j, rep->orphans.v[i]);
            if (st < 0)
                goto out;
            if (st == 0)
                uuids_push(&rep->deleted, rep->orphans.v[i]);
            else
                uuids_push(&rep->in_use, rep->orphans.v[i]);
        }
    }
    if (j->env.missing == PCONFIG_MISSING_RECREATE) {
        for (size_t i = 0; i < rep->missing.n; i++) {
            uint8_t got[16];

            /* The 30-byte VTPM_NEW: the same UUID, an empty vTPM. */
            st = cmd(j, req, mgrproto_vtpm_new(req, j->group_idx, rep->missing.v[i]), &rsp);
            if (st < 0)
                goto out;
            if (st != 0) {
                fail_status(j, MGRPROTO_ORD_VTPM_NEW, (uint32_t)st);
                goto out;
            }
            if (mgrproto_vtpm_new_body(&rsp, got, &why) < 0 ||
                memcmp(got, rep->missing.v[i], 16) != 0) {
                fail_garbage(j, MGRPROTO_ORD_VTPM_NEW, "not the UUID asked for");
                goto out;
            }
            uuids_push(&rep->recreated, got);
        }
    }
    resultf(j, SERVICE_OK, "reconciled");
out:
    free(listed.v);
    free(seen.v);
    free(recs);
    mgrdev_close(j->s->w->dev);
}

/* ---- loop thread --------------------------------------------------- */

static void check_drained(struct service *s)
{
    if (s->stopping && !s->drained_called && jobq_pending(s->q) == 0 && s->drained) {
        s->drained_called = true;
        s->drained(s->drained_arg);
    }
}

static void note_link(struct service *s, const struct job *j)
{
    if (j->link == LINK_UNKNOWN)
        return;
    s->link = j->link;
    s->refused = j->refused;
    switch (j->res.code) {
    case SERVICE_OK:
    case SERVICE_CREATED:
        s->link_msg[0] = '\0';
        break;
    case SERVICE_NOT_FOUND:
    case SERVICE_CONFLICT:
        break; /* the request's problem, not vtpmmgr's */
    default:
        snprintf(s->link_msg, sizeof(s->link_msg), "%s", j->res.message);
        break;
    }
    if (j->group_ok) {
        if (s->group_known && (s->group_idx != j->group_idx ||
                               memcmp(s->group_uuid, j->group_uuid, 16) != 0)) {
            char g[IDS_UUID_STR];

            ids_format_uuid(j->group_uuid, g);
            log_info("vtpmmgr group resolved group=%s index=%" PRIu32, g, j->group_idx);
        }
        s->group_known = true;
        s->group_idx = j->group_idx;
        memcpy(s->group_uuid, j->group_uuid, 16);
    } else if (j->res.code == SERVICE_UNAVAILABLE && j->link == LINK_OK) {
        s->group_known = false; /* vtpmmgr answered: the group is gone */
    }
}

static void unlink_inflight(struct service *s, struct job *j)
{
    for (struct job **p = &s->inflight; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            return;
        }
    }
}

static void notify(struct job *j)
{
    j->res.rec = j->rec;
    for (struct waiter *w = j->waiters; w; w = w->next)
        w->cb(&j->res, w->arg);
}

static void done_create(void *arg)
{
    struct job *j = arg;
    struct service *s = j->s;
    char u[IDS_UUID_STR], i[IDS_UUID_STR] = "-";

    note_link(s, j);
    unlink_inflight(s, j);
    if (j->rec.has_instance)
        ids_format_uuid(j->rec.instance, i);
    if (j->res.code == SERVICE_CREATED) {
        store_set(s->store, &j->rec);
        ids_format_uuid(j->rec.uuid, u);
        log_info("vtpm created vtpm=%s instance=%s host=%s group_index=%" PRIu32,
                 u, i, j->rec.host[0] ? j->rec.host : "-", j->group_idx);
    } else {
        log_warn("vtpm create failed instance=%s error=\"%s\"", i, j->res.message);
    }
    notify(j);
    job_free(j);
    check_drained(s);
}

static void done_delete(void *arg)
{
    struct job *j = arg;
    struct service *s = j->s;
    char u[IDS_UUID_STR];

    note_link(s, j);
    unlink_inflight(s, j);
    ids_format_uuid(j->rec.uuid, u);
    if (j->rec_gone) {
        store_del(s->store, j->rec.uuid);
        log_info("vtpm deleted vtpm=%s", u);
    } else {
        store_set(s->store, &j->rec);
        log_warn("vtpm delete failed vtpm=%s state=%s error=\"%s\"", u,
                 j->rec.state == STORE_DELETING ? "deleting" : "ready", j->res.message);
    }
    notify(j);
    job_free(j);
    check_drained(s);
}

static void log_uuids(const char *what, const struct service_uuids *l,
                      const char *action)
{
    char u[IDS_UUID_STR];

    for (size_t i = 0; i < l->n; i++) {
        ids_format_uuid(l->v[i], u);
        log_warn("%s vtpm=%s action=%s", what, u, action);
    }
}

static void submit_reconcile(struct service *s, bool startup,
                             service_report_cb cb, void *arg);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct service *s = arg;

    submit_reconcile(s, true, NULL, NULL);
}

static void done_reconcile(void *arg)
{
    struct job *j = arg;
    struct service *s = j->s;
    struct service_report *rep = &j->rep;

    note_link(s, j);
    rep->code = j->res.code;
    snprintf(rep->message, sizeof(rep->message), "%s", j->res.message);
    if (j->res.code == SERVICE_OK) {
        for (size_t i = 0; i < rep->finished.n; i++)
            store_del(s->store, rep->finished.v[i]);
        s->reconciled = true;
        s->last_orphans = rep->orphans.n - rep->deleted.n;
        s->last_missing = rep->missing.n - rep->recreated.n;
        log_uuids("orphan (no record)", &rep->orphans,
                  j->env.orphans == PCONFIG_ORPHANS_DELETE ? "delete" : "report");
        log_uuids("missing (recorded, gone from vtpmmgr)", &rep->missing,
                  j->env.missing == PCONFIG_MISSING_RECREATE ? "recreate" : "report");
        log_uuids("duplicated in vtpmmgr", &rep->duplicated, "report");
        log_uuids("still open, not deleted", &rep->in_use, "report");
        log_info("reconciled group=%s index=%" PRIu32 " in_group=%zu records=%zu "
                 "orphans=%zu missing=%zu deleted=%zu recreated=%zu finished=%zu "
                 "duplicated=%zu", rep->group, rep->group_index, rep->in_group,
                 rep->records, rep->orphans.n, rep->missing.n, rep->deleted.n,
                 rep->recreated.n, rep->finished.n, rep->duplicated.n);
        if (j->startup) {
            s->started = true;
            s->backoff_s = 0;
        }
    } else {
        log_error("reconcile failed error=\"%s\"", j->res.message);
        if (j->startup && !s->stopping) {
            /* Until vtpmmgr answers once, keep trying: it may be starting. */
            s->backoff_s = s->backoff_s ? s->backoff_s * 2 : 1;
            if (s->backoff_s > RETRY_MAX_S)
                s->backoff_s = RETRY_MAX_S;
            struct timeval tv = {.tv_sec = s->backoff_s};
            evtimer_add(s->retry, &tv);
            log_info("retrying the start-up reconcile in_s=%u", s->backoff_s);
        }
    }
    if (j->rcb)
        j->rcb(rep, j->rarg);
    job_free(j);
    check_drained(s);
}

static void submit_reconcile(struct service *s, bool startup,
                             service_report_cb cb, void *arg)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->s = s;
    j->kind = JOB_RECONCILE;
    j->env = s->env;
    j->startup = startup;
    j->rcb = cb;
    j->rarg = arg;
    jobq_submit(s->q, work_reconcile, done_reconcile, j);
}

static void add_waiter(struct job *j, service_cb cb, void *arg)
{
    struct waiter *w = xcalloc(1, sizeof(*w)), **p = &j->waiters;

    w->cb = cb;
    w->arg = arg;
    while (*p)
        p = &(*p)->next;
    *p = w;
}

static void reply_now(service_cb cb, void *arg, enum service_code code,
                      const struct store_rec *rec, const char *msg)
{
    struct service_result res = {.code = code};

    if (rec)
        res.rec = *rec;
    snprintf(res.message, sizeof(res.message), "%s", msg);
    cb(&res, arg);
}

static struct job *find_inflight(struct service *s, enum job_kind kind,
                                 const uint8_t *key)
{
    for (struct job *j = s->inflight; j; j = j->next) {
        const uint8_t *k = kind == JOB_CREATE ? j->rec.instance : j->rec.uuid;

        if (j->kind == kind && memcmp(k, key, 16) == 0)
            return j;
    }
    return NULL;
}

void service_create(struct service *s, const uint8_t *instance,
                    const char *host, service_cb cb, void *arg)
{
    const struct store_rec *r;
    struct job *j;
    char msg[160], u[IDS_UUID_STR], i[IDS_UUID_STR];

    if (s->stopping) {
        reply_now(cb, arg, SERVICE_UNAVAILABLE, NULL, "vtpm-proxyd is shutting down");
        return;
    }
    if ((r = store_get_instance(s->store, instance)) != NULL) {
        ids_format_uuid(r->uuid, u);
        if (r->state == STORE_DELETING) {
            snprintf(msg, sizeof(msg), "the instance's vTPM %s is being deleted", u);
            reply_now(cb, arg, SERVICE_CONFLICT, r, msg);
            return;
        }
        if (strcmp(r->host, host) != 0) {
            ids_format_uuid(instance, i);
            log_warn("instance asked for its vTPM from another host instance=%s "
                     "vtpm=%s recorded_host=%s host=%s", i, u, r->host, host);
        }
        /* Retries must not leak vTPMs: the same answer again. */
        reply_now(cb, arg, SERVICE_OK, r, "exists");
        return;
    }
    if ((j = find_inflight(s, JOB_CREATE, instance)) != NULL) {
        add_waiter(j, cb, arg);
        return;
    }
    j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->kind = JOB_CREATE;
    j->env = s->env;
    j->rec.has_instance = true;
    memcpy(j->rec.instance, instance, 16);
    snprintf(j->rec.host, sizeof(j->rec.host), "%s", host);
    add_waiter(j, cb, arg);
    j->next = s->inflight;
    s->inflight = j;
    jobq_submit(s->q, work_create, done_create, j);
}

void service_create_legacy(struct service *s, service_cb cb, void *arg)
{
    struct job *j;

    if (s->stopping) {
        reply_now(cb, arg, SERVICE_UNAVAILABLE, NULL, "vtpm-proxyd is shutting down");
        return;
    }
    j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->kind = JOB_LEGACY;
    j->env = s->env;
    add_waiter(j, cb, arg);
    jobq_submit(s->q, work_create, done_create, j);
}

void service_delete(struct service *s, const uint8_t *uuid, service_cb cb,
                    void *arg)
{
    const struct store_rec *r;
    struct store_rec copy;
    struct job *j;
    char u[IDS_UUID_STR], msg[160];

    if (s->stopping) {
        reply_now(cb, arg, SERVICE_UNAVAILABLE, NULL, "vtpm-proxyd is shutting down");
        return;
    }
    if ((j = find_inflight(s, JOB_DELETE, uuid)) != NULL) {
        add_waiter(j, cb, arg);
        return;
    }
    if ((r = store_get(s->store, uuid)) == NULL) {
        ids_format_uuid(uuid, u);
        snprintf(msg, sizeof(msg), "no vTPM %s here (never made by this "
                 "service, or already deleted)", u);
        reply_now(cb, arg, SERVICE_NOT_FOUND, NULL, msg);
        return;
    }
    copy = *r;
    j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->kind = JOB_DELETE;
    j->env = s->env;
    j->rec = copy;
    add_waiter(j, cb, arg);
    j->next = s->inflight;
    s->inflight = j;
    /* Hidden from lists, and creates for its instance wait, from now on. */
    copy.state = STORE_DELETING;
    store_set(s->store, &copy);
    jobq_submit(s->q, work_delete, done_delete, j);
}

void service_reconcile(struct service *s, service_report_cb cb, void *arg)
{
    if (s->stopping) {
        struct service_report rep = {.code = SERVICE_UNAVAILABLE};

        snprintf(rep.message, sizeof(rep.message), "vtpm-proxyd is shutting down");
        if (cb)
            cb(&rep, arg);
        return;
    }
    submit_reconcile(s, false, cb, arg);
}

struct store_rec *service_list(const struct service *s, size_t *n)
{
    struct store_rec *v = store_list(s->store, n);
    size_t k = 0;

    for (size_t i = 0; i < *n; i++) {
        if (v[i].state == STORE_READY)
            v[k++] = v[i];
    }
    *n = k;
    return v;
}

const struct store_rec *service_get(const struct service *s, const uint8_t *uuid)
{
    const struct store_rec *r = store_get(s->store, uuid);

    return r && r->state == STORE_READY ? r : NULL;
}

void service_health(const struct service *s, struct service_health *h)
{
    static const char *const names[] = {
        [LINK_UNKNOWN] = "starting", [LINK_OK] = "ok", [LINK_DOWN] = "unreachable",
        [LINK_TIMEOUT] = "timeout", [LINK_GARBAGE] = "protocol_error",
    };

    memset(h, 0, sizeof(*h));
    h->state = s->stopping ? "stopping"
               : (s->link == LINK_OK && s->refused) ? "refused"
               : (s->link == LINK_OK && !s->group_known) ? "group_not_found"
               : (s->link == LINK_OK && !s->started) ? "starting"
               : names[s->link];
    h->message = s->link_msg;
    h->ok = strcmp(h->state, "ok") == 0;
    h->group_known = s->group_known;
    h->group_index = s->group_idx;
    if (s->group_known)
        ids_format_uuid(s->group_uuid, h->group);
    h->records = store_count(s->store);
    h->jobs = jobq_pending(s->q);
    h->reconciled = s->reconciled;
    h->orphans = s->last_orphans;
    h->missing = s->last_missing;
}

int service_new(struct event_base *base, const struct pconfig *cfg,
                struct service **out)
{
    struct service *s = xcalloc(1, sizeof(*s));
    int ret;

    s->base = base;
    set_env(&s->env, cfg);
    if ((ret = store_open(cfg->state_dir, &s->store)) < 0)
        goto fail;
    s->recdir = xstrdup(store_dir(s->store));
    s->w = xcalloc(1, sizeof(*s->w));
    s->w->dev = mgrdev_new(cfg->vtpmmgr.device);
    s->retry = evtimer_new(base, retry_cb, s);
    if (s->retry == NULL) {
        ret = -ENOMEM;
        goto fail;
    }
    if ((ret = jobq_new(base, &s->q)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    service_free(s);
    return ret;
}

void service_start(struct service *s)
{
    submit_reconcile(s, true, NULL, NULL);
}

void service_reconfigure(struct service *s, const struct pconfig *cfg)
{
    set_env(&s->env, cfg);
}

void service_drain(struct service *s, void (*done)(void *arg), void *arg)
{
    s->stopping = true;
    s->drained = done;
    s->drained_arg = arg;
    if (s->retry)
        evtimer_del(s->retry);
    check_drained(s);
}

static void drop_job(void *arg)
{
    job_free(arg);
}

void service_free(struct service *s)
{
    if (s == NULL)
        return;
    s->stopping = true;
    s->drained = NULL;
    if (s->q)
        jobq_free(s->q, drop_job);
    if (s->retry)
        event_free(s->retry);
    if (s->w) {
        mgrdev_free(s->w->dev);
        free(s->w);
    }
    store_free(s->store);
    free(s->recdir);
    free(s);
}
