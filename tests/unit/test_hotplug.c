/* Unit tests of domusd's hot-plug pieces (dsd_disk.h, dsd_vif.h): one
 * disk or vif checked against the domain's others and appended
 * (dsd_disk_add, dsd_vif_add), found by vdev/devid/mac, removed, and its
 * xenstore nodes written and removed alone (against the xenstore core
 * served in a thread on a temporary socket), the other devices' untouched;
 * and the device-kind table over both (dsd_dev.h). */
#include "domus/dsd_dev.h"
#include "domus/dsd_disk.h"
#include "domus/dsd_vif.h"
#include "domus/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "xsd_harness.h"

static char dir[] = "/tmp/test_hotplug_XXXXXX", img[160], img2[160];
static char err[1024];

static bool refused(int rc, int want, const char *msg)
{
    bool good = rc == want && strstr(err, msg);
    if (!good)
        printf("# rc %d '%s' (wanted %d '%s')\n", rc, err, want, msg);
    return good;
}

static void test_disks(void)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    char spec[512];
    uint32_t devid = 0;

    cfg->n_disks = 1;
    snprintf(cfg->disks[0], sizeof(cfg->disks[0]), "%s,raw,xvda,rw", img);
    CHECK("disk add: needs xenstore",
          refused(dsd_disk_add(false, cfg, "x.img,raw,xvdb", dir, err, sizeof(err)),
                  -EOPNOTSUPP, "xenstore") &&
              cfg->n_disks == 1);
    CHECK("disk add: relative target against the cwd, canonical form, appended",
          dsd_disk_add(true, cfg, "two.img,raw,xvdb,ro", dir, err, sizeof(err)) == 0 &&
              cfg->n_disks == 2 && strstr(cfg->disks[1], img2) &&
              !strncmp(cfg->disks[1], "format=raw,vdev=xvdb,access=ro", 30));
    CHECK("disk add: a vdev in use is refused, naming the other disk",
          refused(dsd_disk_add(true, cfg, "two.img,raw,xvda,ro", dir, err, sizeof(err)),
                  -EEXIST, "vdev xvda is already used by disk 0") &&
              cfg->n_disks == 2 && !cfg->disks[2][0]);
    CHECK("disk add: the same number under another name is the same vdev",
          refused(dsd_disk_add(true, cfg, "two.img,raw,51728,ro", dir, err, sizeof(err)),
                  -EEXIST, "already used by disk 1 (xvdb)"));
    snprintf(spec, sizeof(spec), "%s/missing.img,raw,xvdc", dir);
    CHECK("disk add: a missing image",
          refused(dsd_disk_add(true, cfg, spec, dir, err, sizeof(err)), -ENOENT,
                  "disk 2: ") &&
              cfg->n_disks == 2);
    CHECK("disk add: a bad spec",
          refused(dsd_disk_add(true, cfg, "two.img,qcow2,xvdc", dir, err, sizeof(err)),
                  -EINVAL, "qcow2") &&
              cfg->n_disks == 2);
    CHECK("disk find: by vdev",
          dsd_disk_find(cfg, "xvdb", &devid) == 1 && devid == 51728);
    CHECK("disk find: by number",
          dsd_disk_find(cfg, "51712", &devid) == 0 && devid == 51712);
    CHECK("disk find: a vdev it has not", dsd_disk_find(cfg, "xvdz", NULL) == -ENOENT);
    CHECK("disk find: not a vdev", dsd_disk_find(cfg, "eth0", NULL) == -EINVAL &&
                                       dsd_disk_find(cfg, "", NULL) == -EINVAL);
    char vdev[XLDISK_VDEV_MAX] = "";
    CHECK("disk find by devid: names the vdev",
          dsd_disk_find_devid(cfg, 51728, vdev) == 1 && !strcmp(vdev, "xvdb"));
    for (unsigned i = 2; i < XLCFG_MAX_DISKS; i++) {
        char v[256];
        snprintf(v, sizeof(v), "%s,raw,xvd%c,ro", img, 'a' + (int)i);
        dsd_disk_add(true, cfg, v, dir, err, sizeof(err));
    }
    CHECK("disk add: at most XLCFG_MAX_DISKS",
          cfg->n_disks == XLCFG_MAX_DISKS &&
              refused(dsd_disk_add(true, cfg, "two.img,raw,xvdz", dir, err, sizeof(err)),
                      -ENOSPC, "at most"));
    dsd_disk_remove(cfg, 0);
    CHECK("disk remove: the later disks move down",
          cfg->n_disks == XLCFG_MAX_DISKS - 1 && dsd_disk_find(cfg, "xvdb", NULL) == 0 &&
              dsd_disk_find(cfg, "xvda", NULL) == -ENOENT &&
              !cfg->disks[XLCFG_MAX_DISKS - 1][0]);
    dsd_disk_remove(cfg, 99);
    CHECK("disk remove: out of range is nothing", cfg->n_disks == XLCFG_MAX_DISKS - 1);
    free(cfg);
}

static void test_vifs(void)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    uint32_t devid = 99;

    cfg->n_vifs = 1;
    snprintf(cfg->vifs[0], sizeof(cfg->vifs[0]), "devid=3,mac=00:16:3e:00:00:03");
    CHECK("vif add: the create check first",
          dsd_vif_check(true, cfg, err, sizeof(err)) == 0);
    CHECK(
        "vif add: needs xenstore",
        refused(dsd_vif_add(false, cfg, "", err, sizeof(err)), -EOPNOTSUPP, "xenstore"));
    CHECK("vif add: the next devid after the highest, a generated mac, canonical form",
          dsd_vif_add(true, cfg, "bridge=br1", err, sizeof(err)) == 0 &&
              cfg->n_vifs == 2 && dsd_vif_find(cfg, "4", &devid) == 1 && devid == 4 &&
              strstr(cfg->vifs[1], "mac=00:16:3e:") &&
              strstr(cfg->vifs[1], "bridge=br1") && strstr(cfg->vifs[1], "devid=4"));
    CHECK("vif add: a devid in use is refused",
          refused(dsd_vif_add(true, cfg, "devid=3", err, sizeof(err)), -EEXIST,
                  "devid 3 is already used by vif 0") &&
              cfg->n_vifs == 2 && !cfg->vifs[2][0]);
    CHECK("vif add: a mac in use is refused (any case)",
          refused(dsd_vif_add(true, cfg, "mac=00:16:3E:00:00:03", err, sizeof(err)),
                  -EEXIST, "mac 00:16:3e:00:00:03 is already used by vif 0") &&
              cfg->n_vifs == 2);
    CHECK("vif add: a bad spec",
          refused(dsd_vif_add(true, cfg, "mtu=1", err, sizeof(err)), -EINVAL, "mtu") &&
              cfg->n_vifs == 2);
    CHECK("vif add: a given devid below the others",
          dsd_vif_add(true, cfg, "devid=0,mac=00:16:3e:00:00:10", err, sizeof(err)) ==
                  0 &&
              dsd_vif_find(cfg, "0", &devid) == 2 && devid == 0);
    CHECK("vif find: by mac, any case",
          dsd_vif_find(cfg, "00:16:3E:00:00:10", &devid) == 2 && devid == 0 &&
              dsd_vif_find(cfg, "00:16:3e:00:00:03", NULL) == 0);
    CHECK("vif find: one it has not",
          dsd_vif_find(cfg, "7", NULL) == -ENOENT &&
              dsd_vif_find(cfg, "00:16:3e:00:00:77", NULL) == -ENOENT);
    CHECK("vif find: neither devid nor mac",
          dsd_vif_find(cfg, "eth0", NULL) == -EINVAL &&
              dsd_vif_find(cfg, "", NULL) == -EINVAL &&
              dsd_vif_find(cfg, "-1", NULL) == -EINVAL &&
              dsd_vif_find(cfg, "00:16:3e:00:00:03:", NULL) == -EINVAL &&
              dsd_vif_find(cfg, "99999999999", NULL) == -EINVAL);
    for (unsigned i = cfg->n_vifs; i < XLCFG_MAX_VIFS; i++)
        dsd_vif_add(true, cfg, "", err, sizeof(err));
    CHECK("vif add: at most XLCFG_MAX_VIFS, generated macs distinct",
          cfg->n_vifs == XLCFG_MAX_VIFS &&
              refused(dsd_vif_add(true, cfg, "", err, sizeof(err)), -ENOSPC, "at most") &&
              dsd_vif_check(true, cfg, err, sizeof(err)) == 0);
    dsd_vif_remove(cfg, 0);
    CHECK("vif remove: the later vifs move down",
          cfg->n_vifs == XLCFG_MAX_VIFS - 1 && dsd_vif_find(cfg, "3", NULL) == -ENOENT &&
              dsd_vif_find(cfg, "4", NULL) == 0);
    free(cfg);
}

static void test_nodes(void)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    const char *f0 = "/local/domain/7/device/vbd/51712",
               *f1 = "/local/domain/7/device/vbd/51728";
    const char *b1 = "/local/domain/0/backend/vbd/7/51728",
               *vf = "/local/domain/7/device/vif/1",
               *vb = "/local/domain/0/backend/vif/7/1";
    char p[160];

    cfg->n_disks = 2;
    snprintf(cfg->disks[0], sizeof(cfg->disks[0]), "%s,raw,xvda,rw", img);
    snprintf(cfg->disks[1], sizeof(cfg->disks[1]), "%s,raw,xvdb,ro", img2);
    cfg->n_vifs = 1;
    snprintf(cfg->vifs[0], sizeof(cfg->vifs[0]),
             "devid=1,mac=00:16:3e:00:00:01,bridge=br9");
#define V(d, rel, want) (snprintf(p, sizeof(p), "%s/%s", d, rel), value_is(p, want))
    CHECK("one disk: only its nodes",
          dsd_disk_nodes_one(&c, 7, cfg, 1) == 0 && V(f1, "backend", b1) &&
              V(f1, "state", "1") && V(f1, "virtual-device", "51728") &&
              V(b1, "frontend", f1) && V(b1, "mode", "r") && V(b1, "params", img2) &&
              V(b1, "state", "1") && absent(f0));
    CHECK("one disk: out of range", dsd_disk_nodes_one(&c, 7, cfg, 2) < 0);
    CHECK("one vif: its nodes",
          dsd_vif_nodes_one(&c, 7, cfg, 0) == 0 && V(vf, "mac", "00:16:3e:00:00:01") &&
              V(vf, "state", "1") && V(vb, "bridge", "br9") && V(vb, "state", "1"));
    snprintf(cfg->vifs[0], sizeof(cfg->vifs[0]), "bridge=br9");
    CHECK("one vif: an unchecked spec is refused",
          dsd_vif_nodes_one(&c, 8, cfg, 0) < 0 && absent("/local/domain/8/device/vif"));
    CHECK("all disks", dsd_disk_nodes(&c, 7, cfg) == 0 && V(f0, "state", "1"));
    dsd_dev_nodes_rm(&c, "vbd", 7, 51728);
    CHECK("remove one disk: its directories go, the other disk stays",
          absent(f1) && absent(b1) && V(f0, "state", "1") &&
              value_is("/local/domain/0/backend/vbd/7/51712/state", "1"));
    dsd_dev_nodes_rm(&c, "vbd", 7, 51712);
    CHECK("remove the last disk: the empty parents go too",
          absent("/local/domain/7/device/vbd") &&
              absent("/local/domain/0/backend/vbd/7"));
    dsd_dev_nodes_rm(&c, "vif", 7, 1);
    CHECK("remove the vif", absent(vf) && absent("/local/domain/0/backend/vif/7"));
    dsd_dev_nodes_rm(&c, "vif", 7, 1);
    CHECK("remove again: nothing happens", absent(vf));
    free(cfg);
}

/* The same through the kind table: one interface for disks and vifs. */
static void test_kinds(void)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    const struct dsd_dev_kind *vbd = dsd_dev_kinds[0], *vif = dsd_dev_kinds[1];
    char arg[PATH_MAX + 32], what[48], want[PATH_MAX + 32];
    uint32_t devid = 0;

    cfg->n_disks = 1;
    snprintf(cfg->disks[0], sizeof(cfg->disks[0]), "%s,raw,xvda,rw", img);
    cfg->n_vifs = 1;
    snprintf(cfg->vifs[0], sizeof(cfg->vifs[0]), "devid=3,mac=00:16:3e:00:00:03");
    CHECK("kinds: vbd then vif, NULL-terminated",
          vbd == &dsd_kind_vbd && vif == &dsd_kind_vif && !dsd_dev_kinds[2] &&
              !strcmp(vbd->name, "vbd") && !strcmp(vif->cli_prefix, "network-"));
    CHECK(
        "kinds: vbd add, find, describe, arg",
        vbd->add(cfg, "two.img,raw,xvdc", dir, err, sizeof(err)) == 0 &&
            vbd->count(cfg) == 2 && vbd->find(cfg, "xvdc", &devid) == 1 &&
            devid == 51744 && vbd->find_devid(cfg, 51744) == 1 &&
            vbd->find_devid(cfg, 51760) == -ENOENT &&
            (vbd->describe(cfg, 51744, what, sizeof(what)), !strcmp(what, "disk xvdc")) &&
            vbd->arg(cfg, 1, arg, sizeof(arg)) == 0 &&
            (snprintf(want, sizeof(want), "51744:w:%s", img2), !strcmp(arg, want)) &&
            strstr(vbd->spec(cfg, 1), "xvdc"));
    vbd->remove(cfg, 1);
    CHECK("kinds: vbd remove", vbd->count(cfg) == 1 && vbd->find_devid(cfg, 51744) < 0);
    CHECK("kinds: vif add, find, describe, arg",
          vif->add(cfg, "mac=00:16:3e:00:00:09", NULL, err, sizeof(err)) == 0 &&
              vif->count(cfg) == 2 && vif->find_devid(cfg, 4) == 1 &&
              vif->find(cfg, "00:16:3e:00:00:09", &devid) == 1 && devid == 4 &&
              (vif->describe(cfg, 4, what, sizeof(what)), !strcmp(what, "vif 4")) &&
              vif->arg(cfg, 1, arg, sizeof(arg)) == 0 &&
              !strncmp(arg, "4,00:16:3e:00:00:09,xenbr0", 26) &&
              vif->find_devid(cfg, 99) == -ENOENT);
    vif->remove(cfg, 1);
    CHECK("kinds: vif remove", vif->count(cfg) == 1 && vif->find_devid(cfg, 4) < 0);
    free(cfg);
}

int main(void)
{
    FILE *f;

    if (!mkdtemp(dir))
        return 1;
    snprintf(img, sizeof(img), "%s/one.img", dir);
    snprintf(img2, sizeof(img2), "%s/two.img", dir);
    if (!(f = fopen(img, "w")) || fclose(f) || !(f = fopen(img2, "w")) || fclose(f))
        return 1;
    test_disks();
    test_vifs();
    test_kinds();
    if (xsd_start(dir, "hotplug") < 0)
        return 1;
    test_nodes();
    xsd_stop();
    unlink(img);
    unlink(img2);
    rmdir(dir);
    return failures ? 1 : 0;
}
