/* domus top: xentop's table (xl top runs xentop), from domusd's "top".
 *
 *   domus top [-b] [-i N] [-d S] [-n] [-x] [-v] [-r] [-f]
 *
 * Columns, widths and number formats are xentop's: NAME STATE CPU(sec)
 * CPU(%) MEM(k) MEM(%) MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS
 * VBD_OO VBD_RD VBD_WR VBD_RSECT VBD_WSECT SSID, the counters' columns as
 * wide as their largest value needs; CPU(%) is over the time since the last
 * sample (0.0 in the first).  -b prints the table each iteration and nothing
 * else, as xentop's batch mode; without it the screen is redrawn with
 * xentop's summary lines above the table. */
#include "domus/cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TOP_MAX_DOMS 1024

struct top_opts {
    bool batch, nets, vbds, vcpus, repeat, full;
    long iterations; /* 0: until interrupted */
    double delay;
};

/* The previous sample's CPU time per domid, for CPU(%). */
struct top_prev {
    bool have;
    struct timeval when;
    unsigned n;
    struct {
        long long domid, cpu_ns;
    } d[TOP_MAX_DOMS];
};

/* Column widths that grow with their values (xentop's adjust_field_widths). */
struct top_widths {
    int name, tx, rx, rd, wr, rsect, wsect;
};

static volatile sig_atomic_t top_stop;
static void on_signal(int sig)
{
    (void)sig;
    top_stop = 1;
}

static long long num(json_object *o, const char *key)
{
    return cli_jnum(o, key);
}

/* Digits of v + 1, as xentop's INT_FIELD_WIDTH((v) + 1). */
static int digits(long long v)
{
    int n = 1;
    for (unsigned long long x = (unsigned long long)v + 1; x >= 10; x /= 10)
        n++;
    return n;
}

static void widen(int *w, int need)
{
    if (need > *w)
        *w = need;
}

static void measure(json_object *rows, const struct top_opts *o, struct top_widths *w)
{
    *w = (struct top_widths){10, 8, 8, 8, 8, 10, 10};
    for (size_t i = 0; i < json_object_array_length(rows); i++) {
        json_object *r = json_object_array_get_idx(rows, i);
        if (o->full)
            widen(&w->name, (int)strlen(cli_jstr(r, "name")));
        widen(&w->tx, digits(num(r, "net_tx_bytes") / 1024));
        widen(&w->rx, digits(num(r, "net_rx_bytes") / 1024));
        widen(&w->rd, digits(num(r, "vbd_rd")));
        widen(&w->wr, digits(num(r, "vbd_wr")));
        widen(&w->rsect, digits(num(r, "vbd_rsect")));
        widen(&w->wsect, digits(num(r, "vbd_wsect")));
    }
}

static void header(const struct top_widths *w)
{
    printf("%*s %6s %10s %6s %10s %6s %10s %9s %5s %4s %*s %*s %4s %8s %*s %*s %*s %*s "
           "%4s\n",
           w->name, "NAME", "STATE", "CPU(sec)", "CPU(%)", "MEM(k)", "MEM(%)",
           "MAXMEM(k)", "MAXMEM(%)", "VCPUS", "NETS", w->tx, "NETTX(k)", w->rx,
           "NETRX(k)", "VBDS", "VBD_OO", w->rd, "VBD_RD", w->wr, "VBD_WR", w->rsect,
           "VBD_RSECT", w->wsect, "VBD_WSECT", "SSID");
}

static double cpu_pct(const struct top_prev *p, const struct timeval *now, json_object *r)
{
    double us = (double)(now->tv_sec - p->when.tv_sec) * 1e6 +
                (double)(now->tv_usec - p->when.tv_usec);

    for (unsigned i = 0; p->have && us > 0 && i < p->n; i++)
        if (p->d[i].domid == num(r, "domid"))
            return (double)(num(r, "cpu_ns") - p->d[i].cpu_ns) / 10.0 / us;
    return 0.0;
}

static void row(json_object *r, const struct top_widths *w, double pct, double tot_kib)
{
    long long mem = num(r, "mem_kib"), max = num(r, "maxmem_kib");
    char maxs[24], maxp[24];

    if (max < 0) {
        snprintf(maxs, sizeof(maxs), "%10s", "no limit");
        snprintf(maxp, sizeof(maxp), "%9s", "n/a");
    } else {
        snprintf(maxs, sizeof(maxs), "%10lld", max);
        snprintf(maxp, sizeof(maxp), "%9.1f", (double)max / tot_kib * 100);
    }
    printf(
        "%*.*s %6s %10lld %6.1f %10lld %6.1f %s %s %5lld %4lld %*lld %*lld %4lld %8lld "
        "%*lld %*lld %*lld %*lld %4u\n",
        w->name, w->name, cli_jstr(r, "name"), cli_jstr(r, "state"),
        num(r, "cpu_ns") / 1000000000LL, pct, mem, (double)mem / tot_kib * 100, maxs,
        maxp, num(r, "vcpus"), num(r, "nets"), w->tx, num(r, "net_tx_bytes") / 1024,
        w->rx, num(r, "net_rx_bytes") / 1024, num(r, "vbds"), num(r, "vbd_oo"), w->rd,
        num(r, "vbd_rd"), w->wr, num(r, "vbd_wr"), w->rsect, num(r, "vbd_rsect"),
        w->wsect, num(r, "vbd_wsect"), 0u);
}

/* xentop -n's lines: the guest's side (netback_stats), no errors or drops
 * counted. */
static void nets(json_object *r)
{
    json_object *vifs;

    if (!json_object_object_get_ex(r, "vifs", &vifs))
        return;
    for (size_t i = 0; i < json_object_array_length(vifs); i++) {
        json_object *v = json_object_array_get_idx(vifs, i);
        printf("Net%zu RX: %8lldbytes %8lldpkts %8lluerr %8lludrop  ", i,
               num(v, "rx_bytes"), num(v, "rx_pkts"), 0ULL, 0ULL);
        printf("TX: %8lldbytes %8lldpkts %8lluerr %8lludrop\n", num(v, "tx_bytes"),
               num(v, "tx_pkts"), 0ULL, 0ULL);
    }
}

/* xentop -v's line: each online vCPU's seconds, five to a line. */
static void vcpus(json_object *r)
{
    json_object *t;
    long long online = num(r, "vcpus_online");

    printf("VCPUs(sec): ");
    if (json_object_object_get_ex(r, "vcpu_ns", &t) &&
        json_object_is_type(t, json_type_array))
        for (size_t i = 0; i < json_object_array_length(t) && (long long)i < online;
             i++) {
            if (i != 0 && i % 5 == 0)
                printf("\n        ");
            printf(" %2zu: %10llus", i,
                   (unsigned long long)json_object_get_uint64(
                       json_object_array_get_idx(t, i)) /
                       1000000000ULL);
        }
    printf("\n");
}

/* xentop -x's lines. */
static void vbds(json_object *r)
{
    json_object *l;

    if (!json_object_object_get_ex(r, "vbd_list", &l))
        return;
    for (size_t i = 0; i < json_object_array_length(l); i++) {
        json_object *v = json_object_array_get_idx(l, i);
        long long dev = num(v, "devid");
        printf("VBD BlkBack %4lld [%2llx:%2llx]  OO: %8lld   RD: %8lld   WR: %8lld   "
               "RSECT: %10lld   WSECT: %10lld\n",
               dev, (dev >> 8) & 0xfff, dev & 0xff, num(v, "oo_req"), num(v, "rd_req"),
               num(v, "wr_req"), num(v, "rd_sect"), num(v, "wr_sect"));
    }
}

/* xentop's summary (interactive mode only). */
static void summary(json_object *node, json_object *rows, const struct timeval *now)
{
    unsigned run = 0, block = 0, pause = 0, crash = 0, dying = 0, shut = 0;
    long long tot = num(node, "tot_mem_kib"), fr = num(node, "free_mem_kib");
    time_t t = now->tv_sec;
    char ts[16];

    strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&t));
    printf("xentop - %s   Xen %s\n", ts, cli_jstr(node, "xen_version"));
    for (size_t i = 0; i < json_object_array_length(rows); i++) {
        const char *s = cli_jstr(json_object_array_get_idx(rows, i), "state");
        if (strlen(s) != 6)
            continue;
        if (s[5] == 'r') /* xentop's order: dsbcpr letters, counted once */
            run++;
        else if (s[2] == 'b')
            block++;
        else if (s[4] == 'p')
            pause++;
        else if (s[1] == 's')
            shut++;
        else if (s[3] == 'c')
            crash++;
        else if (s[0] == 'd')
            dying++;
    }
    printf("%zu domains: %u running, %u blocked, %u paused, %u crashed, %u dying, "
           "%u shutdown \n",
           json_object_array_length(rows), run, block, pause, crash, dying, shut);
    printf("Mem: %lluk total, %lluk used, %lluk free    CPUs: %lld @ %lldMHz\n",
           (unsigned long long)tot, (unsigned long long)(tot - fr),
           (unsigned long long)fr, num(node, "cpus"), num(node, "cpu_mhz"));
}

static void remember(struct top_prev *p, json_object *rows, const struct timeval *now)
{
    p->have = true;
    p->when = *now;
    p->n = 0;
    for (size_t i = 0; i < json_object_array_length(rows) && p->n < TOP_MAX_DOMS; i++) {
        json_object *r = json_object_array_get_idx(rows, i);
        p->d[p->n].domid = num(r, "domid");
        p->d[p->n++].cpu_ns = num(r, "cpu_ns");
    }
}

/* One sample, printed; 0 or 1 (domusd's error printed). */
static int one(const struct top_opts *o, struct top_prev *prev)
{
    json_object *reply = NULL, *node, *rows;
    struct top_widths w;
    struct timeval now;

    json_object *req = json_object_new_object();

    json_object_object_add(req, "cmd", json_object_new_string("top"));
    if (cli_request(req, &reply))
        return 1;
    gettimeofday(&now, NULL);
    if (!json_object_object_get_ex(reply, "node", &node) ||
        !json_object_object_get_ex(reply, "domains", &rows) ||
        !json_object_is_type(rows, json_type_array) || num(node, "tot_mem_kib") <= 0) {
        fprintf(stderr, "domus: error: malformed reply from domusd\n");
        json_object_put(reply);
        return 1;
    }
    if (!o->batch) {
        printf("\033[H\033[2J");
        summary(node, rows, &now);
    }
    measure(rows, o, &w);
    for (size_t i = 0; i < json_object_array_length(rows); i++) {
        json_object *r = json_object_array_get_idx(rows, i);
        if (i == 0 || o->repeat)
            header(&w);
        row(r, &w, cpu_pct(prev, &now, r), (double)num(node, "tot_mem_kib"));
        if (o->vcpus)
            vcpus(r);
        if (o->nets)
            nets(r);
        if (o->vbds)
            vbds(r);
    }
    fflush(stdout);
    remember(prev, rows, &now);
    json_object_put(reply);
    return 0;
}

/* The switch that option letter c sets. */
static bool *flag_of(struct top_opts *o, int c)
{
    switch (c) {
    case 'b':
        return &o->batch;
    case 'n':
        return &o->nets;
    case 'x':
        return &o->vbds;
    case 'v':
        return &o->vcpus;
    case 'r':
        return &o->repeat;
    default:
        return &o->full;
    }
}

static int top_args(int argc, char **argv, struct top_opts *o)
{
    static const struct option longs[] = {{"batch", 0, NULL, 'b'},
                                          {"iterations", 1, NULL, 'i'},
                                          {"delay", 1, NULL, 'd'},
                                          {"networks", 0, NULL, 'n'},
                                          {"vbds", 0, NULL, 'x'},
                                          {"vcpus", 0, NULL, 'v'},
                                          {"repeat-header", 0, NULL, 'r'},
                                          {"full-name", 0, NULL, 'f'},
                                          {NULL, 0, NULL, 0}};
    char *end;
    int c;

    *o = (struct top_opts){.delay = 3};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+bi:d:nxvrf", longs, NULL)) != -1) {
        if (c == 'i') {
            o->iterations = strtol(optarg, &end, 10);
            if (*end || end == optarg || o->iterations < 1)
                return -1;
        } else if (c == 'd') {
            o->delay = strtod(optarg, &end);
            if (*end || end == optarg || !(o->delay >= 0) || o->delay > 86400)
                return -1;
        } else if (c == 'b' || c == 'n' || c == 'x' || c == 'v' || c == 'r' || c == 'f') {
            *flag_of(o, c) = true;
        } else {
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

int cli_top(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_signal};
    struct top_prev *prev;
    struct top_opts o;
    int rc = 0;

    if (top_args(argc, argv, &o) < 0)
        return cli_usage_error("top");
    prev = calloc(1, sizeof(*prev));
    if (!prev)
        return 1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (long it = 1; !rc && !top_stop; it++) {
        rc = one(&o, prev);
        if (rc || (o.iterations && it >= o.iterations))
            break;
        struct timespec ts = {(time_t)o.delay,
                              (long)((o.delay - (double)(time_t)o.delay) * 1e9)};
        while (!top_stop && nanosleep(&ts, &ts) < 0)
            ;
    }
    free(prev);
    return rc;
}
