/* domusd's handling of a domain's virtual disks (src/toolstack/dsd_disk.c). */
#ifndef DOMUS_DSD_DISK_H
#define DOMUS_DSD_DISK_H

#include "domus/xlcfg.h"
#include "domus/xsclient.h"

#include <stdbool.h>
#include <stddef.h>

/* At create: parses cfg's disk specs, makes targets absolute against cwd,
 * checks each image can be opened as its access asks and that vdevs are
 * distinct, and rewrites the specs in canonical form.  Disks need xenstore.
 * 0 or -errno with the disk named in err. */
int dsd_disk_check(bool xenstore, struct xlcfg *cfg, const char *cwd, char *err, size_t errlen);

/* domus-vm's --disk argument for disk i ("DEVID:r|w:PATH"). */
int dsd_disk_arg(const struct xlcfg *cfg, unsigned i, char *buf, size_t len);

/* Writes every disk's front and back end nodes for domain domid (libxl's
 * layout and permissions).  0 or the first -errno. */
int dsd_disk_nodes(struct xsc *c, unsigned domid, const struct xlcfg *cfg);

/* Removes /local/domain/0/backend/vbd/<domid>. */
void dsd_disk_nodes_rm(struct xsc *c, unsigned domid);

/* One device directory in xenstore, written as libxl does (dsd_disk.c,
 * dsd_vif.c): dsd_devdir_open makes dir, owned by domain owner and readable
 * by reader; each dsd_devdir_node writes one node under it with the same
 * permissions (value NULL: a directory).  The first error is kept in rc
 * (logged); later nodes are still tried. */
struct dsd_devdir {
    struct xsc *c;
    int rc;
    char dir[96];
    char perms[2][16];
};
void dsd_devdir_open(struct dsd_devdir *n, const char *dir, unsigned owner,
                     unsigned reader);
void dsd_devdir_node(struct dsd_devdir *n, const char *rel, const char *value);

#endif
