/* SCHEDOP_yield, SCHEDOP_block and SCHEDOP_poll, as Xen's do_yield,
 * vcpu_block_enable_events and do_poll (xen/common/sched/core.c) behave.
 *
 * The vCPU thread waits here, out of KVM_RUN, on its own condition.  Events
 * raised from userspace (evtchn.c's deliveries) wake it at once; events that
 * KVM raises in the kernel (IPIs, back-end ports, the VIRQ_TIMER) only set
 * bits in guest memory, so the wait also looks again at a growing interval
 * (SCHED_RECHECK_MIN_NS doubling up to SCHED_RECHECK_MAX_NS).  Block also
 * ends when the vCPU's timer is due: 6.1's KVM injects its Xen timer only on
 * the way into KVM_RUN.  On KVM, Linux's SCHEDOP_poll (PV spinlocks) and
 * SCHEDOP_yield are served by the kernel and never reach here; a PVH Linux
 * idles with HLT, not SCHEDOP_block.  This is for every other guest. */
#include "domus/hv.h"
#include "domus/util.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <time.h>

#include <xen/sched.h>

#define SCHED_POLL_MAX_PORTS 128 /* Xen's bound on sched_poll.nr_ports */
#define SCHED_RECHECK_MIN_NS 50000ULL
#define SCHED_RECHECK_MAX_NS 4000000ULL

uint64_t hv_now_ns(struct domain *d)
{
    struct timespec ts;

    if (d->ops && d->ops->now_ns)
        return d->ops->now_ns(d);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void sched_wake(struct vcpu *v)
{
    pthread_mutex_lock(&v->sched_lock);
    v->sched_seq++;
    pthread_cond_broadcast(&v->sched_cond);
    pthread_mutex_unlock(&v->sched_lock);
}

void sched_wake_event(struct domain *d, uint32_t vcpu)
{
    if (vcpu < d->nr_vcpus)
        sched_wake(&d->vcpus[vcpu]);
    for (unsigned i = 0; i < d->nr_vcpus; i++)
        if (i != vcpu && atomic_load(&d->vcpus[i].polling))
            sched_wake(&d->vcpus[i]);
}

/* v's vcpu_info: where it registered one, else its slot in shared_info. */
static struct vcpu_info *vcpu_info_of(struct vcpu *v)
{
    uint64_t gpa = v->vcpu_info_gpa;

    if (!gpa && v->d->shared_info_gpa && v->id < XEN_LEGACY_MAX_VCPUS)
        gpa = v->d->shared_info_gpa + offsetof(struct shared_info, vcpu_info) +
              v->id * sizeof(struct vcpu_info);
    return gpa ? gmem_ptr(&v->d->mem, gpa, sizeof(struct vcpu_info)) : NULL;
}

static bool upcall_pending(struct vcpu *v)
{
    struct vcpu_info *vi = vcpu_info_of(v);
    return vi && __atomic_load_n(&vi->evtchn_upcall_pending, __ATOMIC_ACQUIRE);
}

/* The vCPU must go back to its loop: pause or shutdown. */
static bool must_return(struct vcpu *v)
{
    return atomic_load(&v->d->shutdown_reason) >= 0 || atomic_load(&v->d->paused);
}

static uint64_t timer_due(struct vcpu *v)
{
    if (v->d->ops && v->d->ops->timer_expiry)
        return v->d->ops->timer_expiry(v);
    return v->singleshot_ns;
}

/* Waits on v's condition for at most ns, unless a wake-up came after seq. */
static void wait_for(struct vcpu *v, uint64_t seq, uint64_t ns)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ns += (uint64_t)ts.tv_nsec;
    ts.tv_sec += (time_t)(ns / 1000000000ULL);
    ts.tv_nsec = (long)(ns % 1000000000ULL);
    pthread_mutex_lock(&v->sched_lock);
    if (v->sched_seq == seq)
        pthread_cond_timedwait(&v->sched_cond, &v->sched_lock, &ts);
    pthread_mutex_unlock(&v->sched_lock);
}

/* Waits until ready(v, arg), the deadline (system ns; 0: none) or
 * must_return(v); serves calls posted to v meanwhile. */
static void sched_wait(struct vcpu *v, bool (*ready)(struct vcpu *, const void *),
                       const void *arg, uint64_t deadline)
{
    uint64_t step = SCHED_RECHECK_MIN_NS, seq, now, ns;

    for (;;) {
        pthread_mutex_lock(&v->sched_lock);
        seq = v->sched_seq;
        pthread_mutex_unlock(&v->sched_lock);
        vcpu_serve_calls(v);
        if (ready(v, arg) || must_return(v))
            return;
        now = hv_now_ns(v->d);
        if (deadline && now >= deadline)
            return;
        ns = deadline && deadline - now < step ? deadline - now : step;
        wait_for(v, seq, ns);
        step = step * 2 < SCHED_RECHECK_MAX_NS ? step * 2 : SCHED_RECHECK_MAX_NS;
    }
}

static bool block_ready(struct vcpu *v, const void *arg)
{
    (void)arg;
    return upcall_pending(v);
}

/* Xen: events are enabled (evtchn_upcall_mask cleared), then the vCPU
 * sleeps unless one is pending. */
static int64_t sched_block(struct vcpu *v)
{
    struct vcpu_info *vi = vcpu_info_of(v);

    if (vi)
        __atomic_store_n(&vi->evtchn_upcall_mask, 0, __ATOMIC_RELEASE);
    v->blocks++;
    sched_wait(v, block_ready, NULL, timer_due(v));
    return 0;
}

struct poll_set {
    uint32_t n;
    evtchn_port_t port[SCHED_POLL_MAX_PORTS];
};

static bool poll_ready(struct vcpu *v, const void *arg)
{
    const struct poll_set *ps = arg;

    if (upcall_pending(v))
        return true;
    for (uint32_t i = 0; i < ps->n; i++)
        if (evtchn_is_pending(v->d, ps->port[i]))
            return true;
    return false;
}

/* Reads and checks the guest's port list: -EINVAL for more than Xen's 128
 * ports or a port that is not in use, -EFAULT for an unreadable list. */
static int poll_args(struct vcpu *v, uint64_t arg, struct sched_poll *sp,
                     struct poll_set *ps)
{
    struct domain *d = v->d;
    int rc = 0;

    if (guest_copy_from(v, sp, arg, sizeof(*sp)) < 0)
        return -EFAULT;
    if (sp->nr_ports > SCHED_POLL_MAX_PORTS)
        return -EINVAL;
    ps->n = sp->nr_ports;
    if (ps->n && guest_copy_from(v, ps->port, (uint64_t)(uintptr_t)sp->ports.p,
                                 ps->n * sizeof(evtchn_port_t)) < 0)
        return -EFAULT;
    pthread_mutex_lock(&d->lock);
    for (uint32_t i = 0; i < ps->n && !rc; i++)
        if (!evtchn_valid(d, ps->port[i]))
            rc = -EINVAL;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int64_t sched_poll(struct vcpu *v, uint64_t arg)
{
    struct sched_poll sp;
    struct poll_set ps;
    uint64_t deadline, due;
    int rc = poll_args(v, arg, &sp, &ps);

    if (rc < 0)
        return rc;
    /* The timer's event reaches the guest only on its way back in. */
    deadline = sp.timeout;
    due = timer_due(v);
    if (due && (!deadline || due < deadline))
        deadline = due;
    v->polls++;
    atomic_store(&v->polling, true);
    sched_wait(v, poll_ready, &ps, deadline);
    atomic_store(&v->polling, false);
    return 0;
}

bool schedop(struct vcpu *v, uint64_t cmd, uint64_t arg, int64_t *rc)
{
    switch (cmd) {
    case SCHEDOP_yield:
        v->yields++;
        sched_yield();
        *rc = 0;
        return true;
    case SCHEDOP_block:
        *rc = sched_block(v);
        return true;
    case SCHEDOP_poll:
        *rc = sched_poll(v, arg);
        return true;
    default:
        return false;
    }
}
