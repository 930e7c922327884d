/* Unit tests of SCHEDOP_yield, SCHEDOP_block and SCHEDOP_poll (schedop.c)
 * through the hv_ops seam: the fake deliver sets the port's pending bit and
 * the vCPU's evtchn_upcall_pending in shared_info, as KVM's EVTCHN_SEND
 * does; a fake clock stands for kvmclock.  Guest-virtual = guest-physical. */
#include "domus/hv.h"
#include "domus/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xen/memory.h>
#include <xen/sched.h>

#include "check.h"

#define ARG 0x10000ULL    /* hypercall arguments */
#define PORTS 0x11000ULL  /* the poll's port list */
#define SHINFO 0x20000ULL /* shared_info */

static struct domain *dom;
static atomic_uint delivered;
static _Atomic uint64_t timer_at; /* the fake in-kernel timer's expiry */

static int f_shinfo(struct domain *d, uint64_t gfn)
{
    (void)d, (void)gfn;
    return 0;
}
static int f_gpa(struct vcpu *v, uint64_t gpa)
{
    (void)v, (void)gpa;
    return 0;
}
static int f_vec(struct vcpu *v, uint8_t vec)
{
    (void)v, (void)vec;
    return 0;
}
static int f_gvec(struct domain *d, uint8_t vec)
{
    (void)d, (void)vec;
    return 0;
}
static int f_timer(struct vcpu *v, uint32_t p, uint64_t ns)
{
    (void)v, (void)p, (void)ns;
    return 0;
}
static int f_route_local(struct domain *d, uint32_t p, uint32_t t, uint32_t v)
{
    (void)d, (void)p, (void)t, (void)v;
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
    return 0;
}
static int f_map_extra(struct domain *d, unsigned i, uint64_t g, void *h)
{
    (void)d, (void)i, (void)g, (void)h;
    return 0;
}
static int f_translate(struct vcpu *v, uint64_t gva, uint64_t *gpa)
{
    (void)v;
    *gpa = gva;
    return 0;
}

static struct shared_info *shinfo(void)
{
    return gmem_ptr(&dom->mem, SHINFO, 4096);
}

/* As KVM: pending bit, selector bit, upcall pending on the target vCPU. */
static int f_deliver(struct domain *d, uint32_t port, uint32_t vcpu)
{
    struct shared_info *s = shinfo();
    (void)d;
    __atomic_fetch_or(&s->evtchn_pending[port / 64], 1ULL << (port % 64),
                      __ATOMIC_SEQ_CST);
    __atomic_fetch_or(&s->vcpu_info[vcpu].evtchn_pending_sel, 1ULL << (port / 64),
                      __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->vcpu_info[vcpu].evtchn_upcall_pending, 1, __ATOMIC_SEQ_CST);
    atomic_fetch_add(&delivered, 1);
    return 0;
}

static uint64_t f_now(struct domain *d)
{
    struct timespec ts;
    (void)d;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec + 5000000000ULL;
}

static uint64_t f_timer_expiry(struct vcpu *v)
{
    (void)v;
    return atomic_load(&timer_at);
}

static const struct hv_ops ops = {
    .set_shared_info = f_shinfo,
    .set_vcpu_info = f_gpa,
    .set_vcpu_time_info = f_gpa,
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
    .now_ns = f_now,
    .timer_expiry = f_timer_expiry,
};

static int64_t hc(unsigned vcpu, unsigned nr, uint64_t a0, uint64_t a1)
{
    uint64_t a[6] = {a0, a1, 0, 0, 0, 0};
    return hv_hypercall(&dom->vcpus[vcpu], nr, a);
}

static void put(uint64_t gpa, const void *p, size_t n)
{
    gmem_write(&dom->mem, gpa, p, n);
}

static void setup(void)
{
    if (dom) {
        gmem_destroy(&dom->mem);
        free(dom);
    }
    dom = calloc(1, sizeof(*dom));
    domain_init(dom, 3, "s", 2, &ops);
    if (gmem_init(&dom->mem, 64ULL << 20) < 0)
        abort();
    struct xen_add_to_physmap x = {
        .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info, .gpfn = SHINFO >> 12};
    put(ARG, &x, sizeof(x));
    hc(0, __HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG);
    atomic_store(&timer_at, 0);
}

static int bind_ipi(unsigned vcpu)
{
    struct evtchn_bind_ipi b = {.vcpu = vcpu};
    put(ARG, &b, sizeof(b));
    if (hc(0, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, ARG) != 0)
        abort();
    gmem_read(&dom->mem, ARG, &b, sizeof(b));
    return (int)b.port;
}

static void clear_pending(void)
{
    struct shared_info *s = shinfo();
    memset(s->evtchn_pending, 0, sizeof(s->evtchn_pending));
    for (unsigned i = 0; i < 2; i++)
        s->vcpu_info[i].evtchn_upcall_pending = 0;
}

/* Polls ports[0..n) on vCPU 0 with timeout (system ns; 0 none). */
static int64_t poll_ports(const evtchn_port_t *ports, unsigned n, uint64_t timeout)
{
    struct sched_poll sp = {.nr_ports = n, .timeout = timeout};
    set_xen_guest_handle(sp.ports, (evtchn_port_t *)(uintptr_t)PORTS);
    if (n && n <= 1024)
        put(PORTS, ports, n * sizeof(*ports));
    put(ARG, &sp, sizeof(sp));
    return hc(0, __HYPERVISOR_sched_op, SCHEDOP_poll, ARG);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
           (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---- a second thread that acts after a delay ---- */

enum act { ACT_NOTIFY, ACT_SHUTDOWN, ACT_PAUSE };
struct later {
    enum act act;
    uint32_t port;
    unsigned ms;
};

static void *later_fn(void *arg)
{
    struct later *l = arg;
    usleep(l->ms * 1000);
    if (l->act == ACT_NOTIFY)
        evtchn_notify_guest(dom, l->port);
    else if (l->act == ACT_SHUTDOWN)
        domain_shutdown(dom, SHUTDOWN_poweroff);
    else {
        atomic_store(&dom->paused, true);
        sched_wake(&dom->vcpus[0]); /* as kvm.c's kick_all */
    }
    return NULL;
}

static pthread_t act_later(struct later *l)
{
    pthread_t th;
    pthread_create(&th, NULL, later_fn, l);
    return th;
}

/* ---- tests ---- */

static void test_yield(void)
{
    setup();
    CHECK("yield returns 0", hc(0, __HYPERVISOR_sched_op, SCHEDOP_yield, 0) == 0 &&
                                 dom->vcpus[0].yields == 1);
}

static void test_poll_hostile(void)
{
    setup();
    int p = bind_ipi(0);
    evtchn_port_t ports[200];
    for (unsigned i = 0; i < 200; i++)
        ports[i] = (evtchn_port_t)p;
    CHECK("poll of 129 ports is -EINVAL (Xen's bound, 128)",
          poll_ports(ports, 129, 1) == -EINVAL);
    CHECK("poll of 2^32-1 ports is -EINVAL", poll_ports(ports, UINT32_MAX, 1) == -EINVAL);
    ports[5] = 0;
    CHECK("poll naming port 0 is -EINVAL", poll_ports(ports, 6, 1) == -EINVAL);
    ports[5] = 4095;
    CHECK("poll naming a free port is -EINVAL", poll_ports(ports, 6, 1) == -EINVAL);
    ports[5] = 0xFFFFFFFFu;
    CHECK("poll naming port 2^32-1 is -EINVAL", poll_ports(ports, 6, 1) == -EINVAL);
    struct sched_poll sp = {.nr_ports = 4, .timeout = 1};
    set_xen_guest_handle(sp.ports, (evtchn_port_t *)(uintptr_t)((64ULL << 20) - 8));
    put(ARG, &sp, sizeof(sp));
    CHECK("poll with a port list across the end of RAM is -EFAULT",
          hc(0, __HYPERVISOR_sched_op, SCHEDOP_poll, ARG) == -EFAULT);
    set_xen_guest_handle(sp.ports, (evtchn_port_t *)(uintptr_t)0xFFFFFFFFFFFFFFF0ULL);
    put(ARG, &sp, sizeof(sp));
    CHECK("poll with a port list at a wrapping address is -EFAULT",
          hc(0, __HYPERVISOR_sched_op, SCHEDOP_poll, ARG) == -EFAULT);
    CHECK("poll with its argument outside RAM is -EFAULT",
          hc(0, __HYPERVISOR_sched_op, SCHEDOP_poll, 0xF0000000ULL) == -EFAULT);
    CHECK("no poll was counted for refused arguments", dom->vcpus[0].polls == 0);
    CHECK("an unknown sched_op is still -ENOSYS",
          hc(0, __HYPERVISOR_sched_op, 77, 0) == -ENOSYS);
}

static void test_poll(void)
{
    struct timespec t0;
    setup();
    evtchn_port_t ports[2] = {(evtchn_port_t)bind_ipi(0), (evtchn_port_t)bind_ipi(1)};
    clear_pending();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK("poll with a timeout in the past returns at once",
          poll_ports(ports, 2, f_now(dom) - 1000) == 0 && ms_since(&t0) < 100);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t rc = poll_ports(ports, 2, f_now(dom) + 60000000ULL);
    double ms = ms_since(&t0);
    printf("poll with a 60 ms timeout, nothing pending: %.1f ms\n", ms);
    CHECK("poll sleeps until its timeout", rc == 0 && ms >= 55 && ms < 1000);
    CHECK("nr_ports 0 with a timeout waits for the timeout",
          poll_ports(ports, 0, f_now(dom) + 1000000ULL) == 0);

    evtchn_notify_guest(dom, ports[1]);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK("poll of an already pending port returns at once",
          poll_ports(ports, 2, 0) == 0 && ms_since(&t0) < 100);
    clear_pending();
    struct later l = {ACT_NOTIFY, ports[1], 40};
    pthread_t th = act_later(&l);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = poll_ports(ports, 2, 0);
    ms = ms_since(&t0);
    pthread_join(th, NULL);
    printf("poll without timeout, woken by a delivery after 40 ms: %.1f ms\n", ms);
    CHECK("poll without timeout is woken by an event on one of its ports",
          rc == 0 && ms >= 35 && ms < 1000);

    clear_pending();
    atomic_store(&timer_at, f_now(dom) + 30000000ULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = poll_ports(ports, 1, 0);
    ms = ms_since(&t0);
    CHECK("poll returns when the vCPU's timer is due (KVM injects it on entry)",
          rc == 0 && ms >= 25 && ms < 1000);
    CHECK("polls counted", dom->vcpus[0].polls == 6);
}

/* An event for the other vCPU, delivered by KVM in the kernel: no wake-up
 * reaches us, the wait finds it when it looks again. */
static void *set_pending_late(void *arg)
{
    (void)arg;
    usleep(30000);
    struct shared_info *s = shinfo();
    __atomic_store_n(&s->vcpu_info[0].evtchn_upcall_pending, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_block(void)
{
    struct timespec t0;
    setup();
    int p = bind_ipi(0);
    clear_pending();
    shinfo()->vcpu_info[0].evtchn_upcall_mask = 1;
    evtchn_notify_guest(dom, (uint32_t)p);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK("block with an event pending returns at once and enables events",
          hc(0, __HYPERVISOR_sched_op, SCHEDOP_block, 0) == 0 && ms_since(&t0) < 100 &&
              shinfo()->vcpu_info[0].evtchn_upcall_mask == 0);

    clear_pending();
    struct later l = {ACT_NOTIFY, (uint32_t)p, 40};
    pthread_t th = act_later(&l);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t rc = hc(0, __HYPERVISOR_sched_op, SCHEDOP_block, 0);
    double ms = ms_since(&t0);
    pthread_join(th, NULL);
    printf("block woken by a delivery after 40 ms: %.1f ms\n", ms);
    CHECK("block sleeps until an event is delivered", rc == 0 && ms >= 35 && ms < 1000);

    clear_pending();
    pthread_create(&th, NULL, set_pending_late, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = hc(0, __HYPERVISOR_sched_op, SCHEDOP_block, 0);
    ms = ms_since(&t0);
    pthread_join(th, NULL);
    printf("block, upcall raised behind its back after 30 ms: %.1f ms\n", ms);
    CHECK("block sees an upcall raised in the kernel", rc == 0 && ms >= 25 && ms < 1000);

    clear_pending();
    atomic_store(&timer_at, f_now(dom) + 30000000ULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = hc(0, __HYPERVISOR_sched_op, SCHEDOP_block, 0);
    ms = ms_since(&t0);
    CHECK("block returns when the vCPU's timer is due", rc == 0 && ms >= 25 && ms < 1000);
    atomic_store(&timer_at, 0);

    clear_pending();
    l = (struct later){ACT_PAUSE, 0, 30};
    th = act_later(&l);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = hc(0, __HYPERVISOR_sched_op, SCHEDOP_block, 0);
    ms = ms_since(&t0);
    pthread_join(th, NULL);
    CHECK("block returns to the loop when the domain is paused", rc == 0 && ms < 1000);
    atomic_store(&dom->paused, false);

    l = (struct later){ACT_SHUTDOWN, 0, 30};
    th = act_later(&l);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = hc(0, __HYPERVISOR_sched_op, SCHEDOP_block, 0);
    ms = ms_since(&t0);
    pthread_join(th, NULL);
    CHECK("block returns when the domain shuts down", rc == 0 && ms < 1000);
}

/* ---- a call posted to a vCPU blocked in SCHEDOP_block is served ---- */

static atomic_bool blocker_done;
static void *blocker(void *arg)
{
    (void)arg;
    vcpu_current = &dom->vcpus[1];
    hc(1, __HYPERVISOR_sched_op, SCHEDOP_block, 0);
    atomic_store(&blocker_done, true);
    return NULL;
}

static int on_thread(struct vcpu *v, void *arg)
{
    *(bool *)arg = vcpu_current == v;
    return 7;
}

static void kick(int sig)
{
    (void)sig;
}

static void test_call_while_blocked(void)
{
    struct sigaction sa = {.sa_handler = kick};
    sigaction(HV_KICK_SIGNAL, &sa, NULL);
    setup();
    clear_pending();
    struct vcpu *t = &dom->vcpus[1];
    atomic_store(&blocker_done, false);
    pthread_create(&t->thread, NULL, blocker, NULL);
    t->thread_started = true;
    usleep(20000);
    bool there = false;
    int rc = vcpu_call(t, on_thread, &there);
    CHECK("a call to a vCPU in SCHEDOP_block runs on its thread", rc == 7 && there);
    CHECK("and the vCPU stays blocked", !atomic_load(&blocker_done));
    int p = bind_ipi(1);
    evtchn_notify_guest(dom, (uint32_t)p);
    pthread_join(t->thread, NULL);
    t->thread_started = false;
    CHECK("until an event comes", atomic_load(&blocker_done));
}

/* Every vCPU in SCHEDOP_poll is woken by a delivery to any vCPU (its
 * ports may be bound elsewhere). */
static void *poller(void *arg)
{
    const evtchn_port_t *port = arg;
    struct sched_poll sp = {.nr_ports = 1, .timeout = 0};
    set_xen_guest_handle(sp.ports, (evtchn_port_t *)(uintptr_t)(PORTS + 64));
    put(PORTS + 64, port, sizeof(*port));
    put(ARG + 256, &sp, sizeof(sp));
    uint64_t a[6] = {SCHEDOP_poll, ARG + 256};
    vcpu_current = &dom->vcpus[1];
    hv_hypercall(&dom->vcpus[1], __HYPERVISOR_sched_op, a);
    return NULL;
}

static void test_poll_other_vcpu(void)
{
    struct timespec t0;
    setup();
    clear_pending();
    evtchn_port_t p = (evtchn_port_t)bind_ipi(0); /* bound to vCPU 0, polled by vCPU 1 */
    pthread_t th;
    pthread_create(&th, NULL, poller, &p);
    usleep(20000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    evtchn_notify_guest(dom, p);
    pthread_join(th, NULL);
    CHECK("a poller sees its port pending though it is bound to another vCPU",
          ms_since(&t0) < 40);
}

/* Xen's evtchn_free clears the pending bit: a port bound again (Linux's
 * spinlock kicker after a CPU went offline and back) starts quiet. */
static void test_close_clears_pending(void)
{
    setup();
    clear_pending();
    int p = bind_ipi(1);
    evtchn_notify_guest(dom, (uint32_t)p);
    bool was = evtchn_is_pending(dom, (uint32_t)p);
    struct evtchn_close c = {.port = (evtchn_port_t)p};
    put(ARG, &c, sizeof(c));
    hc(0, __HYPERVISOR_event_channel_op, EVTCHNOP_close, ARG);
    int q = bind_ipi(1);
    CHECK("close clears the port's pending bit; bound again it is quiet",
          was && q == p && !evtchn_is_pending(dom, (uint32_t)q));
}

int main(void)
{
    test_yield();
    test_poll_hostile();
    test_poll();
    test_block();
    test_call_while_blocked();
    test_poll_other_vcpu();
    test_close_clears_pending();
    gmem_destroy(&dom->mem);
    free(dom);
    return failures ? 1 : 0;
}
