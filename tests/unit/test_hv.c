/* Unit tests of the hypervisor core without /dev/kvm: guest memory
 * translation, hypercall dispatch, event channels, grant table, CPUID.
 * KVM is replaced by fake hv_ops that record what would have been done;
 * guest-virtual addresses translate 1:1 to guest-physical. */
#include "domus/hv.h"
#include "domus/kvm.h"
#include "domus/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xen/features.h>
#include <xen/hvm/hvm_op.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>

#include "check.h"

/* ---- fake KVM ---- */

static struct {
    unsigned delivered, last_port, last_vcpu;
    unsigned routes_local, routes_removed, timer_port;
    uint64_t shinfo_gfn;
    uint8_t upcall_vector;
} fk;

static int f_shinfo(struct domain *d, uint64_t gfn)
{
    (void)d;
    fk.shinfo_gfn = gfn;
    return 0;
}
static int f_gpa(struct vcpu *v, uint64_t gpa)
{
    (void)v;
    (void)gpa;
    return 0;
}
static int f_vec(struct vcpu *v, uint8_t vec)
{
    (void)v;
    fk.upcall_vector = vec;
    return 0;
}
static int f_gvec(struct domain *d, uint8_t vec)
{
    (void)d;
    (void)vec;
    return 0;
}
/* set_timer waits for the target vCPU's thread (vcpu_call), which may be
 * waiting for d->lock: it must never be called with d->lock held. */
static unsigned timer_under_lock;
static int f_timer(struct vcpu *v, uint32_t port, uint64_t ns)
{
    (void)ns;
    if (pthread_mutex_trylock(&v->d->lock) == 0)
        pthread_mutex_unlock(&v->d->lock);
    else
        timer_under_lock++;
    fk.timer_port = port;
    return 0;
}
static int f_deliver(struct domain *d, uint32_t port, uint32_t vcpu)
{
    (void)d;
    fk.delivered++;
    fk.last_port = port;
    fk.last_vcpu = vcpu;
    return 0;
}
static int f_route_local(struct domain *d, uint32_t p, uint32_t t, uint32_t v)
{
    (void)d, (void)p, (void)t, (void)v;
    fk.routes_local++;
    return 0;
}
static int f_route_fd(struct domain *d, uint32_t p, int fd)
{
    (void)d, (void)p, (void)fd;
    return 0;
}
static int f_route_rm(struct domain *d, uint32_t p)
{
    (void)d, (void)p;
    fk.routes_removed++;
    return 0;
}
static unsigned extra_maps, extra_unmaps;
static uint64_t extra_refused; /* a gpa where map_extra fails (KVM out of slots) */
static int f_map_extra(struct domain *d, unsigned i, uint64_t gpa, void *h)
{
    (void)d, (void)i;
    if (!gpa) {
        extra_unmaps += h == NULL;
        return h ? -EINVAL : 0;
    }
    if (gpa == extra_refused)
        return -ENOSPC;
    extra_maps++;
    return 0;
}
static int f_translate(struct vcpu *v, uint64_t gva, uint64_t *gpa)
{
    (void)v;
    *gpa = gva;
    return 0;
}

static int suspended_vcpu = -1, time_area_set;
static uint64_t time_area_gpa;
static void f_suspend(struct vcpu *v)
{
    suspended_vcpu = (int)v->id;
}
static int f_time_area(struct vcpu *v, uint64_t gpa)
{
    (void)v;
    time_area_set++;
    time_area_gpa = gpa;
    return 0;
}

static const struct hv_ops fake_ops = {
    .set_shared_info = f_shinfo,
    .set_vcpu_info = f_gpa,
    .set_vcpu_time_info = f_time_area,
    .set_runstate = f_gpa,
    .set_upcall_vector = f_vec,
    .set_global_upcall_vector = f_gvec,
    .set_timer = f_timer,
    .deliver = f_deliver,
    .route_local = f_route_local,
    .route_eventfd = f_route_fd,
    .route_remove = f_route_rm,
    .map_extra = f_map_extra,
    .translate = f_translate,
    .suspend = f_suspend,
    /* kick: HV_KICK_SIGNAL; now_ns: CLOCK_MONOTONIC; timer_expiry:
     * singleshot_ns; set_runstate_update_flag: nothing to tell */
};

static struct domain *dom;
#define ARG 0x10000ULL    /* scratch area for hypercall arguments */
#define SHINFO 0x20000ULL /* shared_info page */

static int64_t hcall(unsigned nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
    uint64_t a[6] = {a0, a1, a2, 0, 0, 0};
    return hv_hypercall(&dom->vcpus[0], nr, a);
}

static void put(const void *p, size_t n)
{
    gmem_write(&dom->mem, ARG, p, n);
}
static void get(void *p, size_t n)
{
    gmem_read(&dom->mem, ARG, p, n);
}

static void setup(unsigned vcpus)
{
    if (dom) {
        gmem_destroy(&dom->mem);
        free(dom);
    }
    dom = calloc(1, sizeof(*dom));
    domain_init(dom, 5, "t", vcpus, &fake_ops);
    if (gmem_init(&dom->mem, 64ULL << 20) < 0)
        abort();
    memset(&fk, 0, sizeof(fk));
}

/* ---- gmem ---- */

static void test_gmem(void)
{
    struct gmem m;
    CHECK("gmem rejects tiny RAM", gmem_init(&m, 4096) == -EINVAL);
    CHECK("gmem rejects unaligned RAM", gmem_init(&m, (64ULL << 20) + 1) == -EINVAL);
    if (gmem_init(&m, 3584ULL << 20) < 0) {
        CHECK("gmem 3.5 GiB init", 0);
        return;
    }
    CHECK("gmem low RAM split at 3 GiB",
          m.low_end == GMEM_LOW_LIMIT && m.high_size == 512ULL << 20);
    CHECK("gmem first byte", gmem_ptr(&m, 0, 1) == m.host);
    CHECK("gmem last low byte", gmem_ptr(&m, GMEM_LOW_LIMIT - 1, 1) != NULL);
    CHECK("gmem range crossing low end", gmem_ptr(&m, GMEM_LOW_LIMIT - 1, 2) == NULL);
    CHECK("gmem hole", gmem_ptr(&m, GMEM_LOW_LIMIT, 1) == NULL);
    CHECK("gmem high RAM", gmem_ptr(&m, GMEM_HIGH_BASE, 4096) == m.host + GMEM_LOW_LIMIT);
    CHECK("gmem beyond high RAM",
          gmem_ptr(&m, GMEM_HIGH_BASE + (512ULL << 20), 1) == NULL);
    CHECK("gmem special page",
          gmem_ptr(&m, GMEM_SPECIAL_BASE, 4096) == m.host + m.ram_size);
    CHECK("gmem overflowing length", gmem_ptr(&m, 16, UINT64_MAX - 8) == NULL);
    CHECK("gmem overflowing address", gmem_ptr(&m, UINT64_MAX - 1, 4) == NULL);
    CHECK("gmem zero length", gmem_ptr(&m, 0, 0) == NULL);
    char b[8];
    CHECK("gmem_read outside is -EFAULT", gmem_read(&m, GMEM_LOW_LIMIT, b, 8) == -EFAULT);
    gmem_destroy(&m);
}

/* ---- hypercalls ---- */

static void test_dispatch(void)
{
    setup(2);
    CHECK("xen_version is 4.17",
          hcall(__HYPERVISOR_xen_version, XENVER_version, 0, 0) == ((4 << 16) | 17));
    xen_feature_info_t fi = {.submap_idx = 0};
    put(&fi, sizeof(fi));
    hcall(__HYPERVISOR_xen_version, XENVER_get_features, ARG, 0);
    get(&fi, sizeof(fi));
    CHECK("features: hvm_safe_pvclock and callback vector",
          (fi.submap & (1U << XENFEAT_hvm_safe_pvclock)) &&
              (fi.submap & (1U << XENFEAT_hvm_callback_vector)) &&
              (fi.submap & (1U << XENFEAT_auto_translated_physmap)));
    CHECK("unknown hypercall is -ENOSYS", hcall(200, 0, 0, 0) == -ENOSYS);
    CHECK("unknown hypercall in table range is -ENOSYS",
          hcall(__HYPERVISOR_mmu_update, 0, 0, 0) == -ENOSYS);
    CHECK("unknown sub-op is -ENOSYS",
          hcall(__HYPERVISOR_memory_op, 999, ARG, 0) == -ENOSYS);
    CHECK("argument outside guest memory is -EFAULT",
          hcall(__HYPERVISOR_xen_version, XENVER_get_features, 0xF0000000ULL, 0) ==
              -EFAULT);
    CHECK("argument straddling the end of RAM is -EFAULT",
          hcall(__HYPERVISOR_xen_version, XENVER_get_features, (64ULL << 20) - 4, 0) ==
              -EFAULT);
}

/* A guest looping on unsupported hypercalls and console writes: Domain 0's
 * log (domus-vm's stderr) must stay bounded.  stderr goes to a file here. */
static void test_log_flood(void)
{
    setup(2);
    char path[] = "/tmp/domus-test-hv-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    if (fd < 0 || saved < 0)
        abort();
    fflush(stderr);
    dup2(fd, 2);
    static char text[4096];
    memset(text, 'x', sizeof(text));
    put(text, sizeof(text));
    int64_t rc_write = 0, rc_unknown = 0;
    for (unsigned i = 0; i < 100000; i++) {
        rc_unknown |= hcall(200 + i % 50, i, 0, 0) + ENOSYS;
        /* op 63 (cmd's low 6 bits, as Xen reads them) is no memory_op */
        rc_unknown |=
            hcall(__HYPERVISOR_memory_op, 63 | (uint64_t)i << 6, ARG, 0) + ENOSYS;
    }
    for (unsigned i = 0; i < 20000; i++)
        rc_write |=
            hcall(__HYPERVISOR_console_io, CONSOLEIO_write, sizeof(text), ARG) + EPERM;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    off_t bytes = fstat(fd, &st) == 0 ? st.st_size : -1;
    close(fd);
    unlink(path);
    printf("log flood: 200000 unsupported hypercalls, 20000 console writes: %lld log "
           "bytes\n",
           (long long)bytes);
    CHECK("flood: unsupported calls still -ENOSYS", rc_unknown == 0);
    CHECK("flood: CONSOLEIO_write refused to a domU, as release Xen does (-EPERM)",
          rc_write == 0);
    CHECK("flood: the log stays bounded (rate limit: 10 lines per 5 s)",
          bytes >= 0 && bytes < 4096);
}

static void map_shared_info(void)
{
    struct xen_add_to_physmap x = {.domid = DOMID_SELF,
                                   .space = XENMAPSPACE_shared_info,
                                   .idx = 0,
                                   .gpfn = SHINFO >> 12};
    put(&x, sizeof(x));
    hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0);
}

static void test_memory_op(void)
{
    setup(1);
    map_shared_info();
    CHECK("shared_info mapped",
          dom->shared_info_gpa == SHINFO && fk.shinfo_gfn == SHINFO >> 12);
    struct xen_add_to_physmap x = {
        .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info, .gpfn = 0xFFFFFFFFFULL};
    put(&x, sizeof(x));
    CHECK("shared_info outside RAM is -EINVAL",
          hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0) == -EINVAL);
    x = (struct xen_add_to_physmap){
        .domid = 7, .space = XENMAPSPACE_shared_info, .gpfn = 0x30};
    put(&x, sizeof(x));
    CHECK("add_to_physmap for another domain is -ESRCH",
          hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0) == -ESRCH);
    x = (struct xen_add_to_physmap){
        .domid = DOMID_SELF, .space = XENMAPSPACE_grant_table, .idx = 1000, .gpfn = 0x30};
    put(&x, sizeof(x));
    CHECK("grant frame index beyond maximum is -EINVAL",
          hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0) == -EINVAL);
    x = (struct xen_add_to_physmap){
        .domid = DOMID_SELF, .space = XENMAPSPACE_grant_table, .idx = 1, .gpfn = 0xF0000};
    put(&x, sizeof(x));
    CHECK("grant frame outside RAM gets an extra page",
          hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0) == 0 &&
              extra_maps == 1 && gmem_ptr(&dom->mem, 0xF0000000ULL, 4096) != NULL);
    x.idx = 2;
    x.gpfn = 0xF0000;
    put(&x, sizeof(x));
    CHECK("second frame cannot overlap the first",
          hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0) == -EINVAL);
    /* A move KVM refuses: the frame stays where it was, content and all. */
    memcpy(gmem_ptr(&dom->mem, 0xF0000000ULL, 8), "grants!", 8);
    extra_refused = 0xF0001000ULL;
    x = (struct xen_add_to_physmap){
        .domid = DOMID_SELF, .space = XENMAPSPACE_grant_table, .idx = 1, .gpfn = 0xF0001};
    put(&x, sizeof(x));
    CHECK("grant frame move refused by KVM fails",
          hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0) == -ENOSPC);
    const char *kept = gmem_ptr(&dom->mem, 0xF0000000ULL, 8);
    CHECK("... and leaves the frame where it was, content and all",
          kept && !memcmp(kept, "grants!", 8) && !gmem_ptr(&dom->mem, 0xF0001000ULL, 1) &&
              dom->gnt_frame_gpa[1] == 0xF0000000ULL);
    extra_refused = 0;
    /* From an extra page onto RAM: the extra page leaves both maps. */
    x = (struct xen_add_to_physmap){
        .domid = DOMID_SELF, .space = XENMAPSPACE_grant_table, .idx = 1, .gpfn = 0x40};
    put(&x, sizeof(x));
    CHECK("grant frame moved from an extra page onto RAM",
          hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0) == 0 &&
              dom->gnt_frame_gpa[1] == 0x40000ULL);
    CHECK("... leaves no extra page placed where it was",
          !gmem_ptr(&dom->mem, 0xF0000000ULL, 1) && extra_unmaps == 1 &&
              gmem_region_gpa(&dom->mem, GMEM_REGION_EXTRA + 1) == 0);
    domid_t self = DOMID_SELF;
    put(&self, sizeof(self));
    CHECK("current_reservation in pages",
          hcall(__HYPERVISOR_memory_op, XENMEM_current_reservation, ARG, 0) ==
              (64 << 20) / 4096);
}

static void test_hvm_op(void)
{
    setup(2);
    dom->hvm_params[HVM_PARAM_CONSOLE_EVTCHN] = 3;
    struct xen_hvm_param p = {.domid = DOMID_SELF, .index = HVM_PARAM_CONSOLE_EVTCHN};
    put(&p, sizeof(p));
    hcall(__HYPERVISOR_hvm_op, HVMOP_get_param, ARG, 0);
    get(&p, sizeof(p));
    CHECK("get_param returns toolstack value", p.value == 3);
    p.value = 9;
    put(&p, sizeof(p));
    CHECK("guest cannot set console param",
          hcall(__HYPERVISOR_hvm_op, HVMOP_set_param, ARG, 0) == -EPERM);
    p.index = HVM_NR_PARAMS + 5;
    put(&p, sizeof(p));
    CHECK("param index out of range is -EINVAL",
          hcall(__HYPERVISOR_hvm_op, HVMOP_get_param, ARG, 0) == -EINVAL);
    struct xen_hvm_evtchn_upcall_vector uv = {.vcpu = 1, .vector = 0xf3};
    put(&uv, sizeof(uv));
    CHECK("per-vCPU upcall vector set",
          hcall(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, ARG, 0) == 0 &&
              fk.upcall_vector == 0xf3);
    uv.vcpu = 9;
    put(&uv, sizeof(uv));
    CHECK("upcall vector for missing vCPU is -ENOENT",
          hcall(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, ARG, 0) == -ENOENT);
}

static void test_sched_vcpu(void)
{
    setup(2);
    struct sched_shutdown sd = {.reason = 99};
    put(&sd, sizeof(sd));
    CHECK("shutdown with bad reason is -EINVAL",
          hcall(__HYPERVISOR_sched_op, SCHEDOP_shutdown, ARG, 0) == -EINVAL);
    sd.reason = SHUTDOWN_crash;
    put(&sd, sizeof(sd));
    hcall(__HYPERVISOR_sched_op, SCHEDOP_shutdown, ARG, 0);
    sd.reason = SHUTDOWN_poweroff;
    put(&sd, sizeof(sd));
    hcall(__HYPERVISOR_sched_op, SCHEDOP_shutdown, ARG, 0);
    CHECK("first shutdown reason wins",
          atomic_load(&dom->shutdown_reason) == SHUTDOWN_crash);
    CHECK("vcpu_op on missing vCPU is -ENOENT",
          hcall(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 7, 0) == -ENOENT);
    struct vcpu_register_vcpu_info r = {.mfn = 0x40, .offset = 4090};
    put(&r, sizeof(r));
    CHECK("vcpu_info crossing a page is -EINVAL",
          hcall(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 1, ARG) == -EINVAL);
    r = (struct vcpu_register_vcpu_info){.mfn = (1ULL << 52) + 0x40, .offset = 64};
    put(&r, sizeof(r));
    CHECK("vcpu_info at a frame number that wraps when shifted is -EINVAL",
          hcall(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 1, ARG) == -EINVAL &&
              dom->vcpus[1].vcpu_info_gpa == 0);
    r.mfn = 0x40;
    put(&r, sizeof(r));
    CHECK("vcpu_info registered",
          hcall(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 1, ARG) == 0 &&
              dom->vcpus[1].vcpu_info_gpa == 0x40040);
}

/* SHUTDOWN_suspend parks instead of ending; is_up/down/up; time area 0. */
static void test_suspend_updown(void)
{
    setup(3);
    dom->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct sched_shutdown sd = {.reason = SHUTDOWN_suspend};
    uint64_t n = 0;
    put(&sd, sizeof(sd));
    suspended_vcpu = -1;
    CHECK("suspend returns 0 (what a restored domain sees)",
          hv_hypercall(&dom->vcpus[1], __HYPERVISOR_sched_op,
                       (uint64_t[6]){SCHEDOP_shutdown, ARG}) == 0);
    CHECK("suspend is recorded, by its vCPU, and stops the vCPUs",
          atomic_load(&dom->suspended) && atomic_load(&dom->suspend_vcpu) == 1 &&
              suspended_vcpu == 1);
    CHECK("suspend does not end the domain", atomic_load(&dom->shutdown_reason) < 0);
    CHECK("suspend signals the event fd",
          read(dom->event_fd, &n, sizeof(n)) == sizeof(n) && n == 1);
    CHECK("a second suspend meanwhile is -EBUSY",
          hcall(__HYPERVISOR_sched_op, SCHEDOP_shutdown, ARG, 0) == -EBUSY &&
              atomic_load(&dom->suspend_vcpu) == 1);
    atomic_store(&dom->suspended, false);
    close(dom->event_fd);
    dom->event_fd = -1;

    CHECK("a vCPU is up", hcall(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 2, 0) == 1);
    CHECK("down", hcall(__HYPERVISOR_vcpu_op, VCPUOP_down, 2, 0) == 0 &&
                      atomic_load(&dom->vcpus[2].down));
    CHECK("a down vCPU is not up", hcall(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 2, 0) == 0);
    CHECK("down twice is fine", hcall(__HYPERVISOR_vcpu_op, VCPUOP_down, 2, 0) == 0);
    CHECK("up", hcall(__HYPERVISOR_vcpu_op, VCPUOP_up, 2, 0) == 0 &&
                    hcall(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 2, 0) == 1);
    hcall(__HYPERVISOR_vcpu_op, VCPUOP_down, 1, 0);
    hcall(__HYPERVISOR_vcpu_op, VCPUOP_down, 2, 0);
    CHECK("two of three down, domain running", atomic_load(&dom->shutdown_reason) < 0);
    CHECK("the last vCPU going down powers off, as on Xen",
          hcall(__HYPERVISOR_vcpu_op, VCPUOP_down, 0, 0) == 0 &&
              atomic_load(&dom->shutdown_reason) == SHUTDOWN_poweroff &&
              !atomic_load(&dom->vcpus[0].down));

    uint64_t gva = 0x40000;
    put(&gva, sizeof(gva));
    time_area_set = 0;
    CHECK("time area registered",
          hcall(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_time_memory_area, 1, ARG) ==
                  0 &&
              dom->vcpus[1].time_info_gpa == 0x40000 && time_area_gpa == 0x40000);
    gva = 0;
    put(&gva, sizeof(gva));
    CHECK("time area at address 0 unregisters (Linux before a suspend)",
          hcall(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_time_memory_area, 1, ARG) ==
                  0 &&
              dom->vcpus[1].time_info_gpa == 0 && time_area_gpa == HV_GPA_NONE &&
              time_area_set == 2);
}

/* ---- event channels ---- */

static int64_t evtchn(unsigned cmd, void *arg, size_t size)
{
    put(arg, size);
    int64_t rc = hcall(__HYPERVISOR_event_channel_op, cmd, ARG, 0);
    get(arg, size);
    return rc;
}

/* After a restore: re-bound VIRQs and IPIs get their old ports back, and
 * the masks in the restored shared_info page are kept at its new mapping. */
static void test_evtchn_resume(void)
{
    setup(2);
    struct evtchn *t = calloc(HV_NR_PORTS, sizeof(*t));
    t[7] = (struct evtchn){.state = EVS_VIRQ, .vcpu = 1, .virq = VIRQ_TIMER};
    t[9] = (struct evtchn){.state = EVS_IPI, .vcpu = 1};
    t[11] = (struct evtchn){.state = EVS_IPI, .vcpu = 1};
    t[13] = (struct evtchn){.state = EVS_UNBOUND};
    CHECK("resume hints set", evtchn_resume_set(dom, t) == 0);
    free(t);
    struct shared_info *si = gmem_ptr(&dom->mem, SHINFO, sizeof(*si));
    memset(si, 0, sizeof(*si));
    si->evtchn_mask[0] = 1UL << 11;
    si->evtchn_pending[0] = 1UL << 9;
    map_shared_info();
    CHECK("shared_info mapped again: the masks kept, pending cleared",
          si->evtchn_mask[0] == 1UL << 11 && si->evtchn_pending[0] == 0);
    si->evtchn_mask[0] = 1UL << 5;
    map_shared_info();
    CHECK("masks are kept once only", si->evtchn_mask[0] == 0);
    struct evtchn_bind_ipi bi = {.vcpu = 0};
    CHECK("an IPI of a vCPU without hints gets the lowest free port",
          evtchn(EVTCHNOP_bind_ipi, &bi, sizeof(bi)) == 0 && bi.port == 1);
    for (int i = 0; i < 5; i++)
        evtchn(EVTCHNOP_bind_ipi, &bi, sizeof(bi));
    CHECK("other bindings skip the ports kept for re-binding (2..6, then 8)",
          evtchn(EVTCHNOP_bind_ipi, &bi, sizeof(bi)) == 0 && bi.port == 8);
    struct evtchn_bind_virq bv = {.virq = VIRQ_TIMER, .vcpu = 1};
    CHECK("the timer VIRQ of vCPU 1 gets its old port 7",
          evtchn(EVTCHNOP_bind_virq, &bv, sizeof(bv)) == 0 && bv.port == 7);
    bi.vcpu = 1;
    CHECK("vCPU 1's IPIs get 9, then 11",
          evtchn(EVTCHNOP_bind_ipi, &bi, sizeof(bi)) == 0 && bi.port == 9 &&
              evtchn(EVTCHNOP_bind_ipi, &bi, sizeof(bi)) == 0 && bi.port == 11);
    CHECK("then the lowest free port (hints used up; unbound ones are no hints)",
          evtchn(EVTCHNOP_bind_ipi, &bi, sizeof(bi)) == 0 && bi.port == 10);
    evtchn_resume_free(dom);
    CHECK("hints freed", !dom->resume_ports && !dom->resume_masks);
}

static void test_evtchn_basic(void)
{
    setup(2);
    map_shared_info();
    struct evtchn_alloc_unbound au = {.dom = DOMID_SELF, .remote_dom = DOMID_SELF};
    CHECK("alloc_unbound",
          evtchn(EVTCHNOP_alloc_unbound, &au, sizeof(au)) == 0 && au.port == 1);
    struct evtchn_bind_interdomain bi = {.remote_dom = DOMID_SELF,
                                         .remote_port = au.port};
    CHECK("bind_interdomain loopback",
          evtchn(EVTCHNOP_bind_interdomain, &bi, sizeof(bi)) == 0 && bi.local_port == 2 &&
              fk.last_port == 2);
    struct evtchn_send s = {.port = bi.local_port};
    fk.delivered = 0;
    CHECK("send over loopback reaches the other end",
          evtchn(EVTCHNOP_send, &s, sizeof(s)) == 0 && fk.delivered == 1 &&
              fk.last_port == au.port);
    struct evtchn_status st = {.dom = DOMID_SELF, .port = au.port};
    CHECK("status interdomain", evtchn(EVTCHNOP_status, &st, sizeof(st)) == 0 &&
                                    st.status == EVTCHNSTAT_interdomain &&
                                    st.u.interdomain.port == bi.local_port);
    struct evtchn_close c = {.port = bi.local_port};
    evtchn(EVTCHNOP_close, &c, sizeof(c));
    evtchn(EVTCHNOP_status, &st, sizeof(st));
    CHECK("closing one end leaves the other unbound", st.status == EVTCHNSTAT_unbound);
    CHECK("close of a free port is -EINVAL",
          evtchn(EVTCHNOP_close, &c, sizeof(c)) == -EINVAL);
    s.port = 4095;
    CHECK("send on a free port is -EINVAL",
          evtchn(EVTCHNOP_send, &s, sizeof(s)) == -EINVAL);
    s.port = 1u << 30;
    CHECK("send on a huge port is -EINVAL",
          evtchn(EVTCHNOP_send, &s, sizeof(s)) == -EINVAL);
    c.port = 0;
    CHECK("port 0 cannot be closed", evtchn(EVTCHNOP_close, &c, sizeof(c)) == -EINVAL);
    au.dom = 9;
    CHECK("alloc_unbound for another domain is -EPERM",
          evtchn(EVTCHNOP_alloc_unbound, &au, sizeof(au)) == -EPERM);
    CHECK("FIFO ABI not offered",
          hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_init_control, ARG, 0) == -ENOSYS);
    CHECK("out-of-table op is -ENOSYS",
          hcall(__HYPERVISOR_event_channel_op, 1000, ARG, 0) == -ENOSYS);
}

/* A front end allocates an unbound port for Domain 0; the back end binds
 * it to its eventfd; guest sends then reach the eventfd. */
static void test_evtchn_bind_backend(void)
{
    setup(1);
    map_shared_info();
    int fd = eventfd(0, EFD_NONBLOCK);
    struct evtchn_alloc_unbound au = {.dom = DOMID_SELF, .remote_dom = 0};
    evtchn(EVTCHNOP_alloc_unbound, &au, sizeof(au));
    struct evtchn_alloc_unbound au5 = {.dom = DOMID_SELF, .remote_dom = DOMID_SELF};
    evtchn(EVTCHNOP_alloc_unbound, &au5, sizeof(au5));
    CHECK("bind_backend refuses a port unbound for another domain",
          evtchn_bind_backend(dom, au5.port, fd) == -EINVAL);
    CHECK("bind_backend refuses free and huge ports",
          evtchn_bind_backend(dom, 4000, fd) == -EINVAL &&
              evtchn_bind_backend(dom, 0xffffffffu, fd) == -EINVAL &&
              evtchn_bind_backend(dom, 0, fd) == -EINVAL);
    CHECK("bind_backend binds a port unbound for Domain 0",
          evtchn_bind_backend(dom, au.port, fd) == 0 &&
              dom->ports[au.port].state == EVS_INTERDOMAIN &&
              dom->ports[au.port].backend_fd == fd);
    CHECK("bind_backend twice is -EINVAL",
          evtchn_bind_backend(dom, au.port, fd) == -EINVAL);
    struct evtchn_status st = {.dom = DOMID_SELF, .port = au.port};
    CHECK("status of the bound port: interdomain with Domain 0",
          evtchn(EVTCHNOP_status, &st, sizeof(st)) == 0 &&
              st.status == EVTCHNSTAT_interdomain && st.u.interdomain.dom == 0);
    struct evtchn_send s = {.port = au.port};
    uint64_t v = 0;
    CHECK("guest send on the bound port signals the eventfd",
          evtchn(EVTCHNOP_send, &s, sizeof(s)) == 0 &&
              read(fd, &v, sizeof(v)) == sizeof(v) && v == 1);
    fk.delivered = 0;
    CHECK("notify_guest raises the bound port", evtchn_notify_guest(dom, au.port) == 0 &&
                                                    fk.delivered == 1 &&
                                                    fk.last_port == au.port);
    CHECK("unbind_backend with another fd is -EINVAL",
          evtchn_unbind_backend(dom, au.port, fd + 1) == -EINVAL);
    CHECK("unbind_backend leaves the port unbound",
          evtchn_unbind_backend(dom, au.port, fd) == 0 &&
              dom->ports[au.port].state == EVS_UNBOUND &&
              dom->ports[au.port].backend_fd == -1);
    CHECK("and it can be bound again", evtchn_bind_backend(dom, au.port, fd) == 0);
    struct evtchn_close c = {.port = au.port};
    CHECK("the guest may close a bound port",
          evtchn(EVTCHNOP_close, &c, sizeof(c)) == 0 &&
              evtchn_unbind_backend(dom, au.port, fd) == -EINVAL);
    close(fd);
}

static void test_evtchn_virq_ipi(void)
{
    setup(2);
    map_shared_info();
    struct evtchn_bind_virq bv = {.virq = VIRQ_TIMER, .vcpu = 1};
    CHECK("bind_virq timer", evtchn(EVTCHNOP_bind_virq, &bv, sizeof(bv)) == 0 &&
                                 fk.timer_port == bv.port &&
                                 dom->vcpus[1].timer_port == bv.port);
    CHECK("bind_virq twice is -EEXIST",
          evtchn(EVTCHNOP_bind_virq, &bv, sizeof(bv)) == -EEXIST);
    bv.vcpu = 5;
    CHECK("bind_virq to missing vCPU is -ENOENT",
          evtchn(EVTCHNOP_bind_virq, &bv, sizeof(bv)) == -ENOENT);
    bv.virq = NR_VIRQS;
    bv.vcpu = 0;
    CHECK("bind_virq bad virq is -EINVAL",
          evtchn(EVTCHNOP_bind_virq, &bv, sizeof(bv)) == -EINVAL);
    struct evtchn_bind_ipi ipi = {.vcpu = 1};
    unsigned routes = fk.routes_local;
    CHECK("bind_ipi routed in-kernel",
          evtchn(EVTCHNOP_bind_ipi, &ipi, sizeof(ipi)) == 0 &&
              fk.routes_local == routes + 1);
    struct evtchn_bind_vcpu bvc = {.port = ipi.port, .vcpu = 0};
    CHECK("IPI cannot be re-bound",
          evtchn(EVTCHNOP_bind_vcpu, &bvc, sizeof(bvc)) == -EINVAL);
    struct evtchn_close c = {.port = dom->vcpus[1].timer_port};
    evtchn(EVTCHNOP_close, &c, sizeof(c));
    CHECK("closing the timer port stops the timer",
          fk.timer_port == 0 && dom->vcpus[1].timer_port == 0);
    bv = (struct evtchn_bind_virq){.virq = VIRQ_TIMER, .vcpu = 1};
    evtchn(EVTCHNOP_bind_virq, &bv, sizeof(bv));
    struct evtchn_reset r = {.dom = DOMID_SELF};
    CHECK("reset stops the timer", evtchn(EVTCHNOP_reset, &r, sizeof(r)) == 0 &&
                                       fk.timer_port == 0 &&
                                       dom->vcpus[1].timer_port == 0);
    CHECK("bind_virq, close and reset set timers without holding d->lock",
          timer_under_lock == 0);
}

/* ---- calls into another vCPU's thread ---- */

static atomic_bool loop_stop, loop_left;

static void kick(int sig)
{
    (void)sig;
}

/* A vCPU thread without KVM: serves calls until told to stop, then leaves
 * its loop as vcpu_thread does (the domain shut down). */
static void *fake_vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    vcpu_current = v;
    while (!atomic_load(&loop_stop)) {
        vcpu_serve_calls(v);
        usleep(100);
    }
    vcpu_calls_end(v);
    atomic_store(&loop_left, true);
    return NULL;
}

static int on_thread(struct vcpu *v, void *arg)
{
    (void)v;
    *(bool *)arg = vcpu_current == v;
    return 7;
}

struct call_arg {
    struct vcpu *t;
    bool ran_there;
    atomic_int rc;
};

static void *caller(void *arg)
{
    struct call_arg *c = arg;
    atomic_store(&c->rc, vcpu_call(c->t, on_thread, &c->ran_there));
    return NULL;
}

/* Calls t from another thread; -1 when the call has not returned in 2 s. */
static int call_within(struct vcpu *t, bool *ran_there)
{
    struct call_arg c = {.t = t, .rc = -1};
    pthread_t th;
    pthread_create(&th, NULL, caller, &c);
    for (int i = 0; i < 200 && atomic_load(&c.rc) == -1; i++)
        usleep(10000);
    if (atomic_load(&c.rc) == -1) {
        printf("FAIL vcpu_call to a vCPU whose thread left its loop returns (hung)\n");
        fflush(stdout);
        _exit(1); /* the caller is stuck for good */
    }
    pthread_join(th, NULL);
    *ran_there = c.ran_there;
    return c.rc;
}

static void test_vcpu_call(void)
{
    setup(2);
    struct sigaction sa = {.sa_handler = kick};
    sigaction(HV_KICK_SIGNAL, &sa, NULL);
    struct vcpu *t = &dom->vcpus[1];
    atomic_store(&loop_stop, false);
    atomic_store(&loop_left, false);
    pthread_create(&t->thread, NULL, fake_vcpu_thread, t);
    t->thread_started = true;
    bool there = false;
    CHECK("vcpu_call runs on the target's thread", call_within(t, &there) == 7 && there);
    atomic_store(&loop_stop, true);
    while (!atomic_load(&loop_left))
        usleep(1000);
    /* As after SCHEDOP_shutdown: the thread has left, nobody joined it yet. */
    CHECK("vcpu_call to a vCPU whose thread left its loop returns",
          call_within(t, &there) == 7 && !there);
    pthread_join(t->thread, NULL);
    t->thread_started = false;
}

static void test_evtchn_unmask(void)
{
    setup(1);
    map_shared_info();
    struct evtchn_bind_ipi ipi = {.vcpu = 0};
    evtchn(EVTCHNOP_bind_ipi, &ipi, sizeof(ipi));
    struct shared_info *si = gmem_ptr(&dom->mem, SHINFO, sizeof(*si));
    si->evtchn_mask[0] |= 1UL << ipi.port;
    si->evtchn_pending[0] |= 1UL << ipi.port;
    fk.delivered = 0;
    struct evtchn_unmask u = {.port = ipi.port};
    CHECK("unmask of a pending port re-delivers it",
          evtchn(EVTCHNOP_unmask, &u, sizeof(u)) == 0 && fk.delivered == 1 &&
              !(si->evtchn_mask[0] & (1UL << ipi.port)));
    fk.delivered = 0;
    evtchn(EVTCHNOP_unmask, &u, sizeof(u));
    CHECK("unmask of an idle port delivers nothing", fk.delivered == 0);
}

static void test_evtchn_exhaustion(void)
{
    setup(1);
    struct evtchn_alloc_unbound au = {.dom = DOMID_SELF, .remote_dom = 0};
    int64_t rc = 0;
    unsigned n = 0;
    while ((rc = evtchn(EVTCHNOP_alloc_unbound, &au, sizeof(au))) == 0)
        n++;
    CHECK("ports run out with -ENOSPC", rc == -ENOSPC && n == HV_NR_PORTS - 1);
    struct evtchn_reset r = {.dom = DOMID_SELF};
    evtchn(EVTCHNOP_reset, &r, sizeof(r));
    CHECK("reset frees every port",
          evtchn(EVTCHNOP_alloc_unbound, &au, sizeof(au)) == 0 && au.port == 1);
}

/* ---- grant table ---- */

#define GFRAME 0x30000ULL

static void test_gnttab(void)
{
    setup(1);
    struct xen_add_to_physmap x = {.domid = DOMID_SELF,
                                   .space = XENMAPSPACE_grant_table,
                                   .idx = 0,
                                   .gpfn = GFRAME >> 12};
    put(&x, sizeof(x));
    CHECK("grant frame mapped",
          hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0) == 0);
    grant_entry_v1_t *g = gmem_ptr(&dom->mem, GFRAME, 4096);
    g[1] = (grant_entry_v1_t){.flags = GTF_permit_access, .domid = 0, .frame = 0x50};
    g[2] = (grant_entry_v1_t){
        .flags = GTF_permit_access | GTF_readonly, .domid = 0, .frame = 0x51};
    g[3] = (grant_entry_v1_t){.flags = GTF_permit_access, .domid = 0, .frame = 0xFFFFFFF};
    uint64_t gpa = 0;
    CHECK("grant valid for its grantee",
          gnttab_check(dom, 1, 0, true, &gpa) == GNTST_okay && gpa == 0x50000);
    CHECK("grant refused to another domain",
          gnttab_check(dom, 1, 3, false, &gpa) == GNTST_permission_denied);
    CHECK("read-only grant refuses write",
          gnttab_check(dom, 2, 0, true, &gpa) == GNTST_permission_denied);
    CHECK("read-only grant allows read",
          gnttab_check(dom, 2, 0, false, &gpa) == GNTST_okay);
    CHECK("grant of a frame outside RAM",
          gnttab_check(dom, 3, 0, false, &gpa) == GNTST_bad_page);
    CHECK("unused entry refused",
          gnttab_check(dom, 4, 0, false, &gpa) == GNTST_permission_denied);
    CHECK("ref beyond the table",
          gnttab_check(dom, 512 * 40, 0, false, &gpa) == GNTST_bad_gntref);

    struct gnttab_query_size q = {.dom = DOMID_SELF};
    put(&q, sizeof(q));
    hcall(__HYPERVISOR_grant_table_op, GNTTABOP_query_size, ARG, 1);
    get(&q, sizeof(q));
    CHECK("query_size", q.status == GNTST_okay && q.nr_frames == 1 &&
                            q.max_nr_frames == HV_GNTTAB_MAX_FRAMES);
    struct gnttab_set_version sv = {.version = 2};
    put(&sv, sizeof(sv));
    CHECK("grant table v2 refused",
          hcall(__HYPERVISOR_grant_table_op, GNTTABOP_set_version, ARG, 1) < 0);
    sv.version = 1;
    put(&sv, sizeof(sv));
    CHECK("grant table v1 accepted",
          hcall(__HYPERVISOR_grant_table_op, GNTTABOP_set_version, ARG, 1) == 0);
    CHECK("huge batch refused", hcall(__HYPERVISOR_grant_table_op, GNTTABOP_query_size,
                                      ARG, 100000) == -EINVAL);

    /* A front end ends access as Linux's gnttab_end_foreign_access_ref does:
     * flags to 0 by compare-and-swap, refused while reading or writing. */
#define END_ACCESS(e)                                                                    \
    ({                                                                                   \
        uint16_t f_ = __atomic_load_n(&(e)->flags, __ATOMIC_ACQUIRE);                    \
        !(f_ & (GTF_reading | GTF_writing)) &&                                           \
            __atomic_compare_exchange_n(&(e)->flags, &f_, 0, false, __ATOMIC_SEQ_CST,    \
                                        __ATOMIC_SEQ_CST);                               \
    })
    /* Live migration: Domus's writes to granted pages are dirty pages. */
    uint64_t *dbm = calloc((gmem_dirty_npages(&dom->mem) + 63) / 64, sizeof(uint64_t));
    CHECK("dirty marking starts", dbm && gmem_dirty_start(&dom->mem) == 0);
    CHECK("map for reading sets GTF_reading only",
          gnttab_map(dom, 1, 0, false, &gpa) == GNTST_okay && gpa == 0x50000 &&
              (g[1].flags & (GTF_reading | GTF_writing)) == GTF_reading);
    gmem_dirty_collect(&dom->mem, dbm);
    CHECK("a read mapping marks nothing dirty",
          !(dbm[0x50 / 64] & (1ULL << (0x50 % 64))));
    CHECK("map for writing sets GTF_writing too",
          gnttab_map(dom, 1, 0, true, &gpa) == GNTST_okay &&
              (g[1].flags & (GTF_reading | GTF_writing)) == (GTF_reading | GTF_writing));
    gmem_dirty_collect(&dom->mem, dbm);
    CHECK("a write mapping marks its page dirty", dbm[0x50 / 64] & (1ULL << (0x50 % 64)));
    dbm[0x50 / 64] = 0;
    g[1].frame = 0x52; /* the guest changes the frame under use */
    CHECK("a third use gets the frame of the first",
          gnttab_map(dom, 1, 0, false, &gpa) == GNTST_okay && gpa == 0x50000);
    CHECK("front end cannot end access while in use", !END_ACCESS(&g[1]));
    gnttab_unmap(dom, 1, true);
    gmem_dirty_collect(&dom->mem, dbm);
    CHECK("the end of a write use marks the page dirty again",
          dbm[0x50 / 64] & (1ULL << (0x50 % 64)));
    gmem_dirty_stop(&dom->mem);
    free(dbm);
    CHECK("last writer gone: GTF_writing cleared, GTF_reading kept",
          (g[1].flags & (GTF_reading | GTF_writing)) == GTF_reading &&
              !END_ACCESS(&g[1]));
    gnttab_unmap(dom, 1, false);
    gnttab_unmap(dom, 1, false);
    CHECK("last user gone: flags as granted, end of access succeeds",
          g[1].flags == GTF_permit_access && END_ACCESS(&g[1]) && g[1].flags == 0);
    CHECK("map of an ended grant refused",
          gnttab_map(dom, 1, 0, false, &gpa) == GNTST_permission_denied &&
              g[1].flags == 0);
    CHECK("write map of a read-only grant refused, flags untouched",
          gnttab_map(dom, 2, 0, true, &gpa) == GNTST_permission_denied &&
              g[2].flags == (GTF_permit_access | GTF_readonly));
    CHECK("map of a frame outside RAM refused, flags untouched",
          gnttab_map(dom, 3, 0, false, &gpa) == GNTST_bad_page &&
              g[3].flags == GTF_permit_access);
    CHECK("map by another domain refused",
          gnttab_map(dom, 2, 4, false, &gpa) == GNTST_permission_denied);

    memcpy(gmem_ptr(&dom->mem, 0x60000, 8), "granted", 8);
    struct gnttab_copy c = {.len = 8, .flags = 0};
    c.source.u.gmfn = 0x60;
    c.source.domid = DOMID_SELF;
    c.dest.u.gmfn = 0x61;
    c.dest.domid = DOMID_SELF;
    c.dest.offset = 100;
    put(&c, sizeof(c));
    hcall(__HYPERVISOR_grant_table_op, GNTTABOP_copy, ARG, 1);
    get(&c, sizeof(c));
    CHECK("copy between local frames",
          c.status == GNTST_okay &&
              !memcmp(gmem_ptr(&dom->mem, 0x61064, 8), "granted", 8));
    c.dest.offset = 4092;
    put(&c, sizeof(c));
    hcall(__HYPERVISOR_grant_table_op, GNTTABOP_copy, ARG, 1);
    get(&c, sizeof(c));
    CHECK("copy crossing a page refused", c.status == GNTST_bad_copy_arg);
}

/* Another vCPU moving a grant frame (an extra page) while this one copies
 * from it or maps shared_info onto it: each hypercall must look the page up
 * once and either use it or fail; a second lookup that fails was a NULL
 * dereference (SIGSEGV of domus-vm). */
#define MOVE_A 0xF0000000ULL
#define MOVE_B 0xF0001000ULL
static atomic_bool mover_stop;

static void *mover(void *arg)
{
    (void)arg;
    while (!atomic_load(&mover_stop)) {
        gmem_place_extra(&dom->mem, 0, MOVE_A);
        gmem_place_extra(&dom->mem, 0, MOVE_B);
    }
    return NULL;
}

static void test_frame_moved_meanwhile(void)
{
    setup(1);
    pthread_t t;
    unsigned ok = 0, refused = 0, other = 0;
    struct timespec t0, now;
    atomic_store(&mover_stop, false);
    pthread_create(&t, NULL, mover, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < 2000000; i++) {
        struct gnttab_copy c = {.len = 64, .flags = 0};
        c.source.u.gmfn = MOVE_A >> 12;
        c.source.domid = DOMID_SELF;
        c.dest.u.gmfn = 0x61;
        c.dest.domid = DOMID_SELF;
        put(&c, sizeof(c));
        hcall(__HYPERVISOR_grant_table_op, GNTTABOP_copy, ARG, 1);
        get(&c, sizeof(c));
        ok += c.status == GNTST_okay;
        refused += c.status == GNTST_bad_page;
        other += c.status != GNTST_okay && c.status != GNTST_bad_page;
        struct xen_add_to_physmap x = {
            .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info, .gpfn = MOVE_A >> 12};
        put(&x, sizeof(x));
        int64_t rc = hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG, 0);
        other += rc != 0 && rc != -EINVAL;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= 3)
            break;
    }
    atomic_store(&mover_stop, true);
    pthread_join(t, NULL);
    printf("frame moved meanwhile: %u copies done, %u refused\n", ok, refused);
    CHECK("copy and shared_info on a frame another vCPU moves: used or refused, no crash",
          other == 0 && ok + refused > 0);
}

/* ---- CPUID ---- */

static void test_cpuid(void)
{
    struct kvm_cpuid2 *sup = calloc(1, sizeof(*sup) + 16 * sizeof(sup->entries[0]));
    struct kvm_cpuid2 *out = calloc(1, sizeof(*out) + 24 * sizeof(out->entries[0]));
    sup->entries[0] = (struct kvm_cpuid_entry2){.function = 1, .ebx = 0x800};
    sup->entries[1] =
        (struct kvm_cpuid_entry2){.function = 0x40000000, .ebx = 0x4b4d564b};
    sup->entries[2] = (struct kvm_cpuid_entry2){
        .function = 0xd, .index = 0, .eax = 0x267, .ebx = 2696, .ecx = 2696};
    sup->entries[3] = (struct kvm_cpuid_entry2){.function = 0xd, .index = 1, .eax = 0xf};
    sup->entries[4] =
        (struct kvm_cpuid_entry2){.function = 0xd, .index = 2, .eax = 256, .ebx = 576};
    sup->entries[5] =
        (struct kvm_cpuid_entry2){.function = 0xd, .index = 9, .eax = 8, .ebx = 2688};
    sup->entries[6] =
        (struct kvm_cpuid_entry2){.function = 7, .ecx = 1u << 3, .ebx = 1u << 16};
    sup->nent = 7;
    cpuid_build(sup, out, 3, 4, 5, ~0ULL);
    int kvm_sig = 0, xen_sig = 0;
    struct kvm_cpuid_entry2 *d0 = NULL, *l1 = NULL, *x4 = NULL, *l7 = NULL;
    for (unsigned i = 0; i < out->nent; i++) {
        struct kvm_cpuid_entry2 *e = &out->entries[i];
        if (e->function == 0x40000000 && e->ebx == 0x4b4d564b)
            kvm_sig = 1;
        if (e->function == 0x40000000 && e->ebx == 0x566e6558)
            xen_sig = 1;
        if (e->function == 0xd && e->index == 0)
            d0 = e;
        if (e->function == 1)
            l1 = e;
        if (e->function == 0x40000004)
            x4 = e;
        if (e->function == 7)
            l7 = e;
    }
    CHECK("cpuid: KVM signature removed, Xen signature present", !kvm_sig && xen_sig);
    CHECK("cpuid: XCR0 without AVX-512 when incomplete", d0 && d0->eax == 0x207);
    CHECK("cpuid: XSAVE size covers the offered components",
          d0 && d0->ebx == 2696 && d0->ecx == 2696);
    CHECK("cpuid: AVX-512 hidden with its state",
          l7 && !(l7->ebx & (1u << 16)) && (l7->ecx & (1u << 3)));
    CHECK("cpuid: APIC id of vCPU 3", l1 && (l1->ebx >> 24) == 3);
    CHECK("cpuid: the hypervisor bit is set (KVM's list leaves it clear)",
          l1 && (l1->ecx & (1u << 31)));
    CHECK("cpuid: Xen HVM leaf has vcpu id and upcall vector",
          x4 && x4->ebx == 3 && x4->ecx == 5 && (x4->eax & (1u << 6)));
    cpuid_build(sup, out, 0, 1, 1, 0);
    for (unsigned i = 0; i < out->nent; i++)
        if (out->entries[i].function == 1)
            l1 = &out->entries[i];
    CHECK("cpuid: XSAVE hidden when no component may be offered",
          l1 && !(l1->ecx & (1u << 26)));
    free(sup);
    free(out);
}

int main(void)
{
    test_gmem();
    test_dispatch();
    test_log_flood();
    test_memory_op();
    test_hvm_op();
    test_sched_vcpu();
    test_suspend_updown();
    test_evtchn_resume();
    test_evtchn_basic();
    test_evtchn_virq_ipi();
    test_evtchn_unmask();
    test_vcpu_call();
    test_evtchn_exhaustion();
    test_evtchn_bind_backend();
    test_gnttab();
    test_frame_moved_meanwhile();
    test_cpuid();
    gmem_destroy(&dom->mem);
    free(dom);
    return failures ? 1 : 0;
}
