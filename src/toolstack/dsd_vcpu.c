/* domusd: vcpu-set, as xl's vcpu-set and libxl_set_vcpuonline.
 *
 * A domain has cfg.maxvcpus vCPUs from its start (domus-vm creates them all
 * and the MADT lists them all); cpu/N/availability in its xenstore says which
 * the guest is to use.  Linux's drivers/xen/cpu_hotplug.c watches "cpu":
 * "offline" takes the CPU down (it parks in HLT, which KVM serves in the
 * kernel without a host CPU), "online" makes it present again and user space
 * (udev's rule, or the test guest's loop) writes its sysfs "online". */
#include "domus/domusd.h"
#include "domus/util.h"
#include "domus/vmctl.h"
#include "domus/xsclient.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static unsigned host_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* cpu/N/availability for N < maxvcpus: online below n, offline above. */
static int write_availability(struct dsd *d, const struct dsd_dom *dom, unsigned n)
{
    char path[96];
    struct xsc c;
    int rc = xsc_open(&c, d->xs.path);

    for (unsigned i = 0; !rc && i < dom->cfg.maxvcpus; i++) {
        snprintf(path, sizeof(path), "/local/domain/%u/cpu/%u/availability", dom->domid,
                 i);
        rc = xsc_write(&c, path, i < n ? "online" : "offline");
    }
    if (c.fd >= 0)
        xsc_close(&c);
    return rc;
}

/* The checks xl and libxl make, in their words; 0 or -EINVAL with err. */
static int check_count(const struct dsd_dom *dom, uint64_t n, bool ignore_host, char *err,
                       size_t errlen)
{
    unsigned host = host_online_cpus();

    if (n == 0) {
        dfmt(err, errlen, "Requested 0 VCPUs!");
        return -EINVAL;
    }
    if (n > dom->cfg.maxvcpus) {
        dfmt(err, errlen, "Requested %llu VCPUs, however maxcpus is %u!",
             (unsigned long long)n, dom->cfg.maxvcpus);
        return -EINVAL;
    }
    if (!ignore_host && n > host && n > dom->vcpus_online) {
        dfmt(err, errlen,
             "You are overcommmitting! You have %u physical CPUs and want %llu vCPUs! "
             "Aborting, use --ignore-host to continue",
             host, (unsigned long long)n);
        return -EINVAL;
    }
    return 0;
}

/* The running domain with xenstore that spec names; NULL after a reply. */
static struct dsd_dom *target(struct dsd *d, uint64_t client, const char *spec)
{
    struct dsd_dom *dom = spec ? dsd_dom_find(d, spec) : NULL;

    if (!spec)
        dsd_reply_error(d, client, "\"dom\" (a domain name or id string) is missing");
    else if (!strcmp(spec, "0") || !strcmp(spec, "Domain-0"))
        dsd_reply_error(d, client, "Domain-0 is the host: its CPUs are Linux's");
    else if (!dom)
        dsd_reply_error(d, client, "domain '%.64s' does not exist", spec);
    else if (dom->state != DS_RUNNING)
        dsd_reply_error(d, client, "%s: the domain is not running", dom->cfg.name);
    else if (!d->xs.enabled || !dom->xs_up)
        dsd_reply_error(d, client,
                        "%s: the domain has no xenstore (its CPU hot-plug "
                        "goes through cpu/N/availability)",
                        dom->cfg.name);
    else
        return dom;
    return NULL;
}

void dsd_vcpu_set(struct dsd *d, uint64_t client, json_object *obj)
{
    struct dsd_dom *dom = target(d, client, vmctl_get_str(obj, "dom"));
    json_object *ih;
    char err[200];
    uint64_t n;
    int rc;

    if (!dom)
        return;
    if (vmctl_get_u64(obj, "vcpus", UINT32_MAX, &n) < 0) {
        dsd_reply_error(d, client, "\"vcpus\" (an integer) is missing or out of range");
        return;
    }
    if (check_count(dom, n,
                    json_object_object_get_ex(obj, "ignore_host", &ih) &&
                        json_object_get_boolean(ih),
                    err, sizeof(err)) < 0) {
        dsd_reply_error(d, client, "%s", err);
        return;
    }
    rc = write_availability(d, dom, (unsigned)n);
    if (rc < 0) {
        write_availability(d, dom, dom->vcpus_online); /* as it was */
        dsd_reply_error(d, client, "%s: xenstore: %s", dom->cfg.name, strerror(-rc));
        return;
    }
    dinfo("domain %u (%s): vCPUs online %u -> %llu of %u", dom->domid, dom->cfg.name,
          dom->vcpus_online, (unsigned long long)n, dom->cfg.maxvcpus);
    dom->vcpus_online = (unsigned)n;
    dsd_persist_save(dom);
    dsd_reply(d, client, dsd_ok());
}
