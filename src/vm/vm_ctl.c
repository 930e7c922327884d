/* domus-vm's control commands: one table, JSON lines in and out (vmctl.h). */
#include "domus/kvm.h"
#include "domus/storering.h"
#include "domus/util.h"
#include "domus/vm.h"
#include "domus/vmctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CTL_TIMEOUT_MS 1000

struct ctl_req {
    struct vm *vm;
    json_object *obj;
    int *fds;
    unsigned *nfds;
    const int *in_fds; /* that came with the request */
    unsigned n_in;
};

static json_object *ok(void)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    return o;
}

#define fail vmctl_error

static const char *req_str(const struct ctl_req *r, const char *key)
{
    return vmctl_get_str(r->obj, key);
}

static bool req_bool(const struct ctl_req *r, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(r->obj, key, &v) && json_object_get_boolean(v);
}

static void add_u64(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

static json_object *cmd_pause(const struct ctl_req *r)
{
    kvm_domain_pause(&r->vm->dom, true);
    return ok();
}

#define PC_FAILED                                                                        \
    "a post-copy migration of this domain failed after the guest ran on the "            \
    "destination: this copy is older and must not run; destroy it"

static json_object *cmd_unpause(const struct ctl_req *r)
{
    if (r->vm->pc_failed)
        return fail(PC_FAILED);
    kvm_domain_pause(&r->vm->dom, false);
    return ok();
}

/* The pages the guest holds and may hold, in KiB (Xen's tot_pages and
 * max_pages), and what the memfd holds: what the host backs. */
static json_object *add_reservation(json_object *o, struct domain *d)
{
    uint64_t tot, max;
    struct stat st;

    memop_counts(d, &tot, &max);
    add_u64(o, "tot_kib", tot << 2);
    add_u64(o, "max_kib", max << 2);
    if (fstat(d->mem.fd, &st) == 0)
        add_u64(o, "backed_kib", (uint64_t)st.st_blocks / 2);
    return o;
}

static json_object *cmd_info(const struct ctl_req *r)
{
    struct domain *d = &r->vm->dom;
    json_object *o = ok();

    json_object_object_add(o, "state",
                           json_object_new_string(atomic_load(&d->paused) ? "p" : "r"));
    add_u64(o, "cputime_ns", kvm_domain_cputime_ns(d));
    add_u64(o, "mem_kib", d->mem.ram_size >> 10);
    add_u64(o, "vcpus", d->nr_vcpus);
    return add_reservation(o, d);
}

/* "mem-max" {"kib"}: the most the guest may populate (memop.h). */
static json_object *cmd_mem_max(const struct ctl_req *r)
{
    uint64_t kib;

    if (vmctl_get_u64(r->obj, "kib", UINT64_MAX, &kib) < 0)
        return fail("\"kib\" (an integer) is missing or out of range");
    if (memop_set_max(&r->vm->dom, kib >> 2) < 0)
        return fail("maxmem %llu KiB: the domain's memory was made for %llu KiB at most",
                    (unsigned long long)kib,
                    (unsigned long long)(r->vm->dom.mem.ram_size >> 10));
    return add_reservation(ok(), &r->vm->dom);
}

/* The xenstore ring's place and its three fds (memory, kick, notify). */
static json_object *cmd_xs_ring(const struct ctl_req *r)
{
    struct vm_dev *dev = vm_dev_find(r->vm, &vm_kind_xs_ring, 0);
    uint64_t offset, gfn;
    uint32_t port;
    json_object *o;

    if (!dev)
        return fail("no xenstore ring");
    store_ring_info(dev->be, &r->fds[0], &offset, &gfn, &port, &r->fds[1], &r->fds[2]);
    *r->nfds = 3;
    o = ok();
    add_u64(o, "gfn", gfn);
    add_u64(o, "port", port);
    add_u64(o, "offset", offset);
    return o;
}

static json_object *cmd_shutdown(const struct ctl_req *r)
{
    (void)r;
    return fail("PV control interface not available");
}

/* The hot-pluggable kind a request names, or NULL with *reply set. */
static const struct vm_dev_kind *req_kind(const struct ctl_req *r, json_object **reply)
{
    const char *name = req_str(r, "kind");
    const struct vm_dev_kind *k = vm_dev_kind_find(r->vm->kinds, name);

    *reply = NULL;
    if (!r->vm->xs_path)
        *reply = fail("the domain has no xenstore");
    else if (!name)
        *reply = fail("\"kind\" (a device kind string) is missing");
    else if (!k || !k->parse)
        *reply = fail("'%.32s' is not a device kind that can be hot-plugged", name);
    return *reply ? NULL : k;
}

static json_object *cmd_attach(const struct ctl_req *r)
{
    char spec[4096], err[400] = "";
    const char *s = req_str(r, "spec");
    union vm_dev_cfg cfg;
    json_object *reply;
    uint32_t devid;
    int rc;
    const struct vm_dev_kind *k = req_kind(r, &reply);

    if (!k)
        return reply;
    if (!s || strlen(s) >= sizeof(spec))
        return fail("\"spec\" (a %s spec string) is missing or too long", k->name);
    strcpy(spec, s);
    if (k->parse(spec, &cfg, &devid) < 0)
        return fail("malformed %s spec '%.256s'", k->name, s);
    rc = vm_dev_add(r->vm, k, &cfg, devid, err, sizeof(err));
    if (rc < 0)
        return fail("%s", err[0] ? err : strerror(-rc));
    dinfo("dom%u: %s %u attached", r->vm->dom.domid, k->name, (unsigned)devid);
    return ok();
}

static json_object *cmd_detach(const struct ctl_req *r)
{
    json_object *reply;
    uint64_t devid;
    const struct vm_dev_kind *k = req_kind(r, &reply);

    if (!k)
        return reply;
    if (vmctl_get_u64(r->obj, "devid", UINT32_MAX, &devid) < 0)
        return fail("\"devid\" (an integer) is missing or out of range");
    if (vm_dev_remove(r->vm, k, (uint32_t)devid) < 0)
        return fail("no %s with devid %llu", k->name, (unsigned long long)devid);
    dinfo("dom%u: %s %u detached", r->vm->dom.domid, k->name, (unsigned)devid);
    return ok();
}

#define SAVE_TIMEOUT_MAX_MS 600000

static int save_after(const char *s, enum vm_save_after *after)
{
    static const char *const names[] = {"destroy", "resume", "pause"};

    for (unsigned i = 0; s && i < ARRAY_SIZE(names); i++)
        if (!strcmp(s, names[i])) {
            *after = (enum vm_save_after)i;
            return 0;
        }
    return -EINVAL;
}

/* The image's fd came with the request; the guest was asked to suspend. */
static json_object *cmd_save(const struct ctl_req *r)
{
    const char *config = req_str(r, "config");
    struct vm_save_result res;
    enum vm_save_after after;
    uint64_t timeout_ms;
    char err[400] = "";
    json_object *o;

    if (r->n_in != 1)
        return fail("save: the image's descriptor must come with the request");
    if (!config || !config[0])
        return fail("save: \"config\" (a JSON object's text) is missing");
    if (save_after(req_str(r, "after"), &after) < 0)
        return fail("save: \"after\" must be \"destroy\", \"resume\" or \"pause\"");
    if (vmctl_get_u64(r->obj, "timeout_ms", SAVE_TIMEOUT_MAX_MS, &timeout_ms) < 0)
        return fail("save: \"timeout_ms\" (at most %u) is missing or out of range",
                    SAVE_TIMEOUT_MAX_MS);
    if (vm_save(r->vm, r->in_fds[0], config, after, (unsigned)timeout_ms, &res, err,
                sizeof(err)) < 0)
        return fail("%s", err);
    o = ok();
    add_u64(o, "bytes", res.bytes);
    add_u64(o, "ms", res.ms);
    return o;
}

static json_object *cmd_resume(const struct ctl_req *r)
{
    if (r->vm->pc_failed)
        return fail(PC_FAILED);
    if (vm_resume_held(r->vm) < 0)
        return fail("the domain is not held suspended by a save");
    return ok();
}

#define MIG_DOWNTIME_MAX_MS 60000
#define MIG_ROUNDS_MAX 1000

static void add_mig(json_object *o, const struct vm_mig_result *m)
{
    add_u64(o, "rounds", m->rounds);
    add_u64(o, "pages", m->pages);
    add_u64(o, "bytes", m->bytes);
    add_u64(o, "last_dirty", m->last_dirty);
    add_u64(o, "expected_ms", m->expected_ms);
    add_u64(o, "mib_s", m->mib_s);
    add_u64(o, "paused_at_ns", m->paused_at_ns);
    add_u64(o, "final_ms", m->final_ms);
    add_u64(o, "suspended_ns", m->suspended_ns);
    add_u64(o, "pages_ns", m->pages_ns);
    add_u64(o, "end_ns", m->end_ns);
}

/* The stream's fd (and a terminal's for progress) came with the request. */
static json_object *cmd_migrate_precopy(const struct ctl_req *r)
{
    const char *config = req_str(r, "config");
    struct vm_mig_opts o = {.progress_fd = r->n_in > 1 ? r->in_fds[1] : -1};
    struct vm_mig_result res;
    uint64_t downtime, rounds;
    char err[400] = "";

    if (r->n_in < 1)
        return fail(
            "migrate-precopy: the stream's descriptor must come with the request");
    if (!config || !config[0])
        return fail("migrate-precopy: \"config\" (a JSON object's text) is missing");
    if (vmctl_get_u64(r->obj, "downtime_ms", MIG_DOWNTIME_MAX_MS, &downtime) < 0 ||
        vmctl_get_u64(r->obj, "max_rounds", MIG_ROUNDS_MAX, &rounds) < 0)
        return fail("migrate-precopy: \"downtime_ms\" (at most %u) or \"max_rounds\" "
                    "(at most %u) is missing or out of range",
                    MIG_DOWNTIME_MAX_MS, MIG_ROUNDS_MAX);
    o.downtime_ms = (unsigned)downtime;
    o.max_rounds = (unsigned)rounds;
    if (json_object_object_get_ex(r->obj, "bandwidth", NULL) &&
        vmctl_get_u64(r->obj, "bandwidth", UINT64_MAX, &o.bandwidth) < 0)
        return fail("migrate-precopy: \"bandwidth\" (bytes a second) is not a number");
    if (vm_migrate_precopy(r->vm, r->in_fds[0], config, &o, &res, err, sizeof(err)) < 0)
        return fail("%s", err);
    json_object *j = ok();
    add_mig(j, &res);
    return j;
}

static json_object *cmd_migrate_finish(const struct ctl_req *r)
{
    struct vm_mig_result res;
    uint64_t timeout_ms;
    char err[400] = "";

    if (vmctl_get_u64(r->obj, "timeout_ms", SAVE_TIMEOUT_MAX_MS, &timeout_ms) < 0)
        return fail("migrate-finish: \"timeout_ms\" (at most %u) is missing or out of "
                    "range",
                    SAVE_TIMEOUT_MAX_MS);
    if (vm_migrate_finish(r->vm, (unsigned)timeout_ms, req_bool(r, "postcopy"), &res, err,
                          sizeof(err)) < 0)
        return fail("%s", err);
    json_object *j = ok();
    add_mig(j, &res);
    add_u64(j, "postcopy_pages", res.postcopy_pages);
    return j;
}

/* The pages a post-copy finish left, sent while the destination runs. */
static json_object *cmd_migrate_postcopy(const struct ctl_req *r)
{
    struct vm_pc_result res;
    char err[400] = "";

    if (vm_migrate_postcopy(r->vm, &res, err, sizeof(err)) < 0)
        return fail("%s", err);
    json_object *j = ok();
    add_u64(j, "pc_pages", res.pages);
    add_u64(j, "pc_asked", res.asked);
    add_u64(j, "pc_pushed", res.pushed);
    add_u64(j, "pc_bytes", res.bytes);
    add_u64(j, "pc_ms", res.ms);
    add_u64(j, "pc_sent_ms", res.sent_ms);
    return j;
}

static json_object *cmd_migrate_abort(const struct ctl_req *r)
{
    vm_migrate_abort(r->vm);
    return ok();
}

static json_object *cmd_stats(const struct ctl_req *r)
{
    return vm_stats_json(r->vm);
}

static const struct {
    const char *name;
    json_object *(*fn)(const struct ctl_req *r);
} commands[] = {
    {"save", cmd_save},
    {"resume", cmd_resume},
    {"migrate-postcopy", cmd_migrate_postcopy},
    {"pause", cmd_pause},
    {"unpause", cmd_unpause},
    {"info", cmd_info},
    {"xs-ring", cmd_xs_ring},
    {"shutdown", cmd_shutdown},
    {"attach", cmd_attach},
    {"detach", cmd_detach},
    {"mem-max", cmd_mem_max},
    {"stats", cmd_stats},
    {"migrate-precopy", cmd_migrate_precopy},
    {"migrate-finish", cmd_migrate_finish},
    {"migrate-abort", cmd_migrate_abort},
};

json_object *vm_ctl_handle(struct vm *vm, const char *line, int *fds, unsigned *nfds)
{
    return vm_ctl_handle_fds(vm, line, NULL, 0, fds, nfds);
}

json_object *vm_ctl_handle_fds(struct vm *vm, const char *line, const int *in_fds,
                               unsigned n_in, int *fds, unsigned *nfds)
{
    struct ctl_req r = {vm, NULL, fds, nfds, in_fds, n_in};
    json_object *reply;
    const char *cmd, *why;

    *nfds = 0;
    if (!(r.obj = vmctl_parse_request(line, &why))) {
        reply = fail("malformed request: %s", why);
        goto out;
    }
    cmd = req_str(&r, "cmd");
    for (size_t i = 0; cmd && i < ARRAY_SIZE(commands); i++) {
        if (!strcmp(commands[i].name, cmd)) {
            reply = commands[i].fn(&r);
            goto out;
        }
    }
    reply = fail("unknown command '%.32s'", cmd ? cmd : "(none)");
out:
    json_object_put(r.obj);
    return reply;
}

void vm_ctl_serve(struct vm *vm)
{
    char line[VMCTL_LINE_MAX];
    int fds[VMCTL_MAX_FDS], in_fds[VMCTL_MAX_FDS];
    unsigned nfds = 0, n_in = VMCTL_MAX_FDS;
    json_object *reply;
    int fd = accept4(vm->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
    int rc;

    if (fd < 0)
        return;
    rc = vmctl_recv_line(fd, line, sizeof(line), in_fds, &n_in, CTL_TIMEOUT_MS);
    if (rc < 0)
        n_in = 0;
    if (rc == -EMSGSIZE)
        reply = fail("request too long (at most %u bytes)", VMCTL_LINE_MAX - 1);
    else if (rc < 0)
        reply = fail("malformed request: %s", strerror(-rc));
    else
        reply = vm_ctl_handle_fds(vm, line, in_fds, n_in, fds, &nfds);
    for (unsigned i = 0; i < n_in; i++)
        close(in_fds[i]);
    if ((rc = vmctl_send(fd, reply, fds, nfds)) < 0)
        dlog_debug("control reply: %s", strerror(-rc));
    json_object_put(reply);
    close(fd);
}
