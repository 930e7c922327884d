/* xl disk specifications (contract: xldisk.h). */
#include "domus/xldisk.h"
#include "domus/util.h"
#include "domus/xlspec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- vdev names ---- */

/* "<prefix>[a-z]+[partition]": disk number (bijective base 26: a = 0,
 * z = 25, aa = 26) and partition (0 when absent). */
static int parse_letters(const char *s, unsigned long max_disk, unsigned long max_part,
                         unsigned long *disk, unsigned long *part)
{
    unsigned long d = 0;
    const char *p = s;

    for (; *p >= 'a' && *p <= 'z'; p++) {
        d = d * 26 + (unsigned long)(*p - 'a' + 1);
        if (d - 1 > max_disk)
            return -EINVAL;
    }
    if (p == s)
        return -EINVAL;
    *disk = d - 1;
    *part = 0;
    if (!*p)
        return 0;
    return xlspec_dec(p, max_part, part) || !*part ? -EINVAL
                                                   : 0; /* "xvda0" is not a name */
}

static uint32_t xvd_number(unsigned long disk, unsigned long part)
{
    if (disk <= 15 && part <= 15)
        return (uint32_t)((202 << 8) | (disk << 4) | part);
    return (uint32_t)((1UL << 28) | (disk << 8) | part);
}

/* "d<disk>[p<part>]" */
static int parse_dp(const char *s, uint32_t *devid)
{
    char num[16];
    const char *p = strchr(s, 'p');
    unsigned long disk, part = 0;
    size_t n = p ? (size_t)(p - s) : strlen(s);

    if (n == 0 || n >= sizeof(num))
        return -EINVAL;
    memcpy(num, s, n);
    num[n] = '\0';
    if (xlspec_dec(num, (1UL << 20) - 1, &disk) || (p && xlspec_dec(p + 1, 255, &part)))
        return -EINVAL;
    *devid = xvd_number(disk, part);
    return 0;
}

int xldisk_devid(const char *vdev, uint32_t *devid)
{
    unsigned long disk, part, v;

    if (!vdev || !*vdev)
        return -EINVAL;
    if (isdigit((unsigned char)vdev[0])) {
        if (xlspec_dec(vdev, (1UL << 31) - 1, &v) || v == 0)
            return -EINVAL;
        *devid = (uint32_t)v;
        return 0;
    }
    if (!strncmp(vdev, "xvd", 3)) {
        if (parse_letters(vdev + 3, (1UL << 20) - 1, 255, &disk, &part))
            return -EINVAL;
        *devid = xvd_number(disk, part);
        return 0;
    }
    if (!strncmp(vdev, "hd", 2)) {
        if (parse_letters(vdev + 2, 3, 63, &disk, &part))
            return -EINVAL;
        *devid = (uint32_t)(((disk < 2 ? 3 : 22) << 8) | ((disk & 1) << 6) | part);
        return 0;
    }
    if (!strncmp(vdev, "sd", 2)) {
        if (parse_letters(vdev + 2, 15, 15, &disk, &part))
            return -EINVAL;
        *devid = (uint32_t)((8 << 8) | (disk << 4) | part);
        return 0;
    }
    if (vdev[0] == 'd' && isdigit((unsigned char)vdev[1]))
        return parse_dp(vdev + 1, devid);
    return -EINVAL;
}

/* ---- the spec ---- */

enum { P_TARGET, P_FORMAT, P_VDEV, P_ACCESS, P_N };
static const char *const pos_names[P_N] = {"target", "format", "vdev", "access"};

struct dparse {
    struct xlspec s;
    char val[P_N][XLDISK_TARGET_MAX]; /* the positional parameters as given */
    bool set[P_N];
    bool deprecated; /* target had a "raw:"-style prefix: vdev, access follow */
    bool devtype_set, backendtype_set, discard_set;
    struct xldisk *d;
};

static int fail(struct dparse *p, const char *fmt, const char *arg)
{
    return xlspec_fail(&p->s, fmt, arg);
}

static int set_param(struct dparse *p, int i, const char *v, size_t len)
{
    if (p->set[i])
        return fail(p, "%s given twice", pos_names[i]);
    if (len >= sizeof(p->val[i]))
        return fail(p, "%s too long", pos_names[i]);
    memcpy(p->val[i], v, len);
    p->val[i][len] = '\0';
    p->set[i] = true;
    return 0;
}

/* Strips a deprecated "raw:", "file:", "phy:", "aio:", "tap:aio:" ...
 * prefix off the target (also setting format or backendtype). */
static int strip_prefix(struct dparse *p)
{
    static const struct {
        const char *prefix, *format, *backend;
    } pre[] = {{"tap:aio:", "raw", "tap"}, {"tap2:aio:", "raw", "tap"},
               {"tap:", NULL, "tap"},      {"tap2:", NULL, "tap"},
               {"aio:", "raw", NULL},      {"raw:", "raw", NULL},
               {"file:", "raw", NULL},     {"phy:", "raw", "phy"},
               {"qcow:", "qcow", NULL},    {"qcow2:", "qcow2", NULL},
               {"vhd:", "vhd", NULL},      {"qdisk:", NULL, "qdisk"}};
    char *t = p->val[P_TARGET];

    for (size_t i = 0; i < ARRAY_SIZE(pre); i++) {
        size_t l = strlen(pre[i].prefix);
        if (strncmp(t, pre[i].prefix, l))
            continue;
        memmove(t, t + l, strlen(t + l) + 1);
        if (pre[i].format && !p->set[P_FORMAT])
            set_param(p, P_FORMAT, pre[i].format, strlen(pre[i].format));
        if (pre[i].backend)
            snprintf(p->d->backendtype, sizeof(p->d->backendtype), "%s", pre[i].backend);
        p->deprecated = true;
        i = (size_t)-1; /* "tap:aio:" after "file:" etc.: strip again */
    }
    return 0;
}

static int positional(struct dparse *p, const char *v, size_t len)
{
    for (int i = 0; i < P_N; i++) {
        if (p->set[i] || (i == P_FORMAT && p->deprecated))
            continue;
        int rc = set_param(p, i, v, len);
        if (!rc && i == P_TARGET)
            rc = strip_prefix(p);
        return rc;
    }
    return fail(p, "too many positional parameters at '%.64s'", v);
}

static int flag(struct dparse *p, const char *w, bool *done)
{
    *done = true;
    if (!strcmp(w, "cdrom"))
        p->d->cdrom = p->devtype_set = true;
    else if (!strcmp(w, "discard") || !strcmp(w, "no-discard")) {
        if (p->discard_set)
            return fail(p, "%s: discard given twice", w);
        p->d->discard = w[0] == 'd';
        p->discard_set = true;
    } else if (!strcmp(w, "direct-io-safe"))
        p->d->direct_io_safe = true;
    else if (!strcmp(w, "trusted") || !strcmp(w, "untrusted"))
        ; /* only meaningful to a guest that checks "trusted": accepted */
    else
        *done = false;
    return 0;
}

static int keyval(struct dparse *p, const char *key, size_t klen, const char *v,
                  size_t vlen)
{
    char val[64];

    for (int i = 0; i < P_N; i++)
        if (klen == strlen(pos_names[i]) && !strncmp(key, pos_names[i], klen))
            return set_param(p, i, v, vlen);
    if (vlen >= sizeof(val))
        return fail(p, "value of '%.32s' too long", key);
    memcpy(val, v, vlen);
    val[vlen] = '\0';
    if (klen == 7 && !strncmp(key, "devtype", 7)) {
        if (p->devtype_set || (strcmp(val, "disk") && strcmp(val, "cdrom")))
            return fail(p, "devtype must be given once, as disk or cdrom (not '%s')",
                        val);
        p->d->cdrom = !strcmp(val, "cdrom");
        p->devtype_set = true;
        return 0;
    }
    if (klen == 11 && !strncmp(key, "backendtype", 11)) {
        if (p->backendtype_set ||
            (strcmp(val, "phy") && strcmp(val, "qdisk") && strcmp(val, "tap")))
            return fail(p,
                        "backendtype must be given once, as phy, qdisk or tap (not '%s')",
                        val);
        memcpy(p->d->backendtype, val, strlen(val) + 1); /* one of three short names */
        p->backendtype_set = true;
        return 0;
    }
    if (klen == 7 && !strncmp(key, "backend", 7)) {
        if (strcmp(val, "0") && strcmp(val, "Domain-0"))
            return fail(p, "backend '%s': only Domain-0 serves disks", val);
        return 0;
    }
    snprintf(val, sizeof(val), "%.*s", (int)(klen < 32 ? klen : 32), key);
    return fail(p, "unknown or unsupported parameter '%s'", val);
}

/* One item of the spec (xlspec_split). */
static int one_item(void *ctx, const char *s, size_t len)
{
    struct dparse *p = ctx;
    char word[32];
    const char *eq;
    bool done;
    int rc;

    eq = memchr(s, '=', len);
    if (eq)
        return keyval(p, s, (size_t)(eq - s), eq + 1, len - (size_t)(eq - s) - 1);
    if (len && len < sizeof(word)) {
        memcpy(word, s, len);
        word[len] = '\0';
        if ((rc = flag(p, word, &done)) || done)
            return rc;
    }
    return positional(p, s, len);
}

/* The deprecated "<vdev>:cdrom" / "<vdev>:disk". */
static int vdev_suffix(struct dparse *p)
{
    char *c = strchr(p->val[P_VDEV], ':');

    if (!c)
        return 0;
    if (strcmp(c + 1, "cdrom") && strcmp(c + 1, "disk"))
        return fail(p, "vdev '%.32s': unknown suffix", p->val[P_VDEV]);
    p->d->cdrom = p->d->cdrom || !strcmp(c + 1, "cdrom");
    *c = '\0';
    return 0;
}

static int finish(struct dparse *p)
{
    struct xldisk *d = p->d;
    const char *fmt = p->val[P_FORMAT], *acc = p->val[P_ACCESS];
    int rc = vdev_suffix(p);

    if (rc)
        return rc;
    if (*fmt && strcmp(fmt, "raw"))
        return fail(p,
                    strcmp(fmt, "qcow") && strcmp(fmt, "qcow2") && strcmp(fmt, "vhd") &&
                            strcmp(fmt, "qed")
                        ? "unknown format '%.32s'"
                        : "format '%s' is not supported (raw only)",
                    fmt);
    if (!*p->val[P_VDEV])
        return fail(p, "%s", "no vdev given");
    if (strlen(p->val[P_VDEV]) >= sizeof(d->vdev) ||
        xldisk_devid(p->val[P_VDEV], &d->devid))
        return fail(p, "invalid vdev '%.32s'", p->val[P_VDEV]);
    memcpy(d->vdev, p->val[P_VDEV], strlen(p->val[P_VDEV]) + 1); /* length checked */
    if (!strcmp(acc, "ro") || !strcmp(acc, "r"))
        d->readwrite = false;
    else if (!strcmp(acc, "rw") || !strcmp(acc, "w"))
        d->readwrite = true;
    else if (!*acc)
        d->readwrite = !d->cdrom;
    else
        return fail(p, "access '%.32s' must be ro, r, rw or w", acc);
    if (d->cdrom && d->readwrite)
        return fail(p, "%s", "a cdrom cannot be writable");
    if (!*p->val[P_TARGET])
        return fail(p, "%s", "no target given (empty drives are not supported)");
    snprintf(d->target, sizeof(d->target), "%s", p->val[P_TARGET]);
    return 0;
}

int xldisk_parse(const char *spec, unsigned n, struct xldisk *d, char *err, size_t errlen)
{
    struct dparse *p = calloc(1, sizeof(*p));
    int rc;

    if (!p)
        return -ENOMEM;
    memset(d, 0, sizeof(*d));
    d->discard = true;
    snprintf(d->backendtype, sizeof(d->backendtype), "phy");
    *p = (struct dparse){.s = {"disk", spec, n, err, errlen}, .d = d};
    /* target= is last and takes the rest, commas included */
    rc = spec ? xlspec_split(spec, "target=", one_item, p) : -EINVAL;
    if (!rc)
        rc = finish(p);
    free(p);
    return rc;
}

int xldisk_format(const struct xldisk *d, char *buf, size_t len)
{
    int n = snprintf(
        buf, len, "format=raw,vdev=%s,access=%s,devtype=%s,backendtype=%s%s%s,target=%s",
        d->vdev, d->readwrite ? "rw" : "ro", d->cdrom ? "cdrom" : "disk", d->backendtype,
        d->discard ? "" : ",no-discard", d->direct_io_safe ? ",direct-io-safe" : "",
        d->target);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
