/* The guest end of xenstore, on the hypervisor side: the ring page
 * (struct xenstore_domain_interface in the domain's special page), the event
 * channel, and the two eventfds xenstored uses (see xs_ring_hooks in
 * xenstore.h): kick_fd becomes readable when the guest notifies, and
 * writing 1 to notify_fd raises the guest's event channel. */
#ifndef DOMUS_STORERING_H
#define DOMUS_STORERING_H

#include "domus/hv.h"

#include <stddef.h>

struct store_ring;

/* Sets up the page, the eventfds, the event channel and
 * HVM_PARAM_STORE_PFN/STORE_EVTCHN, and starts the notify thread.  0 or
 * -errno with a reason in err. */
int store_ring_start(struct domain *d, struct store_ring **out, char *err, size_t errlen);

/* What xenstored needs to attach: the memfd of the domain's memory, the
 * page's offset in it, the guest frame number, the event channel port and
 * the two eventfds (owned by the store_ring). */
void store_ring_info(const struct store_ring *r, int *mem_fd, uint64_t *offset,
                     uint64_t *gfn, uint32_t *port, int *kick_fd, int *notify_fd);

/* Stops the thread and closes the eventfds.  NULL is fine. */
void store_ring_stop(struct store_ring *r);

#endif
