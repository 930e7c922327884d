/* Unit tests of the xl disk spec parser (xldisk.h), with hostile strings. */
#include "domus/xldisk.h"
#include "domus/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static struct xldisk d;
static char err[512];

static bool ok(const char *spec)
{
    err[0] = '\0';
    int rc = xldisk_parse(spec, 0, &d, err, sizeof(err));
    if (rc)
        printf("# %s -> %s\n", spec, err);
    return rc == 0;
}

static bool bad(const char *spec, const char *msg)
{
    err[0] = '\0';
    int rc = xldisk_parse(spec, 2, &d, err, sizeof(err));
    if (!rc || !strstr(err, msg) || !strstr(err, "disk 2 '"))
        printf("# %s -> rc %d '%s' (wanted '%s')\n", spec, rc, err, msg);
    return rc < 0 && strstr(err, msg) && strstr(err, "disk 2 '");
}

static void test_devid(void)
{
    static const struct {
        const char *vdev;
        uint32_t devid;
    } good[] = {{"xvda", 51712},
                {"xvdb", 51728},
                {"xvdp", 51952},
                {"xvda1", 51713},
                {"xvdq", (1u << 28) | (16 << 8)},
                {"xvdaa", (1u << 28) | (26 << 8)},
                {"xvda16", (1u << 28) | 16},
                {"hda", 768},
                {"hdb", 832},
                {"hdc", 5632},
                {"hdd1", 5697},
                {"sda", 2048},
                {"sdb2", 2066},
                {"d0p1", 51713},
                {"d1", 51728},
                {"51728", 51728}};
    static const char *const nope[] = {
        "",      "xvd",         "xvdA",      "xvda0", "xvda01", "xvda256",  "hde",
        "hda64", "sdq",         "sda16",     "d",     "dp1",    "d1p",      "0",
        "07",    "99999999999", "xvdzzzzzz", "vda",   "xvda-1", "d1048576", "xvd\xff"};
    bool all = true;
    uint32_t v;

    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        if (xldisk_devid(good[i].vdev, &v) || v != good[i].devid) {
            printf("# %s -> %u, want %u\n", good[i].vdev, v, good[i].devid);
            all = false;
        }
    }
    CHECK("xldisk devid of xvd/hd/sd/dNpM/numeric names", all);
    all = true;
    for (size_t i = 0; i < ARRAY_SIZE(nope); i++) {
        if (xldisk_devid(nope[i], &v) == 0) {
            printf("# %s accepted as %u\n", nope[i], v);
            all = false;
        }
    }
    CHECK("xldisk devid rejects malformed names", all);
}

static void test_forms(void)
{
    CHECK("positional target,format,vdev,access",
          ok("/img/a.raw,raw,xvdb,rw") && !strcmp(d.target, "/img/a.raw") &&
              d.devid == 51728 && d.readwrite && !d.cdrom && d.discard &&
              !strcmp(d.backendtype, "phy"));
    CHECK("positional with empty format",
          ok("/dev/vg/g,,hda") && d.devid == 768 && d.readwrite);
    CHECK("key=value form, spaces, target last with commas",
          ok("format=raw, vdev=xvdc, access=ro, target=/x/a,b c") &&
              !strcmp(d.target, "/x/a,b c") && !d.readwrite && !strcmp(d.vdev, "xvdc"));
    CHECK("access r and w",
          ok("/a,raw,xvda,r") && !d.readwrite && ok("/a,raw,xvda,w") && d.readwrite);
    CHECK("cdrom flag implies read-only",
          ok("/root/i.iso,,hdc,cdrom") && d.cdrom && !d.readwrite);
    CHECK("devtype=cdrom",
          ok("/root/i.iso,raw,hdc,devtype=cdrom") && d.cdrom && !d.readwrite);
    CHECK("devtype=disk, backendtype=qdisk",
          ok("vdev=xvda,devtype=disk,backendtype=qdisk,target=/a") &&
              !strcmp(d.backendtype, "qdisk"));
    CHECK("deprecated raw: prefix and vdev:cdrom", ok("raw:/root/i.iso,hdc:cdrom,ro") &&
                                                       !strcmp(d.target, "/root/i.iso") &&
                                                       d.cdrom && !strcmp(d.vdev, "hdc"));
    CHECK("deprecated phy:/file:/tap:aio: prefixes",
          ok("phy:/dev/sdb,xvda,w") && !strcmp(d.target, "/dev/sdb") && d.readwrite &&
              ok("file:/a.img,xvdb,r") && !d.readwrite && ok("tap:aio:/a.img,xvdb,w") &&
              !strcmp(d.target, "/a.img") && !strcmp(d.backendtype, "tap"));
    CHECK("no-discard and direct-io-safe flags",
          ok("/a,raw,xvda,rw,no-discard,direct-io-safe") && !d.discard &&
              d.direct_io_safe);
    char buf[256];
    CHECK("canonical form round-trips",
          ok("/a b,,xvdd,ro,no-discard") && !xldisk_format(&d, buf, sizeof(buf)) &&
              ok(buf) && !strcmp(d.target, "/a b") && d.devid == 51760 && !d.readwrite &&
              !d.discard);
}

static void test_errors(void)
{
    CHECK("error: no vdev", bad("/a.img", "no vdev"));
    CHECK("error: qcow2 not supported", bad("/a,qcow2,xvda", "not supported (raw only)"));
    CHECK("error: unknown format", bad("/a,vmdk9,xvda", "unknown format"));
    CHECK("error: bad access", bad("/a,raw,xvda,rx", "access 'rx'"));
    CHECK("error: bad vdev", bad("/a,raw,vda", "invalid vdev"));
    CHECK("error: parameter twice",
          bad("vdev=xvda,vdev=xvdb,target=/a", "vdev given twice"));
    CHECK("error: too many positionals",
          bad("/a,raw,xvda,rw,extra", "too many positional"));
    CHECK("error: unknown key",
          bad("/a,raw,xvda,script=block", "unsupported parameter 'script'"));
    CHECK("error: empty target", bad(",raw,xvda", "no target"));
    CHECK("error: target= empty", bad("vdev=xvda,target=", "no target"));
    CHECK("error: writable cdrom",
          bad("/a,raw,hdc,rw,cdrom", "cdrom cannot be writable"));
    CHECK("error: backend domain", bad("/a,raw,xvda,backend=dom5", "only Domain-0"));
    CHECK("error: bad devtype", bad("/a,raw,xvda,devtype=floppy", "devtype"));
    CHECK("error: bad vdev suffix", bad("raw:/a,xvda:tape,w", "unknown suffix"));
}

static void test_hostile(void)
{
    static const char *const specs[] = {
        "",
        ",",
        ",,,,,,,,",
        "=",
        "==,=",
        "target",
        "target=",
        ",target=",
        "vdev=",
        "a=b=c",
        "\t\n ",
        "xvda",
        ":",
        "raw:",
        "tap:aio:tap:aio:",
        "phy:phy:phy:,xvda",
        "/a,raw,xvda:",
        "/a,raw,:cdrom",
        "discard,discard",
        "cdrom,devtype=cdrom",
        "backendtype=,vdev=xvda,target=/a",
        "/a,,xvda,,,,",
        "\xff\xfe,\x01,xvda",
    };
    char *big = malloc(20000);
    int n = 0;

    for (size_t i = 0; i < ARRAY_SIZE(specs); i++) {
        int rc = xldisk_parse(specs[i], (unsigned)i, &d, err, sizeof(err));
        if (rc == 0)
            printf("# accepted: '%s'\n", specs[i]);
        n += rc < 0;
    }
    memset(big, 'a', 19999);
    big[19999] = '\0';
    n += xldisk_parse(big, 0, &d, err, sizeof(err)) < 0;
    memcpy(big, "vdev=xvda,target=", 17);
    n += xldisk_parse(big, 0, &d, err, sizeof(err)) < 0;
    memset(big, ',', 19999);
    n += xldisk_parse(big, 0, &d, err, sizeof(err)) < 0;
    n += xldisk_parse(NULL, 0, &d, err, 1) < 0;
    CHECK("hostile specs are refused without crashing", n == (int)ARRAY_SIZE(specs) + 4);
    /* err truncated to a tiny buffer stays terminated */
    char tiny[8];
    xldisk_parse("/a,qcow2,xvda", 0, &d, tiny, sizeof(tiny));
    CHECK("error message fits a small buffer", strlen(tiny) == 7);
    free(big);
}

int main(void)
{
    test_devid();
    test_forms();
    test_errors();
    test_hostile();
    return failures ? 1 : 0;
}
