/* The vtpmmgr device, see include/proxyd/mgrdev.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/mgrdev.h"
#include "proxyd/mgrproto.h"
#include "vtime.h"
#include "xalloc.h"

struct mgrdev {
    char *path;
    int fd;
    bool tty;
};

struct mgrdev *mgrdev_new(const char *path)
{
    struct mgrdev *d = xcalloc(1, sizeof(*d));

    d->path = xstrdup(path);
    d->fd = -1;
    return d;
}

void mgrdev_close(struct mgrdev *d)
{
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
}

void mgrdev_free(struct mgrdev *d)
{
    if (d == NULL)
        return;
    mgrdev_close(d);
    free(d->path);
    free(d);
}

/* Waits until fd is ready for ev or the deadline passes. */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
    for (;;) {
        uint64_t now = vtime_now_ms();
        struct pollfd p = {.fd = fd, .events = ev};
        int r;

        if (now >= deadline)
            return -ETIMEDOUT;
        r = poll(&p, 1, deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        if (p.revents & ev)
            return 0;
        if (p.revents & POLLNVAL)
            return -EBADF;
        if (p.revents & (POLLERR | POLLHUP))
            return -EIO;
    }
}

static int dev_open(struct mgrdev *d, uint64_t deadline, const char **why)
{
    struct termios tio;
    struct stat st;
    int fd;

    for (;;) {
        fd = open(d->path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EBUSY) {
            *why = "cannot open the device";
            return -errno;
        }
        /* The TPM driver admits one opener at a time: wait for the other. */
        if (vtime_now_ms() + 20 >= deadline) {
            *why = "the device is held by another process";
            return -EBUSY;
        }
        usleep(20 * 1000);
    }
    if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
        close(fd);
        *why = "not a character device";
        return -ENODEV;
    }
    d->tty = isatty(fd);
    if (d->tty) {
        /* A pty passes bytes through its line discipline: make it raw,
         * and drop whatever an earlier user left behind. */
        if (tcgetattr(fd, &tio) == 0) {
            cfmakeraw(&tio);
            tio.c_cc[VMIN] = 1;
            tio.c_cc[VTIME] = 0;
            tcsetattr(fd, TCSANOW, &tio);
        }
        tcflush(fd, TCIOFLUSH);
    }
    d->fd = fd;
    return 0;
}

static int dev_write(struct mgrdev *d, const uint8_t *req, size_t len,
                     uint64_t deadline, const char **why)
{
    size_t off = 0;
    int ret;

    while (off < len) {
        ssize_t n = write(d->fd, req + off, len - off);

        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if ((ret = wait_fd(d->fd, POLLOUT, deadline)) < 0) {
                *why = ret == -ETIMEDOUT ? "timed out sending the command"
                                         : "device error while sending";
                return ret;
            }
            continue;
        }
        *why = "cannot write the command";
        return n < 0 ? -errno : -EIO;
    }
    return 0;
}

/* Reads one whole response. A TPM driver hands out the response in one
 * read() and (before Linux 5.x) drops what a short read left, so every
 * read asks for all the room there is; a pty may deliver it in pieces. */
static int dev_read(struct mgrdev *d, uint8_t *rsp, size_t cap,
                    size_t *rsp_len, uint64_t deadline, const char **why)
{
    size_t got = 0, need = MGRPROTO_HDR_LEN;
    int ret;

    while (got < need) {
        ssize_t n = read(d->fd, rsp + got, cap - got);

        if (n > 0) {
            got += (size_t)n;
            if (got >= MGRPROTO_HDR_LEN) {
                uint32_t size = mgrproto_msg_size(rsp, got);

                if (size < MGRPROTO_HDR_LEN || size > cap) {
                    *why = "response size field out of range (garbage on the device?)";
                    return -EPROTO;
                }
                need = size;
                if (got > need) {
                    *why = "more bytes than the response's size field";
                    return -EPROTO;
                }
            }
            continue;
        }
        if (n == 0) {
            *why = "the device was closed";
            return -EIO;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            if ((ret = wait_fd(d->fd, POLLIN, deadline)) < 0) {
                *why = ret == -ETIMEDOUT ? "timed out waiting for the response"
                                         : "device error while reading";
                return ret;
            }
            continue;
        }
        *why = "cannot read the response";
        return -errno;
    }
    *rsp_len = got;
    return 0;
}

int mgrdev_transact(struct mgrdev *d, const uint8_t *req, size_t len,
                    uint8_t *rsp, size_t cap, size_t *rsp_len,
                    uint64_t timeout_ms, const char **why)
{
    uint64_t deadline = vtime_now_ms() + timeout_ms;
    int ret;

    *why = "";
    if (cap > MGRPROTO_MAX_MSG)
        cap = MGRPROTO_MAX_MSG;
    if (d->fd < 0) {
        if ((ret = dev_open(d, deadline, why)) < 0)
            return ret;
    } else if (d->tty) {
        tcflush(d->fd, TCIFLUSH); /* stale bytes would desynchronize us */
    }
    ret = dev_write(d, req, len, deadline, why);
    if (ret == 0)
        ret = dev_read(d, rsp, cap, rsp_len, deadline, why);
    if (ret < 0)
        mgrdev_close(d);
    return ret;
}
