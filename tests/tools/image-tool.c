/* image-tool: runs the image module from the command line, for the
 * integration tests (a real full filesystem, real modes).
 *   image-tool create DIR UUID SIZE   prints the image path
 *   image-tool remove DIR UUID
 *   image-tool list DIR               prints one UUID a line
 * On failure prints "error errno=N: MESSAGE" on stderr and exits 1;
 * usage errors exit 2. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "image.h"

static int report(int ret, char *err)
{
    if (ret < 0)
        fprintf(stderr, "error errno=%d: %s\n", -ret, err ? err : strerror(-ret));
    free(err);
    return ret < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    char *err = NULL, *path = NULL;
    int ret;

    if (argc == 5 && !strcmp(argv[1], "create")) {
        uint64_t size;

        if (cfg_parse_size(argv[4], &size) < 0) {
            fprintf(stderr, "bad size '%s'\n", argv[4]);
            return 2;
        }
        ret = image_create(argv[2], argv[3], size, &path, &err);
        if (ret == 0)
            printf("%s\n", path);
        free(path);
        return report(ret, err);
    }
    if (argc == 4 && !strcmp(argv[1], "remove"))
        return report(image_remove(argv[2], argv[3], &err), err);
    if (argc == 3 && !strcmp(argv[1], "list")) {
        struct strlist l = {0};

        ret = image_list(argv[2], &l, &err);
        for (size_t i = 0; i < l.n; i++)
            printf("%s\n", l.v[i]);
        strlist_free(&l);
        return report(ret, err);
    }
    fprintf(stderr, "usage: image-tool create DIR UUID SIZE | remove DIR UUID | list DIR\n");
    return 2;
}
