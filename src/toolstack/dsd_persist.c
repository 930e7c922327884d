/* domusd: surviving its own restart.
 *
 * Guests outlive the toolstack, as on Xen.  For each domain domusd keeps
 * $DOMUS_RUN_DIR/dom<N>.json (domid, generation, pid of its domus-vm, the
 * xl.cfg text it was created from, its uuid (generated when the text has
 * none), the wall-clock time its domus-vm started, its vif specs as completed at create,
 * generated macs included, and its disk specs; both lists as they are now,
 * hot-plugged devices included), removed with the domain.  A domusd that
 * starts while such a domus-vm still runs adopts it: the domain is listed and
 * can be paused, shut down, destroyed and attached to again.  An adopted
 * process is not domusd's child, so its exit status cannot be had: its end
 * (seen through a pidfd) is taken as the domain being gone, whatever
 * on_poweroff/on_reboot/on_crash say. */
#include "domus/domusd.h"
#include "domus/util.h"
#include "domus/xldisk.h"
#include "domus/xlvif.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int state_path(const struct dsd_dom *dom, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/dom%u.json", ts_run_dir(), dom->domid);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void dsd_persist_save(const struct dsd_dom *dom)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    json_object *o, *vifs, *disks;
    int rc;

    if (!dom->cfg_text || state_path(dom, path, sizeof(path)) < 0)
        return;
    o = json_object_new_object();
    json_object_object_add(o, "domid", json_object_new_int((int)dom->domid));
    json_object_object_add(o, "gen", json_object_new_int((int)dom->gen));
    json_object_object_add(o, "pid", json_object_new_int((int)dom->pid));
    json_object_object_add(o, "path", json_object_new_string(dom->cfg_path));
    json_object_object_add(o, "text", json_object_new_string(dom->cfg_text));
    json_object_object_add(o, "uuid", json_object_new_string(dom->cfg.uuid));
    json_object_object_add(o, "start_time", json_object_new_double(dom->start_time));
    vifs = json_object_new_array();
    for (unsigned i = 0; i < dom->cfg.n_vifs && i < XLCFG_MAX_VIFS; i++)
        json_object_array_add(vifs, json_object_new_string(dom->cfg.vifs[i]));
    json_object_object_add(o, "vifs", vifs);
    disks = json_object_new_array();
    for (unsigned i = 0; i < dom->cfg.n_disks && i < XLCFG_MAX_DISKS; i++)
        json_object_array_add(disks, json_object_new_string(dom->cfg.disks[i]));
    json_object_object_add(o, "disks", disks);
    json_object_object_add(o, "sched", dsd_sched_save(dom));
    json_object_object_add(o, "memory",
                           json_object_new_int64((int64_t)dom->cfg.memory_mb));
    json_object_object_add(o, "maxmem",
                           json_object_new_int64((int64_t)dom->cfg.maxmem_mb));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    rc = json_object_to_file_ext(tmp, o, JSON_C_TO_STRING_PLAIN);
    if (rc < 0 || rename(tmp, path) < 0) {
        dwarn("domain %u: cannot save %s", dom->domid, path);
        unlink(tmp);
    }
    json_object_put(o);
}

void dsd_persist_remove(const struct dsd_dom *dom)
{
    char path[PATH_MAX];

    if (state_path(dom, path, sizeof(path)) == 0)
        unlink(path);
}

/* True when pid is a domus-vm serving control socket sock. */
static bool is_our_vm(pid_t pid, const char *sock)
{
    char path[64], buf[8192];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
        if (!strcmp(p, "--control-sock") && p + strlen(p) + 1 < buf + n)
            return !strcmp(p + strlen(p) + 1, sock);
    }
    return false;
}

static const char *jget_str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) &&
                   json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* The saved uuid replaces the one the text gave (or the lack of one: a
 * generated uuid is only in the state file) when it is the canonical form. */
static void adopt_uuid(json_object *o, struct xlcfg *cfg)
{
    const char *u = jget_str(o, "uuid");
    size_t i = 0;

    if (!u || strlen(u) != XLCFG_UUID_LEN)
        return;
    for (; i < XLCFG_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u[i] != '-' : !strchr("0123456789abcdef", u[i]))
            return;
    }
    memcpy(cfg->uuid, u, XLCFG_UUID_LEN + 1);
}

static int jget_int(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) : -1;
}

/* The target and maximum mem-set/mem-max left (dsd_mem.c), when they are
 * sane: a target of 1 .. maxmem MiB, a maxmem no larger than the config's
 * (the domain's memory was made for that). */
static void adopt_memory(json_object *o, struct xlcfg *cfg)
{
    int mem = jget_int(o, "memory"), max = jget_int(o, "maxmem");

    if (max >= 1 && (uint64_t)max <= cfg->maxmem_mb && mem >= 1 && mem <= max) {
        cfg->memory_mb = (uint64_t)mem;
        cfg->maxmem_mb = (uint64_t)max;
    }
}

static double jget_double(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

/* The live domus-vm of a state file, as a pidfd; -ESRCH when it is gone. */
static int live_vm(int domid, int pid)
{
    char sock[DSD_SUN_PATH_MAX];
    int fd;

    if (pid < 2 || (size_t)snprintf(sock, sizeof(sock), "%s/dom%d.control", ts_run_dir(),
                                    domid) >= sizeof(sock))
        return -EINVAL;
    fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return errno == ESRCH ? -ESRCH : -errno;
    if (!is_our_vm(pid, sock)) { /* checked after pidfd_open: no pid reuse race */
        close(fd);
        return -ESRCH;
    }
    return fd;
}

/* The device specs saved with the domain (key "vifs" or "disks": n_max
 * strings of at most 512 bytes, each accepted by ok) replace those of its
 * xl.cfg text, which may lack the macs domusd generated and the devices
 * hot-plugged since; all or none. */
static void adopt_specs(json_object *o, const char *key, char (*specs)[512], unsigned *n,
                        unsigned n_max, bool (*ok)(const char *spec, unsigned i))
{
    json_object *arr, *s;
    size_t len;

    if (!json_object_object_get_ex(o, key, &arr) ||
        !json_object_is_type(arr, json_type_array) ||
        (len = json_object_array_length(arr)) > n_max)
        return;
    for (unsigned i = 0; i < len; i++) {
        s = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(s, json_type_string) ||
            (size_t)json_object_get_string_len(s) >= sizeof(specs[i]) ||
            !ok(json_object_get_string(s), i))
            return;
    }
    for (unsigned i = 0; i < len; i++)
        snprintf(specs[i], sizeof(specs[i]), "%s",
                 json_object_get_string(json_object_array_get_idx(arr, i)));
    *n = (unsigned)len;
}

static bool vif_ok(const char *spec, unsigned i)
{
    char err[256];
    struct xlvif v;
    return xlvif_parse(spec, i, NULL, &v, err, sizeof(err)) == 0;
}

static bool disk_ok(const char *spec, unsigned i)
{
    char err[256];
    struct xldisk *dk = malloc(sizeof(*dk));
    bool ok = dk && xldisk_parse(spec, i, dk, err, sizeof(err)) == 0;
    free(dk);
    return ok;
}

/* Its weight, cap and affinity as last set; its group (which outlived the
 * previous domusd) written again. */
static void adopt_sched(struct dsd *d, struct dsd_dom *dom, json_object *o)
{
    json_object *s = NULL;
    char err[PATH_MAX + 160];

    json_object_object_get_ex(o, "sched", &s);
    if (dsd_sched_prepare(d, dom, s, err, sizeof(err)) < 0)
        dwarn("domain %u: %s", dom->domid, err);
}

/* Rebuilds one domain from its state file; -ESRCH when its process is gone
 * (its stale sockets are then removed with it). */
static int adopt_one(struct dsd *d, json_object *o)
{
    const char *path = jget_str(o, "path"), *text = jget_str(o, "text");
    int domid = jget_int(o, "domid"), pid = jget_int(o, "pid");
    struct xlcfg *cfg = malloc(sizeof(*cfg));
    struct dsd_dom *dom = NULL;
    char err[512];
    int rc = -EINVAL, pidfd = -1;

    if (!cfg || !path || !text || domid < 1 || domid > DSD_DOMID_MAX)
        goto out;
    rc = xlcfg_parse_string(text, path, cfg, err, sizeof(err));
    if (!rc) {
        adopt_specs(o, "vifs", cfg->vifs, &cfg->n_vifs, XLCFG_MAX_VIFS, vif_ok);
        adopt_specs(o, "disks", cfg->disks, &cfg->n_disks, XLCFG_MAX_DISKS, disk_ok);
        adopt_uuid(o, cfg);
        adopt_memory(o, cfg);
    }
    if (!rc)
        rc = pidfd = live_vm(domid, pid);
    if (rc == -ESRCH || rc == -EINVAL) {
        dsd_unlink_dom_sockets((unsigned)domid);
        goto out;
    }
    if (rc < 0) /* alive but not watchable: left alone */
        goto out;
    d->next_domid = (unsigned)domid; /* the same domid again */
    rc = dsd_dom_new(d, cfg, &dom);
    if (!rc && (dom->domid != (unsigned)domid || dsd_dom_set_source(dom, path, text) < 0))
        rc = -EEXIST;
    if (rc) {
        if (dom) {
            dom->pid = 0; /* not ours to kill, nor its sockets to remove */
            dom->keep_sockets = true;
            dsd_dom_free(d, dom);
        }
        goto out;
    }
    dom->pid = pid;
    adopt_sched(d, dom, o);
    dom->gen = (unsigned)jget_int(o, "gen");
    dom->start_time = jget_double(o, "start_time");
    dom->adopted = true;
    dom->state = DS_RUNNING;
    dom->pidfd = pidfd;
    pidfd = -1;
    if (dsd_watch(d, EV_PIDFD, dom->pidfd) < 0)
        dwarn("domain %u: cannot watch its process", dom->domid);
    dom->xs_up = d->xs.enabled; /* its nodes live in xenstored, if that survived */
    dinfo("domain %u (%s): adopted domus-vm pid %d", dom->domid, dom->cfg.name, pid);
    rc = 0;
out:
    if (pidfd >= 0)
        close(pidfd);
    free(cfg);
    return rc;
}

static void adopt_file(struct dsd *d, const char *name)
{
    char path[PATH_MAX];
    json_object *o;
    int rc = -EINVAL;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", ts_run_dir(), name) >= sizeof(path))
        return;
    o = json_object_from_file(path);
    if (o && json_object_is_type(o, json_type_object))
        rc = adopt_one(d, o);
    json_object_put(o);
    if (rc) {
        dinfo("%s: not adopted (%s); removed", name, strerror(-rc));
        unlink(path);
    }
}

void dsd_persist_adopt(struct dsd *d)
{
    DIR *dir = opendir(ts_run_dir());
    struct dirent *e;
    unsigned max = 0;

    if (!dir)
        return;
    while ((e = readdir(dir))) {
        unsigned id;
        char want[32];
        /* exactly dom<N>.json: never touch the sockets next to it */
        if (sscanf(e->d_name, "dom%u.json", &id) == 1 &&
            snprintf(want, sizeof(want), "dom%u.json", id) > 0 &&
            !strcmp(want, e->d_name))
            adopt_file(d, e->d_name);
    }
    closedir(dir);
    for (struct dsd_dom *x = d->doms; x; x = x->next)
        max = x->domid > max ? x->domid : max;
    d->next_domid = max + 1 > DSD_DOMID_MAX ? 1 : max + 1;
}

/* The adopted process ended: its status is unknown, the domain is gone. */
void dsd_persist_adopted_exit(struct dsd *d, struct dsd_dom *dom)
{
    dinfo("domain %u (%s): adopted domus-vm ended%s", dom->domid, dom->cfg.name,
          dom->destroy_requested ? "" : " (reason unknown: not restarted)");
    dom->pid = 0;
    if (dom->wkind == DW_DESTROY)
        dsd_reply(d, dom->waiter, dsd_ok());
    dsd_dom_free(d, dom);
}
