/* xl network interface specs (contract: xlvif.h). */
#include "domus/xlvif.h"
#include "domus/util.h"
#include "domus/xlspec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct vparse {
    struct xlspec s;
    unsigned seen; /* bit per key: each at most once */
    bool mac_set;
    struct xlvif *v;
};

static int fail(struct vparse *p, const char *fmt, const char *arg)
{
    return xlspec_fail(&p->s, fmt, arg);
}

/* ---- values ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool parse_mac(const char *s, uint8_t mac[6])
{
    for (int i = 0; i < 6; i++, s += 3) {
        int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);
        if (lo < 0 || s[2] != (i == 5 ? '\0' : ':'))
            return false;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool xlvif_ifname_ok(const char *name)
{
    size_t len = strlen(name);

    if (!len || len >= XLVIF_IFNAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (const char *c = name; *c; c++)
        if (!isgraph((unsigned char)*c) || *c == '/' || *c == ':')
            return false;
    return true;
}

/* Every character of s in the set accept (isalnum when alnum). */
static bool only(const char *s, bool alnum, const char *accept)
{
    for (; *s; s++)
        if (!(alnum && isalnum((unsigned char)*s)) && !strchr(accept, *s))
            return false;
    return true;
}

/* N[KMG]{b,B}/s[@N{s,ms,us}], as xl's rate= (recorded only). */
static bool rate_ok(const char *s)
{
    const char *p = s;

    while (isdigit((unsigned char)*p))
        p++;
    if (p == s)
        return false;
    if (*p && strchr("kKmMgG", *p))
        p++;
    if ((*p != 'b' && *p != 'B') || strncmp(p + 1, "/s", 2))
        return false;
    p += 3;
    if (!*p)
        return true;
    if (*p++ != '@' || !isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    return !strcmp(p, "s") || !strcmp(p, "ms") || !strcmp(p, "us");
}

/* ---- keys ---- */

enum {
    K_MAC,
    K_BRIDGE,
    K_VIFNAME,
    K_TYPE,
    K_MODEL,
    K_SCRIPT,
    K_IP,
    K_RATE,
    K_MTU,
    K_BACKEND,
    K_DEVID,
    K_N
};
static const char *const key_names[K_N] = {"mac",   "bridge",  "vifname", "type",
                                           "model", "script",  "ip",      "rate",
                                           "mtu",   "backend", "devid"};

/* Copies a recorded string value; false when it does not fit. */
static bool record(char *dst, size_t size, const char *val)
{
    size_t len = strlen(val);

    if (len >= size)
        return false;
    memcpy(dst, val, len + 1);
    return true;
}

static int set_key(struct vparse *p, int k, const char *val)
{
    struct xlvif *v = p->v;
    unsigned long num;

    switch (k) {
    case K_MAC:
        if (!parse_mac(val, v->mac))
            return fail(p, "mac '%.32s' is not six hex octets xx:xx:xx:xx:xx:xx", val);
        if (v->mac[0] & 1)
            return fail(p, "mac '%.32s' is a multicast address", val);
        if (!(v->mac[0] | v->mac[1] | v->mac[2] | v->mac[3] | v->mac[4] | v->mac[5]))
            return fail(p, "mac '%.32s' is all zero", val);
        p->mac_set = true;
        return 0;
    case K_BRIDGE:
    case K_VIFNAME:
        if (!xlvif_ifname_ok(val))
            return fail(p, "'%.32s' is not a valid interface name", val);
        record(k == K_BRIDGE ? v->bridge : v->vifname, XLVIF_IFNAME_MAX, val); /* fits */
        return 0;
    case K_TYPE:
        if (strcmp(val, "vif") && strcmp(val, "ioemu"))
            return fail(p, "type '%.32s' must be vif or ioemu", val);
        v->ioemu = val[0] == 'i';
        return 0;
    case K_MODEL:
        if (!only(val, true, "_.-") || !record(v->model, sizeof(v->model), val))
            return fail(p, "model '%.32s' is not a model name", val);
        return 0;
    case K_SCRIPT:
        if (!only(val, true, "/_.-+@") || !record(v->script, sizeof(v->script), val))
            return fail(p, "script '%.64s' is not a script path", val);
        return 0;
    case K_IP:
        if (!only(val, false, "0123456789abcdefABCDEF.:/ ") ||
            !record(v->ip, sizeof(v->ip), val))
            return fail(p, "ip '%.64s' is not a list of addresses", val);
        return 0;
    case K_RATE:
        if (!rate_ok(val) || !record(v->rate, sizeof(v->rate), val))
            return fail(p, "rate '%.32s' is not N[KMG]{b,B}/s[@N{s,ms,us}]", val);
        return 0;
    case K_MTU:
        if (xlspec_dec(val, XLVIF_MTU_MAX, &num) || num < XLVIF_MTU_MIN)
            return fail(p, "mtu '%.32s' must be a number from 68 to 65535", val);
        v->mtu = (unsigned)num;
        return 0;
    case K_BACKEND:
        if (strcmp(val, "0") && strcmp(val, "Domain-0"))
            return fail(p, "backend '%.32s': only Domain-0 serves interfaces", val);
        return 0;
    default: /* K_DEVID */
        if (xlspec_dec(val, XLVIF_DEVID_MAX, &num))
            return fail(p, "devid '%.32s' must be a number from 0 to 65535", val);
        v->devid = (uint32_t)num;
        v->devid_set = true;
        return 0;
    }
}

/* One item of the spec (xlspec_split). */
static int one_item(void *ctx, const char *s, size_t len)
{
    struct vparse *p = ctx;
    char item[XLVIF_SPEC_MAX];
    const char *eq;
    size_t klen;

    memcpy(item, s, len); /* len < strlen(spec) < XLVIF_SPEC_MAX */
    item[len] = '\0';
    eq = strchr(item, '=');
    if (!eq)
        return fail(p, len ? "'%.32s' is not KEY=VALUE" : "empty parameter%s", item);
    klen = (size_t)(eq - item);
    for (int k = 0; k < K_N; k++) {
        if (klen != strlen(key_names[k]) || strncmp(item, key_names[k], klen))
            continue;
        if (p->seen & (1u << k))
            return fail(p, "%s given twice", key_names[k]);
        p->seen |= 1u << k;
        if (!eq[1])
            return fail(p, "%s has an empty value", key_names[k]);
        return set_key(p, k, eq + 1);
    }
    item[klen] = '\0';
    return fail(p, "unknown or unsupported parameter '%.32s'", item);
}

static int split(struct vparse *p)
{
    const char *s = p->s.spec;

    if (strlen(s) >= XLVIF_SPEC_MAX)
        return fail(p, "%s", "spec too long");
    for (const char *c = s; *c; c++)
        if (isspace((unsigned char)*c) && *c != ' ' && *c != '\t')
            return fail(p, "%s", "control character in spec");
    if (!s[strspn(s, " \t")])
        return 0; /* blank: all defaults */
    return xlspec_split(s, NULL, one_item, p);
}

int xlvif_gen_mac(uint8_t mac[6], const uint32_t *seed)
{
    uint8_t low[3];

    if (seed) {
        uint32_t x = *seed * 0x9E3779B1u; /* golden-ratio mixing, then xorshift */
        x ^= x >> 15;
        x *= 0x85EBCA77u;
        x ^= x >> 13;
        low[0] = (uint8_t)(x >> 16), low[1] = (uint8_t)(x >> 8), low[2] = (uint8_t)x;
    } else {
        ssize_t n;
        do
            n = getrandom(low, sizeof(low), 0);
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof(low))
            return n < 0 ? -errno : -EIO;
    }
    mac[0] = 0x00, mac[1] = 0x16, mac[2] = 0x3e;
    memcpy(mac + 3, low, sizeof(low));
    return 0;
}

void xlvif_mac_str(const uint8_t mac[6], char buf[XLVIF_MAC_STR])
{
    snprintf(buf, XLVIF_MAC_STR, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
             mac[3], mac[4], mac[5]);
}

int xlvif_parse(const char *spec, unsigned n, const uint32_t *seed, struct xlvif *v,
                char *err, size_t errlen)
{
    struct vparse p = {.s = {"vif", spec ? spec : "", n, err, errlen}, .v = v};
    int rc;

    memset(v, 0, sizeof(*v));
    snprintf(v->bridge, sizeof(v->bridge), "xenbr0");
    v->mtu = XLVIF_MTU_DEFAULT;
    if (!spec)
        return fail(&p, "%s", "no spec");
    rc = split(&p);
    if (rc || p.mac_set)
        return rc;
    v->mac_generated = true;
    rc = xlvif_gen_mac(v->mac, seed);
    if (rc)
        dfmt(err, errlen, "vif %u: cannot generate a mac: %s", n, strerror(-rc));
    return rc ? -EIO : 0;
}

int xlvif_format(const struct xlvif *v, char *buf, size_t len)
{
    char mac[XLVIF_MAC_STR], devid[24] = "";
    int n;

    xlvif_mac_str(v->mac, mac);
    if (v->devid_set)
        snprintf(devid, sizeof(devid), ",devid=%u", v->devid);
    n = snprintf(buf, len, "mac=%s,bridge=%s,type=%s,mtu=%u%s%s%s%s%s%s%s%s%s%s%s", mac,
                 v->bridge, v->ioemu ? "ioemu" : "vif", v->mtu, devid,
                 *v->vifname ? ",vifname=" : "", v->vifname, *v->model ? ",model=" : "",
                 v->model, *v->script ? ",script=" : "", v->script, *v->ip ? ",ip=" : "",
                 v->ip, *v->rate ? ",rate=" : "", v->rate);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
