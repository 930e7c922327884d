/* INTRODUCE hook: fetch a guest's xenstore ring from its domus-vm process. */
#include "domus/xs_vmhook.h"
#include "domus/gmem.h"
#include "domus/util.h"
#include "domus/vmctl.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NFDS 3 /* memory fd, kick fd, notify fd */

/* Asks the domain's domus-vm for its ring (vmctl.h "xs-ring"): the reply and
 * its three fds (memory, kick, notify), all of them or none. */
static int ask_ring(const char *run_dir, unsigned domid, json_object **reply,
                    int fds[NFDS])
{
    struct sockaddr_un sa;
    char path[sizeof(sa.sun_path)];
    unsigned nfds = NFDS;
    json_object *req;
    int n = snprintf(path, sizeof(path), "%s/dom%u.control", run_dir, domid), rc;

    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    req = vmctl_req("xs-ring");
    rc = vmctl_call(path, req, reply, fds, &nfds, 2000);
    json_object_put(req);
    if (rc == -ECONNREFUSED || rc == -ENOENT)
        return -ENOENT;
    if (rc)
        return rc;
    if (!vmctl_ok(*reply, NULL) || nfds != NFDS) {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        json_object_put(*reply);
        *reply = NULL;
        return -EINVAL;
    }
    return 0;
}

/* Is the page at offset inside memfd fd, whose size is sealed (GMEM_SEALS)?
 * Without the seals, the other side could shrink the file under our
 * mapping and fault the daemon with SIGBUS.  0 or -EINVAL. */
static int sealed_page(int fd, uint64_t offset)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);

    if (seals < 0 || (seals & GMEM_SEALS) != GMEM_SEALS || fstat(fd, &st) < 0 ||
        offset > (uint64_t)st.st_size || st.st_size - offset < DOMUS_PAGE_SIZE)
        return -EINVAL;
    return 0;
}

int xs_vmhook_map(void *run_dir, unsigned domid, uint64_t gfn, unsigned evtchn,
                  void **page, int *notify_fd, int *kick_fd)
{
    int fds[NFDS] = {-1, -1, -1}, rc;
    uint64_t rgfn, rport, offset;
    json_object *reply = NULL;

    rc = ask_ring(run_dir, domid, &reply, fds);
    if (rc < 0)
        return rc;
    rc = -EINVAL;
    if (vmctl_get_u64(reply, "gfn", UINT64_MAX, &rgfn) ||
        vmctl_get_u64(reply, "port", UINT32_MAX, &rport) ||
        vmctl_get_u64(reply, "offset", INT64_MAX, &offset) || rgfn != gfn ||
        rport != evtchn || offset % DOMUS_PAGE_SIZE)
        goto out;
    rc = sealed_page(fds[0], offset);
    if (rc < 0)
        goto out;
    void *p = mmap(NULL, DOMUS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
                   (off_t)offset);
    if (p == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    close(fds[0]);
    json_object_put(reply);
    *page = p;
    *kick_fd = fds[1];
    *notify_fd = fds[2];
    return 0;
out:
    json_object_put(reply);
    for (int i = 0; i < NFDS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return rc;
}

static void vm_unmap(void *opaque, unsigned domid, void *page, int notify_fd, int kick_fd)
{
    (void)opaque;
    (void)domid;
    if (page)
        munmap(page, DOMUS_PAGE_SIZE);
    if (notify_fd >= 0)
        close(notify_fd);
    if (kick_fd >= 0)
        close(kick_fd);
}

int xs_vmhook_install(struct xs_daemon *d, const char *run_dir)
{
    char *dir = strdup(run_dir); /* lives as long as the daemon */
    if (!dir)
        return -ENOMEM;
    struct xs_ring_hooks h = {.opaque = dir, .map = xs_vmhook_map, .unmap = vm_unmap};
    xs_daemon_set_ring_hooks(d, &h);
    return 0;
}
