/* A guest's cooperative suspend (SCHEDOP_shutdown(SHUTDOWN_suspend)) and
 * its vCPUs going down and up (VCPUOP_is_up, _down, _up), as Xen does them
 * for an HVM/PVH domain (hv.h). */
#include "domus/hv.h"
#include "domus/util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <xen/sched.h>
#include <xen/vcpu.h>

static void signal_event(struct domain *d)
{
    uint64_t one = 1;

    if (d->event_fd >= 0 && write(d->event_fd, &one, sizeof(one)) < 0)
        dwarn("dom%u: cannot signal the suspend: %s", d->domid, strerror(errno));
}

int64_t hv_suspend(struct vcpu *v)
{
    struct domain *d = v->d;
    bool expected = false;

    if (!atomic_compare_exchange_strong(&d->suspended, &expected, true))
        return -EBUSY;
    atomic_store(&d->suspend_vcpu, v->id);
    atomic_store(&d->suspended_at_ns, drealtime_ns());
    dinfo("dom%u: guest suspended (vcpu%u)", d->domid, v->id);
    if (d->ops && d->ops->suspend)
        d->ops->suspend(v);
    signal_event(d);
    return 0;
}

/* Whether every vCPU but t is down. */
static bool others_down(const struct domain *d, const struct vcpu *t)
{
    for (unsigned i = 0; i < d->nr_vcpus; i++)
        if (&d->vcpus[i] != t && !atomic_load(&d->vcpus[i].down))
            return false;
    return true;
}

int64_t hv_vcpu_updown(struct vcpu *t, unsigned cmd)
{
    struct domain *d = t->d;

    switch (cmd) {
    case VCPUOP_is_up:
        return !atomic_load(&t->down);
    case VCPUOP_down:
        if (others_down(d, t)) { /* the last one: Xen powers the domain off */
            domain_shutdown(d, SHUTDOWN_poweroff);
            return 0;
        }
        if (!atomic_exchange(&t->down, true) && d->ops && d->ops->kick)
            d->ops->kick(t);
        return 0;
    case VCPUOP_up:
        atomic_store(&t->down, false);
        if (d->ops && d->ops->kick)
            d->ops->kick(t);
        return 0;
    default:
        return -EINVAL;
    }
}
