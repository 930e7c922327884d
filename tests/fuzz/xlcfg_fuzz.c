/* libFuzzer target: the xl.cfg parser on arbitrary text, then the disk and
 * vif specs of a configuration it accepts (xldisk_parse, xlvif_parse), as
 * domusd reads them.  Each parse must succeed or fail with -EINVAL and a
 * reason in err.  domusd stores each spec back in its canonical form
 * (xldisk_format, xlvif_format into the 512-byte slot of struct xlcfg) and
 * parses that again later (hot-plug, the persisted domain), so a canonical
 * form that fits must parse back to the same device.  The target aborts
 * when either does not hold.
 *
 * Build: make build/fuzz/xlcfg_fuzz   (also `make fuzz`)
 * Run:   build/fuzz/xlcfg_fuzz -max_total_time=30 build/fuzz/corpus-xlcfg
 *        (tests/proto/xlcfg-fuzz.sh seeds the corpus with xl.cfg files) */
#include "domus/xlcfg.h"
#include "domus/xldisk.h"
#include "domus/xlvif.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void mismatch(const char *what, unsigned i, const char *spec, const char *canon)
{
    fprintf(stderr, "%s %u: '%s' -> canonical '%s' does not parse back the same\n", what,
            i, spec, canon);
    abort();
}

/* rc of a parse that wrote err (cleared before it): 0, or -EINVAL and a reason. */
static int checked(int rc, const char *err)
{
    if (rc && (rc != -EINVAL || !err[0])) {
        fprintf(stderr, "parse returned %d with message '%s'\n", rc, err);
        abort();
    }
    return rc;
}

static void disk_round_trip(const char *spec, unsigned i)
{
    static struct xldisk d, d2;
    char canon[sizeof(((struct xlcfg *)0)->disks[0])], err[512] = "";

    if (checked(xldisk_parse(spec, i, &d, err, sizeof(err)), err) ||
        xldisk_format(&d, canon, sizeof(canon)))
        return;
    if (xldisk_parse(canon, i, &d2, err, sizeof(err)) || strcmp(d.target, d2.target) ||
        strcmp(d.vdev, d2.vdev) || d.devid != d2.devid || d.readwrite != d2.readwrite ||
        d.cdrom != d2.cdrom || d.discard != d2.discard ||
        d.direct_io_safe != d2.direct_io_safe || strcmp(d.backendtype, d2.backendtype))
        mismatch("disk", i, spec, canon);
}

static void vif_round_trip(const char *spec, unsigned i)
{
    static struct xlvif v, v2;
    char canon[sizeof(((struct xlcfg *)0)->vifs[0])], err[512] = "";
    uint32_t seed = i;

    if (checked(xlvif_parse(spec, i, &seed, &v, err, sizeof(err)), err) ||
        xlvif_format(&v, canon, sizeof(canon)))
        return;
    if (xlvif_parse(canon, i, &seed, &v2, err, sizeof(err)) || v2.mac_generated ||
        memcmp(v.mac, v2.mac, sizeof(v.mac)) || strcmp(v.bridge, v2.bridge) ||
        strcmp(v.vifname, v2.vifname) || v.ioemu != v2.ioemu ||
        strcmp(v.model, v2.model) || strcmp(v.script, v2.script) || strcmp(v.ip, v2.ip) ||
        strcmp(v.rate, v2.rate) || v.mtu != v2.mtu || v.devid_set != v2.devid_set ||
        v.devid != v2.devid)
        mismatch("vif", i, spec, canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xlcfg cfg;
    char err[512] = "";
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (xlcfg_check_text(text, size, "fuzz.cfg", err, sizeof(err)) == 0 &&
        checked(xlcfg_parse_string(text, "fuzz.cfg", &cfg, err, sizeof(err)), err) == 0) {
        for (unsigned i = 0; i < cfg.n_disks; i++)
            disk_round_trip(cfg.disks[i], i);
        for (unsigned i = 0; i < cfg.n_vifs; i++)
            vif_round_trip(cfg.vifs[i], i);
    }
    free(text);
    return 0;
}
