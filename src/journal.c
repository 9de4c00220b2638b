/* Append-only journal with group commit. See include/journal.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "fileutil.h"
#include "hmap.h"
#include "journal.h"
#include "log.h"
#include "uuidutil.h"
#include "xalloc.h"

/* Compact when the log holds this many more lines than live records. */
#define JOURNAL_COMPACT_SLACK 1024

struct journal_item {
    struct journal_item *next;
    struct journal_record rec;
    journal_done_fn done;
    void *arg;
    int ret;
};

struct journal {
    struct event_base *base;
    char *dir;
    char *path;
    char *tmp_path;
    int fd;
    int dirfd;
    time_t tombstone_ttl;

    /* Loaded at open, for the caller. */
    struct journal_record *loaded;
    size_t nloaded;

    /* Owned by the writer thread after open. */
    struct hmap *live; /* instance -> struct journal_record* */
    size_t lines;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct journal_item *pending, **pending_tail; /* under lock */
    struct journal_item *done, **done_tail;       /* under lock */
    bool stop;                                    /* under lock */
    struct event *done_ev;
    struct journal_stats stats; /* under lock */
};

static const char *const state_names[] = {
    [JOURNAL_PROVISIONING] = "provisioning",
    [JOURNAL_READY] = "ready",
    [JOURNAL_FAILED] = "failed",
    [JOURNAL_DELETING] = "deleting",
    [JOURNAL_DELETE_FAILED] = "delete_failed",
    [JOURNAL_DELETED] = "deleted",
};

const char *journal_state_name(enum journal_state s)
{
    if ((unsigned)s > JOURNAL_DELETED)
        return "unknown";
    return state_names[s];
}

int journal_state_parse(const char *s, enum journal_state *out)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum journal_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

void journal_record_clear(struct journal_record *r)
{
    free(r->domain_name);
    free(r->image_path);
    free(r->rule);
    free(r->instance_name);
    free(r->request_id);
    free(r->error);
    free(r->kernel);
    memset(r, 0, sizeof(*r));
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void journal_record_copy(struct journal_record *dst, const struct journal_record *src)
{
    *dst = *src;
    dst->domain_name = dup_or_null(src->domain_name);
    dst->image_path = dup_or_null(src->image_path);
    dst->rule = dup_or_null(src->rule);
    dst->instance_name = dup_or_null(src->instance_name);
    dst->request_id = dup_or_null(src->request_id);
    dst->error = dup_or_null(src->error);
    dst->kernel = dup_or_null(src->kernel);
}

static void record_free(void *p)
{
    struct journal_record *r = p;

    if (r) {
        journal_record_clear(r);
        free(r);
    }
}

/* ---- encoding ---------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_update(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void json_set_str(json_t *o, const char *k, const char *v)
{
    if (v && *v)
        json_object_set_new(o, k, json_string(v));
}

/* "crc32hex json\n" */
static char *record_encode(const struct journal_record *r, size_t *len)
{
    json_t *o = json_object();
    char *body, *line;

    json_object_set_new(o, "instance", json_string(r->instance_uuid));
    json_object_set_new(o, "state", json_string(journal_state_name(r->state)));
    json_set_str(o, "vtpm_uuid", r->vtpm_uuid);
    json_set_str(o, "domain", r->domain_name);
    json_set_str(o, "image", r->image_path);
    json_set_str(o, "rule", r->rule);
    json_set_str(o, "instance_name", r->instance_name);
    json_set_str(o, "request_id", r->request_id);
    json_set_str(o, "error", r->error);
    json_set_str(o, "kernel", r->kernel);
    if (r->image_size)
        json_object_set_new(o, "image_size", json_integer((json_int_t)r->image_size));
    if (r->memory)
        json_object_set_new(o, "memory", json_integer((json_int_t)r->memory));
    json_object_set_new(o, "updated", json_integer((json_int_t)r->updated));
    body = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(o);
    if (body == NULL)
        abort();
    *len = (size_t)xasprintf(&line, "%08x %s\n",
                             crc32_update(0, body, strlen(body)), body);
    free(body);
    return line;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Parses one line without its newline. 0 or -EINVAL. */
static int record_decode(const char *line, size_t len, struct journal_record *r)
{
    char crcbuf[9];
    unsigned long crc;
    json_t *o;
    json_error_t jerr;
    const char *s;
    char *end;
    int ret = -EINVAL;

    if (len < 11 || line[8] != ' ')
        return -EINVAL;
    memcpy(crcbuf, line, 8);
    crcbuf[8] = '\0';
    crc = strtoul(crcbuf, &end, 16);
    if (*end != '\0' || crc != crc32_update(0, line + 9, len - 9))
        return -EINVAL;
    o = json_loadb(line + 9, len - 9, 0, &jerr);
    if (!json_is_object(o))
        goto out;
    memset(r, 0, sizeof(*r));
    s = jstr(o, "instance");
    if (!uuid_is_canonical(s))
        goto out;
    memcpy(r->instance_uuid, s, UUIDUTIL_BUFLEN);
    if (!jstr(o, "state") || journal_state_parse(jstr(o, "state"), &r->state) < 0)
        goto out;
    s = jstr(o, "vtpm_uuid");
    if (s) {
        if (!uuid_is_canonical(s))
            goto out;
        memcpy(r->vtpm_uuid, s, UUIDUTIL_BUFLEN);
    }
    r->domain_name = dup_or_null(jstr(o, "domain"));
    r->image_path = dup_or_null(jstr(o, "image"));
    r->rule = dup_or_null(jstr(o, "rule"));
    r->instance_name = dup_or_null(jstr(o, "instance_name"));
    r->request_id = dup_or_null(jstr(o, "request_id"));
    r->error = dup_or_null(jstr(o, "error"));
    if (json_is_integer(json_object_get(o, "image_size")))
        r->image_size = (uint64_t)json_integer_value(json_object_get(o, "image_size"));
    r->kernel = dup_or_null(jstr(o, "kernel"));
    if (json_is_integer(json_object_get(o, "memory")))
        r->memory = (uint64_t)json_integer_value(json_object_get(o, "memory"));
    if (json_is_integer(json_object_get(o, "updated")))
        r->updated = (time_t)json_integer_value(json_object_get(o, "updated"));
    ret = 0;
out:
    json_decref(o);
    return ret;
}

/* ---- writing ----------------------------------------------------- */

struct snap_ctx {
    char *buf;
    size_t len, cap;
    size_t count;
};

static void snap_add(const char *key, void *value, void *arg)
{
    struct snap_ctx *s = arg;
    size_t n;
    char *line = record_encode(value, &n);

    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->buf = xrealloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, line, n);
    s->len += n;
    s->count++;
    free(line);
}

/* Rewrites the log as a snapshot of the live records, atomically. */
static int journal_compact(struct journal *j)
{
    struct snap_ctx s = {0};
    int fd, ret;

    hmap_foreach(j->live, snap_add, &s);
    fd = open(j->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        ret = -errno;
        goto out;
    }
    ret = file_write_all(fd, s.buf ? s.buf : "", s.len);
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    close(fd);
    if (ret == 0 && rename(j->tmp_path, j->path) < 0)
        ret = -errno;
    if (ret == 0 && fsync(j->dirfd) < 0)
        ret = -errno;
    if (ret == 0) {
        int nfd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        if (nfd < 0) {
            ret = -errno;
        } else {
            close(j->fd);
            j->fd = nfd;
            j->lines = s.count;
        }
    }
out:
    if (ret < 0) {
        log_error("journal compaction failed path=%s error=%s", j->path, strerror(-ret));
        unlink(j->tmp_path);
    }
    free(s.buf);
    return ret;
}

static void apply_live(struct journal *j, const struct journal_record *r)
{
    struct journal_record *copy = xcalloc(1, sizeof(*copy));

    journal_record_copy(copy, r);
    record_free(hmap_put(j->live, r->instance_uuid, copy));
}

static void *journal_thread(void *arg)
{
    struct journal *j = arg;

    for (;;) {
        struct journal_item *batch, *it;
        char *buf = NULL;
        size_t len = 0, cap = 0, count = 0;
        bool stop;
        int ret;

        pthread_mutex_lock(&j->lock);
        while (j->pending == NULL && !j->stop)
            pthread_cond_wait(&j->cond, &j->lock);
        batch = j->pending;
        j->pending = NULL;
        j->pending_tail = &j->pending;
        stop = j->stop;
        pthread_mutex_unlock(&j->lock);
        if (batch == NULL && stop)
            break;

        for (it = batch; it; it = it->next) {
            size_t n;
            char *line = record_encode(&it->rec, &n);
            if (len + n > cap) {
                cap = (len + n) * 2;
                buf = xrealloc(buf, cap);
            }
            memcpy(buf + len, line, n);
            len += n;
            count++;
            free(line);
        }
        ret = file_write_all(j->fd, buf, len);
        if (ret == 0 && fdatasync(j->fd) < 0)
            ret = -errno;
        free(buf);
        if (ret < 0)
            log_error("journal write failed path=%s records=%zu error=%s", j->path,
                      count, strerror(-ret));
        for (it = batch; it; it = it->next) {
            it->ret = ret;
            if (ret == 0)
                apply_live(j, &it->rec);
        }
        if (ret == 0)
            j->lines += count;
        if (j->lines > 2 * hmap_size(j->live) + JOURNAL_COMPACT_SLACK &&
            journal_compact(j) == 0) {
            pthread_mutex_lock(&j->lock);
            j->stats.compactions++;
            pthread_mutex_unlock(&j->lock);
        }

        pthread_mutex_lock(&j->lock);
        j->stats.records += count;
        j->stats.batches++;
        j->stats.syncs++;
        j->stats.live = hmap_size(j->live);
        *j->done_tail = batch;
        while (*j->done_tail)
            j->done_tail = &(*j->done_tail)->next;
        pthread_mutex_unlock(&j->lock);
        event_active(j->done_ev, EV_READ, 0);
    }
    return NULL;
}

static void item_free(struct journal_item *it)
{
    journal_record_clear(&it->rec);
    free(it);
}

static void journal_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct journal *j = arg;
    struct journal_item *list, *next;

    pthread_mutex_lock(&j->lock);
    list = j->done;
    j->done = NULL;
    j->done_tail = &j->done;
    pthread_mutex_unlock(&j->lock);
    for (; list; list = next) {
        next = list->next;
        if (list->done)
            list->done(list->ret, list->arg);
        item_free(list);
    }
}

void journal_put(struct journal *j, const struct journal_record *rec,
                 journal_done_fn done, void *arg)
{
    struct journal_item *it = xcalloc(1, sizeof(*it));

    journal_record_copy(&it->rec, rec);
    if (it->rec.updated == 0)
        it->rec.updated = time(NULL);
    it->done = done;
    it->arg = arg;
    pthread_mutex_lock(&j->lock);
    *j->pending_tail = it;
    j->pending_tail = &it->next;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

/* ---- loading ----------------------------------------------------- */

static int journal_load(struct journal *j, char **err)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0, good = 0, bad = 0;
    int ret = 0;

    if (fstat(j->fd, &st) < 0) {
        ret = -errno;
        xasprintf(err, "cannot stat %s: %s", j->path, strerror(errno));
        return ret;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    while (len < (size_t)st.st_size) {
        ssize_t n = pread(j->fd, buf + len, (size_t)st.st_size - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    for (size_t off = 0; off < len;) {
        char *nl = memchr(buf + off, '\n', len - off);
        struct journal_record r;

        if (nl == NULL) {
            /* A torn tail: never acknowledged as durable. */
            log_warn("journal has a torn last record, cutting it path=%s offset=%zu",
                     j->path, off);
            j->stats.torn_tails++;
            break;
        }
        if (record_decode(buf + off, (size_t)(nl - (buf + off)), &r) < 0) {
            if ((size_t)(nl - buf) + 1 == len) {
                log_warn("journal has a corrupt last record, cutting it path=%s offset=%zu",
                         j->path, off);
                j->stats.torn_tails++;
                break;
            }
            log_error("journal record corrupt, skipped path=%s offset=%zu", j->path, off);
            bad++;
        } else {
            apply_live(j, &r);
            journal_record_clear(&r);
        }
        off = (size_t)(nl - buf) + 1;
        good = off;
        j->lines++;
    }
    free(buf);
    if (good < len && ftruncate(j->fd, (off_t)good) < 0) {
        ret = -errno;
        xasprintf(err, "cannot truncate %s: %s", j->path, strerror(errno));
    }
    (void)bad;
    return ret;
}

struct expire_ctx {
    struct journal *j;
    time_t now;
    struct strlist_lite {
        char **v;
        size_t n;
    } drop;
};

static void find_expired(const char *key, void *value, void *arg)
{
    struct expire_ctx *c = arg;
    struct journal_record *r = value;

    if (r->state == JOURNAL_DELETED && r->updated + c->j->tombstone_ttl < c->now) {
        c->drop.v = xreallocarray(c->drop.v, c->drop.n + 1, sizeof(char *));
        c->drop.v[c->drop.n++] = xstrdup(key);
    }
}

static void collect_loaded(const char *key, void *value, void *arg)
{
    struct journal *j = arg;

    journal_record_copy(&j->loaded[j->nloaded++], value);
}

int journal_open(struct event_base *base, const char *state_dir,
                 time_t tombstone_ttl, struct journal **out, char **err)
{
    struct journal *j = xcalloc(1, sizeof(*j));
    struct expire_ctx ec = {.j = j, .now = time(NULL)};
    struct stat st;
    int ret;

    j->base = base;
    j->fd = -1;
    j->dirfd = -1;
    j->tombstone_ttl = tombstone_ttl;
    j->dir = xstrdup(state_dir);
    xasprintf(&j->path, "%s/journal", state_dir);
    xasprintf(&j->tmp_path, "%s/journal.tmp", state_dir);
    j->live = hmap_new();
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->pending_tail = &j->pending;
    j->done_tail = &j->done;

    if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
        ret = -errno;
        xasprintf(err, "cannot create state_dir %s: %s", state_dir, strerror(errno));
        goto fail;
    }
    if (lstat(state_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        ret = -ENOTDIR;
        xasprintf(err, "state_dir %s is not a directory (or is a symlink)", state_dir);
        goto fail;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022)) {
        ret = -EPERM;
        xasprintf(err, "state_dir %s must be owned by uid %d and not group/world-writable",
                  state_dir, (int)geteuid());
        goto fail;
    }
    j->dirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (j->dirfd < 0 || j->fd < 0) {
        ret = -errno;
        xasprintf(err, "cannot open %s: %s", j->path, strerror(errno));
        goto fail;
    }
    ret = journal_load(j, err);
    if (ret < 0)
        goto fail;
    hmap_foreach(j->live, find_expired, &ec);
    for (size_t i = 0; i < ec.drop.n; i++) {
        record_free(hmap_del(j->live, ec.drop.v[i]));
        free(ec.drop.v[i]);
    }
    free(ec.drop.v);
    /* Start from a compact snapshot: drops superseded lines and tombstones. */
    if (j->lines != hmap_size(j->live) && journal_compact(j) < 0) {
        ret = -EIO;
        xasprintf(err, "cannot compact %s", j->path);
        goto fail;
    }
    j->loaded = xcalloc(hmap_size(j->live) + 1, sizeof(*j->loaded));
    hmap_foreach(j->live, collect_loaded, j);
    j->stats.live = hmap_size(j->live);

    j->done_ev = event_new(base, -1, 0, journal_done_cb, j);
    if (pthread_create(&j->thread, NULL, journal_thread, j) != 0) {
        ret = -EAGAIN;
        xasprintf(err, "cannot start the journal thread");
        event_free(j->done_ev);
        j->done_ev = NULL;
        goto fail;
    }
    *out = j;
    return 0;
fail:
    j->done_ev = NULL;
    journal_free(j);
    return ret;
}

void journal_loaded(const struct journal *j, const struct journal_record **recs,
                    size_t *n)
{
    *recs = j->loaded;
    *n = j->nloaded;
}

void journal_get_stats(struct journal *j, struct journal_stats *out)
{
    pthread_mutex_lock(&j->lock);
    *out = j->stats;
    pthread_mutex_unlock(&j->lock);
}

void journal_free(struct journal *j)
{
    struct journal_item *it, *next;

    if (j == NULL)
        return;
    if (j->done_ev) {
        pthread_mutex_lock(&j->lock);
        j->stop = true;
        pthread_cond_signal(&j->cond);
        pthread_mutex_unlock(&j->lock);
        pthread_join(j->thread, NULL);
        event_free(j->done_ev);
    }
    for (it = j->done; it; it = next) {
        next = it->next;
        item_free(it);
    }
    for (it = j->pending; it; it = next) {
        next = it->next;
        item_free(it);
    }
    for (size_t i = 0; i < j->nloaded; i++)
        journal_record_clear(&j->loaded[i]);
    free(j->loaded);
    hmap_free(j->live, record_free);
    if (j->fd >= 0)
        close(j->fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j->dir);
    free(j->path);
    free(j->tmp_path);
    free(j);
}
