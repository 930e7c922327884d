/* domusd: request handlers, one per command (see toolstack.h). */
#include "domus/domusd.h"
#include "domus/dsd_disk.h"
#include "domus/dsd_vif.h"
#include "domus/util.h"
#include "domus/vmctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xen/sched.h>

struct req {
    struct dsd *d;
    uint64_t client;
    json_object *obj;
};

static const char *req_str(const struct req *r, const char *key)
{
    return vmctl_get_str(r->obj, key);
}

/* The domain named by "dom", or NULL after replying with an error. */
static struct dsd_dom *req_dom(const struct req *r)
{
    const char *spec = req_str(r, "dom");
    struct dsd_dom *dom;

    if (!spec) {
        dsd_reply_error(r->d, r->client,
                        "\"dom\" (a domain name or id string) is missing");
        return NULL;
    }
    dom = dsd_dom_find(r->d, spec);
    if (!dom)
        dsd_reply_error(r->d, r->client, "domain '%.64s' does not exist", spec);
    return dom;
}

/* ---- create ---- */

/* Makes a relative kernel/ramdisk path absolute against the client's cwd. */
static int absolutize(char *path, size_t len, const char *cwd)
{
    char tmp[PATH_MAX];

    if (!path[0] || path[0] == '/' || !cwd || cwd[0] != '/')
        return 0;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", cwd, path) >= len)
        return -ENAMETOOLONG;
    strcpy(path, tmp);
    return 0;
}

static int check_image(const char *what, const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) < 0 || access(path, R_OK) < 0) {
        int e = errno;
        dfmt(err, errlen, "%s '%s': %s", what, path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        dfmt(err, errlen, "%s '%s': not a regular file", what, path);
        return -EINVAL;
    }
    return 0;
}

static int check_memory(struct dsd *d, const struct xlcfg *cfg, char *err, size_t errlen)
{
    uint64_t avail;
    int rc = dsd_free_mib(d, &avail);

    if (rc) {
        dfmt(err, errlen, "memory: cannot read host memory: %s", strerror(-rc));
        return rc;
    }
    if (cfg->memory_mb > avail) {
        dfmt(err, errlen,
             "memory: %" PRIu64 " MiB requested, host has %" PRIu64 " MiB available",
             cfg->memory_mb, avail);
        return -ENOMEM;
    }
    return 0;
}

/* Everything that can be refused before a process is started. */
static int create_checks(struct dsd *d, struct xlcfg *cfg, const char *cwd, char *err,
                         size_t errlen)
{
    int rc;

    if (!strcmp(cfg->name, "Domain-0") || dsd_dom_find(d, cfg->name)) {
        dfmt(err, errlen, "domain '%s' already exists", cfg->name);
        return -EEXIST;
    }
    if (!cfg->uuid[0] && (rc = xlcfg_uuid_generate(cfg->uuid)) < 0) {
        dfmt(err, errlen, "uuid: cannot generate one: %s", strerror(-rc));
        return rc;
    }
    if (dsd_uuid_taken(d, cfg->uuid)) {
        dfmt(err, errlen, "uuid %s is already used by another domain", cfg->uuid);
        return -EEXIST;
    }
    if (absolutize(cfg->kernel, sizeof(cfg->kernel), cwd) < 0 ||
        absolutize(cfg->ramdisk, sizeof(cfg->ramdisk), cwd) < 0) {
        dfmt(err, errlen, "kernel or ramdisk path too long");
        return -ENAMETOOLONG;
    }
    rc = check_image("kernel", cfg->kernel, err, errlen);
    if (!rc && cfg->ramdisk[0])
        rc = check_image("ramdisk", cfg->ramdisk, err, errlen);
    if (!rc)
        rc = check_memory(d, cfg, err, errlen);
    if (!rc)
        rc = dsd_disk_check(d->xs.enabled, cfg, cwd, err, errlen);
    if (!rc)
        rc = dsd_vif_check(d->xs.enabled, cfg, err, errlen);
    return rc;
}

/* Starts the log afresh, keeping the previous one as <log>.1 as xl does. */
static void rotate_log(const char *path)
{
    char old[PATH_MAX + 4];

    if ((size_t)snprintf(old, sizeof(old), "%s.1", path) < sizeof(old))
        rename(path, old);
}

/* len: the text's length as sent (a NUL byte inside is refused). */
static int create_parse(const char *path, const char *text, size_t len, struct xlcfg *cfg,
                        char *err, size_t errlen)
{
    int rc;

    if (!text) {
        dfmt(err, errlen, "create: missing \"text\"");
        return -EINVAL;
    }
    rc = xlcfg_check_text(text, len, path, err, errlen);
    if (!rc)
        rc = xlcfg_parse_string(text, path, cfg, err, errlen);
    return rc;
}

/* The length of text: that of the request's member it is ("text",
 * "cfg_text": a NUL byte inside counts), or strlen for an image's. */
static size_t text_len(const struct req *r, const char *text)
{
    static const char *const keys[] = {"text", "cfg_text"};
    json_object *t;

    for (unsigned i = 0; text && i < ARRAY_SIZE(keys); i++)
        if (json_object_object_get_ex(r->obj, keys[i], &t) &&
            json_object_get_string(t) == text)
            return (size_t)json_object_get_string_len(t);
    return text ? strlen(text) : 0;
}

/* A restore: the image domus-vm loads, whether the domain stays paused,
 * and the memory the image holds (MiB, 0: the config's). */
struct restore {
    const char *image;
    int fd; /* > 0: the image came as this descriptor (image names it) */
    bool paused, lazy, postcopy; /* postcopy: fd is a socket (domus-vm --postcopy) */
    bool hold; /* a migration's: destroyed if the client goes before its release */
    uint64_t memory_mib, maxmem_mib;
};

/* A restored domain has the memory its image holds, whatever the config
 * says: the memory check and domus-vm's RAM are the image's. */
static void restore_memory(struct xlcfg *cfg, const struct restore *rs)
{
    if (!rs || !rs->memory_mib)
        return;
    cfg->memory_mb = rs->memory_mib;
    cfg->maxmem_mb = rs->maxmem_mib;
}

/* create, and restore (rs) from an image whose config is path and text. */
static void create_domain(const struct req *r, const char *path, const char *text,
                          const struct restore *rs)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    struct dsd_dom *dom = NULL;
    uint64_t t_req = drealtime_ns();
    char err[1024];
    int rc;

    if (!cfg) {
        dsd_reply_error(r->d, r->client, "out of memory");
        return;
    }
    path = path ? path : "config";
    rc = create_parse(path, text, text_len(r, text), cfg, err, sizeof(err));
    if (!rc)
        restore_memory(cfg, rs);
    if (!rc)
        rc = create_checks(r->d, cfg, req_str(r, "cwd"), err, sizeof(err));
    if (!rc && (rc = dsd_dom_new(r->d, cfg, &dom)) < 0)
        dfmt(err, sizeof(err), "cannot create domain: %s", strerror(-rc));
    if (!rc && (rc = dsd_dom_set_source(dom, path, text)) < 0) {
        dfmt(err, sizeof(err), "out of memory");
        dsd_dom_free(r->d, dom);
    }
    if (!rc && rs) {
        snprintf(dom->restore_path, sizeof(dom->restore_path), "%s",
                 rs->fd > 0 ? "/proc/self/fd/0" : rs->image);
        dom->restore_paused = rs->paused;
        dom->restore_fd = rs->fd;
        dom->restore_lazy = rs->lazy;
        dom->restore_postcopy = rs->postcopy;
        dom->mig_holder = rs->hold ? r->client : 0;
    }
    if (!rc && (rc = dsd_sched_prepare(r->d, dom, NULL, err, sizeof(err))) < 0)
        dsd_dom_free(r->d, dom);
    if (rc)
        goto out;
    ts_mkdir_p(ts_log_dir());
    if (!rs) /* a restored guest carries on: its console log goes on too */
        rotate_log(dom->console_log);
    rc = dsd_vm_spawn(r->d, dom, err, sizeof(err));
    dom->restore_fd = 0; /* domus-vm has it (or failed): the caller closes it */
    if (rc) {
        dsd_dom_free(r->d, dom);
        goto out;
    }
    dom->waiter = r->client;
    dom->wkind = DW_CREATE;
    dappendf(dom->timings, sizeof(dom->timings), " dsd_req=%llu",
             (unsigned long long)t_req);
    /* A migration's domain: its nodes now, while the stream comes, not in
     * the downtime (the guest sees them when it resumes, as before). */
    if (rs && rs->hold && dsd_xs_domain_nodes(r->d, dom) < 0)
        dwarn("domain %u: xenstore nodes before the stream's end: written at its end",
              dom->domid);
out:
    if (rc) /* a config that parsed may explain the failure with its warnings */
        dsd_reply_failure(r->d, r->client, err,
                          cfg->n_warnings ? dsd_cfg_warnings(cfg) : NULL);
    free(cfg);
}

static void cmd_create(const struct req *r)
{
    create_domain(r, req_str(r, "path"), req_str(r, "text"), NULL);
}

/* ---- save, restore ---- */

/* "path" made absolute against "cwd" into buf; NULL after replying. */
static const char *req_path(const struct req *r, char *buf, size_t len)
{
    const char *p = req_str(r, "path");

    if (!p || !p[0]) {
        dsd_reply_error(r->d, r->client, "\"path\" (the checkpoint file) is missing");
        return NULL;
    }
    snprintf(buf, len, "%s", p);
    if (strlen(p) >= len || absolutize(buf, len, req_str(r, "cwd")) < 0) {
        dsd_reply_error(r->d, r->client, "checkpoint file path too long");
        return NULL;
    }
    return buf;
}

static bool req_bool(const struct req *r, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(r->obj, key, &v) && json_object_get_boolean(v);
}

/* A config to store in an image instead of the domain's ("cfg_text",
 * from save's or migrate -C's file) must be one a restore can use: parsed
 * as a create would.  0 (*path set, "config" when none came) or -1 once
 * answered. */
static int req_stored_cfg(const struct req *r, const char **path, const char *text)
{
    struct xlcfg *cfg;
    char err[1024];
    int rc;

    if (!text)
        return 0;
    if (!(cfg = calloc(1, sizeof(*cfg)))) {
        dsd_reply_error(r->d, r->client, "out of memory");
        return -1;
    }
    *path = *path ? *path : "config";
    rc = create_parse(*path, text, text_len(r, text), cfg, err, sizeof(err));
    free(cfg);
    if (rc) {
        dsd_reply_error(r->d, r->client, "%s", err);
        return -1;
    }
    return 0;
}

/* {"dom","path","cwd","checkpoint"?,"pause"?,"cfg_path"?,"cfg_text"?}: the
 * domain is destroyed once saved, unless checkpoint or pause. */
static void cmd_save(const struct req *r)
{
    struct dsd_dom *dom = req_dom(r);
    char path[PATH_MAX], err[1024];
    struct dsd_save_opts o = {.checkpoint = req_bool(r, "checkpoint"),
                              .pause = req_bool(r, "pause"),
                              .cfg_path = req_str(r, "cfg_path"),
                              .cfg_text = req_str(r, "cfg_text")};
    int rc;

    if (!dom || !(o.path = req_path(r, path, sizeof(path))) ||
        req_stored_cfg(r, &o.cfg_path, o.cfg_text) < 0)
        return;
    if ((rc = dsd_save(r->d, dom, &o, err, sizeof(err))) < 0) {
        dsd_reply_error(r->d, r->client, "domain '%s': save failed: %s%s", dom->cfg.name,
                        err, dom->state == DS_RUNNING ? " (the domain carries on)" : "");
        return;
    }
    if (o.checkpoint || o.pause) {
        dsd_reply(r->d, r->client, dsd_ok());
        return;
    }
    dom->waiter = r->client; /* answered once the saved domain is gone */
    dom->wkind = DW_DESTROY;
    dsd_kill_domain(r->d, dom);
}

#define MIG_DEFAULT_DOWNTIME_MS 300 /* QEMU's and Cloud Hypervisor's default */
#define MIG_DEFAULT_ROUNDS 30
#define MIG_MAX_DOWNTIME_MS 60000
#define MIG_MAX_ROUNDS 1000
#define MIG_MAX_BANDWIDTH_MIB (1 << 20) /* 1 TiB/s: no limit in practice */

/* An optional number in [1, max], def when absent; -1 after replying. */
static int64_t req_num(const struct req *r, const char *key, uint64_t max, uint64_t def)
{
    uint64_t v = def;

    if (json_object_object_get_ex(r->obj, key, NULL) &&
        (vmctl_get_u64(r->obj, key, max, &v) < 0 || v == 0)) {
        dsd_reply_error(r->d, r->client, "\"%s\" must be a number from 1 to %llu", key,
                        (unsigned long long)max);
        return -1;
    }
    return (int64_t)v;
}

/* {"dom","downtime_ms"?,"max_rounds"?,"cfg_path"?,"cfg_text"?} (migrate -C:
 * the config the destination gets instead) with the connection to the
 * receiver's migrate-receive (and a terminal for progress) as SCM_RIGHTS:
 * live migration (dsd_migrate.c).  Answered with the numbers once the
 * receiver runs the domain; the held copy here is then destroyed. */
static void cmd_migrate(const struct req *r)
{
    struct dsd *d = r->d;
    struct dsd_dom *dom;
    int64_t downtime, rounds, bw;
    char err[1024];
    json_object *stats;
    int rc;

    if (d->req_nfds < 1) {
        dsd_reply_error(d, r->client,
                        "migrate: the connection must come with the request");
        return;
    }
    if (!(dom = req_dom(r)) ||
        (downtime = req_num(r, "downtime_ms", MIG_MAX_DOWNTIME_MS,
                            MIG_DEFAULT_DOWNTIME_MS)) < 0 ||
        (rounds = req_num(r, "max_rounds", MIG_MAX_ROUNDS, MIG_DEFAULT_ROUNDS)) < 0)
        return;
    if ((bw = req_num(r, "bandwidth_mib", MIG_MAX_BANDWIDTH_MIB, 0)) < 0)
        return;
    struct dsd_migrate_opts o = {.conn = d->req_fds[0],
                                 .progress_fd = d->req_nfds > 1 ? d->req_fds[1] : -1,
                                 .downtime_ms = (unsigned)downtime,
                                 .max_rounds = (unsigned)rounds,
                                 .bandwidth = (uint64_t)bw << 20,
                                 .postcopy = req_bool(r, "postcopy"),
                                 .cfg_path = req_str(r, "cfg_path"),
                                 .cfg_text = req_str(r, "cfg_text")};
    if (req_stored_cfg(r, &o.cfg_path, o.cfg_text) < 0)
        return;
    stats = json_object_new_object();
    if ((rc = dsd_migrate(d, dom, &o, stats, err, sizeof(err))) < 0) {
        dsd_reply_error(d, r->client, "domain '%s': migration failed: %s%s",
                        dom->cfg.name, err,
                        rc != -ENOTRECOVERABLE && dom->state == DS_RUNNING
                            ? " (the domain carries on here)"
                            : "");
        json_object_put(stats);
        return;
    }
    json_object_object_add(stats, "ok", json_object_new_boolean(1));
    dsd_reply(d, r->client, stats);
    dsd_kill_domain(d, dom); /* held suspended: it never runs here again */
}

/* {"path","cwd","paused"?,"cfg_path"?,"cfg_text"?}: a new domain from the
 * image, answered as create is. */
static void cmd_restore(const struct req *r)
{
    char path[PATH_MAX], err[1024];
    struct dsd_image_cfg ic;
    struct restore rs = {.paused = req_bool(r, "paused"), .lazy = req_bool(r, "lazy")};
    const char *over = req_str(r, "cfg_text");

    if (req_bool(r, "fd")) { /* the image came as a descriptor (migrate-receive) */
        if (r->d->req_nfds < 1 || r->d->req_fds[0] <= 0) {
            dsd_reply_error(r->d, r->client,
                            "restore: the image's descriptor is missing");
            return;
        }
        rs.fd = r->d->req_fds[0];
        rs.hold = req_bool(r, "hold");
        rs.postcopy = req_bool(r, "postcopy");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", rs.fd);
        rs.image = path;
    } else if (!(rs.image = req_path(r, path, sizeof(path))))
        return;
    /* A stream (a pipe: migrate-receive) comes with its header's config,
     * which domus-vm reads again from the stream itself. */
    if (rs.fd > 0 && req_str(r, "config")
            ? dsd_image_cfg_parse(req_str(r, "config"), "the stream", &ic, err,
                                  sizeof(err)) < 0
            : dsd_restore_config(rs.image, &ic, err, sizeof(err)) < 0) {
        dsd_reply_error(r->d, r->client, "%s", err);
        return;
    }
    rs.memory_mib = ic.memory_mib;
    rs.maxmem_mib = ic.maxmem_mib;
    if (over)
        create_domain(r, req_str(r, "cfg_path"), over, &rs);
    else
        create_domain(r, ic.path, ic.text, &rs);
    dsd_image_cfg_free(&ic);
}

/* ---- list ---- */

/* Seconds since the host booted (/proc/uptime), 0 when unknown. */
static double host_uptime(void)
{
    FILE *f = fopen("/proc/uptime", "re");
    double up = 0;

    if (f && fscanf(f, "%lf", &up) != 1)
        up = 0;
    if (f)
        fclose(f);
    return up;
}

static json_object *dom0_row(void)
{
    struct ts_hostinfo hi;
    json_object *o = json_object_new_object();

    ts_hostinfo(&hi);
    json_object_object_add(
        o, "uuid", json_object_new_string("00000000-0000-0000-0000-000000000000"));
    json_object_object_add(o, "start_time",
                           json_object_new_double(ts_wall_s() - host_uptime()));
    json_object_object_add(o, "domid", json_object_new_int(0));
    json_object_object_add(o, "name", json_object_new_string("Domain-0"));
    json_object_object_add(o, "mem_mib",
                           json_object_new_int64((int64_t)hi.mem_total_mib));
    json_object_object_add(o, "vcpus", json_object_new_int((int)hi.cpus));
    json_object_object_add(o, "state", json_object_new_string("r-----"));
    json_object_object_add(o, "cpu_time", json_object_new_double(hi.busy_seconds));
    json_object_object_add(o, "gen", json_object_new_int(1));
    return o;
}

/* Asks a running domain for its state, CPU time, memory and vCPUs (vmctl.h
 * "info"); what the reply lacks stays as it was. */
static void query_info(struct dsd_dom *dom, char *state, uint64_t *mem_mib,
                       unsigned *vcpus)
{
    json_object *reply, *v;
    char err[256];
    uint64_t n;

    if (dsd_vm_control(dom, vmctl_req("info"), &reply, err, sizeof(err)) < 0)
        return;
    if (json_object_object_get_ex(reply, "state", &v) &&
        json_object_is_type(v, json_type_string))
        *state = json_object_get_string(v)[0];
    if (!vmctl_get_u64(reply, "cputime_ns", UINT64_MAX, &n))
        dom->cpu_time = (double)n / 1e9;
    if (!vmctl_get_u64(reply, "tot_kib", UINT64_MAX, &n) ||
        !vmctl_get_u64(reply, "mem_kib", UINT64_MAX, &n))
        *mem_mib = n / 1024; /* the pages it holds (xl's Mem) */
    if (!vmctl_get_u64(reply, "vcpus", UINT32_MAX, &n))
        *vcpus = (unsigned)n;
    json_object_put(reply);
}

/* xl list -v's Reason-Code: the SHUTDOWN_* reason of a shut-down domain. */
static int reason_code(const struct dsd_dom *dom)
{
    if (dom->state == DS_CRASHED)
        return SHUTDOWN_crash;
    if (dom->state == DS_SHUTDOWN)
        return dom->shutdown_reason >= 0 ? dom->shutdown_reason : 0;
    return -1;
}

static json_object *dom_row(struct dsd_dom *dom, bool with_config)
{
    json_object *o = json_object_new_object();
    uint64_t mem = dom->pid ? dom->cfg.memory_mb : 0;
    unsigned vcpus = dom->pid ? dom->cfg.vcpus : 0;
    char info_state = 0, letters[7];

    if (dom->state == DS_RUNNING) {
        query_info(dom, &info_state, &mem, &vcpus);
        vcpus = dom->vcpus_online; /* domus-vm has maxvcpus, some offline */
    }
    dsd_state_letters(dom, info_state, letters);
    json_object_object_add(o, "domid", json_object_new_int((int)dom->domid));
    json_object_object_add(o, "name", json_object_new_string(dom->cfg.name));
    json_object_object_add(o, "mem_mib", json_object_new_int64((int64_t)mem));
    json_object_object_add(o, "vcpus", json_object_new_int((int)vcpus));
    json_object_object_add(o, "state", json_object_new_string(letters));
    json_object_object_add(o, "status",
                           json_object_new_string(dsd_state_name(dom->state)));
    json_object_object_add(o, "cpu_time", json_object_new_double(dom->cpu_time));
    json_object_object_add(o, "gen", json_object_new_int((int)dom->gen));
    json_object_object_add(o, "uuid", json_object_new_string(dom->cfg.uuid));
    json_object_object_add(o, "start_time", json_object_new_double(dom->start_time));
    json_object_object_add(o, "reason", json_object_new_int(reason_code(dom)));
    if (with_config)
        json_object_object_add(o, "config", ts_domain_config_json(&dom->cfg, dom->domid));
    return o;
}

static int by_domid(const void *a, const void *b)
{
    const struct dsd_dom *x = *(struct dsd_dom *const *)a,
                         *y = *(struct dsd_dom *const *)b;
    return (x->domid > y->domid) - (x->domid < y->domid);
}

static void cmd_list(const struct req *r)
{
    json_object *o, *arr, *lv;
    bool with_config =
        json_object_object_get_ex(r->obj, "long", &lv) && json_object_get_boolean(lv);
    struct dsd_dom **sorted;
    size_t n = 0;

    for (struct dsd_dom *x = r->d->doms; x; x = x->next)
        n++;
    sorted = calloc(n + 1, sizeof(*sorted));
    if (!sorted) {
        dsd_reply_error(r->d, r->client, "out of memory");
        return;
    }
    n = 0;
    for (struct dsd_dom *x = r->d->doms; x; x = x->next)
        sorted[n++] = x;
    qsort(sorted, n, sizeof(sorted[0]), by_domid);
    o = dsd_ok();
    arr = json_object_new_array();
    json_object_array_add(arr, dom0_row());
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, dom_row(sorted[i], with_config));
    json_object_object_add(o, "domains", arr);
    dsd_reply(r->d, r->client, o);
    free(sorted);
}

/* ---- per-domain commands ---- */

static void cmd_destroy(const struct req *r)
{
    struct dsd_dom *dom = req_dom(r);

    if (!dom)
        return;
    if (!dom->pid) {
        dinfo("domain %u (%s): destroyed", dom->domid, dom->cfg.name);
        dsd_dom_free(r->d, dom);
        dsd_reply(r->d, r->client, dsd_ok());
        return;
    }
    if (dom->waiter && dom->wkind == DW_CREATE)
        dsd_reply_error(r->d, dom->waiter, "%s: destroyed while being built",
                        dom->cfg.name);
    else if (dom->waiter && dom->wkind == DW_DESTROY)
        dsd_reply(r->d, dom->waiter, dsd_ok()); /* the newer request waits instead */
    dom->waiter = r->client;
    dom->wkind = DW_DESTROY;
    if (!dom->destroy_requested)
        dsd_kill_domain(r->d, dom);
}

/* Sends a control-socket request (consumed) to a running domain and relays
 * the answer. */
static void control_cmd(const struct req *r, json_object *req)
{
    struct dsd_dom *dom = req_dom(r);
    char err[512];
    int rc;

    if (!dom) {
        json_object_put(req);
        return;
    }
    if (dom->state != DS_RUNNING) {
        dsd_reply_error(r->d, r->client, "domain '%s' is not running (%s)", dom->cfg.name,
                        dsd_state_name(dom->state));
        json_object_put(req);
        return;
    }
    rc = dsd_vm_control(dom, req, NULL, err, sizeof(err));
    if (rc == -EREMOTEIO)
        dsd_reply_error(r->d, r->client, "domain '%s': %s", dom->cfg.name, err);
    else if (rc < 0)
        dsd_reply_error(r->d, r->client, "domain '%s': control socket: %s", dom->cfg.name,
                        err);
    else
        dsd_reply(r->d, r->client, dsd_ok());
}

/* With xenstore, as xl: control/shutdown; without, domus-vm's control socket. */
static void shutdown_cmd(const struct req *r, const char *how)
{
    struct dsd_dom *dom;
    json_object *req;
    int rc;

    if (!r->d->xs.enabled) {
        req = vmctl_req("shutdown");
        json_object_object_add(req, "how", json_object_new_string(how));
        control_cmd(r, req);
        return;
    }
    dom = req_dom(r);
    if (!dom)
        return;
    if (dom->state != DS_RUNNING || !dom->xs_up) {
        dsd_reply_error(r->d, r->client,
                        dom->state == DS_RUNNING
                            ? "domain '%s' has no xenstore connection to ask it with"
                            : "domain '%s' is not running (%s)",
                        dom->cfg.name, dsd_state_name(dom->state));
        return;
    }
    rc = dsd_xs_shutdown(r->d, dom, how);
    if (rc)
        dsd_reply_error(r->d, r->client, "domain '%s': xenstore: %s", dom->cfg.name,
                        strerror(-rc));
    else
        dsd_reply(r->d, r->client, dsd_ok());
}

static void cmd_shutdown(const struct req *r)
{
    shutdown_cmd(r, "poweroff");
}

static void cmd_reboot(const struct req *r)
{
    shutdown_cmd(r, "reboot");
}

static void cmd_pause(const struct req *r)
{
    control_cmd(r, vmctl_req("pause"));
}

static void cmd_unpause(const struct req *r)
{
    control_cmd(r, vmctl_req("unpause"));
}

/* {"dom","unpause"}: a migration's receiver was told "go": the domain it
 * restored is no longer destroyed when it goes, and runs unless -p. */
static void cmd_migrate_release(const struct req *r)
{
    struct dsd_dom *dom = req_dom(r);

    if (!dom)
        return;
    dom->mig_holder = 0;
    if (req_bool(r, "unpause"))
        control_cmd(r, vmctl_req("unpause"));
    else
        dsd_reply(r->d, r->client, dsd_ok());
}

static void cmd_console_path(const struct req *r)
{
    struct dsd_dom *dom = req_dom(r);
    json_object *o;

    if (!dom)
        return;
    if (dom->state != DS_RUNNING) {
        dsd_reply_error(r->d, r->client, "domain '%s' is not running (%s)", dom->cfg.name,
                        dsd_state_name(dom->state));
        return;
    }
    o = dsd_ok();
    json_object_object_add(o, "path", json_object_new_string(dom->console_sock));
    json_object_object_add(o, "domid", json_object_new_int((int)dom->domid));
    dsd_reply(r->d, r->client, o);
}

static void cmd_domid(const struct req *r)
{
    const char *spec = req_str(r, "dom");
    struct dsd_dom *dom;
    json_object *o;

    if (spec && (!strcmp(spec, "0") || !strcmp(spec, "Domain-0"))) {
        o = dsd_ok();
        json_object_object_add(o, "domid", json_object_new_int(0));
        json_object_object_add(o, "name", json_object_new_string("Domain-0"));
        json_object_object_add(o, "status", json_object_new_string("running"));
        json_object_object_add(o, "gen", json_object_new_int(1));
        dsd_reply(r->d, r->client, o);
        return;
    }
    dom = req_dom(r);
    if (!dom)
        return;
    o = dsd_ok();
    json_object_object_add(o, "domid", json_object_new_int((int)dom->domid));
    json_object_object_add(o, "name", json_object_new_string(dom->cfg.name));
    json_object_object_add(o, "status",
                           json_object_new_string(dsd_state_name(dom->state)));
    json_object_object_add(o, "gen", json_object_new_int((int)dom->gen));
    dsd_reply(r->d, r->client, o);
}

/* block-attach/-detach/-list, network-attach/-detach/-list (dsd_hotplug.c). */
static void cmd_hotplug(const struct req *r)
{
    struct dsd_dom *dom = req_dom(r);

    if (dom)
        dsd_hotplug_request(r->d, r->client, dom, req_str(r, "cmd"), r->obj);
}

/* sched-credit, vcpu-list, vcpu-pin (dsd_sched.c). */
static void cmd_sched(const struct req *r)
{
    dsd_sched_request(r->d, r->client, req_str(r, "cmd"), r->obj);
}

/* mem-set, mem-max (dsd_mem.c). */
static void cmd_mem(const struct req *r)
{
    struct dsd_dom *dom = req_dom(r);

    if (dom)
        dsd_mem_request(r->d, r->client, dom, req_str(r, "cmd"), r->obj);
}

/* top (dsd_top.c). */
static void cmd_top(const struct req *r)
{
    dsd_top(r->d, r->client);
}

/* vcpu-set (dsd_vcpu.c). */
static void cmd_vcpu_set(const struct req *r)
{
    dsd_vcpu_set(r->d, r->client, r->obj);
}

static void cmd_info(const struct req *r)
{
    json_object *o;
    uint64_t avail = 0;

    dsd_free_mib(r->d, &avail); /* 0 when the host's memory cannot be read */
    o = dsd_ok();
    json_object_object_add(o, "info", ts_xlinfo(avail));
    dsd_reply(r->d, r->client, o);
}

static void cmd_ping(const struct req *r)
{
    dsd_reply(r->d, r->client, dsd_ok());
}

static const struct {
    const char *name;
    void (*fn)(const struct req *r);
} commands[] = {
    {"create", cmd_create},
    {"save", cmd_save},
    {"restore", cmd_restore},
    {"migrate", cmd_migrate},
    {"list", cmd_list},
    {"destroy", cmd_destroy},
    {"shutdown", cmd_shutdown},
    {"reboot", cmd_reboot},
    {"pause", cmd_pause},
    {"unpause", cmd_unpause},
    {"migrate-release", cmd_migrate_release},
    {"console-path", cmd_console_path},
    {"domid", cmd_domid},
    {"ping", cmd_ping},
    {"info", cmd_info},
    {"block-attach", cmd_hotplug},
    {"block-detach", cmd_hotplug},
    {"block-list", cmd_hotplug},
    {"network-attach", cmd_hotplug},
    {"network-detach", cmd_hotplug},
    {"network-list", cmd_hotplug},
    {"sched-credit", cmd_sched},
    {"vcpu-list", cmd_sched},
    {"vcpu-pin", cmd_sched},
    {"mem-set", cmd_mem},
    {"mem-max", cmd_mem},
    {"vcpu-set", cmd_vcpu_set},
    {"top", cmd_top},
};

void dsd_handle_request(struct dsd *d, uint64_t client, const char *line)
{
    struct req r = {.d = d, .client = client};
    const char *cmd, *why;

    if (!(r.obj = vmctl_parse_request(line, &why))) {
        dsd_reply_error(d, client, "malformed request: %s", why);
        goto out;
    }
    cmd = req_str(&r, "cmd");
    for (size_t i = 0; cmd && i < ARRAY_SIZE(commands); i++) {
        if (!strcmp(commands[i].name, cmd)) {
            commands[i].fn(&r);
            goto out;
        }
    }
    dsd_reply_error(d, client, "unknown command '%.32s'", cmd ? cmd : "(none)");
out:
    json_object_put(r.obj);
}
