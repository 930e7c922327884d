/* Unit tests of the console back end (console.h) without a guest: the ring
 * in the domain's special page is written by hand as hvc0 would, the kicks
 * go straight to the eventfd the back end asked KVM to route (fake hv_ops).
 * A guest that writes as fast as it can must be held to xenconsoled's rate,
 * and the log file must stay under its cap. */
#include "domus/console.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xen/io/console.h>

#include "check.h"

static int kick_fd = -1;

static int f_route_fd(struct domain *d, uint32_t port, int fd)
{
    (void)d, (void)port;
    kick_fd = fd;
    return 0;
}
static int f_route_rm(struct domain *d, uint32_t port)
{
    (void)d, (void)port;
    return 0;
}
static int f_deliver(struct domain *d, uint32_t port, uint32_t vcpu)
{
    (void)d, (void)port, (void)vcpu;
    return 0;
}

static struct hv_ops ops = {
    .route_eventfd = f_route_fd, .route_remove = f_route_rm, .deliver = f_deliver};

static struct xencons_interface *ring(struct domain *d)
{
    return gmem_ptr(&d->mem, GMEM_SPECIAL_BASE + GMEM_SPECIAL_CONSOLE * DOMUS_PAGE_SIZE,
                    sizeof(struct xencons_interface));
}

/* Puts as much of buf[0..len) as fits into the output ring and kicks;
 * the bytes put. */
static size_t guest_write(struct domain *d, const char *buf, size_t len)
{
    struct xencons_interface *r = ring(d);
    XENCONS_RING_IDX cons = __atomic_load_n(&r->out_cons, __ATOMIC_ACQUIRE);
    XENCONS_RING_IDX prod = r->out_prod;
    size_t n = 0;
    while (n < len && prod - cons < sizeof(r->out))
        r->out[MASK_XENCONS_IDX(prod++, r->out)] = buf[n++];
    __atomic_store_n(&r->out_prod, prod, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (n && write(kick_fd, &one, sizeof(one)) != sizeof(one))
        abort();
    return n;
}

static struct domain *new_domain(void)
{
    struct domain *d = calloc(1, sizeof(*d));
    domain_init(d, 9, "con", 1, &ops);
    if (gmem_init(&d->mem, 32ULL << 20) < 0)
        abort();
    return d;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : st.st_size;
}

/* A guest writing flat out for one second: the back end takes at most 30
 * ring batches per 200 ms (xenconsoled's rate), i.e. about 300 KiB/s. */
static void test_rate(const char *dir)
{
    char log[256], err[256];
    struct domain *d = new_domain();
    struct console_be *c = NULL;
    static char line[2048];
    uint64_t put = 0;

    memset(line, 'x', sizeof(line));
    snprintf(log, sizeof(log), "%s/rate.log", dir);
    CHECK("console starts", console_start(d, log, NULL, &c, err, sizeof(err)) == 0);
    if (!c)
        return;
    int64_t t0 = dnow_ms();
    while (dnow_ms() - t0 < 1000)
        if (!guest_write(d, line, sizeof(line)))
            usleep(50);
    struct xencons_interface *r = ring(d);
    uint64_t taken = (uint32_t)(__atomic_load_n(&r->out_cons, __ATOMIC_ACQUIRE));
    put = r->out_prod;
    console_stop(c);
    /* 1 s is five periods, six counting a partial one at each end. */
    uint64_t bound = 6 * 30 * sizeof(r->out);
    printf("console rate: %llu bytes taken in 1 s (bound %llu), %llu put\n",
           (unsigned long long)taken, (unsigned long long)bound, (unsigned long long)put);
    CHECK("console: a guest writing flat out is held to xenconsoled's rate",
          taken > 0 && taken <= bound);
    CHECK("console: what was taken reached the log", file_size(log) >= (off_t)taken);
    gmem_destroy(&d->mem);
    free(d);
}

/* A log near its cap: further output keeps it under CONSOLE_LOG_MAX, with
 * the newest output at its end and a line saying older output was dropped. */
static void test_log_cap(const char *dir)
{
    char log[256], err[256];
    struct domain *d = new_domain();
    struct console_be *c = NULL;
    static char chunk[2048];

    snprintf(log, sizeof(log), "%s/cap.log", dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, CONSOLE_LOG_MAX - 3000) < 0)
        abort();
    close(fd);
    CHECK("console starts on a full log",
          console_start(d, log, NULL, &c, err, sizeof(err)) == 0);
    if (!c)
        return;
    for (unsigned i = 0; i < 8; i++) {
        memset(chunk, 'a' + (int)i, sizeof(chunk));
        size_t done = 0;
        while (done < sizeof(chunk)) {
            done += guest_write(d, chunk + done, sizeof(chunk) - done);
            usleep(1000);
        }
    }
    console_stop(c);
    off_t size = file_size(log);
    char head[64] = {0}, tail[2048];
    fd = open(log, O_RDONLY);
    bool read_ok =
        fd >= 0 && pread(fd, head, sizeof(head) - 1, 0) > 0 &&
        pread(fd, tail, sizeof(tail), size - (off_t)sizeof(tail)) == sizeof(tail);
    if (fd >= 0)
        close(fd);
    printf("console log: %lld bytes after 16 KiB more output on a %u-byte log\n",
           (long long)size, CONSOLE_LOG_MAX - 3000);
    CHECK("console log: kept under its cap", size > 0 && size <= (off_t)CONSOLE_LOG_MAX);
    CHECK("console log: says older output was dropped",
          read_ok && strstr(head, "older console output dropped"));
    CHECK("console log: ends with the newest output",
          read_ok && tail[0] == 'h' && tail[sizeof(tail) - 1] == 'h');
    gmem_destroy(&d->mem);
    free(d);
}

/* The console socket is its owner's only, whatever the umask. */
static void test_socket_mode(const char *dir)
{
    char sock[256], err[256];
    struct domain *d = new_domain();
    struct console_be *c = NULL;
    struct stat st;

    snprintf(sock, sizeof(sock), "%s/console.sock", dir);
    mode_t um = umask(0);
    int rc = console_start(d, NULL, sock, &c, err, sizeof(err));
    umask(um);
    CHECK("console socket: mode 0600",
          rc == 0 && stat(sock, &st) == 0 && (st.st_mode & 0777) == 0600);
    console_stop(c);
    gmem_destroy(&d->mem);
    free(d);
}

int main(void)
{
    char dir[] = "/tmp/domus-test-console-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    test_rate(dir);
    test_log_cap(dir);
    test_socket_mode(dir);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return failures ? 1 : 0;
}
