/* domusd's handling of a domain's virtual network interfaces
 * (src/toolstack/dsd_vif.c). */
#ifndef DOMUS_DSD_VIF_H
#define DOMUS_DSD_VIF_H

#include "domus/xlcfg.h"
#include "domus/xsclient.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At create: parses cfg's vif specs, gives vif i devid i unless its spec
 * names one (devids and macs must be distinct), generates the missing macs
 * and rewrites the specs in canonical form (xlvif_format, devid and mac
 * included), so that the domain keeps them across its reboots.  Vifs need
 * xenstore.  0 or -errno with the vif named in err. */
int dsd_vif_check(bool xenstore, struct xlcfg *cfg, char *err, size_t errlen);

/* Hot-plug (network-attach): parses spec, gives it the next devid after
 * the highest of cfg's vifs unless it names one, checks that its devid and
 * mac are not another vif's (a generated mac that clashes is drawn again)
 * and appends it to cfg in canonical form.  -ENOSPC when cfg has
 * XLCFG_MAX_VIFS vifs.  0 or -errno with err; cfg unchanged on error. */
int dsd_vif_add(bool xenstore, struct xlcfg *cfg, const char *spec, char *err,
                size_t errlen);

/* Index of cfg's vif named by which: its devid ("1") or its mac
 * ("00:16:3e:00:00:01", any case); *devid its devid.  -ENOENT when cfg has
 * none, -EINVAL when which is neither. */
int dsd_vif_find(const struct xlcfg *cfg, const char *which, uint32_t *devid);

/* Drops vif i from cfg (the later ones move down). */
void dsd_vif_remove(struct xlcfg *cfg, unsigned i);

/* domus-vm's --vif argument for vif i: "DEVID,MAC,BRIDGE,MTU"
 * ("0,00:16:3e:12:34:56,xenbr0,1500").  0 or -errno. */
int dsd_vif_arg(const struct xlcfg *cfg, unsigned i, char *buf, size_t len);

/* Writes every vif's front and back end nodes for domain domid (libxl's
 * layout and permissions, back end state last).  0 or the first -errno. */
int dsd_vif_nodes(struct xsc *c, unsigned domid, const struct xlcfg *cfg);

/* The same for vif i only (back end first, each state last). */
int dsd_vif_nodes_one(struct xsc *c, unsigned domid, const struct xlcfg *cfg, unsigned i);

/* Removes /local/domain/0/backend/vif/<domid>. */
void dsd_vif_nodes_rm(struct xsc *c, unsigned domid);

#endif
