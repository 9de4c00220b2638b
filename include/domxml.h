/* The vTPM stub domain's libvirt XML and vtpmd's <metadata> in it, built
 * with libxml2 (never by string concatenation) and read back from what
 * libvirt returns.
 *
 * Unpatched libvirt silently drops the <vtpm> device, so everything vtpmd
 * needs to recognise its own domains lives in <metadata> under
 * DOMXML_NS_URI:
 *
 *   <vtpmd:vtpm xmlns:vtpmd="http://vtpmd.org/xmlns/vtpmd/1.0">
 *     <vtpmd:instance-uuid>…</vtpmd:instance-uuid>
 *     <vtpmd:vtpm-uuid>…</vtpmd:vtpm-uuid>
 *     <vtpmd:image>/var/lib/vtpmd/images/….img</vtpmd:image>
 *     <vtpmd:rule>…</vtpmd:rule>               (optional)
 *     <vtpmd:host>…</vtpmd:host>               (optional)
 *     <vtpmd:created>2024-05-01T12:00:00Z</vtpmd:created>
 *   </vtpmd:vtpm>
 *
 * UUIDs are written and returned in lower case. */
#ifndef VTPMD_DOMXML_H
#define VTPMD_DOMXML_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "uuidutil.h"

#define DOMXML_NS_URI "http://vtpmd.org/xmlns/vtpmd/1.0"
#define DOMXML_NS_PREFIX "vtpmd"
/* Longest domain name domxml produces or accepts. */
#define DOMXML_NAME_MAX 128
/* Longest share of {instance_name} in a name, after sanitizing. */
#define DOMXML_INSTANCE_NAME_MAX 48
/* What {instance_name} becomes when nothing usable is left of it. */
#define DOMXML_INSTANCE_NAME_FALLBACK "instance"
/* The stub's command line when params.cmdline is NULL (xl: extra=). */
#define DOMXML_DEFAULT_CMDLINE "loglevel=debug"

struct domxml_params {
    const char *name;           /* domain name, from domxml_expand_name() */
    const char *vtpm_uuid;      /* also the domain's <uuid> */
    const char *instance_uuid;
    const char *instance_name;  /* informational; not written (may be NULL) */
    const char *image_path;     /* absolute */
    const char *kernel;         /* absolute */
    const char *cmdline;        /* NULL: DOMXML_DEFAULT_CMDLINE */
    uint64_t memory_bytes;      /* rounded up to KiB */
    const char *vtpmmgr_domain; /* <vtpm backend='…'> */
    const char *rule;           /* policy rule that selected it; may be NULL */
    const char *host;           /* may be NULL */
    time_t created;             /* 0: now */
};

/* Expands libvirt.domain_name: {uuid} → instance UUID (lower case),
 * {instance_name} → the instance name reduced to [A-Za-z0-9._-] without
 * leading '.' or '-', at most DOMXML_INSTANCE_NAME_MAX characters, or
 * DOMXML_INSTANCE_NAME_FALLBACK when nothing is left (or it is NULL).
 * -EINVAL for a bad template, a bad UUID, or a result that is not a valid
 * name (domxml_name_valid). UUIDs must pass uuid_valid() and not be nil.
 * *out is malloc'ed. */
int domxml_expand_name(const char *tmpl, const char *instance_uuid,
                       const char *instance_name, char **out);

/* 1..DOMXML_NAME_MAX characters of [A-Za-z0-9._-], not starting with
 * '.' or '-' (it reaches file names and command lines such as xl's). */
bool domxml_name_valid(const char *name);

/* The whole domain XML including <metadata>. -EINVAL when a parameter is
 * missing or invalid (control characters, invalid UTF-8, relative paths,
 * bad UUIDs or names). */
int domxml_build(const struct domxml_params *p, char **xml_out);

/* Only the metadata element, for virDomainSetMetadata(dom,
 * VIR_DOMAIN_METADATA_ELEMENT, xml, DOMXML_NS_PREFIX, DOMXML_NS_URI, 0):
 * the element is written WITHOUT a namespace (<vtpm>…</vtpm>) because
 * libvirt puts it into the namespace given by key/uri itself and refuses
 * an element that already declares it. */
int domxml_build_metadata(const struct domxml_params *p, char **xml_out);

struct domxml_meta {
    char instance_uuid[UUIDUTIL_BUFLEN];
    char vtpm_uuid[UUIDUTIL_BUFLEN];
    char *image_path;
    char *rule;   /* NULL when absent */
    char *host;   /* NULL when absent */
    time_t created; /* 0 when absent */
};

/* Accepts a whole domain XML (finds <metadata>/<vtpmd:vtpm>), the
 * namespaced element alone, or the element as virDomainGetMetadata returns
 * it (namespace stripped). -ENOENT: a domain without vtpmd metadata;
 * -EINVAL: not XML, or metadata that is incomplete or invalid. */
int domxml_parse_metadata(const char *xml, struct domxml_meta *out);
void domxml_meta_clear(struct domxml_meta *m);

/* The <devices>/<vtpm> element of a whole domain XML, as libvirt with the
 * contrib/libvirt series writes it back: *backend_out and *uuid_out are
 * malloc'ed (*uuid_out NULL when the element has no uuid). 0 found,
 * -ENOENT no such device (an unpatched libvirt drops it; vtpmd's
 * metadata, also named vtpm, is not it), -EINVAL not a domain, or more
 * than one. */
int domxml_find_vtpm(const char *xml, char **backend_out, char **uuid_out);

/* A domain that has nothing but a <vtpm backend='BACKEND' uuid='UUID'/>
 * device and no vtpmd metadata (reconciliation never sees it): defined
 * and read back, it tells whether libvirt keeps the device. */
int domxml_build_probe(const char *name, const char *uuid, const char *kernel,
                       const char *backend, char **xml_out);

/* The guest's device element <vtpm backend='STUB'/> for contrib/openstack. */
int domxml_guest_vtpm(const char *stub_name, char **xml_out);

#endif
