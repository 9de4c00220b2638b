/* vtpm-proxyd's service, the job thread's side: everything that talks
 * to vtpmmgr or writes record files, one job at a time (see
 * include/proxyd/service_priv.h and service.c for the loop's side). It
 * owns the device and the group index cache, and it is the only writer of
 * record files, so a job sees the record directory exactly as every
 * earlier job left it. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "proxyd/mgrdev.h"
#include "proxyd/mgrproto.h"
#include "proxyd/service_priv.h"
#include "xalloc.h"

/* vtpmmgr keeps its vTPMs in memory pages; a count above this is garbage. */
#define LIST_MAX (1u << 20)
/* A group whose count changes on every page is listed again, this often. */
#define LIST_ATTEMPTS 5

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
            j->group_missing = true;
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
    j->group_missing = true;
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

void service_work_create(void *arg)
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

void service_work_delete(void *arg)
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
void service_work_reconcile(void *arg)
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
