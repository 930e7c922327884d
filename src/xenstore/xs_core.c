/* xenstored core: daemon, connections, message framing and output queues.
 * Transport independent: transports move bytes with conn_rx_space /
 * conn_rx_commit and the output queue (out_head). */
#include "xs_int.h"

#include "domus/util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

void xs_quota_defaults(struct xs_quota *q)
{
    q->nodes = 1000;
    q->node_size = 2048;
    q->watches = 128;
    q->transactions = 10;
    q->perms = 5;
    q->outstanding = 20;
    q->path_len = XENSTORE_REL_PATH_MAX;
    q->tx_nodes = 1024;
    q->out_bytes = 1u << 20;
    q->tx_bytes = 2u << 20;
}

bool conn_privileged(const struct xs_conn *c)
{
    return c->domid == 0;
}

unsigned perm_for_conn(const struct xs_conn *c, const struct xs_perm *p, unsigned n)
{
    const unsigned all = XSP_READ | XSP_WRITE | XSP_OWNER;
    if (conn_privileged(c) || !n)
        return conn_privileged(c) ? all : XSP_NONE;
    if (p[0].id == c->domid || (c->target >= 0 && p[0].id == (unsigned)c->target))
        return all;
    for (unsigned i = 1; i < n; i++)
        if (p[i].id == c->domid || (c->target >= 0 && p[i].id == (unsigned)c->target))
            return p[i].perms & all;
    return p[0].perms & all;
}

struct xs_daemon *xs_daemon_new(const struct xs_quota *q)
{
    struct xs_daemon *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    if (q)
        d->q = *q;
    else
        xs_quota_defaults(&d->q);
    d->listen_fd = -1;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->sp_intro = calloc(1, sizeof(*d->sp_intro));
    d->sp_release = calloc(1, sizeof(*d->sp_release));
    d->sp_intro_n = d->sp_release_n = 1;
    if (d->epfd < 0 || !d->sp_intro || !d->sp_release || store_init(&d->store)) {
        if (d->epfd >= 0)
            close(d->epfd);
        free(d->sp_intro);
        free(d->sp_release);
        free(d);
        return NULL;
    }
    return d;
}

void xs_daemon_set_ring_hooks(struct xs_daemon *d, const struct xs_ring_hooks *h)
{
    d->hooks = *h;
}

void xs_daemon_stats(const struct xs_daemon *d, struct xs_stats *st)
{
    *st = d->st;
    st->nodes = d->store.nodes.n;
    st->conns = 0;
    for (struct xs_conn *c = d->conns; c; c = c->next)
        st->conns++;
}

/* ---- connections ---- */

struct xs_conn *conn_new(struct xs_daemon *d, unsigned domid,
                         const struct xs_conn_ops *ops, void *opaque)
{
    struct xs_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->in_buf = malloc(XENSTORE_PAYLOAD_MAX + 1);
    if (!c->in_buf) {
        free(c);
        return NULL;
    }
    c->d = d;
    c->domid = domid;
    c->target = -1;
    c->ops = ops;
    c->opaque = opaque;
    c->in_hdr = true;
    c->next_txid = 1;
    c->next = d->conns;
    if (d->conns)
        d->conns->prev = c;
    d->conns = c;
    return c;
}

static void out_clear(struct xs_conn *c)
{
    struct xs_msg *m = c->out_head, *next;
    for (; m; m = next) {
        next = m->next;
        free(m);
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
    c->out_replies = 0;
}

void conn_txs_clear(struct xs_conn *c)
{
    struct xs_tx *t = c->txs, *next;
    for (; t; t = next) {
        next = t->next;
        tx_free(t);
    }
    c->txs = NULL;
    c->ntx = 0;
    c->tx_bytes = 0;
}

void conn_reset(struct xs_conn *c)
{
    watches_clear(c);
    conn_txs_clear(c);
    out_clear(c);
    c->in_hdr = true;
    c->in_used = 0;
}

/* Unlinks c from the daemon's lists and drops its state.  The memory itself
 * stays until xs_daemon_flush (transports may still hold the pointer). */
void conn_kill(struct xs_conn *c)
{
    if (c->dead)
        return;
    struct xs_daemon *d = c->d;
    conn_reset(c);
    c->dead = true;
    if (c->dirty) {
        for (struct xs_conn **pp = &d->dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == c) {
                *pp = c->dirty_next;
                break;
            }
        c->dirty = false;
    }
    if (c->ops && c->ops->destroy)
        c->ops->destroy(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = d->graveyard;
    c->prev = NULL;
    d->graveyard = c;
}

void conn_mark_dirty(struct xs_conn *c)
{
    if (c->dirty || c->dead)
        return;
    c->dirty = true;
    c->dirty_next = c->d->dirty;
    c->d->dirty = c;
}

int conn_queue(struct xs_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id,
               const void *data, uint32_t len, bool reply)
{
    if (c->dead || c->ignored)
        return -EPIPE;
    struct xs_msg *m = malloc(sizeof(*m) + sizeof(struct xsd_sockmsg) + len);
    if (!m)
        return -ENOMEM;
    struct xsd_sockmsg h = {.type = type, .req_id = req_id, .tx_id = tx_id, .len = len};
    memcpy(m->data, &h, sizeof(h));
    if (len)
        memcpy(m->data + sizeof(h), data, len);
    m->next = NULL;
    m->len = (uint32_t)(sizeof(h) + len);
    m->off = 0;
    m->reply = reply;
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    c->out_bytes += m->len;
    c->out_replies += reply;
    conn_mark_dirty(c);
    return 0;
}

void conn_consume(struct xs_conn *c, size_t n)
{
    while (n && c->out_head) {
        struct xs_msg *m = c->out_head;
        size_t k = m->len - m->off;
        if (k > n)
            k = n;
        m->off += (uint32_t)k;
        c->out_bytes -= k;
        n -= k;
        if (m->off == m->len) {
            c->out_head = m->next;
            if (!c->out_head)
                c->out_tail = NULL;
            c->out_replies -= m->reply;
            free(m);
        }
    }
}

/* ---- input framing ---- */

size_t conn_rx_space(struct xs_conn *c, void **buf)
{
    if (c->dead || c->ignored)
        return 0;
    if (!conn_privileged(c) && c->out_replies >= c->d->q.outstanding)
        return 0;
    if (c->out_bytes > c->d->q.out_bytes)
        return 0;
    if (c->in_hdr) {
        *buf = (char *)&c->hdr + c->in_used;
        return sizeof(c->hdr) - c->in_used;
    }
    *buf = c->in_buf + c->in_used;
    return c->hdr.len - c->in_used;
}

static void conn_dispatch(struct xs_conn *c)
{
    struct xs_req r = {
        .type = c->hdr.type,
        .req_id = c->hdr.req_id,
        .tx_id = c->hdr.tx_id,
        .len = c->hdr.len,
        .p = c->in_buf,
    };
    c->in_buf[r.len] = '\0';
    c->in_hdr = true;
    c->in_used = 0;
    c->d->st.requests++;
    xs_process(c, &r);
}

/* Records n bytes written at conn_rx_space's buffer; processes a complete
 * message.  -EPROTO: the client broke the framing (payload too long). */
int conn_rx_commit(struct xs_conn *c, size_t n)
{
    c->in_used += (uint32_t)n;
    if (c->in_hdr) {
        if (c->in_used < sizeof(c->hdr))
            return 0;
        if (c->hdr.len > XENSTORE_PAYLOAD_MAX)
            return -EPROTO;
        c->in_hdr = false;
        c->in_used = 0;
    }
    if (c->in_used == c->hdr.len)
        conn_dispatch(c);
    return 0;
}

long conn_input(struct xs_conn *c, const void *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        void *buf;
        size_t space = conn_rx_space(c, &buf);
        if (!space)
            break;
        if (space > len - done)
            space = len - done;
        memcpy(buf, (const char *)data + done, space);
        done += space;
        if (conn_rx_commit(c, space))
            return -EPROTO;
    }
    return (long)done;
}

/* ---- flushing and reaping ---- */

void xs_daemon_flush(struct xs_daemon *d)
{
    /* Flushing a ring may process more input and dirty more connections. */
    for (int round = 0; d->dirty && round < 64; round++) {
        struct xs_conn *list = d->dirty;
        d->dirty = NULL;
        while (list) {
            struct xs_conn *c = list;
            list = c->dirty_next;
            c->dirty = false;
            if (!c->dead && c->ops && c->ops->flush)
                c->ops->flush(c);
        }
    }
    struct xs_conn *c = d->graveyard, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->ops && c->ops->release)
            c->ops->release(c);
        free(c->in_buf);
        free(c);
    }
    d->graveyard = NULL;
    struct xs_domain *dom = d->dom_graveyard, *dnext;
    for (; dom; dom = dnext) {
        dnext = dom->next;
        free(dom);
    }
    d->dom_graveyard = NULL;
}

/* ---- memory transport ---- */

static const struct xs_conn_ops mem_ops = {NULL, NULL, NULL};

struct xs_conn *xs_conn_new(struct xs_daemon *d, unsigned domid)
{
    struct xs_conn *c = conn_new(d, domid & (XS_DOMID_MAX - 1), &mem_ops, NULL);
    if (c)
        c->memory = true;
    return c;
}

long xs_conn_input(struct xs_conn *c, const void *data, size_t len)
{
    if (c->dead || c->ignored)
        return -EPROTO;
    long rc = conn_input(c, data, len);
    if (rc < 0) {
        /* The client broke the protocol: Xen drops a socket client.  The
         * handle stays valid until xs_conn_free. */
        conn_reset(c);
        c->ignored = true;
    }
    xs_daemon_flush(c->d);
    return rc;
}

size_t xs_conn_output(struct xs_conn *c, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len && c->out_head) {
        struct xs_msg *m = c->out_head;
        size_t k = m->len - m->off;
        if (k > len - done)
            k = len - done;
        memcpy((char *)buf + done, m->data + m->off, k);
        done += k;
        conn_consume(c, k);
    }
    return done;
}

size_t xs_conn_pending(const struct xs_conn *c)
{
    return c->out_bytes;
}

void xs_conn_free(struct xs_conn *c)
{
    if (!c)
        return;
    struct xs_daemon *d = c->d;
    conn_kill(c);
    xs_daemon_flush(d);
}

void xs_daemon_set_trace(struct xs_daemon *d, FILE *f)
{
    d->trace = f;
}

void xs_trace(const struct xs_conn *c, const char *what, const char *arg)
{
    struct timespec ts;
    char safe[97];
    size_t i;

    /* A guest's bytes: no control character reaches the file (no forged
     * lines). */
    for (i = 0; i < sizeof(safe) - 1 && arg[i]; i++)
        safe[i] = arg[i] < 0x20 || arg[i] == 0x7f ? '?' : arg[i];
    safe[i] = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(c->d->trace, "%lld.%06ld dom%u %s %s\n", (long long)ts.tv_sec,
            ts.tv_nsec / 1000, c->domid, what, safe);
    fflush(c->d->trace);
}

void xs_daemon_free(struct xs_daemon *d)
{
    if (!d)
        return;
    domains_free(d);
    while (d->conns)
        conn_kill(d->conns);
    xs_daemon_flush(d);
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    if (d->sock_path)
        unlink(d->sock_path);
    free(d->sock_path);
    if (d->epfd >= 0)
        close(d->epfd);
    store_fini(&d->store);
    free(d->sp_intro);
    free(d->sp_release);
    free(d);
}
