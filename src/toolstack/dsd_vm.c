/* domusd: starting domus-vm processes (vmproc.h) and talking to them. */
#include "domus/domusd.h"
#include "domus/dsd_dev.h"
#include "domus/util.h"
#include "domus/vmctl.h"
#include "domus/vmproc.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define VM_READY_FD 3
#define VM_MAX_ARGS (32 + 2 * XLCFG_MAX_DISKS + 2 * XLCFG_MAX_VIFS + 2)

struct vm_argv {
    char *argv[VM_MAX_ARGS];
    char domid[16], memory[24], maxmem[24], vcpus[16], ready[8];
    char dev[XLCFG_MAX_DISKS + XLCFG_MAX_VIFS][PATH_MAX + 32]; /* --disk, --vif */
    int n;
};

static void add(struct vm_argv *a, const char *opt, const char *val)
{
    if (a->n + 3 > VM_MAX_ARGS)
        return;
    a->argv[a->n++] = (char *)opt;
    if (val)
        a->argv[a->n++] = (char *)val;
    a->argv[a->n] = NULL;
}

static void build_argv(struct vm_argv *a, const char *bin, const struct dsd_dom *dom,
                       bool xenstore, const char *xs_path)
{
    const struct xlcfg *c = &dom->cfg;
    unsigned n_dev = 0;

    a->n = 0;
    snprintf(a->domid, sizeof(a->domid), "%u", dom->domid);
    snprintf(a->memory, sizeof(a->memory), "%llu", (unsigned long long)c->memory_mb);
    snprintf(a->maxmem, sizeof(a->maxmem), "%llu", (unsigned long long)c->maxmem_mb);
    /* Every vCPU up to maxvcpus exists; those beyond vcpus are offline. */
    snprintf(a->vcpus, sizeof(a->vcpus), "%u", c->maxvcpus);
    snprintf(a->ready, sizeof(a->ready), "%d", VM_READY_FD);
    add(a, bin, NULL);
    add(a, "--domid", a->domid);
    add(a, "--name", c->name);
    if (dom->restore_path[0]) { /* always paused: unpaused once its nodes exist */
        add(a, "--restore", dom->restore_path);
        add(a, "--paused", NULL);
        if (dom->restore_lazy)
            add(a, "--lazy", NULL);
        if (dom->restore_postcopy)
            add(a, "--postcopy", NULL);
    } else {
        add(a, "--kernel", c->kernel);
        if (c->ramdisk[0])
            add(a, "--ramdisk", c->ramdisk);
        if (c->cmdline[0])
            add(a, "--cmdline", c->cmdline);
    }
    add(a, "--memory", a->memory);
    if (c->maxmem_mb != c->memory_mb)
        add(a, "--maxmem", a->maxmem);
    add(a, "--vcpus", a->vcpus);
    add(a, "--console-log", dom->console_log);
    add(a, "--console-sock", dom->console_sock);
    add(a, "--control-sock", dom->control_sock);
    add(a, "--ready-fd", a->ready);
    if (xenstore)
        add(a, "--xenstore", NULL);
    if (xenstore) /* also without devices: they may be hot-plugged */
        add(a, "--xenstore-path", xs_path);
    for (const struct dsd_dev_kind *const *k = dsd_dev_kinds; xenstore && *k; k++) {
        for (unsigned i = 0; i < (*k)->count(c) && i < (*k)->max; i++) {
            char *buf = a->dev[n_dev];
            if ((*k)->arg(c, i, buf, sizeof(a->dev[0])) == 0) {
                add(a, (*k)->vm_opt, buf);
                n_dev++;
            }
        }
    }
}

/* In the child: into the cgroup (cg_fd: its cgroup.procs, -1: none), stdio
 * to the stderr pipe, the ready pipe at VM_READY_FD, default signal state,
 * then exec.  Never returns. */
static void child_exec(const char *bin, char **argv, int ready_w, int err_w, int cg_fd,
                       int in_fd)
{
    sigset_t none;
    int null = open("/dev/null", O_RDONLY);

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Ignored: its stderr is a pipe to this domusd, and the domain must
     * survive domusd's death (the next domusd adopts it). */
    signal(SIGPIPE, SIG_IGN);
    setpgid(0, 0); /* a ^C aimed at a foreground domusd does not hit guests */
    /* Into the domain's cgroup before any vCPU thread exists (domusd moves it
     * again after fork, and says so if that fails). */
    if (cg_fd >= 0 && write(cg_fd, "0", 1) < 0)
        cg_fd = -1;
    if (in_fd > 0) /* a restore's image by descriptor */
        dup2(in_fd, 0);
    else if (null >= 0)
        dup2(null, 0);
    dup2(err_w, 1);
    dup2(err_w, 2);
    if (ready_w == VM_READY_FD)
        fcntl(ready_w, F_SETFD, 0);
    else
        dup2(ready_w, VM_READY_FD);
    execv(bin, argv);
    dprintf(2, "domus-vm: error: cannot run %s: %s\n", bin, strerror(errno));
    _exit(DOMUS_VM_EXIT_ERROR);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int open_pipes(int ready[2], int errp[2])
{
    ready[0] = ready[1] = errp[0] = errp[1] = -1;
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
        return -errno;
    if (fcntl(ready[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(errp[0], F_SETFL, O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int dsd_vm_spawn(struct dsd *d, struct dsd_dom *dom, char *err, size_t errlen)
{
    static struct vm_argv a; /* large (disk paths); domusd is single-threaded */
    int ready[2], errp[2];
    int cg_fd = -1;
    pid_t pid;
    int rc;

    build_argv(&a, d->vm_bin, dom, d->xs.enabled, d->xs.path);
    rc = open_pipes(ready, errp);
    if (rc) {
        dfmt(err, errlen, "cannot create pipes: %s", strerror(-rc));
        goto out;
    }
    dom->vmlog_fd = open(dom->vm_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cg_fd = dsd_cgroup_procs_fd(d, dom);
    snprintf(dom->timings, sizeof(dom->timings), " dsd_spawn=%llu",
             (unsigned long long)drealtime_ns());
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        dfmt(err, errlen, "cannot start domus-vm: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        child_exec(d->vm_bin, a.argv, ready[1], errp[1], cg_fd, dom->restore_fd);
    close_fd(&cg_fd);
    dsd_cgroup_join(d, dom, pid);
    close_fd(&ready[1]);
    close_fd(&errp[1]);
    dom->pid = pid;
    dom->ready_fd = ready[0];
    dom->err_fd = errp[0];
    ready[0] = errp[0] = -1;
    dom->state = DS_BUILDING;
    dom->errline[0] = '\0';
    dom->errpart_len = 0;
    dom->timed_out = false;
    /* A stream's restore (migrate-receive) lasts as long as the source's
     * pre-copy: the receiver ends it by closing the stream. */
    dom->start_timeout_ms =
        dom->restore_fd > 0 ? DSD_STREAM_TIMEOUT_MS : DSD_BUILD_TIMEOUT_MS;
    dom->deadline_ms = dnow_ms() + dom->start_timeout_ms;
    dom->gen++;
    dom->start_time = ts_wall_s();
    dom->vcpus_online = dom->cfg.vcpus;
    /* The process is reaped through SIGCHLD whatever happens to the watches. */
    if (dsd_watch(d, EV_READY, dom->ready_fd) < 0 ||
        dsd_watch(d, EV_STDERR, dom->err_fd) < 0)
        dwarn("domain %u: cannot watch its pipes", dom->domid);
    dinfo("domain %u (%s): started domus-vm pid %d", dom->domid, dom->cfg.name, (int)pid);
    dsd_persist_save(dom);
    return 0;
out:
    close_fd(&ready[0]);
    close_fd(&ready[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    close_fd(&dom->vmlog_fd);
    close_fd(&cg_fd);
    return rc;
}

void dsd_vm_close_pipes(struct dsd *d, struct dsd_dom *dom)
{
    dsd_unwatch_close(d, &dom->ready_fd);
    dsd_unwatch_close(d, &dom->err_fd);
    close_fd(&dom->vmlog_fd);
}

/* The "key=ns" words after "ready" (digits, letters, '_', '='), and when
 * domusd read them, after the spawn's (dsd_vm_spawn). */
static void keep_timings(struct dsd_dom *dom, const char *s)
{
    size_t n = strnlen(dom->timings, sizeof(dom->timings) - 1);

    for (; *s && n + 1 < sizeof(dom->timings) - 40; s++)
        if (*s == ' ' || *s == '=' || *s == '_' || (*s >= '0' && *s <= '9') ||
            (*s >= 'a' && *s <= 'z'))
            dom->timings[n++] = *s;
    dom->timings[n] = '\0';
    dappendf(dom->timings, sizeof(dom->timings), " dsd_ready=%llu",
             (unsigned long long)drealtime_ns());
}

void dsd_vm_read_ready(struct dsd *d, struct dsd_dom *dom)
{
    char buf[512];
    ssize_t n = read(dom->ready_fd, buf, sizeof(buf) - 1);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        buf[n] = '\0';
        if (!strncmp(buf, "ready ", 6))
            keep_timings(dom, buf + 5);
        if (strstr(buf, "ready") && dom->state == DS_BUILDING)
            dsd_became_ready(d, dom);
    }
    /* One message only: after it, or at EOF, the pipe has served its purpose. */
    dsd_unwatch_close(d, &dom->ready_fd);
}

/* Remembers the text after "error: " of the last such line. */
static void stderr_line(struct dsd_dom *dom, const char *line)
{
    const char *e = strstr(line, "error: ");

    if (e)
        snprintf(dom->errline, sizeof(dom->errline), "%s", e + strlen("error: "));
}

static void stderr_feed(struct dsd_dom *dom, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || dom->errpart_len + 1 >= sizeof(dom->errpart)) {
            dom->errpart[dom->errpart_len] = '\0';
            stderr_line(dom, dom->errpart);
            dom->errpart_len = 0;
            if (buf[i] == '\n')
                continue;
        }
        dom->errpart[dom->errpart_len++] = buf[i] ? buf[i] : ' ';
    }
}

/* Appends domus-vm's stderr to its log.  At DSD_VMLOG_MAX bytes the log
 * becomes <log>.1 (replacing the one before) and a new one starts. */
static void vmlog_write(struct dsd_dom *dom, const char *buf, size_t n)
{
    char old[PATH_MAX + 4];
    struct stat st;

    if (dom->vmlog_fd < 0)
        return;
    if (fstat(dom->vmlog_fd, &st) == 0 && st.st_size > 0 &&
        (uint64_t)st.st_size + n > DSD_VMLOG_MAX) {
        close_fd(&dom->vmlog_fd);
        if ((size_t)snprintf(old, sizeof(old), "%s.1", dom->vm_log) < sizeof(old))
            rename(dom->vm_log, old);
        dom->vmlog_fd =
            open(dom->vm_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (dom->vmlog_fd < 0)
            return;
    }
    if (write(dom->vmlog_fd, buf, n) < 0)
        close_fd(&dom->vmlog_fd);
}

void dsd_vm_read_stderr(struct dsd *d, struct dsd_dom *dom)
{
    char buf[4096];
    /* A running domus-vm gets a budget per round of the event loop, so a
     * chatty one cannot keep domusd from the others (epoll comes back for
     * the rest); a dead one's last words are read whole (the pipe holds
     * them all). */
    unsigned budget = dom->pid ? DSD_STDERR_BUDGET : UINT_MAX;

    while (dom->err_fd >= 0 && budget--) {
        ssize_t n = read(dom->err_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            if (dom->errpart_len) {
                dom->errpart[dom->errpart_len] = '\0';
                stderr_line(dom, dom->errpart);
                dom->errpart_len = 0;
            }
            dsd_unwatch_close(d, &dom->err_fd);
            return;
        }
        vmlog_write(dom, buf, (size_t)n);
        stderr_feed(dom, buf, (size_t)n);
    }
}

int dsd_vm_control(const struct dsd_dom *dom, json_object *req, json_object **reply,
                   char *err, size_t errlen)
{
    json_object *r = NULL;
    const char *why;
    int rc = -ESRCH;

    if (dom->pid && dom->state == DS_RUNNING)
        rc = vmctl_call(dom->control_sock, req, &r, NULL, NULL, DSD_CONTROL_TIMEOUT_MS);
    json_object_put(req);
    if (rc) {
        dfmt(err, errlen, "%s", strerror(-rc));
        return rc;
    }
    if (!vmctl_ok(r, &why)) {
        dfmt(err, errlen, "%s", why);
        json_object_put(r);
        return -EREMOTEIO;
    }
    if (reply)
        *reply = r;
    else
        json_object_put(r);
    return 0;
}
