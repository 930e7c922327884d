/* domusd's device kinds: the one interface over its disks (dsd_disk.h) and
 * vifs (dsd_vif.h), so that hot-plug, domus-vm's command line and the
 * xenstore nodes walk a table instead of pairing dsd_disk_* with dsd_vif_*
 * (src/toolstack/dsd_dev.c).  Each op is the kind's own function (see its
 * header for the contract) or a thin adapter to it. */
#ifndef DOMUS_DSD_DEV_H
#define DOMUS_DSD_DEV_H

#include "domus/xlcfg.h"
#include "domus/xsclient.h"

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

struct dsd_dev_kind {
    const char *name;       /* xenstore's and domus-vm's kind: "vbd", "vif" */
    const char *noun;       /* in messages: "disk", "vif" */
    const char *cli_prefix; /* the CLI's commands: "block-", "network-" */
    const char *vm_opt;     /* domus-vm's option: "--disk", "--vif" */
    const char *which_help; /* what names one at detach */
    unsigned max;           /* in one domain's configuration */
    /* Checks spec against cfg's devices and appends it (hot-plug); relative
     * paths against cwd (may be NULL); 0 or -errno with err. */
    int (*add)(struct xlcfg *cfg, const char *spec, const char *cwd, char *err,
               size_t errlen);
    unsigned (*count)(const struct xlcfg *cfg);
    const char *(*spec)(const struct xlcfg *cfg, unsigned i);
    /* domus-vm's argument (and attach spec) for device i. */
    int (*arg)(const struct xlcfg *cfg, unsigned i, char *buf, size_t len);
    int (*nodes)(struct xsc *c, unsigned domid, const struct xlcfg *cfg);
    int (*nodes_one)(struct xsc *c, unsigned domid, const struct xlcfg *cfg, unsigned i);
    void (*nodes_rm)(struct xsc *c, unsigned domid);
    /* Index of the device named by which (and its devid), -ENOENT, -EINVAL. */
    int (*find)(const struct xlcfg *cfg, const char *which, uint32_t *devid);
    /* Index of the device with devid, or -ENOENT. */
    int (*find_devid)(const struct xlcfg *cfg, uint32_t devid);
    void (*remove)(struct xlcfg *cfg, unsigned i);
    /* "disk xvdb", "vif 1": the device in log lines and replies. */
    void (*describe)(const struct xlcfg *cfg, uint32_t devid, char *buf, size_t len);
    /* The kind's own columns of a block-list / network-list row, read from
     * the front end's directory fdir. */
    void (*list_row)(struct xsc *c, json_object *o, const char *fdir, unsigned domid);
};

extern const struct dsd_dev_kind dsd_kind_vbd, dsd_kind_vif;
/* Both, NULL-terminated, in the order domus-vm gets them. */
extern const struct dsd_dev_kind *const dsd_dev_kinds[];

/* <dir>/<rel> as an integer, -1 when absent or not a number. */
long long dsd_xs_num(struct xsc *c, const char *dir, const char *rel);
/* <dir>/<rel> as o's string member key ("" when absent). */
void dsd_xs_str(struct xsc *c, json_object *o, const char *dir, const char *rel,
                const char *key);

#endif
