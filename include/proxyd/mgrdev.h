/* The vtpmmgr device: /dev/tpm0 in the Keylime VM (xen-tpmfront), or any
 * character device or pty that speaks the protocol.
 *
 * Blocking by nature (the TPM driver may hold write() until vtpmmgr
 * answered), so it is only ever used from the job thread (jobq), one
 * command at a time. Each call is bounded by a deadline: the fd is
 * non-blocking and every wait is a poll() with the time left. */
#ifndef PROXYD_MGRDEV_H
#define PROXYD_MGRDEV_H

#include <stddef.h>
#include <stdint.h>

struct mgrdev;

/* No I/O yet: the device is opened by the first command. */
struct mgrdev *mgrdev_new(const char *path);
void mgrdev_free(struct mgrdev *d);

/* Sends one request and reads its whole response (until its paramSize
 * bytes arrived) within timeout_ms, opening the device first if needed
 * (waiting while another process holds it: EBUSY).
 * Returns 0, -ETIMEDOUT, -EPROTO (*why: the response cannot be framed:
 * size below the header or above MGRPROTO_MAX_MSG), or a negative errno
 * from open/read/write. On any error the device is closed, so that the
 * driver drops a late answer and the next command starts clean. */
int mgrdev_transact(struct mgrdev *d, const uint8_t *req, size_t len,
                    uint8_t *rsp, size_t cap, size_t *rsp_len,
                    uint64_t timeout_ms, const char **why);

/* Closes the device between jobs, so that other tools (manage-vtpmmgr.pl)
 * can use it while this service is idle. */
void mgrdev_close(struct mgrdev *d);

#endif
