/* Durable records, see include/proxyd/store.h.
 *
 * The index is a plain array searched linearly: a Keylime VM serves at
 * most some thousands of vTPMs (vtpmmgr itself lists them linearly), and
 * every change to it already costs two fsyncs. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fileutil.h"
#include "jsonutil.h"
#include "log.h"
#include "proxyd/store.h"
#include "xalloc.h"

#define STORE_FILE_MAX (64 * 1024)
#define STORE_VERSION 1

struct store {
    char *state_dir;
    char *dir;
    int lock_fd;
    struct store_rec *v;
    size_t n, cap;
};

static char *rec_json(const struct store_rec *r)
{
    char u[IDS_UUID_STR], i[IDS_UUID_STR], t[IDS_TIME_STR];
    json_t *o autojson = NULL;

    ids_format_uuid(r->uuid, u);
    ids_format_time(r->created_at, t);
    if (r->has_instance)
        ids_format_uuid(r->instance, i);
    o = json_pack("{s:i, s:s, s:s?, s:s?, s:s, s:s}", "version", STORE_VERSION,
                  "uuid", u, "instance_uuid", r->has_instance ? i : NULL,
                  "host", r->host[0] ? r->host : NULL, "created_at", t,
                  "state", r->state == STORE_DELETING ? "deleting" : "ready");
    if (o == NULL)
        abort(); /* only on OOM */
    return json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
}

int store_write(const char *dir, const struct store_rec *r, bool create,
                const char **why)
{
    char u[IDS_UUID_STR];
    char *tmp autofree = NULL, *path autofree = NULL, *text autofree = NULL;
    int fd = -1, ret;

    ids_format_uuid(r->uuid, u);
    xasprintf(&tmp, "%s/.%s.tmp", dir, u);
    xasprintf(&path, "%s/%s.json", dir, u);
    text = rec_json(r);
    if (text == NULL)
        abort();
    if (unlink(tmp) < 0 && errno != ENOENT) {
        *why = "cannot remove a stale temporary file";
        return -errno;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        *why = "cannot create the temporary file";
        return -errno;
    }
    if ((ret = file_write_all(fd, text, strlen(text))) < 0 ||
        (ret = file_write_all(fd, "\n", 1)) < 0) {
        *why = "cannot write the record";
        goto fail;
    }
    if (fsync(fd) < 0) {
        ret = -errno;
        *why = "cannot fsync the record";
        goto fail;
    }
    close(fd);
    fd = -1;
    if (create) {
        /* link() never replaces: a record for this UUID must not exist. */
        if (link(tmp, path) < 0) {
            ret = -errno;
            *why = ret == -EEXIST ? "a record for this vTPM UUID already exists"
                                  : "cannot link the record into place";
            goto fail;
        }
        unlink(tmp);
    } else if (rename(tmp, path) < 0) {
        ret = -errno;
        *why = "cannot rename the record into place";
        goto fail;
    }
    if ((ret = file_fsync_dir(dir)) < 0) {
        *why = "cannot fsync the record directory";
        return ret;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return ret;
}

int store_unlink(const char *dir, const uint8_t *uuid, const char **why)
{
    char u[IDS_UUID_STR];
    char *path autofree = NULL;
    int ret;

    ids_format_uuid(uuid, u);
    xasprintf(&path, "%s/%s.json", dir, u);
    if (unlink(path) < 0 && errno != ENOENT) {
        *why = "cannot remove the record";
        return -errno;
    }
    if ((ret = file_fsync_dir(dir)) < 0) {
        *why = "cannot fsync the record directory";
        return ret;
    }
    return 0;
}

static const char *opt_string(json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v)) {
        *out = NULL;
        return NULL;
    }
    if (!json_is_string(v))
        return "is not a string";
    *out = json_string_value(v);
    return NULL;
}

int store_parse(const char *name, const char *buf, size_t len,
                struct store_rec *out, const char **why)
{
    json_t *o autojson = NULL;
    json_t *version;
    struct store_rec r = {0};
    const char *uuid, *inst, *host, *created, *state;
    json_error_t jerr;

    o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        *why = "not a JSON object";
        return -EINVAL;
    }
    version = json_object_get(o, "version");
    if (!json_is_integer(version) || json_integer_value(version) != STORE_VERSION) {
        *why = "unknown record version";
        return -EINVAL;
    }
    if (opt_string(o, "uuid", &uuid) || ids_parse_uuid(uuid, r.uuid) < 0) {
        *why = "uuid is missing or not a UUID";
        return -EINVAL;
    }
    if (opt_string(o, "instance_uuid", &inst) ||
        (inst && ids_parse_uuid(inst, r.instance) < 0)) {
        *why = "instance_uuid is not a UUID";
        return -EINVAL;
    }
    r.has_instance = inst != NULL;
    if (opt_string(o, "host", &host) || (host && !ids_valid_host(host))) {
        *why = "host is not a valid host name";
        return -EINVAL;
    }
    if (host)
        snprintf(r.host, sizeof(r.host), "%s", host);
    if (opt_string(o, "created_at", &created) ||
        ids_parse_time(created, &r.created_at) < 0) {
        *why = "created_at is missing or not an RFC 3339 UTC time";
        return -EINVAL;
    }
    if (opt_string(o, "state", &state) || state == NULL) {
        *why = "state is missing";
        return -EINVAL;
    }
    if (strcmp(state, "ready") == 0) {
        r.state = STORE_READY;
    } else if (strcmp(state, "deleting") == 0) {
        r.state = STORE_DELETING;
    } else {
        *why = "state is neither ready nor deleting";
        return -EINVAL;
    }
    if (name) {
        char want[IDS_UUID_STR + 5];

        ids_format_uuid(r.uuid, want);
        strcat(want, ".json");
        if (strcmp(name, want) != 0) {
            *why = "the file name does not match the record's uuid";
            return -EINVAL;
        }
    }
    *out = r;
    return 0;
}

static int read_small(int dfd, const char *name, char **out, size_t *len)
{
    struct stat st;
    char *buf;
    size_t got = 0;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > STORE_FILE_MAX) {
        close(fd);
        return -EINVAL;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

static bool is_record_name(const char *name)
{
    uint8_t u[16];
    char s[IDS_UUID_STR];
    size_t n = strlen(name);

    if (n != 36 + 5 || strcmp(name + 36, ".json") != 0)
        return false;
    memcpy(s, name, 36);
    s[36] = '\0';
    return ids_parse_uuid(s, u) == 0;
}

bool store_exists(const char *dir, const uint8_t *uuid)
{
    char u[IDS_UUID_STR];
    char *path autofree = NULL;

    ids_format_uuid(uuid, u);
    xasprintf(&path, "%s/%s.json", dir, u);
    return access(path, F_OK) == 0;
}

int store_scan(const char *dir, bool tidy, struct store_rec **out, size_t *n)
{
    DIR *d = opendir(dir);
    struct store_rec *v = NULL;
    size_t nv = 0, cap = 0;
    struct dirent *e;
    int ret = 0;

    if (d == NULL) {
        ret = -errno;
        log_error("cannot read the record directory dir=%s error=%s", dir,
                  strerror(errno));
        return ret;
    }
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        struct store_rec r;
        const char *why = "";
        char *buf = NULL;
        size_t len = 0;
        int rc;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (name[0] == '.' && strlen(name) > 4 &&
            strcmp(name + strlen(name) - 4, ".tmp") == 0) {
            /* A write that a crash interrupted: its vTPM was never
             * announced (reconciling reports the vTPM as an orphan). */
            if (tidy) {
                log_info("removing an unfinished record file=%s/%s", dir, name);
                unlinkat(dirfd(d), name, 0);
            }
            continue;
        }
        if (!is_record_name(name)) {
            if (tidy)
                log_warn("ignoring a stray file in the record directory file=%s/%s",
                         dir, name);
            continue;
        }
        rc = read_small(dirfd(d), name, &buf, &len);
        if (rc == 0)
            rc = store_parse(name, buf, len, &r, &why);
        else
            why = rc == -EINVAL ? "not a regular file of at most 64 KiB" : strerror(-rc);
        free(buf);
        if (rc < 0) {
            log_error("corrupt record file=%s/%s error=\"%s\" (move it away "
                      "once its vTPM is accounted for)", dir, name, why);
            ret = -EINVAL;
            continue;
        }
        if (nv == cap) {
            cap = cap ? cap * 2 : 64;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        v[nv++] = r;
    }
    closedir(d);
    if (ret < 0) {
        free(v);
        return ret;
    }
    *out = v;
    *n = nv;
    return 0;
}

static int store_load(struct store *s)
{
    struct store_rec *v = NULL;
    size_t n = 0;
    int ret = store_scan(s->dir, true, &v, &n);

    if (ret < 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        if (v[i].has_instance && store_get_instance(s, v[i].instance)) {
            char u[IDS_UUID_STR], inst[IDS_UUID_STR];

            ids_format_uuid(v[i].uuid, u);
            ids_format_uuid(v[i].instance, inst);
            log_warn("two records for one instance instance=%s vtpm=%s", inst, u);
        }
        store_set(s, &v[i]);
    }
    free(v);
    return 0;
}

static int make_dir(const char *path)
{
    struct stat st;

    if (mkdir(path, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return -errno;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int store_open(const char *state_dir, struct store **out)
{
    struct store *s = xcalloc(1, sizeof(*s));
    char *lock autofree = NULL;
    int ret;

    s->lock_fd = -1;
    s->state_dir = xstrdup(state_dir);
    xasprintf(&s->dir, "%s/vtpms", state_dir);
    xasprintf(&lock, "%s/vtpm-proxyd.lock", state_dir);
    if ((ret = make_dir(state_dir)) < 0 || (ret = make_dir(s->dir)) < 0) {
        log_error("cannot create the state directory dir=%s error=%s", s->dir,
                  strerror(-ret));
        goto fail;
    }
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        ret = -errno;
        log_error("cannot open the lock file file=%s error=%s", lock, strerror(errno));
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        ret = -errno;
        log_error("another vtpm-proxyd uses this state directory dir=%s", state_dir);
        goto fail;
    }
    if ((ret = store_load(s)) < 0)
        goto fail;
    log_info("records loaded dir=%s records=%zu", s->dir, s->n);
    *out = s;
    return 0;
fail:
    store_free(s);
    return ret;
}

void store_free(struct store *s)
{
    if (s == NULL)
        return;
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->v);
    free(s->dir);
    free(s->state_dir);
    free(s);
}

const char *store_dir(const struct store *s)
{
    return s->dir;
}

const struct store_rec *store_get(const struct store *s, const uint8_t *uuid)
{
    for (size_t i = 0; i < s->n; i++) {
        if (memcmp(s->v[i].uuid, uuid, 16) == 0)
            return &s->v[i];
    }
    return NULL;
}

const struct store_rec *store_get_instance(const struct store *s,
                                           const uint8_t *instance)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].has_instance && memcmp(s->v[i].instance, instance, 16) == 0)
            return &s->v[i];
    }
    return NULL;
}

void store_set(struct store *s, const struct store_rec *r)
{
    struct store_rec *old = (struct store_rec *)store_get(s, r->uuid);

    if (old) {
        *old = *r;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
    }
    s->v[s->n++] = *r;
}

void store_del(struct store *s, const uint8_t *uuid)
{
    const struct store_rec *r = store_get(s, uuid);

    if (r) {
        size_t i = (size_t)(r - s->v);

        s->v[i] = s->v[--s->n];
    }
}

size_t store_count(const struct store *s)
{
    return s->n;
}

static int rec_cmp(const void *a, const void *b)
{
    const struct store_rec *x = a, *y = b;

    if (x->created_at != y->created_at)
        return x->created_at < y->created_at ? -1 : 1;
    return memcmp(x->uuid, y->uuid, 16);
}

struct store_rec *store_list(const struct store *s, size_t *n)
{
    struct store_rec *v = xcalloc(s->n ? s->n : 1, sizeof(*v));

    if (s->n) {
        memcpy(v, s->v, s->n * sizeof(*v));
        qsort(v, s->n, sizeof(*v), rec_cmp);
    }
    *n = s->n;
    return v;
}
