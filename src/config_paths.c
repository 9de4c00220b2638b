/* config_check_paths: what vtpmd -t and start-up check of the paths vtpmd
 * trusts. Apart from config.c so that vtpmctl, which loads the file too but
 * may run as another user, links none of it. */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vconfig.h"
#include "image.h"
#include "xalloc.h"

static void path_error(const struct config *c, struct cfg_pos pos,
                       struct cfg_errors *errs, const char *key, const char *msg)
{
    char *line;

    xasprintf(&line, "%s:%d:%d: %s: %s", c->source ? c->source : "(defaults)",
              pos.line ? pos.line : 1, pos.col ? pos.col : 1, key, msg);
    errs->msgs = xreallocarray(errs->msgs, errs->n + 1, sizeof(char *));
    errs->msgs[errs->n++] = line;
}

/* NULL or why the control socket's directory cannot be trusted: whoever
 * can write it can rename the socket and answer in vtpmd's place, or
 * pre-create the path. Group write is allowed for vtpmd's own group, whose
 * members administer vtpmd anyway (vtpmctl's peer check still refuses an
 * impostor they might serve). Returns a malloc'd message. */
static char *control_dir_problem(const char *sock)
{
    char *copy = xstrdup(sock), *dir = dirname(copy), *why = NULL;
    struct stat st;

    if (lstat(dir, &st) < 0) {
        if (errno != ENOENT)
            xasprintf(&why, "cannot check its directory %s: %s", dir, strerror(errno));
    } else if (S_ISLNK(st.st_mode)) {
        xasprintf(&why, "its directory %s is a symbolic link; refusing it", dir);
    } else if (!S_ISDIR(st.st_mode)) {
        xasprintf(&why, "%s is not a directory", dir);
    } else if (st.st_uid != geteuid()) {
        xasprintf(&why, "its directory %s is owned by uid %u, not by vtpmd (uid %u); "
                  "another user could replace the socket", dir, (unsigned)st.st_uid,
                  (unsigned)geteuid());
    } else if (st.st_mode & S_IWOTH) {
        xasprintf(&why, "its directory %s is writable by others (mode %04o); "
                  "another user could replace the socket (chmod o-w)", dir,
                  (unsigned)(st.st_mode & 07777));
    } else if ((st.st_mode & S_IWGRP) && st.st_gid != getegid()) {
        xasprintf(&why, "its directory %s is writable by group %u, not vtpmd's group %u "
                  "(mode %04o); another user could replace the socket (chmod g-w)", dir,
                  (unsigned)st.st_gid, (unsigned)getegid(), (unsigned)(st.st_mode & 07777));
    }
    free(copy);
    return why;
}

int config_check_paths(const struct config *c, struct cfg_errors *errs)
{
    size_t before = errs->n;
    char *why = NULL;

    if (c->control.socket && (why = control_dir_problem(c->control.socket))) {
        path_error(c, c->control_socket_pos, errs, "control.socket", why);
        free(why);
        why = NULL;
    }
    if (c->image.dir && image_check_dir(c->image.dir, &why) < 0) {
        path_error(c, c->image_dir_pos, errs, "image.dir", why ? why : "refused");
        free(why);
    }
    return errs->n > before ? -EINVAL : 0;
}

