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
 *
 * Exits 0, or 1 with a message on stderr.  Built static by scripts/setup.sh
 * into the guest initramfs; bench/io takes it from there for Domain 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
                    "       tcpstream clock PORT [TIMEOUT]\n");
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
    return usage();
}
