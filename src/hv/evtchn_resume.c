/* Event channels of a domain restored after the guest's own suspend: the
 * guest re-binds its VIRQs and IPIs (Linux's xen_irq_resume) and maps its
 * shared_info again, and expects each port masked or not as its IRQ state
 * says, without masking or unmasking anything itself.  So the re-bound
 * ports get the numbers they had before, and the evtchn_mask words the
 * restored memory holds are kept (hv.h). */
#include "domus/hv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xen/xen.h>

int evtchn_resume_set(struct domain *d, const struct evtchn *t)
{
    struct evtchn *h = calloc(HV_NR_PORTS, sizeof(*h));

    if (!h)
        return -ENOMEM;
    for (uint32_t p = 1; p < HV_NR_PORTS; p++)
        if (t[p].state == EVS_VIRQ || t[p].state == EVS_IPI)
            h[p] = t[p];
    pthread_mutex_lock(&d->lock);
    free(d->resume_ports);
    d->resume_ports = h;
    d->resume_masks = true;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

uint32_t evtchn_resume_port(struct domain *d, enum evtchn_state state, uint32_t vcpu,
                            uint32_t virq)
{
    struct evtchn *h = d->resume_ports;

    for (uint32_t p = 1; h && p < HV_NR_PORTS; p++) {
        if (h[p].state != state || h[p].vcpu != vcpu ||
            (state == EVS_VIRQ && h[p].virq != virq))
            continue;
        h[p].state = EVS_FREE; /* used up, whether or not it is free */
        if (d->ports[p].state == EVS_FREE)
            return p;
    }
    return 0;
}

void evtchn_resume_shinfo(struct domain *d, void *page)
{
    struct shared_info *si = page;
    xen_ulong_t mask[sizeof(si->evtchn_mask) / sizeof(xen_ulong_t)];
    bool keep;

    pthread_mutex_lock(&d->lock);
    keep = d->resume_masks;
    d->resume_masks = false;
    pthread_mutex_unlock(&d->lock);
    if (keep)
        memcpy(mask, si->evtchn_mask, sizeof(mask));
    memset(page, 0, DOMUS_PAGE_SIZE);
    if (keep)
        memcpy(si->evtchn_mask, mask, sizeof(mask));
}

void evtchn_resume_free(struct domain *d)
{
    pthread_mutex_lock(&d->lock);
    free(d->resume_ports);
    d->resume_ports = NULL;
    d->resume_masks = false;
    pthread_mutex_unlock(&d->lock);
}
