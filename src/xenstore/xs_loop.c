/* xenstored socket transport and the epoll loop.  Every socket client is
 * Domain 0.  Each connection has its own output queue: a client that does
 * not read its replies only stops its own input (once its queue passes
 * quota out_bytes), never anyone else's service. */
#include "xs_int.h"

#include "domus/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct sockconn {
    struct xs_evsrc ev; /* XS_EV_SOCK */
    struct xs_conn *c;
    int fd;
    uint32_t events; /* registered epoll events */
    size_t s_off, s_len;
    char stage[16384];
};

static struct xs_evsrc listen_src = {XS_EV_LISTEN};
static struct xs_evsrc stop_src = {XS_EV_STOP};

static int mkdir_p(const char *dir)
{
    char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (strlen(dir) >= sizeof(buf))
        return -ENAMETOOLONG;
    strcpy(buf, dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) && errno != EEXIST) /* the socket's own directory */
        return -errno;
    return 0;
}

/* A socket file nobody answers on is stale. */
static int clear_stale(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    close(fd);
    if (rc == 0)
        return -EADDRINUSE;
    if (unlink(sa->sun_path) && errno != ENOENT)
        return -errno;
    return 0;
}

int xs_daemon_listen(struct xs_daemon *d, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = -1, rc;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    char *dir = strdup(path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    rc = !dir ? -ENOMEM : (slash && slash != dir) ? (*slash = '\0', mkdir_p(dir)) : 0;
    free(dir);
    if (rc)
        goto out;
    rc = clear_stale(&sa);
    if (rc)
        goto out;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* The file gets the socket's mode at bind (see unix_listen). */
    if (fd < 0 || fchmod(fd, DOMUS_SOCK_MODE) ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 128)) {
        rc = -errno;
        goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_src};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        rc = -errno;
        unlink(path);
        goto out;
    }
    d->sock_path = strdup(path);
    d->listen_fd = fd;
    fd = -1;
    rc = d->sock_path ? 0 : -ENOMEM;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static void sock_set_events(struct sockconn *s, uint32_t events)
{
    if (s->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = &s->ev};
    if (epoll_ctl(s->c->d->epfd, EPOLL_CTL_MOD, s->fd, &ev) == 0)
        s->events = events;
}

/* Feeds staged bytes; input stays staged while the connection is full. */
static int sock_feed(struct sockconn *s)
{
    if (!s->s_len)
        return 0;
    long n = conn_input(s->c, s->stage + s->s_off, s->s_len);
    if (n < 0)
        return (int)n;
    s->s_off += (size_t)n;
    s->s_len -= (size_t)n;
    if (!s->s_len)
        s->s_off = 0;
    return 0;
}

static void sock_update(struct sockconn *s)
{
    uint32_t ev = 0;
    if (!s->s_len)
        ev |= EPOLLIN;
    if (s->c->out_head)
        ev |= EPOLLOUT;
    sock_set_events(s, ev);
}

static void sock_flush(struct xs_conn *c)
{
    struct sockconn *s = c->opaque;
    while (c->out_head) {
        struct xs_msg *m = c->out_head;
        ssize_t n =
            send(s->fd, m->data + m->off, m->len - m->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            conn_kill(c); /* peer gone */
            return;
        }
        conn_consume(c, (size_t)n);
    }
    /* Output drained: staged requests may go on now. */
    if (s->s_len && sock_feed(s)) {
        conn_kill(c);
        return;
    }
    sock_update(s);
}

static void sock_destroy(struct xs_conn *c)
{
    struct sockconn *s = c->opaque;
    epoll_ctl(c->d->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
}

static void sock_release(struct xs_conn *c)
{
    free(c->opaque);
}

static const struct xs_conn_ops sock_ops = {sock_flush, sock_destroy, sock_release};

static void sock_accept(struct xs_daemon *d)
{
    int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    struct sockconn *s = calloc(1, sizeof(*s));
    struct xs_conn *c = s ? conn_new(d, 0, &sock_ops, s) : NULL;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (!c || epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        dwarn("xenstore: cannot accept a client: %s",
              c ? strerror(errno) : "out of memory");
        if (c) {
            c->ops = NULL;
            conn_kill(c);
        }
        free(s);
        close(fd);
        return;
    }
    s->ev.kind = XS_EV_SOCK;
    s->c = c;
    s->fd = fd;
    s->events = EPOLLIN;
}

static void sock_readable(struct sockconn *s)
{
    if (!s->s_len) {
        ssize_t n = read(s->fd, s->stage, sizeof(s->stage));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_kill(s->c);
            return;
        }
        if (n < 0)
            return;
        s->s_off = 0;
        s->s_len = (size_t)n;
    }
    if (sock_feed(s)) { /* payload over XENSTORE_PAYLOAD_MAX: Xen drops the client */
        dwarn("xenstore: client sent an oversized message; closing it");
        conn_kill(s->c);
        return;
    }
    conn_mark_dirty(s->c);
}

static void handle_event(struct xs_daemon *d, struct epoll_event *e, bool *stop)
{
    struct xs_evsrc *src = e->data.ptr;
    switch (src->kind) {
    case XS_EV_LISTEN:
        sock_accept(d);
        break;
    case XS_EV_STOP:
        *stop = true;
        break;
    case XS_EV_RING:
        ring_kicked((struct xs_domain *)src);
        break;
    case XS_EV_SOCK: {
        struct sockconn *s = (struct sockconn *)src;
        if (s->c->dead)
            break;
        if (e->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            sock_readable(s);
        if (!s->c->dead && (e->events & EPOLLOUT))
            conn_mark_dirty(s->c);
        break;
    }
    }
}

int xs_daemon_run(struct xs_daemon *d, int stop_fd)
{
    if (stop_fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &stop_src};
        if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, stop_fd, &ev))
            return -errno;
    }
    bool stop = false;
    int rc = 0;
    while (!stop) {
        struct epoll_event evs[64];
        int n = epoll_wait(d->epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        for (int i = 0; i < n; i++)
            handle_event(d, &evs[i], &stop);
        xs_daemon_flush(d);
    }
    if (stop_fd >= 0)
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, stop_fd, NULL);
    return rc;
}
