/* Pieces shared by the xl device spec parsers (contract: xlspec.h). */
#include "domus/xlspec.h"
#include "domus/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int xlspec_fail(const struct xlspec *s, const char *fmt, const char *arg)
{
    char why[256];

    snprintf(why, sizeof(why), fmt, arg);
    dfmt(s->err, s->errlen, "%s %u '%.200s': %s", s->what, s->n, s->spec, why);
    return -EINVAL;
}

int xlspec_split(const char *spec, const char *rest_key,
                 int (*item)(void *ctx, const char *s, size_t len), void *ctx)
{
    for (const char *s = spec;;) {
        while (isspace((unsigned char)*s))
            s++;
        if (rest_key && !strncmp(s, rest_key, strlen(rest_key)))
            return item(ctx, s, strlen(s));
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        while (len && isspace((unsigned char)s[len - 1]))
            len--;
        int rc = item(ctx, s, len);
        if (rc || !comma)
            return rc;
        s = comma + 1;
    }
}

int xlspec_dec(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (!isdigit((unsigned char)*s) || (s[0] == '0' && s[1]))
        return -EINVAL;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -EINVAL;
    }
    *out = v;
    return 0;
}
