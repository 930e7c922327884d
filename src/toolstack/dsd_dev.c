/* domusd's device kinds over dsd_disk.c and dsd_vif.c (dsd_dev.h). */
#include "domus/dsd_dev.h"
#include "domus/dsd_disk.h"
#include "domus/dsd_vif.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

long long dsd_xs_num(struct xsc *c, const char *dir, const char *rel)
{
    char path[192], *v = NULL, *end;
    long long n = -1;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    if (xsc_read(c, path, &v) == 0 && v && *v) {
        n = strtoll(v, &end, 10);
        if (*end)
            n = -1;
    }
    free(v);
    return n;
}

void dsd_xs_str(struct xsc *c, json_object *o, const char *dir, const char *rel,
                const char *key)
{
    char path[192], *v = NULL;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    json_object_object_add(
        o, key, json_object_new_string(xsc_read(c, path, &v) == 0 && v ? v : ""));
    free(v);
}

static void add_num(struct xsc *c, json_object *o, const char *dir, const char *rel,
                    const char *key)
{
    json_object_object_add(o, key, json_object_new_int64(dsd_xs_num(c, dir, rel)));
}

/* ---- vbd ---- */

static int vbd_add(struct xlcfg *cfg, const char *spec, const char *cwd, char *err,
                   size_t errlen)
{
    return dsd_disk_add(true, cfg, spec, cwd, err, errlen);
}

static unsigned vbd_count(const struct xlcfg *cfg)
{
    return cfg->n_disks;
}

static const char *vbd_spec(const struct xlcfg *cfg, unsigned i)
{
    return cfg->disks[i];
}

static int vbd_find_devid(const struct xlcfg *cfg, uint32_t devid)
{
    return dsd_disk_find_devid(cfg, devid, NULL);
}

static void vbd_describe(const struct xlcfg *cfg, uint32_t devid, char *buf, size_t len)
{
    char vdev[XLDISK_VDEV_MAX] = "";

    dsd_disk_find_devid(cfg, devid, vdev);
    snprintf(buf, len, "disk %s", vdev);
}

static void vbd_list_row(struct xsc *c, json_object *o, const char *fdir, unsigned domid)
{
    json_object_object_add(o, "handle", json_object_new_int64(domid));
    add_num(c, o, fdir, "state", "state");
    add_num(c, o, fdir, "event-channel", "evtch");
    add_num(c, o, fdir, "ring-ref", "ring_ref");
}

const struct dsd_dev_kind dsd_kind_vbd = {
    .name = "vbd",
    .noun = "disk",
    .cli_prefix = "block-",
    .vm_opt = "--disk",
    .which_help = "vdev (xvdb) or vdev number (51728)",
    .max = XLCFG_MAX_DISKS,
    .add = vbd_add,
    .count = vbd_count,
    .spec = vbd_spec,
    .arg = dsd_disk_arg,
    .nodes = dsd_disk_nodes,
    .nodes_one = dsd_disk_nodes_one,
    .nodes_rm = dsd_disk_nodes_rm,
    .find = dsd_disk_find,
    .find_devid = vbd_find_devid,
    .remove = dsd_disk_remove,
    .describe = vbd_describe,
    .list_row = vbd_list_row,
};

/* ---- vif ---- */

static int vif_add(struct xlcfg *cfg, const char *spec, const char *cwd, char *err,
                   size_t errlen)
{
    (void)cwd;
    return dsd_vif_add(true, cfg, spec, err, errlen);
}

static unsigned vif_count(const struct xlcfg *cfg)
{
    return cfg->n_vifs;
}

static const char *vif_spec(const struct xlcfg *cfg, unsigned i)
{
    return cfg->vifs[i];
}

static int vif_find_devid(const struct xlcfg *cfg, uint32_t devid)
{
    char which[16];

    snprintf(which, sizeof(which), "%u", devid);
    return dsd_vif_find(cfg, which, NULL);
}

static void vif_describe(const struct xlcfg *cfg, uint32_t devid, char *buf, size_t len)
{
    (void)cfg;
    snprintf(buf, len, "vif %u", devid);
}

static void vif_list_row(struct xsc *c, json_object *o, const char *fdir, unsigned domid)
{
    (void)domid;
    add_num(c, o, fdir, "handle", "handle");
    add_num(c, o, fdir, "state", "state");
    add_num(c, o, fdir, "event-channel", "evtch");
    dsd_xs_str(c, o, fdir, "mac", "mac");
    add_num(c, o, fdir, "tx-ring-ref", "tx_ring_ref");
    add_num(c, o, fdir, "rx-ring-ref", "rx_ring_ref");
}

const struct dsd_dev_kind dsd_kind_vif = {
    .name = "vif",
    .noun = "vif",
    .cli_prefix = "network-",
    .vm_opt = "--vif",
    .which_help = "devid or mac address",
    .max = XLCFG_MAX_VIFS,
    .add = vif_add,
    .count = vif_count,
    .spec = vif_spec,
    .arg = dsd_vif_arg,
    .nodes = dsd_vif_nodes,
    .nodes_one = dsd_vif_nodes_one,
    .nodes_rm = dsd_vif_nodes_rm,
    .find = dsd_vif_find,
    .find_devid = vif_find_devid,
    .remove = dsd_vif_remove,
    .describe = vif_describe,
    .list_row = vif_list_row,
};

const struct dsd_dev_kind *const dsd_dev_kinds[] = {&dsd_kind_vbd, &dsd_kind_vif, NULL};
