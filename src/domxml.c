/* The vTPM stub domain's XML and vtpmd's metadata, with libxml2. Every
 * string that reaches the XML is validated first (UTF-8, no control
 * characters, which XML 1.0 cannot carry even escaped) and then escaped by
 * libxml2; names and UUIDs are checked against strict alphabets. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>

#include "domxml.h"
#include "uuidutil.h"
#include "xalloc.h"

/* Inputs and what libvirt hands back are a few KiB; anything this big is
 * not a domain of ours. */
#define DOMXML_INPUT_MAX (1024 * 1024)
#define DOMXML_TEXT_MAX 4096
#define DOMXML_LABEL_MAX 255
#define DOMXML_TIME_FMT "%Y-%m-%dT%H:%M:%SZ"

static void xml_doc_freep(xmlDocPtr *doc)
{
    if (*doc)
        xmlFreeDoc(*doc);
}
#define autodoc __attribute__((cleanup(xml_doc_freep)))

/* libxml2 returns NULL only when it runs out of memory here (its inputs
 * are validated); abort like xmalloc does. */
static void *xml_ok(void *p)
{
    if (p == NULL)
        abort();
    return p;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* Valid and not nil: no generator hands out the nil UUID, and as a
 * domain <uuid> it would mean "make one up" to some libvirt drivers. */
static bool uuid_ok(const char *s)
{
    return uuid_valid(s);
}

/* Only after uuid_ok(). */
static void uuid_lower(const char *in, char out[UUIDUTIL_BUFLEN])
{
    if (uuid_canonical(in, out) < 0)
        abort();
}

bool domxml_name_valid(const char *name)
{
    size_t n;

    if (name == NULL)
        return false;
    n = strlen(name);
    if (n == 0 || n > DOMXML_NAME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_name_char(name[i]))
            return false;
    }
    return true;
}

/* Text XML 1.0 can carry: valid UTF-8, no C0 controls, no DEL. */
static bool text_valid(const char *s, size_t max)
{
    size_t n;

    if (s == NULL)
        return false;
    n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    }
    return xmlCheckUTF8((const xmlChar *)s) != 0;
}

static bool path_valid(const char *s)
{
    return text_valid(s, DOMXML_TEXT_MAX) && s[0] == '/';
}

/* The vtpmmgr domain name, as config.c accepts it. */
static bool backend_valid(const char *s)
{
    if (!text_valid(s, DOMXML_LABEL_MAX))
        return false;
    for (; *s; s++) {
        if (!is_name_char(*s) && *s != ':')
            return false;
    }
    return true;
}

/* The share of an instance name that may appear in a domain name. */
static void sanitize_instance_name(const char *in, char out[DOMXML_INSTANCE_NAME_MAX + 1])
{
    size_t n = 0;

    for (const char *p = in ? in : ""; *p && n < DOMXML_INSTANCE_NAME_MAX; p++) {
        if (!is_name_char(*p))
            continue;
        if (n == 0 && (*p == '.' || *p == '-'))
            continue;
        out[n++] = *p;
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, DOMXML_INSTANCE_NAME_MAX + 1, "%s", DOMXML_INSTANCE_NAME_FALLBACK);
}

int domxml_expand_name(const char *tmpl, const char *instance_uuid,
                       const char *instance_name, char **out)
{
    char uuid[UUIDUTIL_BUFLEN], iname[DOMXML_INSTANCE_NAME_MAX + 1];
    char buf[DOMXML_NAME_MAX + 1];
    size_t len = 0;
    bool has_uuid = false;

    if (tmpl == NULL || !uuid_ok(instance_uuid))
        return -EINVAL;
    uuid_lower(instance_uuid, uuid);
    sanitize_instance_name(instance_name, iname);

    for (const char *p = tmpl; *p;) {
        const char *piece;
        size_t plen;

        if (strncmp(p, "{uuid}", 6) == 0) {
            piece = uuid;
            plen = 36;
            p += 6;
            has_uuid = true;
        } else if (strncmp(p, "{instance_name}", 15) == 0) {
            piece = iname;
            plen = strlen(iname);
            p += 15;
        } else if (is_name_char(*p)) {
            piece = p;
            plen = 1;
            p++;
        } else {
            return -EINVAL; /* unknown placeholder or character */
        }
        if (len + plen > DOMXML_NAME_MAX)
            return -EINVAL;
        memcpy(buf + len, piece, plen);
        len += plen;
    }
    buf[len] = '\0';
    /* Without the UUID two instances could share a stub domain. */
    if (!has_uuid || !domxml_name_valid(buf))
        return -EINVAL;
    *out = xstrdup(buf);
    return 0;
}

static int format_time(time_t t, char out[32])
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, DOMXML_TIME_FMT, &tm) == 0)
        return -EINVAL;
    return 0;
}

static int parse_time(const char *s, time_t *out)
{
    struct tm tm;
    const char *end;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    end = strptime(s, DOMXML_TIME_FMT, &tm);
    if (end == NULL || *end != '\0')
        return -EINVAL;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *out = t;
    return 0;
}

static int params_check(const struct domxml_params *p, bool whole)
{
    if (p == NULL || !uuid_ok(p->vtpm_uuid) ||
        !uuid_ok(p->instance_uuid) || !path_valid(p->image_path))
        return -EINVAL;
    if (p->rule && !text_valid(p->rule, DOMXML_LABEL_MAX))
        return -EINVAL;
    if (p->host && !text_valid(p->host, DOMXML_LABEL_MAX))
        return -EINVAL;
    if (!whole)
        return 0;
    if (!domxml_name_valid(p->name) || !path_valid(p->kernel) ||
        !backend_valid(p->vtpmmgr_domain))
        return -EINVAL;
    if (p->cmdline && !text_valid(p->cmdline, DOMXML_TEXT_MAX))
        return -EINVAL;
    /* libvirt counts KiB; Xen wants at least a page, config at least 1 MiB. */
    if (p->memory_bytes < 4096 || p->memory_bytes > (UINT64_C(1) << 40))
        return -EINVAL;
    return 0;
}

static xmlNodePtr add_text(xmlNodePtr parent, xmlNsPtr ns, const char *name,
                           const char *text)
{
    /* xmlNewTextChild escapes the content (xmlNewChild would not). */
    return xml_ok(xmlNewTextChild(parent, ns, (const xmlChar *)name,
                                  (const xmlChar *)text));
}

static void add_prop(xmlNodePtr node, const char *name, const char *value)
{
    xml_ok(xmlNewProp(node, (const xmlChar *)name, (const xmlChar *)value));
}

static xmlNodePtr add_node(xmlNodePtr parent, const char *name)
{
    return xml_ok(xmlNewChild(parent, NULL, (const xmlChar *)name, NULL));
}

/* Fills the metadata element; ns is vtpmd's (whole domain) or NULL (the
 * form virDomainSetMetadata wants). */
static int fill_metadata(xmlNodePtr vtpm, xmlNsPtr ns, const struct domxml_params *p)
{
    char iu[UUIDUTIL_BUFLEN], vu[UUIDUTIL_BUFLEN], stamp[32];

    if (format_time(p->created ? p->created : time(NULL), stamp) < 0)
        return -EINVAL;
    uuid_lower(p->instance_uuid, iu);
    uuid_lower(p->vtpm_uuid, vu);
    add_text(vtpm, ns, "instance-uuid", iu);
    add_text(vtpm, ns, "vtpm-uuid", vu);
    add_text(vtpm, ns, "image", p->image_path);
    if (p->rule)
        add_text(vtpm, ns, "rule", p->rule);
    if (p->host)
        add_text(vtpm, ns, "host", p->host);
    add_text(vtpm, ns, "created", stamp);
    return 0;
}

/* Serializes without an XML declaration, indented. */
static char *serialize(xmlDocPtr doc)
{
    xmlBufferPtr buf = xml_ok(xmlBufferCreate());
    xmlSaveCtxtPtr save;
    char *s;

    save = xml_ok(xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_FORMAT | XML_SAVE_NO_DECL));
    if (xmlSaveDoc(save, doc) < 0)
        abort();
    xmlSaveClose(save);
    s = xstrdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    for (size_t n = strlen(s); n > 0 && s[n - 1] == '\n'; n--)
        s[n - 1] = '\0';
    return s;
}

int domxml_build(const struct domxml_params *p, char **xml_out)
{
    xmlDocPtr doc autodoc = NULL;
    xmlNodePtr dom, os, type, devices, disk, node, meta, vtpm;
    xmlNsPtr ns;
    char vu[UUIDUTIL_BUFLEN], mem[32];
    int ret;

    if ((ret = params_check(p, true)) < 0)
        return ret;
    uuid_lower(p->vtpm_uuid, vu);
    snprintf(mem, sizeof(mem), "%llu",
             (unsigned long long)((p->memory_bytes + 1023) / 1024));

    doc = xml_ok(xmlNewDoc((const xmlChar *)"1.0"));
    dom = xml_ok(xmlNewNode(NULL, (const xmlChar *)"domain"));
    xmlDocSetRootElement(doc, dom);
    add_prop(dom, "type", "xen");
    add_text(dom, NULL, "name", p->name);
    /* The vTPM UUID as the domain UUID: one domain per vTPM, as the
     * original did. */
    add_text(dom, NULL, "uuid", vu);

    meta = add_node(dom, "metadata");
    vtpm = add_node(meta, "vtpm");
    ns = xml_ok(xmlNewNs(vtpm, (const xmlChar *)DOMXML_NS_URI,
                         (const xmlChar *)DOMXML_NS_PREFIX));
    xmlSetNs(vtpm, ns);
    if ((ret = fill_metadata(vtpm, ns, p)) < 0)
        return ret;

    node = add_text(dom, NULL, "memory", mem);
    add_prop(node, "unit", "KiB");

    os = add_node(dom, "os");
    type = add_text(os, NULL, "type", "linux");
    add_prop(type, "machine", "xenpv");
    add_text(os, NULL, "kernel", p->kernel);
    add_text(os, NULL, "cmdline", p->cmdline ? p->cmdline : DOMXML_DEFAULT_CMDLINE);

    devices = add_node(dom, "devices");
    disk = add_node(devices, "disk");
    add_prop(disk, "type", "file");
    add_prop(disk, "device", "disk");
    node = add_node(disk, "driver");
    add_prop(node, "name", "file");
    node = add_node(disk, "source");
    add_prop(node, "file", p->image_path);
    node = add_node(disk, "target");
    add_prop(node, "dev", "hda");
    add_prop(node, "bus", "xen");
    /* Exactly what contrib/libvirt's patched libxl driver accepts. */
    node = add_node(devices, "vtpm");
    add_prop(node, "backend", p->vtpmmgr_domain);
    add_prop(node, "uuid", vu);

    *xml_out = serialize(doc);
    return 0;
}

int domxml_build_probe(const char *name, const char *uuid, const char *kernel,
                       const char *backend, char **xml_out)
{
    xmlDocPtr doc autodoc = NULL;
    xmlNodePtr dom, os, type, devices, node;
    char u[UUIDUTIL_BUFLEN];

    if (!domxml_name_valid(name) || !uuid_ok(uuid) || kernel == NULL || !path_valid(kernel) ||
        backend == NULL || !backend_valid(backend))
        return -EINVAL;
    uuid_lower(uuid, u);
    doc = xml_ok(xmlNewDoc((const xmlChar *)"1.0"));
    dom = xml_ok(xmlNewNode(NULL, (const xmlChar *)"domain"));
    xmlDocSetRootElement(doc, dom);
    add_prop(dom, "type", "xen");
    add_text(dom, NULL, "name", name);
    add_text(dom, NULL, "uuid", u);
    node = add_text(dom, NULL, "memory", "8192");
    add_prop(node, "unit", "KiB");
    os = add_node(dom, "os");
    type = add_text(os, NULL, "type", "linux");
    add_prop(type, "machine", "xenpv");
    add_text(os, NULL, "kernel", kernel);
    devices = add_node(dom, "devices");
    node = add_node(devices, "vtpm");
    add_prop(node, "backend", backend);
    add_prop(node, "uuid", u);
    *xml_out = serialize(doc);
    return 0;
}

int domxml_build_metadata(const struct domxml_params *p, char **xml_out)
{
    xmlDocPtr doc autodoc = NULL;
    xmlNodePtr vtpm;
    int ret;

    if ((ret = params_check(p, false)) < 0)
        return ret;
    doc = xml_ok(xmlNewDoc((const xmlChar *)"1.0"));
    vtpm = xml_ok(xmlNewNode(NULL, (const xmlChar *)"vtpm"));
    xmlDocSetRootElement(doc, vtpm);
    if ((ret = fill_metadata(vtpm, NULL, p)) < 0)
        return ret;
    *xml_out = serialize(doc);
    return 0;
}

static bool ns_is(const xmlNode *n, const char *href)
{
    if (href == NULL)
        return n->ns == NULL;
    return n->ns && n->ns->href && strcmp((const char *)n->ns->href, href) == 0;
}

static bool named(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* <metadata>/<vtpmd:vtpm> of a whole domain, or NULL. */
static xmlNodePtr find_in_domain(xmlNodePtr dom)
{
    for (xmlNodePtr m = dom->children; m; m = m->next) {
        if (!named(m, "metadata") || !ns_is(m, NULL))
            continue;
        for (xmlNodePtr v = m->children; v; v = v->next) {
            if (named(v, "vtpm") && ns_is(v, DOMXML_NS_URI))
                return v;
        }
    }
    return NULL;
}

/* The text of a leaf element; NULL when it has element children. */
static char *leaf_text(xmlNodePtr n)
{
    xmlChar *c;
    char *s;

    for (xmlNodePtr k = n->children; k; k = k->next) {
        if (k->type != XML_TEXT_NODE && k->type != XML_CDATA_SECTION_NODE)
            return NULL;
    }
    c = xmlNodeGetContent(n);
    if (c == NULL)
        return xstrdup("");
    s = xstrdup((const char *)c);
    xmlFree(c);
    return s;
}

static int read_fields(xmlNodePtr vtpm, struct domxml_meta *m)
{
    const char *href = vtpm->ns ? (const char *)vtpm->ns->href : NULL;
    static const char *const fields[] = {
        "instance-uuid", "vtpm-uuid", "image", "rule", "host", "created",
    };
    char *val[6] = {NULL};
    int ret = -EINVAL;

    for (xmlNodePtr n = vtpm->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE || !ns_is(n, href))
            continue;
        for (size_t i = 0; i < 6; i++) {
            if (strcmp((const char *)n->name, fields[i]) != 0)
                continue;
            if (val[i] || (val[i] = leaf_text(n)) == NULL)
                goto out; /* duplicate or not a leaf */
        }
    }
    if (!uuid_ok(val[0]) || !uuid_ok(val[1]) ||
        !path_valid(val[2]))
        goto out;
    if ((val[3] && !text_valid(val[3], DOMXML_LABEL_MAX)) ||
        (val[4] && !text_valid(val[4], DOMXML_LABEL_MAX)))
        goto out;
    m->created = 0;
    if (val[5] && parse_time(val[5], &m->created) < 0)
        goto out;
    uuid_lower(val[0], m->instance_uuid);
    uuid_lower(val[1], m->vtpm_uuid);
    m->image_path = steal_ptr(val[2]);
    m->rule = steal_ptr(val[3]);
    m->host = steal_ptr(val[4]);
    ret = 0;
out:
    for (size_t i = 0; i < 6; i++)
        free(val[i]);
    return ret;
}

int domxml_parse_metadata(const char *xml, struct domxml_meta *out)
{
    xmlDocPtr doc autodoc = NULL;
    xmlNodePtr root, vtpm = NULL;
    struct domxml_meta m;
    size_t len;
    int ret;

    if (xml == NULL || (len = strlen(xml)) == 0 || len > DOMXML_INPUT_MAX)
        return -EINVAL;
    /* No network, no entity expansion, no DTD loading; errors stay out
     * of stderr. */
    doc = xmlReadMemory(xml, (int)len, "metadata.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL || (root = xmlDocGetRootElement(doc)) == NULL)
        return -EINVAL;
    if (named(root, "domain") && ns_is(root, NULL)) {
        if ((vtpm = find_in_domain(root)) == NULL)
            return -ENOENT;
    } else if (named(root, "vtpm") && (ns_is(root, NULL) || ns_is(root, DOMXML_NS_URI))) {
        vtpm = root;
    } else {
        return -EINVAL;
    }
    memset(&m, 0, sizeof(m));
    if ((ret = read_fields(vtpm, &m)) < 0)
        return ret;
    *out = m;
    return 0;
}

static char *prop_dup(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    char *s;

    if (v == NULL)
        return NULL;
    s = xstrdup((const char *)v);
    xmlFree(v);
    return s;
}

int domxml_find_vtpm(const char *xml, char **backend_out, char **uuid_out)
{
    xmlDocPtr doc autodoc = NULL;
    xmlNodePtr root, found = NULL;
    char *backend;
    size_t len;

    if (xml == NULL || (len = strlen(xml)) == 0 || len > DOMXML_INPUT_MAX)
        return -EINVAL;
    doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL || (root = xmlDocGetRootElement(doc)) == NULL ||
        !named(root, "domain") || !ns_is(root, NULL))
        return -EINVAL;
    for (xmlNodePtr d = root->children; d; d = d->next) {
        if (!named(d, "devices") || !ns_is(d, NULL))
            continue;
        for (xmlNodePtr v = d->children; v; v = v->next) {
            if (!named(v, "vtpm") || !ns_is(v, NULL))
                continue;
            if (found)
                return -EINVAL;
            found = v;
        }
    }
    if (found == NULL)
        return -ENOENT;
    if ((backend = prop_dup(found, "backend")) == NULL)
        return -EINVAL; /* libvirt's schema requires it */
    if (uuid_out)
        *uuid_out = prop_dup(found, "uuid");
    if (backend_out)
        *backend_out = steal_ptr(backend);
    free(backend);
    return 0;
}

void domxml_meta_clear(struct domxml_meta *m)
{
    if (m == NULL)
        return;
    free(m->image_path);
    free(m->rule);
    free(m->host);
    memset(m, 0, sizeof(*m));
}

int domxml_guest_vtpm(const char *stub_name, char **xml_out)
{
    xmlDocPtr doc autodoc = NULL;
    xmlNodePtr vtpm;

    if (!domxml_name_valid(stub_name))
        return -EINVAL;
    doc = xml_ok(xmlNewDoc((const xmlChar *)"1.0"));
    vtpm = xml_ok(xmlNewNode(NULL, (const xmlChar *)"vtpm"));
    xmlDocSetRootElement(doc, vtpm);
    add_prop(vtpm, "backend", stub_name);
    *xml_out = serialize(doc);
    return 0;
}
