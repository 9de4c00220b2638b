/* image: paths, modes, idempotence, planted symlinks, unsafe directories
 * and a full disk. The full disk is simulated by wrapping fallocate
 * (-Wl,--wrap=fallocate); tests/integration/image-enospc.sh fills a real
 * tmpfs. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image.h"
#include "xalloc.h"

#define U1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define U2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define U3 "16fd2706-8baf-433b-82eb-8c7fada847da"
#define SIZE (2u * 1024 * 1024)

/* errno the wrapped fallocate fails with; 0: call the real one. */
static int fallocate_fail_errno;
static int fallocate_calls;

int __real_fallocate(int fd, int mode, off_t offset, off_t len);
int __wrap_fallocate(int fd, int mode, off_t offset, off_t len);

int __wrap_fallocate(int fd, int mode, off_t offset, off_t len)
{
    fallocate_calls++;
    if (fallocate_fail_errno) {
        errno = fallocate_fail_errno;
        return -1;
    }
    return __real_fallocate(fd, mode, offset, len);
}

struct fixture {
    char root[64];
    char *dir; /* root/images: not created yet */
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    snprintf(f->root, sizeof(f->root), "/tmp/test_image.XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    xasprintf(&f->dir, "%s/images", f->root);
    fallocate_fail_errno = 0;
    fallocate_calls = 0;
    *state = f;
    return 0;
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;

    if (!d) {
        unlink(path);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char *p;
        struct stat st;

        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        xasprintf(&p, "%s/%s", path, de->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(p, 0700);
            rm_rf(p);
        } else {
            unlink(p);
        }
        free(p);
    }
    closedir(d);
    rmdir(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    rm_rf(f->root);
    free(f->dir);
    free(f);
    return 0;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    chmod(path, mode);
}

static void assert_file_content(const char *path, const char *content)
{
    char buf[256] = {0};
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
    close(fd);
    assert_string_equal(buf, content);
}

static void test_path(void **state)
{
    char *p = NULL;

    assert_int_equal(image_path("/var/lib/vtpmd/images", U1, &p), 0);
    assert_string_equal(p, "/var/lib/vtpmd/images/" U1 ".img");
    free(p);
    assert_int_equal(image_path("/var/lib/vtpmd/images//", "0F8FAD5B-D9CB-469F-A165-70867728950E", &p), 0);
    assert_string_equal(p, "/var/lib/vtpmd/images/" U1 ".img");
    free(p);
    assert_int_equal(image_path("/", U1, &p), 0);
    assert_string_equal(p, "/" U1 ".img");
    free(p);
    p = NULL;
    assert_int_equal(image_path("/x", "../../etc/passwd", &p), -EINVAL);
    assert_int_equal(image_path("/x", U1 "/../a", &p), -EINVAL);
    assert_int_equal(image_path("/x", NULL, &p), -EINVAL);
    assert_null(p);
}

static void test_create(void **state)
{
    struct fixture *f = *state;
    char *path = NULL, *err = NULL, *want;
    unsigned char buf[4096];
    struct stat st;
    mode_t old = umask(0277); /* must not weaken or break the modes */
    int fd;

    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), 0);
    umask(old);
    assert_null(err);
    xasprintf(&want, "%s/%s.img", f->dir, U1);
    assert_string_equal(path, want);

    assert_int_equal(lstat(f->dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);

    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, SIZE);
    /* Space is reserved, not sparse. */
    assert_true((uint64_t)st.st_blocks * 512 >= SIZE);

    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    for (size_t total = 0; total < SIZE;) {
        ssize_t n = read(fd, buf, sizeof(buf));

        assert_true(n > 0);
        for (ssize_t i = 0; i < n; i++)
            assert_int_equal(buf[i], 0);
        total += (size_t)n;
    }
    close(fd);
    /* No temporary file is left. */
    assert_int_equal(count_entries(f->dir), 1);
    free(want);
    free(path);
}

static void test_create_idempotent(void **state)
{
    struct fixture *f = *state;
    char *p1 = NULL, *p2 = NULL, *err = NULL;
    struct stat a, b;

    assert_int_equal(image_create(f->dir, U1, SIZE, &p1, &err), 0);
    assert_int_equal(stat(p1, &a), 0);
    /* Written by the vTPM meanwhile: a retry must not touch it. */
    {
        int fd = open(p1, O_WRONLY);

        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "state", 5, 100), 5);
        close(fd);
    }
    assert_int_equal(image_create(f->dir, "0F8FAD5B-D9CB-469F-A165-70867728950E", SIZE, &p2, &err), 0);
    assert_null(err);
    assert_string_equal(p1, p2);
    assert_int_equal(stat(p2, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    {
        char buf[6] = {0};
        int fd = open(p1, O_RDONLY);

        assert_int_equal(pread(fd, buf, 5, 100), 5);
        close(fd);
        assert_string_equal(buf, "state");
    }
    free(p1);
    free(p2);
}

static void test_create_parents(void **state)
{
    struct fixture *f = *state;
    char *dir, *err = NULL;
    struct stat st;

    xasprintf(&dir, "%s/a/b/images/", f->root);
    assert_int_equal(image_create(dir, U1, 64 * 1024, NULL, &err), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    free(dir);
}

static void test_create_wrong_existing(void **state)
{
    struct fixture *f = *state;
    char *path, *err = NULL, *out = NULL;

    assert_int_equal(image_create(f->dir, U1, SIZE, NULL, &err), 0);
    assert_int_equal(image_path(f->dir, U1, &path), 0);

    /* Wrong size. */
    assert_int_equal(image_create(f->dir, U1, SIZE * 2, &out, &err), -EEXIST);
    assert_null(out);
    assert_non_null(strstr(err, "size 2097152 bytes, want 4194304"));
    free(err);
    err = NULL;

    /* Wrong mode. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, &out, &err), -EEXIST);
    assert_non_null(strstr(err, "mode 0644, want 0600"));
    free(err);
    err = NULL;

    /* A directory at the name. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, &out, &err), -EEXIST);
    assert_non_null(strstr(err, "not a regular file"));
    free(err);
    err = NULL;
    assert_null(out);
    free(path);
}

static void test_create_symlink_at_name(void **state)
{
    struct fixture *f = *state;
    char *path, *victim, *dangling, *err = NULL;
    struct stat st;

    assert_int_equal(mkdir(f->dir, 0700), 0);
    assert_int_equal(image_path(f->dir, U1, &path), 0);
    xasprintf(&victim, "%s/victim", f->root);
    write_file(victim, "precious", 0600);

    /* A link to an existing file: never written through, never accepted. */
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, NULL, &err), -EEXIST);
    assert_non_null(strstr(err, "symbolic link"));
    free(err);
    err = NULL;
    assert_file_content(victim, "precious");

    /* A dangling link: its target must not be created. */
    xasprintf(&dangling, "%s/created-through-link", f->root);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(dangling, path), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, NULL, &err), -EEXIST);
    free(err);
    err = NULL;
    assert_int_equal(lstat(dangling, &st), -1);
    assert_int_equal(errno, ENOENT);

    /* Removing it removes the link, not its target. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(image_remove(f->dir, U1, &err), 0);
    assert_int_equal(lstat(path, &st), -1);
    assert_file_content(victim, "precious");

    free(path);
    free(victim);
    free(dangling);
}

static void test_create_symlink_at_tmp(void **state)
{
    struct fixture *f = *state;
    char *tmp, *victim, *path = NULL, *err = NULL;
    struct stat st;

    assert_int_equal(mkdir(f->dir, 0700), 0);
    xasprintf(&tmp, "%s/.%s.img.tmp", f->dir, U1);
    xasprintf(&victim, "%s/victim", f->root);
    write_file(victim, "precious", 0600);
    assert_int_equal(symlink(victim, tmp), 0);

    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), 0);
    assert_file_content(victim, "precious");
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, SIZE);
    assert_int_equal(lstat(tmp, &st), -1);
    free(tmp);
    free(victim);
    free(path);
}

static void test_dir_symlink(void **state)
{
    struct fixture *f = *state;
    char *real, *err = NULL;

    xasprintf(&real, "%s/real", f->root);
    assert_int_equal(mkdir(real, 0700), 0);
    assert_int_equal(symlink(real, f->dir), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, NULL, &err), -ELOOP);
    assert_non_null(strstr(err, "symbolic link"));
    free(err);
    err = NULL;
    assert_int_equal(count_entries(real), 0);
    /* Listing and removal refuse it too. */
    {
        struct strlist l = {0};

        assert_int_equal(image_list(f->dir, &l, &err), -ELOOP);
        free(err);
        err = NULL;
        assert_int_equal(image_remove(f->dir, U1, &err), -ELOOP);
        free(err);
    }
    free(real);
}

static void test_dir_unsafe(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;

    assert_int_equal(mkdir(f->dir, 0700), 0);
    assert_int_equal(chmod(f->dir, 0770), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, NULL, &err), -EPERM);
    assert_non_null(strstr(err, "group- or world-writable (mode 0770)"));
    free(err);
    err = NULL;
    assert_int_equal(chmod(f->dir, 01777), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, NULL, &err), -EPERM);
    free(err);
    err = NULL;

    /* Readable by others is fine (0755 is a common operator choice). */
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, NULL, &err), 0);

    /* Owned by someone else: only root can set this up. */
    if (geteuid() == 0) {
        assert_int_equal(chown(f->dir, 65534, 65534), 0);
        assert_int_equal(image_create(f->dir, U2, SIZE, NULL, &err), -EPERM);
        assert_non_null(strstr(err, "owned by uid 65534"));
        free(err);
    }

    /* A file where the directory should be. */
    {
        char *file;

        xasprintf(&file, "%s/file", f->root);
        write_file(file, "x", 0600);
        err = NULL;
        assert_int_equal(image_create(file, U1, SIZE, NULL, &err), -ENOTDIR);
        assert_non_null(strstr(err, "not a directory"));
        free(err);
        free(file);
    }
    err = NULL;
    assert_int_equal(image_create("relative/dir", U1, SIZE, NULL, &err), -EINVAL);
    free(err);
}

static void test_ancestors(void **state)
{
    struct fixture *f = *state;
    char *parent, *dir, *err = NULL;

    /* Writable by others without the sticky bit: refused, nothing made. */
    xasprintf(&parent, "%s/shared", f->root);
    xasprintf(&dir, "%s/images", parent);
    assert_int_equal(mkdir(parent, 0700), 0);
    assert_int_equal(chmod(parent, 0777), 0);
    assert_int_equal(image_create(dir, U1, SIZE, NULL, &err), -EPERM);
    assert_non_null(strstr(err, "(above image directory"));
    assert_non_null(strstr(err, "is writable by others (mode 0777)"));
    free(err);
    err = NULL;
    /* Sticky, like /tmp: fine. */
    assert_int_equal(chmod(parent, 01777), 0);
    assert_int_equal(image_create(dir, U1, SIZE, NULL, &err), 0);
    assert_int_equal(chmod(parent, 0755), 0);

    if (geteuid() == 0) {
        char *link, *ldir;

        /* An ancestor owned by someone else. */
        assert_int_equal(chown(parent, 65534, 65534), 0);
        assert_int_equal(image_create(dir, U2, SIZE, NULL, &err), -EPERM);
        assert_non_null(strstr(err, "is owned by uid 65534"));
        free(err);
        err = NULL;
        assert_int_equal(chown(parent, 0, 0), 0);

        /* A symlink on the way, owned by someone else. */
        xasprintf(&link, "%s/link", f->root);
        xasprintf(&ldir, "%s/images", link);
        assert_int_equal(symlink(parent, link), 0);
        assert_int_equal(image_create(ldir, U2, SIZE, NULL, &err), 0);
        assert_int_equal(lchown(link, 65534, 65534), 0);
        assert_int_equal(image_create(ldir, U3, SIZE, NULL, &err), -EPERM);
        assert_non_null(strstr(err, "link (above image directory"));
        free(err);
        free(link);
        free(ldir);
    }
    free(parent);
    free(dir);
}

static void test_invalid_uuid(void **state)
{
    struct fixture *f = *state;
    static const char *const hostile[] = {
        "../../../../../../../../etc/passwd00",
        "0f8fad5b-d9cb-469f-a165-70867728950e/../../x",
        "0f8fad5b-d9cb-469f-a165-70867728950e\n",
        "",
    };
    char *err = NULL, *out = NULL;

    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        assert_int_equal(image_create(f->dir, hostile[i], SIZE, &out, &err), -EINVAL);
        assert_non_null(strstr(err, "not a valid UUID"));
        free(err);
        err = NULL;
        assert_int_equal(image_remove(f->dir, hostile[i], &err), -EINVAL);
        free(err);
        err = NULL;
    }
    assert_null(out);
    /* Nothing was made, not even the directory. */
    assert_int_equal(count_entries(f->root), 0);
    assert_int_equal(image_create(f->dir, U1, 0, &out, &err), -EINVAL);
    free(err);
}

static void test_enospc(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *path = NULL;

    fallocate_fail_errno = ENOSPC;
    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), -ENOSPC);
    assert_null(path);
    assert_non_null(err);
    assert_true(strncmp(err, "disk full: cannot reserve 2097152 bytes for image ", 50) == 0);
    assert_non_null(strstr(err, U1 ".img: No space left on device"));
    free(err);
    err = NULL;
    /* Neither the image nor its temporary file is left. */
    assert_int_equal(count_entries(f->dir), 0);

    fallocate_fail_errno = EDQUOT;
    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), -EDQUOT);
    assert_non_null(strstr(err, "disk full"));
    free(err);
    err = NULL;
    assert_int_equal(count_entries(f->dir), 0);

    /* Other errors are reported as such. */
    fallocate_fail_errno = EIO;
    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), -EIO);
    assert_non_null(strstr(err, "cannot allocate"));
    free(err);
    err = NULL;
    assert_int_equal(count_entries(f->dir), 0);

    /* Space freed: the retry succeeds. */
    fallocate_fail_errno = 0;
    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), 0);
    free(path);
}

static void test_fallocate_unsupported(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *path = NULL;
    struct stat st;

    /* A filesystem without fallocate: posix_fallocate writes the blocks. */
    fallocate_fail_errno = EOPNOTSUPP;
    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), 0);
    assert_int_equal(fallocate_calls, 1);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, SIZE);
    assert_true((uint64_t)st.st_blocks * 512 >= SIZE);
    free(path);
}

static void test_stale_tmp(void **state)
{
    struct fixture *f = *state;
    char *tmp, *err = NULL, *path = NULL;

    /* An interrupted create left a short temporary file behind. */
    assert_int_equal(mkdir(f->dir, 0700), 0);
    xasprintf(&tmp, "%s/.%s.img.tmp", f->dir, U1);
    write_file(tmp, "partial", 0600);
    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), 0);
    assert_int_equal(count_entries(f->dir), 1);
    /* And image_remove clears one too. */
    write_file(tmp, "partial", 0600);
    assert_int_equal(image_remove(f->dir, U1, &err), 0);
    assert_int_equal(count_entries(f->dir), 0);
    free(tmp);
    free(path);
}

static void test_remove(void **state)
{
    struct fixture *f = *state;
    char *err = NULL, *path = NULL;
    struct stat st;

    /* Missing directory, then missing file: both fine. */
    assert_int_equal(image_remove(f->dir, U1, &err), 0);
    assert_int_equal(image_create(f->dir, U1, SIZE, &path, &err), 0);
    assert_int_equal(image_remove(f->dir, U1, &err), 0);
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(image_remove(f->dir, U1, &err), 0);
    assert_null(err);

    /* Something that is not a file is an error, and stays. */
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(image_remove(f->dir, U1, &err), -EISDIR);
    assert_non_null(strstr(err, "cannot remove image"));
    free(err);
    free(path);
}

static void test_list(void **state)
{
    struct fixture *f = *state;
    struct strlist l = {0};
    char *err = NULL, *p;

    assert_int_equal(image_list(f->dir, &l, &err), 0);
    assert_int_equal(l.n, 0);

    assert_int_equal(image_create(f->dir, U2, 64 * 1024, NULL, &err), 0);
    assert_int_equal(image_create(f->dir, U1, 64 * 1024, NULL, &err), 0);
    assert_int_equal(image_create(f->dir, U3, 64 * 1024, NULL, &err), 0);
    /* Names image_create never makes are not listed. */
    xasprintf(&p, "%s/.%s.img.tmp", f->dir, "aaaaaaaa-d9cb-469f-a165-70867728950e");
    write_file(p, "", 0600);
    free(p);
    xasprintf(&p, "%s/%s.img", f->dir, "AAAAAAAA-D9CB-469F-A165-70867728950E");
    write_file(p, "", 0600);
    free(p);
    xasprintf(&p, "%s/%s", f->dir, "bbbbbbbb-d9cb-469f-a165-70867728950e");
    write_file(p, "", 0600);
    free(p);
    xasprintf(&p, "%s/%s.img.bak", f->dir, "cccccccc-d9cb-469f-a165-70867728950e");
    write_file(p, "", 0600);
    free(p);
    xasprintf(&p, "%s/notauuid.img", f->dir);
    write_file(p, "", 0600);
    free(p);

    strlist_push(&l, "kept"); /* appends */
    assert_int_equal(image_list(f->dir, &l, &err), 0);
    assert_null(err);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.v[0], "kept");
    assert_string_equal(l.v[1], U1);
    assert_string_equal(l.v[2], U3);
    assert_string_equal(l.v[3], U2);
    strlist_free(&l);
}


/* ---- spare images ---- */

/* Waits (up to 10 s) until the pool holds n spares. */
static void wait_spares(struct image_pool *p, unsigned n)
{
    for (int i = 0; i < 1000 && image_pool_spares(p) < n; i++)
        usleep(10000);
    assert_int_equal(image_pool_spares(p), n);
}

/* Names in dir starting with prefix. */
static size_t count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

static void assert_image_ok(const char *path, uint64_t size)
{
    struct stat st;
    char buf[4096];
    int fd;

    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal((uint64_t)st.st_size, size);
    assert_true((uint64_t)st.st_blocks * 512 >= size); /* reserved, not sparse */
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    close(fd);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
}

static void test_pool_spares(void **state)
{
    struct fixture *f = *state;
    struct image_pool *p;
    char *err = NULL, *path = NULL, *want;
    uint64_t t1 = 0, t2 = 0, t3 = 7;
    bool spare = false;

    assert_int_equal(image_pool_new(f->dir, SIZE, 3, &p), 0);
    wait_spares(p, 3);
    assert_int_equal(count_prefix(f->dir, ".spare-"), 3);
    assert_int_equal(count_entries(f->dir), 3);

    /* A create takes a spare: a rename, a ticket to sync. */
    assert_int_equal(image_pool_create(p, U1, SIZE, &path, &t1, &spare, &err), 0);
    assert_null(err);
    assert_true(spare);
    assert_true(t1 > 0);
    xasprintf(&want, "%s/%s.img", f->dir, U1);
    assert_string_equal(path, want);
    assert_image_ok(path, SIZE);
    free(path);
    path = NULL;
    assert_int_equal(image_pool_sync(p, t1, &err), 0);

    /* Idempotent: the image is there, nothing taken; its name is synced
     * again (it may be the rename of a create that stopped just after). */
    assert_int_equal(image_pool_create(p, U1, SIZE, &path, &t3, &spare, &err), 0);
    assert_false(spare);
    assert_true(t3 > t1);
    assert_int_equal(image_pool_sync(p, t3, &err), 0);
    assert_string_equal(path, want);
    free(path);
    path = NULL;

    /* Another size than the pool's: made directly, file fsync'd, the
     * directory left to the sync. */
    assert_int_equal(image_pool_create(p, U2, 64 * 1024, &path, &t2, &spare, &err), 0);
    assert_false(spare);
    assert_true(t2 > t3);
    assert_int_equal(image_pool_sync(p, t2, &err), 0);
    assert_image_ok(path, 64 * 1024);
    free(path);
    path = NULL;

    /* The pool makes up for the spare taken. */
    wait_spares(p, 3);
    assert_int_equal(count_prefix(f->dir, ".spare-"), 3);
    /* Spares are not instances. */
    {
        struct strlist l = {0};

        assert_int_equal(image_list(f->dir, &l, &err), 0);
        assert_int_equal(l.n, 2);
        strlist_free(&l);
    }
    /* A second take gets a later ticket; one sync covers both. */
    assert_int_equal(image_pool_create(p, U3, SIZE, NULL, &t1, &spare, &err), 0);
    assert_true(spare);
    assert_true(t1 > t2);
    assert_int_equal(image_pool_sync(p, t1, &err), 0);
    assert_int_equal(image_pool_sync(p, t2, &err), 0);
    image_pool_unref(p);
    /* Spares stay for the next start (2, or 3 if the refill was quick). */
    assert_true(count_prefix(f->dir, ".spare-") >= 2);
    assert_true(count_prefix(f->dir, ".spare-") <= 3);
    free(want);
}

static void test_pool_adopt(void **state)
{
    struct fixture *f = *state;
    struct image_pool *p;
    char *path;
    char *err = NULL;
    uint64_t t;
    bool spare;

    assert_int_equal(image_pool_new(f->dir, SIZE, 2, &p), 0);
    wait_spares(p, 2);
    image_pool_unref(p);
    /* Planted or damaged ones: a half-made spare, a wrong mode, a symlink. */
    xasprintf(&path, "%s/.spare-0123456789abcdef.tmp", f->dir);
    write_file(path, "x", 0600);
    free(path);
    xasprintf(&path, "%s/.spare-1111111111111111.img", f->dir);
    write_file(path, "x", 0644);
    free(path);
    xasprintf(&path, "%s/.spare-2222222222222222.img", f->dir);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    free(path);
    assert_int_equal(count_prefix(f->dir, ".spare-"), 5);

    /* The next run keeps the two good ones, removes the rest. */
    assert_int_equal(image_pool_new(f->dir, SIZE, 2, &p), 0);
    wait_spares(p, 2);
    usleep(50000);
    assert_int_equal(count_prefix(f->dir, ".spare-"), 2);
    assert_int_equal(image_pool_create(p, U1, SIZE, &path, &t, &spare, &err), 0);
    assert_true(spare);
    assert_image_ok(path, SIZE);
    assert_int_equal(image_pool_sync(p, t, &err), 0);
    free(path);
    image_pool_unref(p);

    /* Another size: every old spare goes. */
    assert_int_equal(image_pool_new(f->dir, 64 * 1024, 1, &p), 0);
    wait_spares(p, 1);
    image_pool_unref(p);
    assert_int_equal(count_prefix(f->dir, ".spare-"), 1);
    assert_true(access("/etc/passwd", F_OK) == 0);
}

static void test_pool_disabled_and_full(void **state)
{
    struct fixture *f = *state;
    struct image_pool *p;
    char *err = NULL;
    uint64_t t = 9;
    bool spare = true;

    /* 0 spares: no thread, every create direct. */
    assert_int_equal(image_pool_new(f->dir, SIZE, 0, &p), 0);
    assert_int_equal(image_pool_create(p, U1, SIZE, NULL, &t, &spare, &err), 0);
    assert_false(spare);
    assert_true(t > 0);
    assert_int_equal(image_pool_sync(p, t, &err), 0);
    assert_int_equal(count_prefix(f->dir, ".spare-"), 0);
    image_pool_unref(p);

    /* A full disk: no spare can be made, nothing half-made is left, and
     * a create is the direct path's clean disk-full error. */
    fallocate_fail_errno = ENOSPC;
    assert_int_equal(image_pool_new(f->dir, SIZE, 2, &p), 0);
    for (int i = 0; i < 100 && fallocate_calls == 0; i++)
        usleep(10000);
    assert_true(fallocate_calls > 0);
    assert_int_equal(image_pool_spares(p), 0);
    assert_int_equal(image_pool_create(p, U2, SIZE, NULL, &t, &spare, &err), -ENOSPC);
    assert_non_null(strstr(err, "disk full"));
    free(err);
    err = NULL;
    /* The thread removes its half-made spare right after the failure. */
    for (int i = 0; i < 200 && count_prefix(f->dir, ".spare-") > 0; i++)
        usleep(10000);
    assert_int_equal(count_prefix(f->dir, ".spare-"), 0);
    assert_int_equal(count_entries(f->dir), 1); /* U1 only */
    image_pool_unref(p); /* stops while the thread waits to retry */
    fallocate_fail_errno = 0;
    assert_int_equal(image_pool_new(NULL, SIZE, 1, &p), -EINVAL);
    assert_int_equal(image_pool_new("relative", SIZE, 1, &p), -EINVAL);
}

struct taker {
    struct image_pool *p;
    const char *uuid;
    uint64_t ticket;
    int ret;
};

static void *take_and_sync(void *arg)
{
    struct taker *t = arg;
    char *err = NULL;

    t->ret = image_pool_create(t->p, t->uuid, SIZE, NULL, &t->ticket, NULL, &err);
    if (t->ret == 0)
        t->ret = image_pool_sync(t->p, t->ticket, &err);
    free(err);
    return NULL;
}

static void test_pool_concurrent(void **state)
{
    struct fixture *f = *state;
    static const char *const u[] = {
        "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
        "00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004",
        "00000000-0000-4000-8000-000000000005", "00000000-0000-4000-8000-000000000006",
    };
    struct taker t[6];
    pthread_t th[6];
    struct image_pool *p;
    struct strlist l = {0};
    char *err = NULL;

    assert_int_equal(image_pool_new(f->dir, SIZE, 4, &p), 0);
    wait_spares(p, 4);
    for (int i = 0; i < 6; i++) {
        t[i] = (struct taker){p, u[i], 0, -1};
        assert_int_equal(pthread_create(&th[i], NULL, take_and_sync, &t[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].ret, 0);
    }
    /* Six images, each its own file; spares and direct ones alike. */
    assert_int_equal(image_list(f->dir, &l, &err), 0);
    assert_int_equal(l.n, 6);
    for (size_t i = 0; i < l.n; i++) {
        char *path;

        xasprintf(&path, "%s/%s.img", f->dir, l.v[i]);
        assert_image_ok(path, SIZE);
        free(path);
    }
    strlist_free(&l);
    image_pool_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_parents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_wrong_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_symlink_at_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_symlink_at_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_unsafe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ancestors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_uuid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallocate_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_spares, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_disabled_and_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_concurrent, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
