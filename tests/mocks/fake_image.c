/* Fake of the image pool and of image removal: the image is an empty
 * file at its real path (image_path), so that image_list and a repair's
 * check for the image see what the fakes did. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakes.h"
#include "image.h"
#include "xalloc.h"

struct image_pool {
    int refs;
    char *dir;
    uint64_t size;
    unsigned target;
    uint64_t tickets;
};

int __wrap_image_pool_new(const char *dir, uint64_t size, unsigned spares,
                          struct image_pool **out);
int __wrap_image_pool_new(const char *dir, uint64_t size, unsigned spares,
                          struct image_pool **out)
{
    struct image_pool *p = xcalloc(1, sizeof(*p));

    p->refs = 1;
    p->dir = xstrdup(dir);
    p->size = size;
    p->target = spares;
    *out = p;
    return 0;
}

struct image_pool *__wrap_image_pool_ref(struct image_pool *p);
struct image_pool *__wrap_image_pool_ref(struct image_pool *p)
{
    p->refs++;
    return p;
}

void __wrap_image_pool_unref(struct image_pool *p);
void __wrap_image_pool_unref(struct image_pool *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    free(p->dir);
    free(p);
}

const char *__wrap_image_pool_dir(const struct image_pool *p);
const char *__wrap_image_pool_dir(const struct image_pool *p)
{
    return p->dir;
}

uint64_t __wrap_image_pool_size(const struct image_pool *p);
uint64_t __wrap_image_pool_size(const struct image_pool *p)
{
    return p->size;
}

unsigned __wrap_image_pool_target(const struct image_pool *p);
unsigned __wrap_image_pool_target(const struct image_pool *p)
{
    return p->target;
}

unsigned __wrap_image_pool_spares(struct image_pool *p);
unsigned __wrap_image_pool_spares(struct image_pool *p)
{
    (void)p;
    return 0;
}

int __wrap_image_pool_create(struct image_pool *p, const char *instance_uuid, uint64_t size,
                             char **path_out, uint64_t *ticket, bool *spare, char **err);
int __wrap_image_pool_create(struct image_pool *p, const char *instance_uuid, uint64_t size,
                             char **path_out, uint64_t *ticket, bool *spare, char **err)
{
    int ret = (int)_mock(FAKE_IMAGE, __FILE__, __LINE__);
    bool from_spare = (bool)_mock(FAKE_SPARE, __FILE__, __LINE__);
    char *path = NULL;
    int fd;

    assert_true(size > 0);
    fake_trace("image+");
    if (ret < 0) {
        *err = xstrdup("injected image failure");
        return ret;
    }
    assert_int_equal(image_path(p->dir, instance_uuid, &path), 0);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    *path_out = path;
    *spare = from_spare;
    *ticket = from_spare ? ++p->tickets : 0;
    return 0;
}

int __wrap_image_pool_sync(struct image_pool *p, uint64_t ticket, char **err);
int __wrap_image_pool_sync(struct image_pool *p, uint64_t ticket, char **err)
{
    int ret = (int)_mock(FAKE_SYNC, __FILE__, __LINE__);

    assert_true(ticket > 0 && ticket <= p->tickets);
    fake_trace("sync");
    if (ret < 0)
        *err = xstrdup("injected sync failure");
    return ret;
}

int __wrap_image_remove(const char *dir, const char *instance_uuid, char **err);
int __wrap_image_remove(const char *dir, const char *instance_uuid, char **err)
{
    int ret = (int)_mock(FAKE_IMAGE_RM, __FILE__, __LINE__);
    char *path = NULL;

    fake_trace("image-");
    if (ret < 0) {
        *err = xstrdup("injected image failure");
        return ret;
    }
    assert_int_equal(image_path(dir, instance_uuid, &path), 0);
    unlink(path);
    free(path);
    return 0;
}
