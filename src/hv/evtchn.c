/* Event channels, Xen's 2-level ABI.
 *
 * The port table lives here; the pending and mask bitmaps live in the
 * guest's shared_info page.  Delivery into the guest (setting pending, the
 * selector bit and the upcall) is done by ops->deliver (KVM's in-kernel
 * EVTCHN_SEND in the real hypervisor).  Guest sends on IPI and loopback ports
 * and on ports whose other end is a Domain 0 back end are also routed
 * in-kernel through ops->route_*; the paths here handle whatever reaches
 * userspace.  Errors go back to the guest as Xen errno values (equal to
 * Linux's). */
#include "domus/hv.h"
#include "domus/util.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#define BITS_PER_WORD (sizeof(xen_ulong_t) * 8)

bool evtchn_valid(const struct domain *d, uint32_t port)
{
    return port > 0 && port < HV_NR_PORTS && d->ports[port].state != EVS_FREE;
}

int evtchn_alloc(struct domain *d)
{
    for (uint32_t p = 1; p < HV_NR_PORTS; p++) {
        /* (a port a restored guest will re-bind is kept for it) */
        if (d->ports[p].state == EVS_FREE &&
            !(d->resume_ports && d->resume_ports[p].state != EVS_FREE)) {
            memset(&d->ports[p], 0, sizeof(d->ports[p]));
            d->ports[p].backend_fd = -1;
            return (int)p;
        }
    }
    return -ENOSPC;
}

static xen_ulong_t *shinfo_word(struct domain *d, size_t field_off, uint32_t port)
{
    if (!d->shared_info_gpa)
        return NULL;
    uint64_t gpa =
        d->shared_info_gpa + field_off + (port / BITS_PER_WORD) * sizeof(xen_ulong_t);
    return gmem_ptr(&d->mem, gpa, sizeof(xen_ulong_t));
}

static bool shinfo_test_and_clear(struct domain *d, size_t field_off, uint32_t port)
{
    xen_ulong_t *w = shinfo_word(d, field_off, port);
    xen_ulong_t bit = (xen_ulong_t)1 << (port % BITS_PER_WORD);
    return w && (__atomic_fetch_and(w, ~bit, __ATOMIC_SEQ_CST) & bit);
}

#define PENDING offsetof(struct shared_info, evtchn_pending)
#define MASK offsetof(struct shared_info, evtchn_mask)

bool evtchn_is_pending(struct domain *d, uint32_t port)
{
    xen_ulong_t *w = port < HV_NR_PORTS ? shinfo_word(d, PENDING, port) : NULL;
    xen_ulong_t bit = (xen_ulong_t)1 << (port % BITS_PER_WORD);
    return w && (__atomic_load_n(w, __ATOMIC_ACQUIRE) & bit);
}

/* ops->deliver, then a vCPU waiting in SCHEDOP_block/poll looks again. */
static int deliver(struct domain *d, uint32_t port, uint32_t vcpu)
{
    int rc = d->ops->deliver(d, port, vcpu);
    sched_wake_event(d, vcpu);
    return rc;
}

/* Sends on local port `port` as the guest would: delivers to whatever is at
 * the other end. */
static int send_local(struct domain *d, uint32_t port)
{
    struct evtchn *e = &d->ports[port];
    switch (e->state) {
    case EVS_IPI:
        return deliver(d, port, e->vcpu);
    case EVS_INTERDOMAIN:
        if (e->backend_fd >= 0) {
            uint64_t one = 1;
            return write(e->backend_fd, &one, sizeof(one)) == sizeof(one) ? 0 : -EIO;
        }
        if (e->remote_dom == d->domid && evtchn_valid(d, e->remote_port))
            return deliver(d, e->remote_port, d->ports[e->remote_port].vcpu);
        return 0;
    case EVS_UNBOUND:
    case EVS_VIRQ:
        return 0; /* nobody listening: dropped, as Xen does */
    default:
        return -EINVAL;
    }
}

static int route_port(struct domain *d, uint32_t port)
{
    struct evtchn *e = &d->ports[port];
    if (e->state == EVS_IPI)
        return d->ops->route_local(d, port, port, e->vcpu);
    if (e->state == EVS_INTERDOMAIN && e->backend_fd >= 0)
        return d->ops->route_eventfd(d, port, e->backend_fd);
    if (e->state == EVS_INTERDOMAIN && e->remote_dom == d->domid)
        return d->ops->route_local(d, port, e->remote_port,
                                   d->ports[e->remote_port].vcpu);
    return 0;
}

static domid_t resolve_dom(struct domain *d, domid_t dom)
{
    return dom == DOMID_SELF ? (domid_t)d->domid : dom;
}

static int op_alloc_unbound(struct domain *d, struct evtchn_alloc_unbound *a)
{
    if (resolve_dom(d, a->dom) != d->domid)
        return -EPERM;
    int port = evtchn_alloc(d);
    if (port < 0)
        return port;
    d->ports[port].state = EVS_UNBOUND;
    d->ports[port].remote_dom = resolve_dom(d, a->remote_dom);
    a->port = (evtchn_port_t)port;
    return 0;
}

/* Only loopback binding (both ends in this domain) is possible from a
 * guest today; Domain 0's back ends bind through evtchn_alloc_backend_port. */
static int op_bind_interdomain(struct domain *d, struct evtchn_bind_interdomain *b)
{
    domid_t rdom = resolve_dom(d, b->remote_dom);
    uint32_t rport = b->remote_port;
    if (rdom != d->domid)
        return -ESRCH;
    if (!evtchn_valid(d, rport) || d->ports[rport].state != EVS_UNBOUND ||
        d->ports[rport].remote_dom != d->domid)
        return -EINVAL;
    int port = evtchn_alloc(d);
    if (port < 0)
        return port;
    struct evtchn *l = &d->ports[port], *r = &d->ports[rport];
    *l = (struct evtchn){EVS_INTERDOMAIN, 0, rdom, rport, 0, -1};
    r->state = EVS_INTERDOMAIN;
    r->remote_port = (uint32_t)port;
    b->local_port = (evtchn_port_t)port;
    route_port(d, (uint32_t)port);
    route_port(d, rport);
    /* Xen always sets the new local port pending. */
    return deliver(d, (uint32_t)port, l->vcpu);
}

/* A port for a (re-)binding: the one it had before a restore, if any
 * (evtchn_resume.c), else the lowest free one. */
static int alloc_bound(struct domain *d, enum evtchn_state st, uint32_t vcpu,
                       uint32_t virq)
{
    uint32_t p = evtchn_resume_port(d, st, vcpu, virq);

    if (!p)
        return evtchn_alloc(d);
    memset(&d->ports[p], 0, sizeof(d->ports[p]));
    d->ports[p].backend_fd = -1;
    return (int)p;
}

static int op_bind_virq(struct domain *d, struct evtchn_bind_virq *b)
{
    if (b->virq >= NR_VIRQS)
        return -EINVAL;
    if (b->vcpu >= d->nr_vcpus)
        return -ENOENT;
    for (uint32_t p = 1; p < HV_NR_PORTS; p++)
        if (d->ports[p].state == EVS_VIRQ && d->ports[p].virq == b->virq &&
            d->ports[p].vcpu == b->vcpu)
            return -EEXIST;
    int port = alloc_bound(d, EVS_VIRQ, b->vcpu, b->virq);
    if (port < 0)
        return port;
    d->ports[port].state = EVS_VIRQ;
    d->ports[port].virq = b->virq;
    d->ports[port].vcpu = b->vcpu;
    b->port = (evtchn_port_t)port;
    if (b->virq == VIRQ_TIMER) {
        d->vcpus[b->vcpu].timer_port = (uint32_t)port;
        atomic_store(&d->vcpus[b->vcpu].timer_dirty, true);
    }
    return 0;
}

static int op_bind_ipi(struct domain *d, struct evtchn_bind_ipi *b)
{
    if (b->vcpu >= d->nr_vcpus)
        return -ENOENT;
    int port = alloc_bound(d, EVS_IPI, b->vcpu, 0);
    if (port < 0)
        return port;
    d->ports[port].state = EVS_IPI;
    d->ports[port].vcpu = b->vcpu;
    b->port = (evtchn_port_t)port;
    return route_port(d, (uint32_t)port);
}

static void close_port(struct domain *d, uint32_t port)
{
    struct evtchn *e = &d->ports[port];
    if (e->state == EVS_VIRQ && e->virq == VIRQ_TIMER &&
        d->vcpus[e->vcpu].timer_port == port) {
        d->vcpus[e->vcpu].timer_port = 0;
        atomic_store(&d->vcpus[e->vcpu].timer_dirty, true);
    }
    if (e->state == EVS_INTERDOMAIN && e->backend_fd < 0 && e->remote_dom == d->domid &&
        evtchn_valid(d, e->remote_port) && e->remote_port != port) {
        struct evtchn *r = &d->ports[e->remote_port];
        r->state = EVS_UNBOUND;
        r->remote_dom = d->domid;
        d->ops->route_remove(d, e->remote_port);
    }
    d->ops->route_remove(d, port);
    /* As Xen's evtchn_free: an event left pending must not fire at the
     * port's next binding (Linux binds its PV-spinlock kicker, an IPI whose
     * handler BUG()s, again when a CPU comes back online). */
    shinfo_test_and_clear(d, PENDING, port);
    memset(e, 0, sizeof(*e));
    e->backend_fd = -1;
}

static int op_close(struct domain *d, struct evtchn_close *c)
{
    if (!evtchn_valid(d, c->port) || d->ports[c->port].state == EVS_RESERVED)
        return -EINVAL;
    close_port(d, c->port);
    return 0;
}

static int op_status(struct domain *d, struct evtchn_status *s)
{
    if (resolve_dom(d, s->dom) != d->domid)
        return -EPERM;
    if (s->port >= HV_NR_PORTS)
        return -EINVAL;
    struct evtchn *e = &d->ports[s->port];
    static const uint32_t map[] = {
        [EVS_FREE] = EVTCHNSTAT_closed,     [EVS_RESERVED] = EVTCHNSTAT_closed,
        [EVS_UNBOUND] = EVTCHNSTAT_unbound, [EVS_INTERDOMAIN] = EVTCHNSTAT_interdomain,
        [EVS_VIRQ] = EVTCHNSTAT_virq,       [EVS_IPI] = EVTCHNSTAT_ipi,
    };
    s->status = map[e->state];
    s->vcpu = e->vcpu;
    memset(&s->u, 0, sizeof(s->u));
    if (e->state == EVS_UNBOUND)
        s->u.unbound.dom = e->remote_dom;
    else if (e->state == EVS_INTERDOMAIN) {
        s->u.interdomain.dom = e->remote_dom;
        s->u.interdomain.port = e->remote_port;
    } else if (e->state == EVS_VIRQ)
        s->u.virq = e->virq;
    return 0;
}

static int op_bind_vcpu(struct domain *d, struct evtchn_bind_vcpu *b)
{
    if (!evtchn_valid(d, b->port))
        return -ENOENT;
    if (b->vcpu >= d->nr_vcpus)
        return -ENOENT;
    struct evtchn *e = &d->ports[b->port];
    if (e->state == EVS_IPI || (e->state == EVS_VIRQ && e->virq == VIRQ_TIMER) ||
        e->state == EVS_RESERVED)
        return -EINVAL;
    e->vcpu = b->vcpu;
    /* Re-route whatever sends to this port so it reaches the new vCPU. */
    if (e->state == EVS_INTERDOMAIN && e->remote_dom == d->domid && e->backend_fd < 0)
        route_port(d, e->remote_port);
    return 0;
}

/* Unmask: clear the mask bit; if the port is pending, deliver it again so the
 * upcall is raised (the 2-level ABI loses the edge while masked). */
static int op_unmask(struct domain *d, struct evtchn_unmask *u)
{
    if (!evtchn_valid(d, u->port))
        return -EINVAL;
    if (!d->shared_info_gpa)
        return 0;
    shinfo_test_and_clear(d, MASK, u->port);
    if (shinfo_test_and_clear(d, PENDING, u->port))
        return deliver(d, u->port, d->ports[u->port].vcpu);
    return 0;
}

static int op_reset(struct domain *d, struct evtchn_reset *r)
{
    if (resolve_dom(d, r->dom) != d->domid)
        return -EPERM;
    for (uint32_t p = 1; p < HV_NR_PORTS; p++)
        if (d->ports[p].state != EVS_FREE && d->ports[p].state != EVS_RESERVED &&
            d->ports[p].backend_fd < 0)
            close_port(d, p);
    return 0;
}

static int op_send(struct domain *d, struct evtchn_send *s)
{
    if (!evtchn_valid(d, s->port))
        return -EINVAL;
    return send_local(d, s->port);
}

/* Applies the VIRQ_TIMER bindings that changed to KVM, after d->lock is
 * released: set_timer on another vCPU waits for that vCPU's thread, which
 * may itself be waiting for d->lock.  The binding is re-read under the lock
 * and applied until it stops changing, so concurrent changes end with the
 * latest one applied.  Returns the first set_timer failure. */
static int sync_timers(struct domain *d)
{
    int rc = 0;
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        struct vcpu *v = &d->vcpus[i];
        while (atomic_exchange(&v->timer_dirty, false)) {
            pthread_mutex_lock(&d->lock);
            uint32_t port = v->timer_port;
            pthread_mutex_unlock(&d->lock);
            int r = d->ops->set_timer(v, port, port ? v->singleshot_ns : 0);
            rc = rc < 0 ? rc : r;
        }
    }
    return rc;
}

typedef int (*evtchn_fn)(struct domain *d, void *arg);

static const struct {
    evtchn_fn fn;
    size_t size;
    bool out; /* copy the struct back to the guest */
} evtchn_table[] = {
    [EVTCHNOP_bind_interdomain] = {(evtchn_fn)op_bind_interdomain,
                                   sizeof(struct evtchn_bind_interdomain), true},
    [EVTCHNOP_bind_virq] = {(evtchn_fn)op_bind_virq, sizeof(struct evtchn_bind_virq),
                            true},
    [EVTCHNOP_close] = {(evtchn_fn)op_close, sizeof(struct evtchn_close), false},
    [EVTCHNOP_send] = {(evtchn_fn)op_send, sizeof(struct evtchn_send), false},
    [EVTCHNOP_status] = {(evtchn_fn)op_status, sizeof(struct evtchn_status), true},
    [EVTCHNOP_alloc_unbound] = {(evtchn_fn)op_alloc_unbound,
                                sizeof(struct evtchn_alloc_unbound), true},
    [EVTCHNOP_bind_ipi] = {(evtchn_fn)op_bind_ipi, sizeof(struct evtchn_bind_ipi), true},
    [EVTCHNOP_bind_vcpu] = {(evtchn_fn)op_bind_vcpu, sizeof(struct evtchn_bind_vcpu),
                            false},
    [EVTCHNOP_unmask] = {(evtchn_fn)op_unmask, sizeof(struct evtchn_unmask), false},
    [EVTCHNOP_reset] = {(evtchn_fn)op_reset, sizeof(struct evtchn_reset), false},
};

#define EVTCHN_ARG_MAX 64 /* evtchn_op's buffer: every evtchn_table struct fits */
_Static_assert(sizeof(struct evtchn_bind_interdomain) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_bind_virq) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_close) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_send) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_status) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_alloc_unbound) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_bind_ipi) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_bind_vcpu) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_unmask) <= EVTCHN_ARG_MAX &&
                   sizeof(struct evtchn_reset) <= EVTCHN_ARG_MAX,
               "event channel argument structs fit evtchn_op's buffer");

int64_t evtchn_op(struct vcpu *v, unsigned cmd, uint64_t arg)
{
    struct domain *d = v->d;
    uint8_t buf[EVTCHN_ARG_MAX];
    int rc;

    if (cmd >= ARRAY_SIZE(evtchn_table) || !evtchn_table[cmd].fn)
        return -ENOSYS; /* FIFO ABI, priorities, pirqs: not offered */
    if (guest_copy_from(v, buf, arg, evtchn_table[cmd].size) < 0)
        return -EFAULT;
    pthread_mutex_lock(&d->lock);
    rc = evtchn_table[cmd].fn(d, buf);
    pthread_mutex_unlock(&d->lock);
    int trc = sync_timers(d);
    rc = rc < 0 ? rc : trc;
    if (rc == 0 && evtchn_table[cmd].out &&
        guest_copy_to(v, arg, buf, evtchn_table[cmd].size) < 0)
        rc = -EFAULT;
    return rc;
}

int evtchn_alloc_backend_port(struct domain *d, int fd)
{
    pthread_mutex_lock(&d->lock);
    int port = evtchn_alloc(d);
    if (port > 0) {
        d->ports[port] = (struct evtchn){EVS_INTERDOMAIN, 0, 0, 0, 0, fd};
        int rc = route_port(d, (uint32_t)port);
        if (rc < 0) {
            close_port(d, (uint32_t)port);
            port = rc;
        }
    }
    pthread_mutex_unlock(&d->lock);
    sync_timers(d);
    return port;
}

int evtchn_bind_backend(struct domain *d, uint32_t port, int fd)
{
    int rc = -EINVAL;

    pthread_mutex_lock(&d->lock);
    if (evtchn_valid(d, port) && d->ports[port].state == EVS_UNBOUND &&
        d->ports[port].remote_dom == 0 && fd >= 0) {
        uint32_t vcpu = d->ports[port].vcpu;
        d->ports[port] = (struct evtchn){EVS_INTERDOMAIN, vcpu, 0, 0, 0, fd};
        rc = route_port(d, port);
        if (rc < 0) {
            d->ports[port] = (struct evtchn){EVS_UNBOUND, vcpu, 0, 0, 0, -1};
            d->ops->route_remove(d, port);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int evtchn_unbind_backend(struct domain *d, uint32_t port, int fd)
{
    int rc = -EINVAL;

    pthread_mutex_lock(&d->lock);
    if (evtchn_valid(d, port) && d->ports[port].state == EVS_INTERDOMAIN &&
        d->ports[port].backend_fd == fd && fd >= 0) {
        d->ops->route_remove(d, port);
        d->ports[port].state = EVS_UNBOUND;
        d->ports[port].backend_fd = -1;
        rc = 0;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int evtchn_notify_guest(struct domain *d, uint32_t port)
{
    pthread_mutex_lock(&d->lock);
    int rc = evtchn_valid(d, port) ? deliver(d, port, d->ports[port].vcpu) : -EINVAL;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void evtchn_notify_logged(struct domain *d, uint32_t port, const char *who, bool *said)
{
    int rc = evtchn_notify_guest(d, port);

    if (rc < 0 && !*said)
        dwarn("%s: raising port %u: %s", who, port, strerror(-rc));
    *said = *said || rc < 0;
}

int evtchn_route(struct domain *d, uint32_t port)
{
    return evtchn_valid(d, port) ? route_port(d, port) : -EINVAL;
}
