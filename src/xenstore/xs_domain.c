/* xenstored domains: INTRODUCE/RELEASE/RESUME/SET_TARGET, the special
 * @introduceDomain/@releaseDomain watches, and the ring transport over a
 * struct xenstore_domain_interface page whose indexes the guest controls. */
#include "xs_int.h"

#include "domus/util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define RD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WR(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define MB() __atomic_thread_fence(__ATOMIC_SEQ_CST)

struct xs_domain *dom_find(struct xs_daemon *d, unsigned domid)
{
    for (struct xs_domain *dom = d->doms; dom; dom = dom->next)
        if (dom->domid == domid)
            return dom;
    return NULL;
}

/* ---- ring transport ---- */

static void ring_notify(struct xs_domain *dom)
{
    uint64_t one = 1;
    if (dom->notify_fd >= 0 && write(dom->notify_fd, &one, sizeof(one)) < 0)
        dlog_debug("xenstore: notify dom%u: write failed", dom->domid);
}

/* Copies requests out of the ring into the connection; stops when the
 * connection takes no more (outstanding quota) or the ring is empty. */
static int ring_pull(struct xs_conn *c, struct xenstore_domain_interface *i,
                     size_t *moved)
{
    for (;;) {
        void *buf;
        size_t space = conn_rx_space(c, &buf);
        if (!space)
            return 0;
        XENSTORE_RING_IDX cons = RD(i->req_cons), prod = RD(i->req_prod);
        MB();
        if (prod - cons > XENSTORE_RING_SIZE)
            return -EIO;
        uint32_t avail = prod - cons,
                 chunk = XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(cons);
        if (!avail)
            return 0;
        if (chunk > avail)
            chunk = avail;
        if (chunk > space)
            chunk = (uint32_t)space;
        memcpy(buf, i->req + MASK_XENSTORE_IDX(cons), chunk);
        MB();
        WR(i->req_cons, cons + chunk);
        *moved += chunk;
        int rc = conn_rx_commit(c, chunk);
        if (rc)
            return rc;
    }
}

static int ring_push(struct xs_conn *c, struct xenstore_domain_interface *i,
                     size_t *moved)
{
    while (c->out_head) {
        struct xs_msg *m = c->out_head;
        XENSTORE_RING_IDX cons = RD(i->rsp_cons), prod = RD(i->rsp_prod);
        MB();
        if (prod - cons > XENSTORE_RING_SIZE)
            return -EIO;
        uint32_t space = XENSTORE_RING_SIZE - (prod - cons);
        uint32_t chunk = XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(prod);
        if (!space)
            return 0;
        if (chunk > space)
            chunk = space;
        if (chunk > m->len - m->off)
            chunk = m->len - m->off;
        memcpy(i->rsp + MASK_XENSTORE_IDX(prod), m->data + m->off, chunk);
        MB();
        WR(i->rsp_prod, prod + chunk);
        *moved += chunk;
        conn_consume(c, chunk);
    }
    return 0;
}

/* A guest that broke the ring protocol is no longer served (as Xen's
 * ignore_connection), until it asks to reconnect. */
static void ring_bad(struct xs_domain *dom, int rc)
{
    struct xenstore_domain_interface *i = dom->page;
    uint32_t err = rc == -EPROTO ? XENSTORE_ERROR_PROTO : XENSTORE_ERROR_RINGIDX;
    const char *why = err == XENSTORE_ERROR_PROTO ? "payload too long" : "bad ring index";
    if (!dom->warned)
        dwarn("xenstore: dom%u broke the ring protocol (%s); ignoring it", dom->domid,
              why);
    else
        dlog_debug("xenstore: dom%u broke the ring protocol (%s) again", dom->domid, why);
    dom->warned = true;
    WR(i->error, err);
    conn_reset(dom->conn);
    dom->conn->ignored = true;
}

static void ring_reset_page(struct xs_domain *dom)
{
    struct xenstore_domain_interface *i = dom->page;
    WR(i->req_cons, 0);
    WR(i->req_prod, 0);
    WR(i->rsp_cons, 0);
    WR(i->rsp_prod, 0);
    MB();
}

static void ring_reconnect(struct xs_domain *dom)
{
    struct xenstore_domain_interface *i = dom->page;
    conn_reset(dom->conn);
    dom->conn->ignored = false;
    ring_reset_page(dom);
    WR(i->error, XENSTORE_ERROR_NONE);
    MB();
    WR(i->connection, XENSTORE_CONNECTED);
    ring_notify(dom);
}

static void ring_service(struct xs_domain *dom)
{
    struct xs_conn *c = dom->conn;
    if (!c || c->dead || !dom->page)
        return;
    struct xenstore_domain_interface *i = dom->page;
    if (RD(i->connection) == XENSTORE_RECONNECT)
        ring_reconnect(dom);
    if (c->ignored)
        return;
    bool notify = false;
    int rc = 0;
    /* Bounded: a guest refilling the ring cannot keep us here forever. */
    for (int round = 0; round < 64 && rc == 0; round++) {
        size_t moved = 0;
        rc = ring_pull(c, i, &moved);
        if (rc == 0)
            rc = ring_push(c, i, &moved);
        if (!moved)
            break;
        notify = true;
    }
    if (rc)
        ring_bad(dom, rc);
    if (notify)
        ring_notify(dom);
}

void ring_kicked(struct xs_domain *dom)
{
    if (dom->dead)
        return;
    uint64_t v;
    if (dom->kick_fd >= 0 && read(dom->kick_fd, &v, sizeof(v)) < 0)
        dlog_debug("xenstore: kick dom%u: read failed", dom->domid);
    ring_service(dom);
}

static void ring_flush(struct xs_conn *c)
{
    ring_service(c->opaque);
}

static void ring_destroy(struct xs_conn *c)
{
    struct xs_domain *dom = c->opaque;
    if (dom->kick_fd >= 0 && c->d->epfd >= 0)
        epoll_ctl(c->d->epfd, EPOLL_CTL_DEL, dom->kick_fd, NULL);
    dom->conn = NULL;
}

static const struct xs_conn_ops ring_ops = {ring_flush, ring_destroy, NULL};

/* ---- domains ---- */

static struct xs_domain *dom_new(struct xs_daemon *d, unsigned domid)
{
    struct xs_domain *dom = calloc(1, sizeof(*dom));
    if (!dom)
        return NULL;
    dom->ev.kind = XS_EV_RING;
    dom->domid = domid;
    dom->notify_fd = dom->kick_fd = -1;
    dom->next = d->doms;
    d->doms = dom;
    return dom;
}

static int dom_attach(struct xs_daemon *d, struct xs_domain *dom, void *page, int nfd,
                      int kfd)
{
    struct xs_conn *c = conn_new(d, dom->domid, &ring_ops, dom);
    if (!c)
        return -ENOMEM;
    if (kfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &dom->ev};
        if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, kfd, &ev)) {
            int rc = -errno;
            conn_kill(c);
            return rc;
        }
    }
    c->dom = dom;
    dom->conn = c;
    dom->page = page;
    dom->notify_fd = nfd;
    dom->kick_fd = kfd;
    struct xenstore_domain_interface *i = page;
    ring_reset_page(dom);
    WR(i->server_features,
       XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR);
    WR(i->error, XENSTORE_ERROR_NONE);
    if (RD(i->connection) == XENSTORE_RECONNECT) {
        WR(i->connection, XENSTORE_CONNECTED);
        ring_notify(dom);
    }
    return 0;
}

static void dom_unlink(struct xs_daemon *d, struct xs_domain *dom)
{
    for (struct xs_domain **pp = &d->doms; *pp; pp = &(*pp)->next)
        if (*pp == dom) {
            *pp = dom->next;
            return;
        }
}

/* Unlinks dom; the memory goes at the next xs_daemon_flush, as epoll may
 * still hold an event for it. */
void dom_bury(struct xs_daemon *d, struct xs_domain *dom)
{
    dom_unlink(d, dom);
    dom->dead = true;
    dom->next = d->dom_graveyard;
    d->dom_graveyard = dom;
}

static void dom_drop_ring(struct xs_daemon *d, struct xs_domain *dom)
{
    if (dom->conn)
        conn_kill(dom->conn);
    if (dom->hooked && d->hooks.unmap)
        d->hooks.unmap(d->hooks.opaque, dom->domid, dom->page, dom->notify_fd,
                       dom->kick_fd);
    dom->page = NULL;
    dom->hooked = false;
}

static int cmp_len(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? -1 : la > lb;
}

/* Removes every node the domain owns, with its subtree (Xen without
 * --keep-orphans). */
static void remove_owned_nodes(struct xs_daemon *d, unsigned domid)
{
    size_t num = 0, cap = d->store.owned[domid & (XS_DOMID_MAX - 1)];
    char **names = cap ? calloc(cap, sizeof(char *)) : NULL;
    for (size_t b = 0; names && b < d->store.nodes.nb; b++)
        for (struct xs_hent *e = d->store.nodes.b[b]; e && num < cap; e = e->hnext) {
            struct xs_node *n = (struct xs_node *)e;
            if (n->nperms && n->perms[0].id == domid && strcmp(n->h.name, "/"))
                names[num++] = strdup(n->h.name);
        }
    if (names)
        qsort(names, num, sizeof(char *), cmp_len);
    struct xs_view v = {.d = d, .c = NULL, .tx = NULL};
    for (size_t i = 0; i < num; i++) {
        if (names[i] && store_find(&d->store, names[i]) && rm_tree(&v, names[i]))
            dwarn("xenstore: could not remove %s of dom%u", names[i], domid);
        free(names[i]);
    }
    free(names);
}

static bool acl_mentions(const struct xs_node *n, unsigned domid)
{
    for (unsigned i = 1; i < n->nperms; i++)
        if (n->perms[i].id == domid)
            return true;
    return false;
}

/* A later domain reusing the domid must not inherit the access the released
 * one was granted (Xen ignores such entries; Domus drops them). */
static void forget_acl_entries(struct xs_daemon *d, unsigned domid)
{
    size_t num = 0, cap = 16;
    char **names = malloc(cap * sizeof(char *));
    for (size_t b = 0; names && b < d->store.nodes.nb; b++)
        for (struct xs_hent *e = d->store.nodes.b[b]; e; e = e->hnext) {
            if (!acl_mentions((struct xs_node *)e, domid))
                continue;
            if (num == cap) {
                char **nn = realloc(names, (cap *= 2) * sizeof(char *));
                if (!nn)
                    goto out;
                names = nn;
            }
            names[num++] = strdup(e->name);
        }
out:
    for (size_t i = 0; i < num; i++) {
        struct xs_node *n = names[i] ? store_find(&d->store, names[i]) : NULL;
        struct xs_node *cp = n ? node_copy(n) : NULL;
        if (cp) {
            unsigned k = 1;
            for (unsigned j = 1; j < cp->nperms; j++)
                if (cp->perms[j].id != domid)
                    cp->perms[k++] = cp->perms[j];
            cp->nperms = k;
            store_put(&d->store, cp);
        }
        free(names[i]);
    }
    free(names);
}

static void special_forget(struct xs_perm *p, unsigned *n, unsigned domid)
{
    if (p[0].id == domid)
        p[0].id = 0;
    unsigned k = 1;
    for (unsigned i = 1; i < *n; i++)
        if (p[i].id != domid)
            p[k++] = p[i];
    *n = k;
}

static void dom_destroy(struct xs_daemon *d, struct xs_domain *dom)
{
    unsigned domid = dom->domid;
    dom_drop_ring(d, dom);
    dom_bury(d, dom);
    for (struct xs_conn *c = d->conns; c; c = c->next)
        if (c->target == (int)domid)
            c->target = -1;
    remove_owned_nodes(d, domid);
    forget_acl_entries(d, domid);
    special_forget(d->sp_intro, &d->sp_intro_n, domid);
    special_forget(d->sp_release, &d->sp_release_n, domid);
    fire_event_now(d, "@releaseDomain", true, NULL, 0);
}

void domains_free(struct xs_daemon *d)
{
    while (d->doms) {
        struct xs_domain *dom = d->doms;
        dom_drop_ring(d, dom);
        dom_unlink(d, dom);
        free(dom);
    }
}

static bool real_domid(long domid)
{
    return domid > 0 && domid < XS_DOMID_FIRST_RESERVED;
}

static int introduce(struct xs_daemon *d, unsigned domid, uint64_t gfn, unsigned port)
{
    struct xs_domain *dom = dom_find(d, domid);
    if (dom) { /* again: reset the connection, as Xen does */
        if (dom->conn) {
            conn_reset(dom->conn);
            dom->conn->ignored = false;
            ring_reset_page(dom);
        }
        return 0;
    }
    void *page = NULL;
    int nfd = -1, kfd = -1, rc = 0;
    if (d->hooks.map) {
        rc = d->hooks.map(d->hooks.opaque, domid, gfn, port, &page, &nfd, &kfd);
        if (rc)
            return rc < 0 ? rc : -EINVAL;
    }
    dom = dom_new(d, domid);
    if (dom && page) {
        dom->hooked = true;
        rc = dom_attach(d, dom, page, nfd, kfd);
    }
    if (!dom || rc) {
        if (dom) {
            dom_drop_ring(d, dom);
            dom_bury(d, dom);
        } else if (page && d->hooks.unmap) {
            d->hooks.unmap(d->hooks.opaque, domid, page, nfd, kfd);
        }
        return rc ? rc : -ENOMEM;
    }
    fire_event_now(d, "@introduceDomain", true, NULL, 0);
    return 0;
}

/* domid | gfn | evtchn | */
int do_introduce(struct xs_conn *c, struct xs_req *r)
{
    if (xs_req_nstrings(r) < 3)
        return -EINVAL;
    const char *s1 = r->p + strlen(r->p) + 1;
    const char *s2 = s1 + strlen(s1) + 1;
    long domid = atol(r->p), port = atol(s2);
    uint64_t gfn = strtoull(s1, NULL, 10);
    if (port <= 0 || port > UINT32_MAX || !real_domid(domid))
        return -EINVAL;
    int rc = introduce(c->d, (unsigned)domid, gfn, (unsigned)port);
    if (rc == 0)
        xs_reply(c, r, "OK", 3);
    return rc;
}

static int onearg_domain(struct xs_conn *c, struct xs_req *r, struct xs_domain **out)
{
    const char *arg = xs_req_onearg(r);
    if (!arg)
        return -EINVAL;
    long domid = atol(arg);
    if (domid == 0)
        return -EINVAL;
    *out = (domid > 0 && domid < (long)XS_DOMID_MAX) ? dom_find(c->d, (unsigned)domid)
                                                     : NULL;
    return *out ? 0 : -ENOENT;
}

int do_release(struct xs_conn *c, struct xs_req *r)
{
    struct xs_domain *dom;
    int rc = onearg_domain(c, r, &dom);
    if (rc)
        return rc;
    dom_destroy(c->d, dom);
    xs_reply(c, r, "OK", 3);
    return 0;
}

int do_resume(struct xs_conn *c, struct xs_req *r)
{
    struct xs_domain *dom;
    int rc = onearg_domain(c, r, &dom);
    if (rc)
        return rc;
    dom->shutdown = false;
    xs_reply(c, r, "OK", 3);
    return 0;
}

static int connected_domain(struct xs_daemon *d, long domid, struct xs_domain **out)
{
    *out =
        (domid >= 0 && domid < (long)XS_DOMID_MAX) ? dom_find(d, (unsigned)domid) : NULL;
    if (!*out)
        return -ENOENT;
    return (*out)->conn ? 0 : -EINVAL;
}

int do_set_target(struct xs_conn *c, struct xs_req *r)
{
    if (xs_req_nstrings(r) < 2)
        return -EINVAL;
    struct xs_domain *dom, *tdom;
    int rc = connected_domain(c->d, atol(r->p), &dom);
    if (!rc)
        rc = connected_domain(c->d, atol(r->p + strlen(r->p) + 1), &tdom);
    if (rc)
        return rc;
    dom->conn->target = (int)tdom->domid;
    xs_reply(c, r, "OK", 3);
    return 0;
}

int do_is_introduced(struct xs_conn *c, struct xs_req *r)
{
    const char *arg = xs_req_onearg(r);
    if (!arg)
        return -EINVAL;
    long domid = atol(arg);
    bool yes =
        domid == XS_DOMID_SELF || domid == 0 ||
        (domid > 0 && domid < (long)XS_DOMID_MAX && dom_find(c->d, (unsigned)domid));
    xs_reply(c, r, yes ? "T" : "F", 2);
    return 0;
}

/* ---- special watch permissions ---- */

static int special_slot(struct xs_daemon *d, const char *name, struct xs_perm ***p,
                        unsigned **n)
{
    if (!strcmp(name, "@releaseDomain")) {
        *p = &d->sp_release;
        *n = &d->sp_release_n;
    } else if (!strcmp(name, "@introduceDomain")) {
        *p = &d->sp_intro;
        *n = &d->sp_intro_n;
    } else {
        return -EINVAL;
    }
    return 0;
}

/* Takes ownership of p. */
int set_perms_special(struct xs_conn *c, const char *name, struct xs_perm *p, unsigned n)
{
    struct xs_perm **slot;
    unsigned *slot_n;
    int rc = special_slot(c->d, name, &slot, &slot_n);
    if (!rc && (perm_for_conn(c, *slot, *slot_n) & (XSP_WRITE | XSP_OWNER)) !=
                   (XSP_WRITE | XSP_OWNER))
        rc = -EACCES;
    if (rc) {
        free(p);
        return rc;
    }
    free(*slot);
    *slot = p;
    *slot_n = n;
    return 0;
}

bool special_readable(struct xs_conn *c, const char *name)
{
    struct xs_perm **slot;
    unsigned *slot_n;
    if (special_slot(c->d, name, &slot, &slot_n))
        return false;
    return perm_for_conn(c, *slot, *slot_n) & XSP_READ;
}

/* ---- hypervisor-side API ---- */

int xs_ring_attach(struct xs_daemon *d, unsigned domid, void *page, int notify_fd,
                   int kick_fd)
{
    if (!real_domid(domid) || !page)
        return -EINVAL;
    struct xs_domain *dom = dom_find(d, domid);
    if (dom && dom->conn)
        return -EEXIST;
    bool fresh = !dom;
    if (fresh && !(dom = dom_new(d, domid)))
        return -ENOMEM;
    int rc = dom_attach(d, dom, page, notify_fd, kick_fd);
    if (rc) {
        if (fresh)
            dom_bury(d, dom);
        return rc;
    }
    if (fresh)
        fire_event_now(d, "@introduceDomain", true, NULL, 0);
    xs_daemon_flush(d);
    return 0;
}

int xs_ring_kick(struct xs_daemon *d, unsigned domid)
{
    struct xs_domain *dom = domid < XS_DOMID_MAX ? dom_find(d, domid) : NULL;
    if (!dom || !dom->conn)
        return -ENOENT;
    ring_service(dom);
    xs_daemon_flush(d);
    return 0;
}

int xs_domain_shutdown(struct xs_daemon *d, unsigned domid)
{
    struct xs_domain *dom = domid < XS_DOMID_MAX ? dom_find(d, domid) : NULL;
    if (!dom)
        return -ENOENT;
    if (!dom->shutdown) {
        dom->shutdown = true;
        fire_event_now(d, "@releaseDomain", true, NULL, 0);
        xs_daemon_flush(d);
    }
    return 0;
}

int xs_domain_release(struct xs_daemon *d, unsigned domid)
{
    struct xs_domain *dom = domid < XS_DOMID_MAX ? dom_find(d, domid) : NULL;
    if (!dom)
        return -ENOENT;
    dom_destroy(d, dom);
    xs_daemon_flush(d);
    return 0;
}
