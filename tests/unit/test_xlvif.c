/* Unit tests of the xl vif spec parser (xlvif.h), with hostile strings, and
 * of domusd's vif handling (dsd_vif.h): checks at create, domus-vm's --vif
 * argument, and the xenstore nodes (values and libxl's permissions) against
 * the xenstore core served in a thread on a temporary socket. */
#include "domus/dsd_vif.h"
#include "domus/util.h"
#include "domus/xlvif.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "xsd_harness.h"

static struct xlvif v;
static char err[512];
static char mac[XLVIF_MAC_STR];

static bool ok(const char *spec)
{
    uint32_t seed = 7;

    err[0] = '\0';
    int rc = xlvif_parse(spec, 0, &seed, &v, err, sizeof(err));
    if (rc)
        printf("# %s -> %s\n", spec, err);
    xlvif_mac_str(v.mac, mac);
    return rc == 0;
}

static bool bad(const char *spec, const char *msg)
{
    err[0] = '\0';
    int rc = xlvif_parse(spec, 3, NULL, &v, err, sizeof(err));
    bool good = rc == -EINVAL && strstr(err, msg) && !strncmp(err, "vif 3 '", 7);
    if (!good)
        printf("# %.80s -> rc %d '%s' (wanted '%s')\n", spec, rc, err, msg);
    return good;
}

static void test_good(void)
{
    CHECK("empty spec: all defaults", ok("") && v.mac_generated &&
                                          !strcmp(v.bridge, "xenbr0") && v.mtu == 1500 &&
                                          !v.ioemu && !v.devid_set && !*v.vifname &&
                                          !*v.model && !*v.script && !*v.ip && !*v.rate);
    CHECK("blank spec: all defaults", ok("  ") && v.mac_generated && v.mtu == 1500);
    CHECK("mac and bridge", ok("mac=00:16:3E:AB:cd:0f,bridge=br-lan") &&
                                !v.mac_generated && !strcmp(mac, "00:16:3e:ab:cd:0f") &&
                                !strcmp(v.bridge, "br-lan"));
    CHECK("every key, blanks around pairs",
          ok(" mac=02:00:00:00:00:01 , bridge=xenbr1, vifname=web0, type=ioemu, "
             "model=e1000, "
             "script=/etc/xen/scripts/vif-bridge, ip=10.0.0.2 fd00::2/64, "
             "rate=10Mb/s@20ms, "
             "mtu=9000, backend=Domain-0, devid=3 ") &&
              !strcmp(mac, "02:00:00:00:00:01") && !strcmp(v.bridge, "xenbr1") &&
              !strcmp(v.vifname, "web0") && v.ioemu && !strcmp(v.model, "e1000") &&
              !strcmp(v.script, "/etc/xen/scripts/vif-bridge") &&
              !strcmp(v.ip, "10.0.0.2 fd00::2/64") && !strcmp(v.rate, "10Mb/s@20ms") &&
              v.mtu == 9000 && v.devid_set && v.devid == 3);
    CHECK("type=vif, backend=0, devid=0",
          ok("type=vif,backend=0,devid=0") && !v.ioemu && v.devid_set && v.devid == 0);
    CHECK("mtu bounds 68 and 65535",
          ok("mtu=68") && v.mtu == 68 && ok("mtu=65535") && v.mtu == 65535);
    CHECK("rate forms",
          ok("rate=100B/s") && ok("rate=1GB/s@1s") && ok("rate=5kb/s@100us"));
    CHECK("bridge of 15 characters", ok("bridge=abcdefghijklmno"));
}

static void test_hostile(void)
{
    char big[2048];

    CHECK("unknown key",
          bad("mac=00:16:3e:00:00:01,colour=blue", "unknown or unsupported "
                                                   "parameter 'colour'"));
    CHECK("unknown keys: accel, gatewaydev, bare word",
          bad("accel=x", "unknown") && bad("gatewaydev=eth0", "unknown") &&
              bad("xenbr0", "not KEY=VALUE"));
    CHECK("duplicate keys",
          bad("bridge=a,bridge=b", "bridge given twice") &&
              bad("mac=00:16:3e:00:00:01,mac=00:16:3e:00:00:01", "mac given twice") &&
              bad("mtu=1500, mtu=1500", "mtu given twice"));
    CHECK("empty values and parameters",
          bad("mac=", "empty value") && bad("bridge=xenbr0,", "empty parameter") &&
              bad(",", "empty parameter") && bad("=x", "unknown"));
    static const char *const macs[] = {
        "mac=00:16:3e:00:00",      "mac=00:16:3e:00:00:01:02", "mac=00-16-3e-00-00-01",
        "mac=0:16:3e:00:00:01",    "mac=00:16:3e:00:00:0g",    "mac=001:6:3e:00:00:01",
        "mac=00:16:3e:00:00:01 x", "mac=00:16:3e:00:00:1",     "mac=:::::",
        "mac=00:16:3e:00:00:01:",  "mac=0x:16:3e:00:00:01"};
    bool all = true;
    for (size_t i = 0; i < ARRAY_SIZE(macs); i++)
        all = bad(macs[i], "is not six hex octets") && all;
    CHECK("malformed macs", all);
    CHECK("multicast and broadcast macs", bad("mac=01:00:5e:00:00:01", "multicast") &&
                                              bad("mac=ff:ff:ff:ff:ff:ff", "multicast") &&
                                              bad("mac=03:16:3e:00:00:01", "multicast"));
    CHECK("all-zero mac", bad("mac=00:00:00:00:00:00", "all zero"));
    static const char *const names[] = {"bridge=abcdefghijklmnop",
                                        "bridge=a/b",
                                        "bridge=a b",
                                        "bridge=.",
                                        "bridge=..",
                                        "bridge=br:0",
                                        "bridge=br\x01",
                                        "bridge=br\xc3\xa9",
                                        "vifname=../../etc",
                                        "vifname=0123456789abcdef"};
    all = true;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        all = bad(names[i], "is not a valid interface name") && all;
    CHECK("bad bridge and vif names", all);
    CHECK("bad mtu", bad("mtu=67", "mtu") && bad("mtu=65536", "mtu") &&
                         bad("mtu=01500", "mtu") && bad("mtu=-1", "mtu") &&
                         bad("mtu=1500x", "mtu") &&
                         bad("mtu=99999999999999999999999", "mtu"));
    CHECK("bad devid", bad("devid=-1", "devid") && bad("devid=65536", "devid") &&
                           bad("devid=x", "devid") && bad("devid=00", "devid"));
    CHECK("backend other than Domain 0", bad("backend=1", "only Domain-0") &&
                                             bad("backend=driver-dom", "only Domain-0"));
    CHECK("bad type", bad("type=tap", "type") && bad("type=VIF", "type"));
    CHECK("bad recorded values",
          bad("model=e1000;rm", "model") && bad("script=/x y", "script") &&
              bad("script=$(reboot)", "script") && bad("ip=10.0.0.1;x", "ip") &&
              bad("rate=fast", "rate") && bad("rate=10Mb", "rate") &&
              bad("rate=10Mb/s@", "rate") && bad("rate=10Mb/s@5h", "rate"));
    CHECK("control characters", bad("bridge=xenbr0\n,mtu=1500", "control character") &&
                                    bad("mtu=1500\r", "control character"));
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK("overlong spec", bad(big, "spec too long"));
    memcpy(big, "script=/", 8);
    big[400] = '\0';
    CHECK("overlong script", bad(big, "is not a script path"));
    memcpy(big, "ip=1", 4);
    memset(big + 4, '1', 300);
    big[304] = '\0';
    CHECK("overlong ip", bad(big, "is not a list of addresses"));
    memcpy(big, "model=", 6);
    CHECK("overlong model", bad(big, "is not a model name"));
    CHECK("NULL spec", xlvif_parse(NULL, 3, NULL, &v, err, sizeof(err)) == -EINVAL);
}

static void test_mac_and_format(void)
{
    uint8_t m[6], m2[6];
    uint32_t s1 = 1, s2 = 2;
    bool prefix = true, differ = false;

    CHECK("random mac", xlvif_gen_mac(m, NULL) == 0);
    for (int i = 0; i < 64; i++) {
        if (xlvif_gen_mac(m2, NULL) || m2[0] != 0x00 || m2[1] != 0x16 || m2[2] != 0x3e)
            prefix = false;
        differ = differ || memcmp(m, m2, 6);
    }
    CHECK("generated macs are in Xen's 00:16:3e prefix", prefix);
    CHECK("random macs differ", differ);
    CHECK("seeded mac is deterministic",
          xlvif_gen_mac(m, &s1) == 0 && xlvif_gen_mac(m2, &s1) == 0 &&
              !memcmp(m, m2, 6) && xlvif_gen_mac(m2, &s2) == 0 && memcmp(m, m2, 6) &&
              !memcmp(m, "\x00\x16\x3e", 3));
    CHECK("parse without mac generates one in 00:16:3e",
          ok("bridge=b") && v.mac_generated && !strncmp(mac, "00:16:3e:", 9));

    char buf[XLVIF_SPEC_MAX], buf2[XLVIF_SPEC_MAX];
    struct xlvif w;
    CHECK("format: canonical",
          ok("devid=2,bridge=br1,mac=00:16:3e:0a:0b:0c") &&
              xlvif_format(&v, buf, sizeof(buf)) == 0 &&
              !strcmp(buf, "mac=00:16:3e:0a:0b:0c,bridge=br1,type=vif,"
                           "mtu=1500,devid=2"));
    ok("mac=02:00:00:00:00:01,bridge=xenbr1,vifname=web0,type=ioemu,model=e1000,"
       "script=vif-bridge,ip=10.0.0.2 10.0.0.3,rate=10Mb/s,mtu=9000");
    CHECK("format: read back to the same",
          xlvif_format(&v, buf, sizeof(buf)) == 0 &&
              xlvif_parse(buf, 0, NULL, &w, err, sizeof(err)) == 0 &&
              !memcmp(&v, &w, sizeof(v)) && xlvif_format(&w, buf2, sizeof(buf2)) == 0 &&
              !strcmp(buf, buf2));
    CHECK("format: too small a buffer", xlvif_format(&v, buf, 20) == -ENAMETOOLONG);
}

/* ---- domusd's side ---- */

static void test_check(void)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    char arg[64];

    cfg->n_vifs = 3;
    snprintf(cfg->vifs[0], sizeof(cfg->vifs[0]), "%s", "");
    snprintf(cfg->vifs[1], sizeof(cfg->vifs[1]),
             "bridge=br1,mac=00:16:3e:01:02:03,mtu=9000");
    snprintf(cfg->vifs[2], sizeof(cfg->vifs[2]), "devid=7");
    CHECK("vif check: vifs need xenstore",
          dsd_vif_check(false, cfg, err, sizeof(err)) == -EOPNOTSUPP &&
              strstr(err, "xenstore"));
    CHECK("vif check: canonical specs with devid and mac",
          dsd_vif_check(true, cfg, err, sizeof(err)) == 0 &&
              !strncmp(cfg->vifs[0], "mac=00:16:3e:", 13) &&
              strstr(cfg->vifs[0], ",bridge=xenbr0,type=vif,mtu=1500,devid=0") &&
              !strcmp(cfg->vifs[1],
                      "mac=00:16:3e:01:02:03,bridge=br1,type=vif,mtu=9000,devid=1") &&
              strstr(cfg->vifs[2], ",devid=7"));
    char first[512];
    snprintf(first, sizeof(first), "%s", cfg->vifs[0]);
    CHECK("vif check: a second check keeps the mac (reboots)",
          dsd_vif_check(true, cfg, err, sizeof(err)) == 0 &&
              !strcmp(cfg->vifs[0], first));
    CHECK("vif arg for domus-vm", dsd_vif_arg(cfg, 1, arg, sizeof(arg)) == 0 &&
                                      !strcmp(arg, "1,00:16:3e:01:02:03,br1,9000") &&
                                      dsd_vif_arg(cfg, 2, arg, sizeof(arg)) == 0 &&
                                      !strncmp(arg, "7,00:16:3e:", 11) &&
                                      !strcmp(arg + strlen(arg) - 12, ",xenbr0,1500"));
    CHECK("vif arg: out of range", dsd_vif_arg(cfg, 3, arg, sizeof(arg)) < 0);
    snprintf(cfg->vifs[2], sizeof(cfg->vifs[2]), "bridge=b");
    CHECK("vif arg: an unchecked spec (no mac) is refused",
          dsd_vif_arg(cfg, 2, arg, sizeof(arg)) < 0);
    snprintf(cfg->vifs[2], sizeof(cfg->vifs[2]), "devid=1");
    CHECK("vif check: the same devid twice",
          dsd_vif_check(true, cfg, err, sizeof(err)) == -EEXIST &&
              strstr(err, "vif 2: devid 1 is already used by vif 1"));
    snprintf(cfg->vifs[2], sizeof(cfg->vifs[2]), "mac=00:16:3e:01:02:03");
    CHECK("vif check: the same mac twice",
          dsd_vif_check(true, cfg, err, sizeof(err)) == -EEXIST &&
              strstr(err, "vif 2: mac"));
    snprintf(cfg->vifs[2], sizeof(cfg->vifs[2]), "mac=01:16:3e:01:02:03");
    CHECK("vif check: a bad spec names the vif",
          dsd_vif_check(true, cfg, err, sizeof(err)) == -EINVAL &&
              strstr(err, "vif 2 '"));
    cfg->n_vifs = 0;
    CHECK("vif check: no vifs, no xenstore",
          dsd_vif_check(false, cfg, err, sizeof(err)) == 0);
    free(cfg);
}

static char dir[] = "/tmp/test_xlvif_XXXXXX";

static void test_nodes(void)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    const char *f = "/local/domain/5/device/vif/0",
               *b = "/local/domain/0/backend/vif/5/0";
    const char *f1 = "/local/domain/5/device/vif/4",
               *b1 = "/local/domain/0/backend/vif/5/4";
    char p[160];

    cfg->n_vifs = 2;
    snprintf(cfg->vifs[0], sizeof(cfg->vifs[0]), "mac=00:16:3e:0a:0b:0c,bridge=br0");
    snprintf(cfg->vifs[1], sizeof(cfg->vifs[1]),
             "devid=4,mac=00:16:3e:00:00:04,mtu=9000,script=vif-bridge,vifname=web0,ip="
             "10.0.0.4");
    CHECK("nodes: checked", dsd_vif_check(true, cfg, err, sizeof(err)) == 0);
    CHECK("nodes: written", dsd_vif_nodes(&c, 5, cfg) == 0);
#define V(dir, rel, want) (snprintf(p, sizeof(p), "%s/%s", dir, rel), value_is(p, want))
#define A(dir, rel) (snprintf(p, sizeof(p), "%s/%s", dir, rel), absent(p))
    CHECK("nodes: front end", V(f, "backend", b) && V(f, "backend-id", "0") &&
                                  V(f, "state", "1") && V(f, "handle", "0") &&
                                  V(f, "mac", "00:16:3e:0a:0b:0c") &&
                                  V(f, "mtu", "1500"));
    CHECK("nodes: back end",
          V(b, "frontend", f) && V(b, "frontend-id", "5") && V(b, "online", "1") &&
              V(b, "state", "1") && V(b, "mac", "00:16:3e:0a:0b:0c") &&
              V(b, "bridge", "br0") && V(b, "handle", "0") && V(b, "type", "vif") &&
              V(b, "mtu", "1500") && A(b, "script") && A(b, "vifname"));
    CHECK("nodes: second vif with its devid, script, vifname, ip",
          V(f1, "backend", b1) && V(f1, "handle", "4") && V(f1, "mtu", "9000") &&
              V(b1, "frontend", f1) && V(b1, "handle", "4") &&
              V(b1, "script", "vif-bridge") && V(b1, "vifname", "web0") &&
              V(b1, "ip", "10.0.0.4") && V(b1, "mtu", "9000") &&
              V(b1, "mac", "00:16:3e:00:00:04") && V(b1, "bridge", "xenbr0"));
    CHECK("nodes: the guest owns its front end, Domain 0 reads it",
          perms_are(f, "n5,r0") &&
              (snprintf(p, sizeof(p), "%s/mac", f), perms_are(p, "n5,r0")));
    CHECK("nodes: Domain 0 owns the back end, the guest reads it",
          perms_are(b, "n0,r5") &&
              (snprintf(p, sizeof(p), "%s/state", b), perms_are(p, "n0,r5")) &&
              (snprintf(p, sizeof(p), "%s/bridge", b1), perms_are(p, "n0,r5")));
    dsd_vif_nodes_rm(&c, 5);
    CHECK("nodes: removed", absent("/local/domain/0/backend/vif/5"));
    snprintf(cfg->vifs[1], sizeof(cfg->vifs[1]), "bridge=br1");
    CHECK("nodes: an unchecked spec is refused", dsd_vif_nodes(&c, 6, cfg) < 0);
    dsd_vif_nodes_rm(&c, 6);
    free(cfg);
}

int main(void)
{
    test_good();
    test_hostile();
    test_mac_and_format();
    test_check();
    if (!mkdtemp(dir))
        return 1;
    if (xsd_start(dir, "xlvif") < 0)
        return 1;
    test_nodes();
    xsd_stop();
    rmdir(dir);
    return failures ? 1 : 0;
}
