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

#include <stdint.h>

#include "cfg.h" /* struct strlist */

/* Creates <dir>/<instance_uuid>.img of exactly size bytes, mode 0600,
 * with its blocks allocated and reading as zeros, durable (file and
 * directory fsync'd) when this returns. dir is created 0700 when missing
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

/* Removes the image (and any temporary file of an interrupted create) and
 * fsyncs the directory. A missing image or directory is success. */
int image_remove(const char *dir, const char *instance_uuid, char **err);

/* <dir>/<canonical uuid>.img, malloc'd. -EINVAL for an invalid UUID. */
int image_path(const char *dir, const char *instance_uuid, char **path_out);

/* Appends the canonical instance UUIDs of every <uuid>.img in dir to
 * uuids_out, sorted (for reconciliation). A missing dir lists nothing;
 * names that are not <uuid>.img are ignored. */
int image_list(const char *dir, struct strlist *uuids_out, char **err);

#endif
