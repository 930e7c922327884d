/* domus-vm: the process that runs one guest domain (contract: vmproc.h). */
#include "domus/blkback.h"
#include "domus/netback.h"
#include "domus/builder.h"
#include "domus/console.h"
#include "domus/hv.h"
#include "domus/kvm.h"
#include "domus/storering.h"
#include "domus/util.h"
#include "domus/vmproc.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xen/arch-x86/hvm/start_info.h>
#include <xen/sched.h>

struct vm_args {
    unsigned domid;
    const char *name, *kernel, *ramdisk, *cmdline;
    uint64_t memory_mb, maxmem_mb;
    unsigned vcpus;
    const char *console_log, *console_sock, *control_sock;
    int ready_fd;
    bool xenstore;
    const char *xs_path;
    struct blkback_cfg disks[VM_MAX_DISKS];
    unsigned n_disks;
    struct netback_cfg vifs[VM_MAX_VIFS];
    unsigned n_vifs;
};

static struct domain dom;
static struct blkback *blk[VM_MAX_DISKS];
static uint32_t blk_id[VM_MAX_DISKS]; /* devid of blk[i] */
static struct netback *vif[VM_MAX_VIFS];
static uint32_t vif_id[VM_MAX_VIFS]; /* devid of vif[i] */
static struct store_ring *store;
static const char *xs_path; /* --xenstore-path, for hot-plugged back ends */

static void usage(void)
{
    fprintf(stderr,
            "usage: domus-vm --domid N --name NAME --kernel PATH [--ramdisk PATH]\n"
            "       [--cmdline STR] --memory MIB [--maxmem MIB] --vcpus N\n"
            "       --console-log PATH --console-sock PATH --control-sock PATH\n"
            "       [--ready-fd FD] [--xenstore] [--xenstore-path SOCK]\n"
            "       [--disk DEVID:r|w:PATH]... [--vif DEVID,MAC,BRIDGE[,MTU]]...\n");
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* "DEVID:r|w:PATH" (the path may hold colons) into *c (path points into s). */
static int disk_spec(char *s, struct blkback_cfg *c)
{
    char *m = strchr(s, ':');
    uint64_t devid;

    if (!m || (m[1] != 'r' && m[1] != 'w') || m[2] != ':' || !m[3])
        return -EINVAL;
    *m = '\0';
    if (parse_uint(s, UINT32_MAX, &devid) || !devid)
        return -EINVAL;
    *c = (struct blkback_cfg){(uint32_t)devid, m[1] == 'w', m + 3, NULL};
    return 0;
}

static int parse_disk(char *s, struct vm_args *a)
{
    if (a->n_disks >= VM_MAX_DISKS || disk_spec(s, &a->disks[a->n_disks]))
        return -EINVAL;
    a->n_disks++;
    return 0;
}

/* "DEVID,MAC,BRIDGE[,MTU]" into *v (BRIDGE: an interface name, < 16). */
static int vif_spec(const char *s, struct netback_cfg *v)
{
    unsigned devid, mtu = 1500, m[6];
    int end = 0, end2 = 0;

    *v = (struct netback_cfg){0};
    if (sscanf(s, "%u,%x:%x:%x:%x:%x:%x,%15[^,]%n", &devid, &m[0], &m[1], &m[2], &m[3],
               &m[4], &m[5], v->bridge, &end) != 8 ||
        (s[end] == ',' && sscanf(s + end, ",%u%n", &mtu, &end2) != 1) || s[end + end2] ||
        mtu < 68 || mtu > 65535)
        return -EINVAL;
    v->devid = devid;
    v->mtu = mtu;
    for (int i = 0; i < 6; i++) {
        if (m[i] > 255)
            return -EINVAL;
        v->mac[i] = (uint8_t)m[i];
    }
    return 0;
}

static int parse_vif(const char *s, struct vm_args *a)
{
    if (a->n_vifs >= VM_MAX_VIFS || vif_spec(s, &a->vifs[a->n_vifs]))
        return -EINVAL;
    a->n_vifs++;
    return 0;
}

static int parse_args(int argc, char **argv, struct vm_args *a)
{
    static const struct option opts[] = {{"domid", 1, 0, 'd'},
                                         {"name", 1, 0, 'n'},
                                         {"kernel", 1, 0, 'k'},
                                         {"ramdisk", 1, 0, 'r'},
                                         {"cmdline", 1, 0, 'c'},
                                         {"memory", 1, 0, 'm'},
                                         {"maxmem", 1, 0, 'M'},
                                         {"vcpus", 1, 0, 'v'},
                                         {"console-log", 1, 0, 'l'},
                                         {"console-sock", 1, 0, 's'},
                                         {"control-sock", 1, 0, 'C'},
                                         {"ready-fd", 1, 0, 'R'},
                                         {"xenstore", 0, 0, 'X'},
                                         {"xenstore-path", 1, 0, 'P'},
                                         {"disk", 1, 0, 'D'},
                                         {"vif", 1, 0, 'N'},
                                         {0, 0, 0, 0}};
    uint64_t v;
    int c;
    memset(a, 0, sizeof(*a));
    a->ready_fd = -1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (parse_uint(optarg, 0x7fef, &v))
                return -EINVAL;
            a->domid = (unsigned)v;
            break;
        case 'n':
            a->name = optarg;
            break;
        case 'k':
            a->kernel = optarg;
            break;
        case 'r':
            a->ramdisk = optarg;
            break;
        case 'c':
            a->cmdline = optarg;
            break;
        case 'm':
            if (parse_uint(optarg, 1ULL << 24, &a->memory_mb))
                return -EINVAL;
            break;
        case 'M':
            if (parse_uint(optarg, 1ULL << 24, &a->maxmem_mb))
                return -EINVAL;
            break;
        case 'v':
            if (parse_uint(optarg, HV_MAX_VCPUS, &v) || !v)
                return -EINVAL;
            a->vcpus = (unsigned)v;
            break;
        case 'l':
            a->console_log = optarg;
            break;
        case 's':
            a->console_sock = optarg;
            break;
        case 'C':
            a->control_sock = optarg;
            break;
        case 'R':
            if (parse_uint(optarg, 1 << 20, &v))
                return -EINVAL;
            a->ready_fd = (int)v;
            break;
        case 'X':
            a->xenstore = true;
            break;
        case 'P':
            a->xs_path = optarg;
            break;
        case 'D':
            if (parse_disk(optarg, a))
                return -EINVAL;
            break;
        case 'N':
            if (parse_vif(optarg, a))
                return -EINVAL;
            break;
        default:
            return -EINVAL;
        }
    }
    if (optind != argc || !a->name || !a->kernel || !a->memory_mb || !a->vcpus ||
        ((a->n_disks || a->n_vifs) && (!a->xenstore || !a->xs_path)))
        return -EINVAL;
    return 0;
}

/* Seconds since the process started, for debug timings. */
static double elapsed(void)
{
    static uint64_t t0;
    uint64_t t = dnow_ns();
    if (!t0)
        t0 = t;
    return (double)(t - t0) / 1e9;
}

/* Host memory check: refuse what the host cannot back. */
static int check_host_memory(uint64_t mb, char *err, size_t errlen)
{
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t avail = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz >> 20 : 0;
    if (avail && mb > avail) {
        dfmt(err, errlen, "memory: %llu MiB requested, host has %llu MiB available",
             (unsigned long long)mb, (unsigned long long)avail);
        return -ENOMEM;
    }
    return 0;
}

/* Copies the memory map the builder wrote into the domain (XENMEM_memory_map). */
static void record_memmap(struct domain *d, uint64_t start_info_gpa)
{
    struct hvm_start_info *si = gmem_ptr(&d->mem, start_info_gpa, sizeof(*si));
    if (!si)
        return;
    unsigned n = si->memmap_entries < ARRAY_SIZE(d->memmap)
                     ? si->memmap_entries
                     : (unsigned)ARRAY_SIZE(d->memmap);
    struct hvm_memmap_table_entry *e =
        gmem_ptr(&d->mem, si->memmap_paddr, n * sizeof(*e) + !n);
    for (unsigned i = 0; e && i < n; i++) {
        d->memmap[i].addr = e[i].addr;
        d->memmap[i].size = e[i].size;
        d->memmap[i].type = e[i].type;
    }
    d->memmap_n = e ? n : 0;
}

static int build(struct domain *d, const struct vm_args *a, char *err, size_t errlen)
{
    int rc = check_host_memory(a->memory_mb, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = gmem_init(&d->mem, a->memory_mb << 20)) < 0) {
        dfmt(err, errlen, "guest memory (%llu MiB): %s", (unsigned long long)a->memory_mb,
             strerror(-rc));
        return rc;
    }
    struct build_args ba = {a->kernel, a->ramdisk, a->cmdline, a->vcpus};
    struct build_result br;
    if ((rc = builder_build_pvh(&d->mem, &ba, &br, err, errlen)) < 0)
        return rc;
    dlog_debug("dom%u: built (%.3f s)", d->domid, elapsed());
    record_memmap(d, br.start_info_gpa);
    if ((rc = kvm_domain_create(d, err, errlen)) < 0)
        return rc;
    dlog_debug("dom%u: KVM VM created (%.3f s)", d->domid, elapsed());
    if ((rc = kvm_boot_vcpu_setup(d, br.entry, br.start_info_gpa)) < 0)
        dfmt(err, errlen, "boot vCPU set-up: %s", strerror(-rc));
    return rc;
}

/* ---- control socket ---- */

/* Hands xenstored what it needs to serve the guest's ring: the memory fd and
 * the page offset, and the two eventfds (SCM_RIGHTS). */
static void send_store_ring(int fd)
{
    char line[128];
    int fds[3];
    uint64_t offset, gfn;
    uint32_t port;
    if (!store) {
        snprintf(line, sizeof(line), "error: no xenstore ring\n");
        send(fd, line, strlen(line), MSG_NOSIGNAL);
        return;
    }
    store_ring_info(store, &fds[0], &offset, &gfn, &port, &fds[1], &fds[2]);
    snprintf(line, sizeof(line), "ok gfn=%llu port=%u offset=%llu\n",
             (unsigned long long)gfn, port, (unsigned long long)offset);
    char cbuf[CMSG_SPACE(sizeof(fds))];
    struct iovec iov = {line, strlen(line)};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
        dwarn("xs-ring: %s", strerror(errno));
}

/* ---- hot-plug (control socket) ---- */

/* Slot of devid among n back ends (ids/present), or -1. */
static int slot_of(void *const *be, const uint32_t *ids, unsigned n, uint32_t devid)
{
    for (unsigned i = 0; i < n; i++)
        if (be[i] && ids[i] == devid)
            return (int)i;
    return -1;
}

static int free_slot(void *const *be, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!be[i])
            return (int)i;
    return -1;
}

/* "disk-attach DEVID:r|w:PATH", "disk-detach DEVID", "vif-attach
 * DEVID,MAC,BRIDGE[,MTU]", "vif-detach DEVID": the reply line in out. */
static void hotplug(const char *cmd, char *out, size_t len)
{
    char err[400] = "", arg[4096];
    bool disk = !strncmp(cmd, "disk-", 5);
    const char *op = cmd + 5 - !disk; /* "attach ..." / "detach ..." */
    void *const *be = disk ? (void *const *)blk : (void *const *)vif;
    const uint32_t *ids = disk ? blk_id : vif_id;
    unsigned n = disk ? VM_MAX_DISKS : VM_MAX_VIFS;
    uint64_t devid;
    int i, rc;

    if (!xs_path) {
        snprintf(out, len, "error: the domain has no xenstore\n");
        return;
    }
    if (!strncmp(op, "detach ", 7)) {
        if (parse_uint(op + 7, UINT32_MAX, &devid) ||
            (i = slot_of(be, ids, n, (uint32_t)devid)) < 0) {
            snprintf(out, len, "error: no %s with devid %s\n", disk ? "disk" : "vif",
                     op + 7);
            return;
        }
        if (disk) {
            blkback_stop(blk[i]);
            blk[i] = NULL;
        } else {
            netback_stop(vif[i]);
            vif[i] = NULL;
        }
        dinfo("dom%u: %s %u detached", dom.domid, disk ? "disk" : "vif", (unsigned)devid);
        snprintf(out, len, "ok\n");
        return;
    }
    struct blkback_cfg bc;
    struct netback_cfg nc;
    snprintf(arg, sizeof(arg), "%s", op + 7);
    if (strncmp(op, "attach ", 7) || (disk ? disk_spec(arg, &bc) : vif_spec(arg, &nc))) {
        snprintf(out, len, "error: usage: %s\n",
                 disk ? "disk-attach DEVID:r|w:PATH"
                      : "vif-attach DEVID,MAC,BRIDGE[,MTU]");
        return;
    }
    devid = disk ? bc.devid : nc.devid;
    if (slot_of(be, ids, n, (uint32_t)devid) >= 0) {
        snprintf(out, len, "error: %s %u is already attached\n", disk ? "disk" : "vif",
                 (unsigned)devid);
        return;
    }
    if ((i = free_slot(be, n)) < 0) {
        snprintf(out, len, "error: at most %u %s\n", n, disk ? "disks" : "vifs");
        return;
    }
    if (disk) {
        bc.xs_path = xs_path;
        rc = blkback_start(&dom, &bc, &blk[i], err, sizeof(err));
    } else {
        nc.xs_path = xs_path;
        rc = netback_start(&dom, &nc, &vif[i], err, sizeof(err));
    }
    if (rc < 0) {
        if (disk)
            blk[i] = NULL;
        else
            vif[i] = NULL;
        snprintf(out, len, "error: %s\n", err[0] ? err : strerror(-rc));
        return;
    }
    if (disk)
        blk_id[i] = (uint32_t)devid;
    else
        vif_id[i] = (uint32_t)devid;
    dinfo("dom%u: %s %u attached", dom.domid, disk ? "disk" : "vif", (unsigned)devid);
    snprintf(out, len, "ok\n");
}

static void control_reply(int fd, const char *cmd)
{
    char out[512];
    if (!strncmp(cmd, "disk-", 5) || !strncmp(cmd, "vif-", 4)) {
        hotplug(cmd, out, sizeof(out));
    } else if (!strcmp(cmd, "pause") || !strcmp(cmd, "unpause")) {
        kvm_domain_pause(&dom, cmd[0] == 'p');
        snprintf(out, sizeof(out), "ok\n");
    } else if (!strcmp(cmd, "info")) {
        snprintf(out, sizeof(out), "ok state=%c cputime_ns=%llu mem_kib=%llu vcpus=%u\n",
                 atomic_load(&dom.paused) ? 'p' : 'r',
                 (unsigned long long)kvm_domain_cputime_ns(&dom),
                 (unsigned long long)(dom.mem.ram_size >> 10), dom.nr_vcpus);
    } else if (!strcmp(cmd, "xs-ring")) {
        send_store_ring(fd);
        return;
    } else if (!strncmp(cmd, "shutdown ", 9)) {
        snprintf(out, sizeof(out), "error: PV control interface not available\n");
    } else {
        snprintf(out, sizeof(out), "error: unknown command\n");
    }
    if (send(fd, out, strlen(out), MSG_NOSIGNAL) < 0)
        dlog_debug("control reply: %s", strerror(errno));
}

/* One short-lived connection: read one line, answer it, close. */
static void control_serve(int listen_fd)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char line[4352]; /* disk-attach carries a path */
    ssize_t n = recv(fd, line, sizeof(line) - 1, 0);
    if (n > 0) {
        line[n] = 0;
        line[strcspn(line, "\r\n")] = 0;
        control_reply(fd, line);
    }
    close(fd);
}

/* ---- main loop ---- */

static int wait_loop(int ctl_fd)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    ev.data.fd = dom.event_fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, dom.event_fd, &ev);
    if (ctl_fd >= 0) {
        ev.data.fd = ctl_fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, ctl_fd, &ev);
    }
    int status = -1;
    while (status < 0) {
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == sfd)
                status = DOMUS_VM_EXIT_DESTROYED;
            else if (evs[i].data.fd == ctl_fd)
                control_serve(ctl_fd);
            else if (atomic_load(&dom.shutdown_reason) >= 0)
                status = DOMUS_VM_EXIT_SHUTDOWN_BASE + atomic_load(&dom.shutdown_reason);
        }
    }
    close(ep);
    close(sfd);
    return status;
}

static void signal_ready(int fd)
{
    if (fd < 0)
        return;
    if (write(fd, "ready\n", 6) != 6)
        dwarn("ready fd: %s", strerror(errno));
    close(fd);
}

int main(int argc, char **argv)
{
    struct vm_args a;
    struct console_be *con = NULL;
    char err[512] = "";
    int ctl_fd = -1, status = DOMUS_VM_EXIT_ERROR;

    dlog_set_prog("domus-vm");
    elapsed();
    if (parse_args(argc, argv, &a) < 0) {
        usage();
        return DOMUS_VM_EXIT_ERROR;
    }
    domain_init(&dom, a.domid, a.name, a.vcpus, NULL);
    dom.event_fd = eventfd(0, EFD_CLOEXEC);
    if (build(&dom, &a, err, sizeof(err)) < 0)
        goto out;
    if (console_start(&dom, a.console_log, a.console_sock, &con, err, sizeof(err)) < 0)
        goto out;
    if (a.xenstore && store_ring_start(&dom, &store, err, sizeof(err)) < 0)
        goto out;
    if (a.xenstore)
        xs_path = a.xs_path;
    for (unsigned i = 0; i < a.n_disks; i++) {
        a.disks[i].xs_path = a.xs_path;
        blk_id[i] = a.disks[i].devid;
        if (blkback_start(&dom, &a.disks[i], &blk[i], err, sizeof(err)) < 0)
            goto out;
    }
    for (unsigned i = 0; i < a.n_vifs; i++) {
        a.vifs[i].xs_path = a.xs_path;
        vif_id[i] = a.vifs[i].devid;
        if (netback_start(&dom, &a.vifs[i], &vif[i], err, sizeof(err)) < 0)
            goto out;
    }
    if (a.control_sock &&
        (ctl_fd = unix_listen(a.control_sock, 0, "control socket", err, sizeof(err))) < 0)
        goto out;
    if (kvm_domain_start(&dom) < 0) {
        dfmt(err, sizeof(err), "cannot start vCPU threads");
        goto out;
    }
    signal_ready(a.ready_fd);
    status = wait_loop(ctl_fd);
    if (status == DOMUS_VM_EXIT_DESTROYED)
        dinfo("dom%u: destroyed", dom.domid);
out:
    if (status == DOMUS_VM_EXIT_ERROR)
        derr("%s", err[0] ? err : "domain set-up failed");
    kvm_domain_pause(&dom, true);
    for (unsigned i = 0; i < VM_MAX_DISKS; i++)
        blkback_stop(blk[i]);
    for (unsigned i = 0; i < VM_MAX_VIFS; i++)
        netback_stop(vif[i]);
    console_stop(con);
    kvm_domain_destroy(&dom);
    store_ring_stop(store);
    gmem_destroy(&dom.mem);
    if (ctl_fd >= 0) {
        close(ctl_fd);
        unlink(a.control_sock);
    }
    if (dom.event_fd >= 0)
        close(dom.event_fd);
    return status;
}
