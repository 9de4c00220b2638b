#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "uuidutil.h"
#include "vtime.h"
#include "xalloc.h"

#define IMAGE_SUFFIX ".img"
/* An interrupted create leaves at most this hidden name behind; the
 * final name only ever appears complete (see image_create). */
#define IMAGE_TMP_PREFIX "."
#define IMAGE_TMP_SUFFIX ".img.tmp"
#define IMAGE_NAME_MAX (sizeof(IMAGE_TMP_PREFIX) + UUIDUTIL_LEN + sizeof(IMAGE_TMP_SUFFIX))

static void image_seterr(char **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void image_seterr(char **err, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    free(*err);
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        abort(); /* out of memory: the project's policy (xalloc.h) */
    va_end(ap);
}

/* dir without trailing slashes ("/" stays "/"), joined with name. */
static char *image_join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    char *p;

    while (n > 1 && dir[n - 1] == '/')
        n--;
    xasprintf(&p, "%.*s%s%s", (int)n, dir, (n == 1 && dir[0] == '/') ? "" : "/", name);
    return p;
}

static int image_names(const char *instance_uuid, char name[IMAGE_NAME_MAX],
                       char tmpname[IMAGE_NAME_MAX])
{
    char canon[UUIDUTIL_BUFLEN];

    if (uuid_canonical(instance_uuid, canon) < 0)
        return -EINVAL;
    snprintf(name, IMAGE_NAME_MAX, "%s" IMAGE_SUFFIX, canon);
    if (tmpname)
        snprintf(tmpname, IMAGE_NAME_MAX, IMAGE_TMP_PREFIX "%s" IMAGE_TMP_SUFFIX, canon);
    return 0;
}

int image_path(const char *dir, const char *instance_uuid, char **path_out)
{
    char name[IMAGE_NAME_MAX];

    if (!dir || image_names(instance_uuid, name, NULL) < 0)
        return -EINVAL;
    *path_out = image_join(dir, name);
    return 0;
}

/* mkdir -p for the parents of dir (0755, like install -d), then dir itself
 * 0700. Existing components are fine: the caller checks the result. */
static int image_mkdirs(const char *dir)
{
    char *p autofree = xstrdup(dir);
    size_t n = strlen(p);

    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, 0700) < 0)
        return errno == EEXIST ? 0 : -errno;
    return 1; /* created */
}

/* Every ancestor of dir must be as trusted as dir itself: owned by root
 * or by us, and not writable by others unless sticky (as /tmp is). Else
 * whoever owns one (say a /tmp/vtpmd-demo made by another user first)
 * could swap it, or a symlink in it, and so redirect the image paths
 * that are later handed to Xen. Symlinks are judged by their owner. */
static int image_check_ancestors(const char *dir, bool allow_missing, char **err)
{
    char *p autofree = xstrdup(dir);
    uid_t me = geteuid();
    struct stat st;
    char *s;

    for (s = strrchr(p, '/'); s; s = strrchr(p, '/')) {
        *s = '\0';
        if (lstat(*p ? p : "/", &st) < 0) {
            int ret = -errno;

            if (ret == -ENOENT && allow_missing)
                continue; /* made later, by us, with our mode */
            image_seterr(err, "cannot check %s: %s", *p ? p : "/", strerror(-ret));
            return ret;
        }
        if (st.st_uid != 0 && st.st_uid != me) {
            image_seterr(err, "%s (above image directory %s) is owned by uid %u; refusing to use it",
                         *p ? p : "/", dir, (unsigned)st.st_uid);
            return -EPERM;
        }
        if (S_ISDIR(st.st_mode) && (st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
            image_seterr(err, "%s (above image directory %s) is writable by others (mode %04o); refusing to use it",
                         *p ? p : "/", dir, (unsigned)(st.st_mode & 07777));
            return -EPERM;
        }
        if (!*p)
            break;
    }
    return 0;
}

/* Opens the image directory without following a symlink at its last
 * component, and checks that nobody else can plant files in it: images
 * are later handed to Xen by path, so whoever can write the directory
 * could swap an image for a link to another file. */
static int image_open_dir(const char *dir, bool create, int *fd_out, char **err)
{
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd autoclose = -1;
    bool created = false;
    struct stat st;
    int ret;

    if (!dir || dir[0] != '/') {
        image_seterr(err, "image directory '%s' is not an absolute path", dir ? dir : "(null)");
        return -EINVAL;
    }
    fd = open(dir, flags);
    if (fd < 0 && errno == ENOENT && create) {
        ret = image_mkdirs(dir);
        if (ret < 0) {
            image_seterr(err, "cannot create image directory %s: %s", dir, strerror(-ret));
            return ret;
        }
        created = ret > 0;
        fd = open(dir, flags);
    }
    if (fd < 0) {
        ret = -errno;
        if (ret == -ENOENT && !create)
            return ret; /* the caller decides what a missing dir means */
        /* With O_DIRECTORY, Linux reports a symlink as ENOTDIR. */
        if (ret == -ENOTDIR || ret == -ELOOP) {
            struct stat lst;

            ret = (lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode)) ? -ELOOP : -ENOTDIR;
        }
        if (ret == -ELOOP)
            image_seterr(err, "image directory %s is a symbolic link; refusing to use it", dir);
        else if (ret == -ENOTDIR)
            image_seterr(err, "image directory %s is not a directory", dir);
        else
            image_seterr(err, "cannot open image directory %s: %s", dir, strerror(-ret));
        return ret;
    }
    /* mkdir's mode passed through the umask: set it exactly. */
    if (created && fchmod(fd, 0700) < 0) {
        ret = -errno;
        image_seterr(err, "cannot set mode 0700 on image directory %s: %s", dir, strerror(-ret));
        return ret;
    }
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        image_seterr(err, "cannot stat image directory %s: %s", dir, strerror(-ret));
        return ret;
    }
    if (st.st_uid != geteuid()) {
        image_seterr(err, "image directory %s is owned by uid %u, not by vtpmd (uid %u); refusing to use it",
                     dir, (unsigned)st.st_uid, (unsigned)geteuid());
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        image_seterr(err, "image directory %s is group- or world-writable (mode %04o); refusing to use it (chmod 0700)",
                     dir, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    ret = image_check_ancestors(dir, false, err);
    if (ret < 0)
        return ret;
    *fd_out = fd;
    fd = -1;
    return 0;
}

int image_check_dir(const char *dir, char **err)
{
    int fd = -1, ret;

    ret = image_open_dir(dir, false, &fd, err);
    if (ret == -ENOENT)
        return image_check_ancestors(dir, true, err);
    if (fd >= 0)
        close(fd);
    return ret;
}

/* The idempotent case of image_create: what is already at the name. */
static int image_check_existing(int dirfd, const char *name, const char *path,
                                uint64_t size, char **err)
{
    struct stat st;
    int ret;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        ret = -errno;
        if (ret != -ENOENT)
            image_seterr(err, "cannot stat image %s: %s", path, strerror(-ret));
        return ret;
    }
    if (S_ISLNK(st.st_mode)) {
        image_seterr(err, "image %s exists and is a symbolic link; refusing to use it", path);
        return -EEXIST;
    }
    if (!S_ISREG(st.st_mode)) {
        image_seterr(err, "image %s exists and is not a regular file", path);
        return -EEXIST;
    }
    if (st.st_uid != geteuid()) {
        image_seterr(err, "image %s exists and is owned by uid %u, not by vtpmd (uid %u)",
                     path, (unsigned)st.st_uid, (unsigned)geteuid());
        return -EEXIST;
    }
    if ((st.st_mode & 07777) != 0600) {
        image_seterr(err, "image %s exists with mode %04o, want 0600", path,
                     (unsigned)(st.st_mode & 07777));
        return -EEXIST;
    }
    if ((uint64_t)st.st_size != size) {
        image_seterr(err, "image %s exists with size %lld bytes, want %llu", path,
                     (long long)st.st_size, (unsigned long long)size);
        return -EEXIST;
    }
    return 0;
}

/* Allocates [0, size) of a new, empty file. fallocate(2) mode 0 gives
 * real blocks (so the vTPM's later writes cannot fail with ENOSPC) and
 * guarantees that a range holding no data reads back as zeros: the
 * filesystem records the blocks as unwritten extents instead of writing
 * 2 MiB of zeros, which is what `dd if=/dev/zero` achieved, for a
 * fraction of the I/O. Filesystems without fallocate get glibc's
 * posix_fallocate, which writes to every block (zeros, as the file was
 * empty). */
static int image_reserve(int fd, uint64_t size)
{
    int r;

    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        return -errno;
    r = posix_fallocate(fd, 0, (off_t)size);
    return -r;
}

/* Moves the finished temporary file to its name unless that name exists:
 * renameat2(RENAME_NOREPLACE), or link+unlink where the filesystem lacks
 * it. -EEXIST when the name is taken. */
static int image_publish(int dirfd, const char *tmpname, const char *name)
{
    if (renameat2(dirfd, tmpname, dirfd, name, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    if (linkat(dirfd, tmpname, dirfd, name, 0) < 0)
        return -errno;
    (void)unlinkat(dirfd, tmpname, 0);
    return 0;
}

/* image_create; with sync_dir false the directory is not fsync'd (the
 * caller does it later, for many images at once). */
static int image_create_at(const char *dir, const char *instance_uuid, uint64_t size,
                           bool sync_dir, char **path_out, char **err)
{
    char name[IMAGE_NAME_MAX], tmpname[IMAGE_NAME_MAX];
    char *path autofree = NULL;
    int dirfd autoclose = -1;
    int fd autoclose = -1;
    bool tmp_made = false;
    int ret;

    if (image_names(instance_uuid, name, tmpname) < 0) {
        image_seterr(err, "cannot create image: instance UUID is not a valid UUID");
        return -EINVAL;
    }
    if (size == 0 || size > (uint64_t)INT64_MAX) {
        image_seterr(err, "cannot create image: invalid size %llu", (unsigned long long)size);
        return -EINVAL;
    }
    ret = image_open_dir(dir, true, &dirfd, err);
    if (ret < 0)
        return ret;
    path = image_join(dir, name);

    ret = image_check_existing(dirfd, name, path, size, err);
    if (ret == 0 && sync_dir && fsync(dirfd) < 0) {
        /* Already there: perhaps renamed by a create that stopped just
         * after, so its name is made durable here too. */
        ret = -errno;
        image_seterr(err, "cannot fsync image directory %s: %s", dir, strerror(-ret));
    }
    if (ret != -ENOENT)
        goto out; /* already there (0), or something wrong there */

    /* The image is built under a temporary name and renamed into place
     * once complete and durable, so a crash never leaves a short file at
     * the final name, which a retry would then have to tell from a
     * foreign one. A leftover temporary file is ours: drop it. Neither
     * call follows a symlink planted at the temporary name. */
    if (unlinkat(dirfd, tmpname, 0) < 0 && errno != ENOENT) {
        ret = -errno;
        image_seterr(err, "cannot remove stale temporary image %s/%s: %s", dir, tmpname,
                     strerror(-ret));
        goto out;
    }
    fd = openat(dirfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        ret = -errno;
        image_seterr(err, "cannot create image %s: %s", path, strerror(-ret));
        goto out;
    }
    tmp_made = true;
    /* The umask applied to open's mode: set it exactly. */
    if (fchmod(fd, 0600) < 0) {
        ret = -errno;
        image_seterr(err, "cannot set mode 0600 on image %s: %s", path, strerror(-ret));
        goto out;
    }
    ret = image_reserve(fd, size);
    if (ret == -ENOSPC || ret == -EDQUOT) {
        image_seterr(err, "disk full: cannot reserve %llu bytes for image %s: %s",
                     (unsigned long long)size, path, strerror(-ret));
        goto out;
    }
    if (ret < 0) {
        image_seterr(err, "cannot allocate %llu bytes for image %s: %s",
                     (unsigned long long)size, path, strerror(-ret));
        goto out;
    }
    if (fsync(fd) < 0) {
        ret = -errno;
        image_seterr(err, "cannot fsync image %s: %s", path, strerror(-ret));
        goto out;
    }
    ret = image_publish(dirfd, tmpname, name);
    if (ret == -EEXIST) {
        /* Appeared meanwhile: judge it as if it had been there. */
        ret = image_check_existing(dirfd, name, path, size, err);
        goto out;
    }
    if (ret < 0) {
        image_seterr(err, "cannot move image into place at %s: %s", path, strerror(-ret));
        goto out;
    }
    tmp_made = false;
    if (sync_dir && fsync(dirfd) < 0) {
        ret = -errno;
        image_seterr(err, "cannot fsync image directory %s: %s", dir, strerror(-ret));
        goto out;
    }
    ret = 0;
out:
    if (tmp_made)
        (void)unlinkat(dirfd, tmpname, 0);
    if (ret == 0 && path_out)
        *path_out = steal_ptr(path);
    return ret;
}

int image_create(const char *dir, const char *instance_uuid, uint64_t size,
                 char **path_out, char **err)
{
    return image_create_at(dir, instance_uuid, size, true, path_out, err);
}

int image_remove(const char *dir, const char *instance_uuid, char **err)
{
    char name[IMAGE_NAME_MAX], tmpname[IMAGE_NAME_MAX];
    int dirfd autoclose = -1;
    bool removed = false;
    int ret;

    if (image_names(instance_uuid, name, tmpname) < 0) {
        image_seterr(err, "cannot remove image: instance UUID is not a valid UUID");
        return -EINVAL;
    }
    ret = image_open_dir(dir, false, &dirfd, err);
    if (ret == -ENOENT)
        return 0;
    if (ret < 0)
        return ret;
    /* unlinkat never follows a symlink: a planted link is removed itself. */
    if (unlinkat(dirfd, name, 0) == 0) {
        removed = true;
    } else if (errno != ENOENT) {
        char *path autofree = image_join(dir, name);

        ret = -errno;
        image_seterr(err, "cannot remove image %s: %s", path, strerror(-ret));
        return ret;
    }
    if (unlinkat(dirfd, tmpname, 0) == 0)
        removed = true;
    if (removed && fsync(dirfd) < 0) {
        ret = -errno;
        image_seterr(err, "cannot fsync image directory %s: %s", dir, strerror(-ret));
        return ret;
    }
    return 0;
}

static int image_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int image_list(const char *dir, struct strlist *uuids_out, char **err)
{
    struct strlist found = {0};
    int dirfd = -1;
    struct dirent *de;
    DIR *d;
    int ret;

    ret = image_open_dir(dir, false, &dirfd, err);
    if (ret == -ENOENT)
        return 0;
    if (ret < 0)
        return ret;
    d = fdopendir(dirfd);
    if (!d) {
        ret = -errno;
        close(dirfd);
        image_seterr(err, "cannot read image directory %s: %s", dir, strerror(-ret));
        return ret;
    }
    for (;;) {
        char uuid[UUIDUTIL_BUFLEN];

        errno = 0;
        de = readdir(d);
        if (!de)
            break;

        /* Only the exact names image_create makes, in canonical form. */
        if (strlen(de->d_name) != UUIDUTIL_LEN + strlen(IMAGE_SUFFIX) ||
            strcmp(de->d_name + UUIDUTIL_LEN, IMAGE_SUFFIX) != 0)
            continue;
        memcpy(uuid, de->d_name, UUIDUTIL_LEN);
        uuid[UUIDUTIL_LEN] = '\0';
        if (!uuid_is_canonical(uuid))
            continue;
        strlist_push(&found, uuid);
    }
    ret = -errno;
    closedir(d);
    if (ret < 0) {
        image_seterr(err, "cannot read image directory %s: %s", dir, strerror(-ret));
        strlist_free(&found);
        return ret;
    }
    if (found.n)
        qsort(found.v, found.n, sizeof(*found.v), image_cmp);
    for (size_t i = 0; i < found.n; i++)
        strlist_push(uuids_out, found.v[i]);
    strlist_free(&found);
    return 0;
}

/* ---- spare images ------------------------------------------------- */

#define SPARE_PREFIX ".spare-"
#define SPARE_SUFFIX ".img"
#define SPARE_TMP_SUFFIX ".tmp"
#define SPARE_HEX 16
#define SPARE_NAME_MAX (sizeof(SPARE_PREFIX) + SPARE_HEX + sizeof(SPARE_TMP_SUFFIX))
#define SPARE_RETRY_S 5
/* The thread makes spares only after this long without a take (unless
 * none is left): making one allocates an inode, reserves blocks and
 * fsyncs, holding the directory's lock at times, and would otherwise do
 * so right beside the create that took the spare. */
#define SPARE_QUIET_NS 5000000ull

struct image_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;   /* the refill thread: a spare was taken, or stop */
    pthread_cond_t sync_done; /* image_pool_sync waiters */
    pthread_t thread;
    bool has_thread, stopping, failing;
    atomic_int refs;
    char *dir;
    uint64_t size;
    unsigned target;
    char **names; /* spares ready (names in dir), a stack */
    size_t n, cap;
    uint64_t renamed, synced; /* tickets: renames made, renames durable */
    uint64_t last_take_ns;    /* CLOCK_MONOTONIC */
    bool syncing;
};

static void pool_push_locked(struct image_pool *p, const char *name)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->names = xrealloc(p->names, p->cap * sizeof(*p->names));
    }
    p->names[p->n++] = xstrdup(name);
}

/* Makes one spare: built under a temporary name, reserved and fsync'd,
 * then renamed, so a spare name only ever shows a complete, durable file.
 * The rename itself needs no directory fsync: the one after the rename
 * that hands the spare to an instance covers both. */
static int spare_make(struct image_pool *p, char name[SPARE_NAME_MAX], char **err)
{
    unsigned char rnd[SPARE_HEX / 2];
    char hex[SPARE_HEX + 1], tmp[SPARE_NAME_MAX];
    int dirfd autoclose = -1;
    int fd autoclose = -1;
    int ret;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        image_seterr(err, "no random bytes for a spare image name: %s", strerror(errno));
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(name, SPARE_NAME_MAX, SPARE_PREFIX "%s" SPARE_SUFFIX, hex);
    snprintf(tmp, sizeof(tmp), SPARE_PREFIX "%s" SPARE_TMP_SUFFIX, hex);
    ret = image_open_dir(p->dir, true, &dirfd, err);
    if (ret < 0)
        return ret;
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        ret = -errno;
        image_seterr(err, "cannot create spare image %s/%s: %s", p->dir, tmp, strerror(-ret));
        return ret;
    }
    if (fchmod(fd, 0600) < 0)
        ret = -errno;
    else
        ret = image_reserve(fd, p->size);
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    if (ret == 0)
        ret = image_publish(dirfd, tmp, name);
    if (ret < 0) {
        (void)unlinkat(dirfd, tmp, 0);
        image_seterr(err, "%scannot make spare image %s/%s: %s",
                     ret == -ENOSPC || ret == -EDQUOT ? "disk full: " : "", p->dir, name,
                     strerror(-ret));
    }
    return ret;
}

/* Adopts the spares a previous run left if they are exactly what this
 * pool makes; removes the others and half-made ones. */
static void spare_adopt(struct image_pool *p)
{
    char *err autofree = NULL;
    int dirfd = -1;
    unsigned kept = 0, dropped = 0;
    struct dirent *de;
    DIR *d;

    if (image_open_dir(p->dir, false, &dirfd, &err) < 0)
        return; /* missing (made with the first spare) or refused (logged then) */
    d = fdopendir(dirfd);
    if (d == NULL) {
        close(dirfd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        bool ok = false;
        struct stat st;

        if (strncmp(de->d_name, SPARE_PREFIX, strlen(SPARE_PREFIX)) != 0)
            continue;
        if (len == strlen(SPARE_PREFIX) + SPARE_HEX + strlen(SPARE_SUFFIX) &&
            strcmp(de->d_name + len - strlen(SPARE_SUFFIX), SPARE_SUFFIX) == 0 &&
            fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            ok = S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
                 (st.st_mode & 07777) == 0600 && st.st_nlink == 1 &&
                 (uint64_t)st.st_size == p->size;
        if (ok) {
            pthread_mutex_lock(&p->lock);
            pool_push_locked(p, de->d_name);
            pthread_mutex_unlock(&p->lock);
            kept++;
        } else if (unlinkat(dirfd, de->d_name, 0) == 0) {
            dropped++;
        }
    }
    closedir(d);
    if (kept || dropped)
        log_info("spare images adopted dir=%s kept=%u removed=%u", p->dir, kept, dropped);
}

static void *spare_main(void *arg)
{
    struct image_pool *p = arg;

    spare_adopt(p);
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        char name[SPARE_NAME_MAX];
        char *err = NULL;
        int ret;

        uint64_t quiet_until = p->last_take_ns + SPARE_QUIET_NS;

        if (p->n >= p->target) {
            pthread_cond_wait(&p->work, &p->lock);
            continue;
        }
        if (p->n > 0 && vtime_now_ns() < quiet_until) {
            struct timespec ts = vtime_ts_ns(quiet_until);

            pthread_cond_timedwait(&p->work, &p->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&p->lock);
        ret = spare_make(p, name, &err);
        pthread_mutex_lock(&p->lock);
        if (ret == 0) {
            pool_push_locked(p, name);
            if (p->failing)
                log_info("spare images: making them again dir=%s", p->dir);
            p->failing = false;
        } else {
            struct timespec ts = vtime_ts_ns(vtime_now_ns() + SPARE_RETRY_S * 1000000000ull);

            if (!p->failing)
                log_warn("spare images: cannot make one, creates take the slower direct "
                         "path; retrying every %ds error=\"%s\"",
                         SPARE_RETRY_S, err ? err : strerror(-ret));
            p->failing = true;
            if (!p->stopping)
                pthread_cond_timedwait(&p->work, &p->lock, &ts);
        }
        free(err);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int image_pool_new(const char *dir, uint64_t size, unsigned spares, struct image_pool **out)
{
    struct image_pool *p;
    pthread_condattr_t ca;

    if (!dir || dir[0] != '/' || size == 0 || size > (uint64_t)INT64_MAX || !out)
        return -EINVAL;
    p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&p->sync_done, NULL);
    atomic_init(&p->refs, 1);
    p->dir = xstrdup(dir);
    p->size = size;
    p->target = spares;
    if (spares > 0) {
        int ret = pthread_create(&p->thread, NULL, spare_main, p);

        if (ret != 0) {
            image_pool_unref(p);
            return -ret;
        }
        p->has_thread = true;
    }
    *out = p;
    return 0;
}

struct image_pool *image_pool_ref(struct image_pool *p)
{
    atomic_fetch_add(&p->refs, 1);
    return p;
}

void image_pool_unref(struct image_pool *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    if (p->has_thread)
        pthread_join(p->thread, NULL);
    for (size_t i = 0; i < p->n; i++)
        free(p->names[i]);
    free(p->names);
    free(p->dir);
    pthread_cond_destroy(&p->sync_done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* A spare's name, or NULL when none is ready; wakes the refill thread. */
static char *pool_pop(struct image_pool *p)
{
    char *name = NULL;

    pthread_mutex_lock(&p->lock);
    if (p->n > 0) {
        name = p->names[--p->n];
        p->last_take_ns = vtime_now_ns();
    }
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return name;
}

static uint64_t pool_ticket(struct image_pool *p)
{
    uint64_t t;

    pthread_mutex_lock(&p->lock);
    t = ++p->renamed;
    pthread_mutex_unlock(&p->lock);
    return t;
}

/* No spare: the image is made here, file fsync'd before its rename as
 * always, but the directory is left to image_pool_sync like a spare's
 * rename. The ticket is taken after the rename, so a sync for it always
 * starts after the rename. (An image that was already there gets one
 * too: it may be the rename of a create that failed just after it.) */
static int pool_create_direct(struct image_pool *p, const char *instance_uuid, uint64_t size,
                              char **path_out, uint64_t *ticket, char **err)
{
    int ret = image_create_at(p->dir, instance_uuid, size, false, path_out, err);

    if (ret == 0)
        *ticket = pool_ticket(p);
    return ret;
}

int image_pool_create(struct image_pool *p, const char *instance_uuid, uint64_t size,
                      char **path_out, uint64_t *ticket, bool *spare, char **err)
{
    char name[IMAGE_NAME_MAX];
    char *path autofree = NULL;
    int dirfd autoclose = -1;
    int ret;

    *ticket = 0;
    if (spare)
        *spare = false;
    if (image_names(instance_uuid, name, NULL) < 0 || p->target == 0 || size != p->size)
        return pool_create_direct(p, instance_uuid, size, path_out, ticket, err);
    ret = image_open_dir(p->dir, true, &dirfd, err);
    if (ret < 0)
        return ret;
    path = image_join(p->dir, name);
    ret = image_check_existing(dirfd, name, path, size, err);
    if (ret != -ENOENT) {
        if (ret == 0) /* perhaps renamed by a create that stopped just after */
            *ticket = pool_ticket(p);
        if (ret == 0 && path_out)
            *path_out = steal_ptr(path);
        return ret; /* already there (0), or something wrong there */
    }
    for (;;) {
        char *s autofree = pool_pop(p);

        if (s == NULL)
            return pool_create_direct(p, instance_uuid, size, path_out, ticket, err);
        ret = image_publish(dirfd, s, name);
        if (ret == -ENOENT)
            continue; /* gone meanwhile (another pool after a reload took it) */
        if (ret == 0)
            break;
        pthread_mutex_lock(&p->lock);
        pool_push_locked(p, s);
        pthread_mutex_unlock(&p->lock);
        if (ret == -EEXIST) {
            ret = image_check_existing(dirfd, name, path, size, err);
            if (ret == 0 && path_out)
                *path_out = steal_ptr(path);
            return ret;
        }
        image_seterr(err, "cannot move spare image %s/%s into place at %s: %s", p->dir, s,
                     path, strerror(-ret));
        return ret;
    }
    *ticket = pool_ticket(p);
    if (spare)
        *spare = true;
    if (path_out)
        *path_out = steal_ptr(path);
    return 0;
}

int image_pool_sync(struct image_pool *p, uint64_t ticket, char **err)
{
    int ret = 0;

    pthread_mutex_lock(&p->lock);
    while (p->synced < ticket) {
        uint64_t upto;
        int dirfd = -1;

        if (p->syncing) {
            pthread_cond_wait(&p->sync_done, &p->lock);
            continue;
        }
        /* Every rename counted so far happened before this fsync. */
        p->syncing = true;
        upto = p->renamed;
        pthread_mutex_unlock(&p->lock);
        ret = image_open_dir(p->dir, false, &dirfd, err);
        if (ret == 0 && fsync(dirfd) < 0) {
            ret = -errno;
            image_seterr(err, "cannot fsync image directory %s: %s", p->dir, strerror(-ret));
        }
        if (dirfd >= 0)
            close(dirfd);
        pthread_mutex_lock(&p->lock);
        p->syncing = false;
        if (ret == 0 && upto > p->synced)
            p->synced = upto;
        pthread_cond_broadcast(&p->sync_done);
        if (ret < 0)
            break;
    }
    pthread_mutex_unlock(&p->lock);
    return ret;
}

unsigned image_pool_spares(struct image_pool *p)
{
    unsigned n;

    pthread_mutex_lock(&p->lock);
    n = (unsigned)p->n;
    pthread_mutex_unlock(&p->lock);
    return n;
}

const char *image_pool_dir(const struct image_pool *p)
{
    return p->dir;
}

uint64_t image_pool_size(const struct image_pool *p)
{
    return p->size;
}

unsigned image_pool_target(const struct image_pool *p)
{
    return p->target;
}
