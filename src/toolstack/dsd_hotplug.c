/* domusd: hot-plug of disks and vifs on a running domain, as xl's
 * block-attach/-detach/-list and network-attach/-detach/-list.
 *
 * Attach: the spec is checked as at create (dsd_disk_add, dsd_vif_add:
 * relative targets against the client's cwd, vdev/devid/mac distinct from
 * the domain's other devices), domus-vm starts the back end (control
 * socket "attach", vmctl.h), domusd writes the device's
 * xenstore nodes (back end first, the front end's state last: the guest
 * probes the device when that appears) and records the device in the
 * domain's configuration (so its state file and its reboots keep it).  Any
 * failure undoes what was done.
 *
 * Detach, as libxl: the backend's "online" = 0 and "state" = 5 (Closing);
 * the back end (xenbus_be.h) passes it on to the guest's front end, which
 * closes, and goes Closed (6).  domusd polls for that (DSD_DETACH_POLL_MS)
 * for up to DSD_DETACH_TIMEOUT_MS without blocking its loop, then has
 * domus-vm stop the back end, removes the front and back end directories
 * and drops the device from the configuration.  A guest that does not
 * answer in time is detached by force all the same, and the reply says so
 * (a warning), as xl's -f.
 *
 * Lists: the devices under the guest's /local/domain/<N>/device/<kind>,
 * with their front ends' state, event channel and ring references. */
#include "domus/domusd.h"
#include "domus/dsd_dev.h"
#include "domus/dsd_disk.h"
#include "domus/util.h"
#include "domus/vmctl.h"
#include "domus/vmproc.h"
#include "domus/xsclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xenbus.h>
#include <xen/io/xs_wire.h>

struct dsd_detach {
    struct dsd_detach *next;
    unsigned domid, gen;
    char name[XLCFG_NAME_MAX];
    const struct dsd_dev_kind *kind;
    uint32_t devid;
    char what[48]; /* "disk xvdb", "vif 1" */
    uint64_t client;
    int64_t deadline_ms;
};

/* A domain attach/detach/list can work on; replies with the error if not. */
static bool usable(struct dsd *d, uint64_t client, const struct dsd_dom *dom)
{
    if (dom->state != DS_RUNNING) {
        dsd_reply_error(d, client, "domain '%s' is not running (%s)", dom->cfg.name,
                        dsd_state_name(dom->state));
        return false;
    }
    if (!d->xs.enabled || !dom->xs_up) {
        dsd_reply_error(d, client, "domain '%s' has no xenstore: devices cannot be %s",
                        dom->cfg.name, "hot-plugged");
        return false;
    }
    return true;
}

/* Has domus-vm attach (spec) or detach (devid) one device (vmctl.h); 0, or
 * -1 with the reason in err. */
static int vm_cmd(const struct dsd_dom *dom, const struct dsd_dev_kind *k,
                  const char *spec, uint32_t devid, char *err, size_t errlen)
{
    json_object *req = vmctl_req(spec ? "attach" : "detach");
    char why[512];
    int rc;

    json_object_object_add(req, "kind", json_object_new_string(k->name));
    if (spec)
        json_object_object_add(req, "spec", json_object_new_string(spec));
    else
        json_object_object_add(req, "devid", json_object_new_int64(devid));
    rc = dsd_vm_control(dom, req, NULL, why, sizeof(why));
    if (rc == -EREMOTEIO)
        dfmt(err, errlen, "domain '%s': %s", dom->cfg.name, why);
    else if (rc < 0)
        dfmt(err, errlen, "domain '%s': control socket: %s", dom->cfg.name, why);
    return rc < 0 ? -1 : 0;
}

/* ---- attach ---- */

static void attach(struct dsd *d, uint64_t client, struct dsd_dom *dom, json_object *obj,
                   const struct dsd_dev_kind *k)
{
    const char *spec = vmctl_get_str(obj, "spec");
    struct xlcfg *cfg = malloc(sizeof(*cfg));
    char err[1024], arg[XLDISK_TARGET_MAX + 32];
    uint32_t devid = 0;
    unsigned i;
    struct xsc c;
    int rc;

    if (!cfg) {
        dsd_reply_error(d, client, "out of memory");
        return;
    }
    memcpy(cfg, &dom->cfg, sizeof(*cfg));
    if (!spec) {
        dsd_reply_error(d, client, "\"spec\" (a %s spec) is missing", k->noun);
        goto out;
    }
    rc = k->add(cfg, spec, vmctl_get_str(obj, "cwd"), err, sizeof(err));
    i = k->count(cfg) - 1;
    if (!rc)
        rc = k->arg(cfg, i, arg, sizeof(arg));
    if (rc) {
        dsd_reply_error(d, client, "%s", err);
        goto out;
    }
    devid = (uint32_t)strtoul(arg, NULL, 10); /* "DEVID:..." or "DEVID,..." */
    if (vm_cmd(dom, k, arg, devid, err, sizeof(err)) < 0) {
        dsd_reply_error(d, client, "%s", err);
        goto out;
    }
    rc = xsc_open(&c, d->xs.path);
    if (!rc) {
        rc = k->nodes_one(&c, dom->domid, cfg, i);
        if (rc) /* nothing half-made stays behind */
            dsd_dev_nodes_rm(&c, k->name, dom->domid, devid);
        xsc_close(&c);
    }
    if (rc) {
        vm_cmd(dom, k, NULL, devid, err, sizeof(err));
        dsd_reply_error(d, client, "domain '%s': xenstore: %s", dom->cfg.name,
                        strerror(-rc));
        goto out;
    }
    memcpy(&dom->cfg, cfg, sizeof(*cfg));
    dsd_persist_save(dom);
    dinfo("domain %u (%s): %s %u attached: %s", dom->domid, dom->cfg.name, k->noun, devid,
          k->spec(cfg, i));
    json_object *o = dsd_ok();
    json_object_object_add(o, "devid", json_object_new_int64(devid));
    json_object_object_add(o, "spec", json_object_new_string(k->spec(cfg, i)));
    dsd_reply(d, client, o);
out:
    free(cfg);
}

/* ---- detach ---- */

static void backend_path(char *buf, size_t len, const struct dsd_dev_kind *k,
                         unsigned domid, uint32_t devid)
{
    snprintf(buf, len, "/local/domain/0/backend/%s/%u/%u", k->name, domid, devid);
}

/* Stops the back end, removes the nodes, forgets the device; replies. */
static void detach_finish(struct dsd *d, struct dsd_detach *x, struct dsd_dom *dom,
                          bool forced)
{
    char err[512];
    json_object *o, *w;
    struct xsc c;
    int i;

    if (dom->state == DS_RUNNING &&
        vm_cmd(dom, x->kind, NULL, x->devid, err, sizeof(err)) < 0)
        dwarn("%s", err); /* e.g. the domain restarted without it: go on */
    if (xsc_open(&c, d->xs.path) == 0) {
        dsd_dev_nodes_rm(&c, x->kind->name, dom->domid, x->devid);
        xsc_close(&c);
    }
    if ((i = x->kind->find_devid(&dom->cfg, x->devid)) >= 0)
        x->kind->remove(&dom->cfg, (unsigned)i);
    dsd_persist_save(dom);
    dinfo("domain %u (%s): %s detached%s", dom->domid, dom->cfg.name, x->what,
          forced ? " by force (the guest did not close it)" : "");
    o = dsd_ok();
    w = json_object_new_array();
    if (forced) {
        snprintf(err, sizeof(err),
                 "%s: the guest did not close %s within %d s; detached by force",
                 dom->cfg.name, x->what, DSD_DETACH_TIMEOUT_MS / 1000);
        json_object_array_add(w, json_object_new_string(err));
    }
    json_object_object_add(o, "forced", json_object_new_boolean(forced));
    json_object_object_add(o, "warnings", w);
    dsd_reply(d, x->client, o);
}

static struct dsd_detach *pending(struct dsd *d, unsigned domid,
                                  const struct dsd_dev_kind *k, uint32_t devid)
{
    for (struct dsd_detach *x = d->detaches; x; x = x->next)
        if (x->domid == domid && x->kind == k && x->devid == devid)
            return x;
    return NULL;
}

static void detach(struct dsd *d, uint64_t client, struct dsd_dom *dom, json_object *obj,
                   const struct dsd_dev_kind *k)
{
    const char *which = vmctl_get_str(obj, "dev");
    char path[128];
    struct dsd_detach *x;
    uint32_t devid = 0;
    struct xsc c;
    int i, rc;

    if (!which) {
        dsd_reply_error(d, client, "\"dev\" (the device to detach) is missing");
        return;
    }
    i = k->find(&dom->cfg, which, &devid);
    if (i == -EINVAL) {
        dsd_reply_error(d, client, "'%.64s' is not a %s", which, k->which_help);
        return;
    }
    if (i < 0) {
        dsd_reply_error(d, client, "domain '%s' has no %s '%.64s'", dom->cfg.name,
                        k->noun, which);
        return;
    }
    if (pending(d, dom->domid, k, devid)) {
        dsd_reply_error(d, client, "domain '%s': %s '%.64s' is already being detached",
                        dom->cfg.name, k->noun, which);
        return;
    }
    x = calloc(1, sizeof(*x));
    rc = x ? xsc_open(&c, d->xs.path) : -ENOMEM;
    if (rc) {
        dsd_reply_error(d, client, "domain '%s': %s", dom->cfg.name,
                        x ? "cannot reach xenstore" : "out of memory");
        free(x);
        return;
    }
    *x = (struct dsd_detach){.domid = dom->domid,
                             .gen = dom->gen,
                             .kind = k,
                             .devid = devid,
                             .client = client,
                             .deadline_ms = dnow_ms() + DSD_DETACH_TIMEOUT_MS};
    snprintf(x->name, sizeof(x->name), "%s", dom->cfg.name);
    k->describe(&dom->cfg, devid, x->what, sizeof(x->what));
    backend_path(path, sizeof(path), k, dom->domid, devid);
    strcat(path, "/online");
    rc = xsc_write(&c, path, "0");
    backend_path(path, sizeof(path), k, dom->domid, devid);
    strcat(path, "/state");
    if (!rc)
        rc = xsc_write(&c, path, "5"); /* XenbusStateClosing */
    xsc_close(&c);
    if (rc) {
        dwarn("domain %u: %s: asking the back end to close: %s", dom->domid, x->what,
              strerror(-rc));
        detach_finish(d, x, dom, true);
        free(x);
        return;
    }
    dinfo("domain %u (%s): detaching %s", dom->domid, dom->cfg.name, x->what);
    x->next = d->detaches;
    d->detaches = x;
}

void dsd_hotplug_tick(struct dsd *d)
{
    int64_t now = dnow_ms();
    struct xsc c;
    bool xs = false;

    for (struct dsd_detach **pp = &d->detaches; *pp;) {
        struct dsd_detach *x = *pp;
        char path[128], *v = NULL, id[16];
        struct dsd_dom *dom;
        bool closed;

        snprintf(id, sizeof(id), "%u", x->domid);
        dom = dsd_dom_find(d, id);
        if (dom && strcmp(dom->cfg.name, x->name))
            dom = NULL; /* the domid went to another domain */
        if (!dom) {
            dsd_reply_error(d, x->client, "domain '%s' went away during the detach",
                            x->name);
        } else {
            if (!xs)
                xs = xsc_open(&c, d->xs.path) == 0;
            backend_path(path, sizeof(path), x->kind, x->domid, x->devid);
            strcat(path, "/state");
            closed =
                xs && xsc_read(&c, path, &v) == 0 && v && atoi(v) == XenbusStateClosed;
            free(v);
            if (!closed && now < x->deadline_ms && dom->state == DS_RUNNING &&
                dom->gen == x->gen) {
                pp = &x->next;
                continue;
            }
            detach_finish(d, x, dom, !closed);
        }
        *pp = x->next;
        free(x);
    }
    if (xs)
        xsc_close(&c);
}

int dsd_hotplug_timeout_ms(struct dsd *d)
{
    return d->detaches ? DSD_DETACH_POLL_MS : -1;
}

void dsd_hotplug_fini(struct dsd *d)
{
    while (d->detaches) {
        struct dsd_detach *x = d->detaches;
        d->detaches = x->next;
        free(x);
    }
}

/* ---- lists ---- */

static int by_devid(const void *a, const void *b)
{
    int64_t x =
        json_object_get_int64(json_object_object_get(*(json_object *const *)a, "devid"));
    int64_t y =
        json_object_get_int64(json_object_object_get(*(json_object *const *)b, "devid"));
    return (x > y) - (x < y);
}

static void list(struct dsd *d, uint64_t client, struct dsd_dom *dom,
                 const struct dsd_dev_kind *k)
{
    char dir[96], fdir[192], *names = NULL;
    size_t len = 0;
    json_object *arr, *o;
    struct xsc c;
    int rc = xsc_open(&c, d->xs.path);

    if (rc) {
        dsd_reply_error(d, client, "domain '%s': xenstore: %s", dom->cfg.name,
                        strerror(-rc));
        return;
    }
    snprintf(dir, sizeof(dir), "/local/domain/%u/device/%s", dom->domid, k->name);
    rc = xsc_request(&c, XS_DIRECTORY, dir, strlen(dir) + 1, &names, &len);
    arr = json_object_new_array();
    for (size_t off = 0; !rc && off < len; off += strlen(names + off) + 1) {
        const char *n = names + off;
        if (!*n)
            continue;
        snprintf(fdir, sizeof(fdir), "%s/%s", dir, n);
        o = json_object_new_object();
        json_object_object_add(o, "devid", json_object_new_int64(strtoll(n, NULL, 10)));
        json_object_object_add(o, "be",
                               json_object_new_int64(dsd_xs_num(&c, fdir, "backend-id")));
        k->list_row(&c, o, fdir, dom->domid);
        dsd_xs_str(&c, o, fdir, "backend", "be_path");
        json_object_array_add(arr, o);
    }
    free(names);
    xsc_close(&c);
    if (rc && rc != -ENOENT) {
        json_object_put(arr);
        dsd_reply_error(d, client, "domain '%s': xenstore: %s", dom->cfg.name,
                        strerror(-rc));
        return;
    }
    json_object_array_sort(arr, by_devid);
    o = dsd_ok();
    json_object_object_add(o, "devices", arr);
    dsd_reply(d, client, o);
}

void dsd_hotplug_request(struct dsd *d, uint64_t client, struct dsd_dom *dom,
                         const char *cmd, json_object *obj)
{
    const struct dsd_dev_kind *const *k = dsd_dev_kinds;
    const char *op;

    while (*k && strncmp(cmd, (*k)->cli_prefix, strlen((*k)->cli_prefix)))
        k++;
    if (!*k) {
        dsd_reply_error(d, client, "unknown command '%.32s'", cmd);
        return;
    }
    if (!usable(d, client, dom))
        return;
    op = cmd + strlen((*k)->cli_prefix);
    if (!strcmp(op, "attach"))
        attach(d, client, dom, obj, *k);
    else if (!strcmp(op, "detach"))
        detach(d, client, dom, obj, *k);
    else
        list(d, client, dom, *k);
}
