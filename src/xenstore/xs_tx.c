/* Views of the store and transactions.
 *
 * A transaction keeps, per path it touched, the node's generation in the
 * store when first seen (0: absent) and its current state inside the
 * transaction.  Commit fails with EAGAIN if any touched path changed in the
 * store since (read or written: writing a node's children list without
 * checking would lose a concurrent sibling), otherwise it puts every
 * modified path's state into the store and fires the watch events noted on
 * the entries, one per node. */
#include "xs_int.h"

#include <stdlib.h>
#include <string.h>

static void free_txent(struct xs_hent *e)
{
    struct xs_txent *t = (struct xs_txent *)e;
    node_free(t->node);
    free(t->ev_perms);
    free(t->h.name);
    free(t);
}

void tx_free(struct xs_tx *t)
{
    if (!t)
        return;
    htab_free(&t->ents, free_txent);
    free(t);
}

/* Charges n bytes of node copies to the transaction and its connection;
 * -ENOSPC when an unprivileged connection would pass quota tx_bytes. */
static int tx_charge(struct xs_view *v, size_t n)
{
    if (!conn_privileged(v->c) && v->c->tx_bytes + n > v->d->q.tx_bytes)
        return -ENOSPC;
    v->tx->bytes += n;
    v->c->tx_bytes += n;
    return 0;
}

/* Finds or creates the transaction entry for name. */
static int tx_ent(struct xs_view *v, const char *name, struct xs_txent **out)
{
    struct xs_tx *t = v->tx;
    struct xs_txent *e = (struct xs_txent *)htab_find(&t->ents, name);
    if (e) {
        *out = e;
        return 0;
    }
    if (!conn_privileged(v->c) && t->ents.n >= v->d->q.tx_nodes)
        return -ENOSPC;
    const struct xs_node *m = store_find(&v->d->store, name);
    int rc = tx_charge(v, strlen(name) + (m ? node_record_size(m) : 0));
    if (rc)
        return rc;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->h.name = strdup(name);
    e->base_gen = m ? m->gen : 0;
    e->node = m ? node_copy(m) : NULL;
    if (!e->h.name || (m && !e->node) || htab_insert(&t->ents, &e->h)) {
        free_txent(&e->h);
        return -ENOMEM;
    }
    if (t->last)
        t->last->order = e;
    else
        t->first = e;
    t->last = e;
    *out = e;
    return 0;
}

int view_get(struct xs_view *v, const char *name, const struct xs_node **out)
{
    *out = NULL;
    if (!v->tx) {
        *out = store_find(&v->d->store, name);
        return *out ? 0 : -ENOENT;
    }
    struct xs_txent *e;
    int rc = tx_ent(v, name, &e);
    if (rc)
        return rc;
    *out = e->node;
    return e->node ? 0 : -ENOENT;
}

static bool owned_by(const struct xs_node *n, unsigned domid)
{
    return n && n->nperms && n->perms[0].id == domid;
}

int view_put(struct xs_view *v, struct xs_node *n)
{
    if (!v->tx)
        return store_put(&v->d->store, n);
    struct xs_txent *e;
    int rc = tx_ent(v, n->h.name, &e);
    if (!rc)
        rc = tx_charge(v, node_record_size(n));
    if (rc) {
        node_free(n);
        return rc;
    }
    v->tx->delta_owned +=
        (int)owned_by(n, v->c->domid) - (int)owned_by(e->node, v->c->domid);
    node_free(e->node);
    e->node = n;
    e->modified = true;
    return 0;
}

int view_del(struct xs_view *v, const char *name)
{
    if (!v->tx) {
        store_del(&v->d->store, name);
        return 0;
    }
    struct xs_txent *e;
    int rc = tx_ent(v, name, &e);
    if (rc)
        return rc;
    v->tx->delta_owned -= (int)owned_by(e->node, v->c->domid);
    node_free(e->node);
    e->node = NULL;
    e->modified = true;
    return 0;
}

int tx_note_event(struct xs_view *v, const char *path, bool exact,
                  const struct xs_perm *p, unsigned n)
{
    struct xs_txent *e;
    int rc = tx_ent(v, path, &e);
    if (rc)
        return rc;
    if (e->ev) {
        e->ev_exact = e->ev_exact && exact;
        return 0;
    }
    rc = tx_charge(v, sizeof(*e) + (p ? n : 0) * sizeof(*p));
    if (rc)
        return rc;
    if (p && n) {
        e->ev_perms = malloc(n * sizeof(*p));
        if (!e->ev_perms)
            return -ENOMEM;
        memcpy(e->ev_perms, p, n * sizeof(*p));
        e->ev_nperms = n;
    }
    e->ev = true;
    e->ev_exact = exact;
    if (v->tx->ev_last)
        v->tx->ev_last->ev_next = e;
    else
        v->tx->ev_first = e;
    v->tx->ev_last = e;
    return 0;
}

static int tx_check(struct xs_daemon *d, struct xs_conn *c, struct xs_tx *t)
{
    for (struct xs_txent *e = t->first; e; e = e->order) {
        const struct xs_node *m = store_find(&d->store, e->h.name);
        if ((m ? m->gen : 0) != e->base_gen)
            return -EAGAIN;
    }
    if (!conn_privileged(c) && t->delta_owned > 0 &&
        d->store.owned[c->domid & (XS_DOMID_MAX - 1)] + (unsigned)t->delta_owned >
            d->q.nodes)
        return -ENOSPC;
    return 0;
}

int tx_commit(struct xs_daemon *d, struct xs_conn *c, struct xs_tx *t)
{
    if (t->fail)
        return t->fail;
    int rc = tx_check(d, c, t);
    if (rc)
        return rc;
    for (struct xs_txent *e = t->first; e; e = e->order) {
        if (!e->modified)
            continue;
        if (e->node) {
            struct xs_node *n = e->node;
            e->node = NULL;
            if (store_put(&d->store, n))
                rc = -ENOMEM; /* keep going: apply as much as we can */
        } else if (store_find(&d->store, e->h.name)) {
            store_del(&d->store, e->h.name);
        }
    }
    for (struct xs_txent *e = t->ev_first; e; e = e->ev_next)
        fire_event_now(d, e->h.name, e->ev_exact, e->ev_perms, e->ev_nperms);
    return rc;
}
