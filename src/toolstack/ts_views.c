/* xl's views of a domain's configuration (list -l) and of uptimes (see
 * toolstack.h). */
#include "domus/toolstack.h"
#include "domus/util.h"
#include "domus/xldisk.h"
#include "domus/xlvif.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_str(json_object *o, const char *key, const char *v)
{
    json_object_object_add(o, key, json_object_new_string(v));
}

static void add_int(json_object *o, const char *key, int64_t v)
{
    json_object_object_add(o, key, json_object_new_int64(v));
}

static json_object *c_info_json(const struct xlcfg *c)
{
    json_object *o = json_object_new_object();

    add_str(o, "type", c->type);
    add_str(o, "name", c->name);
    if (c->uuid[0])
        add_str(o, "uuid", c->uuid);
    return o;
}

/* libxl's bitmap of the vCPUs online at boot: their numbers. */
static json_object *avail_vcpus_json(unsigned n)
{
    json_object *a = json_object_new_array();

    for (unsigned i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_int((int)i));
    return a;
}

static json_object *b_info_json(const struct xlcfg *c)
{
    json_object *o = json_object_new_object();

    add_int(o, "max_vcpus", c->maxvcpus);
    json_object_object_add(o, "avail_vcpus", avail_vcpus_json(c->vcpus));
    add_int(o, "max_memkb", (int64_t)c->maxmem_mb * 1024);
    add_int(o, "target_memkb", (int64_t)c->memory_mb * 1024);
    add_str(o, "kernel", c->kernel);
    if (c->cmdline[0])
        add_str(o, "cmdline", c->cmdline);
    if (c->ramdisk[0])
        add_str(o, "ramdisk", c->ramdisk);
    if (c->cpu_weight != 256 || c->cap) { /* libxl leaves defaults out */
        json_object *s = json_object_new_object();
        add_int(s, "weight", c->cpu_weight);
        add_int(s, "cap", c->cap);
        json_object_object_add(o, "sched_params", s);
    }
    json_object_object_add(o, "type.pvh", json_object_new_object());
    return o;
}

static json_object *disk_json(const char *spec, unsigned i)
{
    struct xldisk *dk = malloc(sizeof(*dk));
    json_object *o = json_object_new_object();
    char err[256];

    if (!dk || xldisk_parse(spec, i, dk, err, sizeof(err)) < 0) {
        add_str(o, "spec", spec); /* checked at create: cannot happen */
        free(dk);
        return o;
    }
    add_str(o, "pdev_path", dk->target);
    add_str(o, "vdev", dk->vdev);
    add_str(o, "backend", dk->backendtype);
    add_str(o, "format", "raw");
    add_int(o, "readwrite", dk->readwrite);
    if (dk->cdrom)
        add_int(o, "is_cdrom", 1);
    free(dk);
    return o;
}

static json_object *nic_json(const char *spec, unsigned i)
{
    json_object *o = json_object_new_object();
    struct xlvif v;
    char err[256], mac[18];

    if (xlvif_parse(spec, i, NULL, &v, err, sizeof(err)) < 0) {
        add_str(o, "spec", spec);
        return o;
    }
    add_int(o, "devid", v.devid_set ? v.devid : i);
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", v.mac[0], v.mac[1],
             v.mac[2], v.mac[3], v.mac[4], v.mac[5]);
    if (!v.mac_generated) /* the specs kept carry the mac given at create */
        add_str(o, "mac", mac);
    add_str(o, "bridge", v.bridge);
    if (v.vifname[0])
        add_str(o, "ifname", v.vifname);
    if (v.script[0])
        add_str(o, "script", v.script);
    if (v.ip[0])
        add_str(o, "ip", v.ip);
    if (v.model[0])
        add_str(o, "model", v.model);
    if (v.mtu)
        add_int(o, "mtu", v.mtu);
    add_str(o, "nictype", v.ioemu ? "vif_ioemu" : "vif");
    return o;
}

json_object *ts_domain_config_json(const struct xlcfg *c, unsigned domid)
{
    json_object *o = json_object_new_object(), *cfg = json_object_new_object();
    json_object *disks = json_object_new_array(), *nics = json_object_new_array();

    for (unsigned i = 0; i < c->n_disks && i < XLCFG_MAX_DISKS; i++)
        json_object_array_add(disks, disk_json(c->disks[i], i));
    for (unsigned i = 0; i < c->n_vifs && i < XLCFG_MAX_VIFS; i++)
        json_object_array_add(nics, nic_json(c->vifs[i], i));
    json_object_object_add(cfg, "c_info", c_info_json(c));
    json_object_object_add(cfg, "b_info", b_info_json(c));
    json_object_object_add(cfg, "disks", disks);
    json_object_object_add(cfg, "nics", nics);
    add_str(cfg, "on_poweroff", xlcfg_action_name(c->on_poweroff));
    add_str(cfg, "on_reboot", xlcfg_action_name(c->on_reboot));
    add_str(cfg, "on_crash", xlcfg_action_name(c->on_crash));
    add_int(o, "domid", domid);
    json_object_object_add(o, "config", cfg);
    return o;
}

void ts_uptime_string(unsigned long secs, bool short_mode, char *buf, size_t len)
{
    unsigned long day = secs / 86400, hour = secs / 3600 % 24, min = secs / 60 % 60,
                  sec = secs % 60;
    const char *days = day > 1 ? " days, " : " day, ";
    int n = 0;

    if (day)
        n = snprintf(buf, len, "%lu%s", day, days);
    if (n < 0 || (size_t)n >= len)
        return;
    if (short_mode)
        snprintf(buf + n, len - (size_t)n, "%2lu:%02lu", hour, min);
    else
        snprintf(buf + n, len - (size_t)n, "%2lu:%02lu:%02lu", hour, min, sec);
}
