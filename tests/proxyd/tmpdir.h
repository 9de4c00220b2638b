/* A unit test's private directory, made before its tests and removed
 * after them: define
 *     static char tmpdir[] = "/tmp/NAME-XXXXXX";
 * then include this and run the tests with setup and teardown. Needs
 * <stdlib.h> and xalloc.h. */
#ifndef VTPMD_TESTS_TMPDIR_H
#define VTPMD_TESTS_TMPDIR_H

static int setup(void **state)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char *cmd;
    int rc;

    xasprintf(&cmd, "rm -rf '%s'", tmpdir);
    rc = system(cmd); /* test clean-up only */
    free(cmd);
    return rc == 0 ? 0 : -1;
}

#endif
