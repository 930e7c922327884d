/* What the xl device spec parsers (xldisk.c, xlvif.c) share: an error
 * reported against the spec, the spec's comma-separated items, decimal
 * values.  Internal to the toolstack. */
#ifndef DOMUS_XLSPEC_H
#define DOMUS_XLSPEC_H

#include <stddef.h>

/* One spec being parsed, for messages. */
struct xlspec {
    const char *what; /* the device kind: "disk", "vif" */
    const char *spec;
    unsigned n; /* the device's index in its list */
    char *err;
    size_t errlen;
};

/* "<what> <n> '<spec>': " and fmt (one %s: arg) in err; returns -EINVAL. */
int xlspec_fail(const struct xlspec *s, const char *fmt, const char *arg);

/* Calls item(ctx, s, len) on each comma-separated item of spec, with white
 * space trimmed at both ends (an item may be empty), until one returns
 * non-zero; returns that, or 0.  An item that begins with rest_key (unless
 * NULL) is the last: it takes the rest of spec, commas and trailing white
 * space included. */
int xlspec_split(const char *spec, const char *rest_key,
                 int (*item)(void *ctx, const char *s, size_t len), void *ctx);

/* Decimal without sign or leading zero, at most max: 0, or -EINVAL. */
int xlspec_dec(const char *s, unsigned long max, unsigned long *out);

#endif
