/* Helpers for the xenstored unit tests: a client on the memory transport. */
#ifndef XS_TEST_H
#define XS_TEST_H

#include "domus/xenstore.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/xs_wire.h>

#include "check.h"

struct reply {
    struct xsd_sockmsg h;
    char body[XENSTORE_PAYLOAD_MAX + 1];
};

#define MAX_EV 512
struct tc {
    struct xs_conn *c;
    char ev[MAX_EV][160]; /* "path|token" of watch events seen */
    int nev;
    uint32_t req_id;
};

static inline void tc_open(struct tc *t, struct xs_daemon *d, unsigned domid)
{
    memset(t, 0, sizeof(*t));
    t->c = xs_conn_new(d, domid);
}

/* Sends one raw message; returns what xs_conn_input returned. */
static inline long tc_send(struct tc *t, uint32_t type, uint32_t tx, const void *p,
                           uint32_t len)
{
    char buf[sizeof(struct xsd_sockmsg) + 2 * XENSTORE_PAYLOAD_MAX];
    struct xsd_sockmsg h = {type, ++t->req_id, tx, len};
    memcpy(buf, &h, sizeof(h));
    if (len <= 2 * XENSTORE_PAYLOAD_MAX)
        memcpy(buf + sizeof(h), p, len);
    return xs_conn_input(t->c, buf,
                         sizeof(h) + (len <= 2 * XENSTORE_PAYLOAD_MAX ? len : 0));
}

/* Takes the next queued message; 0 if none. */
static inline int tc_next(struct tc *t, struct reply *r)
{
    if (xs_conn_pending(t->c) < sizeof(r->h))
        return 0;
    xs_conn_output(t->c, &r->h, sizeof(r->h));
    size_t len = r->h.len > XENSTORE_PAYLOAD_MAX ? XENSTORE_PAYLOAD_MAX : r->h.len;
    xs_conn_output(t->c, r->body, len);
    r->body[len] = '\0';
    return 1;
}

static inline void tc_stash(struct tc *t, const struct reply *r)
{
    if (t->nev < MAX_EV) {
        const char *tok = r->body + strlen(r->body) + 1;
        snprintf(t->ev[t->nev++], sizeof(t->ev[0]), "%.70s|%.70s", r->body, tok);
    }
}

/* Drains output, stashing watch events; returns the first non-event. */
static inline int tc_reply(struct tc *t, struct reply *r)
{
    while (tc_next(t, r)) {
        if (r->h.type != XS_WATCH_EVENT)
            return 1;
        tc_stash(t, r);
    }
    memset(r, 0, sizeof(*r));
    r->h.type = XS_INVALID;
    return 0;
}

static inline void tc_drain(struct tc *t)
{
    struct reply r;
    while (tc_next(t, &r))
        if (r.h.type == XS_WATCH_EVENT)
            tc_stash(t, &r);
}

static inline bool tc_has_event(struct tc *t, const char *path_token)
{
    tc_drain(t);
    for (int i = 0; i < t->nev; i++)
        if (!strcmp(t->ev[i], path_token))
            return true;
    return false;
}

/* Builds "a\0b\0..." from NULL-terminated args; returns the length. */
static inline uint32_t mkargs(char *buf, ...)
{
    va_list ap;
    uint32_t off = 0;
    va_start(ap, buf);
    for (const char *s; (s = va_arg(ap, const char *));) {
        size_t l = strlen(s) + 1;
        memcpy(buf + off, s, l);
        off += (uint32_t)l;
    }
    va_end(ap);
    return off;
}

static struct reply R;

/* A request with string args; the reply lands in R. */
#define REQ(t, type, tx, ...)                                                            \
    ({                                                                                   \
        char _b[2 * XENSTORE_PAYLOAD_MAX];                                               \
        uint32_t _l = mkargs(_b, __VA_ARGS__, (const char *)NULL);                       \
        tc_send((t), (type), (tx), _b, _l);                                              \
        tc_reply((t), &R);                                                               \
    })

static inline bool is_err(const char *e)
{
    return R.h.type == XS_ERROR && !strcmp(R.body, e);
}

static inline bool is_ok(uint32_t type)
{
    return R.h.type == type && !strcmp(R.body, "OK");
}

/* WRITE with a value not NUL-terminated, as libxenstore sends it. */
static inline void WR(struct tc *t, uint32_t tx, const char *path, const char *val)
{
    char b[2 * XENSTORE_PAYLOAD_MAX];
    size_t pl = strlen(path) + 1, vl = strlen(val);
    memcpy(b, path, pl);
    memcpy(b + pl, val, vl);
    tc_send(t, XS_WRITE, tx, b, (uint32_t)(pl + vl));
    tc_reply(t, &R);
}

#endif
