/* How domus-xenstored reaches a guest's xenstore ring: on INTRODUCE it asks
 * the domain's process (domus-vm, control socket <run_dir>/dom<N>.control)
 * for the ring with "xs-ring" and maps the page from the memory fd it gets
 * back (the request and its reply: vmctl.h). */
#ifndef DOMUS_XS_VMHOOK_H
#define DOMUS_XS_VMHOOK_H

#include "domus/xenstore.h"

/* Installs the INTRODUCE/RELEASE hooks on d; run_dir is copied.  0 or
 * -ENOMEM. */
int xs_vmhook_install(struct xs_daemon *d, const char *run_dir);

/* The map hook itself, exposed for tests: fetches and maps domid's ring.
 * The gfn and event channel must match what the domain reports (-EINVAL
 * otherwise); -ENOENT when no such domain process answers. */
int xs_vmhook_map(void *run_dir, unsigned domid, uint64_t gfn, unsigned evtchn,
                  void **page, int *notify_fd, int *kick_fd);

#endif
