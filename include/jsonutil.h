/* The cleanup declaration for jansson values (libvirt's
 * g_autoptr(virJSONValue)): json_t *o autojson = ...; is released with
 * json_decref() when o goes out of scope. Header only, so the common
 * library does not link jansson. */
#ifndef VTPMD_JSONUTIL_H
#define VTPMD_JSONUTIL_H

#include <jansson.h>

static inline void jsonutil_decrefp(json_t **j)
{
    json_decref(*j);
}

#define autojson __attribute__((cleanup(jsonutil_decrefp)))

#endif
