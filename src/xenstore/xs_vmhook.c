/* INTRODUCE hook: fetch a guest's xenstore ring from its domus-vm process. */
#include "domus/xs_vmhook.h"
#include "domus/gmem.h"
#include "domus/util.h"

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

static int connect_control(const char *run_dir, unsigned domid)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/dom%u.control", run_dir, domid);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -ENOENT;
    }
    return fd;
}

/* Sends "xs-ring" and receives the reply line and its fds (-1 where absent). */
static int ask_ring(int fd, char *line, size_t len, int fds[NFDS])
{
    if (send(fd, "xs-ring\n", 8, MSG_NOSIGNAL) != 8)
        return -EIO;
    char cbuf[CMSG_SPACE(NFDS * sizeof(int))];
    struct iovec iov = {line, len - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    if (n <= 0)
        return -EIO;
    line[n] = 0;
    for (int i = 0; i < NFDS; i++)
        fds[i] = -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(NFDS * sizeof(int)))
        memcpy(fds, CMSG_DATA(cm), NFDS * sizeof(int));
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

int xs_vmhook_map(void *run_dir, unsigned domid, uint64_t gfn, unsigned evtchn, void **page,
                  int *notify_fd, int *kick_fd)
{
    char line[160];
    int fds[NFDS] = {-1, -1, -1}, rc;
    uint64_t rgfn, offset;
    unsigned rport;
    int fd = connect_control(run_dir, domid);
    if (fd < 0)
        return fd;
    rc = ask_ring(fd, line, sizeof(line), fds);
    close(fd);
    if (rc < 0)
        goto out;
    rc = -EINVAL;
    if (sscanf(line, "ok gfn=%" SCNu64 " port=%u offset=%" SCNu64, &rgfn, &rport, &offset) != 3 ||
        fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || rgfn != gfn || rport != evtchn ||
        offset % DOMUS_PAGE_SIZE)
        goto out;
    rc = sealed_page(fds[0], offset);
    if (rc < 0)
        goto out;
    void *p = mmap(NULL, DOMUS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], (off_t)offset);
    if (p == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    close(fds[0]);
    *page = p;
    *kick_fd = fds[1];
    *notify_fd = fds[2];
    return 0;
out:
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
