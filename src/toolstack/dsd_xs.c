/* domusd's xenstore.  On unless DOMUS_XENSTORE=0 in domusd's environment;
 * with DOMUS_XENSTORE=1 domusd refuses to start without it, otherwise it
 * warns and runs domains without xenstore when no xenstored can be had.
 *
 * xenstored is its own process, as on Xen: domusd uses the one answering on
 * $XENSTORED_PATH (default $DOMUS_RUN_DIR/xenstored/socket), or starts
 * domus-xenstored there (next to its own executable) with --run-dir, so that
 * INTRODUCE fetches a guest's ring from its domus-vm (xs_vmhook.h), and stops
 * it again at exit.  domusd is one of its Domain 0 clients (xsclient.h): it
 * writes a domain's nodes as libxl does, INTRODUCEs the domain with the ring
 * its domus-vm reports, writes control/shutdown for shutdown and reboot, and
 * RELEASEs the domain when it is gone. */
#include "domus/domusd.h"
#include "domus/dsd_dev.h"
#include "domus/util.h"
#include "domus/vmctl.h"
#include "domus/xsclient.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the daemon ---- */

static int xs_path(char *buf, size_t len)
{
    const char *env = getenv("XENSTORED_PATH");
    int n = env && *env ? snprintf(buf, len, "%s", env)
                        : snprintf(buf, len, "%s/xenstored/socket", ts_run_dir());
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool answers(const char *path)
{
    struct xsc c;

    if (xsc_open(&c, path) < 0)
        return false;
    xsc_close(&c);
    return true;
}

/* Runs "domus-xenstored --daemon ..." (next to domusd) and waits until it
 * has detached, i.e. listens. */
static int spawn_xenstored(struct dsd *d)
{
    struct dsd_xs *x = &d->xs;
    char bin[PATH_MAX], dir[PATH_MAX];
    int status, rc = ts_self_dir(dir, sizeof(dir));
    pid_t pid;

    if (rc)
        return rc;
    if ((size_t)snprintf(bin, sizeof(bin), "%s/domus-xenstored", dir) >= sizeof(bin) ||
        (size_t)snprintf(x->pid_file, sizeof(x->pid_file), "%s/xenstored.pid",
                         ts_run_dir()) >= sizeof(x->pid_file))
        return -ENAMETOOLONG;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        const char *trace = getenv("DOMUS_XENSTORED_TRACE");
        const char *argv[12] = {bin,         "--daemon",   "--socket",   x->path,
                                "--run-dir", ts_run_dir(), "--pid-file", x->pid_file};
        size_t n = 8;
        if (trace && *trace) {
            argv[n++] = "--trace-file";
            argv[n++] = trace;
        }
        argv[n] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -ECHILD;
    x->started = true;
    return 0;
}

int dsd_xs_start(struct dsd *d)
{
    struct dsd_xs *x = &d->xs;
    const char *on = getenv("DOMUS_XENSTORE");
    bool required = on && !strcmp(on, "1");
    int rc;

    if (on && !strcmp(on, "0"))
        return 0;
    rc = xs_path(x->path, sizeof(x->path));
    if (!rc && answers(x->path)) {
        dinfo("xenstore: using the xenstored on %s", x->path);
    } else if (!rc && !(rc = spawn_xenstored(d))) {
        dinfo("xenstore: started domus-xenstored on %s", x->path);
    }
    if (rc && !required) {
        dwarn("xenstore: %s; domains run without xenstore", strerror(-rc));
        return 0;
    }
    x->enabled = !rc;
    return rc;
}

static void rmdir_parent(const char *path)
{
    char dir[DSD_SUN_PATH_MAX];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        rmdir(dir); /* only when empty */
    }
}

/* Stops the xenstored domusd started (as xencommons stop would). */
void dsd_xs_stop(struct dsd *d)
{
    struct dsd_xs *x = &d->xs;
    FILE *f;
    int pid = 0;

    if (!x->started)
        return;
    f = fopen(x->pid_file, "re");
    if (f && fscanf(f, "%d", &pid) == 1 && pid > 1 && kill(pid, SIGTERM) == 0) {
        /* it removes its socket and pid file; then its directory can go */
        for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
            usleep(10000);
        rmdir_parent(x->path);
    }
    if (f)
        fclose(f);
    x->started = false;
}

/* ---- the domain's nodes ---- */

struct xs_batch {
    struct xsc c;
    int rc; /* first error */
    unsigned domid;
    char base[64];
};

static void b_note(struct xs_batch *b, int rc, const char *what, const char *path)
{
    if (rc && !b->rc) {
        b->rc = rc;
        dwarn("xenstore: %s %s: %s", what, path, strerror(-rc));
    }
}

/* path = value (value NULL: a directory), owned by dom0 and readable by the
 * guest, or owned by the guest when guest_rw. */
static void b_node_at(struct xs_batch *b, const char *path, const char *value,
                      bool guest_rw)
{
    char own[16], ro[16];
    const char *perms_ro[] = {"n0", ro}, *perms_rw[] = {own};

    snprintf(own, sizeof(own), "n%u", b->domid);
    snprintf(ro, sizeof(ro), "r%u", b->domid);
    b_note(b, value ? xsc_write(&b->c, path, value) : xsc_mkdir(&b->c, path), "write",
           path);
    b_note(b,
           guest_rw ? xsc_set_perms(&b->c, path, perms_rw, 1)
                    : xsc_set_perms(&b->c, path, perms_ro, 2),
           "set perms", path);
}

/* base/rel, as b_node_at. */
static void b_node(struct xs_batch *b, const char *rel, const char *value, bool guest_rw)
{
    char path[256];

    snprintf(path, sizeof(path), "%s%s%s", b->base, *rel ? "/" : "", rel);
    b_node_at(b, path, value, guest_rw);
}

/* As libxl: /vm/<uuid> (read-only to the guest) holds uuid, name and
 * start_time ("<seconds>.<hundredths>", what xl uptime reads), and
 * /local/domain/<domid>/vm points at it. */
static void write_vm_nodes(struct xs_batch *b, const struct dsd_dom *dom)
{
    char vm[64], path[128], v[64];

    snprintf(vm, sizeof(vm), "/vm/%s", dom->cfg.uuid);
    xsc_rm(&b->c, vm); /* -ENOENT when absent: fine */
    b_node_at(b, vm, NULL, false);
    snprintf(path, sizeof(path), "%s/uuid", vm);
    b_node_at(b, path, dom->cfg.uuid, false);
    snprintf(path, sizeof(path), "%s/name", vm);
    b_node_at(b, path, dom->cfg.name, false);
    snprintf(path, sizeof(path), "%s/start_time", vm);
    snprintf(v, sizeof(v), "%.2f", dom->start_time);
    b_node_at(b, path, v, false);
    b_node(b, "vm", vm, false);
}

static void rm_vm_nodes(struct xs_batch *b, const struct dsd_dom *dom)
{
    char vm[64];

    if (!dom->cfg.uuid[0])
        return; /* never "/vm/" itself */
    snprintf(vm, sizeof(vm), "/vm/%s", dom->cfg.uuid);
    xsc_rm(&b->c, vm);
}

static void write_domain_nodes(struct xs_batch *b, const struct dsd_dom *dom)
{
    static const char *const ro_dirs[] = {"control", "device", "memory", "cpu"};
    static const char *const rw_dirs[] = {"data", "drivers", "attr", "error", "feature"};
    char v[64];

    b_node(b, "", NULL, false);
    b_node(b, "name", dom->cfg.name, false);
    snprintf(v, sizeof(v), "%u", dom->domid);
    b_node(b, "domid", v, false);
    if (dom->cfg.uuid[0])
        write_vm_nodes(b, dom);
    for (size_t i = 0; i < ARRAY_SIZE(ro_dirs); i++)
        b_node(b, ro_dirs[i], NULL, false);
    for (size_t i = 0; i < ARRAY_SIZE(rw_dirs); i++)
        b_node(b, rw_dirs[i], NULL, true);
    b_node(b, "control/shutdown", "", true);
    b_node(b, "control/sysrq", "", true);
    b_node(b, "control/feature-poweroff", "", true);
    b_node(b, "control/feature-reboot", "", true);
    b_node(b, "control/feature-suspend", "", true);
    b_node(b, "control/platform-feature-xs_reset_watches", "1", false);
    snprintf(v, sizeof(v), "%" PRIu64, dom->cfg.memory_mb * 1024);
    b_node(b, "memory/target", v, false);
    snprintf(v, sizeof(v), "%" PRIu64, dom->cfg.maxmem_mb * 1024);
    b_node(b, "memory/static-max", v, false);
    for (unsigned i = 0; i < dom->cfg.maxvcpus; i++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "cpu/%u/availability", i);
        b_node(b, rel, i < dom->vcpus_online ? "online" : "offline", false);
    }
}

static int batch_open(struct dsd *d, const struct dsd_dom *dom, struct xs_batch *b)
{
    memset(b, 0, sizeof(*b));
    b->domid = dom->domid;
    snprintf(b->base, sizeof(b->base), "/local/domain/%u", dom->domid);
    return xsc_open(&b->c, d->xs.path);
}

/* Reads the ring's gfn and port from the domain's control socket (the fds
 * that come with them are for xenstored: closed on receipt). */
static int ring_of(const struct dsd_dom *dom, uint64_t *gfn, unsigned *port)
{
    json_object *reply;
    char err[256];
    uint64_t p;
    int rc = dsd_vm_control(dom, vmctl_req("xs-ring"), &reply, err, sizeof(err));

    if (rc)
        return rc;
    if (vmctl_get_u64(reply, "gfn", UINT64_MAX, gfn) ||
        vmctl_get_u64(reply, "port", UINT32_MAX, &p))
        rc = -EPROTO;
    else
        *port = (unsigned)p;
    json_object_put(reply);
    return rc;
}

/* The domain's and its devices' nodes; none of them when one fails. */
static int write_nodes(struct xs_batch *b, const struct dsd_dom *dom)
{
    int rc;

    write_domain_nodes(b, dom);
    rc = b->rc;
    for (const struct dsd_dev_kind *const *k = dsd_dev_kinds; !rc && *k; k++)
        rc = (*k)->nodes(&b->c, dom->domid, &dom->cfg);
    return rc;
}

static void rm_nodes(struct xs_batch *b, const struct dsd_dom *dom)
{
    xsc_rm(&b->c, b->base);
    rm_vm_nodes(b, dom);
    for (const struct dsd_dev_kind *const *k = dsd_dev_kinds; *k; k++)
        (*k)->nodes_rm(&b->c, dom->domid);
}

int dsd_xs_domain_nodes(struct dsd *d, struct dsd_dom *dom)
{
    struct xs_batch b;
    int rc;

    if (!d->xs.enabled || dom->xs_nodes)
        return 0;
    if ((rc = batch_open(d, dom, &b)) == 0 && (rc = write_nodes(&b, dom)))
        rm_nodes(&b, dom); /* nothing half-made stays behind */
    xsc_close(&b.c);
    dom->xs_nodes = !rc;
    return rc;
}

int dsd_xs_domain_up(struct dsd *d, struct dsd_dom *dom)
{
    struct xs_batch b;
    uint64_t gfn;
    unsigned port;
    int rc;

    if (!d->xs.enabled)
        return 0;
    rc = ring_of(dom, &gfn, &port);
    if (!rc)
        rc = batch_open(d, dom, &b);
    if (rc) {
        dwarn("domain %u: xenstore: %s", dom->domid, strerror(-rc));
        return rc;
    }
    rc = dom->xs_nodes ? 0 : write_nodes(&b, dom);
    if (!rc)
        rc = xsc_introduce(&b.c, dom->domid, gfn, port);
    if (rc) {
        dwarn("domain %u: xenstore introduce: %s", dom->domid, strerror(-rc));
        rm_nodes(&b, dom); /* nothing half-made stays behind */
    }
    dom->xs_nodes = false;
    xsc_close(&b.c);
    return rc;
}

void dsd_xs_domain_down(struct dsd *d, struct dsd_dom *dom)
{
    struct xs_batch b;

    dom->xs_nodes = false;
    if (!d->xs.enabled || batch_open(d, dom, &b) < 0)
        return;
    xsc_release(&b.c, dom->domid); /* -ENOENT when never introduced: fine */
    rm_nodes(&b, dom);
    xsc_close(&b.c);
}

int dsd_xs_write(struct dsd *d, struct dsd_dom *dom, const char *rel, const char *value)
{
    struct xs_batch b;
    char path[256];
    int rc;

    if (!d->xs.enabled)
        return -EOPNOTSUPP;
    rc = batch_open(d, dom, &b);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", b.base, rel);
    rc = xsc_write(&b.c, path, value);
    xsc_close(&b.c);
    return rc;
}

int dsd_xs_shutdown(struct dsd *d, struct dsd_dom *dom, const char *how)
{
    if (!d->xs.enabled)
        return -EOPNOTSUPP;
    return dsd_xs_write(d, dom, "control/shutdown", how);
}
