// SPDX-License-Identifier: GPL-2.0
/* A hostile guest's kernel module, for tests/scenarios/60-hostile.sh: raw
 * hypercalls a well-behaved kernel never makes, issued as fast as the
 * guest can.  Linux's privcmd refuses hypercalls to a domU's userspace, so
 * this runs in the guest kernel.  Built against the guest kernel's headers
 * (`make hostile`).  Its one result line on the console:
 *
 *   hostile: unknown N (enosys N) wild N (refused N) console N (eperm N) ms N
 *
 * unknown: unsupported hypercall numbers and sub-ops; wild: valid calls
 * with argument pointers nowhere in the guest, foreign domids, bad ports,
 * bad grant refs, huge counts, frame numbers that wrap; console:
 * CONSOLEIO_write of 4 KiB.  Domain 0 must come through it with bounded
 * logs and memory, and answer each call with an error. */
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include <asm/xen/hypercall.h>
#include <xen/interface/event_channel.h>
#include <xen/interface/grant_table.h>
#include <xen/interface/hvm/hvm_op.h>
#include <xen/interface/hvm/params.h>
#include <xen/interface/memory.h>
#include <xen/interface/vcpu.h>
#include <xen/interface/version.h>
#include <xen/interface/xen.h>

static unsigned int n_unknown = 200000, n_wild = 50000, n_console = 20000;
module_param(n_unknown, uint, 0444);
module_param(n_wild, uint, 0444);
module_param(n_console, uint, 0444);

/* Kernel addresses with nothing behind them (and one non-canonical). */
static const unsigned long wild_ptrs[] = {
    0xdead000000000000UL,
    0xffffc9ffff000000UL,
    0xffffffffffff0000UL,
    0x10UL,
};

static long hcall(unsigned int nr, unsigned long a1, unsigned long a2, unsigned long a3)
{
    return privcmd_call(nr, a1, a2, a3, 0, 0);
}

/* One wild call of kind k; its result (all must be errors). */
static long wild_call(unsigned int i, void *scratch)
{
    unsigned long p = wild_ptrs[i % ARRAY_SIZE(wild_ptrs)];
    struct evtchn_send *send = scratch;
    struct gnttab_copy *copy = scratch;
    struct xen_add_to_physmap *atp = scratch;
    struct vcpu_register_vcpu_info *vi = scratch;
    struct xen_hvm_param *hp = scratch;

    switch (i % 10) {
    case 0:
        return hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, p, 0);
    case 1:
        return hcall(__HYPERVISOR_xen_version, XENVER_get_features, p, 0);
    case 2:
        return hcall(__HYPERVISOR_grant_table_op, GNTTABOP_copy, p, 512);
    case 3:
        return hcall(__HYPERVISOR_grant_table_op, GNTTABOP_query_size, p, 0x7fffffff);
    case 4:
        send->port = 0x10000 + i; /* no such port */
        return hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_send, (unsigned long)send,
                     0);
    case 5:
        memset(copy, 0, sizeof(*copy));
        copy->flags = GNTCOPY_source_gref | GNTCOPY_dest_gref;
        copy->source.u.ref = 0xfffff000 + (i & 0xfff); /* beyond the table */
        copy->source.domid = DOMID_SELF;
        copy->dest.u.ref = 1;
        copy->dest.domid = 7; /* a foreign domain */
        copy->len = 4096;
        if (hcall(__HYPERVISOR_grant_table_op, GNTTABOP_copy, (unsigned long)copy, 1) < 0)
            return -1;
        return copy->status < 0 ? copy->status : 0;
    case 6:
        memset(atp, 0, sizeof(*atp));
        atp->domid = 0; /* Domain 0's memory map */
        atp->space = XENMAPSPACE_shared_info;
        atp->gpfn = 0x10;
        return hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (unsigned long)atp,
                     0);
    case 7:
        memset(vi, 0, sizeof(*vi));
        vi->mfn = (1UL << 52) + 0x10; /* wraps when shifted */
        return hcall(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 0,
                     (unsigned long)vi);
    case 8:
        memset(hp, 0, sizeof(*hp));
        hp->domid = DOMID_SELF;
        hp->index = HVM_PARAM_STORE_PFN; /* the toolstack's */
        hp->value = 0x10;
        return hcall(__HYPERVISOR_hvm_op, HVMOP_set_param, (unsigned long)hp, 0);
    default:
        return hcall(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 0x10000, 0);
    }
}

static int __init hostile_init(void)
{
    unsigned int i, enosys = 0, refused = 0, eperm = 0;
    ktime_t t0 = ktime_get();
    char *buf = kmalloc(4096, GFP_KERNEL);
    void *scratch = kzalloc(256, GFP_KERNEL);

    if (!buf || !scratch) {
        kfree(buf);
        kfree(scratch);
        return -ENOMEM;
    }
    memset(buf, 'H', 4096);
    for (i = 0; i < n_unknown; i++) {
        /* hypercall numbers Xen has but Domus does not serve, and sub-ops */
        /* memory_op's sub-op is cmd's low 6 bits (Xen's MEMOP_CMD_MASK; the
         * bits above carry a continuation's start extent): 63 is none of
         * Xen's, whatever the bits above say. */
        long rc = i % 2 ? hcall(48 + i % 16, i, 0, 0)
                        : hcall(__HYPERVISOR_memory_op, ((1000UL + i) << 6) | 63, 0, 0);
        enosys += rc == -ENOSYS;
        if (!(i & 1023))
            cond_resched();
    }
    for (i = 0; i < n_wild; i++) {
        refused += wild_call(i, scratch) < 0;
        if (!(i & 1023))
            cond_resched();
    }
    for (i = 0; i < n_console; i++) {
        eperm += HYPERVISOR_console_io(CONSOLEIO_write, 4096, buf) == -EPERM;
        if (!(i & 1023))
            cond_resched();
    }
    pr_info("hostile: unknown %u (enosys %u) wild %u (refused %u) console %u (eperm %u) "
            "ms %lld\n",
            n_unknown, enosys, n_wild, refused, n_console, eperm,
            ktime_ms_delta(ktime_get(), t0));
    kfree(buf);
    kfree(scratch);
    return 0;
}

static void __exit hostile_exit(void) {}

module_init(hostile_init);
module_exit(hostile_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Domus test: a hostile guest's hypercalls");
