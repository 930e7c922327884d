/* domusd: the domain registry. */
#include "domus/domusd.h"
#include "domus/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool domid_in_use(struct dsd *d, unsigned domid)
{
    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (x->domid == domid)
            return true;
    }
    return false;
}

/* Like Xen: the next id after the last one handed out, wrapping, skipping live ones. */
static int alloc_domid(struct dsd *d, unsigned *out)
{
    for (unsigned i = 0; i < DSD_DOMID_MAX; i++) {
        unsigned id = d->next_domid;
        d->next_domid = id >= DSD_DOMID_MAX ? 1 : id + 1;
        if (id >= 1 && !domid_in_use(d, id)) {
            *out = id;
            return 0;
        }
    }
    return -EBUSY;
}

static int set_paths(struct dsd_dom *dom)
{
    const char *run = ts_run_dir(), *log = ts_log_dir();
    int a = snprintf(dom->console_sock, sizeof(dom->console_sock), "%s/dom%u.console",
                     run, dom->domid);
    int b = snprintf(dom->control_sock, sizeof(dom->control_sock), "%s/dom%u.control",
                     run, dom->domid);
    int c = snprintf(dom->console_log, sizeof(dom->console_log), "%s/%s.log", log,
                     dom->cfg.name);
    int e = snprintf(dom->vm_log, sizeof(dom->vm_log), "%s/domus-vm-%s.log", log,
                     dom->cfg.name);

    if (a < 0 || (size_t)a >= sizeof(dom->console_sock) || b < 0 ||
        (size_t)b >= sizeof(dom->control_sock) || c < 0 ||
        (size_t)c >= sizeof(dom->console_log) || e < 0 ||
        (size_t)e >= sizeof(dom->vm_log))
        return -ENAMETOOLONG;
    return 0;
}

int dsd_dom_new(struct dsd *d, const struct xlcfg *cfg, struct dsd_dom **out)
{
    struct dsd_dom *dom = calloc(1, sizeof(*dom));
    int rc;

    if (!dom)
        return -ENOMEM;
    dom->cfg = *cfg;
    dom->ready_fd = dom->err_fd = dom->vmlog_fd = dom->pidfd = -1;
    dom->shutdown_reason = -1;
    dom->vcpus_online = cfg->vcpus;
    rc = alloc_domid(d, &dom->domid);
    if (rc)
        goto out;
    rc = set_paths(dom);
    if (rc)
        goto out;
    dom->next = d->doms;
    d->doms = dom;
    *out = dom;
    return 0;
out:
    free(dom);
    return rc;
}

void dsd_dom_free(struct dsd *d, struct dsd_dom *dom)
{
    for (struct dsd_dom **pp = &d->doms; *pp; pp = &(*pp)->next) {
        if (*pp == dom) {
            *pp = dom->next;
            break;
        }
    }
    dsd_vm_close_pipes(d, dom);
    dsd_unwatch_close(d, &dom->pidfd);
    if (dom->xs_up || dom->xs_nodes)
        dsd_xs_domain_down(d, dom);
    dsd_persist_remove(dom);
    free(dom->cfg_text);
    /* domus-vm removes them itself, except when it was killed. */
    if (!dom->keep_sockets) {
        unlink(dom->console_sock);
        unlink(dom->control_sock);
        dsd_cgroup_remove(d, dom);
    }
    free(dom);
}

void dsd_unlink_dom_sockets(unsigned domid)
{
    char p[PATH_MAX];

    snprintf(p, sizeof(p), "%s/dom%u.console", ts_run_dir(), domid);
    unlink(p);
    snprintf(p, sizeof(p), "%s/dom%u.control", ts_run_dir(), domid);
    unlink(p);
}

int dsd_dom_set_source(struct dsd_dom *dom, const char *path, const char *text)
{
    char *t = strdup(text);

    if (!t)
        return -ENOMEM;
    free(dom->cfg_text);
    dom->cfg_text = t;
    snprintf(dom->cfg_path, sizeof(dom->cfg_path), "%s", path);
    return 0;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return false;
    }
    return true;
}

struct dsd_dom *dsd_dom_find(struct dsd *d, const char *spec)
{
    bool numeric = all_digits(spec);
    unsigned long id = numeric ? strtoul(spec, NULL, 10) : 0;

    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (numeric ? x->domid == id : !strcmp(x->cfg.name, spec))
            return x;
    }
    return NULL;
}

struct dsd_dom *dsd_dom_by_pid(struct dsd *d, pid_t pid)
{
    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (x->pid == pid)
            return x;
    }
    return NULL;
}

struct dsd_dom *dsd_dom_by_fd(struct dsd *d, int fd)
{
    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (x->ready_fd == fd || x->err_fd == fd || x->pidfd == fd)
            return x;
    }
    return NULL;
}

bool dsd_uuid_taken(struct dsd *d, const char *uuid)
{
    for (struct dsd_dom *x = d->doms; *uuid && x; x = x->next) {
        if (!strcmp(x->cfg.uuid, uuid))
            return true;
    }
    return false;
}

uint64_t dsd_committed_mib(struct dsd *d)
{
    uint64_t sum = 0;
    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (x->pid)
            sum += x->cfg.memory_mb;
    }
    return sum;
}

const char *dsd_state_name(enum dsd_state s)
{
    static const char *const names[] = {"building", "running", "shutdown", "crashed",
                                        "dying"};
    return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "?";
}

void dsd_state_letters(const struct dsd_dom *dom, char info_state, char out[7])
{
    static const char reason_letters[] = "-rscw"; /* as xl: by SHUTDOWN_* reason */

    memcpy(out, "------", 7);
    switch (dom->state) {
    case DS_RUNNING:
        if (info_state == 'r')
            out[0] = 'r';
        else if (info_state == 'b')
            out[1] = 'b';
        else if (info_state == 'p')
            out[2] = 'p';
        break;
    case DS_SHUTDOWN:
    case DS_CRASHED:
        out[3] = 's';
        if (dom->state == DS_CRASHED)
            out[4] = 'c';
        else if (dom->shutdown_reason > 0 &&
                 (size_t)dom->shutdown_reason < sizeof(reason_letters) - 1)
            out[4] = reason_letters[dom->shutdown_reason];
        break;
    case DS_DYING:
        out[5] = 'd';
        break;
    case DS_BUILDING:
        break;
    }
}
