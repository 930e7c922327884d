/* tcpstream: one bulk TCP transfer of a known pattern, for
 * tests/guest/iobench.sh, bench/io and the network scenarios (busybox nc
 * moves about 1 KiB per read and write: it, not the network, would be
 * measured).  The pattern's 8-byte word i holds a hash of i, so a byte lost,
 * doubled or misplaced anywhere shows; both ends print an FNV-1a sum of the
 * stream's words (sum=HEX) for comparing.
 *
 *   tcpstream send ADDR PORT MIB [TIMEOUT]   connects to IPv4 ADDR (retrying
 *       while refused, up to TIMEOUT s, default 60), writes MIB MiB,
 *       half-closes, waits for the receiver to close; prints mbs=N seconds=S
 *       sum=HEX (its own clock, from the connection to the receiver's close)
 *   tcpstream recv PORT MIB [TIMEOUT]        takes one connection on PORT
 *       (IPv4, any address) and reads to its end; prints mbs=N bytes=N
 *       seconds=S sum=HEX, timed on its own clock from the end of the first
 *       MiB (connection set-up and slow start left out) to the end of the
 *       stream; fails unless exactly MIB MiB (MIB >= 2) of the pattern
 *       arrived.  TIMEOUT (default 600) bounds the whole wait.
 *   tcpstream clock PORT [TIMEOUT]           serves its clock: each
 *       connection on PORT gets CLOCK_MONOTONIC in seconds ("%.6f\n") and is
 *       closed; for TIMEOUT s (default 3600)
 *   tcpstream flow ADDR PORT [TIMEOUT]       a long-lived, paced stream with
 *       sequence checks at both ends (tests/scenarios/70-save-restore.sh:
 *       it must survive a save and restore of one end): sends record n
 *       (its sequence number and pattern words), waits for the echo server
 *       to send it back and checks it, about 100 a second, with no time
 *       limit on one echo (a paused peer is waited for; TCP retransmits);
 *       TIMEOUT (default 60) bounds only the connect.  Prints
 *       "FLOW n=N stall=S" every 2 s (N records echoed, S the longest wait
 *       for one echo so far, on this end's clock: a saved guest's does not
 *       run while it is saved) and "FLOW done n=N stall=S" when the server
 *       ends the stream cleanly (at a record boundary; exit 0); a gap,
 *       duplicate, damaged record, reset or error prints
 *       "FAIL flow: ..." (exit 1).
 *   tcpstream echo PORT [TIMEOUT]            the server of flow: takes one
 *       connection, checks each record is the next one in sequence and
 *       intact, sends it back; prints "ECHO n=N recent=R gap=S" every 2 s
 *       (R: the longest time between two records since the last such line,
 *       S: the longest so far, on this end's clock, which runs on while the
 *       other end is saved or migrated) and, on SIGTERM (or after
 *       TIMEOUT s, default 3600), ends the stream at a record boundary and
 *       prints "ECHO done n=N gap=S" (exit 0); a gap, duplicate,
 *       damaged record, early end, reset or error prints "ECHO ERROR ..."
 *       (exit 1).
 *
 * Exits 0, or 1 with a message on stderr.  Built static by scripts/setup.sh
 * into the guest initramfs; bench/io takes it from there for Domain 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIB 1048576ULL
#define CHUNK (256 * 1024)

static char buf[CHUNK];

static char want[CHUNK + 16];

/* Word i of the pattern. */
static uint64_t pattern_word(uint64_t i)
{
    uint64_t w = i * 0x9e3779b97f4a7c15ULL;
    return w ^ (w >> 29);
}

/* The pattern's bytes [off, off + n) into p (n <= CHUNK). */
static void pattern_fill(char *p, uint64_t off, size_t n)
{
    uint64_t first = off >> 3, words = ((off & 7) + n + 7) >> 3;
    for (uint64_t i = 0; i < words; i++) {
        uint64_t w = pattern_word(first + i);
        memcpy(want + i * 8, &w, 8);
    }
    memcpy(p, want + (off & 7), n);
}

/* FNV-1a over the stream's 8-byte words (a partial word waits in carry). */
struct sum {
    uint64_t h, carry;
    unsigned have;
};

static void sum_add(struct sum *s, const char *p, size_t n)
{
    while (n) {
        if (s->have == 0 && n >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            s->h = (s->h ^ w) * 0x100000001b3ULL;
            p += 8;
            n -= 8;
            continue;
        }
        s->carry |= (uint64_t)(uint8_t)*p++ << (8 * s->have++);
        n--;
        if (s->have == 8) {
            s->h = (s->h ^ s->carry) * 0x100000001b3ULL;
            s->carry = 0;
            s->have = 0;
        }
    }
}
#define SUM_INIT                                                                         \
    {                                                                                    \
        0xcbf29ce484222325ULL, 0, 0                                                      \
    }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
    fprintf(stderr, "tcpstream: %s: %s\n", what, strerror(errno));
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: tcpstream send ADDR PORT MIB [TIMEOUT]\n"
                    "       tcpstream recv PORT MIB [TIMEOUT]\n"
                    "       tcpstream clock PORT [TIMEOUT]\n"
                    "       tcpstream flow ADDR PORT [TIMEOUT]\n"
                    "       tcpstream echo PORT [TIMEOUT]\n");
    return 1;
}

/* A socket listening on PORT (IPv4, any address), or -1 after a message. */
static int listen_on(const char *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (s < 0) {
        die("socket");
        return -1;
    }
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(port))};
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 8) < 0) {
        die("bind/listen");
        close(s);
        return -1;
    }
    return s;
}

static int do_send(const char *host, const char *port, uint64_t mib, unsigned timeout)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "tcpstream: %s is not an IPv4 address\n", host);
        return 1;
    }
    int fd = -1;
    double give_up = now() + timeout;
    for (;;) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return die("socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            break;
        if ((errno != ECONNREFUSED && errno != ENETUNREACH && errno != EHOSTUNREACH) ||
            now() > give_up)
            return die("connect");
        close(fd);
        usleep(200000);
    }
    double t0 = now();
    uint64_t left = mib * MIB, off = 0;
    struct sum sum = SUM_INIT;
    while (left > 0) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        pattern_fill(buf, off, n);
        for (size_t done = 0; done < n;) {
            ssize_t w = write(fd, buf + done, n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return die("write");
            done += (size_t)w;
        }
        sum_add(&sum, buf, n);
        off += n;
        left -= n;
    }
    if (shutdown(fd, SHUT_WR) < 0)
        return die("shutdown");
    while (read(fd, buf, sizeof buf) > 0) /* until the receiver closes */
        ;
    double d = now() - t0;
    printf("mbs=%.1f seconds=%.3f sum=%016llx\n", (double)(mib * MIB) / 1e6 / d, d,
           (unsigned long long)sum.h);
    return 0;
}

static int do_recv(const char *port, uint64_t mib, unsigned timeout)
{
    alarm(timeout);
    int s = listen_on(port);
    if (s < 0)
        return 1;
    int fd = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return die("accept");
    close(s);
    uint64_t got = 0, mark = 0, bad = 0;
    struct sum sum = SUM_INIT;
    char *exp = malloc(CHUNK);
    if (!exp)
        return die("malloc");
    double t0 = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return die("read");
        if (r == 0)
            break;
        pattern_fill(exp, got, (size_t)r);
        bad += memcmp(exp, buf, (size_t)r) != 0;
        sum_add(&sum, buf, (size_t)r);
        got += (uint64_t)r;
        if (!mark && got >= MIB) {
            t0 = now();
            mark = got;
        }
    }
    double d = now() - t0;
    close(fd);
    if (got != mib * MIB || !mark || got == mark || bad) {
        fprintf(
            stderr,
            "tcpstream: got %llu bytes, %llu reads of them not the pattern; want %llu\n",
            (unsigned long long)got, (unsigned long long)bad,
            (unsigned long long)(mib * MIB));
        return 1;
    }
    printf("mbs=%.1f bytes=%llu seconds=%.3f sum=%016llx\n",
           (double)(got - mark) / 1e6 / d, (unsigned long long)got, d,
           (unsigned long long)sum.h);
    return 0;
}

static int do_clock(const char *port, unsigned timeout)
{
    alarm(timeout);
    int s = listen_on(port);
    if (s < 0)
        return 1;
    for (;;) {
        int fd = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return die("accept");
        }
        int n = snprintf(buf, sizeof buf, "%.6f\n", now());
        if (write(fd, buf, (size_t)n) != n)
            fprintf(stderr, "tcpstream: clock: write: %s\n", strerror(errno));
        close(fd);
    }
}

/* ---- flow / echo: records with sequence numbers ---- */

#define REC_WORDS 8 /* a record: its sequence number, then pattern words */

struct rec {
    uint64_t w[REC_WORDS];
};

static void rec_make(struct rec *r, uint64_t seq)
{
    r->w[0] = seq;
    for (unsigned i = 1; i < REC_WORDS; i++)
        r->w[i] = pattern_word(seq * REC_WORDS + i);
}

/* 0 if r is record seq; else what is wrong with it, in why. */
static int rec_check(const struct rec *r, uint64_t seq, char *why, size_t len)
{
    struct rec want;
    rec_make(&want, r->w[0]);
    if (memcmp(&want, r, sizeof want) != 0)
        snprintf(why, len, "record %llu damaged (sequence word %llu)",
                 (unsigned long long)seq, (unsigned long long)r->w[0]);
    else if (r->w[0] > seq)
        snprintf(why, len, "gap: record %llu where %llu was due",
                 (unsigned long long)r->w[0], (unsigned long long)seq);
    else if (r->w[0] < seq)
        snprintf(why, len, "duplicate: record %llu again where %llu was due",
                 (unsigned long long)r->w[0], (unsigned long long)seq);
    else
        return 0;
    return -1;
}

/* Reads one record: 1, 0 at a clean end (no byte of a record), -1 with
 * errno (EPIPE for an end inside a record).  *stop (if set) is polled when
 * a signal interrupts the read before any byte of the record came. */
static int rec_read(int fd, struct rec *r, volatile sig_atomic_t *stop)
{
    size_t have = 0;
    while (have < sizeof *r) {
        ssize_t n = read(fd, (char *)r + have, sizeof *r - have);
        if (n < 0 && errno == EINTR) {
            if (stop && *stop && have == 0)
                return 0;
            continue;
        }
        if (n < 0)
            return -1;
        if (n == 0) {
            if (have == 0)
                return 0;
            errno = EPIPE;
            return -1;
        }
        have += (size_t)n;
    }
    return 1;
}

static int rec_write(int fd, const struct rec *r)
{
    size_t done = 0;
    while (done < sizeof *r) {
        ssize_t n = write(fd, (const char *)r + done, sizeof *r - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* A connection to ADDR:PORT, retried while refused, unreachable or timed
 * out (Domain 0 may not have its address yet) for up to timeout seconds; -1
 * after a message. */
static int connect_to(const char *host, const char *port, unsigned timeout)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "tcpstream: %s is not an IPv4 address\n", host);
        return -1;
    }
    double give_up = now() + timeout;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return die("socket"), -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
        int e = errno;
        close(fd);
        errno = e;
        if ((e != ECONNREFUSED && e != ENETUNREACH && e != EHOSTUNREACH &&
             e != ETIMEDOUT) ||
            now() > give_up)
            return die("connect"), -1;
        usleep(200000);
    }
}

static int flow_fail(const char *what, uint64_t n)
{
    printf("FAIL flow: %s after n=%llu\n", what, (unsigned long long)n);
    fflush(stdout);
    return 1;
}

static int do_flow(const char *host, const char *port, unsigned timeout)
{
    int fd = connect_to(host, port, timeout);
    if (fd < 0)
        return flow_fail("no connection", 0);
    uint64_t n = 0;
    double stall = 0, next_print = now() + 2;
    char why[128];
    for (;;) {
        struct rec r;
        rec_make(&r, n);
        if (rec_write(fd, &r) < 0)
            return flow_fail(strerror(errno), n);
        double t = now();
        int got = rec_read(fd, &r, NULL);
        if (got < 0)
            return flow_fail(strerror(errno), n);
        if (now() - t > stall)
            stall = now() - t;
        if (got == 0) {
            printf("FLOW done n=%llu stall=%.1f\n", (unsigned long long)n, stall);
            fflush(stdout);
            return 0;
        }
        if (rec_check(&r, n, why, sizeof why) < 0)
            return flow_fail(why, n);
        n++;
        if (now() >= next_print) {
            printf("FLOW n=%llu stall=%.1f\n", (unsigned long long)n, stall);
            fflush(stdout);
            next_print = now() + 2;
        }
        usleep(10000);
    }
}

static volatile sig_atomic_t echo_stop;

static void on_stop(int sig)
{
    (void)sig;
    echo_stop = 1;
}

static int echo_fail(const char *what, uint64_t n)
{
    printf("ECHO ERROR %s after n=%llu\n", what, (unsigned long long)n);
    fflush(stdout);
    return 1;
}

/* Ends the stream at a record boundary: half-close, then wait (5 s at
 * most) for the client to close, discarding what it sent meanwhile. */
static int echo_end(int fd, uint64_t n, double gap)
{
    shutdown(fd, SHUT_WR);
    alarm(5);
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
    printf("ECHO done n=%llu gap=%.1f\n", (unsigned long long)n, gap);
    fflush(stdout);
    return 0;
}

static int do_echo(const char *port, unsigned timeout)
{
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    alarm(timeout);
    int s = listen_on(port);
    if (s < 0)
        return 1;
    int fd;
    do
        fd = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR && !echo_stop);
    if (fd < 0)
        return echo_fail("no connection", 0);
    close(s);
    uint64_t n = 0;
    double next_print = now() + 2, last = now(), gap = 0, recent = 0;
    char why[128];
    for (;;) {
        struct rec r;
        int got = rec_read(fd, &r, &echo_stop);
        if (got > 0 && now() - last > gap)
            gap = now() - last;
        if (got > 0 && now() - last > recent)
            recent = now() - last;
        last = now();
        if (got < 0)
            return echo_fail(strerror(errno), n);
        if (got == 0 && echo_stop)
            return echo_end(fd, n, gap);
        if (got == 0)
            return echo_fail("the client ended the stream", n);
        if (rec_check(&r, n, why, sizeof why) < 0)
            return echo_fail(why, n);
        if (rec_write(fd, &r) < 0)
            return echo_fail(strerror(errno), n);
        n++;
        if (now() >= next_print) {
            printf("ECHO n=%llu recent=%.3f gap=%.1f\n", (unsigned long long)n, recent,
                   gap);
            fflush(stdout);
            recent = 0;
            next_print = now() + 2;
        }
        if (echo_stop)
            return echo_end(fd, n, gap);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 5 && argc <= 6 && strcmp(argv[1], "send") == 0) {
        uint64_t mib = strtoull(argv[4], NULL, 10);
        unsigned t = argc == 6 ? (unsigned)atoi(argv[5]) : 60;
        return mib ? do_send(argv[2], argv[3], mib, t) : usage();
    }
    if (argc >= 4 && argc <= 5 && strcmp(argv[1], "recv") == 0) {
        uint64_t mib = strtoull(argv[3], NULL, 10);
        unsigned t = argc == 5 ? (unsigned)atoi(argv[4]) : 600;
        return mib >= 2 && t ? do_recv(argv[2], mib, t) : usage();
    }
    if (argc >= 3 && argc <= 4 && strcmp(argv[1], "clock") == 0)
        return do_clock(argv[2], argc == 4 ? (unsigned)atoi(argv[3]) : 3600);
    if (argc >= 4 && argc <= 5 && strcmp(argv[1], "flow") == 0)
        return do_flow(argv[2], argv[3], argc == 5 ? (unsigned)atoi(argv[4]) : 60);
    if (argc >= 3 && argc <= 4 && strcmp(argv[1], "echo") == 0)
        return do_echo(argv[2], argc == 4 ? (unsigned)atoi(argv[3]) : 3600);
    return usage();
}
