/* Allocation helpers: allocation failure aborts (tmux xmalloc.c style),
 * so callers have no untestable OOM branches. */
#ifndef VTPMD_XALLOC_H
#define VTPMD_XALLOC_H

#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
int xasprintf(char **ret, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void xfreep(void *p)
{
    free(*(void **)p);
}

static inline void xclosep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

/* char *s autofree = ...; freed when s goes out of scope. */
#define autofree __attribute__((cleanup(xfreep)))
#define autoclose __attribute__((cleanup(xclosep)))

/* Returns the pointer and leaves NULL behind: hands ownership on. */
#define steal_ptr(p) ({ __typeof__(p) _tmp = (p); (p) = NULL; _tmp; })

#endif
