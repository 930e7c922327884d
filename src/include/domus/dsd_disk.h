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

#endif
