/* domusd's handling of a domain's virtual disks (src/toolstack/dsd_disk.c). */
#ifndef DOMUS_DSD_DISK_H
#define DOMUS_DSD_DISK_H

#include "domus/xlcfg.h"
#include "domus/xldisk.h"
#include "domus/xsclient.h"

#include <stdbool.h>
#include <stddef.h>

/* At create: parses cfg's disk specs, makes targets absolute against cwd,
 * checks each image can be opened as its access asks and that vdevs are
 * distinct, and rewrites the specs in canonical form.  Disks need xenstore.
 * 0 or -errno with the disk named in err. */
int dsd_disk_check(bool xenstore, struct xlcfg *cfg, const char *cwd, char *err,
                   size_t errlen);

/* Hot-plug (block-attach): checks spec as dsd_disk_check checks a disk at
 * create (relative target against cwd, image accessible, vdev not used by
 * another of cfg's disks) and appends it to cfg in canonical form.
 * -ENOSPC when cfg has XLCFG_MAX_DISKS disks.  0 or -errno with err; cfg
 * unchanged on error. */
int dsd_disk_add(bool xenstore, struct xlcfg *cfg, const char *spec, const char *cwd,
                 char *err, size_t errlen);

/* Index of cfg's disk with Xen vdev number devid (its vdev as written in
 * vdev, if not NULL), or -ENOENT. */
int dsd_disk_find_devid(const struct xlcfg *cfg, uint32_t devid,
                        char vdev[XLDISK_VDEV_MAX]);

/* Index of cfg's disk named by which: a vdev ("xvdb") or its number
 * ("51728"); *devid its number.  -ENOENT when cfg has none, -EINVAL when
 * which is no vdev. */
int dsd_disk_find(const struct xlcfg *cfg, const char *which, uint32_t *devid);

/* Drops disk i from cfg (the later ones move down). */
void dsd_disk_remove(struct xlcfg *cfg, unsigned i);

/* domus-vm's --disk argument for disk i ("DEVID:r|w:PATH"). */
int dsd_disk_arg(const struct xlcfg *cfg, unsigned i, char *buf, size_t len);

/* Writes every disk's front and back end nodes for domain domid (libxl's
 * layout and permissions).  0 or the first -errno. */
int dsd_disk_nodes(struct xsc *c, unsigned domid, const struct xlcfg *cfg);

/* The same for disk i only (back end first, each state last). */
int dsd_disk_nodes_one(struct xsc *c, unsigned domid, const struct xlcfg *cfg,
                       unsigned i);

/* Removes one device's directories: /local/domain/<domid>/device/<kind>/
 * <devid> and /local/domain/0/backend/<kind>/<domid>/<devid>, and each
 * parent left empty. */
void dsd_dev_nodes_rm(struct xsc *c, const char *kind, unsigned domid, uint32_t devid);

/* Removes /local/domain/0/backend/vbd/<domid>. */
void dsd_disk_nodes_rm(struct xsc *c, unsigned domid);

/* ---- shared with dsd_vif.c ---- */

#define DSD_DEV_PATH_MAX 96

/* A device's front- and back-end directories in xenstore:
 * /local/domain/<domid>/device/<kind>/<devid> in fpath and
 * /local/domain/0/backend/<kind>/<domid>/<devid> in bpath. */
void dsd_dev_paths(const char *kind, unsigned domid, uint32_t devid,
                   char fpath[DSD_DEV_PATH_MAX], char bpath[DSD_DEV_PATH_MAX]);

/* Drops spec i from a list of *n specs (cfg->disks or cfg->vifs, max long):
 * the later ones move down. */
void dsd_spec_remove(char (*specs)[512], unsigned *n, unsigned max, unsigned i);

/* One device directory in xenstore, written as libxl does (dsd_disk.c,
 * dsd_vif.c): dsd_devdir_open makes dir, owned by domain owner and readable
 * by reader; each dsd_devdir_node writes one node under it with the same
 * permissions (value NULL: a directory).  The first error is kept in rc
 * (logged); later nodes are still tried. */
struct dsd_devdir {
    struct xsc *c;
    int rc;
    char dir[DSD_DEV_PATH_MAX];
    char perms[2][16];
};
void dsd_devdir_open(struct dsd_devdir *n, const char *dir, unsigned owner,
                     unsigned reader);
void dsd_devdir_node(struct dsd_devdir *n, const char *rel, const char *value);

#endif
