/* domusd's save and restore (xl save / xl restore): the guest is asked to
 * suspend through xenstore, its domus-vm writes the image, and the domain
 * is destroyed (or left running: a checkpoint); a restore reads the image's
 * header here and starts a domus-vm that loads the rest (domusd.h). */
#include "domus/domusd.h"
#include "domus/saveimg.h"
#include "domus/util.h"
#include "domus/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The image's header config: the domain's xl.cfg text and where it came
 * from (a restore creates the domain from it). */
char *dsd_image_config(const struct dsd_dom *dom, const char *path, const char *text)
{
    json_object *o = json_object_new_object();
    char *s;

    json_object_object_add(o, "name", json_object_new_string(dom->cfg.name));
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "text", json_object_new_string(text));
    json_object_object_add(o, "memory_mib",
                           json_object_new_int64((int64_t)dom->cfg.memory_mb));
    json_object_object_add(o, "maxmem_mib",
                           json_object_new_int64((int64_t)dom->cfg.maxmem_mb));
    s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

/* Opens the destination: created if missing (then *created), truncated if
 * there, as xl does. */
int dsd_can_suspend(const struct dsd *d, const struct dsd_dom *dom, char *err,
                    size_t errlen)
{
    if (dom->state != DS_RUNNING) {
        dfmt(err, errlen, "domain '%s' is not running (%s)", dom->cfg.name,
             dsd_state_name(dom->state));
        return -EINVAL;
    }
    if (!d->xs.enabled || !dom->xs_up) {
        dfmt(err, errlen, "domain '%s' has no xenstore connection to ask it to suspend",
             dom->cfg.name);
        return -EOPNOTSUPP;
    }
    return 0;
}

static int open_dest(const char *path, bool *created, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST)
        fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        dfmt(err, errlen, "cannot create '%s': %s", path, strerror(errno));
    return fd < 0 ? -errno : fd;
}

static const char *after_name(const struct dsd_save_opts *o)
{
    return o->pause ? "pause" : o->checkpoint ? "resume" : "destroy";
}

/* The numbers domus-vm gave, for the CLI's summary: a later call's
 * non-zero ones replace an earlier call's (finish's totals). */
static void copy_stats(json_object *reply, json_object *stats)
{
    json_object_object_foreach(reply, k, val)
    {
        if (!strcmp(k, "ok") || (json_object_get_int64(val) == 0 &&
                                 json_object_object_get_ex(stats, k, NULL)))
            continue;
        json_object_object_add(stats, k, json_object_get(val));
    }
}

int dsd_vm_call(const struct dsd_dom *dom, json_object *req, const int *fds,
                unsigned nfds, json_object *stats, int timeout_ms, char *err,
                size_t errlen)
{
    json_object *reply = NULL;
    const char *why;
    int rc = vmctl_call_with(dom->control_sock, req, fds, nfds, &reply, NULL, NULL,
                             timeout_ms);

    json_object_put(req);
    if (rc)
        dfmt(err, errlen, "control socket: %s", strerror(-rc));
    else if (!vmctl_ok(reply, &why)) {
        dfmt(err, errlen, "%s", why);
        rc = -EREMOTEIO;
    }
    if (!rc && stats)
        copy_stats(reply, stats);
    json_object_put(reply);
    return rc;
}

/* The save request to domus-vm, carrying the image's fd. */
static int vm_save(const struct dsd_dom *dom, int fd, const char *config,
                   const struct dsd_save_opts *o, char *err, size_t errlen)
{
    json_object *req = vmctl_req("save");

    json_object_object_add(req, "config", json_object_new_string(config));
    json_object_object_add(req, "after", json_object_new_string(after_name(o)));
    json_object_object_add(req, "timeout_ms",
                           json_object_new_int64(DSD_SUSPEND_TIMEOUT_MS));
    return dsd_vm_call(dom, req, &fd, 1, NULL,
                       DSD_SUSPEND_TIMEOUT_MS + DSD_SAVE_WRITE_TIMEOUT_MS, err, errlen);
}

int dsd_save(struct dsd *d, struct dsd_dom *dom, const struct dsd_save_opts *o, char *err,
             size_t errlen)
{
    const char *text = o->cfg_text ? o->cfg_text : dom->cfg_text;
    const char *cpath = o->cfg_text ? o->cfg_path : dom->cfg_path;
    char *config = NULL;
    bool created = false;
    int fd = -1, rc;

    if ((rc = dsd_can_suspend(d, dom, err, errlen)) < 0)
        return rc;
    if (!(config =
              dsd_image_config(dom, cpath[0] ? cpath : "config", text ? text : ""))) {
        dfmt(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if ((fd = open_dest(o->path, &created, err, errlen)) < 0) {
        rc = fd;
        goto out;
    }
    if ((rc = dsd_xs_shutdown(d, dom, "suspend")) < 0) {
        dfmt(err, errlen, "xenstore: %s", strerror(-rc));
        goto out;
    }
    dinfo("domain %u (%s): saving to %s", dom->domid, dom->cfg.name, o->path);
    rc = vm_save(dom, fd, config, o, err, errlen);
    if (rc)
        dsd_xs_shutdown(d, dom, ""); /* a guest that answers late is cancelled */
out:
    if (fd >= 0)
        close(fd);
    if (rc && created)
        unlink(o->path);
    free(config);
    return rc;
}

void dsd_image_cfg_free(struct dsd_image_cfg *ic)
{
    free(ic->path);
    free(ic->text);
    *ic = (struct dsd_image_cfg){0};
}

/* The header's memory sizes: both or neither, each a config could give. */
static int image_memory(json_object *o, struct dsd_image_cfg *ic, const char *path,
                        char *err, size_t errlen)
{
    bool has_mem = json_object_object_get_ex(o, "memory_mib", NULL),
         has_max = json_object_object_get_ex(o, "maxmem_mib", NULL);

    if (!has_mem && !has_max)
        return 0;
    if (vmctl_get_u64(o, "memory_mib", XLCFG_MEMORY_MAX_MB, &ic->memory_mib) < 0 ||
        vmctl_get_u64(o, "maxmem_mib", XLCFG_MEMORY_MAX_MB, &ic->maxmem_mib) < 0 ||
        ic->memory_mib < XLCFG_MEMORY_MIN_MB || ic->maxmem_mib < ic->memory_mib) {
        dfmt(err, errlen, "%s: the image's memory (memory_mib, maxmem_mib) is not valid",
             path);
        return -EINVAL;
    }
    return 0;
}

int dsd_image_cfg_parse(const char *config, const char *path, struct dsd_image_cfg *ic,
                        char *err, size_t errlen)
{
    json_object *o = json_tokener_parse(config);
    const char *p = vmctl_get_str(o, "path"), *t = vmctl_get_str(o, "text");
    int rc = 0;

    *ic = (struct dsd_image_cfg){0};
    if (!p || !t) {
        dfmt(err, errlen, "%s: the image's config has no domain configuration", path);
        rc = -EINVAL;
        goto out;
    }
    rc = image_memory(o, ic, path, err, errlen);
    if (rc)
        goto out;
    ic->path = strdup(p);
    ic->text = strdup(t);
    if (!ic->path || !ic->text) {
        dsd_image_cfg_free(ic);
        dfmt(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
out:
    json_object_put(o);
    return rc;
}

int dsd_restore_config(const char *path, struct dsd_image_cfg *ic, char *err,
                       size_t errlen)
{
    struct simg_reader r;
    char *config = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

    *ic = (struct dsd_image_cfg){0};
    if (fd < 0) {
        dfmt(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    simg_reader_init_fd(&r, fd);
    rc = simg_read_header(&r, &config);
    if (rc)
        dfmt(err, errlen, "%s: %s", path, r.err);
    else
        rc = dsd_image_cfg_parse(config, path, ic, err, errlen);
    free(config);
    simg_reader_free(&r);
    close(fd);
    return rc;
}
