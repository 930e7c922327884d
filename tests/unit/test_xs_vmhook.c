/* Unit tests of xenstored's INTRODUCE hook (xs_vmhook.h) against a fake
 * domus-vm: a control socket that answers "xs-ring" with a memory fd and
 * two eventfds.  xenstored maps the ring page only from a memfd whose size
 * is sealed, as gmem_init makes guest memory: an unsealed one could be
 * shrunk under the mapping and fault the daemon. */
#include "domus/gmem.h"
#include "domus/util.h"
#include "domus/vmctl.h"
#include "domus/xs_vmhook.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

#define GFN 0x1234
#define PORT 7

struct fake_vm {
    int listen_fd;
    int mem_fd; /* handed out on "xs-ring" */
    pthread_t thread;
};

/* Answers one "xs-ring" as domus-vm does (vmctl.h): a JSON line and three
 * fds. */
static void *serve_one(void *arg)
{
    struct fake_vm *vm = arg;
    char req[256];
    unsigned nfds = 0;
    int c = accept(vm->listen_fd, NULL, NULL);
    if (c < 0)
        return NULL;
    if (vmctl_recv_line(c, req, sizeof(req), NULL, &nfds, 2000) == 0) {
        int fds[3] = {vm->mem_fd, eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
        json_object *o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "gfn", json_object_new_int64(GFN));
        json_object_object_add(o, "port", json_object_new_int64(PORT));
        json_object_object_add(o, "offset", json_object_new_int64(4096));
        if (vmctl_send(c, o, fds, 3) < 0)
            perror("vmctl_send");
        json_object_put(o);
        close(fds[1]);
        close(fds[2]);
    }
    close(c);
    return NULL;
}

/* Maps domain 5's ring through a fake domus-vm handing out mem_fd. */
static int map_from(const char *dir, int mem_fd)
{
    char path[256], err[128];
    struct fake_vm vm = {.mem_fd = mem_fd};
    void *page = NULL;
    int nfd = -1, kfd = -1, rc;

    snprintf(path, sizeof(path), "%s/dom5.control", dir);
    vm.listen_fd = unix_listen(path, 0, "control socket", err, sizeof(err));
    if (vm.listen_fd < 0 || pthread_create(&vm.thread, NULL, serve_one, &vm))
        abort();
    rc = xs_vmhook_map((void *)dir, 5, GFN, PORT, &page, &nfd, &kfd);
    pthread_join(vm.thread, NULL);
    close(vm.listen_fd);
    unlink(path);
    if (page)
        munmap(page, 4096);
    if (nfd >= 0)
        close(nfd);
    if (kfd >= 0)
        close(kfd);
    return rc;
}

int main(void)
{
    char dir[] = "/tmp/domus-test-vmhook-XXXXXX";
    struct gmem m;
    if (!mkdtemp(dir) || gmem_init(&m, GMEM_MIN_RAM) < 0)
        return 1;
    int seals = fcntl(m.fd, F_GET_SEALS);
    CHECK("guest memory is sealed against shrinking and growing, and further seals",
          seals >= 0 &&
              (seals & (GMEM_SEALS | F_SEAL_SEAL)) == (GMEM_SEALS | F_SEAL_SEAL));
    CHECK("... so it cannot be cut down", ftruncate(m.fd, 4096) < 0 && errno == EPERM);
    CHECK("xenstored maps the ring from sealed guest memory", map_from(dir, m.fd) == 0);

    int loose = memfd_create("loose", MFD_CLOEXEC);
    if (loose < 0 || ftruncate(loose, 1 << 20) < 0)
        return 1;
    CHECK("xenstored refuses a memory fd whose size is not sealed",
          map_from(dir, loose) == -EINVAL);
    int short_fd = memfd_create("short", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (short_fd < 0 || ftruncate(short_fd, 4096) < 0 ||
        fcntl(short_fd, F_ADD_SEALS, GMEM_SEALS) < 0)
        return 1;
    CHECK("xenstored refuses a ring page beyond the end of the memory",
          map_from(dir, short_fd) == -EINVAL);
    close(loose);
    close(short_fd);
    gmem_destroy(&m);
    rmdir(dir);
    return failures ? 1 : 0;
}
