/* xenstored watches: registration, matching and WATCH_EVENT delivery. */
#include "xs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Is child equal to parent or below it? ("/" is everyone's parent.) */
static bool is_child(const char *child, const char *parent)
{
    size_t len = strlen(parent);
    if (!strcmp(parent, "/"))
        return true;
    return !strncmp(child, parent, len) && (child[len] == '/' || child[len] == '\0');
}

static bool readable(struct xs_conn *c, const struct xs_perm *p, unsigned n)
{
    return p && n && (perm_for_conn(c, p, n) & XSP_READ);
}

/* The node or its parent must be readable (or was, per the old perms). */
static bool watch_permitted(struct xs_conn *c, const char *path, const struct xs_perm *p,
                            unsigned n)
{
    if (conn_privileged(c) || readable(c, p, n))
        return true;
    const struct xs_node *node = store_find(&c->d->store, path);
    if (node && readable(c, node->perms, node->nperms))
        return true;
    char *pp = xs_parent(path);
    const struct xs_node *parent = pp ? store_find(&c->d->store, pp) : NULL;
    free(pp);
    return parent && readable(c, parent->perms, parent->nperms);
}

static void send_event(struct xs_conn *c, const struct xs_watch *w, const char *path)
{
    if (w->relative) {
        char home[32];
        int hl = snprintf(home, sizeof(home), "/local/domain/%u", c->domid);
        if (!strncmp(path, home, (size_t)hl)) {
            path += hl;
            if (*path == '/')
                path++;
        }
    }
    size_t pl = strlen(path) + 1, tl = strlen(w->token) + 1;
    if (pl + tl > XENSTORE_PAYLOAD_MAX || c->out_bytes > c->d->q.out_bytes)
        return; /* Xen drops over-long events and events over quota */
    char buf[XENSTORE_PAYLOAD_MAX];
    memcpy(buf, path, pl);
    memcpy(buf + pl, w->token, tl);
    /* The same event still unsent at the tail says it already (Xen drops
     * duplicates of pending events, special ones excepted). */
    const struct xs_msg *m = c->out_tail;
    if (path[0] != '@' && m && !m->reply && m->off == 0 &&
        m->len == sizeof(struct xsd_sockmsg) + pl + tl &&
        !memcmp(m->data + sizeof(struct xsd_sockmsg), buf, pl + tl))
        return;
    if (conn_queue(c, XS_WATCH_EVENT, 0, 0, buf, (uint32_t)(pl + tl), false) == 0)
        c->d->st.watch_events++;
    if (c->d->trace)
        xs_trace(c, "EVENT", path);
}

/* Permission is checked only for a connection with a watch that matches,
 * once: checking every connection first stalled the daemon on a large
 * commit. */
void fire_event_now(struct xs_daemon *d, const char *path, bool exact,
                    const struct xs_perm *p, unsigned n)
{
    bool special = path[0] == '@';
    for (struct xs_conn *c = d->conns; c; c = c->next) {
        if (!c->watches || c->ignored)
            continue;
        int allowed = -1; /* not checked yet */
        for (struct xs_watch *w = c->watches; w && allowed; w = w->next) {
            if (exact ? strcmp(path, w->path) : !is_child(path, w->path))
                continue;
            if (allowed < 0) {
                d->st.watch_checks++;
                allowed =
                    special ? special_readable(c, path) : watch_permitted(c, path, p, n);
                if (!allowed)
                    break;
            }
            send_event(c, w, path);
        }
    }
}

/* Changes made in a transaction fire only when it commits. */
void fire_watches(struct xs_view *v, const char *path, bool exact,
                  const struct xs_perm *p, unsigned n)
{
    if (v->tx) {
        int rc = tx_note_event(v, path, exact, p, n);
        if (rc && !v->tx->fail)
            v->tx->fail = rc;
        return;
    }
    fire_event_now(v->d, path, exact, p, n);
}

static void watch_free(struct xs_watch *w)
{
    free(w->path);
    free(w->token);
    free(w);
}

/* Splits a WATCH/UNWATCH payload: exactly path and token. */
static int watch_args(struct xs_req *r, const char **path, const char **token)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < r->len; i++)
        n += r->p[i] == '\0';
    if (n != 2)
        return -EINVAL;
    *path = r->p;
    *token = r->p + strlen(r->p) + 1;
    return 0;
}

static int watch_path(struct xs_conn *c, const char *in, char **out, bool *relative)
{
    *relative = false;
    *out = NULL;
    if (in[0] == '@')
        return strlen(in) > XENSTORE_REL_PATH_MAX ? -EINVAL
               : (*out = strdup(in))              ? 0
                                                  : -ENOMEM;
    *relative = in[0] != '/';
    if (*relative) {
        if (asprintf(out, "/local/domain/%u/%s", c->domid, in) < 0)
            *out = NULL;
    } else {
        *out = strdup(in);
    }
    if (!*out)
        return -ENOMEM;
    return xs_valid_path(*out, c->d->q.path_len) ? 0 : -EINVAL;
}

int watch_add(struct xs_conn *c, struct xs_req *r)
{
    const char *arg, *token;
    char *path = NULL;
    bool relative;
    struct xs_watch *w = NULL;
    int rc = watch_args(r, &arg, &token);
    if (!rc)
        rc = watch_path(c, arg, &path, &relative);
    if (rc)
        goto out;
    for (w = c->watches; w; w = w->next)
        if (!strcmp(w->path, path) && !strcmp(w->token, token)) {
            rc = -EEXIST;
            goto out;
        }
    /* Xen 4.17 compares the count with '>'. */
    if (!conn_privileged(c) && c->nwatches > c->d->q.watches) {
        rc = -E2BIG;
        goto out;
    }
    w = calloc(1, sizeof(*w));
    if (!w || !(w->token = strdup(token))) {
        free(w);
        w = NULL;
        rc = -ENOMEM;
        goto out;
    }
    w->path = path;
    path = NULL;
    w->relative = relative;
    w->next = c->watches;
    c->watches = w;
    c->nwatches++;
    xs_reply(c, r, "OK", 3);
    send_event(c, w, w->path); /* fired once straight away */
out:
    free(path);
    return rc;
}

int watch_remove(struct xs_conn *c, struct xs_req *r)
{
    const char *arg, *token;
    char *path = NULL;
    bool relative;
    int rc = watch_args(r, &arg, &token);
    if (!rc) {
        rc = watch_path(c, arg, &path, &relative);
        if (rc == -EINVAL)
            rc = 0; /* Xen only canonicalizes here */
    }
    if (rc || !path)
        goto out;
    rc = -ENOENT;
    for (struct xs_watch **pp = &c->watches; *pp; pp = &(*pp)->next) {
        struct xs_watch *w = *pp;
        if (!strcmp(w->path, path) && !strcmp(w->token, token)) {
            *pp = w->next;
            watch_free(w);
            c->nwatches--;
            rc = 0;
            break;
        }
    }
out:
    free(path);
    return rc;
}

void watches_clear(struct xs_conn *c)
{
    struct xs_watch *w = c->watches, *next;
    for (; w; w = next) {
        next = w->next;
        watch_free(w);
    }
    c->watches = NULL;
    c->nwatches = 0;
}
