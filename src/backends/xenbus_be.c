/* The back-end half of a xenbus device (contract: xenbus_be.h). */
#include "domus/xenbus_be.h"
#include "domus/sandbox.h"
#include "domus/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xen/io/xs_wire.h>

int xbe_writef(struct xbe *x, const char *rel, const char *fmt, ...)
{
    char path[160], val[64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", x->bpath, rel);
    return xsc_write(&x->xs, path, val);
}

int xbe_read_uint(struct xbe *x, const char *dir, const char *rel, uint64_t max,
                  uint64_t *out)
{
    char path[160], *v = NULL, *end;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    rc = xsc_read(&x->xs, path, &v);
    if (rc)
        goto out;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    rc = (!*v || *v < '0' || *v > '9' || *end || errno || n > max) ? -EINVAL : 0;
    if (!rc)
        *out = n;
out:
    free(v);
    return rc;
}

static void set_state(struct xbe *x, enum xenbus_state s)
{
    if (x->state == s)
        return;
    x->state = s;
    int rc = xbe_writef(x, "state", "%d", (int)s);
    if (rc)
        dwarn("%s %u: writing state %d: %s", x->kind, x->devid, (int)s, strerror(-rc));
}

static void disconnect(struct xbe *x)
{
    if (!x->connected)
        return;
    evtchn_unbind_backend(x->d, x->port, x->kick_fd); /* -EINVAL if the guest closed it */
    x->connected = false;
    x->ops->disconnect(x);
}

bool xbe_log_ok(struct xbe *x)
{
    uint64_t dropped;

    if (!dratelimit_pass(&x->log_rl, &dropped))
        return false;
    if (dropped)
        dwarn("%s: %" PRIu64 " lines about the front end were not logged", x->who,
              dropped);
    return true;
}

void xbe_fatal(struct xbe *x, const char *why)
{
    if (xbe_log_ok(x))
        dwarn("%s: %s; closing", x->who, why);
    disconnect(x);
    set_state(x, XenbusStateClosing);
}

void xbe_notify(struct xbe *x)
{
    if (x->connected)
        evtchn_notify_logged(x->d, x->port, x->who, &x->notify_failed);
}

const char *xbe_bind_port(struct xbe *x, const char *rel)
{
    uint64_t port;
    int rc;

    if (xbe_read_uint(x, x->fpath, rel, UINT32_MAX, &port))
        return "front end gave no valid event-channel";
    if ((rc = evtchn_bind_backend(x->d, (uint32_t)port, x->kick_fd)) == -EINVAL)
        return "event-channel is not a port unbound for Domain 0";
    if (rc < 0) {
        if (xbe_log_ok(x))
            dwarn("%s: binding port %" PRIu64 ": %s", x->who, port, strerror(-rc));
        return "event-channel could not be bound";
    }
    x->port = (uint32_t)port;
    return NULL;
}

void *xbe_map_ring(struct xbe *x, const char *rel, grant_ref_t *out)
{
    uint64_t ref, gpa;

    if (xbe_read_uint(x, x->fpath, rel, UINT32_MAX, &ref) ||
        gnttab_map(x->d, (grant_ref_t)ref, 0, true, &gpa) != GNTST_okay)
        return NULL;
    *out = (grant_ref_t)ref;
    return gmem_ptr(&x->d->mem, gpa, DOMUS_PAGE_SIZE); /* gnttab_map checked it */
}

void xbe_unmap_ring(struct xbe *x, grant_ref_t ref)
{
    gnttab_unmap(x->d, ref, true);
}

static void frontend_changed(struct xbe *x, uint64_t fst)
{
    const char *why;

    switch (fst) {
    case XenbusStateInitialising:
        if (x->state == XenbusStateClosed && !x->unplug)
            set_state(x, XenbusStateInitWait);
        break;
    case XenbusStateInitialised:
    case XenbusStateConnected:
        if (x->state != XenbusStateInitWait)
            break;
        if ((why = x->ops->connect(x))) {
            if (x->port)
                evtchn_unbind_backend(x->d, x->port, x->kick_fd);
            x->port = 0;
            xbe_fatal(x, why);
            break;
        }
        x->connected = true;
        if (xbe_log_ok(x))
            dinfo("%s: connected (port %u)", x->who, x->port);
        set_state(x, XenbusStateConnected);
        x->ops->serve(x);
        break;
    case XenbusStateClosing:
        set_state(x, XenbusStateClosing);
        break;
    case XenbusStateClosed:
        disconnect(x);
        set_state(x, XenbusStateClosed);
        break;
    default: /* Unknown, gone or nonsense */
        disconnect(x);
        break;
    }
}

/* Looks at both directories and moves the back end along. */
static void reconcile(struct xbe *x)
{
    uint64_t n, fst = XenbusStateUnknown;

    if (xbe_read_uint(x, x->bpath, "state", 64, &n))
        return; /* the toolstack has not written the backend yet */
    if (x->state == XenbusStateInitialising) {
        int rc = x->ops->advertise(x);
        if (rc) {
            dwarn("%s %u: advertising features: %s", x->kind, x->devid, strerror(-rc));
            return;
        }
        x->state = XenbusStateUnknown; /* force the write */
        set_state(x, XenbusStateInitWait);
    } else if (n == XenbusStateClosing && x->state != XenbusStateClosing && !x->unplug) {
        /* Not ours: the toolstack's detach (libxl's online 0, state Closing).
         * The front end sees it and closes; until then we count as Closing,
         * so that its Closed makes us write Closed.  Unconnected, we are
         * done at once. */
        dinfo("%s: detach requested", x->who);
        x->unplug = true;
        x->state = XenbusStateClosing;
        if (!x->connected) {
            set_state(x, XenbusStateClosed);
            return;
        }
    }
    xbe_read_uint(x, x->fpath, "state", 64, &fst);
    frontend_changed(x, fst);
}

static int add_watch(struct xbe *x, const char *dir, const char *token)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s/state", dir);
    size_t lt = strlen(token) + 1;

    if (n < 0 || (size_t)n + 1 + lt > sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf + n + 1, token, lt);
    return xsc_request(&x->xw, XS_WATCH, buf, (size_t)n + 1 + lt, NULL, NULL);
}

static int xs_setup(struct xbe *x)
{
    int rc = xsc_open(&x->xs, x->xs_path);

    rc = rc ? rc : xsc_open(&x->xw, x->xs_path);
    rc = rc ? rc : add_watch(x, x->bpath, "back");
    rc = rc ? rc : add_watch(x, x->fpath, "front");
    return rc;
}

/* Reads (and drops) one watch event; false when xenstored went away. */
static bool drain_watch(struct xbe *x)
{
    struct xsd_sockmsg hdr;
    char body[XENSTORE_PAYLOAD_MAX];

    errno = 0;
    bool ok =
        recv(x->xw.fd, &hdr, sizeof(hdr), MSG_WAITALL) == sizeof(hdr) &&
        hdr.len <= XENSTORE_PAYLOAD_MAX &&
        (!hdr.len || recv(x->xw.fd, body, hdr.len, MSG_WAITALL) == (ssize_t)hdr.len);

    if (!ok)
        dwarn("%s: xenstore watch lost: %s", x->who,
              errno ? strerror(errno) : "closed or malformed");
    return ok;
}

/* From here on: xenstore on the sockets xs_setup opened, the device's
 * ports, and what the back end's ops need. */
static void sandbox(struct xbe *x)
{
    sandbox_thread(x->who,
                   SANDBOX_XENSTORE | SANDBOX_EVTCHN | SANDBOX_BIND | x->ops->sandbox);
}

/* A quiet second, and the front end still has not come for responses
 * pushed before it: its event may have been lost on the way; sent again
 * (to a front end that was merely slow, one spurious event). */
static void resend(struct xbe *x)
{
    if (!x->resent)
        dwarn("%s: responses unseen by the front end for a second (a slow or stopping "
              "guest, or a lost event); event sent again",
              x->who);
    x->resent++;
    xbe_notify(x);
}

/* Parked by xbe_quiesce: the work in flight finished, then a wait for
 * xbe_resume or the stop.  True when the thread is to stop. */
static bool park(struct xbe *x)
{
    uint64_t one = 1, v;

    if (x->connected && x->ops->quiesce)
        x->ops->quiesce(x);
    if (write(x->parked_fd, &one, sizeof(one)) < 0)
        dwarn("%s: parked: %s", x->who, strerror(errno));
    for (;;) {
        struct pollfd p[2] = {{x->stop_fd, POLLIN, 0}, {x->resume_fd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return true;
        if (p[0].revents)
            return true;
        if (p[1].revents && read(x->resume_fd, &v, sizeof(v)) == sizeof(v))
            return false;
    }
}

static void *xbe_thread(void *arg)
{
    struct xbe *x = arg;
    int rc = xs_setup(x);

    x->xs_ok = !rc;
    sandbox(x);
    if (rc)
        dwarn("%s %u: xenstore %s: %s; the device stays unplugged", x->kind, x->devid,
              x->xs_path, strerror(-rc));
    else
        reconcile(x);
    for (;;) {
        if (atomic_load(&x->qreq) && park(x))
            break;
        struct pollfd p[4] = {{x->stop_fd, POLLIN, 0},
                              {x->kick_fd, POLLIN, 0},
                              {x->xs_ok ? x->xw.fd : -1, POLLIN, 0},
                              {-1, 0, 0}};
        uint64_t v;
        if (x->connected && x->ops->poll_fd)
            p[3].events = x->ops->poll_fd(x, &p[3].fd);
        int n = poll(p, 4, x->connected ? 1000 : -1);
        if (n < 0 && errno != EINTR) {
            dwarn("%s: poll: %s; the back end stops", x->who, strerror(errno));
            break;
        }
        x->timeouts += n == 0;
        x->kicks += (p[1].revents & POLLIN) != 0;
        if (p[0].revents)
            break;
        if (p[2].revents) {
            x->xs_ok = drain_watch(x);
            if (x->xs_ok)
                reconcile(x);
        }
        if (p[1].revents && read(x->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            dwarn("%s %u: kick: %s", x->kind, x->devid, strerror(errno));
        if (x->connected)
            x->ops->serve(x); /* also on timeout: an event may have been lost */
        if (n == 0 && x->connected && x->ops->unseen && x->ops->unseen(x))
            resend(x);
    }
    return NULL;
}

int xbe_init(struct xbe *x, struct domain *d, const char *kind, uint32_t devid,
             const char *xs_path, const struct xbe_ops *ops, void *priv)
{
    *x = (struct xbe){.d = d,
                      .ops = ops,
                      .priv = priv,
                      .kind = kind,
                      .devid = devid,
                      .xs = {.fd = -1},
                      .xw = {.fd = -1},
                      .kick_fd = -1,
                      .stop_fd = -1,
                      .parked_fd = -1,
                      .resume_fd = -1,
                      .state = XenbusStateInitialising,
                      .log_rl = DRATELIMIT_INIT(10, 5000)};
    snprintf(x->bpath, sizeof(x->bpath), "/local/domain/0/backend/%s/%u/%u", kind,
             d->domid, devid);
    snprintf(x->fpath, sizeof(x->fpath), "/local/domain/%u/device/%s/%u", d->domid, kind,
             devid);
    snprintf(x->xs_path, sizeof(x->xs_path), "%s", xs_path ? xs_path : "");
    snprintf(x->who, sizeof(x->who), "dom%u %s %u", d->domid, kind, devid);
    x->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    x->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    x->parked_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    x->resume_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return x->kick_fd < 0 || x->stop_fd < 0 || x->parked_fd < 0 || x->resume_fd < 0
               ? -errno
               : 0;
}

int xbe_start(struct xbe *x)
{
    int rc = -pthread_create(&x->thread, NULL, xbe_thread, x);

    x->thread_started = !rc;
    return rc;
}

int xbe_quiesce(struct xbe *x, unsigned timeout_ms)
{
    uint64_t one = 1, v;
    struct pollfd p = {x->parked_fd, POLLIN, 0};

    if (!x->thread_started)
        return 0;
    while (read(x->parked_fd, &v, sizeof(v)) == sizeof(v) ||
           read(x->resume_fd, &v, sizeof(v)) == sizeof(v))
        ; /* an earlier handshake's leftovers */
    atomic_store(&x->qreq, true);
    if (write(x->kick_fd, &one, sizeof(one)) < 0)
        return -errno;
    if (poll(&p, 1, (int)timeout_ms) <= 0)
        return -ETIMEDOUT;
    return read(x->parked_fd, &v, sizeof(v)) == sizeof(v) ? 0 : -errno;
}

void xbe_resume(struct xbe *x)
{
    uint64_t one = 1;

    if (atomic_exchange(&x->qreq, false) && write(x->resume_fd, &one, sizeof(one)) < 0)
        dwarn("%s: resume: %s", x->who, strerror(errno));
}

void xbe_stop(struct xbe *x)
{
    uint64_t one = 1;

    if (x->thread_started && write(x->stop_fd, &one, sizeof(one)) == sizeof(one))
        pthread_join(x->thread, NULL);
    x->thread_started = false;
    if (x->ops)
        disconnect(x);
    int *fds[] = {&x->kick_fd, &x->stop_fd, &x->parked_fd, &x->resume_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    xsc_close(&x->xs);
    xsc_close(&x->xw);
}
