/* Scheduling helpers (sched.h) and xl.cfg's cpu_weight, cap, cpus, cpus_soft. */
#include "check.h"
#include "domus/sched.h"
#include "domus/xlcfg.h"

#include <stdlib.h>
#include <string.h>

static char err[256];

static void test_weight_cap(void)
{
    char buf[48];

    CHECK("weight 256 -> cpu.weight 100", ts_sched_cg_weight(256) == 100);
    CHECK("weight 512 -> cpu.weight 200", ts_sched_cg_weight(512) == 200);
    CHECK("weight 1 -> cpu.weight 1 (clamped up from 0)", ts_sched_cg_weight(1) == 1);
    CHECK("weight 3 -> cpu.weight 1", ts_sched_cg_weight(3) == 1);
    CHECK("weight 65535 -> cpu.weight 10000 (clamped from 25599)",
          ts_sched_cg_weight(65535) == 10000);
    CHECK("weight 25600 -> cpu.weight 10000", ts_sched_cg_weight(25600) == 10000);
    CHECK("weight 1000 -> cpu.weight 390", ts_sched_cg_weight(1000) == 390);
    ts_sched_cpu_max(0, buf, sizeof(buf));
    CHECK("cap 0 -> cpu.max 'max 100000'", !strcmp(buf, "max 100000"));
    ts_sched_cpu_max(50, buf, sizeof(buf));
    CHECK("cap 50 -> cpu.max '50000 100000'", !strcmp(buf, "50000 100000"));
    ts_sched_cpu_max(250, buf, sizeof(buf));
    CHECK("cap 250 -> cpu.max '250000 100000'", !strcmp(buf, "250000 100000"));
    CHECK("check: weight 0 refused",
          ts_sched_check(0, 0, err, sizeof(err)) < 0 && strstr(err, "weight 0"));
    CHECK("check: weight 65536 refused", ts_sched_check(65536, 0, err, sizeof(err)) < 0);
    CHECK("check: cap 65536 refused",
          ts_sched_check(256, 65536, err, sizeof(err)) < 0 && strstr(err, "cap 65536"));
    CHECK("check: 1/0 and 65535/65535 accepted",
          ts_sched_check(1, 0, err, sizeof(err)) == 0 &&
              ts_sched_check(65535, 65535, err, sizeof(err)) == 0);
}

/* Parses s among nr CPUs and formats it back. */
static int round_trip(const char *s, unsigned nr, char *out, size_t len)
{
    cpu_set_t set;
    int rc = ts_cpulist_parse(s, nr, &set, err, sizeof(err));

    if (!rc)
        ts_cpulist_format(&set, nr, out, len);
    return rc;
}

static void test_cpulist(void)
{
    char out[TS_CPULIST_MAX];
    cpu_set_t set;

    CHECK("cpus 'all' of 8 -> all",
          !round_trip("all", 8, out, sizeof(out)) && !strcmp(out, "all"));
    CHECK("cpus '0-3,5' of 8 -> 0-3,5",
          !round_trip("0-3,5", 8, out, sizeof(out)) && !strcmp(out, "0-3,5"));
    CHECK("cpus '5,0,1,2' of 8 -> 0-2,5",
          !round_trip("5,0,1,2", 8, out, sizeof(out)) && !strcmp(out, "0-2,5"));
    CHECK("cpus '0,1' of 2 -> all (xl prints all for every CPU)",
          !round_trip("0,1", 2, out, sizeof(out)) && !strcmp(out, "all"));
    CHECK("cpus '1' of 2 -> 1",
          !round_trip("1", 2, out, sizeof(out)) && !strcmp(out, "1"));
    CHECK("cpus 'all,^1' of 4 -> 0,2-3",
          !round_trip("all,^1", 4, out, sizeof(out)) && !strcmp(out, "0,2-3"));
    CHECK("cpus '6-7' of 8 -> 6-7",
          !round_trip("6-7", 8, out, sizeof(out)) && !strcmp(out, "6-7"));
    CHECK("cpus '2' of 2 refused (not on this host)",
          round_trip("2", 2, out, sizeof(out)) < 0 && strstr(err, "not on this host"));
    CHECK("cpus '3-1' refused (backwards)",
          round_trip("3-1", 8, out, sizeof(out)) < 0 && strstr(err, "backwards"));
    CHECK("cpus '' refused", round_trip("", 8, out, sizeof(out)) < 0);
    CHECK("cpus '1,' refused", round_trip("1,", 8, out, sizeof(out)) < 0);
    CHECK("cpus 'x' refused", round_trip("x", 8, out, sizeof(out)) < 0);
    CHECK("cpus '1-' refused", round_trip("1-", 8, out, sizeof(out)) < 0);
    CHECK("cpus '0,^0' refused (no CPU left)",
          round_trip("0,^0", 8, out, sizeof(out)) < 0 && strstr(err, "no CPU"));
    CHECK("cpus '99999999999999999999' refused",
          round_trip("99999999999999999999", 8, out, sizeof(out)) < 0);
    CPU_ZERO(&set);
    ts_cpulist_format(&set, 4, out, sizeof(out));
    CHECK("empty set -> none", !strcmp(out, "none"));
}

static void test_taskstat(void)
{
    struct ts_taskstat st;
    const char *line =
        "4242 (vcpu 1) (x)) R 4200 4200 4100 34816 4200 4194368 100 0 0 0 1234 56 0 0 "
        "20 0 5 0 777 123456789 999 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 "
        "17 1 0 0 0 0 0";

    CHECK("stat: parsed (comm with spaces and parentheses)",
          ts_parse_taskstat(line, &st) == 0);
    CHECK("stat: state R, cpu 1, utime+stime 1290",
          st.state == 'R' && st.cpu == 1 && st.cpu_ticks == 1290);
    CHECK("stat: truncated line refused", ts_parse_taskstat("1 (a) S 1 2 3", &st) < 0);
    CHECK("stat: no comm refused", ts_parse_taskstat("garbage", &st) < 0);
}

static struct xlcfg cfg;

static int parse(const char *text)
{
    return xlcfg_parse_string(text, "t.cfg", &cfg, err, sizeof(err));
}

static void test_xlcfg_keys(void)
{
    CHECK("xl.cfg: defaults weight 256, cap 0, no cpus",
          parse("name='a'\nkernel='/k'\ntype='pvh'\n") == 0 && cfg.cpu_weight == 256 &&
              cfg.cap == 0 && !cfg.cpus[0] && !cfg.cpus_soft[0] && cfg.n_warnings == 0);
    CHECK("xl.cfg: cpu_weight=512 cap=50 cpus='1' cpus_soft='0-1', no warning",
          parse("name='a'\nkernel='/k'\ntype='pvh'\ncpu_weight=512\ncap=50\ncpus='1'\n"
                "cpus_soft=\"0-1\"\n") == 0 &&
              cfg.cpu_weight == 512 && cfg.cap == 50 && !strcmp(cfg.cpus, "1") &&
              !strcmp(cfg.cpus_soft, "0-1") && cfg.n_warnings == 0);
    CHECK("xl.cfg: cpu_weight=0 refused with its line",
          parse("name='a'\nkernel='/k'\ncpu_weight=0\n") < 0 &&
              strstr(err, "t.cfg:3: cpu_weight: weight 0 is out of range"));
    CHECK("xl.cfg: cpu_weight=70000 refused",
          parse("name='a'\nkernel='/k'\ncpu_weight=70000\n") < 0);
    CHECK("xl.cfg: cap=70000 refused", parse("name='a'\nkernel='/k'\ncap=70000\n") < 0 &&
                                           strstr(err, "t.cfg:3: cap:"));
    CHECK("xl.cfg: cap='x' refused", parse("name='a'\nkernel='/k'\ncap='x'\n") < 0);
    CHECK("xl.cfg: cpus='1-x' refused",
          parse("name='a'\nkernel='/k'\ncpus='1-x'\n") < 0 &&
              strstr(err, "t.cfg:3: cpus:"));
    CHECK("xl.cfg: cpus=[...] (per-vCPU) refused",
          parse("name='a'\nkernel='/k'\ncpus=['0','1']\n") < 0 &&
              strstr(err, "per-vCPU lists are not supported"));
    CHECK("xl.cfg: cpus=1 (a number) is the list '1'",
          parse("name='a'\nkernel='/k'\ncpus=1\n") == 0 && !strcmp(cfg.cpus, "1"));
}

int main(void)
{
    test_weight_cap();
    test_cpulist();
    test_taskstat();
    test_xlcfg_keys();
    if (failures)
        printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
