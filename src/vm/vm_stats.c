/* domus-vm's "stats" control command: what xentop shows of one domain that
 * only its process knows, its vCPUs' CPU time and its back ends' counters
 * (blkback.h, netback.h), as JSON (vmctl.h). */
#include "domus/blkback.h"
#include "domus/kvm.h"
#include "domus/netback.h"
#include "domus/vm.h"

#include <pthread.h>
#include <time.h>

static void add_u64(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

static json_object *vbd_json(const struct vm_dev *dev)
{
    struct blkback_stats s;
    json_object *o = json_object_new_object();

    blkback_get_stats(dev->be, &s);
    add_u64(o, "devid", dev->devid);
    add_u64(o, "oo_req", s.oo_req);
    add_u64(o, "rd_req", s.rd_req);
    add_u64(o, "wr_req", s.wr_req);
    add_u64(o, "f_req", s.f_req);
    add_u64(o, "ds_req", s.ds_req);
    add_u64(o, "rd_sect", s.rd_sect);
    add_u64(o, "wr_sect", s.wr_sect);
    return o;
}

static json_object *vif_json(const struct vm_dev *dev)
{
    struct netback_stats s;
    json_object *o = json_object_new_object();

    netback_get_stats(dev->be, &s);
    add_u64(o, "devid", dev->devid);
    add_u64(o, "tx_pkts", s.tx_pkts);
    add_u64(o, "tx_bytes", s.tx_bytes);
    add_u64(o, "rx_pkts", s.rx_pkts);
    add_u64(o, "rx_bytes", s.rx_bytes);
    return o;
}

/* Each vCPU thread's CPU time in ns (0 for one that is not running). */
static json_object *vcpu_times(struct domain *d)
{
    json_object *a = json_object_new_array();

    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        struct timespec ts = {0, 0};
        clockid_t cid;
        if (d->vcpus[i].thread_started &&
            pthread_getcpuclockid(d->vcpus[i].thread, &cid) == 0)
            clock_gettime(cid, &ts);
        json_object_array_add(a,
                              json_object_new_uint64((uint64_t)ts.tv_sec * 1000000000ULL +
                                                     (uint64_t)ts.tv_nsec));
    }
    return a;
}

json_object *vm_stats_json(struct vm *vm)
{
    json_object *o = json_object_new_object(), *vbds = json_object_new_array(),
                *vifs = json_object_new_array();
    struct domain *d = &vm->dom;

    json_object_object_add(o, "ok", json_object_new_boolean(1));
    add_u64(o, "cputime_ns", kvm_domain_cputime_ns(d));
    add_u64(o, "mem_kib", d->mem.ram_size >> 10);
    add_u64(o, "vcpus", d->nr_vcpus);
    for (unsigned i = 0; i < VM_MAX_DEVS; i++) {
        const struct vm_dev *dev = &vm->devs[i];
        if (dev->kind == &vm_kind_vbd && dev->be)
            json_object_array_add(vbds, vbd_json(dev));
        else if (dev->kind == &vm_kind_vif && dev->be)
            json_object_array_add(vifs, vif_json(dev));
    }
    json_object_object_add(o, "vcpu_ns", vcpu_times(d));
    json_object_object_add(o, "vbds", vbds);
    json_object_object_add(o, "vifs", vifs);
    return o;
}
