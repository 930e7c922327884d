#include "domus/util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "domus";

void dlog_set_prog(const char *p)
{
    prog = p;
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "%s: %s: %s\n", prog, level, line);
}

void dlog(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

uint64_t dnow_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

uint64_t drealtime_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int64_t dnow_ms(void)
{
    return (int64_t)(dnow_ns() / 1000000u);
}

bool dratelimit_pass(struct dratelimit *rl, uint64_t *dropped)
{
    int64_t now = dnow_ms();
    bool pass;

    pthread_mutex_lock(&rl->lock);
    if (rl->used && now - rl->start_ms >= (int64_t)rl->period_ms)
        rl->used = 0;
    if (!rl->used)
        rl->start_ms = now;
    pass = rl->used < rl->burst;
    if (pass) {
        rl->used++;
        *dropped = rl->dropped;
        rl->dropped = 0;
    } else {
        rl->dropped++;
    }
    pthread_mutex_unlock(&rl->lock);
    return pass;
}

bool denv_is_1(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "1");
}

void dlog_debug(const char *fmt, ...)
{
    static int enabled = -1;
    if (enabled < 0)
        enabled = getenv("DOMUS_DEBUG") != NULL;
    if (!enabled)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog("debug", fmt, ap);
    va_end(ap);
}

void dfmt(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

void dappendf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (!buf || !len)
        return;
    n = strnlen(buf, len - 1);
    va_start(ap, fmt);
    vsnprintf(buf + n, len - n, fmt, ap);
    va_end(ap);
}

int unix_listen(const char *path, int flags, const char *what, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        dfmt(err, errlen, "%s path too long: %s", what, path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    if (fd < 0)
        return -errno;
    unlink(path);
    /* Linux gives the socket file the socket's mode (less the umask) at
     * bind: owner only from the start, no window for a chmod to close. */
    if (fchmod(fd, DOMUS_SOCK_MODE) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
        int rc = -errno;
        dfmt(err, errlen, "%s %s: %s", what, path, strerror(errno));
        close(fd);
        return rc;
    }
    return fd;
}

int dpoll_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;

    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    return r == 0 ? -ETIMEDOUT : 0;
}
