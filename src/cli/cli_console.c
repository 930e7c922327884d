/* domus console: a guest's console socket on the terminal.
 *
 * stdin a tty: raw mode, everything typed goes to the guest, Ctrl-] detaches.
 * stdin not a tty: stdin is copied to the guest and the guest's output to
 * stdout; after stdin's EOF the output keeps flowing until it has been quiet
 * for DRAIN_QUIET_MS (at most DRAIN_MAX_MS); the console closing (the domain
 * died) ends it at once. */
#include "domus/cli.h"
#include "domus/toolstack.h"
#include "domus/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define DETACH_CHAR 0x1d /* Ctrl-] */
#define DRAIN_QUIET_MS 1000
#define DRAIN_MAX_MS 5000

struct con {
    int sock;
    bool tty;
    bool stdin_eof;
    long long eof_at, last_out; /* ms */
};

static int write_full(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* 1: keep going, 0: detach requested or stdin done, -1: error. */
static int from_stdin(struct con *c)
{
    char buf[4096];
    ssize_t n = read(0, buf, sizeof(buf));
    char *det;

    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0) {
        c->stdin_eof = true;
        c->eof_at = dnow_ms();
        return 1;
    }
    if (c->tty && (det = memchr(buf, DETACH_CHAR, (size_t)n))) {
        write_full(c->sock, buf, (size_t)(det - buf));
        return 0;
    }
    return write_full(c->sock, buf, (size_t)n) < 0 ? -1 : 1;
}

/* 1: keep going, 0: the console closed. */
static int from_guest(struct con *c)
{
    char buf[4096];
    ssize_t n = read(c->sock, buf, sizeof(buf));

    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0)
        return 0;
    c->last_out = dnow_ms();
    return write_full(1, buf, (size_t)n) < 0 ? 0 : 1;
}

static int drain_timeout(const struct con *c)
{
    long long now = dnow_ms();
    long long quiet_end =
        (c->last_out > c->eof_at ? c->last_out : c->eof_at) + DRAIN_QUIET_MS;
    long long hard_end = c->eof_at + DRAIN_MAX_MS;
    long long end = quiet_end < hard_end ? quiet_end : hard_end;

    return end > now ? (int)(end - now) : 0;
}

static int pump(struct con *c)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = c->sock, .events = POLLIN},
                              {.fd = c->stdin_eof ? -1 : 0, .events = POLLIN}};
        int timeout = c->stdin_eof ? drain_timeout(c) : -1;
        int r;

        if (c->stdin_eof && timeout == 0)
            return 0;
        r = poll(p, 2, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return 1;
        if (p[0].revents && from_guest(c) == 0)
            return 0;
        if (p[1].revents) {
            r = from_stdin(c);
            if (r <= 0)
                return r < 0 ? 1 : 0;
        }
    }
}

int cli_console_attach(const char *path)
{
    struct con c = {.sock = -1, .tty = isatty(0)};
    struct termios saved, raw;
    int rc = ts_unix_connect(path, &c.sock);

    if (rc) {
        fprintf(stderr, "domus: error: console %s: %s\n", path, strerror(-rc));
        return 1;
    }
    if (c.tty && tcgetattr(0, &saved) == 0) {
        raw = saved;
        cfmakeraw(&raw);
        tcsetattr(0, TCSANOW, &raw);
    } else {
        c.tty = false;
    }
    rc = pump(&c);
    if (c.tty)
        tcsetattr(0, TCSANOW, &saved);
    close(c.sock);
    return rc;
}
