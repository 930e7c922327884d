/* domus migrate and domus migrate-receive (cli.h), with xl's options.
 *
 * The connection between them carries, both ways (docs/migration.md):
 *   receiver -> source: "domus-migrate-receive 1\n" (it runs);
 *   source -> receiver: the save image stream, sent while the guest runs;
 *   receiver -> source: "ready\n" once the domain is restored, paused,
 *                       or "error: <why>\n";
 *   source -> receiver: "go\n" (the source's copy will never run again);
 *   receiver -> source: "done <ns>\n" once it unpaused the domain
 *                       (CLOCK_REALTIME), or "error: <why>\n";
 *   post-copy only (the header's config says "postcopy"), then:
 *   source -> receiver: the pages the stream left out (page data records,
 *                       an end record), pushed and asked for;
 *   receiver -> source: u64 page numbers it asks for, then u64 all ones
 *                       once every page is in (the source's copy goes).
 * The source's domusd does the stream and reads "ready" (dsd_migrate.c);
 * the receiver spools the stream to a file, then restores it as `domus
 * restore -p` does and unpauses on "go". */
#include "domus/cli.h"
#include "domus/saveimg.h"
#include "domus/toolstack.h"
#include "domus/util.h"
#include "domus/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BANNER "domus-migrate-receive 1"
#define LINE_TIMEOUT_MS 60000
#define GO_TIMEOUT_MS 120000

static bool debug;

static void dbg(const char *fmt, const char *arg)
{
    if (debug) {
        fprintf(stderr, "migrate: ");
        fprintf(stderr, fmt, arg);
        fputc('\n', stderr);
    }
}

static int put_line(int fd, const char *s)
{
    size_t len = strlen(s);
    dbg("-> %s", s);
    while (len) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EPIPE;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- the source ---- */

struct mig_args {
    const char *ssh, *transport, *config, *dom, *host;
    bool paused, postcopy;
    long downtime_ms, max_rounds, bandwidth_mib;
};

/* A TCP connection whose peer or path vanishes (a host gone, a link cut)
 * fails its reads and writes within TCP_DEAD_S seconds instead of TCP's
 * quarter of an hour of retransmissions, so that neither end of a
 * migration waits for ever: data unacknowledged that long ends it
 * (TCP_USER_TIMEOUT), and so does an idle connection whose keepalive
 * probes go unanswered (waiting for "ready" or "go"). */
#define TCP_DEAD_S 30
static void tcp_bound(int fd)
{
    int on = 1, idle = 5, intvl = 2, cnt = 10, ms = TCP_DEAD_S * 1000;

    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) < 0)
        fprintf(stderr, "domus: warning: TCP keepalive: %s\n", strerror(errno));
}

/* "tcp:HOST:PORT" connected; -1 after printing why. */
static int connect_tcp(const char *spec)
{
    char host[256], *port;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL, *a;
    int fd = -1, rc;

    snprintf(host, sizeof(host), "%s", spec + 4);
    port = strrchr(host, ':');
    if (strncmp(spec, "tcp:", 4) || !port || port == host) {
        fprintf(stderr, "domus: error: --transport must be tcp:<addr>:<port>\n");
        return -1;
    }
    *port++ = '\0';
    if ((rc = getaddrinfo(host, port, &hints, &ai))) {
        fprintf(stderr, "domus: error: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    for (a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            rc = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        fprintf(stderr, "domus: error: connecting to %s:%s: %s\n", host, port,
                strerror(rc ? rc : ECONNREFUSED));
    else
        tcp_bound(fd);
    return fd;
}

/* `<ssh> <host> domus migrate-receive` on one end of a socket pair, as xl
 * runs its ssh command (sh -c); the other end, or -1. */
static int spawn_ssh(const struct mig_args *a, pid_t *pid)
{
    char rune[1024];
    int sv[2];

    snprintf(rune, sizeof(rune), "exec %s %s domus migrate-receive%s", a->ssh, a->host,
             a->paused ? " -p" : "");
    dbg("running: %s", rune);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    *pid = fork();
    if (*pid == 0) {
        dup2(sv[1], STDIN_FILENO);
        dup2(sv[1], STDOUT_FILENO);
        execl("/bin/sh", "sh", "-c", rune, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    if (*pid < 0) {
        close(sv[0]);
        return -1;
    }
    return sv[0];
}

static json_object *migrate_req(const struct mig_args *a)
{
    json_object *req = cli_dom_req("migrate", a->dom);

    if (a->downtime_ms > 0)
        json_object_object_add(req, "downtime_ms", json_object_new_int64(a->downtime_ms));
    if (a->max_rounds > 0)
        json_object_object_add(req, "max_rounds", json_object_new_int64(a->max_rounds));
    if (a->bandwidth_mib > 0)
        json_object_object_add(req, "bandwidth_mib",
                               json_object_new_int64(a->bandwidth_mib));
    if (a->postcopy)
        json_object_object_add(req, "postcopy", json_object_new_boolean(1));
    if (a->config && cli_req_add_cfg(req, a->config)) {
        json_object_put(req);
        return NULL;
    }
    return req;
}

/* The downtime's phases (docs/migration.md): from one instant to the next,
 * the source's in the reply, the destination's in its "done" line. */
static const struct cli_phase phases[] = {
    {"guest suspend", "suspend_req_ns", "suspended_ns"},
    {"suspend seen", "suspended_ns", "paused_at_ns"},
    {"final pages", "paused_at_ns", "pages_ns"},
    {"state", "pages_ns", "end_ns"},
    {"to receiver", "end_ns", "rcv_end"},
    {"end verified", "rcv_end", "vm_end"},
    {"state applied", "vm_end", "vm_applied"},
    {"back ends", "vm_applied", "vm_devices"},
    {"vCPUs", "vm_devices", "vm_vcpus"},
    {"ready to domusd", "vm_vcpus", "dsd_ready"},
    {"xenstore", "dsd_ready", "dsd_xs"},
    {"restore answer", "dsd_xs", "rcv_reply"},
    {"ready/go", "rcv_reply", "rcv_go"},
    {"unpause", "rcv_go", "done"},
};

struct done_ctx {
    json_object *r;
    const char *done;
};

/* key's instant: a number in the reply, or "key=N" in the done line. */
static uint64_t instant(void *ctx, const char *key)
{
    const struct done_ctx *c = ctx;
    uint64_t t;
    long long j;

    if (!strcmp(key, "done"))
        return strtoull(c->done + 5, NULL, 10);
    t = cli_instant(c->done, key);
    j = t ? 0 : cli_jnum(c->r, key);
    return j > 0 ? (uint64_t)j : t;
}

/* --debug: "downtime phases (ms): label ms, ..." (the first two are
 * before the pause: the guest's own suspend). */
static void print_phases(json_object *r, const char *done)
{
    struct done_ctx c = {r, done};

    cli_print_phases(stdout, "downtime phases", phases, ARRAY_SIZE(phases), instant, &c);
}

static void summary(json_object *r, uint64_t t0, uint64_t done_ns)
{
    long long paused = cli_jnum(r, "paused_at_ns");
    double mib = (double)(cli_jnum(r, "bytes") + cli_jnum(r, "pc_bytes")) / (1 << 20);

    if (isatty(STDERR_FILENO))
        fputc('\n', stderr);
    printf(
        "migration: %lld rounds, %.1f MiB sent, final round %lld ms, downtime %.1f ms, "
        "total %.2f s\n",
        cli_jnum(r, "rounds"), mib, cli_jnum(r, "final_ms"),
        paused > 0 && done_ns > (uint64_t)paused
            ? (double)(done_ns - (uint64_t)paused) / 1e6
            : -1.0,
        (double)(drealtime_ns() - t0) / 1e9);
    if (json_object_object_get_ex(r, "pc_pages", NULL))
        printf("post-copy: %lld pages after the unpause in %.2f s (%lld asked for on a "
               "fault, %lld pushed), %.1f MiB\n",
               cli_jnum(r, "pc_pages"),
               done_ns && cli_jnum(r, "pc_end_ns") > (long long)done_ns
                   ? (double)((uint64_t)cli_jnum(r, "pc_end_ns") - done_ns) / 1e9
                   : (double)cli_jnum(r, "pc_ms") / 1e3,
               cli_jnum(r, "pc_asked"), cli_jnum(r, "pc_pushed"),
               (double)cli_jnum(r, "pc_bytes") / (1 << 20));
}

/* The connection is up and the receiver said hello: domusd migrates. */
static int run_migration(json_object *req, int conn)
{
    int fds[2] = {conn, STDERR_FILENO};
    json_object *reply = NULL;
    char err[1024], line[1024];
    uint64_t t0 = drealtime_ns(), done = 0;
    int rc;

    /* progress on a terminal; with --debug into a log too (a line per round) */
    rc = cli_call_fds(req, fds, isatty(STDERR_FILENO) || debug ? 2 : 1, &reply, err,
                      sizeof(err));
    if (rc) {
        fprintf(stderr, "domus: error: %s\n", err);
        return 1;
    }
    if (!json_object_get_boolean(json_object_object_get(reply, "ok"))) {
        if (isatty(STDERR_FILENO))
            fputc('\n', stderr);
        fprintf(stderr, "%s\n", cli_jstr(reply, "error"));
        json_object_put(reply);
        return 1;
    }
    if (cli_jstr(reply, "done_line")[0]) { /* domusd read it, before its destroy */
        snprintf(line, sizeof(line), "%s", cli_jstr(reply, "done_line"));
        rc = 0;
    } else {
        rc = ts_read_line_bytewise(conn, line, sizeof(line), LINE_TIMEOUT_MS);
    }
    dbg("<- %s", rc ? strerror(-rc) : line);
    if (!rc && !strncmp(line, "done ", 5))
        done = strtoull(line + 5, NULL, 10);
    summary(reply, t0, done);
    if (debug && done)
        print_phases(reply, line);
    json_object_put(reply);
    if (!done) {
        fprintf(stderr,
                "domus: error: the destination did not say it runs the domain (%s): "
                "it may be lost\n",
                rc ? strerror(-rc) : line);
        return 1;
    }
    return 0;
}

static int parse_migrate(int argc, char **argv, struct mig_args *a)
{
    static const struct option longs[] = {
        {"debug", 0, NULL, 'D'},    {"transport", 1, NULL, 'T'},
        {"downtime", 1, NULL, 'W'}, {"max-rounds", 1, NULL, 'R'},
        {"postcopy", 0, NULL, 'P'}, {"bandwidth", 1, NULL, 'B'},
        {NULL, 0, NULL, 0}};
    int c;

    *a = (struct mig_args){.ssh = "ssh"};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+s:eC:p", longs, NULL)) != -1) {
        if (c == 's')
            a->ssh = optarg;
        else if (c == 'C')
            a->config = optarg;
        else if (c == 'p')
            a->paused = true;
        else if (c == 'D')
            debug = true;
        else if (c == 'T')
            a->transport = optarg;
        else if (c == 'W' && (a->downtime_ms = strtol(optarg, NULL, 10)) > 0)
            continue;
        else if (c == 'R' && (a->max_rounds = strtol(optarg, NULL, 10)) > 0)
            continue;
        else if (c == 'B' && (a->bandwidth_mib = strtol(optarg, NULL, 10)) > 0)
            continue;
        else if (c == 'P')
            a->postcopy = true;
        else if (c != 'e')
            return -1;
    }
    if (argc - optind != 2)
        return -1;
    a->dom = argv[optind];
    a->host = argv[optind + 1];
    return 0;
}

int cli_migrate(int argc, char **argv)
{
    struct mig_args a;
    json_object *req;
    char line[256];
    pid_t pid = -1;
    int conn, rc = 1;

    if (parse_migrate(argc, argv, &a) < 0)
        return cli_usage_error("migrate");
    if (!(req = migrate_req(&a))) /* -C's file is read before anything starts */
        return 1;
    signal(SIGPIPE, SIG_IGN);
    conn = a.transport ? connect_tcp(a.transport) : spawn_ssh(&a, &pid);
    if (conn < 0) {
        if (!a.transport)
            fprintf(stderr, "domus: error: cannot run '%s': %s\n", a.ssh,
                    strerror(errno));
        json_object_put(req);
        return 1;
    }
    int hr = ts_read_line_bytewise(conn, line, sizeof(line), LINE_TIMEOUT_MS);
    dbg("<- %s", hr ? strerror(-hr) : line);
    if (hr || strcmp(line, BANNER)) {
        fprintf(stderr,
                "domus: error: the receiver did not start on %s (%s): nothing was sent\n",
                a.host, hr ? strerror(-hr) : line);
        json_object_put(req);
    } else {
        rc = run_migration(req, conn);
    }
    close(conn);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return rc;
}

/* ---- the receiver ---- */

static int listen_once(const char *port_s)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    long port = strtol(port_s, NULL, 10);
    int one = 1, s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), c = -1;

    if (port <= 0 || port > 65535 || s < 0) {
        fprintf(stderr, "domus: error: --listen needs a port (1-65535)\n");
        goto out;
    }
    sa.sin6_port = htons((uint16_t)port);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0) {
        fprintf(stderr, "domus: error: listening on port %ld: %s\n", port,
                strerror(errno));
        goto out;
    }
    fprintf(stderr, "migrate-receive: listening on port %ld\n", port);
    if ((c = accept4(s, NULL, NULL, SOCK_CLOEXEC)) < 0)
        fprintf(stderr, "domus: error: accept: %s\n", strerror(errno));
    else
        tcp_bound(c);
out:
    if (s >= 0)
        close(s);
    return c;
}

/* A domusd request by name; its error text into err. */
static int call(json_object *req, json_object **reply, char *err, size_t errlen)
{
    int rc = cli_call_fds(req, NULL, 0, reply, err, errlen);

    if (!rc && !json_object_get_boolean(json_object_object_get(*reply, "ok"))) {
        snprintf(err, errlen, "%s", cli_jstr(*reply, "error"));
        rc = -EREMOTEIO;
    }
    return rc;
}

/* "migrate-release" on the connection that restored the domain (held: its
 * end before this destroys the domain), which it closes. */
static int release(int held, const char *name, bool paused, char *err, size_t errlen)
{
    json_object *req = cli_dom_req("migrate-release", name), *reply = NULL;
    int rc;

    json_object_object_add(req, "unpause", json_object_new_boolean(!paused));
    rc = vmctl_send(held, req, NULL, 0);
    json_object_put(req);
    if (rc) {
        close(held);
        dfmt(err, errlen, "talking to domusd: %s", strerror(-rc));
        return -EREMOTEIO;
    }
    rc = cli_recv_reply(held, &reply, err, errlen);
    if (!rc && !json_object_get_boolean(json_object_object_get(reply, "ok"))) {
        dfmt(err, errlen, "%s", cli_jstr(reply, "error"));
        rc = -EREMOTEIO;
    }
    json_object_put(reply);
    return rc ? -EREMOTEIO : 0;
}

/* ---- post-copy: the relay between the source and domus-vm ---- */

#define RELAY_IDLE_MS 120000 /* nothing from the source that long: it is gone */

struct relay_buf {
    uint8_t b[1 << 16];
    size_t len, off;
};

/* Reads from fd into an empty buffer: 1, 0 at the end, or -errno. */
static int relay_in(int fd, struct relay_buf *rb)
{
    ssize_t n = read(fd, rb->b, sizeof(rb->b));

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 1 : -errno;
    rb->len = (size_t)n;
    rb->off = 0;
    return n > 0;
}

/* Writes what the buffer holds to fd: 0 or -errno. */
static int relay_out(int fd, struct relay_buf *rb)
{
    ssize_t n = write(fd, rb->b + rb->off, rb->len - rb->off);

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    rb->off += (size_t)n;
    if (rb->off == rb->len)
        rb->len = rb->off = 0;
    return 0;
}

/* Tracks what goes up to the source: *acked once the 8 bytes at an
 * 8-byte boundary are all ones (domus-vm has every page). */
static void watch_up(const struct relay_buf *rb, uint64_t *up, uint8_t *last, bool *acked)
{
    for (size_t i = 0; i < rb->len; i++) {
        last[*up % 8] = rb->b[i];
        if (++*up % 8 == 0)
            *acked = !memcmp(last, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    }
}

/* Page data from the source (in) to domus-vm (vm), its requests back
 * (out), until its "every page in" has gone up.  0, or -errno with err. */
static int relay(int in, int out, int vm, char *err, size_t errlen)
{
    static struct relay_buf down, up;
    uint8_t last[8];
    uint64_t upb = 0, idle_since = dnow_ns();
    bool acked = false;
    int rc = 0;

    fcntl(vm, F_SETFL, O_NONBLOCK);
    while (!rc && !(acked && !up.len)) {
        struct pollfd p[3] = {
            {in, down.len ? 0 : POLLIN, 0},
            {vm, (short)((up.len ? 0 : POLLIN) | (down.len ? POLLOUT : 0)), 0},
            {out, up.len ? POLLOUT : 0, 0}};
        if (poll(p, 3, 1000) < 0 && errno != EINTR)
            rc = -errno;
        if (!rc && !down.len && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
            (rc = relay_in(in, &down)) == 0) {
            dfmt(err, errlen, "the source closed the connection");
            rc = -ECONNRESET;
        } else if (rc == 1) {
            idle_since = dnow_ns();
            rc = 0;
        }
        if (!rc && (p[1].revents & POLLOUT))
            rc = relay_out(vm, &down);
        if (!rc && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !up.len) {
            if ((rc = relay_in(vm, &up)) == 0) {
                dfmt(err, errlen, "the domain's process ended its side");
                rc = -EPIPE;
            } else if (rc == 1) {
                watch_up(&up, &upb, last, &acked);
                rc = 0;
            }
        }
        if (!rc && (p[2].revents & (POLLOUT | POLLERR)))
            rc = relay_out(out, &up);
        if (!rc && dnow_ns() - idle_since > (uint64_t)RELAY_IDLE_MS * 1000000u) {
            dfmt(err, errlen, "nothing from the source for %d s", RELAY_IDLE_MS / 1000);
            rc = -ETIMEDOUT;
        }
    }
    if (rc && !err[0])
        dfmt(err, errlen, "%s", strerror(-rc));
    return rc;
}

/* After "done": the pages the source still holds come through here. */
static int postcopy_receive(int in, int out, int vm, const char *name)
{
    char err[512] = "";
    uint64_t t0 = dnow_ns();
    int rc = relay(in, out, vm, err, sizeof(err));

    if (!rc) {
        fprintf(stderr, "migrate-receive: post-copy: every page of %s in after %.2f s\n",
                name, (double)(dnow_ns() - t0) / 1e9);
        return 0;
    }
    fprintf(stderr,
            "domus: error: post-copy of %s failed after it started here (%s): it is "
            "destroyed here (its memory is not all here); the source keeps its "
            "paused copy\n",
            name, err);
    return 1;
}

/* The restored domain, paused: unpaused on "go", destroyed otherwise. */
static int hand_over(int in, int out, int held, const char *name, bool paused,
                     const char *times, int pc)
{
    json_object *reply = NULL;
    char line[64], err[1024], done[1024];
    int rc = put_line(out, "ready\n")
                 ?: ts_read_line_bytewise(in, line, sizeof(line), GO_TIMEOUT_MS);
    uint64_t go = drealtime_ns();

    dbg("<- %s", rc ? strerror(-rc) : line);
    if (!rc && strcmp(line, "go"))
        rc = -EPROTO;
    if (!rc)
        rc = release(held, name, paused, err, sizeof(err));
    else
        close(held);
    if (!rc) {
        snprintf(done, sizeof(done), "done %llu%s rcv_go=%llu\n",
                 (unsigned long long)drealtime_ns(), times, (unsigned long long)go);
        put_line(out, done);
        fprintf(stderr, "migrate-receive: domain %s runs here\n", name);
        return pc >= 0 ? postcopy_receive(in, out, pc, name) : 0;
    }
    fprintf(stderr,
            "domus: error: migration of %s not completed (%s): destroying it here\n",
            name,
            rc == -EREMOTEIO ? err
            : rc == -EPROTO  ? line
                             : strerror(-rc));
    call(cli_dom_req("destroy", name), &reply, err, sizeof(err));
    json_object_put(reply);
    return 1;
}

/* The header's config (malloc'd) from the memfd it was copied into. */
static char *header_config(int hfd)
{
    uint8_t b[4];
    char *config = NULL;

    if (pread(hfd, b, 4, 16) == 4) {
        uint32_t len = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                       (uint32_t)b[3] << 24;
        if ((config = calloc(1, (size_t)len + 1)) && pread(hfd, config, len, 24) != len) {
            free(config);
            config = NULL;
        }
    }
    return config;
}

/* The restore request: the stream comes through the pipe p (domus-vm's
 * stdin), its header's config with the request, so that domusd can check
 * it (name, memory) before domus-vm starts reading.  *conn: the
 * connection to domusd its answer will come on. */
static int send_restore(int p, const char *config, bool pc, int *conn, char *err,
                        size_t errlen)
{
    json_object *req = json_object_new_object();

    if (pc)
        json_object_object_add(req, "postcopy", json_object_new_boolean(1));
    json_object_object_add(req, "cmd", json_object_new_string("restore"));
    json_object_object_add(req, "fd", json_object_new_boolean(1));
    json_object_object_add(req, "config", json_object_new_string(config));
    json_object_object_add(req, "paused", json_object_new_boolean(1));
    json_object_object_add(req, "hold", json_object_new_boolean(1));
    return cli_send_fds(req, &p, 1, conn, err, errlen);
}

/* The header from hfd, then the records from in, into the pipe. */
static int feed(int in, int hfd, int p, uint64_t *at, char *err, size_t errlen)
{
    char buf[4096];
    off_t off = 0;
    ssize_t n;

    while ((n = pread(hfd, buf, sizeof(buf), off)) > 0) {
        if (write(p, buf, (size_t)n) != n) {
            dfmt(err, errlen, "the stream could not be passed on");
            return -EIO;
        }
        off += n;
    }
    return simg_spool_records(in, p, at, err, errlen);
}

/* domusd's answer to the restore: 0 with the domain's name, or its error
 * (which explains a feed that failed to pass the stream on: -EIO). */
static int restore_reply(int conn, int feed_rc, char *name, size_t nlen, char *times,
                         size_t tlen, char *err, size_t errlen)
{
    json_object *reply = NULL;
    char rerr[1024];
    int rc = cli_recv_reply(conn, &reply, rerr, sizeof(rerr));

    if (!rc && !json_object_get_boolean(json_object_object_get(reply, "ok"))) {
        dfmt(rerr, sizeof(rerr), "%s", cli_jstr(reply, "error"));
        rc = -EREMOTEIO;
    }
    if (!rc) {
        snprintf(name, nlen, "%s", cli_jstr(reply, "name"));
        dappendf(times, tlen, " %s rcv_reply=%llu", cli_jstr(reply, "timings"),
                 (unsigned long long)drealtime_ns());
    }
    json_object_put(reply);
    if (rc && (!feed_rc || feed_rc == -EIO)) /* why the pipe was closed */
        dfmt(err, errlen, "%s", rerr);
    else if (rc) { /* both: the stream's fault first, then domusd's answer */
        char both[2200];
        dfmt(both, sizeof(both), "%s; domusd: %s", err, rerr);
        dfmt(err, errlen, "%s", both);
    }
    return feed_rc ?: rc;
}

/* The stream goes into the new domain as it arrives: its header first
 * (into a memfd: domusd checks the config before the domain exists), then
 * through a pipe that domus-vm restores from while the source still sends
 * rounds; the domain exists, paused, once the end record is read. */
/* The header's config asks for post-copy (dsd_migrate.c). */
static bool wants_postcopy(const char *config)
{
    json_object *o = json_tokener_parse(config), *v;
    bool pc =
        o && json_object_object_get_ex(o, "postcopy", &v) && json_object_get_boolean(v);

    json_object_put(o);
    return pc;
}

/* domus-vm's stdin: a pipe, or a socket pair for post-copy's back channel.
 * The pipe is widened to hold a whole page data record (2 MiB of pages):
 * at the default 64 KiB every record took 32 splices and as many wake-ups
 * of domus-vm, which halved the stream's rate in the test host. */
static int vm_channel(bool pc, int p[2])
{
    if (pc)
        return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p);
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    if (fcntl(p[1], F_SETPIPE_SZ, 4 << 20) < 0) /* beyond pipe-max-size: root only */
        (void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    return 0;
}

static int receive(int in, int out, bool paused)
{
    char err[1024] = "", msg[1100], name[128], times[700], *config = NULL;
    int hfd = memfd_create("migrate-header", MFD_CLOEXEC), p[2] = {-1, -1}, conn = -1, rc;
    int held = -1; /* the restore's connection, kept: domusd destroys the
                    * domain if it ends before the release */
    uint64_t at = 0;
    bool pc = false;

    rc = hfd < 0 ? -errno : simg_spool_header(in, hfd, &at, err, sizeof(err));
    if (!rc && !(config = header_config(hfd)))
        rc = -ENOMEM;
    if (!rc && (pc = wants_postcopy(config)))
        dbg("%s", "post-copy: domus-vm gets a socket");
    if (!rc && vm_channel(pc, p) < 0)
        rc = -errno;
    if (!rc)
        rc = send_restore(p[0], config, pc, &conn, err, sizeof(err));
    if (p[0] >= 0)
        close(p[0]);
    if (!rc && (held = fcntl(conn, F_DUPFD_CLOEXEC, 3)) < 0)
        rc = -errno;
    if (!rc)
        rc = feed(in, hfd, p[1], &at, err, sizeof(err));
    snprintf(times, sizeof(times), " rcv_end=%llu", (unsigned long long)drealtime_ns());
    dbg("stream received: %s", rc ? err : "whole");
    if (p[1] >= 0 && (rc || !pc)) {
        close(p[1]); /* domus-vm sees the end (a cut stream: truncated) */
        p[1] = -1;
    }
    if (conn >= 0)
        rc = restore_reply(conn, rc, name, sizeof(name), times, sizeof(times), err,
                           sizeof(err));
    if (hfd >= 0)
        close(hfd);
    free(config);
    if (rc) {
        dfmt(msg, sizeof(msg), "error: %s\n", err[0] ? err : strerror(-rc));
        put_line(out, msg);
        fprintf(stderr, "domus: error: %s\n", err[0] ? err : strerror(-rc));
        if (held >= 0)
            close(held);
        if (p[1] >= 0)
            close(p[1]);
        return 1;
    }
    rc = hand_over(in, out, held, name, paused, times, p[1]);
    if (p[1] >= 0)
        close(p[1]); /* post-copy: domus-vm's pull sees the end */
    return rc;
}

/* The connection on stdin/stdout moved to descriptors no child inherits
 * (a domusd the CLI starts would hold it open), /dev/null in their place. */
static int stdio_aside(int *in, int *out)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    *in = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    *out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    if (null < 0 || *in < 0 || *out < 0 || dup2(null, STDIN_FILENO) < 0 ||
        dup2(null, STDOUT_FILENO) < 0)
        return -1;
    close(null);
    return 0;
}

int cli_migrate_receive(int argc, char **argv)
{
    static const struct option longs[] = {{"listen", 1, NULL, 'L'}, {NULL, 0, NULL, 0}};
    const char *listen_port = NULL;
    bool paused = false;
    int c, in = STDIN_FILENO, out = STDOUT_FILENO, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+pedD", longs, NULL)) != -1) {
        if (c == 'p')
            paused = true;
        else if (c == 'L')
            listen_port = optarg;
        else if (c != 'e' && c != 'd' && c != 'D')
            return cli_usage_error("migrate-receive");
    }
    if (optind != argc)
        return cli_usage_error("migrate-receive");
    signal(SIGPIPE, SIG_IGN);
    if (listen_port && (in = out = listen_once(listen_port)) < 0)
        return 1;
    if (!listen_port && stdio_aside(&in, &out) < 0) {
        fprintf(stderr, "domus: error: %s\n", strerror(errno));
        return 1;
    }
    if (put_line(out, BANNER "\n") < 0)
        return 1;
    rc = receive(in, out, paused);
    close(in);
    if (out != in)
        close(out);
    return rc;
}
