/* xenstored request handlers: one function per xsd_sockmsg_type, dispatched
 * through a table with per-type flags (privileged only, transaction id
 * ignored), as Xen's xenstored does. */
#include "xs_int.h"

#include "domus/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int send_error(struct xs_conn *c, struct xs_req *r, int err)
{
    const char *name = xs_errno_name(err);
    c->d->st.errors++;
    return conn_queue(c, XS_ERROR, r->req_id, r->tx_id, name, (uint32_t)strlen(name) + 1,
                      true);
}

void xs_reply(struct xs_conn *c, struct xs_req *r, const void *data, uint32_t len)
{
    if (len > XENSTORE_PAYLOAD_MAX) {
        send_error(c, r, E2BIG);
        return;
    }
    if (conn_queue(c, r->type, r->req_id, r->tx_id, data, len, true) == -ENOMEM)
        send_error(c, r, ENOMEM);
}

static int ack(struct xs_conn *c, struct xs_req *r)
{
    xs_reply(c, r, "OK", 3);
    return 0;
}

unsigned xs_req_nstrings(const struct xs_req *r)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < r->len; i++)
        n += r->p[i] == '\0';
    return n;
}

const char *xs_req_onearg(const struct xs_req *r)
{
    if (!r->len || memchr(r->p, 0, r->len) != r->p + r->len - 1)
        return NULL;
    return r->p;
}

static char *canonicalize(struct xs_conn *c, const char *path)
{
    if (path[0] == '/' || path[0] == '@')
        return strdup(path);
    char *s;
    if (asprintf(&s, "/local/domain/%u/%s", c->domid, path) < 0)
        return NULL;
    return s;
}

static bool too_big(struct xs_conn *c, const struct xs_node *n)
{
    return !conn_privileged(c) && node_record_size(n) >= c->d->q.node_size;
}

/* Xen hides a node's existence from who may not know: an error on name is
 * turned into EACCES unless the nearest existing parent grants perm. */
static int errno_from_parents(struct xs_view *v, const char *name, int rc, unsigned perm)
{
    char *p = strdup(name);
    const struct xs_node *n = NULL;
    while (p && strcmp(p, "/")) {
        char *q = xs_parent(p);
        free(p);
        p = q;
        if (p && view_get(v, p, &n) == 0)
            break;
    }
    bool oom = !p;
    free(p);
    if (oom)
        return -ENOMEM;
    if (n && (perm_for_conn(v->c, n->perms, n->nperms) & perm))
        return rc;
    return -EACCES;
}

static int get_node(struct xs_view *v, const char *name, unsigned perm,
                    const struct xs_node **out)
{
    *out = NULL;
    if (!name || !xs_valid_path(name, v->d->q.path_len))
        return -EINVAL;
    int rc = view_get(v, name, out);
    if (!rc && (perm_for_conn(v->c, (*out)->perms, (*out)->nperms) & perm) != perm) {
        rc = -EACCES;
        *out = NULL;
    }
    if (rc && rc != -ENOMEM && rc != -ENOSPC)
        rc = errno_from_parents(v, name, rc, perm);
    return rc;
}

/* ---- node creation and removal ---- */

struct pending {
    struct xs_node **n;
    unsigned num;
};

static void pending_free(struct pending *p)
{
    for (unsigned i = 0; i < p->num; i++)
        node_free(p->n[i]);
    free(p->n);
}

static int pending_add(struct pending *p, struct xs_node *n, unsigned cap)
{
    if (!n)
        return -ENOMEM;
    if (p->num == cap) {
        node_free(n);
        return -ENOMEM;
    }
    p->n[p->num++] = n;
    return 0;
}

static unsigned owned_now(struct xs_view *v)
{
    unsigned o = v->d->store.owned[v->c->domid & (XS_DOMID_MAX - 1)];
    if (v->tx)
        o += (unsigned)v->tx->delta_owned;
    return o;
}

/* Collects the missing ancestors of name (name first); *anc = the nearest
 * existing one. */
static int missing_chain(struct xs_view *v, const char *name, char ***names,
                         unsigned *num, const struct xs_node **anc)
{
    size_t cap = 8;
    int rc = 0;
    *num = 0;
    *names = malloc(cap * sizeof(char *));
    char *cur = strdup(name);
    while (rc == 0 && cur && *names) {
        if (*num == cap) {
            char **nn = realloc(*names, (cap *= 2) * sizeof(char *));
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            *names = nn;
        }
        (*names)[(*num)++] = cur;
        cur = xs_parent(cur);
        if (!cur)
            break;
        rc = view_get(v, cur, anc);
        if (rc == 0)
            break;
        if (rc == -ENOENT && strcmp(cur, "/"))
            rc = 0;
        else
            rc = rc == -ENOENT ? -EIO : rc;
    }
    bool ok = cur && *names;
    free(cur);
    if (!ok && rc == 0)
        rc = -ENOMEM;
    return rc;
}

static int build_chain(struct xs_view *v, char **names, unsigned num,
                       const struct xs_node *anc, const void *data, unsigned len,
                       struct pending *p)
{
    struct xs_node *parent = node_copy(anc);
    int rc = pending_add(p, parent, num + 1);
    for (unsigned i = num; rc == 0 && i-- > 0;) {
        struct xs_node *n = node_new(names[i]);
        rc = node_add_child(parent, xs_basename(names[i]));
        if (!rc)
            rc = pending_add(p, n, num + 1);
        else
            node_free(n);
        if (!rc)
            rc = node_set_perms(n, parent->perms, parent->nperms);
        if (rc)
            break;
        if (!conn_privileged(v->c)) {
            n->perms[0].id = v->c->domid;
            if (owned_now(v) + (num - i) > v->d->q.nodes)
                rc = -ENOSPC;
        }
        parent = n;
    }
    if (!rc)
        rc = node_set_data(parent, data, len);
    for (unsigned i = 0; !rc && i < p->num; i++)
        if (too_big(v->c, p->n[i]))
            rc = -ENOSPC;
    return rc;
}

static int create_node(struct xs_view *v, const char *name, const void *data,
                       unsigned len)
{
    char **names = NULL;
    unsigned num = 0;
    const struct xs_node *anc = NULL;
    struct pending p = {NULL, 0};
    int rc = missing_chain(v, name, &names, &num, &anc);
    if (rc)
        goto out;
    p.n = calloc(num + 1, sizeof(*p.n));
    rc = p.n ? build_chain(v, names, num, anc, data, len, &p) : -ENOMEM;
    if (rc)
        goto out;
    for (unsigned i = 0; i < p.num; i++) {
        int r2 = view_put(v, p.n[i]);
        p.n[i] = NULL;
        if (r2 && !rc)
            rc = r2;
    }
    if (rc && v->tx && !v->tx->fail)
        v->tx->fail = rc;
out:
    pending_free(&p);
    for (unsigned i = 0; i < num; i++)
        free(names[i]);
    free(names);
    return rc;
}

static char *child_path(const char *parent, const char *leaf)
{
    char *s;
    if (asprintf(&s, "%s/%s", strcmp(parent, "/") ? parent : "", leaf) < 0)
        return NULL;
    return s;
}

/* Removes name and its subtree; children fire exact watches, name fires
 * watches on itself and its parents unless exact. */
static int rm_sub(struct xs_view *v, const char *name, bool exact)
{
    const struct xs_node *n;
    int rc = view_get(v, name, &n);
    if (rc)
        return rc == -ENOENT ? 0 : rc;
    struct xs_node *snap = node_copy(n);
    if (!snap)
        return -ENOMEM;
    for (unsigned off = 0; rc == 0 && off < snap->childlen;) {
        const char *leaf = snap->children + off;
        char *cp = child_path(name, leaf);
        rc = cp ? rm_sub(v, cp, true) : -ENOMEM;
        free(cp);
        off += (unsigned)strlen(leaf) + 1;
    }
    if (rc == 0) {
        fire_watches(v, name, exact, snap->perms, snap->nperms);
        rc = view_del(v, name);
    }
    node_free(snap);
    return rc;
}

int rm_tree(struct xs_view *v, const char *name)
{
    char *pname = xs_parent(name);
    const struct xs_node *parent;
    int rc = pname ? view_get(v, pname, &parent) : -ENOMEM;
    if (rc)
        goto out;
    struct xs_node *pc = node_copy(parent);
    rc = pc ? rm_sub(v, name, false) : -ENOMEM;
    if (rc) {
        node_free(pc);
        goto out;
    }
    node_del_child(pc, xs_basename(name));
    rc = view_put(v, pc);
out:
    if (rc && v->tx && !v->tx->fail)
        v->tx->fail = rc;
    free(pname);
    return rc;
}

/* ---- handlers ---- */

#define VIEW(c, r)                                                                       \
    {                                                                                    \
        .d = (c)->d, .c = (c), .tx = (r)->tx                                             \
    }

/* The request's one path argument, canonical (*name, the caller frees it),
 * and its node if perm allows: 0, or get_node's -errno; -ENOMEM. */
static int one_path(struct xs_conn *c, struct xs_req *r, struct xs_view *v, unsigned perm,
                    char **name, const struct xs_node **n)
{
    const char *arg = xs_req_onearg(r);

    *name = arg ? canonicalize(c, arg) : NULL;
    return arg && !*name ? -ENOMEM : get_node(v, *name, perm, n);
}

static int do_read_like(struct xs_conn *c, struct xs_req *r, bool dir)
{
    struct xs_view v = VIEW(c, r);
    char *name;
    const struct xs_node *n;
    int rc = one_path(c, r, &v, XSP_READ, &name, &n);
    if (rc == 0) {
        if (dir)
            xs_reply(c, r, n->children, n->childlen);
        else
            xs_reply(c, r, n->data, n->datalen);
    }
    free(name);
    return rc;
}

static int do_read(struct xs_conn *c, struct xs_req *r)
{
    return do_read_like(c, r, false);
}

static int do_directory(struct xs_conn *c, struct xs_req *r)
{
    return do_read_like(c, r, true);
}

static void reply_dir_part(struct xs_conn *c, struct xs_req *r, const struct xs_node *n,
                           unsigned off)
{
    char buf[XENSTORE_PAYLOAD_MAX + 32];
    int genlen = snprintf(buf, 24, "%" PRIu64, n->gen) + 1;
    if (off >= n->childlen) {
        buf[genlen] = '\0';
        xs_reply(c, r, buf, (uint32_t)genlen + 1);
        return;
    }
    unsigned len = 0, maxlen = XENSTORE_PAYLOAD_MAX - (unsigned)genlen - 1;
    const char *child = n->children + off;
    while (len + strlen(child) < maxlen) {
        len += (unsigned)strlen(child) + 1;
        child += strlen(child) + 1;
        if (off + len == n->childlen)
            break;
    }
    memcpy(buf + genlen, n->children + off, len);
    if (off + len == n->childlen)
        buf[genlen + len++] = '\0';
    xs_reply(c, r, buf, (uint32_t)genlen + len);
}

static int do_directory_part(struct xs_conn *c, struct xs_req *r)
{
    if (xs_req_nstrings(r) != 2)
        return -EINVAL;
    struct xs_view v = VIEW(c, r);
    char *name = canonicalize(c, r->p);
    const struct xs_node *n;
    int rc = name ? get_node(&v, name, XSP_READ, &n) : -ENOMEM;
    if (rc == 0) {
        long off = atol(r->p + strlen(r->p) + 1);
        unsigned uoff = off < 0 ? 0 : off > UINT32_MAX ? UINT32_MAX : (unsigned)off;
        /* Offsets must start a child name, or we would split one. */
        if (uoff && uoff < n->childlen && n->children[uoff - 1] != '\0')
            rc = -EINVAL;
        else
            reply_dir_part(c, r, n, uoff);
    }
    free(name);
    return rc;
}

static int do_get_perms(struct xs_conn *c, struct xs_req *r)
{
    struct xs_view v = VIEW(c, r);
    char *name;
    const struct xs_node *n;
    int rc = one_path(c, r, &v, XSP_READ, &name, &n);
    if (rc == 0) {
        char buf[XENSTORE_PAYLOAD_MAX + 1];
        int len = xs_perms_format(n->perms, n->nperms, buf, sizeof(buf));
        if (len < 0)
            rc = len;
        else
            xs_reply(c, r, buf, (uint32_t)len);
    }
    free(name);
    return rc;
}

static int write_existing(struct xs_view *v, const struct xs_node *n, const void *data,
                          unsigned len)
{
    struct xs_node *cp = node_copy(n);
    if (!cp || node_set_data(cp, data, len)) {
        node_free(cp);
        return -ENOMEM;
    }
    if (too_big(v->c, cp)) {
        node_free(cp);
        return -ENOSPC;
    }
    return view_put(v, cp);
}

static int do_write(struct xs_conn *c, struct xs_req *r)
{
    if (xs_req_nstrings(r) < 1)
        return -EINVAL;
    struct xs_view v = VIEW(c, r);
    size_t off = strlen(r->p) + 1;
    const void *data = r->p + off;
    unsigned len = r->len - (unsigned)off;
    char *name = canonicalize(c, r->p);
    const struct xs_node *n;
    int rc = name ? get_node(&v, name, XSP_WRITE, &n) : -ENOMEM;
    if (rc == -ENOENT)
        rc = create_node(&v, name, data, len);
    else if (rc == 0)
        rc = write_existing(&v, n, data, len);
    if (rc == 0) {
        if (view_get(&v, name, &n))
            n = NULL;
        fire_watches(&v, name, false, n ? n->perms : NULL, n ? n->nperms : 0);
        ack(c, r);
    }
    free(name);
    return rc;
}

static int do_mkdir(struct xs_conn *c, struct xs_req *r)
{
    struct xs_view v = VIEW(c, r);
    char *name;
    const struct xs_node *n;
    int rc = one_path(c, r, &v, XSP_WRITE, &name, &n);
    if (rc == -ENOENT) {
        rc = create_node(&v, name, NULL, 0);
        if (rc == 0 && view_get(&v, name, &n) == 0)
            fire_watches(&v, name, false, n->perms, n->nperms);
    }
    if (rc == 0)
        ack(c, r);
    free(name);
    return rc;
}

static int do_rm(struct xs_conn *c, struct xs_req *r)
{
    struct xs_view v = VIEW(c, r);
    char *name;
    const struct xs_node *n;
    int rc = one_path(c, r, &v, XSP_WRITE, &name, &n);
    if (rc == -ENOENT) {
        /* Not there: fine if the parent exists. */
        char *pname = xs_parent(name);
        rc = pname ? view_get(&v, pname, &n) : -ENOMEM;
        free(pname);
    } else if (rc == 0) {
        rc = strcmp(name, "/") ? rm_tree(&v, name) : -EINVAL;
    }
    if (rc == 0)
        ack(c, r);
    free(name);
    return rc;
}

static int set_node_perms(struct xs_view *v, const char *name, struct xs_perm *p,
                          unsigned num)
{
    const struct xs_node *n;
    int rc = get_node(v, name, XSP_WRITE | XSP_OWNER, &n);
    if (rc)
        return rc;
    if (!conn_privileged(v->c) && p[0].id != n->perms[0].id)
        return -EPERM;
    struct xs_node *cp = node_copy(n);
    struct xs_perm *old = NULL;
    unsigned oldn = n->nperms;
    if (cp)
        old = malloc(oldn * sizeof(*old) + 1);
    if (!cp || !old || node_set_perms(cp, p, num)) {
        node_free(cp);
        free(old);
        return -ENOMEM;
    }
    memcpy(old, n->perms, oldn * sizeof(*old));
    if (too_big(v->c, cp)) {
        node_free(cp);
        rc = -ENOSPC;
    } else {
        rc = view_put(v, cp);
    }
    if (rc == 0)
        fire_watches(v, name, false, old, oldn); /* old perms: who lost access hears it */
    free(old);
    return rc;
}

static int do_set_perms(struct xs_conn *c, struct xs_req *r)
{
    unsigned num = xs_req_nstrings(r);
    if (num < 2)
        return -EINVAL;
    num--;
    if (!conn_privileged(c) && num > c->d->q.perms)
        return -ENOSPC;
    struct xs_perm *p = calloc(num, sizeof(*p));
    char *name = NULL;
    int rc = p ? xs_perms_parse(r->p + strlen(r->p) + 1, num, p) : -ENOMEM;
    if (rc)
        goto out;
    if (r->p[0] == '@') {
        rc = set_perms_special(c, r->p, p, num);
        p = NULL;
    } else {
        struct xs_view v = VIEW(c, r);
        name = canonicalize(c, r->p);
        rc = name ? set_node_perms(&v, name, p, num) : -ENOMEM;
    }
    if (rc == 0)
        ack(c, r);
out:
    free(p);
    free(name);
    return rc;
}

static int do_watch(struct xs_conn *c, struct xs_req *r)
{
    return watch_add(c, r);
}

static int do_unwatch(struct xs_conn *c, struct xs_req *r)
{
    int rc = watch_remove(c, r);
    return rc ? rc : ack(c, r);
}

static bool txid_used(struct xs_conn *c, uint32_t id)
{
    for (struct xs_tx *t = c->txs; t; t = t->next)
        if (t->id == id)
            return true;
    return false;
}

static int do_tx_start(struct xs_conn *c, struct xs_req *r)
{
    if (r->tx)
        return -EBUSY; /* no nested transactions */
    /* Xen 4.17 compares the count before this one with '>'. */
    if (!conn_privileged(c) && c->ntx > c->d->q.transactions)
        return -ENOSPC;
    struct xs_tx *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    do {
        t->id = c->next_txid++;
    } while (t->id == 0 || txid_used(c, t->id));
    t->next = c->txs;
    c->txs = t;
    c->ntx++;
    char buf[16];
    int len = snprintf(buf, sizeof(buf), "%u", t->id) + 1;
    xs_reply(c, r, buf, (uint32_t)len);
    return 0;
}

static void tx_unlink(struct xs_conn *c, struct xs_tx *t)
{
    for (struct xs_tx **pp = &c->txs; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            c->ntx--;
            c->tx_bytes -= t->bytes;
            return;
        }
}

static int do_tx_end(struct xs_conn *c, struct xs_req *r)
{
    const char *arg = xs_req_onearg(r);
    if (!arg || (strcmp(arg, "T") && strcmp(arg, "F")))
        return -EINVAL;
    if (!r->tx)
        return -ENOENT;
    struct xs_tx *t = r->tx;
    tx_unlink(c, t);
    r->tx = NULL;
    int rc = arg[0] == 'T' ? tx_commit(c->d, c, t) : 0;
    tx_free(t);
    return rc ? rc : ack(c, r);
}

static int do_get_domain_path(struct xs_conn *c, struct xs_req *r)
{
    const char *arg = xs_req_onearg(r);
    if (!arg)
        return -EINVAL;
    char buf[48];
    int len = snprintf(buf, sizeof(buf), "/local/domain/%u", (unsigned)atoi(arg)) + 1;
    xs_reply(c, r, buf, (uint32_t)len);
    return 0;
}

static int do_reset_watches(struct xs_conn *c, struct xs_req *r)
{
    watches_clear(c);
    conn_txs_clear(c);
    return ack(c, r);
}

/* CONTROL: a harmless subset of Xen's commands. */
static int do_control(struct xs_conn *c, struct xs_req *r)
{
    static const char help[] = "check\t\nhelp\t\nlog\ton|off\nprint\t<string>\nquota\t\n";
    unsigned num = xs_req_nstrings(r);
    if (num < 1)
        return -EINVAL;
    const char *cmd = r->p, *arg = r->p + strlen(r->p) + 1;
    if (!strcmp(cmd, "check") || !strcmp(cmd, "help") || !strcmp(cmd, "quota")) {
        if (num != 1)
            return -EINVAL;
        if (cmd[0] == 'c')
            return ack(c, r);
        if (cmd[0] == 'h') {
            xs_reply(c, r, help, sizeof(help));
            return 0;
        }
        char buf[256];
        const struct xs_quota *q = &c->d->q;
        int len =
            snprintf(buf, sizeof(buf),
                     "Quota settings:\nnodes: %u\nwatches: %u\ntransactions: %u\n"
                     "node-size: %u\npermissions: %u\noutstanding: %u\npath-max: %u\n",
                     q->nodes, q->watches, q->transactions, q->node_size, q->perms,
                     q->outstanding, q->path_len);
        xs_reply(c, r, buf, (uint32_t)len + 1);
        return 0;
    }
    if (!strcmp(cmd, "print") || !strcmp(cmd, "log")) {
        if (num != 2)
            return -EINVAL;
        if (cmd[0] == 'l' && strcmp(arg, "on") && strcmp(arg, "off"))
            return -EINVAL;
        if (cmd[0] == 'p')
            dinfo("control: %s", arg);
        return ack(c, r);
    }
    return -EINVAL;
}

#define F_NOTID 1u
#define F_PRIV 2u

static const struct {
    int (*fn)(struct xs_conn *c, struct xs_req *r);
    unsigned flags;
} ops[XS_TYPE_COUNT] = {
    [XS_CONTROL] = {do_control, F_PRIV},
    [XS_DIRECTORY] = {do_directory, 0},
    [XS_READ] = {do_read, 0},
    [XS_GET_PERMS] = {do_get_perms, 0},
    [XS_WATCH] = {do_watch, F_NOTID},
    [XS_UNWATCH] = {do_unwatch, F_NOTID},
    [XS_TRANSACTION_START] = {do_tx_start, 0},
    [XS_TRANSACTION_END] = {do_tx_end, 0},
    [XS_INTRODUCE] = {do_introduce, F_PRIV},
    [XS_RELEASE] = {do_release, F_PRIV},
    [XS_GET_DOMAIN_PATH] = {do_get_domain_path, 0},
    [XS_WRITE] = {do_write, 0},
    [XS_MKDIR] = {do_mkdir, 0},
    [XS_RM] = {do_rm, 0},
    [XS_SET_PERMS] = {do_set_perms, 0},
    [XS_IS_DOMAIN_INTRODUCED] = {do_is_introduced, F_PRIV},
    [XS_RESUME] = {do_resume, F_PRIV},
    [XS_SET_TARGET] = {do_set_target, F_PRIV},
    [XS_RESET_WATCHES] = {do_reset_watches, 0},
    [XS_DIRECTORY_PART] = {do_directory_part, 0},
};

static int find_tx(struct xs_conn *c, uint32_t id, struct xs_tx **out)
{
    *out = NULL;
    if (id == 0)
        return 0;
    for (struct xs_tx *t = c->txs; t; t = t->next)
        if (t->id == id) {
            *out = t;
            return 0;
        }
    return -ENOENT;
}

static const char *const type_names[XS_TYPE_COUNT] = {
    [XS_CONTROL] = "CONTROL",
    [XS_DIRECTORY] = "DIRECTORY",
    [XS_READ] = "READ",
    [XS_GET_PERMS] = "GET_PERMS",
    [XS_WATCH] = "WATCH",
    [XS_UNWATCH] = "UNWATCH",
    [XS_TRANSACTION_START] = "TRANSACTION_START",
    [XS_TRANSACTION_END] = "TRANSACTION_END",
    [XS_INTRODUCE] = "INTRODUCE",
    [XS_RELEASE] = "RELEASE",
    [XS_GET_DOMAIN_PATH] = "GET_DOMAIN_PATH",
    [XS_WRITE] = "WRITE",
    [XS_MKDIR] = "MKDIR",
    [XS_RM] = "RM",
    [XS_SET_PERMS] = "SET_PERMS",
    [XS_IS_DOMAIN_INTRODUCED] = "IS_DOMAIN_INTRODUCED",
    [XS_RESUME] = "RESUME",
    [XS_SET_TARGET] = "SET_TARGET",
    [XS_RESET_WATCHES] = "RESET_WATCHES",
    [XS_DIRECTORY_PART] = "DIRECTORY_PART",
};

static void trace_req(const struct xs_conn *c, const struct xs_req *r, int rc)
{
    char what[64], arg[112] = "";
    const char *name = r->type < XS_TYPE_COUNT ? type_names[r->type] : NULL;
    size_t first = r->len ? strnlen(r->p, r->len) : 0;

    snprintf(what, sizeof(what), "%s%s%s tx%u", name ? name : "type?", rc < 0 ? " -" : "",
             rc < 0 ? strerror(-rc) : "", r->tx_id);
    if (r->type == XS_WRITE && first + 1 < r->len) /* the value, to its first NUL */
        snprintf(arg, sizeof(arg), "%.*s = %.40s", (int)first, r->p, r->p + first + 1);
    else if (r->len)
        snprintf(arg, sizeof(arg), "%.*s", (int)first, r->p);
    xs_trace(c, what, arg);
}

void xs_process(struct xs_conn *c, struct xs_req *r)
{
    int rc;
    if (r->type >= XS_TYPE_COUNT || !ops[r->type].fn) {
        rc = -ENOSYS;
        goto out;
    }
    if ((ops[r->type].flags & F_PRIV) && !conn_privileged(c)) {
        rc = -EACCES;
        goto out;
    }
    rc = (ops[r->type].flags & F_NOTID) ? 0 : find_tx(c, r->tx_id, &r->tx);
    if (rc == 0)
        rc = ops[r->type].fn(c, r);
out:
    if (c->d->trace)
        trace_req(c, r, rc);
    if (rc < 0)
        send_error(c, r, -rc);
}
