/* domusd: the domain's virtual network interfaces (xl.cfg `vif`, xlvif.h).
 *
 * At create the vif specs are parsed and checked, vif i gets devid i unless
 * its spec names one (as xl does), missing macs are generated in Xen's
 * 00:16:3e prefix, and each spec is rewritten in canonical form with its
 * devid and mac: the domain keeps both across its reboots.  domus-vm gets
 * one --vif per interface (vmproc.h); before the domain is introduced,
 * domusd writes each interface's xenstore nodes as libxl does, back end
 * first:
 *   /local/domain/0/backend/vif/<N>/<devid>/       owner 0, N reads
 *       frontend, frontend-id, online (1), script (if given), vifname and
 *       ip (if given), mac, bridge, handle, type (vif), mtu, then state (1)
 *       last: the back end in domus-vm waits for that;
 *   /local/domain/<N>/device/vif/<devid>/          owner N, Domain 0 reads
 *       backend, backend-id (0), handle, mac, mtu, then state (1) last: a
 *       running guest (hot-plug) probes the device when it appears.
 * Hot-plug (network-attach) checks and writes one vif the same way
 * (dsd_vif_add: the next devid after the highest, as libxl; distinct mac). */
#include "domus/domusd.h"
#include "domus/dsd_disk.h"
#include "domus/dsd_vif.h"
#include "domus/util.h"
#include "domus/xlvif.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when vif i's mac is also another's. */
static bool mac_clash(const struct xlvif *v, unsigned n, unsigned i)
{
    for (unsigned j = 0; j < n; j++)
        if (j != i && !memcmp(v[j].mac, v[i].mac, 6))
            return true;
    return false;
}

static int distinct(struct xlvif *v, unsigned i, char *err, size_t errlen)
{
    char mac[XLVIF_MAC_STR];

    for (unsigned j = 0; j < i; j++) {
        if (v[j].devid == v[i].devid) {
            dfmt(err, errlen, "vif %u: devid %u is already used by vif %u", i, v[i].devid,
                 j);
            return -EEXIST;
        }
        if (!v[j].mac_generated && !v[i].mac_generated &&
            !memcmp(v[j].mac, v[i].mac, 6)) {
            xlvif_mac_str(v[i].mac, mac);
            dfmt(err, errlen, "vif %u: mac %s is already used by vif %u", i, mac, j);
            return -EEXIST;
        }
    }
    return 0;
}

int dsd_vif_check(bool xenstore, struct xlcfg *cfg, char *err, size_t errlen)
{
    struct xlvif *v = calloc(XLCFG_MAX_VIFS, sizeof(*v));
    unsigned n = cfg->n_vifs < XLCFG_MAX_VIFS ? cfg->n_vifs : XLCFG_MAX_VIFS;
    int rc = 0;

    if (!v)
        return -ENOMEM;
    if (n && !xenstore) {
        dfmt(err, errlen, "vifs need xenstore (domusd runs without it)");
        rc = -EOPNOTSUPP;
    }
    for (unsigned i = 0; !rc && i < n; i++) {
        rc = xlvif_parse(cfg->vifs[i], i, NULL, &v[i], err, errlen);
        if (rc)
            break;
        if (!v[i].devid_set)
            v[i].devid = i;
        v[i].devid_set = true;
        rc = distinct(v, i, err, errlen);
    }
    /* A generated mac that clashes (one in 16 million) is drawn again. */
    for (unsigned i = 0; !rc && i < n; i++) {
        for (int tries = 0; !rc && v[i].mac_generated && mac_clash(v, n, i); tries++)
            rc = tries < 16 ? xlvif_gen_mac(v[i].mac, NULL) : -EEXIST;
        if (rc)
            dfmt(err, errlen, "vif %u: cannot generate a mac: %s", i, strerror(-rc));
    }
    for (unsigned i = 0; !rc && i < n; i++) {
        if (xlvif_format(&v[i], cfg->vifs[i], sizeof(cfg->vifs[i])) < 0) {
            dfmt(err, errlen, "vif %u: spec too long in canonical form", i);
            rc = -ENAMETOOLONG;
        }
    }
    free(v);
    return rc;
}

/* A canonical spec (checked: devid and mac in it) of cfg's vif i. */
static int parse_checked(const struct xlcfg *cfg, unsigned i, struct xlvif *v)
{
    char err[256];
    int rc = xlvif_parse(cfg->vifs[i], i, NULL, v, err, sizeof(err));

    return rc ? rc : v->mac_generated || !v->devid_set ? -EINVAL : 0;
}

int dsd_vif_add(bool xenstore, struct xlcfg *cfg, const char *spec, char *err,
                size_t errlen)
{
    unsigned n = cfg->n_vifs;
    struct xlvif v, o;
    char mac[XLVIF_MAC_STR];
    uint32_t next = 0;
    int rc = 0;

    if (!xenstore) {
        dfmt(err, errlen, "vifs need xenstore (domusd runs without it)");
        return -EOPNOTSUPP;
    }
    if (n >= XLCFG_MAX_VIFS) {
        dfmt(err, errlen, "the domain has %u vifs already (at most %u)", n,
             XLCFG_MAX_VIFS);
        return -ENOSPC;
    }
    rc = xlvif_parse(spec, n, NULL, &v, err, errlen);
    if (rc)
        return rc;
    for (unsigned j = 0; j < n; j++) /* as libxl: the next devid after the highest */
        if (!parse_checked(cfg, j, &o) && o.devid >= next)
            next = o.devid + 1;
    if (!v.devid_set)
        v.devid = next;
    v.devid_set = true;
    for (int tries = 0; !rc && tries < 16; tries++) {
        bool clash = false;
        for (unsigned j = 0; !rc && j < n; j++) {
            if (parse_checked(cfg, j, &o))
                continue;
            if (o.devid == v.devid) {
                dfmt(err, errlen, "vif %u: devid %u is already used by vif %u", n,
                     v.devid, j);
                rc = -EEXIST;
            } else if (!memcmp(o.mac, v.mac, 6)) {
                clash = true;
                if (!v.mac_generated) {
                    xlvif_mac_str(v.mac, mac);
                    dfmt(err, errlen, "vif %u: mac %s is already used by vif %u", n, mac,
                         j);
                    rc = -EEXIST;
                }
            }
        }
        if (rc || !clash)
            break;
        rc = tries < 15 ? xlvif_gen_mac(v.mac, NULL) : -EEXIST; /* a generated clash */
        if (rc)
            dfmt(err, errlen, "vif %u: cannot generate a mac: %s", n, strerror(-rc));
    }
    if (!rc && xlvif_format(&v, cfg->vifs[n], sizeof(cfg->vifs[n])) < 0) {
        dfmt(err, errlen, "vif %u: spec too long in canonical form", n);
        rc = -ENAMETOOLONG;
    }
    if (rc)
        cfg->vifs[n][0] = '\0';
    else
        cfg->n_vifs = n + 1;
    return rc;
}

int dsd_vif_find(const struct xlcfg *cfg, const char *which, uint32_t *devid)
{
    unsigned m[6];
    uint8_t mac[6];
    char *end;
    bool by_mac = false;
    unsigned long id = 0;
    struct xlvif v;
    int n = 0;

    if (sscanf(which, "%2x:%2x:%2x:%2x:%2x:%2x%n", &m[0], &m[1], &m[2], &m[3], &m[4],
               &m[5], &n) == 6 &&
        n == 17 && !which[n]) {
        by_mac = true;
        for (int k = 0; k < 6; k++)
            mac[k] = (uint8_t)m[k];
    } else {
        errno = 0;
        id = strtoul(which, &end, 10);
        if (!*which || *which < '0' || *which > '9' || *end || errno || id > UINT32_MAX)
            return -EINVAL;
    }
    for (unsigned i = 0; i < cfg->n_vifs && i < XLCFG_MAX_VIFS; i++) {
        if (parse_checked(cfg, i, &v))
            continue;
        if (by_mac ? !memcmp(v.mac, mac, 6) : v.devid == id) {
            if (devid)
                *devid = v.devid;
            return (int)i;
        }
    }
    return -ENOENT;
}

void dsd_vif_remove(struct xlcfg *cfg, unsigned i)
{
    dsd_spec_remove(cfg->vifs, &cfg->n_vifs, XLCFG_MAX_VIFS, i);
}

/* Vif i of a checked cfg (its devid and mac are in its spec). */
static int checked_vif(const struct xlcfg *cfg, unsigned i, struct xlvif *v)
{
    char err[256] = "";
    int rc = xlvif_parse(cfg->vifs[i], i, NULL, v, err, sizeof(err));

    if (!rc && (v->mac_generated || !v->devid_set))
        rc = -EINVAL; /* not through dsd_vif_check: a mac drawn here would differ */
    if (rc)
        dwarn("vif %u: %s", i, rc == -EINVAL && !*err ? "not checked" : err);
    return rc;
}

int dsd_vif_arg(const struct xlcfg *cfg, unsigned i, char *buf, size_t len)
{
    char mac[XLVIF_MAC_STR];
    struct xlvif v;
    int rc = i < cfg->n_vifs && i < XLCFG_MAX_VIFS ? checked_vif(cfg, i, &v) : -EINVAL;

    if (rc)
        return rc;
    xlvif_mac_str(v.mac, mac);
    if ((size_t)snprintf(buf, len, "%u,%s,%s,%u", v.devid, mac, v.bridge, v.mtu) >= len)
        return -ENAMETOOLONG;
    return 0;
}

/* ---- xenstore nodes ---- */

static void frontend_nodes(struct dsd_devdir *n, unsigned domid, const struct xlvif *v,
                           const char *fpath, const char *bpath)
{
    char mac[XLVIF_MAC_STR], num[16];

    xlvif_mac_str(v->mac, mac);
    dsd_devdir_open(n, fpath, domid, 0);
    dsd_devdir_node(n, "backend", bpath);
    dsd_devdir_node(n, "backend-id", "0");
    snprintf(num, sizeof(num), "%u", v->devid);
    dsd_devdir_node(n, "handle", num);
    dsd_devdir_node(n, "mac", mac);
    snprintf(num, sizeof(num), "%u", v->mtu);
    dsd_devdir_node(n, "mtu", num);
    dsd_devdir_node(n, "state", "1"); /* last: a running guest probes on it */
}

static void backend_nodes(struct dsd_devdir *n, unsigned domid, const struct xlvif *v,
                          const char *bpath, const char *fpath)
{
    char mac[XLVIF_MAC_STR], num[16];

    xlvif_mac_str(v->mac, mac);
    dsd_devdir_open(n, bpath, 0, domid);
    dsd_devdir_node(n, "frontend", fpath);
    snprintf(num, sizeof(num), "%u", domid);
    dsd_devdir_node(n, "frontend-id", num);
    dsd_devdir_node(n, "online", "1");
    if (*v->script)
        dsd_devdir_node(n, "script", v->script);
    if (*v->vifname)
        dsd_devdir_node(n, "vifname", v->vifname);
    if (*v->ip)
        dsd_devdir_node(n, "ip", v->ip);
    dsd_devdir_node(n, "mac", mac);
    dsd_devdir_node(n, "bridge", v->bridge);
    snprintf(num, sizeof(num), "%u", v->devid);
    dsd_devdir_node(n, "handle", num);
    dsd_devdir_node(n, "type", "vif");
    snprintf(num, sizeof(num), "%u", v->mtu);
    dsd_devdir_node(n, "mtu", num);
    dsd_devdir_node(n, "state", "1");
}

int dsd_vif_nodes_one(struct xsc *c, unsigned domid, const struct xlcfg *cfg, unsigned i)
{
    struct dsd_devdir n = {.c = c};
    char fpath[DSD_DEV_PATH_MAX], bpath[DSD_DEV_PATH_MAX];
    struct xlvif v;

    n.rc = i < cfg->n_vifs && i < XLCFG_MAX_VIFS ? checked_vif(cfg, i, &v) : -EINVAL;
    if (n.rc)
        return n.rc;
    dsd_dev_paths("vif", domid, v.devid, fpath, bpath);
    backend_nodes(&n, domid, &v, bpath, fpath);
    frontend_nodes(&n, domid, &v, fpath, bpath);
    return n.rc;
}

int dsd_vif_nodes(struct xsc *c, unsigned domid, const struct xlcfg *cfg)
{
    int rc = 0;

    for (unsigned i = 0; !rc && i < cfg->n_vifs && i < XLCFG_MAX_VIFS; i++)
        rc = dsd_vif_nodes_one(c, domid, cfg, i);
    return rc;
}

void dsd_vif_nodes_rm(struct xsc *c, unsigned domid)
{
    char path[64];

    snprintf(path, sizeof(path), "/local/domain/0/backend/vif/%u", domid);
    xsc_rm(c, path); /* -ENOENT without vifs: fine */
}
