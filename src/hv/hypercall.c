/* Hypercall dispatch: one table from hypercall number to handler.
 *
 * Handlers read their arguments from guest-virtual memory only through
 * guest_copy_from/guest_copy_to and report failures to the guest as Xen errno
 * values.  Unknown hypercalls and sub-ops return -ENOSYS with one log line. */
#include "domus/hv.h"
#include "domus/util.h"

#include <errno.h>
#include <string.h>

#include <xen/features.h>
#include <xen/hvm/hvm_op.h>
#include <xen/memory.h>
#include <xen/physdev.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>

typedef int64_t (*hcall_fn)(struct vcpu *v, const uint64_t a[6]);

/* An unsupported call: -ENOSYS, and a log line within the domain's rate
 * limit (a guest looping on one would otherwise fill Domain 0's disk). */
static int64_t unknown(struct vcpu *v, const char *what, uint64_t sub)
{
    uint64_t dropped;

    if (!dratelimit_pass(&v->d->log_rl, &dropped))
        return -ENOSYS;
    if (dropped)
        dwarn("dom%u vcpu%u: unsupported %s %llu: -ENOSYS (and %llu lines like it "
              "suppressed)",
              v->d->domid, v->id, what, (unsigned long long)sub,
              (unsigned long long)dropped);
    else
        dwarn("dom%u vcpu%u: unsupported %s %llu: -ENOSYS", v->d->domid, v->id, what,
              (unsigned long long)sub);
    return -ENOSYS;
}

/* ---- xen_version ---- */

static int64_t put_string(struct vcpu *v, uint64_t arg, size_t size, const char *s)
{
    char buf[1024] = {0};
    snprintf(buf, sizeof(buf), "%s", s);
    return guest_copy_to(v, arg, buf, size) < 0 ? -EFAULT : 0;
}

static uint32_t features_submap0(void)
{
    return (1U << XENFEAT_writable_page_tables) |
           (1U << XENFEAT_auto_translated_physmap) | (1U << XENFEAT_hvm_callback_vector) |
           (1U << XENFEAT_hvm_safe_pvclock) | (1U << XENFEAT_linux_rsdp_unrestricted);
}

static int64_t hc_xen_version(struct vcpu *v, const uint64_t a[6])
{
    switch (a[0]) {
    case XENVER_version:
        return (HV_XEN_MAJOR << 16) | HV_XEN_MINOR;
    case XENVER_extraversion:
        return put_string(v, a[1], sizeof(xen_extraversion_t), ".0-domus");
    case XENVER_capabilities:
        return put_string(v, a[1], sizeof(xen_capabilities_info_t), "hvm-3.0-x86_64");
    case XENVER_changeset:
        return put_string(v, a[1], sizeof(xen_changeset_info_t), "domus");
    case XENVER_commandline:
        return put_string(v, a[1], sizeof(xen_commandline_t), "");
    case XENVER_pagesize:
        return DOMUS_PAGE_SIZE;
    case XENVER_compile_info: {
        xen_compile_info_t ci;
        memset(&ci, 0, sizeof(ci));
        snprintf(ci.compiler, sizeof(ci.compiler), "gcc");
        snprintf(ci.compile_by, sizeof(ci.compile_by), "domus");
        return guest_copy_to(v, a[1], &ci, sizeof(ci)) < 0 ? -EFAULT : 0;
    }
    case XENVER_platform_parameters: {
        xen_platform_parameters_t pp = {.virt_start = 0xffff800000000000ULL};
        return guest_copy_to(v, a[1], &pp, sizeof(pp)) < 0 ? -EFAULT : 0;
    }
    case XENVER_get_features: {
        xen_feature_info_t fi;
        if (guest_copy_from(v, &fi, a[1], sizeof(fi)) < 0)
            return -EFAULT;
        fi.submap = fi.submap_idx == 0 ? features_submap0() : 0;
        return guest_copy_to(v, a[1], &fi, sizeof(fi)) < 0 ? -EFAULT : 0;
    }
    case XENVER_guest_handle: {
        xen_domain_handle_t h;
        memset(h, 0, sizeof(h));
        memcpy(h, &v->d->domid, sizeof(v->d->domid));
        return guest_copy_to(v, a[1], h, sizeof(h)) < 0 ? -EFAULT : 0;
    }
    default:
        return unknown(v, "xen_version", a[0]);
    }
}

/* ---- memory_op ---- */

static int64_t add_to_physmap(struct vcpu *v, uint64_t arg)
{
    struct xen_add_to_physmap x;
    struct domain *d = v->d;
    if (guest_copy_from(v, &x, arg, sizeof(x)) < 0)
        return -EFAULT;
    if (x.domid != DOMID_SELF && x.domid != d->domid)
        return -ESRCH;
    uint64_t gpa = (uint64_t)x.gpfn << DOMUS_PAGE_SHIFT;
    if (x.gpfn >= (1ULL << (52 - DOMUS_PAGE_SHIFT)))
        return -EINVAL;
    switch (x.space) {
    case XENMAPSPACE_shared_info: {
        /* One lookup: another vCPU may move an extra page meanwhile. */
        void *page = x.idx == 0 ? gmem_ptr(&d->mem, gpa, DOMUS_PAGE_SIZE) : NULL;
        if (!page)
            return -EINVAL;
        evtchn_resume_shinfo(d, page); /* cleared, the masks kept after a restore */
        int rc = d->ops->set_shared_info(d, x.gpfn);
        if (rc == 0)
            d->shared_info_gpa = gpa;
        return rc;
    }
    case XENMAPSPACE_grant_table:
        if (x.idx & XENMAPIDX_grant_table_status)
            return -EINVAL; /* v1 only: no status frames */
        return gnttab_set_frame(d, (unsigned)x.idx, gpa);
    default:
        return unknown(v, "add_to_physmap space", x.space);
    }
}

static int64_t memory_map(struct vcpu *v, uint64_t arg)
{
    struct xen_memory_map mm;
    struct domain *d = v->d;
    if (guest_copy_from(v, &mm, arg, sizeof(mm)) < 0)
        return -EFAULT;
    uint64_t buf = (uint64_t)(uintptr_t)mm.buffer.p;
    unsigned n = mm.nr_entries < d->memmap_n ? mm.nr_entries : d->memmap_n;
    for (unsigned i = 0; i < n; i++) {
        struct __attribute__((packed)) {
            uint64_t addr, size;
            uint32_t type;
        } e = {d->memmap[i].addr, d->memmap[i].size, d->memmap[i].type};
        if (guest_copy_to(v, buf + i * sizeof(e), &e, sizeof(e)) < 0)
            return -EFAULT;
    }
    mm.nr_entries = n;
    return guest_copy_to(v, arg, &mm, sizeof(mm)) < 0 ? -EFAULT : 0;
}

static int64_t hc_memory_op(struct vcpu *v, const uint64_t a[6])
{
    struct domain *d = v->d;
    int64_t rc;
    switch (a[0]) {
    case XENMEM_add_to_physmap:
        return add_to_physmap(v, a[1]);
    case XENMEM_memory_map:
        return memory_map(v, a[1]);
    case XENMEM_maximum_gpfn:
        return (int64_t)((d->mem.high_size ? GMEM_HIGH_BASE + d->mem.high_size
                                           : d->mem.low_end) >>
                         DOMUS_PAGE_SHIFT) -
               1;
    default:
        /* The reservation ops (memop.c) take a continuation in a[0]'s
         * high bits. */
        if ((rc = memop_op(v, a[0], a[1])) != -ENOSYS)
            return rc;
        return unknown(v, "memory_op", a[0]);
    }
}

/* ---- hvm_op ---- */

static int64_t hvm_param(struct vcpu *v, uint64_t arg, bool set)
{
    struct xen_hvm_param p;
    struct domain *d = v->d;
    if (guest_copy_from(v, &p, arg, sizeof(p)) < 0)
        return -EFAULT;
    if (p.domid != DOMID_SELF && p.domid != d->domid)
        return -ESRCH;
    if (p.index >= HVM_NR_PARAMS)
        return -EINVAL;
    if (!set) {
        p.value = d->hvm_params[p.index];
        return guest_copy_to(v, arg, &p, sizeof(p)) < 0 ? -EFAULT : 0;
    }
    switch (p.index) {
    case HVM_PARAM_CALLBACK_IRQ: {
        /* Only the vector type is served (in-kernel, level-triggered). */
        uint8_t type = (uint8_t)(p.value >> 56);
        if (type == HVM_PARAM_CALLBACK_TYPE_VECTOR) {
            int rc = d->ops->set_global_upcall_vector(d, (uint8_t)p.value);
            if (rc < 0)
                return rc;
        }
        d->hvm_params[p.index] = p.value;
        return 0;
    }
    case HVM_PARAM_STORE_PFN:
    case HVM_PARAM_STORE_EVTCHN:
    case HVM_PARAM_CONSOLE_PFN:
    case HVM_PARAM_CONSOLE_EVTCHN:
        return -EPERM; /* set by the toolstack only */
    default:
        d->hvm_params[p.index] = p.value;
        return 0;
    }
}

static int64_t set_upcall_vector(struct vcpu *t, uint8_t vector)
{
    int rc = t->d->ops->set_upcall_vector(t, vector);
    if (rc == 0)
        t->upcall_vector = vector;
    return rc;
}

static int64_t hc_hvm_op(struct vcpu *v, const uint64_t a[6])
{
    struct xen_hvm_evtchn_upcall_vector uv;
    switch (a[0]) {
    case HVMOP_set_param:
        return hvm_param(v, a[1], true);
    case HVMOP_get_param:
        return hvm_param(v, a[1], false);
    case HVMOP_set_evtchn_upcall_vector:
        if (guest_copy_from(v, &uv, a[1], sizeof(uv)) < 0)
            return -EFAULT;
        if (uv.vcpu >= v->d->nr_vcpus)
            return -ENOENT;
        if (uv.vector < 0x10)
            return -EINVAL;
        return set_upcall_vector(&v->d->vcpus[uv.vcpu], uv.vector);
    case HVMOP_pagetable_dying:
        return 0;
    default:
        return unknown(v, "hvm_op", a[0]);
    }
}

/* ---- vcpu_op ---- */

static int64_t register_vcpu_info(struct vcpu *t, uint64_t arg, struct vcpu *v)
{
    struct vcpu_register_vcpu_info r;
    if (guest_copy_from(v, &r, arg, sizeof(r)) < 0)
        return -EFAULT;
    if (r.mfn >= (1ULL << (64 - DOMUS_PAGE_SHIFT)))
        return -EINVAL; /* would wrap when shifted */
    uint64_t gpa = (r.mfn << DOMUS_PAGE_SHIFT) + r.offset;
    if (r.offset > DOMUS_PAGE_SIZE - sizeof(struct vcpu_info) ||
        !gmem_ptr(&v->d->mem, gpa, sizeof(struct vcpu_info)))
        return -EINVAL;
    int rc = v->d->ops->set_vcpu_info(t, gpa);
    if (rc == 0)
        t->vcpu_info_gpa = gpa;
    return rc;
}

/* Areas given by guest-virtual address: translate once, now, as Xen's
 * HVM code does for the runstate and time areas; address 0 unregisters. */
static int64_t register_area(struct vcpu *t, uint64_t arg, struct vcpu *v, size_t size,
                             int (*set)(struct vcpu *, uint64_t), uint64_t *record)
{
    uint64_t gva, gpa;
    if (guest_copy_from(v, &gva, arg, sizeof(gva)) < 0)
        return -EFAULT;
    if (!gva) { /* unregisters, as Xen's null handle (Linux before a suspend) */
        int rc = set(t, HV_GPA_NONE);
        if (rc == 0)
            *record = 0;
        return rc;
    }
    if (v->d->ops->translate(v, gva, &gpa) < 0 || !gmem_ptr(&v->d->mem, gpa, size))
        return -EFAULT;
    int rc = set(t, gpa);
    if (rc == 0)
        *record = gpa;
    return rc;
}

static int64_t singleshot(struct vcpu *t, uint64_t arg, struct vcpu *v)
{
    struct vcpu_set_singleshot_timer st;
    if (guest_copy_from(v, &st, arg, sizeof(st)) < 0)
        return -EFAULT;
    t->singleshot_ns = st.timeout_abs_ns;
    return t->timer_port ? v->d->ops->set_timer(t, t->timer_port, st.timeout_abs_ns) : 0;
}

static int64_t hc_vcpu_op(struct vcpu *v, const uint64_t a[6])
{
    struct domain *d = v->d;
    if (a[1] >= d->nr_vcpus)
        return -ENOENT;
    struct vcpu *t = &d->vcpus[a[1]];
    switch (a[0]) {
    case VCPUOP_register_vcpu_info:
        return register_vcpu_info(t, a[2], v);
    case VCPUOP_register_runstate_memory_area:
        return register_area(t, a[2], v, sizeof(struct vcpu_runstate_info),
                             d->ops->set_runstate, &t->runstate_gpa);
    case VCPUOP_register_vcpu_time_memory_area:
        return register_area(t, a[2], v, sizeof(struct vcpu_time_info),
                             d->ops->set_vcpu_time_info, &t->time_info_gpa);
    case VCPUOP_is_up:
    case VCPUOP_down:
    case VCPUOP_up:
        return hv_vcpu_updown(t, (unsigned)a[0]);
    case VCPUOP_set_singleshot_timer:
        return singleshot(t, a[2], v);
    case VCPUOP_stop_singleshot_timer:
        t->singleshot_ns = 0;
        return t->timer_port ? d->ops->set_timer(t, t->timer_port, 0) : 0;
    case VCPUOP_stop_periodic_timer:
        t->periodic_ns = 0;
        return 0;
    case VCPUOP_set_periodic_timer:
        return -EOPNOTSUPP; /* Linux uses one-shot timers on HVM/PVH */
    default:
        return unknown(v, "vcpu_op", a[0]);
    }
}

/* ---- sched_op ---- */

static int64_t hc_sched_op(struct vcpu *v, const uint64_t a[6])
{
    struct sched_shutdown sd;
    int64_t rc;

    switch (a[0]) {
    case SCHEDOP_yield:
    case SCHEDOP_block:
    case SCHEDOP_poll:
        schedop(v, a[0], a[1], &rc); /* schedop.c */
        return rc;
    case SCHEDOP_shutdown:
        if (guest_copy_from(v, &sd, a[1], sizeof(sd)) < 0)
            return -EFAULT;
        if (sd.reason > SHUTDOWN_MAX)
            return -EINVAL;
        if (sd.reason == SHUTDOWN_suspend)
            return hv_suspend(v);
        dinfo("dom%u: guest requested shutdown, reason %u", v->d->domid, sd.reason);
        domain_shutdown(v->d, (int)sd.reason);
        return 0;
    case SCHEDOP_shutdown_code:
        return 0;
    default:
        return unknown(v, "sched_op", a[0]);
    }
}

/* ---- console_io, vm_assist, physdev_op, grant_table_op, event_channel_op ---- */

/* Refused, as release builds of Xen refuse it to every domain but the
 * hardware domain (XSM's console_io hook): every Domus guest is
 * unprivileged, its console is the PV ring (rate-limited by the console back
 * end), and Linux's users of CONSOLEIO_write (earlyprintk=xen,
 * xen_raw_console_write) fall back or ignore the error.  Letting it through
 * gave any guest 4 KiB of Domain 0's log per hypercall. */
static int64_t hc_console_io(struct vcpu *v, const uint64_t a[6])
{
    (void)v;
    (void)a;
    return -EPERM;
}

static int64_t hc_vm_assist(struct vcpu *v, const uint64_t a[6])
{
    return hv_vm_assist(v->d, a[0], a[1]);
}

int hv_vm_assist(struct domain *d, uint64_t cmd, uint64_t type)
{
    int rc;

    if (type != VMASST_TYPE_runstate_update_flag)
        return -EINVAL;
    if (cmd != VMASST_CMD_enable && cmd != VMASST_CMD_disable)
        return -ENOSYS;
    bool on = cmd == VMASST_CMD_enable;
    if (d->ops->set_runstate_update_flag &&
        (rc = d->ops->set_runstate_update_flag(d, on)) < 0)
        return rc;
    pthread_mutex_lock(&d->lock);
    d->vm_assist = on ? d->vm_assist | 1ULL << type : d->vm_assist & ~(1ULL << type);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int64_t hc_physdev_op(struct vcpu *v, const uint64_t a[6])
{
    return unknown(v, "physdev_op", a[0]);
}

static int64_t hc_grant_table_op(struct vcpu *v, const uint64_t a[6])
{
    return gnttab_op(v, (unsigned)a[0], a[1], (unsigned)a[2]);
}

static int64_t hc_event_channel_op(struct vcpu *v, const uint64_t a[6])
{
    return evtchn_op(v, (unsigned)a[0], a[1]);
}

static const hcall_fn hcall_table[] = {
    [__HYPERVISOR_memory_op] = hc_memory_op,
    [__HYPERVISOR_xen_version] = hc_xen_version,
    [__HYPERVISOR_console_io] = hc_console_io,
    [__HYPERVISOR_grant_table_op] = hc_grant_table_op,
    [__HYPERVISOR_vm_assist] = hc_vm_assist,
    [__HYPERVISOR_vcpu_op] = hc_vcpu_op,
    [__HYPERVISOR_sched_op] = hc_sched_op,
    [__HYPERVISOR_event_channel_op] = hc_event_channel_op,
    [__HYPERVISOR_physdev_op] = hc_physdev_op,
    [__HYPERVISOR_hvm_op] = hc_hvm_op,
};

int64_t hv_hypercall(struct vcpu *v, uint64_t nr, const uint64_t args[6])
{
    dlog_debug("dom%u vcpu%u: hypercall %llu(%llx, %llx, %llx)", v->d->domid, v->id,
               (unsigned long long)nr, (unsigned long long)args[0],
               (unsigned long long)args[1], (unsigned long long)args[2]);
    if (nr >= ARRAY_SIZE(hcall_table) || !hcall_table[nr])
        return unknown(v, "hypercall", nr);
    return hcall_table[nr](v, args);
}
