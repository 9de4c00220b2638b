/*
 * xl-dryrun-shim.c: lets Xen's own toolstack print the libxl domain
 * configuration it builds for an xl.cfg on a machine without Xen.
 *
 * "xl -N create -n CFG" parses CFG and prints the resulting
 * libxl_domain_config as JSON without creating anything, but xl still
 * opens a libxl context first, and libxl_ctx_alloc() opens the hypervisor
 * interface and xenstore, and xl asks the hypervisor for its version and
 * its number of CPUs. Preloaded (LD_PRELOAD), this library answers those
 * calls with a fake 4-CPU, 1-node Xen 4.17 host. Any other call that
 * would need a hypervisor still reaches the real library and fails, so
 * the shim cannot make xl print a configuration it did not build.
 *
 * Built and used by contrib/libvirt/check.sh.
 */

#include <string.h>
#include <libxl.h>

/* The handles are never dereferenced by xl's dry run: libxl only keeps
 * them in its context and hands them back to the close calls below. */
static int fake_handle;

/* libxenctrl: the hypervisor interface (/dev/xen/privcmd) */
void *xc_interface_open(void *logger, void *dombuild_logger,
                        unsigned open_flags);
int xc_interface_close(void *xch);
int xc_get_max_cpus(void *xch);
int xc_get_online_cpus(void *xch);
int xc_get_max_nodes(void *xch);

/* libxenstore: the xenstore daemon or /dev/xen/xenbus */
void *xs_open(unsigned long flags);
void xs_close(void *xsh);

void *
xc_interface_open(void *logger, void *dombuild_logger, unsigned open_flags)
{
    (void)logger;
    (void)dombuild_logger;
    (void)open_flags;
    return &fake_handle;
}

int
xc_interface_close(void *xch)
{
    (void)xch;
    return 0;
}

/* libxl_cpu_bitmap_alloc() -> libxl_get_max_cpus() -> xc_get_max_cpus() */
int
xc_get_max_cpus(void *xch)
{
    (void)xch;
    return 4;
}

int
xc_get_online_cpus(void *xch)
{
    (void)xch;
    return 4;
}

int
xc_get_max_nodes(void *xch)
{
    (void)xch;
    return 1;
}

void *
xs_open(unsigned long flags)
{
    (void)flags;
    return &fake_handle;
}

void
xs_close(void *xsh)
{
    (void)xsh;
}

/* The same queries at libxl's level, for callers that reach them through
 * the dynamic symbol table. */
int
libxl_get_max_cpus(libxl_ctx *ctx)
{
    (void)ctx;
    return 4;
}

int
libxl_get_online_cpus(libxl_ctx *ctx)
{
    (void)ctx;
    return 4;
}

int
libxl_get_max_nodes(libxl_ctx *ctx)
{
    (void)ctx;
    return 1;
}

/* xl's auto_autoballoon() looks for dom0_mem= in Xen's command line. */
const libxl_version_info *
libxl_get_version_info(libxl_ctx *ctx)
{
    static libxl_version_info info;

    (void)ctx;
    if (!info.xen_version_major) {
        info.xen_version_major = 4;
        info.xen_version_minor = 17;
        info.xen_version_extra = (char *)".0";
        info.compiler = (char *)"gcc";
        info.compile_by = (char *)"vtpmd";
        info.compile_domain = (char *)"invalid";
        info.compile_date = (char *)"";
        info.capabilities = (char *)"xen-3.0-x86_64 hvm-3.0-x86_32 "
                                    "hvm-3.0-x86_32p hvm-3.0-x86_64";
        info.changeset = (char *)"";
        info.pagesize = 4096;
        info.commandline = (char *)"";
        info.build_id = (char *)"";
    }
    return &info;
}

int
libxl_get_physinfo(libxl_ctx *ctx, libxl_physinfo *physinfo)
{
    (void)ctx;
    memset(physinfo, 0, sizeof(*physinfo));
    physinfo->threads_per_core = 1;
    physinfo->cores_per_socket = 4;
    physinfo->max_cpu_id = 3;
    physinfo->nr_cpus = 4;
    physinfo->cpu_khz = 2000000;
    physinfo->total_pages = 1U << 20;  /* 4 GiB */
    physinfo->free_pages = 1U << 19;
    physinfo->nr_nodes = 1;
    physinfo->cap_pv = true;
    physinfo->cap_hvm = true;
    return 0;
}
