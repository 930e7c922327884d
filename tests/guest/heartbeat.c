/* heartbeat: a stream of UDP datagrams, one a millisecond, whose longest
 * gap on the receiver's clock is a migration's downtime as the network sees
 * it (bench/migrate: the guest sends, a client on the LAN receives).
 *
 *   heartbeat send ADDR PORT [INTERVAL_US]   (the guest) sends a datagram to
 *       IPv4 ADDR:PORT every INTERVAL_US µs (default 1000), paced on
 *       CLOCK_MONOTONIC with absolute sleeps; a sender more than 100 ms
 *       behind (its guest stopped or suspended) starts again from now rather
 *       than sending the missed ones in a burst.  Each datagram holds a
 *       magic, a session number (random, per start), a sequence number and
 *       the sender's clock.  Sends do not block: a datagram the stack does
 *       not take (its queue full while the NIC does not transmit) is an
 *       error, counted, not fatal.  Prints "HBSEND n=N err=E stall_ms=S"
 *       every 5 s (S: the longest time between two sends since the last
 *       such line, on the guest's clock: the guest not running, as against
 *       its packets not getting out); never ends.
 *   heartbeat recv PORT [TIMEOUT]            (the client) takes the datagrams
 *       on PORT (IPv4, any address), each timed by the kernel on arrival
 *       (SO_TIMESTAMPNS), for TIMEOUT s (default 7200).  It keeps a window:
 *       the datagrams since the window began, the sequence numbers missed and
 *       the longest gap between two consecutive arrivals that ended in it.
 *       On SIGUSR1 it prints
 *         "HB window n=N lost=L reorder=R restart=S gap_ms=G from=T0 to=T1
 *         open_ms=O"
 *       and starts a new window: S the times a new sender (another session:
 *       the guest's sender started again) took over, G the longest gap,
 *       T0..T1 its ends on
 *       CLOCK_BOOTTIME (seconds, as /proc/uptime), O the time since the last
 *       arrival (an open gap longer than every closed one is G, with T1 the
 *       time of the report).  On SIGUSR2 it prints "HB alive n=N age_ms=A"
 *       (all datagrams so far, the time since the last one) and keeps the
 *       window.  SIGTERM or the timeout prints "HB done n=N" and exits 0.
 *       Datagrams that are not heartbeats are counted as bad= in "HB done".
 *
 * Exits 0, or 1 with a message on stderr (2 on bad usage).  Built static by
 * scripts/setup.sh into the guest initramfs; bench/migrate takes it from
 * there for the client. */
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HB_MAGIC 0x48425431u /* "HBT1" */
#define NS 1000000000LL

struct hb_msg {
    uint32_t magic;
    uint32_t session;
    uint64_t seq;
    uint64_t sent_ns;
};

static int64_t clock_ns(clockid_t c)
{
    struct timespec t;

    clock_gettime(c, &t);
    return (int64_t)t.tv_sec * NS + t.tv_nsec;
}

static int parse_port(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    return *s && !*end && v > 0 && v < 65536 ? (int)v : -1;
}

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        perror("heartbeat: socket");
    return fd;
}

/* ---- send ---- */

static void sleep_until(int64_t t)
{
    struct timespec ts = {.tv_sec = t / NS, .tv_nsec = t % NS};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int hb_send(const char *addr, int port, long interval_us)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct hb_msg m = {.magic = HB_MAGIC};
    uint64_t errs = 0;
    int64_t next, report, last, stall = 0;
    int fd;

    if (inet_pton(AF_INET, addr, &to.sin_addr) != 1) {
        fprintf(stderr, "heartbeat: bad IPv4 address '%s'\n", addr);
        return 2;
    }
    fd = udp_socket();
    if (fd < 0)
        return 1;
    m.session = (uint32_t)(clock_ns(CLOCK_REALTIME) ^ (getpid() * 2654435761u));
    setvbuf(stdout, NULL, _IOLBF, 0);
    next = last = clock_ns(CLOCK_MONOTONIC);
    report = next + 5 * NS;
    for (;;) {
        m.sent_ns = (uint64_t)clock_ns(CLOCK_MONOTONIC);
        if ((int64_t)m.sent_ns - last > stall)
            stall = (int64_t)m.sent_ns - last;
        last = (int64_t)m.sent_ns;
        if (sendto(fd, &m, sizeof(m), MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to)) <
            0)
            errs++;
        m.seq++;
        next += interval_us * 1000LL;
        int64_t now = clock_ns(CLOCK_MONOTONIC);
        if (now - next > NS / 10 || next - now > NS)
            next = now; /* stopped or suspended: no burst to catch up; a clock
                           that went back: no long sleep either */
        sleep_until(next);
        if (now >= report) {
            printf("HBSEND n=%llu err=%llu stall_ms=%.1f\n", (unsigned long long)m.seq,
                   (unsigned long long)errs, (double)stall / 1e6);
            report = now + 5 * NS;
            stall = 0;
        }
    }
}

/* ---- recv ---- */

static volatile sig_atomic_t want_window, want_alive, want_stop;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        want_window = 1;
    else if (sig == SIGUSR2)
        want_alive = 1;
    else
        want_stop = 1;
}

struct hb_state {
    uint64_t total, bad;
    uint32_t session;
    int have_session;
    uint64_t next_seq;
    int64_t last_ns; /* last arrival, CLOCK_REALTIME (the kernel's stamp); 0: none */
    /* the window */
    uint64_t n, lost, reorder, restart;
    int64_t gap_ns, gap_from, gap_to;
};

static void note_arrival(struct hb_state *s, const struct hb_msg *m, int64_t t)
{
    if (!s->have_session || m->session != s->session) {
        if (s->have_session)
            s->restart++;        /* the guest's sender started again */
        s->session = m->session; /* a new sender: its numbers start again */
        s->have_session = 1;
        s->next_seq = m->seq;
    }
    if (m->seq > s->next_seq)
        s->lost += m->seq - s->next_seq;
    if (m->seq < s->next_seq)
        s->reorder++;
    else
        s->next_seq = m->seq + 1;
    if (s->last_ns && t - s->last_ns > s->gap_ns) {
        s->gap_ns = t - s->last_ns;
        s->gap_from = s->last_ns;
        s->gap_to = t;
    }
    if (t > s->last_ns)
        s->last_ns = t;
    s->n++;
    s->total++;
}

/* CLOCK_REALTIME ns as CLOCK_BOOTTIME seconds (the scenario's /proc/uptime). */
static double boottime_s(int64_t real_ns)
{
    int64_t off = clock_ns(CLOCK_BOOTTIME) - clock_ns(CLOCK_REALTIME);

    return (double)(real_ns + off) / 1e9;
}

static void print_window(struct hb_state *s)
{
    int64_t now = clock_ns(CLOCK_REALTIME);
    int64_t open = s->last_ns ? now - s->last_ns : 0;
    int64_t gap = s->gap_ns, from = s->gap_from, to = s->gap_to;

    if (open > gap) {
        gap = open;
        from = s->last_ns;
        to = now;
    }
    printf("HB window n=%llu lost=%llu reorder=%llu restart=%llu gap_ms=%.1f from=%.3f "
           "to=%.3f open_ms=%.1f\n",
           (unsigned long long)s->n, (unsigned long long)s->lost,
           (unsigned long long)s->reorder, (unsigned long long)s->restart,
           (double)gap / 1e6, from ? boottime_s(from) : 0.0, to ? boottime_s(to) : 0.0,
           (double)open / 1e6);
    s->n = s->lost = s->reorder = s->restart = 0;
    s->gap_ns = s->gap_from = s->gap_to = 0;
}

static void print_alive(const struct hb_state *s)
{
    int64_t age = s->last_ns ? clock_ns(CLOCK_REALTIME) - s->last_ns : -1;

    printf("HB alive n=%llu age_ms=%.1f\n", (unsigned long long)s->total,
           age < 0 ? -1.0 : (double)age / 1e6);
}

/* recv_one: one datagram into m with its arrival stamp; 1 when one came,
 * 0 on a timeout or signal, -1 on an error. */
static int recv_one(int fd, struct hb_msg *m, int64_t *t, uint64_t *bad)
{
    char ctl[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl,
                        .msg_controllen = sizeof(ctl)};
    ssize_t n = recvmsg(fd, &mh, 0);

    if (n < 0)
        return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    if (n != (ssize_t)sizeof(*m) || m->magic != HB_MAGIC) {
        (*bad)++;
        return 0;
    }
    *t = clock_ns(CLOCK_REALTIME);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            *t = (int64_t)ts.tv_sec * NS + ts.tv_nsec;
        }
    }
    return 1;
}

static int recv_setup(int port)
{
    struct sockaddr_in me = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000}; /* signals seen within 0.1 s */
    int one = 1, rcvbuf = 1 << 20;
    int fd = udp_socket();

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0 ||
        bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0) {
        perror("heartbeat: recv socket");
        close(fd);
        return -1;
    }
    return fd;
}

static int hb_recv(int port, long timeout_s)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: recvmsg returns */
    struct hb_state s = {0};
    int64_t end = clock_ns(CLOCK_MONOTONIC) + timeout_s * NS;
    int fd = recv_setup(port);

    if (fd < 0)
        return 1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (!want_stop && clock_ns(CLOCK_MONOTONIC) < end) {
        struct hb_msg m;
        int64_t t;
        int r = recv_one(fd, &m, &t, &s.bad);

        if (r < 0) {
            perror("heartbeat: recvmsg");
            close(fd);
            return 1;
        }
        if (r > 0)
            note_arrival(&s, &m, t);
        if (want_window) {
            want_window = 0;
            print_window(&s);
        }
        if (want_alive) {
            want_alive = 0;
            print_alive(&s);
        }
    }
    printf("HB done n=%llu bad=%llu\n", (unsigned long long)s.total,
           (unsigned long long)s.bad);
    close(fd);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: heartbeat send ADDR PORT [INTERVAL_US]\n"
                    "       heartbeat recv PORT [TIMEOUT_S]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && argc <= 5 && !strcmp(argv[1], "send")) {
        int port = parse_port(argv[3]);
        long us = argc == 5 ? strtol(argv[4], NULL, 10) : 1000;
        if (port < 0 || us < 100 || us > 1000000)
            return usage();
        return hb_send(argv[2], port, us);
    }
    if (argc >= 3 && argc <= 4 && !strcmp(argv[1], "recv")) {
        int port = parse_port(argv[2]);
        long t = argc == 4 ? strtol(argv[3], NULL, 10) : 7200;
        if (port < 0 || t <= 0)
            return usage();
        return hb_recv(port, t);
    }
    return usage();
}
