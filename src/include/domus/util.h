/* Small shared helpers: logging and error conventions.
 *
 * Conventions (libxl's discipline): functions return int rc, 0 on success and a
 * negative errno on failure; cleanup happens on one `out:` path.  Setup code may
 * print an error and exit; daemons never exit on bad input. */
#ifndef DOMUS_UTIL_H
#define DOMUS_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DOMUS_PAGE_SIZE 4096ULL
#define DOMUS_PAGE_SHIFT 12

/* Logging: one line to stderr prefixed with the program name and a level.
 * dlog_debug lines print only when DOMUS_DEBUG is set in the environment. */
void dlog_set_prog(const char *prog);
void dlog(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dlog_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define dinfo(...) dlog("info", __VA_ARGS__)
#define dwarn(...) dlog("warning", __VA_ARGS__)
#define derr(...) dlog("error", __VA_ARGS__)

/* A rate limit for log lines a guest can cause, as Xen's printk_ratelimit:
 * at most burst lines per period_ms; the lines refused meanwhile are
 * counted, and the next line let through says how many there were.
 * Thread-safe; initialise with DRATELIMIT_INIT. */
struct dratelimit {
    pthread_mutex_t lock;
    unsigned burst, period_ms;
    int64_t start_ms;
    unsigned used;
    uint64_t dropped;
};
#define DRATELIMIT_INIT(burst_, period_ms_)                                              \
    {                                                                                    \
        .lock = PTHREAD_MUTEX_INITIALIZER, .burst = (burst_), .period_ms = (period_ms_)  \
    }

/* May a line be logged now?  true with *dropped = lines refused since the
 * last one let through (to be said in it), or false (counted). */
bool dratelimit_pass(struct dratelimit *rl, uint64_t *dropped);

/* CLOCK_MONOTONIC in nanoseconds and in milliseconds. */
uint64_t dnow_ns(void);
int64_t dnow_ms(void);
/* CLOCK_REALTIME in nanoseconds: instants compared between processes (and
 * hosts), as live migration's downtime phases are. */
uint64_t drealtime_ns(void);

/* Waits up to timeout_ms (-1: for ever) for events (POLLIN, POLLOUT) on fd,
 * through EINTR: 0 when ready, -ETIMEDOUT, or -errno. */
int dpoll_fd(int fd, short events, int timeout_ms);

/* Is the environment variable name set to exactly "1"? */
bool denv_is_1(const char *name);

/* Formats into buf (always NUL-terminated); for `char *err, size_t errlen` pairs. */
void dfmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Formats after the string in buf (NUL-terminated in len), truncating. */
void dappendf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every Domus socket is its owner's only (domusd, xenstored, domus-vm's
 * console and control sockets: the last hands out the guest's memory). */
#define DOMUS_SOCK_MODE 0600

/* Listens on a Unix stream socket at path (a stale file there is replaced),
 * created with mode DOMUS_SOCK_MODE; flags are extra socket() type flags
 * (SOCK_NONBLOCK).  Returns the fd, or -errno with "what path: reason" in
 * err. */
int unix_listen(const char *path, int flags, const char *what, char *err, size_t errlen);

#endif
