#include "domus/hv.h"
#include "domus/util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void domain_init(struct domain *d, uint32_t domid, const char *name, unsigned nr_vcpus,
                 const struct hv_ops *ops)
{
    d->domid = domid;
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->ops = ops;
    d->nr_vcpus = nr_vcpus;
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->gnt_lock, NULL);
    pthread_mutex_init(&d->res.lock, NULL);
    d->log_rl = (struct dratelimit)DRATELIMIT_INIT(10, 5000);
    for (unsigned i = 0; i < HV_MAX_VCPUS; i++) {
        d->vcpus[i].d = d;
        d->vcpus[i].id = i;
        d->vcpus[i].fd = -1;
        pthread_mutex_init(&d->vcpus[i].call_lock, NULL);
        pthread_cond_init(&d->vcpus[i].call_cond, NULL);
        pthread_mutex_init(&d->vcpus[i].sched_lock, NULL);
        pthread_cond_init(&d->vcpus[i].sched_cond, NULL);
    }
    d->event_fd = -1;
    d->mem.fd = -1;
    for (unsigned p = 0; p < HV_NR_PORTS; p++)
        d->ports[p].backend_fd = -1;
    d->ports[0].state = EVS_RESERVED;
    d->gnt_version = 1;
    atomic_store(&d->shutdown_reason, -1);
}

bool domain_shutdown(struct domain *d, int reason)
{
    int expected = -1;
    if (!atomic_compare_exchange_strong(&d->shutdown_reason, &expected, reason))
        return false;
    if (d->event_fd >= 0) {
        uint64_t one = 1;
        if (write(d->event_fd, &one, sizeof(one)) < 0)
            dwarn("dom%u: cannot signal shutdown: %s", d->domid, strerror(errno));
    }
    for (unsigned i = 0; i < d->nr_vcpus; i++)
        sched_wake(&d->vcpus[i]); /* out of SCHEDOP_block/poll */
    return true;
}

/* Walks [gva, gva+len) page by page; fn copies one chunk between host and guest. */
static int guest_walk(struct vcpu *v, uint64_t gva, size_t len, uint8_t *host,
                      bool to_guest)
{
    while (len) {
        uint64_t gpa;
        size_t chunk = DOMUS_PAGE_SIZE - (gva & (DOMUS_PAGE_SIZE - 1));
        if (chunk > len)
            chunk = len;
        if (v->d->ops->translate(v, gva, &gpa) < 0)
            return -EFAULT;
        uint8_t *p = gmem_ptr(&v->d->mem, gpa, chunk);
        if (!p)
            return -EFAULT;
        if (to_guest) { /* Domus's writes are not in KVM's dirty log */
            memcpy(p, host, chunk);
            gmem_mark_dirty(&v->d->mem, gpa, chunk);
        } else
            memcpy(host, p, chunk);
        gva += chunk;
        host += chunk;
        len -= chunk;
    }
    return 0;
}

int guest_copy_from(struct vcpu *v, void *dst, uint64_t gva, size_t len)
{
    return guest_walk(v, gva, len, dst, false);
}

int guest_copy_to(struct vcpu *v, uint64_t gva, const void *src, size_t len)
{
    return guest_walk(v, gva, len, (uint8_t *)src, true);
}
