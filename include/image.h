/* The vTPM backing images: one zero-filled file <dir>/<instance-uuid>.img
 * per instance, created so that a hostile name, a planted symlink or a
 * full disk can neither redirect nor corrupt it, and so that the vTPM
 * never meets ENOSPC once it runs (the space is reserved up front).
 *
 * The functions are synchronous and block on the disk (fsync): the engine
 * calls them on the libvirt worker thread, never on the event loop. They
 * are not meant to be called concurrently for the same instance.
 * Every function returns 0 or a negative errno; on failure *err (when err
 * is not NULL) receives a malloc'd message naming the path and the cause.
 * Output parameters are written only on success. */
#ifndef VTPMD_IMAGE_H
#define VTPMD_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h" /* struct strlist */

/* Creates <dir>/<instance_uuid>.img of exactly size bytes, mode 0600,
 * with its blocks allocated and reading as zeros, durable (file and
 * directory fsync'd) when this returns, also when it was already there. dir is created 0700 when missing
 * (its parents 0755); an existing dir that is a symlink, not owned by
 * the effective uid, or group/world-writable is refused (-ELOOP, -EPERM),
 * and so is one below an ancestor owned by another user than root or us,
 * or writable by others without the sticky bit (-EPERM).
 *
 * Idempotent: an existing regular file of the right size and mode owned
 * by us is success. Anything else at that name (wrong size or mode, other
 * owner, a directory, a symlink) is -EEXIST and left alone.
 * A full disk (or quota) is -ENOSPC/-EDQUOT with a "disk full" message;
 * nothing is left behind. Invalid UUID: -EINVAL. */
int image_create(const char *dir, const char *instance_uuid, uint64_t size,
                 char **path_out, char **err);

/* The checks image_create makes of dir and its ancestors, without creating
 * anything: for vtpmd -t and start-up. A missing dir is fine when its
 * existing ancestors pass. 0 or a negative errno with *err set. */
int image_check_dir(const char *dir, char **err);

/* Removes the image (and any temporary file of an interrupted create) and
 * fsyncs the directory. A missing image or directory is success. */
int image_remove(const char *dir, const char *instance_uuid, char **err);

/* <dir>/<canonical uuid>.img, malloc'd. -EINVAL for an invalid UUID. */
int image_path(const char *dir, const char *instance_uuid, char **path_out);

/* Appends the canonical instance UUIDs of every <uuid>.img in dir to
 * uuids_out, sorted (for reconciliation). A missing dir lists nothing;
 * names that are not <uuid>.img are ignored. */
int image_list(const char *dir, struct strlist *uuids_out, char **err);

/* Spare images: a pool of images made ahead of time, under hidden names
 * (.spare-<hex>.img) in the image directory, each reserved and fsync'd
 * exactly as image_create makes them. A create then only renames a spare
 * to the instance's name: no inode to allocate, no block to reserve, no
 * file to fsync while the instance waits. What is left to make durable is
 * the directory entry, and one directory fsync covers every rename made
 * before it (image_pool_sync, grouped across threads).
 *
 * A thread of the pool keeps `spares` of them (0: none, no thread). At
 * start it adopts the spares a previous run left, if they are still
 * exactly right (regular, ours, 0600, one link, `size` bytes), and
 * removes the others and any half-made one. Failures to make spares
 * (a full disk, say) are logged once per streak and retried every few
 * seconds; creates meanwhile take the direct path. Spares are not
 * instances: image_list never reports them.
 *
 * Thread-safe: any thread may call image_pool_create/_sync concurrently
 * (not for the same instance). */
struct image_pool;

/* Starts a pool for images of exactly size bytes in dir. 0 or -errno. */
int image_pool_new(const char *dir, uint64_t size, unsigned spares, struct image_pool **out);
/* Another reference (for a job that may outlive a reload). */
struct image_pool *image_pool_ref(struct image_pool *p);
/* Drops a reference; the last one stops the thread (the spare being made
 * is finished) and frees. Spares stay on disk for the next start. */
void image_pool_unref(struct image_pool *p);
/* Like image_create(p's dir, ...) with the same checks, errors and
 * idempotence, but when a spare of the right size is at hand it is
 * renamed into place instead. Either way the directory is not fsync'd:
 * on success the image is complete, reserved and fsync'd, but its name
 * is durable only after image_pool_sync(p, *ticket) (*ticket > 0; one
 * is given for an image that was already there too). *spare tells which
 * path was taken (may be NULL). */
int image_pool_create(struct image_pool *p, const char *instance_uuid, uint64_t size,
                      char **path_out, uint64_t *ticket, bool *spare, char **err);
/* Returns once every rename up to ticket is durable: one fsync of the
 * directory, shared with every other caller waiting meanwhile. */
int image_pool_sync(struct image_pool *p, uint64_t ticket, char **err);
/* Spares ready now; what the pool is configured with. */
unsigned image_pool_spares(struct image_pool *p);
const char *image_pool_dir(const struct image_pool *p);
uint64_t image_pool_size(const struct image_pool *p);
unsigned image_pool_target(const struct image_pool *p);

#endif
