/* domusd: a running domain's memory (mem-set, mem-max) and the host's
 * memory accounting.
 *
 * As libxl: mem-set writes memory/target (KiB) and the guest's own
 * xen-balloon driver moves to it (XENMEM_decrease_reservation gives pages
 * back, populate_physmap takes them again, memop.h); mem-max sets the most
 * the guest may populate (domus-vm's "mem-max") and memory/static-max.
 *
 * Accounting: every domain with a process is charged its target
 * (cfg.memory_mb, kept up to date by mem-set), and what a new domain or a
 * larger target may take is the host's MemAvailable, at most what the
 * charged targets leave of MemTotal, less a reserve for Domain 0
 * (DOMUS_MEM_RESERVE_MIB, default DSD_MEM_RESERVE_MIB). */
#include "domus/domusd.h"
#include "domus/util.h"
#include "domus/vmctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t reserve_mib(void)
{
    const char *s = getenv("DOMUS_MEM_RESERVE_MIB");
    char *end;
    unsigned long long v;

    if (!s || !*s)
        return DSD_MEM_RESERVE_MIB;
    errno = 0;
    v = strtoull(s, &end, 10);
    return errno || *end ? DSD_MEM_RESERVE_MIB : (uint64_t)v;
}

int dsd_free_mib(struct dsd *d, uint64_t *avail)
{
    struct ts_hostinfo hi;
    uint64_t committed = dsd_committed_mib(d) + reserve_mib();
    int rc = ts_hostinfo(&hi);

    if (rc)
        return rc;
    *avail =
        hi.mem_available_mib > reserve_mib() ? hi.mem_available_mib - reserve_mib() : 0;
    if (hi.mem_total_mib <= committed)
        *avail = 0;
    else if (hi.mem_total_mib - committed < *avail)
        *avail = hi.mem_total_mib - committed;
    return 0;
}

/* ---- mem-set, mem-max ---- */

static uint64_t mib_up(uint64_t kib)
{
    return (kib + 1023) / 1024;
}

/* The KiB the request names ("kib": xl's sizes are parsed by the CLI). */
static int req_kib(struct dsd *d, uint64_t client, json_object *obj, uint64_t *kib)
{
    if (vmctl_get_u64(obj, "kib", XLCFG_MEMORY_MAX_MB * 1024, kib) < 0 || *kib < 1024) {
        dsd_reply_error(d, client,
                        "\"kib\" (an integer of at least 1024) is missing "
                        "or out of range");
        return -EINVAL;
    }
    return 0;
}

/* A larger target must fit what the host has left. */
static int host_backs(struct dsd *d, const struct dsd_dom *dom, uint64_t kib, char *err,
                      size_t errlen)
{
    uint64_t avail, more;

    if (mib_up(kib) <= dom->cfg.memory_mb)
        return 0;
    more = mib_up(kib) - dom->cfg.memory_mb;
    if (dsd_free_mib(d, &avail) < 0) {
        dfmt(err, errlen, "cannot read the host's memory");
        return -EIO;
    }
    if (more > avail) {
        dfmt(err, errlen,
             "memory: %" PRIu64 " MiB more requested (to %" PRIu64
             " MiB), host has %" PRIu64 " MiB available",
             more, mib_up(kib), avail);
        return -ENOMEM;
    }
    return 0;
}

static void mem_set(struct dsd *d, uint64_t client, struct dsd_dom *dom, uint64_t kib)
{
    char err[256], v[32];
    int rc;

    if (kib > dom->cfg.maxmem_mb * 1024) {
        dsd_reply_error(
            d, client,
            "memory_dynamic_max must be less than or equal to memory_static_max"
            " (%" PRIu64 " KiB > maxmem %" PRIu64 " KiB)",
            kib, dom->cfg.maxmem_mb * 1024);
        return;
    }
    if ((rc = host_backs(d, dom, kib, err, sizeof(err))) < 0) {
        dsd_reply_error(d, client, "%s", err);
        return;
    }
    if (!dom->xs_up) {
        dsd_reply_error(d, client,
                        "domain '%s' has no xenstore: its balloon cannot be "
                        "told a target",
                        dom->cfg.name);
        return;
    }
    snprintf(v, sizeof(v), "%" PRIu64, kib);
    if ((rc = dsd_xs_write(d, dom, "memory/target", v)) < 0) {
        dsd_reply_error(d, client, "cannot write memory/target: %s", strerror(-rc));
        return;
    }
    dom->cfg.memory_mb = mib_up(kib);
    dsd_persist_save(dom);
    dinfo("dom%u: memory target %" PRIu64 " KiB", dom->domid, kib);
    dsd_reply(d, client, dsd_ok());
}

static void mem_max(struct dsd *d, uint64_t client, struct dsd_dom *dom, uint64_t kib)
{
    json_object *req = vmctl_req("mem-max");
    char err[256], v[32];
    int rc;

    if (kib < dom->cfg.memory_mb * 1024) {
        dsd_reply_error(d, client,
                        "memory_static_max must be greater than or equal to "
                        "memory_dynamic_max (%" PRIu64 " KiB < target %" PRIu64 " KiB)",
                        kib, dom->cfg.memory_mb * 1024);
        json_object_put(req);
        return;
    }
    json_object_object_add(req, "kib", json_object_new_uint64(kib));
    if ((rc = dsd_vm_control(dom, req, NULL, err, sizeof(err))) < 0) {
        dsd_reply_error(d, client, "mem-max: %s", err);
        return;
    }
    snprintf(v, sizeof(v), "%" PRIu64, kib);
    if ((rc = dsd_xs_write(d, dom, "memory/static-max", v)) < 0 && rc != -EOPNOTSUPP) {
        dsd_reply_error(d, client, "cannot write memory/static-max: %s", strerror(-rc));
        return;
    }
    dom->cfg.maxmem_mb = mib_up(kib);
    dsd_persist_save(dom);
    dsd_reply(d, client, dsd_ok());
}

void dsd_mem_request(struct dsd *d, uint64_t client, struct dsd_dom *dom, const char *cmd,
                     json_object *obj)
{
    uint64_t kib;

    if (dom->state != DS_RUNNING) {
        dsd_reply_error(d, client, "domain '%s' is not running", dom->cfg.name);
        return;
    }
    if (req_kib(d, client, obj, &kib) < 0)
        return;
    if (!strcmp(cmd, "mem-set"))
        mem_set(d, client, dom, kib);
    else
        mem_max(d, client, dom, kib);
}
