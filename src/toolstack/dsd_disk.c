/* domusd: the domain's virtual disks (xl.cfg `disk`, xldisk.h).
 *
 * At create the disk specs are parsed and checked (the image exists and is
 * accessible as asked, vdevs are distinct), targets made absolute against
 * the client's cwd, and each spec rewritten in canonical form.  domus-vm
 * gets one --disk per disk (vmproc.h); before the domain is introduced,
 * domusd writes each disk's xenstore nodes as libxl does, back end first:
 *   /local/domain/0/backend/vbd/<N>/<devid>/       owner 0, N reads
 *       frontend, frontend-id, online, removable, bootable, dev, type,
 *       mode, params, device-type, discard-enable, then state (1) last:
 *       the back end in domus-vm waits for that;
 *   /local/domain/<N>/device/vbd/<devid>/          owner N, Domain 0 reads
 *       backend, backend-id, virtual-device, device-type, then state (1)
 *       last: a running guest (hot-plug) probes the device when it appears.
 * Hot-plug (block-attach) checks and writes one disk the same way
 * (dsd_disk_add, dsd_disk_nodes_one). */
#include "domus/domusd.h"
#include "domus/dsd_disk.h"
#include "domus/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xen/io/xs_wire.h>

/* Checks disk i of cfg (parse, target made absolute against cwd, image
 * accessible as asked) and rewrites its spec in canonical form. */
static int check_one(struct xlcfg *cfg, unsigned i, const char *cwd, struct xldisk *dk,
                     char *err, size_t errlen)
{
    char abs[XLDISK_TARGET_MAX];
    int rc = xldisk_parse(cfg->disks[i], i, dk, err, errlen);

    if (rc)
        return rc;
    if (dk->target[0] != '/' && cwd && cwd[0] == '/') {
        if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, dk->target) >= sizeof(abs))
            goto toolong;
        memcpy(dk->target, abs, sizeof(abs));
    }
    if (access(dk->target, dk->readwrite ? R_OK | W_OK : R_OK) < 0) {
        rc = -errno;
        dfmt(err, errlen, "disk %u: %s: %s", i, dk->target, strerror(errno));
        return rc;
    }
    if (xldisk_format(dk, cfg->disks[i], sizeof(cfg->disks[i])) == 0)
        return 0;
toolong:
    dfmt(err, errlen, "disk %u: target path too long", i);
    return -ENAMETOOLONG;
}

static int need_xenstore(bool xenstore, char *err, size_t errlen)
{
    if (xenstore)
        return 0;
    dfmt(err, errlen, "disks need xenstore (domusd runs without it)");
    return -EOPNOTSUPP;
}

int dsd_disk_check(bool xenstore, struct xlcfg *cfg, const char *cwd, char *err,
                   size_t errlen)
{
    struct xldisk *dk = calloc(XLCFG_MAX_DISKS, sizeof(*dk));
    int rc = 0;

    if (!dk)
        return -ENOMEM;
    if (cfg->n_disks)
        rc = need_xenstore(xenstore, err, errlen);
    for (unsigned i = 0; !rc && i < cfg->n_disks && i < XLCFG_MAX_DISKS; i++) {
        rc = check_one(cfg, i, cwd, &dk[i], err, errlen);
        for (unsigned j = 0; !rc && j < i; j++) {
            if (dk[j].devid == dk[i].devid) {
                dfmt(err, errlen, "disk %u: vdev %s is already used by disk %u", i,
                     dk[i].vdev, j);
                rc = -EEXIST;
            }
        }
    }
    free(dk);
    return rc;
}

int dsd_disk_add(bool xenstore, struct xlcfg *cfg, const char *spec, const char *cwd,
                 char *err, size_t errlen)
{
    struct xldisk *dk = malloc(sizeof(*dk));
    unsigned n = cfg->n_disks;
    int rc = dk ? need_xenstore(xenstore, err, errlen) : -ENOMEM;

    if (!rc && n >= XLCFG_MAX_DISKS) {
        dfmt(err, errlen, "the domain has %u disks already (at most %u)", n,
             XLCFG_MAX_DISKS);
        rc = -ENOSPC;
    } else if (!rc && strlen(spec) >= sizeof(cfg->disks[n])) {
        dfmt(err, errlen, "disk %u: spec too long", n);
        rc = -ENAMETOOLONG;
    }
    if (!rc) {
        snprintf(cfg->disks[n], sizeof(cfg->disks[n]), "%s", spec);
        rc = check_one(cfg, n, cwd, dk, err, errlen);
    }
    if (!rc) {
        char other[XLDISK_VDEV_MAX];
        int j = dsd_disk_find_devid(cfg, dk->devid, other);
        if (j >= 0) {
            dfmt(err, errlen, "disk %u: vdev %s is already used by disk %d%s%s%s", n,
                 dk->vdev, j, strcmp(other, dk->vdev) ? " (" : "",
                 strcmp(other, dk->vdev) ? other : "",
                 strcmp(other, dk->vdev) ? ")" : "");
            rc = -EEXIST;
        }
    }
    if (!rc)
        cfg->n_disks = n + 1;
    else if (n < XLCFG_MAX_DISKS)
        cfg->disks[n][0] = '\0';
    free(dk);
    return rc;
}

int dsd_disk_find_devid(const struct xlcfg *cfg, uint32_t devid,
                        char vdev[XLDISK_VDEV_MAX])
{
    struct xldisk *dk = malloc(sizeof(*dk));
    char err[256];
    int found = -ENOMEM;

    for (unsigned i = 0; dk && found < 0 && i < cfg->n_disks && i < XLCFG_MAX_DISKS;
         i++) {
        found = -ENOENT;
        if (!xldisk_parse(cfg->disks[i], i, dk, err, sizeof(err)) && dk->devid == devid) {
            found = (int)i;
            if (vdev)
                snprintf(vdev, XLDISK_VDEV_MAX, "%s", dk->vdev);
        }
    }
    if (dk && found == -ENOMEM)
        found = -ENOENT;
    free(dk);
    return found;
}

int dsd_disk_find(const struct xlcfg *cfg, const char *which, uint32_t *devid)
{
    uint32_t id;
    int i;

    if (xldisk_devid(which, &id))
        return -EINVAL;
    i = dsd_disk_find_devid(cfg, id, NULL);
    if (i >= 0 && devid)
        *devid = id;
    return i;
}

void dsd_spec_remove(char (*specs)[512], unsigned *n, unsigned max, unsigned i)
{
    if (i >= *n || i >= max)
        return;
    memmove(specs[i], specs[i + 1], (*n - i - 1) * sizeof(specs[0]));
    (*n)--;
    specs[*n][0] = '\0';
}

void dsd_disk_remove(struct xlcfg *cfg, unsigned i)
{
    dsd_spec_remove(cfg->disks, &cfg->n_disks, XLCFG_MAX_DISKS, i);
}

int dsd_disk_arg(const struct xlcfg *cfg, unsigned i, char *buf, size_t len)
{
    char err[256];
    struct xldisk *dk = malloc(sizeof(*dk));
    int rc = dk ? xldisk_parse(cfg->disks[i], i, dk, err, sizeof(err)) : -ENOMEM;

    if (!rc && (size_t)snprintf(buf, len, "%u:%c:%s", dk->devid,
                                dk->readwrite ? 'w' : 'r', dk->target) >= len)
        rc = -ENAMETOOLONG;
    free(dk);
    return rc;
}

/* ---- xenstore nodes ---- */

void dsd_dev_paths(const char *kind, unsigned domid, uint32_t devid,
                   char fpath[DSD_DEV_PATH_MAX], char bpath[DSD_DEV_PATH_MAX])
{
    snprintf(fpath, DSD_DEV_PATH_MAX, "/local/domain/%u/device/%s/%u", domid, kind,
             devid);
    snprintf(bpath, DSD_DEV_PATH_MAX, "/local/domain/0/backend/%s/%u/%u", kind, domid,
             devid);
}

void dsd_devdir_open(struct dsd_devdir *n, const char *dir, unsigned owner,
                     unsigned reader)
{
    snprintf(n->dir, sizeof(n->dir), "%s", dir);
    snprintf(n->perms[0], sizeof(n->perms[0]), "n%u", owner);
    snprintf(n->perms[1], sizeof(n->perms[1]), "r%u", reader);
    dsd_devdir_node(n, "", NULL);
}

void dsd_devdir_node(struct dsd_devdir *n, const char *rel, const char *value)
{
    const char *perms[2] = {n->perms[0], n->perms[1]};
    char path[256];
    int rc;

    snprintf(path, sizeof(path), "%s%s%s", n->dir, *rel ? "/" : "", rel);
    rc = value ? xsc_write(n->c, path, value) : xsc_mkdir(n->c, path);
    rc = rc ? rc : xsc_set_perms(n->c, path, perms, 2);
    if (rc && !n->rc) {
        n->rc = rc;
        dwarn("xenstore: %s: %s", path, strerror(-rc));
    }
}

static void frontend_nodes(struct dsd_devdir *n, unsigned domid, const struct xldisk *dk,
                           const char *fpath, const char *bpath)
{
    char v[32];

    dsd_devdir_open(n, fpath, domid, 0);
    dsd_devdir_node(n, "backend", bpath);
    dsd_devdir_node(n, "backend-id", "0");
    snprintf(v, sizeof(v), "%u", dk->devid);
    dsd_devdir_node(n, "virtual-device", v);
    dsd_devdir_node(n, "device-type", dk->cdrom ? "cdrom" : "disk");
    dsd_devdir_node(n, "state", "1"); /* last: a running guest probes on it */
}

static void backend_nodes(struct dsd_devdir *n, unsigned domid, const struct xldisk *dk,
                          const char *bpath, const char *fpath)
{
    char v[32];

    dsd_devdir_open(n, bpath, 0, domid);
    dsd_devdir_node(n, "frontend", fpath);
    snprintf(v, sizeof(v), "%u", domid);
    dsd_devdir_node(n, "frontend-id", v);
    dsd_devdir_node(n, "online", "1");
    dsd_devdir_node(n, "removable", "0");
    dsd_devdir_node(n, "bootable", "1");
    dsd_devdir_node(n, "dev", dk->vdev);
    dsd_devdir_node(n, "type", dk->backendtype);
    dsd_devdir_node(n, "mode", dk->readwrite ? "w" : "r");
    dsd_devdir_node(n, "params", dk->target);
    dsd_devdir_node(n, "device-type", dk->cdrom ? "cdrom" : "disk");
    dsd_devdir_node(n, "discard-enable", dk->discard ? "1" : "0");
    dsd_devdir_node(n, "state", "1");
}

int dsd_disk_nodes_one(struct xsc *c, unsigned domid, const struct xlcfg *cfg, unsigned i)
{
    struct xldisk *dk = malloc(sizeof(*dk));
    char err[256], fpath[DSD_DEV_PATH_MAX], bpath[DSD_DEV_PATH_MAX];
    struct dsd_devdir n = {.c = c};

    if (!dk)
        return -ENOMEM;
    n.rc =
        i < cfg->n_disks ? xldisk_parse(cfg->disks[i], i, dk, err, sizeof(err)) : -EINVAL;
    if (!n.rc) {
        dsd_dev_paths("vbd", domid, dk->devid, fpath, bpath);
        backend_nodes(&n, domid, dk, bpath, fpath);
        frontend_nodes(&n, domid, dk, fpath, bpath);
    }
    free(dk);
    return n.rc;
}

int dsd_disk_nodes(struct xsc *c, unsigned domid, const struct xlcfg *cfg)
{
    int rc = 0;

    for (unsigned i = 0; !rc && i < cfg->n_disks && i < XLCFG_MAX_DISKS; i++)
        rc = dsd_disk_nodes_one(c, domid, cfg, i);
    return rc;
}

/* Removes path/<leaf>, then path itself when nothing else is left in it (as
 * libxl cleans up a device's parents). */
static void rm_with_parent(struct xsc *c, char *path, size_t len, const char *leaf)
{
    size_t n = strlen(path), dlen = 0;
    char *names = NULL;

    snprintf(path + n, len - n, "/%s", leaf);
    xsc_rm(c, path);
    path[n] = '\0';
    if (xsc_request(c, XS_DIRECTORY, path, n + 1, &names, &dlen) == 0 && dlen <= 1)
        xsc_rm(c, path);
    free(names);
}

void dsd_dev_nodes_rm(struct xsc *c, const char *kind, unsigned domid, uint32_t devid)
{
    char path[96], leaf[16];

    snprintf(leaf, sizeof(leaf), "%u", devid);
    snprintf(path, sizeof(path), "/local/domain/%u/device/%s", domid, kind);
    rm_with_parent(c, path, sizeof(path), leaf);
    snprintf(path, sizeof(path), "/local/domain/0/backend/%s/%u", kind, domid);
    rm_with_parent(c, path, sizeof(path), leaf);
}

void dsd_disk_nodes_rm(struct xsc *c, unsigned domid)
{
    char path[64];

    snprintf(path, sizeof(path), "/local/domain/0/backend/vbd/%u", domid);
    xsc_rm(c, path); /* -ENOENT without disks: fine */
}
