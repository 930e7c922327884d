/* domusd: the listening socket, client connections and the event loop. */
#include "domus/domusd.h"
#include "domus/util.h"
#include "domus/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CLIENT_SEND_TIMEOUT_MS 2000
#define MAX_CLIENTS 256

int dsd_watch(struct dsd *d, enum dsd_ev kind, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = DSD_KEY(kind, fd)};

    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    return 0;
}

void dsd_unwatch_close(struct dsd *d, int *fd)
{
    if (*fd < 0)
        return;
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, *fd, NULL);
    close(*fd);
    *fd = -1;
}

json_object *dsd_ok(void)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    return o;
}

static struct dsd_client *client_by_id(struct dsd *d, uint64_t id)
{
    for (struct dsd_client *c = d->clients; c; c = c->next) {
        if (c->id == id)
            return c;
    }
    return NULL;
}

void dsd_reply(struct dsd *d, uint64_t client, json_object *obj)
{
    struct dsd_client *c = client_by_id(d, client);

    if (c && !c->dead && ts_send_json(c->fd, obj, CLIENT_SEND_TIMEOUT_MS) < 0)
        c->dead = true;
    json_object_put(obj);
}

void dsd_reply_error(struct dsd *d, uint64_t client, const char *fmt, ...)
{
    json_object *o;
    va_list ap;

    va_start(ap, fmt);
    o = vmctl_verror(fmt, ap);
    va_end(ap);
    dsd_reply(d, client, o);
}

void dsd_reply_failure(struct dsd *d, uint64_t client, const char *msg,
                       json_object *warnings)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    if (warnings)
        json_object_object_add(o, "warnings", warnings);
    dsd_reply(d, client, o);
}

/* ---- set-up ---- */

static int listen_socket(struct dsd *d)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, rc;

    rc = ts_sock_path(d->sock_path, sizeof(d->sock_path));
    if (rc)
        return rc;
    strcpy(sa.sun_path, d->sock_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    unlink(d->sock_path); /* stale: the caller holds the daemon lock */
    /* The file gets the socket's mode at bind (see unix_listen). */
    if (fchmod(fd, DOMUS_SOCK_MODE) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, SOMAXCONN) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    d->listen_fd = fd;
    return 0;
}

static int signal_fd(struct dsd *d)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return d->sig_fd < 0 ? -errno : 0;
}

int dsd_server_init(struct dsd *d)
{
    char dir[PATH_MAX];
    int rc;

    d->listen_fd = d->sig_fd = -1;
    d->next_domid = 1;
    d->next_client_id = 1;
    signal(SIGPIPE, SIG_IGN);
    rc = ts_self_dir(dir, sizeof(dir));
    if (rc)
        return rc;
    if ((size_t)snprintf(d->vm_bin, sizeof(d->vm_bin), "%s/domus-vm", dir) >=
        sizeof(d->vm_bin))
        return -ENAMETOOLONG;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd < 0)
        return -errno;
    rc = signal_fd(d);
    if (!rc)
        rc = listen_socket(d);
    if (!rc)
        rc = dsd_watch(d, EV_SIGNAL, d->sig_fd);
    if (!rc)
        rc = dsd_watch(d, EV_LISTEN, d->listen_fd);
    if (!rc && (rc = dsd_xs_start(d)) < 0)
        derr("xenstore on %s: %s", d->xs.path, strerror(-rc));
    if (!rc)
        dsd_cgroup_init(d);
    if (!rc)
        dsd_persist_adopt(d);
    return rc;
}

void dsd_server_fini(struct dsd *d)
{
    dsd_hotplug_fini(d);
    dsd_destroy_all(d);
    dsd_xs_stop(d);
    while (d->clients) {
        struct dsd_client *c = d->clients;
        d->clients = c->next;
        close(c->fd);
        free(c->buf);
        free(c);
    }
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        unlink(d->sock_path);
    }
    if (d->sig_fd >= 0)
        close(d->sig_fd);
    if (d->epfd >= 0)
        close(d->epfd);
}

/* ---- clients ---- */

static unsigned count_clients(struct dsd *d)
{
    unsigned n = 0;
    for (struct dsd_client *c = d->clients; c; c = c->next)
        n++;
    return n;
}

/* Accepts one pending connection; false when there is none (or no room). */
static bool accept_client(struct dsd *d)
{
    struct dsd_client *c;
    int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return false;
    c = count_clients(d) < MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
    if (!c || dsd_watch(d, EV_CLIENT, fd) < 0) {
        free(c);
        close(fd); /* too many clients: this one is refused, the rest wait */
        return false;
    }
    c->fd = fd;
    c->id = d->next_client_id++;
    c->next = d->clients;
    d->clients = c;
    return true;
}

static void free_client(struct dsd *d, struct dsd_client *c)
{
    dsd_migrate_client_gone(d, c->id);
    for (struct dsd_client **pp = &d->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    dsd_unwatch_close(d, &c->fd);
    free(c->buf);
    free(c);
}

/* Handles every complete line in the client's buffer. */
static void client_lines(struct dsd *d, struct dsd_client *c)
{
    size_t start = 0;
    char *nl;

    while (!c->dead && (nl = memchr(c->buf + start, '\n', c->len - start))) {
        *nl = '\0';
        dsd_handle_request(d, c->id, c->buf + start);
        start = (size_t)(nl - c->buf) + 1;
    }
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
}

static int client_grow(struct dsd_client *c)
{
    size_t ncap = c->cap ? c->cap * 2 : 4096;
    char *nb;

    if (ncap > DOMUS_REQ_MAX + 1)
        ncap = DOMUS_REQ_MAX + 1;
    if (ncap <= c->cap)
        return -E2BIG;
    nb = realloc(c->buf, ncap);
    if (!nb)
        return -ENOMEM;
    c->buf = nb;
    c->cap = ncap;
    return 0;
}

static void close_req_fds(struct dsd *d)
{
    for (unsigned i = 0; i < d->req_nfds; i++)
        if (d->req_fds[i] >= 0)
            close(d->req_fds[i]);
    d->req_nfds = 0;
}

/* read() that also takes the descriptors a client sent (SCM_RIGHTS) into
 * d->req_fds for the request they came with (up to DSD_REQ_FDS). */
static ssize_t recv_fds(struct dsd *d, struct dsd_client *c)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {c->buf + c->len, c->cap - c->len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf.buf,
                        .msg_controllen = sizeof(cbuf.buf)};
    ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);

    close_req_fds(d);
    for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm;
         cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (d->req_nfds < DSD_REQ_FDS)
                d->req_fds[d->req_nfds++] = fd;
            else
                close(fd);
        }
    }
    return n;
}

static void client_readable(struct dsd *d, struct dsd_client *c)
{
    ssize_t n;

    if (c->len == c->cap && client_grow(c) < 0) {
        dsd_reply_error(d, c->id, "request too long (at most %u bytes)", DOMUS_REQ_MAX);
        c->dead = true;
        return;
    }
    n = recv_fds(d, c);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        c->dead = true;
        return;
    }
    c->len += (size_t)n;
    client_lines(d, c);
    close_req_fds(d);
}

static void reap_dead_clients(struct dsd *d)
{
    struct dsd_client *c = d->clients, *next;

    for (; c; c = next) {
        next = c->next;
        if (c->dead)
            free_client(d, c);
    }
}

/* ---- the loop ---- */

static void on_signal(struct dsd *d)
{
    struct signalfd_siginfo si;

    while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            dinfo("signal %u: shutting down", si.ssi_signo);
            d->quit = true;
        }
    }
    dsd_reap_children(d); /* SIGCHLDs coalesce: always reap everything */
}

static void on_event(struct dsd *d, uint64_t key)
{
    enum dsd_ev kind = (enum dsd_ev)(key >> 32);
    int fd = (int)(uint32_t)key;
    struct dsd_dom *dom;
    struct dsd_client *c;

    switch (kind) {
    case EV_LISTEN:
        while (accept_client(d))
            ;
        break;
    case EV_SIGNAL:
        on_signal(d);
        break;
    case EV_CLIENT:
        for (c = d->clients; c && c->fd != fd; c = c->next)
            ;
        if (c && !c->dead)
            client_readable(d, c);
        break;
    case EV_READY:
    case EV_STDERR:
        dom = dsd_dom_by_fd(d, fd);
        if (dom && kind == EV_READY && dom->ready_fd == fd)
            dsd_vm_read_ready(d, dom);
        else if (dom && kind == EV_STDERR && dom->err_fd == fd)
            dsd_vm_read_stderr(d, dom);
        break;
    case EV_PIDFD:
        dom = dsd_dom_by_fd(d, fd);
        if (dom && dom->pidfd == fd)
            dsd_persist_adopted_exit(d, dom);
        break;
    }
}

int dsd_server_run(struct dsd *d)
{
    struct epoll_event evs[32];

    while (!d->quit) {
        int n = epoll_wait(d->epfd, evs, ARRAY_SIZE(evs), dsd_next_timeout_ms(d));

        if (n < 0 && errno != EINTR)
            return -errno;
        for (int i = 0; i < n; i++) {
            on_event(d, evs[i].data.u64);
            reap_dead_clients(d);
        }
        dsd_check_deadlines(d);
        dsd_cgroup_tick(d);
    }
    return 0;
}
