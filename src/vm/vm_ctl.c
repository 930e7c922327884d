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
#include <unistd.h>

#define CTL_TIMEOUT_MS 1000

struct ctl_req {
    struct vm *vm;
    json_object *obj;
    int *fds;
    unsigned *nfds;
};

static json_object *ok(void)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    return o;
}

static json_object *fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_object *fail(const char *fmt, ...)
{
    json_object *o = json_object_new_object();
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    return o;
}

static const char *req_str(const struct ctl_req *r, const char *key)
{
    return vmctl_get_str(r->obj, key);
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

static json_object *cmd_unpause(const struct ctl_req *r)
{
    kvm_domain_pause(&r->vm->dom, false);
    return ok();
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
    return o;
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

static json_object *cmd_stats(const struct ctl_req *r)
{
    return vm_stats_json(r->vm);
}

static const struct {
    const char *name;
    json_object *(*fn)(const struct ctl_req *r);
} commands[] = {
    {"pause", cmd_pause},     {"unpause", cmd_unpause},   {"info", cmd_info},
    {"xs-ring", cmd_xs_ring}, {"shutdown", cmd_shutdown}, {"attach", cmd_attach},
    {"detach", cmd_detach},   {"stats", cmd_stats},
};

json_object *vm_ctl_handle(struct vm *vm, const char *line, int *fds, unsigned *nfds)
{
    enum json_tokener_error jerr;
    struct ctl_req r = {vm, NULL, fds, nfds};
    json_object *reply;
    const char *cmd;

    *nfds = 0;
    r.obj = json_tokener_parse_verbose(line, &jerr);
    if (!r.obj || !json_object_is_type(r.obj, json_type_object)) {
        reply = fail("malformed request: %s", r.obj || jerr == json_tokener_success
                                                  ? "not a JSON object"
                                                  : json_tokener_error_desc(jerr));
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
    int fds[VMCTL_MAX_FDS];
    unsigned nfds = 0;
    json_object *reply;
    int fd = accept4(vm->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
    int rc;

    if (fd < 0)
        return;
    rc = vmctl_recv_line(fd, line, sizeof(line), NULL, NULL, CTL_TIMEOUT_MS);
    if (rc == -EMSGSIZE)
        reply = fail("request too long (at most %u bytes)", VMCTL_LINE_MAX - 1);
    else if (rc < 0)
        reply = fail("malformed request: %s", strerror(-rc));
    else
        reply = vm_ctl_handle(vm, line, fds, &nfds);
    if ((rc = vmctl_send(fd, reply, fds, nfds)) < 0)
        dlog_debug("control reply: %s", strerror(-rc));
    json_object_put(reply);
    close(fd);
}
