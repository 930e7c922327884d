/* xenstore benchmark client: Xen's own libxenstore (libxen-dev) against the
 * daemon at $XENSTORED_PATH.  Prints one line per operation:
 *   <op> <ops/s> ops/s (<n> ops in <s> s)
 * Operations: write, read, directory (16 children), transaction
 * (start, read, write, commit), watch (write in one connection -> event in
 * another), and write from 4 concurrent client processes (aggregate).
 *   build/bench/xenstore [N]     (default N = 20000) */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *op, long n, double secs)
{
    printf("%-22s %10.0f ops/s  (%ld ops in %.3f s)\n", op, (double)n / secs, n, secs);
    fflush(stdout);
}

static struct xs_handle *open_xs(void)
{
    struct xs_handle *h = xs_open(0);
    if (!h) {
        perror("xs_open");
        exit(1);
    }
    return h;
}

static bool bench_write(struct xs_handle *h, long n, const char *prefix)
{
    char path[64], val[32];
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/k%ld", prefix, i % 1000);
        int len = snprintf(val, sizeof(val), "value-%ld", i);
        if (!xs_write(h, XBT_NULL, path, val, (unsigned)len))
            return false;
    }
    return true;
}

static bool bench_read(struct xs_handle *h, long n)
{
    char path[64];
    for (long i = 0; i < n; i++) {
        unsigned len;
        snprintf(path, sizeof(path), "/bench/k%ld", i % 1000);
        char *v = xs_read(h, XBT_NULL, path, &len);
        if (!v)
            return false;
        free(v);
    }
    return true;
}

static bool bench_dir(struct xs_handle *h, long n)
{
    char path[64];
    for (int i = 0; i < 16; i++) {
        snprintf(path, sizeof(path), "/benchdir/child%d", i);
        if (!xs_write(h, XBT_NULL, path, "x", 1))
            return false;
    }
    for (long i = 0; i < n; i++) {
        unsigned num;
        char **d = xs_directory(h, XBT_NULL, "/benchdir", &num);
        if (!d || num != 16)
            return false;
        free(d);
    }
    return true;
}

static bool bench_tx(struct xs_handle *h, long n, long *retries)
{
    for (long i = 0; i < n; i++) {
        for (;;) {
            xs_transaction_t t = xs_transaction_start(h);
            if (t == XBT_NULL)
                return false;
            unsigned len;
            free(xs_read(h, t, "/bench/k1", &len));
            if (!xs_write(h, t, "/bench/tx", "v", 1))
                return false;
            if (xs_transaction_end(h, t, false))
                break;
            (*retries)++;
        }
    }
    return true;
}

static bool bench_watch(struct xs_handle *w, struct xs_handle *h, long n)
{
    unsigned num;
    if (!xs_watch(w, "/bench/w", "tok"))
        return false;
    free(xs_read_watch(w, &num)); /* the initial event */
    for (long i = 0; i < n; i++) {
        if (!xs_write(h, XBT_NULL, "/bench/w", "1", 1))
            return false;
        char **ev = xs_read_watch(w, &num);
        if (!ev)
            return false;
        free(ev);
    }
    return xs_unwatch(w, "/bench/w", "tok");
}

static bool bench_parallel(long n, int procs)
{
    pid_t pids[16];
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            struct xs_handle *h = open_xs();
            char prefix[32];
            snprintf(prefix, sizeof(prefix), "/bench/p%d", p);
            bool ok = bench_write(h, n, prefix);
            xs_close(h);
            _exit(ok ? 0 : 1);
        }
    }
    bool ok = true;
    for (int p = 0; p < procs; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    return ok;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    struct xs_handle *h = open_xs(), *w = open_xs();
    double t;
    long retries = 0;
    bool ok = true;

    t = now();
    ok &= bench_write(h, n, "/bench");
    report("write", n, now() - t);
    t = now();
    ok &= bench_read(h, n);
    report("read", n, now() - t);
    t = now();
    ok &= bench_dir(h, n);
    report("directory (16 names)", n, now() - t);
    t = now();
    ok &= bench_tx(h, n / 4, &retries);
    report("transaction (r+w)", n / 4, now() - t);
    t = now();
    ok &= bench_watch(w, h, n / 4);
    report("watch write->event", n / 4, now() - t);
    t = now();
    ok &= bench_parallel(n / 4, 4);
    report("write, 4 clients", n, now() - t);

    xs_rm(h, XBT_NULL, "/bench");
    xs_rm(h, XBT_NULL, "/benchdir");
    xs_close(w);
    xs_close(h);
    if (!ok)
        fprintf(stderr, "xenstore bench: an operation failed\n");
    return ok ? 0 : 1;
}
