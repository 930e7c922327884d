/* Scheduling of domains: xl's credit weight and cap, vCPU affinity, and what
 * /proc says about a vCPU thread.  Pure helpers, shared by domusd and the
 * tests (ts_sched.c).
 *
 * A domain's scheduling is Linux's: its domus-vm runs in a cgroup v2 group
 * whose cpu.weight comes from the credit weight and whose cpu.max comes from
 * the cap; a vCPU's hard affinity is its thread's sched_setaffinity mask.
 * Linux has no soft affinity: it is recorded and shown, nothing more. */
#ifndef DOMUS_SCHED_H
#define DOMUS_SCHED_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#define TS_WEIGHT_DEFAULT 256 /* xl's default credit weight */
#define TS_WEIGHT_MAX 65535
#define TS_CAP_MAX 65535 /* Xen's cap is a uint16_t percentage */
#define TS_CPU_PERIOD_US 100000
#define TS_CPULIST_MAX 256 /* longest cpu list string kept */

/* The cgroup cpu.weight (1..10000, 100 the default) for a credit weight
 * (1..65535, 256 the default): weight * 100 / 256, clamped. */
unsigned ts_sched_cg_weight(unsigned credit_weight);

/* The cgroup cpu.max line for a cap (percent of one CPU; 0 = none):
 * "max 100000" or "<cap * 1000> 100000". */
void ts_sched_cpu_max(unsigned cap, char *buf, size_t len);

/* 0 when weight is 1..TS_WEIGHT_MAX and cap 0..TS_CAP_MAX; else -EINVAL with
 * the reason in err. */
int ts_sched_check(unsigned long long weight, unsigned long long cap, char *err,
                   size_t errlen);

/* Parses an xl cpu list: "all", or comma-separated CPUs and ranges
 * ("0-3,5"), an entry starting with '^' removing CPUs ("all,^1").  CPUs must
 * be below nr_cpus (at most CPU_SETSIZE).  0, or -EINVAL with the reason in
 * err; the result is never empty. */
int ts_cpulist_parse(const char *s, unsigned nr_cpus, cpu_set_t *set, char *err,
                     size_t errlen);

/* xl's form of a CPU set among nr_cpus: "all" when it holds 0..nr_cpus-1,
 * "none" when empty, else ranges "0-3,5". */
void ts_cpulist_format(const cpu_set_t *set, unsigned nr_cpus, char *buf, size_t len);

/* What /proc/<pid>/task/<tid>/stat says about a thread. */
struct ts_taskstat {
    char state;         /* 'R', 'S', 'D', ... */
    int cpu;            /* CPU it last ran on */
    uint64_t cpu_ticks; /* utime + stime, in clock ticks */
};

/* Parses one stat line (the comm field may hold spaces and parentheses);
 * 0 or -EINVAL. */
int ts_parse_taskstat(const char *text, struct ts_taskstat *st);

#endif
