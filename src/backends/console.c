/* PV console back end: the Domain 0 end of the guest's hvc0. */
#include "domus/console.h"
#include "domus/sandbox.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <xen/io/console.h>

#define MAX_CLIENTS 16

/* xenconsoled's rate limit: at most 30 batches of a guest's output per
 * 200 ms; beyond that its ring is left full until the next period (the
 * guest waits, nothing is lost). */
#define RATE_PERIOD_MS 200
#define RATE_ALLOWANCE 30

struct console_be {
    struct domain *d;
    struct xencons_interface *ring;
    uint32_t port;
    int kick_fd; /* guest -> back end (KVM signals it on EVTCHNOP_send) */
    int stop_fd; /* eventfd: stop the thread */
    int log_fd;
    int listen_fd;
    int epoll_fd;
    int clients[MAX_CLIENTS];
    char sock_path[108];
    pthread_t thread;
    bool thread_started;
    bool notify_failed;       /* said once in the log */
    char who[32];             /* "dom<domid> console", for the log */
    pthread_mutex_t out_lock; /* serialises output and the client list */
    int64_t period_start_ms;  /* the rate limit's current period */
    unsigned period_batches;  /* batches drained in it */
    uint64_t log_size;        /* bytes in the log file */
    bool log_failed;          /* said once in the log */
};

/* The newest CONSOLE_LOG_MAX / 2 bytes of the log move to its start, after
 * a line that says so.  0 or -errno. */
static int log_compact(struct console_be *c)
{
    static const char mark[] = "[domus: older console output dropped: log capped]\n";
    size_t keep = CONSOLE_LOG_MAX / 2;
    char *buf = malloc(keep);
    ssize_t got = -1;
    int rc = -ENOMEM;

    if (!buf)
        goto out;
    got = pread(c->log_fd, buf, keep, (off_t)(c->log_size - keep));
    rc = got == (ssize_t)keep ? 0 : got < 0 ? -errno : -EIO;
    if (!rc && ftruncate(c->log_fd, 0) < 0)
        rc = -errno;
    c->log_size = 0;
    /* O_APPEND: both land at the start of the emptied file. */
    if (!rc &&
        (write(c->log_fd, mark, sizeof(mark) - 1) < 0 || write(c->log_fd, buf, keep) < 0))
        rc = -errno;
    if (!rc)
        c->log_size = sizeof(mark) - 1 + keep;
out:
    free(buf);
    return rc;
}

/* Appends to the log, keeping it under CONSOLE_LOG_MAX bytes. */
static void log_out(struct console_be *c, const char *buf, size_t len)
{
    int rc = 0;

    if (c->log_size + len > CONSOLE_LOG_MAX && c->log_size >= CONSOLE_LOG_MAX / 2)
        rc = log_compact(c);
    if (!rc && write(c->log_fd, buf, len) < 0)
        rc = -errno;
    c->log_size += rc ? 0 : len;
    if (rc && !c->log_failed)
        dwarn("%s: log: %s", c->who, strerror(-rc));
    c->log_failed = c->log_failed || rc;
}

static void emit(struct console_be *c, const char *buf, size_t len)
{
    pthread_mutex_lock(&c->out_lock);
    if (c->log_fd >= 0)
        log_out(c, buf, len);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (c->clients[i] < 0)
            continue;
        if (send(c->clients[i], buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
            errno != EAGAIN) {
            close(c->clients[i]);
            c->clients[i] = -1;
        }
    }
    pthread_mutex_unlock(&c->out_lock);
}

/* Raises the console's port for the guest. */
static void notify(struct console_be *c)
{
    evtchn_notify_logged(c->d, c->port, c->who, &c->notify_failed);
}

/* May one more batch of output be taken now (the rate limit)? */
static bool within_rate(struct console_be *c)
{
    int64_t now = dnow_ms();

    if (now - c->period_start_ms >= RATE_PERIOD_MS) {
        c->period_start_ms = now;
        c->period_batches = 0;
    }
    return c->period_batches < RATE_ALLOWANCE;
}

/* Consumes guest output from the ring, within the rate limit unless
 * limited is false (the last drain at stop).  Indexes are guest-controlled:
 * a producer more than a ring ahead is treated as corrupt and skipped. */
static void drain_output(struct console_be *c, bool kick, bool limited)
{
    struct xencons_interface *r = c->ring;
    char buf[sizeof(r->out)];
    XENCONS_RING_IDX cons = __atomic_load_n(&r->out_cons, __ATOMIC_ACQUIRE);
    XENCONS_RING_IDX prod = __atomic_load_n(&r->out_prod, __ATOMIC_ACQUIRE);
    XENCONS_RING_IDX n = prod - cons;
    if (n == 0 || (limited && !within_rate(c)))
        return;
    c->period_batches++;
    if (n > sizeof(r->out)) {
        __atomic_store_n(&r->out_cons, prod, __ATOMIC_RELEASE);
        return;
    }
    for (XENCONS_RING_IDX i = 0; i < n; i++)
        buf[i] = r->out[MASK_XENCONS_IDX(cons + i, r->out)];
    __atomic_store_n(&r->out_cons, prod, __ATOMIC_RELEASE);
    emit(c, buf, n);
    if (kick)
        notify(c);
}

/* Copies client input into the guest's input ring as space allows. */
static void feed_input(struct console_be *c, const char *buf, size_t len)
{
    struct xencons_interface *r = c->ring;
    XENCONS_RING_IDX cons = __atomic_load_n(&r->in_cons, __ATOMIC_ACQUIRE);
    XENCONS_RING_IDX prod = r->in_prod;
    size_t i = 0;
    while (i < len && (XENCONS_RING_IDX)(prod - cons) < sizeof(r->in))
        r->in[MASK_XENCONS_IDX(prod++, r->in)] = buf[i++];
    __atomic_store_n(&r->in_prod, prod, __ATOMIC_RELEASE);
    notify(c);
}

static int epoll_add(struct console_be *c, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(c->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void accept_client(struct console_be *c)
{
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), i, rc;

    if (fd < 0) {
        if (errno != EAGAIN && errno != ECONNABORTED)
            dwarn("dom%u console: accept: %s", c->d->domid, strerror(errno));
        return;
    }
    for (i = 0; i < MAX_CLIENTS && c->clients[i] >= 0; i++)
        ;
    rc = i < MAX_CLIENTS ? epoll_add(c, fd) : -EUSERS;
    if (!rc) {
        c->clients[i] = fd;
        return;
    }
    dwarn("dom%u console: client refused: %s", c->d->domid, strerror(-rc));
    close(fd);
}

static void client_input(struct console_be *c, int fd)
{
    char buf[512];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
        feed_input(c, buf, (size_t)n);
        return;
    }
    if (n < 0 && errno == EAGAIN)
        return;
    pthread_mutex_lock(&c->out_lock);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (c->clients[i] == fd)
            c->clients[i] = -1;
    pthread_mutex_unlock(&c->out_lock);
    epoll_ctl(c->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static void *console_thread(void *arg)
{
    struct console_be *c = arg;

    sandbox_thread(c->who, SANDBOX_EVTCHN | SANDBOX_CLIENTS | SANDBOX_LOG);
    for (;;) {
        struct epoll_event evs[8];
        int n = epoll_wait(c->epoll_fd, evs, 8, RATE_PERIOD_MS / 4);
        if (n < 0 && errno != EINTR) {
            dwarn("%s: epoll_wait: %s; the console thread ends", c->who, strerror(errno));
            return NULL;
        }
        drain_output(c, true, true); /* also on timeout: a guest may not kick */
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            uint64_t v;
            if (fd == c->stop_fd)
                return NULL;
            if (fd == c->kick_fd) {
                if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    dwarn("console kick: %s", strerror(errno));
            } else if (fd == c->listen_fd) {
                accept_client(c);
            } else {
                client_input(c, fd);
            }
        }
    }
}

static struct console_be *console_alloc(struct domain *d)
{
    struct console_be *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->d = d;
    snprintf(c->who, sizeof(c->who), "dom%u console", d->domid);
    c->kick_fd = c->stop_fd = c->log_fd = c->listen_fd = c->epoll_fd = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        c->clients[i] = -1;
    pthread_mutex_init(&c->out_lock, NULL);
    return c;
}

static int console_open(struct console_be *c, const char *log_path, const char *sock_path,
                        char *err, size_t errlen)
{
    c->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (c->kick_fd < 0 || c->stop_fd < 0 || c->epoll_fd < 0) {
        dfmt(err, errlen, "console: %s", strerror(errno));
        return -errno;
    }
    if (log_path) {
        struct stat st;
        c->log_fd = open(log_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (c->log_fd < 0 || fstat(c->log_fd, &st) < 0) {
            dfmt(err, errlen, "console log %s: %s", log_path, strerror(errno));
            return -errno;
        }
        c->log_size = (uint64_t)st.st_size;
    }
    if (sock_path) {
        c->listen_fd =
            unix_listen(sock_path, SOCK_NONBLOCK, "console socket", err, errlen);
        if (c->listen_fd < 0)
            return c->listen_fd;
        snprintf(c->sock_path, sizeof(c->sock_path), "%s", sock_path);
        epoll_add(c, c->listen_fd);
    }
    epoll_add(c, c->kick_fd);
    epoll_add(c, c->stop_fd);
    return 0;
}

int console_start(struct domain *d, const char *log_path, const char *sock_path,
                  struct console_be **out, char *err, size_t errlen)
{
    int rc;
    uint64_t gpa = GMEM_SPECIAL_BASE + GMEM_SPECIAL_CONSOLE * DOMUS_PAGE_SIZE;
    struct console_be *c = console_alloc(d);
    if (!c)
        return -ENOMEM;
    c->ring = gmem_ptr(&d->mem, gpa, sizeof(*c->ring));
    if ((rc = console_open(c, log_path, sock_path, err, errlen)) < 0)
        goto out;
    memset(c->ring, 0, sizeof(*c->ring));
    rc = evtchn_alloc_backend_port(d, c->kick_fd);
    if (rc < 0) {
        dfmt(err, errlen, "console event channel: %s", strerror(-rc));
        goto out;
    }
    c->port = (uint32_t)rc;
    d->hvm_params[HVM_PARAM_CONSOLE_PFN] = gpa >> DOMUS_PAGE_SHIFT;
    d->hvm_params[HVM_PARAM_CONSOLE_EVTCHN] = c->port;
    if ((rc = -pthread_create(&c->thread, NULL, console_thread, c)) < 0) {
        dfmt(err, errlen, "console thread: %s", strerror(-rc));
        goto out;
    }
    c->thread_started = true;
    *out = c;
    return 0;
out:
    console_stop(c);
    return rc;
}

void console_stop(struct console_be *c)
{
    if (!c)
        return;
    if (c->thread_started) {
        uint64_t one = 1;
        if (write(c->stop_fd, &one, sizeof(one)) == sizeof(one))
            pthread_join(c->thread, NULL);
    }
    if (c->ring)
        drain_output(c, false, false);
    int fds[] = {c->kick_fd, c->stop_fd, c->log_fd, c->listen_fd, c->epoll_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (c->clients[i] >= 0)
            close(c->clients[i]);
    if (c->sock_path[0])
        unlink(c->sock_path);
    free(c);
}
