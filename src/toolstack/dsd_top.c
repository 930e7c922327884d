/* domusd: the "top" request, the data xentop shows (libxenstat's node and
 * domains): per domain its state in xentop's letters, CPU time, memory,
 * vCPUs and its back ends' counters, which it asks each running domus-vm
 * for ("stats", vm.h); Domain 0 is the host. */
#include "domus/domusd.h"
#include "domus/util.h"
#include "domus/vmctl.h"

#include "domus/hv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_u64(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

/* Sums member key over the objects of array arr. */
static uint64_t sum(json_object *arr, const char *key)
{
    uint64_t total = 0, v;

    for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
        if (!vmctl_get_u64(json_object_array_get_idx(arr, i), key, UINT64_MAX, &v))
            total += v;
    return total;
}

static size_t count(json_object *arr)
{
    return arr && json_object_is_type(arr, json_type_array)
               ? json_object_array_length(arr)
               : 0;
}

/* xentop's letters, in its order: dying, shutdown, blocked, crashed,
 * paused, running. */
static void xentop_state(const struct dsd_dom *dom, bool paused, char out[7])
{
    memcpy(out, "------", 7);
    if (dom->state == DS_DYING)
        out[0] = 'd';
    if (dom->state == DS_SHUTDOWN || dom->state == DS_CRASHED)
        out[1] = 's';
    if (dom->state == DS_CRASHED)
        out[3] = 'c';
    if (dom->state == DS_RUNNING)
        out[paused ? 4 : 5] = paused ? 'p' : 'r';
}

/* The back ends' totals of a running domain (its "stats"); zeros when it
 * does not answer. */
static void add_devices(json_object *o, json_object *reply)
{
    json_object *vbds = NULL, *vifs = NULL;

    if (reply) {
        json_object_object_get_ex(reply, "vbds", &vbds);
        json_object_object_get_ex(reply, "vifs", &vifs);
    }
    add_u64(o, "nets", count(vifs));
    add_u64(o, "net_tx_bytes", sum(vifs, "tx_bytes"));
    add_u64(o, "net_rx_bytes", sum(vifs, "rx_bytes"));
    add_u64(o, "vbds", count(vbds));
    add_u64(o, "vbd_oo", sum(vbds, "oo_req"));
    add_u64(o, "vbd_rd", sum(vbds, "rd_req"));
    add_u64(o, "vbd_wr", sum(vbds, "wr_req"));
    add_u64(o, "vbd_rsect", sum(vbds, "rd_sect"));
    add_u64(o, "vbd_wsect", sum(vbds, "wr_sect"));
    json_object_object_add(o, "vifs",
                           vifs ? json_object_get(vifs) : json_object_new_array());
    json_object_object_add(o, "vbd_list",
                           vbds ? json_object_get(vbds) : json_object_new_array());
}

/* Each vCPU's CPU time (the reply's "vcpu_ns"), for xentop -v. */
static void add_vcpu_times(json_object *o, json_object *reply)
{
    json_object *t = NULL;

    if (reply)
        json_object_object_get_ex(reply, "vcpu_ns", &t);
    json_object_object_add(o, "vcpu_ns",
                           t && json_object_is_type(t, json_type_array)
                               ? json_object_get(t)
                               : json_object_new_array());
}

static json_object *dom_row(struct dsd_dom *dom)
{
    json_object *o = json_object_new_object(), *reply = NULL, *st;
    char err[256], letters[7];
    uint64_t cpu_ns = (uint64_t)(dom->cpu_time * 1e9), mem_kib = 0;
    bool paused = false;

    if (dom->state == DS_RUNNING &&
        dsd_vm_control(dom, vmctl_req("stats"), &reply, err, sizeof(err)) == 0) {
        vmctl_get_u64(reply, "cputime_ns", UINT64_MAX, &cpu_ns);
        vmctl_get_u64(reply, "mem_kib", UINT64_MAX, &mem_kib);
        paused = json_object_object_get_ex(reply, "state", &st) &&
                 !strcmp(json_object_get_string(st), "p");
        dom->cpu_time = (double)cpu_ns / 1e9;
    }
    xentop_state(dom, paused, letters);
    add_u64(o, "domid", dom->domid);
    json_object_object_add(o, "name", json_object_new_string(dom->cfg.name));
    json_object_object_add(o, "state", json_object_new_string(letters));
    add_u64(o, "cpu_ns", cpu_ns);
    add_u64(o, "mem_kib", mem_kib);
    add_u64(o, "maxmem_kib", dom->cfg.maxmem_mb * 1024);
    /* libxenstat: max_vcpu_id + 1, every vCPU the domain has. */
    add_u64(o, "vcpus", dom->pid ? dom->cfg.maxvcpus : 0);
    add_u64(o, "vcpus_online", dom->pid ? dom->vcpus_online : 0);
    add_devices(o, reply);
    add_vcpu_times(o, reply);
    json_object_put(reply);
    return o;
}

static json_object *dom0_row(const struct ts_hostinfo *hi)
{
    json_object *o = json_object_new_object();

    add_u64(o, "domid", 0);
    json_object_object_add(o, "name", json_object_new_string("Domain-0"));
    json_object_object_add(o, "state", json_object_new_string("-----r"));
    add_u64(o, "cpu_ns", (uint64_t)(hi->busy_seconds * 1e9));
    add_u64(o, "mem_kib", (hi->mem_total_mib - hi->mem_available_mib) * 1024);
    json_object_object_add(o, "maxmem_kib", json_object_new_int(-1)); /* no limit */
    add_u64(o, "vcpus", hi->cpus);
    add_u64(o, "vcpus_online", hi->cpus);
    add_devices(o, NULL);
    return o;
}

/* xl info's cpu_mhz (ts_xlinfo), whole MHz; 0 when it has none. */
static uint64_t cpu_mhz(void)
{
    json_object *info = ts_xlinfo(0);
    uint64_t mhz = 0;

    for (size_t i = 0; info && i < json_object_array_length(info); i++) {
        json_object *pair = json_object_array_get_idx(info, i);
        const char *k = json_object_get_string(json_object_array_get_idx(pair, 0));
        if (k && !strcmp(k, "cpu_mhz"))
            mhz = (uint64_t)atof(
                json_object_get_string(json_object_array_get_idx(pair, 1)));
    }
    json_object_put(info);
    return mhz;
}

static int by_domid(const void *a, const void *b)
{
    const struct dsd_dom *x = *(struct dsd_dom *const *)a,
                         *y = *(struct dsd_dom *const *)b;
    return x->domid < y->domid ? -1 : x->domid > y->domid;
}

void dsd_top(struct dsd *d, uint64_t client)
{
    json_object *o, *node = json_object_new_object(), *rows = json_object_new_array();
    struct ts_hostinfo hi = {0};
    struct dsd_dom **v;
    char ver[32];
    size_t n = 0;

    for (struct dsd_dom *dom = d->doms; dom; dom = dom->next)
        n++;
    v = calloc(n + 1, sizeof(*v));
    if (!v) {
        json_object_put(node);
        json_object_put(rows);
        dsd_reply_error(d, client, "out of memory");
        return;
    }
    n = 0;
    for (struct dsd_dom *dom = d->doms; dom; dom = dom->next)
        v[n++] = dom;
    ts_hostinfo(&hi);
    qsort(v, n, sizeof(v[0]), by_domid);
    json_object_array_add(rows, dom0_row(&hi));
    for (size_t i = 0; i < n; i++)
        json_object_array_add(rows, dom_row(v[i]));
    add_u64(node, "tot_mem_kib", hi.mem_total_mib * 1024);
    add_u64(node, "free_mem_kib", hi.mem_available_mib * 1024);
    add_u64(node, "cpus", hi.cpus);
    add_u64(node, "cpu_mhz", cpu_mhz());
    snprintf(ver, sizeof(ver), "%d.%d.0-domus", HV_XEN_MAJOR, HV_XEN_MINOR);
    json_object_object_add(node, "xen_version", json_object_new_string(ver));
    o = dsd_ok();
    json_object_object_add(o, "node", node);
    json_object_object_add(o, "domains", rows);
    dsd_reply(d, client, o);
    free(v);
}
