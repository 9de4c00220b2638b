/* Durable writes: the loops and syncs that the journal, vtpm-proxyd's
 * store and the image files share (libvirt's virfile.h). */
#ifndef VTPMD_FILEUTIL_H
#define VTPMD_FILEUTIL_H

#include <stddef.h>

/* Writes all len bytes of buf to fd, again after EINTR or a short write.
 * 0, or -errno (some bytes may have been written). */
int file_write_all(int fd, const void *buf, size_t len);

/* fsync(2)s the directory dir, so that a rename or create in it is
 * durable. 0, or -errno. */
int file_fsync_dir(const char *dir);

#endif
