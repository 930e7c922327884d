/* Unit tests of domusd's registry and the toolstack helpers (no daemon). */
#include "domus/domusd.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xen/sched.h>

#include "check.h"

static struct dsd_dom *add(struct dsd *d, const char *name)
{
    struct xlcfg cfg;
    struct dsd_dom *dom = NULL;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.name, sizeof(cfg.name), "%s", name);
    cfg.memory_mb = 100;
    return dsd_dom_new(d, &cfg, &dom) == 0 ? dom : NULL;
}

static void test_domids(void)
{
    struct dsd d = {.epfd = -1, .next_domid = 1};
    struct dsd_dom *a = add(&d, "a"), *b = add(&d, "b"), *c = add(&d, "c"), *e, *f;

    CHECK("domids from 1 upward",
          a && b && c && a->domid == 1 && b->domid == 2 && c->domid == 3);
    dsd_dom_free(&d, b);
    e = add(&d, "e");
    CHECK("a freed domid is not handed out again at once", e && e->domid == 4);
    d.next_domid = DSD_DOMID_MAX;
    f = add(&d, "f");
    CHECK("last domid used", f && f->domid == DSD_DOMID_MAX);
    b = add(&d, "b2");
    CHECK("wraps, skipping live domids (1 is alive, 2 is free)", b && b->domid == 2);
    CHECK("find by name", dsd_dom_find(&d, "c") == c);
    CHECK("find by domid", dsd_dom_find(&d, "3") == c && dsd_dom_find(&d, "4") == e);
    CHECK("find unknown",
          !dsd_dom_find(&d, "zz") && !dsd_dom_find(&d, "99") && !dsd_dom_find(&d, ""));
    CHECK("per-domain paths", strstr(c->console_sock, "/dom3.console") &&
                                  strstr(c->control_sock, "/dom3.control") &&
                                  strstr(c->console_log, "/c.log"));
    a->pid = 1234;
    c->pid = 1235;
    CHECK("committed memory counts live processes only", dsd_committed_mib(&d) == 200);
    a->pid = c->pid = 0;
    strcpy(c->cfg.uuid, "5e3f1a2b-0000-4000-8000-00000000abcd");
    CHECK("uuid taken", dsd_uuid_taken(&d, c->cfg.uuid) && !dsd_uuid_taken(&d, ""));
    while (d.doms)
        dsd_dom_free(&d, d.doms);
    CHECK("registry empty", d.doms == NULL);
}

static void test_letters(void)
{
    struct dsd_dom dom;
    char s[7];

    memset(&dom, 0, sizeof(dom));
    dom.state = DS_RUNNING;
    dsd_state_letters(&dom, 'r', s);
    CHECK("running r", !strcmp(s, "r-----"));
    dsd_state_letters(&dom, 'b', s);
    CHECK("blocked b", !strcmp(s, "-b----"));
    dsd_state_letters(&dom, 'p', s);
    CHECK("paused p", !strcmp(s, "--p---"));
    dsd_state_letters(&dom, 0, s);
    CHECK("running, no info", !strcmp(s, "------"));
    dom.state = DS_CRASHED;
    dom.shutdown_reason = SHUTDOWN_crash;
    dsd_state_letters(&dom, 0, s);
    CHECK("crashed sc", !strcmp(s, "---sc-"));
    dom.state = DS_SHUTDOWN;
    dom.shutdown_reason = SHUTDOWN_poweroff;
    dsd_state_letters(&dom, 0, s);
    CHECK("shut down s", !strcmp(s, "---s--"));
    dom.shutdown_reason = SHUTDOWN_reboot;
    dsd_state_letters(&dom, 0, s);
    CHECK("shut down for reboot sr", !strcmp(s, "---sr-"));
    dom.state = DS_DYING;
    dsd_state_letters(&dom, 0, s);
    CHECK("dying d", !strcmp(s, "-----d"));
}

static void test_meminfo(void)
{
    const char *t = "MemTotal:       24683520 kB\nMemFree:        1000 kB\n"
                    "MemAvailable:   2048 kB\n";
    uint64_t v = 0;
    struct ts_hostinfo hi;

    CHECK("meminfo MemTotal", ts_meminfo_value(t, "MemTotal", &v) == 0 && v == 24683520);
    CHECK("meminfo MemAvailable",
          ts_meminfo_value(t, "MemAvailable", &v) == 0 && v == 2048);
    CHECK("meminfo prefix is not a match", ts_meminfo_value(t, "Mem", &v) < 0);
    CHECK("meminfo absent", ts_meminfo_value(t, "SwapTotal", &v) < 0);
    CHECK("host info", ts_hostinfo(&hi) == 0 && hi.mem_total_mib > 0 && hi.cpus >= 1 &&
                           hi.mem_available_mib <= hi.mem_total_mib);
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : st.st_size;
}

/* A domus-vm writing its stderr flat out: each read round takes a bounded
 * share, and its log stays under DSD_VMLOG_MAX with the previous one in
 * <log>.1. */
static void test_vmlog(void)
{
    struct dsd d = {.epfd = -1, .next_domid = 1};
    struct dsd_dom *dom = add(&d, "chatty");
    int p[2];
    static char chunk[65536];
    char old[PATH_MAX + 4];

    if (!dom || pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0 ||
        fcntl(p[0], F_SETPIPE_SZ, 1 << 20) < 0)
        abort();
    mkdir("/tmp/test-toolstack-log", 0700);
    snprintf(dom->vm_log, sizeof(dom->vm_log), "/tmp/test-toolstack-log/vm-chatty.log");
    snprintf(old, sizeof(old), "%s.1", dom->vm_log);
    unlink(old);
    dom->vmlog_fd = open(dom->vm_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (dom->vmlog_fd < 0 || ftruncate(dom->vmlog_fd, DSD_VMLOG_MAX - 1000) < 0)
        abort();
    dom->err_fd = p[0];
    dom->pid = getpid(); /* running */
    memset(chunk, 'v', sizeof(chunk));
    size_t put = 0;
    while (write(p[1], chunk, sizeof(chunk)) == sizeof(chunk))
        put += sizeof(chunk);
    int avail_before = 0, avail_after = 0;
    ioctl(p[0], FIONREAD, &avail_before);
    dsd_vm_read_stderr(&d, dom);
    ioctl(p[0], FIONREAD, &avail_after);
    printf("vm log: %zu bytes queued, one round read %d\n", put,
           avail_before - avail_after);
    CHECK("domusd reads a running domus-vm's stderr within a budget per round",
          put >= (1u << 20) && avail_before - avail_after == DSD_STDERR_BUDGET * 4096);
    CHECK("its log rotated at the cap: <log>.1 has the old one, the new one the rest",
          size_of(old) == DSD_VMLOG_MAX - 1000 &&
              size_of(dom->vm_log) == DSD_STDERR_BUDGET * 4096);
    dom->pid = 0; /* dead: its last words are read whole */
    close(p[1]);
    dsd_vm_read_stderr(&d, dom);
    CHECK("a dead domus-vm's stderr is read to its end", dom->err_fd < 0);
    CHECK("the log never passes its cap", size_of(dom->vm_log) <= (off_t)DSD_VMLOG_MAX &&
                                              size_of(old) <= (off_t)DSD_VMLOG_MAX);
    if (dom->vmlog_fd >= 0)
        close(dom->vmlog_fd);
    dom->vmlog_fd = -1;
    dsd_dom_free(&d, dom);
}

int main(void)
{
    setenv("DOMUS_RUN_DIR", "/tmp/test-toolstack-run", 1);
    setenv("DOMUS_LOG_DIR", "/tmp/test-toolstack-log", 1);
    test_domids();
    test_letters();
    test_meminfo();
    test_vmlog();
    return failures ? 1 : 0;
}
