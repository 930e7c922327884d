/* Scheduling helpers: weights, caps, cpu lists, thread stat (sched.h). */
#include "domus/sched.h"
#include "domus/util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned ts_sched_cg_weight(unsigned credit_weight)
{
    unsigned long w = (unsigned long)credit_weight * 100 / TS_WEIGHT_DEFAULT;

    return w < 1 ? 1 : w > 10000 ? 10000 : (unsigned)w;
}

void ts_sched_cpu_max(unsigned cap, char *buf, size_t len)
{
    if (!cap)
        snprintf(buf, len, "max %u", TS_CPU_PERIOD_US);
    else
        snprintf(buf, len, "%llu %u", (unsigned long long)cap * 1000, TS_CPU_PERIOD_US);
}

int ts_sched_check(unsigned long long weight, unsigned long long cap, char *err,
                   size_t errlen)
{
    if (weight < 1 || weight > TS_WEIGHT_MAX) {
        dfmt(err, errlen, "weight %llu is out of range (1..%d)", weight, TS_WEIGHT_MAX);
        return -EINVAL;
    }
    if (cap > TS_CAP_MAX) {
        dfmt(err, errlen, "cap %llu is out of range (0..%d, percent of one CPU)", cap,
             TS_CAP_MAX);
        return -EINVAL;
    }
    return 0;
}

/* One number of a cpu list at *p, below nr. */
static int cpu_number(const char **p, unsigned nr, unsigned *out, char *err,
                      size_t errlen)
{
    char *end;
    unsigned long v;

    if (!isdigit((unsigned char)**p)) {
        dfmt(err, errlen, "expected a CPU number at '%.20s'", *p);
        return -EINVAL;
    }
    errno = 0;
    v = strtoul(*p, &end, 10);
    if (errno || v >= nr) {
        dfmt(err, errlen, "CPU %.20s is not on this host (CPUs 0-%u)", *p, nr - 1);
        return -EINVAL;
    }
    *p = end;
    *out = (unsigned)v;
    return 0;
}

/* One entry ("all", "N", "N-M", each maybe with '^') into set. */
static int cpulist_entry(const char **p, unsigned nr, cpu_set_t *set, char *err,
                         size_t errlen)
{
    bool neg = **p == '^';
    unsigned lo, hi;
    int rc;

    *p += neg;
    if (!strncmp(*p, "all", 3)) {
        *p += 3;
        lo = 0;
        hi = nr - 1;
    } else {
        rc = cpu_number(p, nr, &lo, err, errlen);
        if (rc)
            return rc;
        hi = lo;
        if (**p == '-') {
            (*p)++;
            rc = cpu_number(p, nr, &hi, err, errlen);
            if (rc)
                return rc;
            if (hi < lo) {
                dfmt(err, errlen, "range %u-%u is backwards", lo, hi);
                return -EINVAL;
            }
        }
    }
    for (unsigned c = lo; c <= hi; c++) {
        if (neg)
            CPU_CLR(c, set);
        else
            CPU_SET(c, set);
    }
    return 0;
}

int ts_cpulist_parse(const char *s, unsigned nr_cpus, cpu_set_t *set, char *err,
                     size_t errlen)
{
    const char *p = s;
    int rc;

    CPU_ZERO(set);
    if (nr_cpus < 1 || nr_cpus > CPU_SETSIZE) {
        dfmt(err, errlen, "cannot handle %u CPUs", nr_cpus);
        return -EINVAL;
    }
    if (!*p) {
        dfmt(err, errlen, "empty cpu list");
        return -EINVAL;
    }
    for (;;) {
        rc = cpulist_entry(&p, nr_cpus, set, err, errlen);
        if (rc)
            return rc;
        if (!*p)
            break;
        if (*p != ',' || !p[1]) {
            dfmt(err, errlen, "unexpected '%.20s' in cpu list", p);
            return -EINVAL;
        }
        p++;
    }
    if (!CPU_COUNT(set)) {
        dfmt(err, errlen, "cpu list '%.40s' holds no CPU", s);
        return -EINVAL;
    }
    return 0;
}

void ts_cpulist_format(const cpu_set_t *set, unsigned nr_cpus, char *buf, size_t len)
{
    size_t n = 0;
    unsigned c = 0, count = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < nr_cpus && i < CPU_SETSIZE; i++)
        count += CPU_ISSET(i, set) ? 1 : 0;
    if (!count || count == nr_cpus) {
        snprintf(buf, len, "%s", count ? "all" : "none");
        return;
    }
    while (c < nr_cpus && n < len) {
        unsigned lo;
        if (!CPU_ISSET(c, set)) {
            c++;
            continue;
        }
        lo = c;
        while (c + 1 < nr_cpus && CPU_ISSET(c + 1, set))
            c++;
        n += (size_t)snprintf(buf + n, len - n, lo == c ? "%s%u" : "%s%u-%u",
                              n ? "," : "", lo, c);
        c++;
    }
}

int ts_parse_taskstat(const char *text, struct ts_taskstat *st)
{
    const char *p = strrchr(text, ')');
    unsigned long long utime, stime;
    int cpu;
    char state;

    /* after comm: state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) ... processor(39) */
    if (!p || sscanf(p + 1,
                     " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu"
                     " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s"
                     " %*s %*s %*s %*s %*s %*s %*s %*s %*s %d",
                     &state, &utime, &stime, &cpu) != 4)
        return -EINVAL;
    st->state = state;
    st->cpu = cpu;
    st->cpu_ticks = utime + stime;
    return 0;
}
