#include "config.h"

#include <stdint.h>
#include <string.h>

#include "hmap.h"
#include "xalloc.h"

struct hmap_entry {
    struct hmap_entry *next;
    uint64_t hash;
    char *key;
    void *value;
};

struct hmap {
    struct hmap_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t size;
};

static uint64_t hmap_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

struct hmap *hmap_new(void)
{
    struct hmap *m = xcalloc(1, sizeof(*m));

    m->nbuckets = 64;
    m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
    return m;
}

void hmap_free(struct hmap *m, void (*free_value)(void *))
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct hmap_entry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            if (free_value)
                free_value(e->value);
            free(e->key);
            free(e);
        }
    }
    free(m->buckets);
    free(m);
}

static struct hmap_entry **hmap_find(const struct hmap *m, const char *key,
                                     uint64_t h)
{
    struct hmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];

    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            return pp;
    }
    return pp;
}

void *hmap_get(const struct hmap *m, const char *key)
{
    struct hmap_entry **pp = hmap_find(m, key, hmap_hash(key));

    return *pp ? (*pp)->value : NULL;
}

static void hmap_grow(struct hmap *m)
{
    size_t n = m->nbuckets * 2;
    struct hmap_entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < m->nbuckets; i++) {
        struct hmap_entry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *hmap_put(struct hmap *m, const char *key, void *value)
{
    uint64_t h = hmap_hash(key);
    struct hmap_entry **pp = hmap_find(m, key, h), *e;
    void *old;

    if (*pp) {
        old = (*pp)->value;
        (*pp)->value = value;
        return old;
    }
    e = xcalloc(1, sizeof(*e));
    e->hash = h;
    e->key = xstrdup(key);
    e->value = value;
    *pp = e;
    if (++m->size > m->nbuckets)
        hmap_grow(m);
    return NULL;
}

void *hmap_del(struct hmap *m, const char *key)
{
    struct hmap_entry **pp = hmap_find(m, key, hmap_hash(key)), *e;
    void *v;

    if (*pp == NULL)
        return NULL;
    e = *pp;
    *pp = e->next;
    v = e->value;
    free(e->key);
    free(e);
    m->size--;
    return v;
}

size_t hmap_size(const struct hmap *m)
{
    return m->size;
}

void hmap_foreach(const struct hmap *m,
                  void (*fn)(const char *key, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct hmap_entry *e = m->buckets[i]; e; e = e->next)
            fn(e->key, e->value, arg);
    }
}
