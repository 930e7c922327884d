/* Unit tests of domusd's host memory accounting (dsd_free_mib): the
 * reserve and the running domains' targets come off what the host has. */
#include "domus/domusd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static struct dsd_dom *add(struct dsd *d, const char *name, uint64_t mib)
{
    struct xlcfg cfg;
    struct dsd_dom *dom = NULL;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.name, sizeof(cfg.name), "%s", name);
    cfg.memory_mb = cfg.maxmem_mb = mib;
    return dsd_dom_new(d, &cfg, &dom) == 0 ? dom : NULL;
}

int main(void)
{
    struct dsd d = {.epfd = -1, .next_domid = 1};
    struct ts_hostinfo hi;
    uint64_t none, r0, small, dom;

    setenv("DOMUS_RUN_DIR", "/tmp/test-dsdmem-run", 1);
    setenv("DOMUS_LOG_DIR", "/tmp/test-dsdmem-log", 1);
    if (ts_hostinfo(&hi) < 0 || hi.mem_total_mib < 256) {
        CHECK("host memory readable", 0);
        return 1;
    }
    setenv("DOMUS_MEM_RESERVE_MIB", "0", 1);
    CHECK("free with no reserve", dsd_free_mib(&d, &r0) == 0 && r0 <= hi.mem_total_mib);
    unsetenv("DOMUS_MEM_RESERVE_MIB");
    CHECK("the default reserve comes off",
          dsd_free_mib(&d, &none) == 0 && none + DSD_MEM_RESERVE_MIB <= r0 + 32);
    setenv("DOMUS_MEM_RESERVE_MIB", "junk", 1);
    CHECK("a malformed reserve is the default",
          dsd_free_mib(&d, &small) == 0 && small + DSD_MEM_RESERVE_MIB <= r0 + 32);
    char big[32];
    snprintf(big, sizeof(big), "%llu", (unsigned long long)hi.mem_total_mib + 1);
    setenv("DOMUS_MEM_RESERVE_MIB", big, 1);
    CHECK("a reserve above the host leaves nothing",
          dsd_free_mib(&d, &small) == 0 && small == 0);
    setenv("DOMUS_MEM_RESERVE_MIB", "0", 1);
    struct dsd_dom *a = add(&d, "a", hi.mem_total_mib - 64);
    a->pid = 4321; /* charged only while it has a process */
    CHECK("a domain's target is charged against MemTotal",
          dsd_free_mib(&d, &dom) == 0 && dom <= 64);
    a->cfg.memory_mb = hi.mem_total_mib + 5;
    CHECK("targets above the host leave nothing",
          dsd_free_mib(&d, &dom) == 0 && dom == 0);
    a->pid = 0;
    CHECK("a domain without a process is not charged",
          dsd_free_mib(&d, &dom) == 0 && dom + 64 >= r0);
    dsd_dom_free(&d, a);
    return failures ? 1 : 0;
}
