/* A small string-keyed hash map (chained, power-of-two buckets). Keys are
 * copied; values are the caller's. Not thread-safe. */
#ifndef VTPMD_HMAP_H
#define VTPMD_HMAP_H

#include <stddef.h>

struct hmap;

struct hmap *hmap_new(void);
/* free_value (may be NULL) is called for every value. */
void hmap_free(struct hmap *m, void (*free_value)(void *));
void *hmap_get(const struct hmap *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *hmap_put(struct hmap *m, const char *key, void *value);
/* Removes; returns the value or NULL. */
void *hmap_del(struct hmap *m, const char *key);
size_t hmap_size(const struct hmap *m);
/* Calls fn for every entry; fn must not modify the map. */
void hmap_foreach(const struct hmap *m,
                  void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
