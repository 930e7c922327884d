/* Host facts: memory for the create-time check, and Domain-0's list row. */
#include "domus/toolstack.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ts_meminfo_value(const char *text, const char *key, uint64_t *kib)
{
    size_t klen = strlen(key);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (!strncmp(p, key, klen) && p[klen] == ':') {
            char *end;
            unsigned long long v = strtoull(p + klen + 1, &end, 10);
            if (end == p + klen + 1)
                return -EINVAL;
            *kib = v;
            return 0;
        }
    }
    return -ENOENT;
}

static int read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f)
        return -errno;
    n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return 0;
}

/* Sum of the non-idle fields of the "cpu " line of /proc/stat, in seconds. */
static double busy_seconds(void)
{
    char buf[1024];
    unsigned long long v[8] = {0};
    long hz = sysconf(_SC_CLK_TCK);

    if (read_small("/proc/stat", buf, sizeof(buf)) < 0 || hz <= 0)
        return 0;
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7]) < 4)
        return 0;
    /* user nice system [idle] [iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)hz;
}

int ts_hostinfo(struct ts_hostinfo *hi)
{
    char buf[8192];
    uint64_t total, avail;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int rc;

    memset(hi, 0, sizeof(*hi));
    rc = read_small("/proc/meminfo", buf, sizeof(buf));
    if (rc)
        return rc;
    rc = ts_meminfo_value(buf, "MemTotal", &total);
    if (rc)
        return rc;
    if (ts_meminfo_value(buf, "MemAvailable", &avail) < 0)
        avail = total;
    hi->mem_total_mib = total / 1024;
    hi->mem_available_mib = avail / 1024;
    hi->cpus = cpus > 0 ? (unsigned)cpus : 1;
    hi->busy_seconds = busy_seconds();
    return 0;
}

double ts_wall_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
