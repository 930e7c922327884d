/* domusd: domain lifecycle -- readiness, exits and the on_poweroff/on_reboot/
 * on_crash actions, timeouts. */
#include "domus/domusd.h"
#include "domus/vmctl.h"
#include "domus/util.h"
#include "domus/vmproc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/sched.h>

/* The config's warnings (keys ignored), and what the domain was given less
 * of than its config asks for. */
json_object *dsd_cfg_warnings(const struct xlcfg *c)
{
    json_object *w = json_object_new_array();
    char msg[64];

    for (unsigned i = 0; i < c->n_warnings && i < XLCFG_MAX_WARNINGS; i++)
        json_object_array_add(w, json_object_new_string(c->warnings[i]));
    if (c->n_warnings > XLCFG_MAX_WARNINGS) {
        snprintf(msg, sizeof(msg), "%u more warnings not shown",
                 c->n_warnings - XLCFG_MAX_WARNINGS);
        json_object_array_add(w, json_object_new_string(msg));
    }
    return w;
}

static json_object *create_warnings(struct dsd *d, const struct dsd_dom *dom)
{
    json_object *w = dsd_cfg_warnings(&dom->cfg);
    char msg[160];

    if (d->xs.enabled && !dom->xs_up) {
        snprintf(msg, sizeof(msg), "%s: not introduced to xenstore (see domusd.log)",
                 dom->cfg.name);
        json_object_array_add(w, json_object_new_string(msg));
    }
    return w;
}

static void reply_waiter_ok(struct dsd *d, struct dsd_dom *dom)
{
    json_object *o;

    if (!dom->waiter)
        return;
    o = dsd_ok();
    json_object_object_add(o, "domid", json_object_new_int((int)dom->domid));
    json_object_object_add(o, "name", json_object_new_string(dom->cfg.name));
    json_object_object_add(o, "warnings", create_warnings(d, dom));
    if (dom->timings[0])
        json_object_object_add(o, "timings", json_object_new_string(dom->timings));
    dsd_reply(d, dom->waiter, o);
    dom->waiter = 0;
    dom->wkind = DW_NONE;
}

/* A restored domain's vCPUs wait (--paused) until its xenstore nodes and
 * back ends are there for the guest's resume; then they run, unless the
 * restore asked for a paused domain.  Its next start (a reboot) builds the
 * kernel again. */
static void restored(struct dsd_dom *dom)
{
    char err[256];

    dinfo("domain %u (%s): restored from %s", dom->domid, dom->cfg.name,
          dom->restore_path);
    dom->restore_path[0] = '\0';
    dom->restore_lazy = false;
    if (!dom->restore_paused &&
        dsd_vm_control(dom, vmctl_req("unpause"), NULL, err, sizeof(err)) < 0)
        dwarn("domain %u: unpausing the restored domain: %s", dom->domid, err);
}

void dsd_became_ready(struct dsd *d, struct dsd_dom *dom)
{
    dom->state = DS_RUNNING;
    dom->deadline_ms = 0;
    dinfo("domain %u (%s): running", dom->domid, dom->cfg.name);
    dsd_sched_apply_affinity(dom);
    dom->xs_up = d->xs.enabled && dsd_xs_domain_up(d, dom) == 0;
    dappendf(dom->timings, sizeof(dom->timings), " dsd_xs=%llu",
             (unsigned long long)drealtime_ns());
    if (dom->restore_path[0])
        restored(dom);
    if (dom->wkind == DW_CREATE)
        reply_waiter_ok(d, dom);
}

void dsd_kill_domain(struct dsd *d, struct dsd_dom *dom)
{
    (void)d;
    dom->destroy_requested = true;
    if (dom->state != DS_BUILDING)
        dom->state = DS_DYING;
    if (dom->pid > 0 && kill(dom->pid, SIGTERM) < 0 && errno != ESRCH)
        dwarn("domain %u: kill: %s", dom->domid, strerror(errno));
    dom->deadline_ms = dnow_ms() + DSD_KILL_TIMEOUT_MS;
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        dfmt(buf, len, "domus-vm exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        dfmt(buf, len, "domus-vm was killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
    else
        dfmt(buf, len, "domus-vm ended (status 0x%x)", status);
}

/* The domain never became ready: report why to whoever waits, forget it. */
static void build_failed(struct dsd *d, struct dsd_dom *dom, int status)
{
    char why[600];

    if (dom->timed_out)
        dfmt(why, sizeof(why), "timed out after %lld s waiting for the domain to start",
             (long long)(dom->start_timeout_ms / 1000));
    else if (dom->destroy_requested)
        dfmt(why, sizeof(why), "destroyed while being built");
    else if (dom->errline[0])
        dfmt(why, sizeof(why), "%s", dom->errline);
    else
        describe_status(status, why, sizeof(why));
    dwarn("domain %u (%s): failed to start: %s", dom->domid, dom->cfg.name, why);
    if (dom->wkind == DW_CREATE) {
        char msg[700];
        snprintf(msg, sizeof(msg), "%s: failed to start: %s", dom->cfg.name, why);
        dsd_reply_failure(d, dom->waiter, msg, dsd_cfg_warnings(&dom->cfg));
    } else if (dom->wkind == DW_DESTROY)
        dsd_reply(d, dom->waiter, dsd_ok());
    dsd_dom_free(d, dom);
}

/* SHUTDOWN_* reason for an exit status of a running domain; crash when odd. */
static int exit_reason(int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) >= DOMUS_VM_EXIT_SHUTDOWN_BASE &&
        WEXITSTATUS(status) <= DOMUS_VM_EXIT_SHUTDOWN_BASE + SHUTDOWN_MAX)
        return WEXITSTATUS(status) - DOMUS_VM_EXIT_SHUTDOWN_BASE;
    return SHUTDOWN_crash;
}

static enum xlcfg_action action_for(const struct xlcfg *c, int reason)
{
    switch (reason) {
    case SHUTDOWN_reboot:
        return c->on_reboot;
    case SHUTDOWN_crash:
    case SHUTDOWN_watchdog:
        return c->on_crash;
    default: /* poweroff, and suspend/soft_reset which Domus does not do yet */
        return c->on_poweroff;
    }
}

/* True when the domain restarted DSD_RESTART_BURST times within the window. */
static bool restart_loop(struct dsd_dom *dom)
{
    int64_t now = dnow_ms();
    unsigned slot = dom->n_restarts % DSD_RESTART_BURST;
    bool loop = dom->n_restarts >= DSD_RESTART_BURST &&
                now - dom->restarts[slot] < DSD_RESTART_WINDOW_MS;

    dom->restarts[slot] = now;
    dom->n_restarts++;
    return loop;
}

static void restart(struct dsd *d, struct dsd_dom *dom)
{
    char err[512];

    dsd_vm_close_pipes(d, dom);
    if (restart_loop(dom)) {
        dwarn("domain %u (%s): restarted %d times in %d s, destroying it", dom->domid,
              dom->cfg.name, DSD_RESTART_BURST, DSD_RESTART_WINDOW_MS / 1000);
        dsd_dom_free(d, dom);
        return;
    }
    if (dsd_vm_spawn(d, dom, err, sizeof(err)) < 0) {
        dwarn("domain %u (%s): restart failed: %s", dom->domid, dom->cfg.name, err);
        dsd_dom_free(d, dom);
    }
}

static void preserve(struct dsd *d, struct dsd_dom *dom, int reason)
{
    dsd_vm_close_pipes(d, dom);
    unlink(dom->console_sock);
    unlink(dom->control_sock);
    dom->state = reason == SHUTDOWN_crash ? DS_CRASHED : DS_SHUTDOWN;
    dom->shutdown_reason = reason;
}

static void child_exited(struct dsd *d, struct dsd_dom *dom, int status)
{
    int reason = exit_reason(status);
    enum xlcfg_action act;
    char how[128];

    /* Its "ready" may still sit in the pipe when SIGCHLD is handled first. */
    if (dom->ready_fd >= 0)
        dsd_vm_read_ready(d, dom);
    dom->pid = 0;
    dom->deadline_ms = 0;
    if (dom->err_fd >= 0)
        dsd_vm_read_stderr(d, dom); /* the dead child's last words */
    if (dom->xs_up || dom->xs_nodes)
        dsd_xs_domain_down(d, dom);
    dom->xs_up = false;
    if (dom->state == DS_BUILDING) {
        build_failed(d, dom, status);
        return;
    }
    describe_status(status, how, sizeof(how));
    if (dom->destroy_requested ||
        (WIFEXITED(status) && WEXITSTATUS(status) == DOMUS_VM_EXIT_DESTROYED)) {
        dinfo("domain %u (%s): destroyed", dom->domid, dom->cfg.name);
        if (dom->wkind == DW_DESTROY)
            dsd_reply(d, dom->waiter, dsd_ok());
        dsd_dom_free(d, dom);
        return;
    }
    act = action_for(&dom->cfg, reason);
    dinfo("domain %u (%s): shut down (reason %d, %s), action %s", dom->domid,
          dom->cfg.name, reason, how, xlcfg_action_name(act));
    if (act == XLCFG_ACTION_RESTART)
        restart(d, dom);
    else if (act == XLCFG_ACTION_PRESERVE)
        preserve(d, dom, reason);
    else
        dsd_dom_free(d, dom);
}

void dsd_reap_children(struct dsd *d)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        struct dsd_dom *dom;

        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        dom = dsd_dom_by_pid(d, pid);
        if (dom)
            child_exited(d, dom, status);
    }
}

void dsd_check_deadlines(struct dsd *d)
{
    int64_t now = dnow_ms();

    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (!x->deadline_ms || now < x->deadline_ms || x->pid <= 0)
            continue;
        if (x->state == DS_BUILDING && !x->destroy_requested)
            x->timed_out = true;
        dwarn("domain %u (%s): killing pid %d", x->domid, x->cfg.name, (int)x->pid);
        kill(x->pid, SIGKILL);
        x->deadline_ms = 0;
    }
    dsd_hotplug_tick(d);
}

int dsd_next_timeout_ms(struct dsd *d)
{
    int64_t now = dnow_ms(), best = dsd_hotplug_timeout_ms(d);
    int cg = dsd_cgroup_timeout_ms(d);

    if (cg >= 0 && (best < 0 || cg < best))
        best = cg;

    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (!x->deadline_ms)
            continue;
        int64_t left = x->deadline_ms > now ? x->deadline_ms - now : 0;
        if (best < 0 || left < best)
            best = left;
    }
    return best > 60000 ? 60000 : (int)best;
}

/* Adopted processes are not our children: their pidfd tells when they end
 * (even while nobody reaps them). */
static bool adopted_ended(const struct dsd_dom *x)
{
    struct pollfd p = {.fd = x->pidfd, .events = POLLIN};
    return x->pidfd >= 0 ? poll(&p, 1, 0) == 1 : kill(x->pid, 0) < 0 && errno == ESRCH;
}

static void reap_adopted(struct dsd *d)
{
    struct dsd_dom *x = d->doms;

    while (x) {
        if (x->adopted && x->pid > 0 && adopted_ended(x)) {
            dsd_persist_adopted_exit(d, x);
            x = d->doms; /* the list changed: start again */
        } else {
            x = x->next;
        }
    }
}

void dsd_destroy_all(struct dsd *d)
{
    int64_t end = dnow_ms() + DSD_KILL_TIMEOUT_MS;

    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (x->pid > 0)
            dsd_kill_domain(d, x);
    }
    while (dsd_committed_mib(d) && dnow_ms() < end) {
        usleep(20000);
        dsd_reap_children(d);
        reap_adopted(d);
    }
    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (x->pid > 0)
            kill(x->pid, SIGKILL);
    }
    while (d->doms) {
        if (d->doms->pid > 0 && !d->doms->adopted)
            waitpid(d->doms->pid, NULL, 0);
        dsd_dom_free(d, d->doms);
    }
}
