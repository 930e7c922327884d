/* Hypervisor side of the xenstore ring (contract: storering.h). */
#include "domus/storering.h"
#include "domus/sandbox.h"
#include "domus/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <xen/io/xs_wire.h>

struct store_ring {
    struct domain *d;
    uint64_t gpa;
    uint32_t port;
    int kick_fd, notify_fd, stop_fd;
    pthread_t thread;
    bool thread_started;
};

/* xenstored wrote notify_fd: raise the guest's event channel. */
static void *notify_thread(void *arg)
{
    struct store_ring *r = arg;
    struct pollfd p[2] = {{.fd = r->notify_fd, .events = POLLIN},
                          {.fd = r->stop_fd, .events = POLLIN}};
    bool failed = false; /* raising the port: said once */
    char who[40];

    snprintf(who, sizeof(who), "dom%u xenstore ring", r->d->domid);
    sandbox_thread(who, SANDBOX_EVTCHN);
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            dwarn("%s: poll: %s; the notify thread ends", who, strerror(errno));
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        uint64_t v;
        if (p[0].revents && read(r->notify_fd, &v, sizeof(v)) == sizeof(v))
            evtchn_notify_logged(r->d, r->port, who, &failed);
    }
}

static int open_fds(struct store_ring *r)
{
    r->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->stop_fd = eventfd(0, EFD_CLOEXEC);
    return r->kick_fd < 0 || r->notify_fd < 0 || r->stop_fd < 0 ? -errno : 0;
}

int store_ring_start(struct domain *d, struct store_ring **out, char *err, size_t errlen)
{
    int rc;
    struct store_ring *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->d = d;
    r->kick_fd = r->notify_fd = r->stop_fd = -1;
    r->gpa = GMEM_SPECIAL_BASE + GMEM_SPECIAL_XENSTORE * DOMUS_PAGE_SIZE;
    memset(gmem_ptr(&d->mem, r->gpa, DOMUS_PAGE_SIZE), 0, DOMUS_PAGE_SIZE);
    if ((rc = open_fds(r)) < 0) {
        dfmt(err, errlen, "xenstore ring: %s", strerror(-rc));
        goto out;
    }
    if ((rc = evtchn_alloc_backend_port(d, r->kick_fd)) < 0) {
        dfmt(err, errlen, "xenstore event channel: %s", strerror(-rc));
        goto out;
    }
    r->port = (uint32_t)rc;
    if ((rc = -pthread_create(&r->thread, NULL, notify_thread, r)) < 0) {
        dfmt(err, errlen, "xenstore thread: %s", strerror(-rc));
        goto out;
    }
    r->thread_started = true;
    d->hvm_params[HVM_PARAM_STORE_PFN] = r->gpa >> DOMUS_PAGE_SHIFT;
    d->hvm_params[HVM_PARAM_STORE_EVTCHN] = r->port;
    *out = r;
    return 0;
out:
    store_ring_stop(r);
    return rc;
}

void store_ring_info(const struct store_ring *r, int *mem_fd, uint64_t *offset,
                     uint64_t *gfn, uint32_t *port, int *kick_fd, int *notify_fd)
{
    *mem_fd = r->d->mem.fd;
    *offset = (uint64_t)gmem_fd_offset(&r->d->mem, r->gpa);
    *gfn = r->gpa >> DOMUS_PAGE_SHIFT;
    *port = r->port;
    *kick_fd = r->kick_fd;
    *notify_fd = r->notify_fd;
}

void store_ring_stop(struct store_ring *r)
{
    if (!r)
        return;
    if (r->thread_started) {
        uint64_t one = 1;
        if (write(r->stop_fd, &one, sizeof(one)) == sizeof(one))
            pthread_join(r->thread, NULL);
    }
    int fds[] = {r->kick_fd, r->notify_fd, r->stop_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(r);
}
