/* KVM back end: the VM, the vCPU threads and the one KVM_RUN loop.
 *
 * Xen acceleration in KVM (KVM_CAP_XEN_HVM) does the per-event work in the
 * kernel: hypercall interception, event channel delivery into shared_info
 * and the upcall vector, in-kernel EVTCHNOP_send for IPIs and back-end ports,
 * the VIRQ_TIMER one-shot timer, pvclock in vcpu_info, and the runstate area
 * where KVM's is safe (k_set_runstate).
 * Everything else reaches userspace as KVM_EXIT_XEN and goes to
 * hv_hypercall. */
#include "domus/kvm.h"
#include "domus/acpi_ports.h"
#include "domus/util.h"
#include "domus/vcpugate.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xen/sched.h>
#include <xen/vcpu.h>

#define XEN_HYPERCALL_MSR 0x40000000
#define KVM_TSS_ADDR 0xFFFBD000ULL

/* Linux 6.2's (the 6.1 uapi headers lack them): KVM_XEN_HVM_CONFIG's
 * capability bit for the runstate area's XEN_RUNSTATE_UPDATE flag, and the
 * attribute that turns the flag on (u.runstate_update_flag, the union's
 * first byte). */
#ifndef KVM_XEN_HVM_CONFIG_RUNSTATE_UPDATE_FLAG
#define KVM_XEN_HVM_CONFIG_RUNSTATE_UPDATE_FLAG (1 << 6)
#endif
#ifndef KVM_XEN_ATTR_TYPE_RUNSTATE_UPDATE_FLAG
#define KVM_XEN_ATTR_TYPE_RUNSTATE_UPDATE_FLAG 0x5
#endif

struct kvm_priv {
    int kvm_fd;
    int vm_fd;
    bool kvm_runstate;     /* KVM keeps the runstate areas (use_kvm_runstate) */
    struct vcpu_gate gate; /* the vCPU threads' pause (vcpugate.h) */
};

static struct kvm_priv *priv(struct domain *d)
{
    return d->priv;
}

/* ---- hv_ops on KVM ---- */

static int vm_attr(struct domain *d, struct kvm_xen_hvm_attr *a)
{
    return ioctl(priv(d)->vm_fd, KVM_XEN_HVM_SET_ATTR, a) < 0 ? -errno : 0;
}

static int vcpu_attr_fn(struct vcpu *v, void *arg)
{
    return ioctl(v->fd, KVM_XEN_VCPU_SET_ATTR, arg) < 0 ? -errno : 0;
}

static int vcpu_attr(struct vcpu *v, struct kvm_xen_vcpu_attr *a)
{
    return vcpu_call(v, vcpu_attr_fn, a);
}

static int k_set_shared_info(struct domain *d, uint64_t gfn)
{
    struct kvm_xen_hvm_attr a = {.type = KVM_XEN_ATTR_TYPE_SHARED_INFO};
    a.u.shared_info.gfn = gfn;
    int rc = vm_attr(d, &a);
    if (rc < 0)
        return rc;
    /* As on Xen, vCPUs below 32 have a vcpu_info inside shared_info until
     * they register one elsewhere. */
    for (unsigned i = 0; i < d->nr_vcpus && i < XEN_LEGACY_MAX_VCPUS; i++) {
        struct vcpu *v = &d->vcpus[i];
        if (v->vcpu_info_gpa)
            continue;
        struct kvm_xen_vcpu_attr va = {.type = KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO};
        va.u.gpa = (gfn << DOMUS_PAGE_SHIFT) + i * sizeof(struct vcpu_info);
        if ((rc = vcpu_attr(v, &va)) < 0)
            return rc;
    }
    return 0;
}

static int k_vcpu_gpa(struct vcpu *v, uint16_t type, uint64_t gpa)
{
    struct kvm_xen_vcpu_attr a = {.type = type};
    a.u.gpa = gpa;
    return vcpu_attr(v, &a);
}

static int k_set_vcpu_info(struct vcpu *v, uint64_t gpa)
{
    return k_vcpu_gpa(v, KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO, gpa);
}

static int k_set_vcpu_time_info(struct vcpu *v, uint64_t gpa)
{
    return k_vcpu_gpa(v, KVM_XEN_VCPU_ATTR_TYPE_VCPU_TIME_INFO, gpa);
}

/* The runstate area: KVM's where its runstate code has the fixes since 6.1
 * (use_kvm_runstate), else kept here.  6.1's in-kernel one (rewritten
 * through a gfn_to_pfn_cache at every preemption of the vCPU thread) was
 * implicated in crashes of the nested test host under heavy interrupt load:
 * guest triple faults and a kernel stack overflow in the host (see the
 * notes of the PV network issue).  Ours says "running since it was
 * registered, nothing stolen", which is what the guest's steal clock and
 * vcpu_is_preempted() read.  KVM's counts the time a vCPU thread waited for
 * a host CPU as runnable (steal) and starts a new vCPU, a restored one too,
 * as running with nothing stolen: what a Linux guest expects after a
 * migration on Xen (it adds its own saved times back). */
static int k_set_runstate(struct vcpu *v, uint64_t gpa)
{
    struct vcpu_runstate_info *r;

    if (priv(v->d)->kvm_runstate)
        return k_vcpu_gpa(v, KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_ADDR, gpa);
    if (gpa == HV_GPA_NONE)
        return 0;
    if (!(r = gmem_ptr(&v->d->mem, gpa, sizeof(*r))))
        return -EFAULT;
    memset(r, 0, sizeof(*r));
    r->state = RUNSTATE_running;
    return 0;
}

/* vm_assist(runstate_update_flag): KVM's runstate updates then set
 * XEN_RUNSTATE_UPDATE while they write; ours never changes. */
static int k_set_runstate_update_flag(struct domain *d, bool on)
{
    struct kvm_xen_hvm_attr a = {.type = KVM_XEN_ATTR_TYPE_RUNSTATE_UPDATE_FLAG};

    if (!priv(d)->kvm_runstate)
        return 0;
    a.u.long_mode = on; /* the union's first byte: runstate_update_flag */
    return vm_attr(d, &a);
}

static int k_set_upcall_vector(struct vcpu *v, uint8_t vector)
{
    struct kvm_xen_vcpu_attr a = {.type = KVM_XEN_VCPU_ATTR_TYPE_UPCALL_VECTOR};
    a.u.vector = vector;
    return vcpu_attr(v, &a);
}

static int k_set_global_upcall_vector(struct domain *d, uint8_t vector)
{
    struct kvm_xen_hvm_attr a = {.type = KVM_XEN_ATTR_TYPE_UPCALL_VECTOR};
    a.u.vector = vector;
    return vm_attr(d, &a);
}

static int k_set_timer(struct vcpu *v, uint32_t port, uint64_t expires_ns)
{
    struct kvm_xen_vcpu_attr a = {.type = KVM_XEN_VCPU_ATTR_TYPE_TIMER};
    a.u.timer.port = port;
    a.u.timer.priority = KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL;
    a.u.timer.expires_ns = port ? expires_ns : 0;
    return vcpu_attr(v, &a);
}

static int k_deliver(struct domain *d, uint32_t port, uint32_t vcpu)
{
    struct kvm_irq_routing_xen_evtchn e = {
        .port = port, .vcpu = vcpu, .priority = KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL};
    if (ioctl(priv(d)->vm_fd, KVM_XEN_HVM_EVTCHN_SEND, &e) < 0)
        return -errno;
    return 0;
}

static int k_route_remove(struct domain *d, uint32_t port)
{
    struct kvm_xen_hvm_attr a = {.type = KVM_XEN_ATTR_TYPE_EVTCHN};
    a.u.evtchn.send_port = port;
    a.u.evtchn.flags = KVM_XEN_EVTCHN_DEASSIGN;
    int rc = vm_attr(d, &a);
    return rc == -ENOENT ? 0 : rc;
}

static int k_route_local(struct domain *d, uint32_t port, uint32_t target, uint32_t vcpu)
{
    struct kvm_xen_hvm_attr a = {.type = KVM_XEN_ATTR_TYPE_EVTCHN};
    k_route_remove(d, port);
    a.u.evtchn.send_port = port;
    a.u.evtchn.type = port == target ? EVTCHNSTAT_ipi : EVTCHNSTAT_interdomain;
    a.u.evtchn.deliver.port.port = target;
    a.u.evtchn.deliver.port.vcpu = vcpu;
    a.u.evtchn.deliver.port.priority = KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL;
    return vm_attr(d, &a);
}

static int k_route_eventfd(struct domain *d, uint32_t port, int fd)
{
    struct kvm_xen_hvm_attr a = {.type = KVM_XEN_ATTR_TYPE_EVTCHN};
    k_route_remove(d, port);
    a.u.evtchn.send_port = port;
    a.u.evtchn.type = EVTCHNSTAT_interdomain;
    a.u.evtchn.deliver.eventfd.port = 0;
    a.u.evtchn.deliver.eventfd.fd = fd;
    return vm_attr(d, &a);
}

static int translate_fn(struct vcpu *v, void *arg)
{
    return ioctl(v->fd, KVM_TRANSLATE, arg) < 0 ? -errno : 0;
}

static int k_translate(struct vcpu *v, uint64_t gva, uint64_t *gpa)
{
    struct kvm_translation t = {.linear_address = gva};
    if (vcpu_call(v, translate_fn, &t) < 0 || !t.valid)
        return -EFAULT;
    *gpa = t.physical_address;
    return 0;
}

static int set_slot(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size, void *host);

/* Extra page idx's region moved to gpa (gmem_place_extra): its slot follows;
 * gpa 0 (host NULL) only drops the slot. */
static int k_map_extra(struct domain *d, unsigned idx, uint64_t gpa, void *host)
{
    if (idx >= GMEM_EXTRA_PAGES)
        return -EINVAL;
    const struct gmem_region *r = &d->mem.region[GMEM_REGION_EXTRA + idx];
    int fd = priv(d)->vm_fd;

    if (gpa ? host != d->mem.host + r->fd_offset : host != NULL)
        return -EINVAL;
    int rc = set_slot(fd, r->slot, 0, 0, NULL); /* drop an earlier placement */
    return gpa ? set_slot(fd, r->slot, gpa, r->size, host) : rc;
}

/* Out of KVM_RUN by the signal, out of a pause's gate by its wake-up. */
static void k_kick(struct vcpu *v)
{
    if (v->thread_started)
        pthread_kill(v->thread, HV_KICK_SIGNAL);
    vcpu_gate_wake(&priv(v->d)->gate);
}

/* The guest's suspend, on vCPU v's thread: the gate closes and the other
 * vCPUs are kicked out of the guest; v parks once its hypercall has
 * completed (serve_call).  The control thread's kvm_domain_pause then
 * waits for them all. */
static void k_suspend(struct vcpu *v)
{
    struct domain *d = v->d;

    vcpu_gate_close(&priv(d)->gate);
    for (unsigned i = 0; i < d->nr_vcpus; i++)
        if (&d->vcpus[i] != v && d->vcpus[i].thread_started)
            pthread_kill(d->vcpus[i].thread, HV_KICK_SIGNAL);
}

/* kvmclock: the system time the guest's timers and timeouts are in. */
static uint64_t k_now_ns(struct domain *d)
{
    struct kvm_clock_data k = {0};
    return ioctl(priv(d)->vm_fd, KVM_GET_CLOCK, &k) < 0 ? 0 : k.clock;
}

/* The in-kernel Xen timer's expiry (on v's own thread: no KVM_RUN now). */
static uint64_t k_timer_expiry(struct vcpu *v)
{
    struct kvm_xen_vcpu_attr a = {.type = KVM_XEN_VCPU_ATTR_TYPE_TIMER};
    if (ioctl(v->fd, KVM_XEN_VCPU_GET_ATTR, &a) < 0)
        return v->singleshot_ns;
    return a.u.timer.port ? a.u.timer.expires_ns : 0;
}

static const struct hv_ops kvm_ops = {
    .now_ns = k_now_ns,
    .timer_expiry = k_timer_expiry,
    .kick = k_kick,
    .suspend = k_suspend,
    .map_extra = k_map_extra,
    .set_shared_info = k_set_shared_info,
    .set_vcpu_info = k_set_vcpu_info,
    .set_vcpu_time_info = k_set_vcpu_time_info,
    .set_runstate = k_set_runstate,
    .set_runstate_update_flag = k_set_runstate_update_flag,
    .set_upcall_vector = k_set_upcall_vector,
    .set_global_upcall_vector = k_set_global_upcall_vector,
    .set_timer = k_set_timer,
    .deliver = k_deliver,
    .route_local = k_route_local,
    .route_eventfd = k_route_eventfd,
    .route_remove = k_route_remove,
    .translate = k_translate,
};

/* ---- VM creation ---- */

static int set_slot(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size, void *host)
{
    struct kvm_userspace_memory_region r = {.slot = slot,
                                            .guest_phys_addr = gpa,
                                            .memory_size = size,
                                            .userspace_addr = (uint64_t)(uintptr_t)host};
    return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

/* ---- dirty logging (kvm.h) ---- */

static int set_fixed_slots(struct domain *d, uint32_t flags)
{
    struct gmem *m = &d->mem;
    int rc = 0;

    for (unsigned i = 0; !rc && i < GMEM_REGION_EXTRA; i++) {
        const struct gmem_region *r = &m->region[i];
        struct kvm_userspace_memory_region k = {
            .slot = r->slot,
            .flags = flags,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uint64_t)(uintptr_t)(m->host + r->fd_offset)};
        if (r->size && ioctl(priv(d)->vm_fd, KVM_SET_USER_MEMORY_REGION, &k) < 0)
            rc = -errno;
    }
    return rc;
}

int kvm_dirty_log_start(struct domain *d)
{
    int rc = gmem_dirty_start(&d->mem);
    if (!rc && (rc = set_fixed_slots(d, KVM_MEM_LOG_DIRTY_PAGES)))
        kvm_dirty_log_stop(d);
    return rc;
}

void kvm_dirty_log_stop(struct domain *d)
{
    gmem_dirty_stop(&d->mem);
    if (set_fixed_slots(d, 0))
        dwarn("dom%u: dirty logging could not be turned off", d->domid);
}

/* Region r's slot log (KVM_GET_DIRTY_LOG returns and clears it) ORed into
 * bm from the region's first memfd page. */
static int get_slot_log(struct domain *d, const struct gmem_region *r, uint64_t *bm,
                        uint64_t *tmp)
{
    uint64_t words = (r->size / DOMUS_PAGE_SIZE + 63) / 64,
             first = r->fd_offset / DOMUS_PAGE_SIZE;
    struct kvm_dirty_log l = {.slot = r->slot, .dirty_bitmap = tmp};

    memset(tmp, 0, words * sizeof(uint64_t));
    if (ioctl(priv(d)->vm_fd, KVM_GET_DIRTY_LOG, &l) < 0)
        return -errno;
    for (uint64_t w = 0; w < words; w++) {
        if (!tmp[w])
            continue;
        if (first % 64 == 0) {
            bm[first / 64 + w] |= tmp[w];
            continue;
        }
        for (unsigned b = 0; b < 64; b++) /* a region not 64-page aligned */
            if (tmp[w] & (1ULL << b)) {
                uint64_t p = first + w * 64 + b;
                bm[p / 64] |= 1ULL << (p % 64);
            }
    }
    return 0;
}

int kvm_dirty_log_get(struct domain *d, uint64_t *bm)
{
    struct gmem *m = &d->mem;
    uint64_t *tmp = calloc((gmem_dirty_npages(m) + 63) / 64 + 1, sizeof(uint64_t));
    int rc = tmp ? 0 : -ENOMEM;

    for (unsigned i = 0; !rc && i < GMEM_REGION_EXTRA; i++)
        if (m->region[i].size)
            rc = get_slot_log(d, &m->region[i], bm, tmp);
    free(tmp);
    if (!rc)
        gmem_dirty_collect(m, bm);
    return rc;
}

/* One KVM slot per fixed region of the region table (gmem.h); the extra
 * pages get theirs when the guest places them (k_map_extra). */
static int map_memory(struct domain *d)
{
    struct gmem *m = &d->mem;
    int fd = priv(d)->vm_fd, rc = 0;

    for (unsigned i = 0; !rc && i < GMEM_REGION_EXTRA; i++) {
        const struct gmem_region *r = &m->region[i];
        if (r->size)
            rc = set_slot(fd, r->slot, r->gpa, r->size, m->host + r->fd_offset);
    }
    return rc;
}

/* KVM's runstate area where KVM has its update flag (Linux 6.2 and later:
 * the runstate rework after 6.1, whose version crashed the nested test
 * host); DOMUS_KVM_RUNSTATE=0 keeps Domus's, =1 takes KVM's on any KVM
 * with a runstate area. */
static bool use_kvm_runstate(int caps)
{
    const char *e = getenv("DOMUS_KVM_RUNSTATE");
    int need = KVM_XEN_HVM_CONFIG_RUNSTATE | KVM_XEN_HVM_CONFIG_RUNSTATE_UPDATE_FLAG;

    if (e && *e)
        return !strcmp(e, "1") && (caps & KVM_XEN_HVM_CONFIG_RUNSTATE);
    return (caps & need) == need;
}

static int xen_config(struct domain *d, int caps, char *err, size_t errlen)
{
    struct kvm_xen_hvm_config cfg = {.flags = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL,
                                     .msr = XEN_HYPERCALL_MSR};
    int need = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL | KVM_XEN_HVM_CONFIG_SHARED_INFO |
               KVM_XEN_HVM_CONFIG_EVTCHN_SEND;
    if ((caps & need) != need) {
        dfmt(err, errlen,
             "KVM lacks Xen support (KVM_CAP_XEN_HVM = %#x): the host kernel needs "
             "CONFIG_KVM_XEN=y (run 'make setup-kvm' to build and load such modules)",
             caps);
        return -ENOTSUP;
    }
    cfg.flags |= KVM_XEN_HVM_CONFIG_EVTCHN_SEND;
    priv(d)->kvm_runstate = use_kvm_runstate(caps);
    dinfo("dom%u: runstate areas kept by %s (KVM_CAP_XEN_HVM %#x)", d->domid,
          priv(d)->kvm_runstate ? "KVM" : "Domus", caps);
    if (ioctl(priv(d)->vm_fd, KVM_XEN_HVM_CONFIG, &cfg) < 0) {
        dfmt(err, errlen, "KVM_XEN_HVM_CONFIG: %s", strerror(errno));
        return -errno;
    }
    struct kvm_xen_hvm_attr lm = {.type = KVM_XEN_ATTR_TYPE_LONG_MODE};
    lm.u.long_mode = 1;
    struct kvm_xen_hvm_attr ver = {.type = KVM_XEN_ATTR_TYPE_XEN_VERSION};
    ver.u.xen_version = (HV_XEN_MAJOR << 16) | HV_XEN_MINOR;
    if (vm_attr(d, &lm) < 0 || vm_attr(d, &ver) < 0) {
        dfmt(err, errlen, "KVM_XEN_HVM_SET_ATTR: %s", strerror(errno));
        return -errno;
    }
    return 0;
}

static struct kvm_cpuid2 *supported_cpuid(int kvm_fd)
{
    for (unsigned n = 128; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
        if (!c)
            return NULL;
        c->nent = n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            return c;
        free(c);
        if (errno != E2BIG)
            return NULL;
    }
    return NULL;
}

static int vcpu_create(struct domain *d, struct vcpu *v, const struct kvm_cpuid2 *sup)
{
    struct kvm_priv *p = priv(d);
    int rc = 0;
    struct kvm_cpuid2 *c =
        calloc(1, sizeof(*c) + (sup->nent + 8) * sizeof(c->entries[0]));
    if (!c)
        return -ENOMEM;
    v->fd = ioctl(p->vm_fd, KVM_CREATE_VCPU, v->id);
    if (v->fd < 0) {
        rc = -errno;
        goto out;
    }
    long sz = ioctl(p->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    v->run_size = sz > 0 ? (size_t)sz : 0;
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        rc = -errno;
        goto out;
    }
    cpuid_build(sup, c, v->id, d->nr_vcpus, d->domid, cpuid_host_xcr0_limit());
    struct kvm_xen_vcpu_attr id = {.type = KVM_XEN_VCPU_ATTR_TYPE_VCPU_ID};
    id.u.vcpu_id = v->id;
    if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ||
        ioctl(v->fd, KVM_XEN_VCPU_SET_ATTR, &id) < 0)
        rc = -errno;
out:
    free(c);
    return rc;
}

static int vm_open(struct domain *d, char *err, size_t errlen)
{
    struct kvm_priv *p = priv(d);
    p->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (p->kvm_fd < 0) {
        dfmt(err, errlen, "/dev/kvm: %s (is the kvm module loaded?)", strerror(errno));
        return -errno;
    }
    p->vm_fd = ioctl(p->kvm_fd, KVM_CREATE_VM, 0);
    if (p->vm_fd < 0) {
        dfmt(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
        return -errno;
    }
    int caps = ioctl(p->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XEN_HVM);
    int rc = xen_config(d, caps < 0 ? 0 : caps, err, errlen);
    if (rc < 0)
        return rc;
    /* An in-kernel PIT too: Linux calibrates against it, and every port
     * access that reaches userspace is expensive. */
    struct kvm_pit_config pit = {.flags = 0};
    if (ioctl(p->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0 ||
        ioctl(p->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
        ioctl(p->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        dfmt(err, errlen, "KVM irqchip set-up: %s", strerror(errno));
        return -errno;
    }
    if ((rc = map_memory(d)) < 0)
        dfmt(err, errlen, "KVM memory slots: %s", strerror(-rc));
    return rc;
}

int kvm_domain_create(struct domain *d, char *err, size_t errlen)
{
    int rc;
    struct kvm_cpuid2 *sup = NULL;
    struct kvm_priv *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->kvm_fd = p->vm_fd = -1;
    vcpu_gate_init(&p->gate);
    d->priv = p;
    d->ops = &kvm_ops;
    if ((rc = vm_open(d, err, errlen)) < 0)
        goto out;
    sup = supported_cpuid(p->kvm_fd);
    if (!sup) {
        rc = -EIO;
        dfmt(err, errlen, "KVM_GET_SUPPORTED_CPUID failed");
        goto out;
    }
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        if ((rc = vcpu_create(d, &d->vcpus[i], sup)) < 0) {
            dfmt(err, errlen, "vCPU %u: %s", i, strerror(-rc));
            goto out;
        }
    }
out:
    free(sup);
    if (rc < 0)
        kvm_domain_destroy(d);
    return rc;
}

int kvm_boot_vcpu_setup(struct domain *d, uint64_t entry, uint64_t start_info)
{
    struct vcpu *v = &d->vcpus[0];
    struct kvm_sregs s;
    if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
        return -errno;
    struct kvm_segment code = {.base = 0,
                               .limit = 0xffffffff,
                               .selector = 0x10,
                               .type = 0xb,
                               .present = 1,
                               .db = 1,
                               .s = 1,
                               .g = 1};
    struct kvm_segment data = code;
    data.selector = 0x18;
    data.type = 0x3;
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.tr =
        (struct kvm_segment){.selector = 0x20, .limit = 0x67, .type = 0xb, .present = 1};
    s.cr0 = 0x11; /* PE | ET */
    s.cr4 = 0;
    s.efer = 0;
    struct kvm_regs r = {.rip = entry, .rbx = start_info, .rflags = 0x2};
    if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0 || ioctl(v->fd, KVM_SET_REGS, &r) < 0)
        return -errno;
    return 0;
}

/* ---- the run loop ---- */

static void kick_handler(int sig)
{
    (void)sig;
    if (vcpu_current && vcpu_current->run)
        ((struct kvm_run *)vcpu_current->run)->immediate_exit = 1;
}

static bool domain_running(struct domain *d)
{
    return atomic_load(&d->shutdown_reason) < 0;
}

static void handle_acpi_write(struct domain *d, uint16_t port, uint8_t val)
{
    if (port == ACPI_SLEEP_CONTROL_PORT && (val & ACPI_SLP_EN) &&
        ((val >> 2) & 7) == ACPI_S5_SLP_TYP) {
        dinfo("dom%u: ACPI power off", d->domid);
        domain_shutdown(d, SHUTDOWN_poweroff);
    } else if ((port == ACPI_RESET_PORT && (val & 0x04)) ||
               (port == 0x64 && val == 0xfe)) {
        dinfo("dom%u: reset requested (port %#x)", d->domid, port);
        domain_shutdown(d, SHUTDOWN_reboot);
    }
}

/* Port I/O: the ACPI sleep/reset registers and the i8042 reset; everything
 * else reads as all ones (no device) and ignores writes. */
static void handle_io(struct vcpu *v, struct kvm_run *run)
{
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
        if (run->io.direction == KVM_EXIT_IO_OUT)
            handle_acpi_write(v->d, run->io.port, data[0]);
        else
            memset(data, run->io.port == ACPI_SLEEP_STATUS_PORT ? 0 : 0xff, run->io.size);
    }
}

/* Counts one exit in v's stats: hypercalls by number, port I/O by port. */
static void count_exit(struct vcpu_stats *st, const struct kvm_run *run)
{
    st->runs++;
    if (run->exit_reason == KVM_EXIT_XEN && run->xen.type == KVM_EXIT_XEN_HCALL)
        st->hcall[run->xen.u.hcall.input < VCPU_STATS_HCALLS ? run->xen.u.hcall.input
                                                             : VCPU_STATS_HCALLS - 1]++;
    else if (run->exit_reason == KVM_EXIT_MMIO)
        st->mmio++;
    else if (run->exit_reason == KVM_EXIT_INTR)
        st->intr++;
    else if (run->exit_reason != KVM_EXIT_IO)
        st->other++;
    if (run->exit_reason != KVM_EXIT_IO)
        return;
    st->io++;
    for (unsigned i = 0; i < VCPU_STATS_PORTS; i++)
        if (st->port[i] == run->io.port || !st->port_n[i]) {
            st->port[i] = run->io.port;
            st->port_n[i]++;
            return;
        }
}

/* One line: the exits of a vCPU's life, the busiest kinds first. */
static void log_exits(const struct vcpu *v)
{
    const struct vcpu_stats *st = &v->stats;
    char line[512];
    size_t n = 0;
    for (unsigned i = 0; i < VCPU_STATS_HCALLS && n < sizeof(line); i++)
        if (st->hcall[i])
            n += (size_t)snprintf(line + n, sizeof(line) - n, " hc%u:%llu", i,
                                  (unsigned long long)st->hcall[i]);
    for (unsigned i = 0; i < VCPU_STATS_PORTS && n < sizeof(line); i++)
        if (st->port_n[i])
            n += (size_t)snprintf(line + n, sizeof(line) - n, " io%#x:%llu", st->port[i],
                                  (unsigned long long)st->port_n[i]);
    dlog_debug("dom%u vcpu%u: %llu exits (io %llu, mmio %llu, intr %llu, other %llu):%s",
               v->d->domid, v->id, (unsigned long long)st->runs,
               (unsigned long long)st->io, (unsigned long long)st->mmio,
               (unsigned long long)st->intr, (unsigned long long)st->other,
               n ? line : "");
}

/* Where a vCPU was when it stopped for good (a triple fault): one line of
 * its registers and one of its pending events, as Xen logs a crashed domain's
 * vCPU; once per domain end, so bounded.  On AMD, KVM reinitializes the
 * VMCB on the shutdown intercept: the registers read back are the reset
 * state there, and the events the last ones KVM queued. */
static void log_cpu_state(const struct vcpu *v)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    struct kvm_vcpu_events e;

    if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0 ||
        ioctl(v->fd, KVM_GET_VCPU_EVENTS, &e) < 0)
        return;
    dinfo("dom%u vcpu%u: rip %#llx rsp %#llx rflags %#llx cr0 %#llx cr2 %#llx cr3 %#llx "
          "cr4 %#llx efer %#llx cs %#x idt %#llx/%#x",
          v->d->domid, v->id, r.rip, r.rsp, r.rflags, s.cr0, s.cr2, s.cr3, s.cr4, s.efer,
          s.cs.selector, s.idt.base, s.idt.limit);
    dinfo("dom%u vcpu%u: exception %u/%u nr %u error %#x, interrupt %u/%u nr %u, nmi "
          "%u/%u, shadow %#x",
          v->d->domid, v->id, e.exception.injected, e.exception.pending, e.exception.nr,
          e.exception.error_code, e.interrupt.injected, e.interrupt.soft, e.interrupt.nr,
          e.nmi.injected, e.nmi.pending, e.interrupt.shadow);
}

static void handle_exit(struct vcpu *v, struct kvm_run *run)
{
    count_exit(&v->stats, run);
    switch (run->exit_reason) {
    case KVM_EXIT_XEN:
        if (run->xen.type == KVM_EXIT_XEN_HCALL) {
            uint64_t args[6];
            memcpy(args, run->xen.u.hcall.params, sizeof(args));
            if (run->xen.u.hcall.cpl != 0)
                run->xen.u.hcall.result = (uint64_t)-EPERM;
            else if (!run->xen.u.hcall.longmode)
                run->xen.u.hcall.result =
                    (uint64_t)-ENOSYS; /* 32-bit layouts: not served */
            else
                run->xen.u.hcall.result =
                    (uint64_t)hv_hypercall(v, run->xen.u.hcall.input, args);
        }
        break;
    case KVM_EXIT_IO:
        handle_io(v, run);
        break;
    case KVM_EXIT_MMIO: /* no memory there: reads see ones, writes vanish */
        if (!run->mmio.is_write)
            memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
        if (v->stats.mmio == 1) /* the first of each vCPU: bounded */
            dinfo("dom%u vcpu%u: %s of %u bytes at gpa %#llx, where there is no memory",
                  v->d->domid, v->id, run->mmio.is_write ? "write" : "read",
                  run->mmio.len, (unsigned long long)run->mmio.phys_addr);
        break;
    case KVM_EXIT_SHUTDOWN:
        dinfo("dom%u vcpu%u: triple fault: treated as reboot", v->d->domid, v->id);
        log_cpu_state(v);
        domain_shutdown(v->d, SHUTDOWN_reboot);
        break;
    case KVM_EXIT_HLT:
        break;
    default:
        derr("dom%u vcpu%u: unhandled KVM exit %u: domain crashed", v->d->domid, v->id,
             run->exit_reason);
        domain_shutdown(v->d, SHUTDOWN_crash);
        break;
    }
}

/* The last exit still owes the guest its completion (an I/O read's data, a
 * hypercall's result in %rax and the step past the instruction), which KVM
 * applies at the next KVM_RUN: see complete_exit. */
static __thread bool exit_incomplete;

static bool exit_needs_completion(const struct kvm_run *run)
{
    return run->exit_reason == KVM_EXIT_XEN || run->exit_reason == KVM_EXIT_IO ||
           run->exit_reason == KVM_EXIT_MMIO;
}

/* Completes the last exit without running the guest (KVM_RUN with
 * immediate_exit, as KVM's API document says to do before reading the
 * state), so that a parked vCPU's registers are whole: a suspending vCPU's
 * %rax holds its hypercall's 0 and its %rip is past the call. */
static void complete_exit(struct vcpu *v)
{
    struct kvm_run *run = v->run;

    if (!exit_incomplete)
        return;
    run->immediate_exit = 1;
    if (ioctl(v->fd, KVM_RUN, 0) == 0 || (errno != EINTR && errno != EAGAIN))
        dwarn("dom%u vcpu%u: completing the last exit: KVM_RUN did not return EINTR",
              v->d->domid, v->id);
    run->immediate_exit = 0;
    exit_incomplete = false;
}

/* What a thread parked in the gate does first and at every wake-up. */
static void serve_call(void *arg)
{
    struct vcpu *v = arg;

    complete_exit(v);
    vcpu_serve_calls(v);
}

/* A vCPU the guest took down (VCPUOP_down) waits here, a millisecond at a
 * time, until it is up again; kicks cut the wait short. */
static void down_wait(struct vcpu *v)
{
    struct timespec ts = {0, 1000000};

    complete_exit(v);
    nanosleep(&ts, NULL);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    struct kvm_run *run = v->run;
    vcpu_current = v;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, HV_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    while (domain_running(v->d)) {
        vcpu_serve_calls(v);
        vcpu_gate_park(&priv(v->d)->gate, serve_call, v);
        if (!domain_running(v->d))
            break;
        if (atomic_load(&v->down)) {
            down_wait(v);
            continue;
        }
        exit_incomplete = false;
        int rc = ioctl(v->fd, KVM_RUN, 0);
        run->immediate_exit = 0;
        if (rc < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            derr("dom%u vcpu%u: KVM_RUN: %s", v->d->domid, v->id, strerror(errno));
            domain_shutdown(v->d, SHUTDOWN_crash);
            break;
        }
        handle_exit(v, run);
        exit_incomplete = exit_needs_completion(run);
    }
    vcpu_calls_end(v);
    log_exits(v);
    vcpu_gate_leave(&priv(v->d)->gate);
    return NULL;
}

int kvm_domain_start(struct domain *d)
{
    struct sigaction sa = {.sa_handler = kick_handler};
    sigemptyset(&sa.sa_mask);
    sigaction(HV_KICK_SIGNAL, &sa, NULL);
    /* Only vCPU threads take the kick signal. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, HV_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        struct vcpu *v = &d->vcpus[i];
        vcpu_gate_enter(&priv(d)->gate);
        int rc = pthread_create(&v->thread, NULL, vcpu_thread, v);
        if (rc != 0) {
            vcpu_gate_leave(&priv(d)->gate);
            domain_shutdown(d, SHUTDOWN_crash);
            return -rc;
        }
        v->thread_started = true;
        char name[16]; /* domusd finds the vCPU threads by this name (dsd_sched.c) */
        dfmt(name, sizeof(name), "vcpu%u", i);
        pthread_setname_np(v->thread, name);
    }
    return 0;
}

static void kick_all(void *arg)
{
    struct domain *d = arg;
    for (unsigned i = 0; i < d->nr_vcpus; i++)
        if (d->vcpus[i].thread_started) {
            pthread_kill(d->vcpus[i].thread, HV_KICK_SIGNAL);
            sched_wake(&d->vcpus[i]);
        }
}

void kvm_domain_pause(struct domain *d, bool pause)
{
    atomic_store(&d->paused, pause);
    if (!priv(d))
        return;
    if (pause)
        vcpu_gate_pause(&priv(d)->gate, kick_all, d);
    else
        vcpu_gate_unpause(&priv(d)->gate);
}

static int set_rax_fn(struct vcpu *v, void *arg)
{
    struct kvm_regs r;

    if (ioctl(v->fd, KVM_GET_REGS, &r) < 0)
        return -errno;
    r.rax = *(uint64_t *)arg;
    return ioctl(v->fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}

int kvm_domain_resume(struct domain *d, uint64_t value, bool run)
{
    struct vcpu *v = &d->vcpus[atomic_load(&d->suspend_vcpu) % d->nr_vcpus];
    int rc = 0;

    if (!atomic_load(&d->suspended))
        return -EINVAL;
    kvm_domain_pause(d, true); /* every vCPU parked, its last exit completed */
    if (priv(d))
        rc = vcpu_call(v, set_rax_fn, &value);
    if (rc < 0) {
        derr("dom%u: resuming vcpu%u with %llu: %s", d->domid, v->id,
             (unsigned long long)value, strerror(-rc));
        return rc;
    }
    atomic_store(&d->suspended, false);
    if (run)
        kvm_domain_pause(d, false);
    return 0;
}

void kvm_domain_stop(struct domain *d)
{
    domain_shutdown(d, SHUTDOWN_poweroff); /* no-op if a reason is already set */
    if (priv(d))
        vcpu_gate_stop(&priv(d)->gate);
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        struct vcpu *v = &d->vcpus[i];
        if (!v->thread_started)
            continue;
        /* Kick until the thread leaves KVM_RUN and sees the shutdown. */
        struct timespec ts = {0, 1000000};
        while (pthread_tryjoin_np(v->thread, NULL) == EBUSY) {
            pthread_kill(v->thread, HV_KICK_SIGNAL);
            nanosleep(&ts, NULL);
        }
        v->thread_started = false;
    }
}

void kvm_domain_destroy(struct domain *d)
{
    kvm_domain_stop(d);
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        struct vcpu *v = &d->vcpus[i];
        if (v->run)
            munmap(v->run, v->run_size);
        if (v->fd >= 0)
            close(v->fd);
        v->run = NULL;
        v->fd = -1;
    }
    struct kvm_priv *p = priv(d);
    if (p) {
        if (p->vm_fd >= 0)
            close(p->vm_fd);
        if (p->kvm_fd >= 0)
            close(p->kvm_fd);
        vcpu_gate_destroy(&p->gate);
        free(p);
        d->priv = NULL;
    }
}

uint64_t kvm_domain_cputime_ns(struct domain *d)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        clockid_t cid;
        struct timespec ts;
        if (d->vcpus[i].thread_started &&
            pthread_getcpuclockid(d->vcpus[i].thread, &cid) == 0 &&
            clock_gettime(cid, &ts) == 0)
            total += (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    }
    return total;
}

/* ---- save and restore (kvm.h) ---- */

/* The MSRs KVM lists for save and restore (KVM_GET_MSR_INDEX_LIST). */
static int msr_index_list(struct domain *d, struct kvm_msr_list **out)
{
    struct kvm_msr_list probe = {.nmsrs = 0};
    if (ioctl(priv(d)->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
        return -errno;
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
    if (!l)
        return -ENOMEM;
    l->nmsrs = probe.nmsrs;
    if (ioctl(priv(d)->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
        free(l);
        return -errno;
    }
    *out = l;
    return 0;
}

/* Not state: Xen's hypercall-page MSR (which KVM's list names as Hyper-V's
 * guest OS ID, 0x40000000) reads as 0, and a write of 0 makes KVM write
 * hypercall stubs over the guest's page 0.  The page the guest asked for
 * is in its memory already. */
static bool msr_is_state(uint32_t index)
{
    return index != XEN_HYPERCALL_MSR;
}

/* Those of list that KVM_GET_MSRS gives for v, one at a time: the list
 * names MSRs a given vCPU's CPUID may not have. */
static int get_msrs(struct vcpu *v, struct simg_vcpu *s, const struct kvm_msr_list *list)
{
    union { /* a kvm_msrs with room for one entry */
        struct kvm_msrs h;
        uint8_t raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } m;
    s->nr_msrs = 0;
    for (uint32_t i = 0; i < list->nmsrs && s->nr_msrs < SIMG_MAX_MSRS; i++) {
        if (!msr_is_state(list->indices[i]))
            continue;
        memset(&m, 0, sizeof(m));
        m.h.nmsrs = 1;
        m.h.entries[0].index = list->indices[i];
        if (ioctl(v->fd, KVM_GET_MSRS, &m) == 1)
            s->msrs[s->nr_msrs++] = m.h.entries[0];
    }
    return 0;
}

struct vcpu_state_arg {
    struct simg_vcpu *s;
    const struct kvm_msr_list *msrs;
};

static int tsc_offset_attr(struct vcpu *v, unsigned long req, uint64_t *offset)
{
    struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL,
                                .attr = KVM_VCPU_TSC_OFFSET,
                                .addr = (uint64_t)(uintptr_t)offset};
    return ioctl(v->fd, req, &a) < 0 ? -errno : 0;
}

static int vcpu_save_fn(struct vcpu *v, void *arg)
{
    struct vcpu_state_arg *a = arg;
    struct simg_vcpu *s = a->s;
    if (ioctl(v->fd, KVM_GET_REGS, &s->regs) < 0 ||
        ioctl(v->fd, KVM_GET_SREGS, &s->sregs) < 0 ||
        ioctl(v->fd, KVM_GET_XSAVE, s->xsave) < 0 ||
        ioctl(v->fd, KVM_GET_XCRS, &s->xcrs) < 0 ||
        ioctl(v->fd, KVM_GET_LAPIC, &s->lapic) < 0 ||
        ioctl(v->fd, KVM_GET_VCPU_EVENTS, &s->events) < 0 ||
        ioctl(v->fd, KVM_GET_MP_STATE, &s->mp_state) < 0)
        return -errno;
    return get_msrs(v, s, a->msrs)
               ?: tsc_offset_attr(v, KVM_GET_DEVICE_ATTR, &s->tsc_offset);
}

int kvm_vcpu_save(struct vcpu *v, struct simg_vcpu *s)
{
    struct kvm_msr_list *list = NULL;
    int rc = msr_index_list(v->d, &list);
    if (rc)
        return rc;
    struct vcpu_state_arg a = {s, list};
    rc = vcpu_call(v, vcpu_save_fn, &a);
    free(list);
    return rc;
}

static int set_msrs(struct vcpu *v, const struct simg_vcpu *s)
{
    struct kvm_msrs *m = calloc(1, sizeof(*m) + s->nr_msrs * sizeof(m->entries[0]));
    if (!m)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->nr_msrs; i++) /* an older image has it */
        if (msr_is_state(s->msrs[i].index))
            m->entries[m->nmsrs++] = s->msrs[i];
    int n = ioctl(v->fd, KVM_SET_MSRS, m);
    int rc = n < 0 ? -errno : (uint32_t)n != m->nmsrs ? -EINVAL : 0;
    if (rc == -EINVAL)
        dwarn("vcpu%u: KVM took %d of %u MSRs, refusing %#x", v->id, n, m->nmsrs,
              m->entries[n].index);
    free(m);
    return rc;
}

/* QEMU's order: registers, XSAVE, XCRs, sregs, MSRs, mp_state before the
 * LAPIC, events; the TSC offset last (writing MSR_IA32_TSC moves it). */
static int vcpu_load_fn(struct vcpu *v, void *arg)
{
    struct simg_vcpu *s = ((struct vcpu_state_arg *)arg)->s;
    if (ioctl(v->fd, KVM_SET_REGS, &s->regs) < 0 ||
        ioctl(v->fd, KVM_SET_XSAVE, s->xsave) < 0 ||
        ioctl(v->fd, KVM_SET_XCRS, &s->xcrs) < 0 ||
        ioctl(v->fd, KVM_SET_SREGS, &s->sregs) < 0)
        return -errno;
    int rc = set_msrs(v, s);
    if (rc)
        return rc;
    if (ioctl(v->fd, KVM_SET_MP_STATE, &s->mp_state) < 0 ||
        ioctl(v->fd, KVM_SET_LAPIC, &s->lapic) < 0 ||
        ioctl(v->fd, KVM_SET_VCPU_EVENTS, &s->events) < 0)
        return -errno;
    return tsc_offset_attr(v, KVM_SET_DEVICE_ATTR, &s->tsc_offset);
}

int kvm_vcpu_load(struct vcpu *v, const struct simg_vcpu *s)
{
    struct vcpu_state_arg a = {(struct simg_vcpu *)s, NULL};
    return vcpu_call(v, vcpu_load_fn, &a);
}

int kvm_clock_save(struct domain *d, struct simg_clock *c)
{
    struct kvm_clock_data k = {0};
    if (ioctl(priv(d)->vm_fd, KVM_GET_CLOCK, &k) < 0)
        return -errno;
    int khz = ioctl(d->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
    if (khz <= 0)
        return khz < 0 ? -errno : -EINVAL;
    *c = (struct simg_clock){k.clock, k.flags, (uint32_t)khz};
    return 0;
}

/* The TSC frequency of every vCPU, then the clock: before the vCPUs' TSC
 * offsets (kvm_vcpu_load). */
int kvm_clock_load(struct domain *d, const struct simg_clock *c)
{
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        int khz = ioctl(d->vcpus[i].fd, KVM_GET_TSC_KHZ, 0);
        if (khz != (int)c->tsc_khz &&
            ioctl(d->vcpus[i].fd, KVM_SET_TSC_KHZ, (unsigned long)c->tsc_khz) < 0)
            return -errno;
    }
    struct kvm_clock_data k = {.clock = c->clock_ns};
    return ioctl(priv(d)->vm_fd, KVM_SET_CLOCK, &k) < 0 ? -errno : 0;
}
