/* The domain process's device table: one kind per back end (console,
 * xenstore ring, vbd, vif) behind the same ops, and the devices running
 * (vm.h). */
#include "domus/console.h"
#include "domus/storering.h"
#include "domus/util.h"
#include "domus/vm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Every kind's quiesce, resume, save and load until the back ends have them
 * (vm.h). */
static int not_yet(void *be)
{
    (void)be;
    return -ENOTSUP;
}

static int not_yet_fd(void *be, int fd)
{
    (void)be;
    (void)fd;
    return -ENOTSUP;
}

/* ---- console ---- */

static int console_kind_start(struct domain *d, const char *xs_path,
                              const union vm_dev_cfg *cfg, void **be, char *err,
                              size_t errlen)
{
    struct console_be *c = NULL;
    (void)xs_path;
    int rc =
        console_start(d, cfg->console.log_path, cfg->console.sock_path, &c, err, errlen);
    *be = c;
    return rc;
}

static void console_kind_stop(void *be)
{
    console_stop(be);
}

const struct vm_dev_kind vm_kind_console = {
    .name = "console",
    .max = 1,
    .start = console_kind_start,
    .stop = console_kind_stop,
    .quiesce = not_yet,
    .resume = not_yet,
    .save = not_yet_fd,
    .load = not_yet_fd,
};

/* ---- xenstore ring ---- */

static int xs_ring_kind_start(struct domain *d, const char *xs_path,
                              const union vm_dev_cfg *cfg, void **be, char *err,
                              size_t errlen)
{
    struct store_ring *r = NULL;
    int rc = store_ring_start(d, &r, err, errlen);
    (void)xs_path;
    (void)cfg;
    *be = r;
    return rc;
}

static void xs_ring_kind_stop(void *be)
{
    store_ring_stop(be);
}

const struct vm_dev_kind vm_kind_xs_ring = {
    .name = "xs-ring",
    .max = 1,
    .start = xs_ring_kind_start,
    .stop = xs_ring_kind_stop,
    .quiesce = not_yet,
    .resume = not_yet,
    .save = not_yet_fd,
    .load = not_yet_fd,
};

/* ---- vbd ---- */

/* "DEVID:r|w:PATH" (the path may hold colons; it points into s). */
static int vbd_parse(char *s, union vm_dev_cfg *cfg, uint32_t *devid)
{
    char *m = strchr(s, ':');
    uint64_t id;

    if (!m || (m[1] != 'r' && m[1] != 'w') || m[2] != ':' || !m[3])
        return -EINVAL;
    *m = '\0';
    if (vm_parse_uint(s, UINT32_MAX, &id) || !id) {
        *m = ':';
        return -EINVAL;
    }
    cfg->vbd = (struct blkback_cfg){(uint32_t)id, m[1] == 'w', m + 3, NULL};
    *devid = (uint32_t)id;
    return 0;
}

static int vbd_start(struct domain *d, const char *xs_path, const union vm_dev_cfg *cfg,
                     void **be, char *err, size_t errlen)
{
    struct blkback_cfg c = cfg->vbd;
    struct blkback *b = NULL;
    int rc;

    c.xs_path = xs_path;
    rc = blkback_start(d, &c, &b, err, errlen);
    *be = rc < 0 ? NULL : b;
    return rc;
}

static void vbd_stop(void *be)
{
    blkback_stop(be);
}

static int vbd_quiesce(void *be)
{
    return blkback_quiesce(be);
}

static int vbd_resume(void *be)
{
    blkback_resume(be);
    return 0;
}

const struct vm_dev_kind vm_kind_vbd = {
    .name = "vbd",
    .max = VM_MAX_DISKS,
    .parse = vbd_parse,
    .start = vbd_start,
    .stop = vbd_stop,
    .quiesce = vbd_quiesce,
    .resume = vbd_resume,
    .save = not_yet_fd,
    .load = not_yet_fd,
};

/* ---- vif ---- */

/* "DEVID,MAC,BRIDGE[,MTU]" (BRIDGE: an interface name, < 16). */
static int vif_parse(char *s, union vm_dev_cfg *cfg, uint32_t *devid)
{
    struct netback_cfg *v = &cfg->vif;
    unsigned id, mtu = 1500, m[6];
    int end = 0, end2 = 0;

    *v = (struct netback_cfg){0};
    if (sscanf(s, "%u,%x:%x:%x:%x:%x:%x,%15[^,]%n", &id, &m[0], &m[1], &m[2], &m[3],
               &m[4], &m[5], v->bridge, &end) != 8 ||
        (s[end] == ',' && sscanf(s + end, ",%u%n", &mtu, &end2) != 1) || s[end + end2] ||
        mtu < 68 || mtu > 65535)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        if (m[i] > 255)
            return -EINVAL;
        v->mac[i] = (uint8_t)m[i];
    }
    v->devid = id;
    v->mtu = mtu;
    *devid = id;
    return 0;
}

static int vif_start(struct domain *d, const char *xs_path, const union vm_dev_cfg *cfg,
                     void **be, char *err, size_t errlen)
{
    struct netback_cfg c = cfg->vif;
    struct netback *nb = NULL;
    int rc;

    c.xs_path = xs_path;
    rc = netback_start(d, &c, &nb, err, errlen);
    *be = rc < 0 ? NULL : nb;
    return rc;
}

static void vif_stop(void *be)
{
    netback_stop(be);
}

static int vif_quiesce(void *be)
{
    return netback_quiesce(be);
}

static int vif_resume(void *be)
{
    netback_resume(be);
    return 0;
}

const struct vm_dev_kind vm_kind_vif = {
    .name = "vif",
    .max = VM_MAX_VIFS,
    .parse = vif_parse,
    .start = vif_start,
    .stop = vif_stop,
    .quiesce = vif_quiesce,
    .resume = vif_resume,
    .save = not_yet_fd,
    .load = not_yet_fd,
};

const struct vm_dev_kind *const vm_dev_kinds[] = {&vm_kind_console, &vm_kind_xs_ring,
                                                  &vm_kind_vbd, &vm_kind_vif, NULL};

const struct vm_dev_kind *vm_dev_kind_find(const struct vm_dev_kind *const *kinds,
                                           const char *name)
{
    for (; name && *kinds; kinds++)
        if (!strcmp((*kinds)->name, name))
            return *kinds;
    return NULL;
}

/* ---- the devices running ---- */

struct vm_dev *vm_dev_find(struct vm *vm, const struct vm_dev_kind *k, uint32_t devid)
{
    for (unsigned i = 0; i < VM_MAX_DEVS; i++)
        if (vm->devs[i].kind == k && vm->devs[i].devid == devid)
            return &vm->devs[i];
    return NULL;
}

unsigned vm_dev_count(const struct vm *vm, const struct vm_dev_kind *k)
{
    unsigned n = 0;

    for (unsigned i = 0; i < VM_MAX_DEVS; i++)
        n += vm->devs[i].kind == k;
    return n;
}

static struct vm_dev *free_slot(struct vm *vm)
{
    for (unsigned i = 0; i < VM_MAX_DEVS; i++)
        if (!vm->devs[i].kind)
            return &vm->devs[i];
    return NULL;
}

int vm_dev_add(struct vm *vm, const struct vm_dev_kind *k, const union vm_dev_cfg *cfg,
               uint32_t devid, char *err, size_t errlen)
{
    struct vm_dev *slot;
    void *be = NULL;
    int rc;

    if (vm_dev_find(vm, k, devid)) {
        dfmt(err, errlen, "%s %u is already attached", k->name, (unsigned)devid);
        return -EEXIST;
    }
    if (vm_dev_count(vm, k) >= k->max || !(slot = free_slot(vm))) {
        dfmt(err, errlen, "at most %u %s devices", k->max, k->name);
        return -ENOSPC;
    }
    rc = k->start(&vm->dom, vm->xs_path, cfg, &be, err, errlen);
    if (rc < 0)
        return rc;
    *slot = (struct vm_dev){k, devid, be, ++vm->dev_seq};
    return 0;
}

static void dev_stop(struct vm_dev *dev)
{
    dev->kind->stop(dev->be);
    *dev = (struct vm_dev){0};
}

int vm_dev_remove(struct vm *vm, const struct vm_dev_kind *k, uint32_t devid)
{
    struct vm_dev *dev = vm_dev_find(vm, k, devid);

    if (!dev)
        return -ENOENT;
    dev_stop(dev);
    return 0;
}

int vm_dev_quiesce_all(struct vm *vm)
{
    int rc = 0;

    for (unsigned i = 0; i < VM_MAX_DEVS; i++) {
        const struct vm_dev *v = &vm->devs[i];
        int r = v->kind ? v->kind->quiesce(v->be) : 0;
        if (r && r != -ENOTSUP) {
            dwarn("dom%u %s %u: quiesce: %s", vm->dom.domid, v->kind->name, v->devid,
                  strerror(-r));
            rc = rc ?: r;
        }
    }
    return rc;
}

void vm_dev_resume_all(struct vm *vm)
{
    for (unsigned i = 0; i < VM_MAX_DEVS; i++)
        if (vm->devs[i].kind)
            vm->devs[i].kind->resume(vm->devs[i].be);
}

void vm_dev_stop_all(struct vm *vm)
{
    for (;;) {
        struct vm_dev *last = NULL;
        for (unsigned i = 0; i < VM_MAX_DEVS; i++)
            if (vm->devs[i].kind && (!last || vm->devs[i].seq > last->seq))
                last = &vm->devs[i];
        if (!last)
            return;
        dev_stop(last);
    }
}
