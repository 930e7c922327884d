/* xenstored node store: a hash table of nodes keyed by full path (as Xen's
 * TDB), each with value, permissions, children list and generation. */
#include "xs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t xs_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

struct xs_hent *htab_find(const struct xs_htab *t, const char *name)
{
    if (!t->nb)
        return NULL;
    uint32_t h = xs_hash(name);
    for (struct xs_hent *e = t->b[h & (t->nb - 1)]; e; e = e->hnext)
        if (e->hash == h && !strcmp(e->name, name))
            return e;
    return NULL;
}

static int htab_grow(struct xs_htab *t)
{
    size_t nb = t->nb ? t->nb * 2 : 64;
    struct xs_hent **b = calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < t->nb; i++) {
        struct xs_hent *e = t->b[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

/* The name must not be present already. */
int htab_insert(struct xs_htab *t, struct xs_hent *e)
{
    if (t->n + 1 > t->nb && htab_grow(t))
        return -ENOMEM;
    e->hash = xs_hash(e->name);
    struct xs_hent **head = &t->b[e->hash & (t->nb - 1)];
    e->hnext = *head;
    *head = e;
    t->n++;
    return 0;
}

struct xs_hent *htab_remove(struct xs_htab *t, const char *name)
{
    if (!t->nb)
        return NULL;
    uint32_t h = xs_hash(name);
    for (struct xs_hent **pp = &t->b[h & (t->nb - 1)]; *pp; pp = &(*pp)->hnext) {
        struct xs_hent *e = *pp;
        if (e->hash == h && !strcmp(e->name, name)) {
            *pp = e->hnext;
            t->n--;
            return e;
        }
    }
    return NULL;
}

void htab_free(struct xs_htab *t, void (*fn)(struct xs_hent *))
{
    for (size_t i = 0; i < t->nb; i++) {
        struct xs_hent *e = t->b[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            fn(e);
        }
    }
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

/* ---- nodes ---- */

struct xs_node *node_new(const char *name)
{
    struct xs_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->h.name = strdup(name);
    if (!n->h.name) {
        free(n);
        return NULL;
    }
    return n;
}

void node_free(struct xs_node *n)
{
    if (!n)
        return;
    free(n->h.name);
    free(n->perms);
    free(n->data);
    free(n->children);
    free(n);
}

static int dup_mem(char **dst, const void *src, unsigned len)
{
    *dst = NULL;
    if (!len)
        return 0;
    *dst = malloc(len);
    if (!*dst)
        return -ENOMEM;
    memcpy(*dst, src, len);
    return 0;
}

struct xs_node *node_copy(const struct xs_node *n)
{
    struct xs_node *c = node_new(n->h.name);
    if (!c)
        return NULL;
    c->gen = n->gen;
    if (node_set_perms(c, n->perms, n->nperms) ||
        dup_mem(&c->data, n->data, n->datalen) ||
        dup_mem(&c->children, n->children, n->childlen)) {
        node_free(c);
        return NULL;
    }
    c->datalen = n->datalen;
    c->childlen = n->childlen;
    return c;
}

int node_set_data(struct xs_node *n, const void *data, unsigned len)
{
    char *p;
    if (dup_mem(&p, data, len))
        return -ENOMEM;
    free(n->data);
    n->data = p;
    n->datalen = len;
    return 0;
}

int node_set_perms(struct xs_node *n, const struct xs_perm *p, unsigned num)
{
    struct xs_perm *np = malloc(num * sizeof(*np) + 1);
    if (!np)
        return -ENOMEM;
    memcpy(np, p, num * sizeof(*np));
    free(n->perms);
    n->perms = np;
    n->nperms = num;
    return 0;
}

int node_add_child(struct xs_node *n, const char *leaf)
{
    size_t l = strlen(leaf) + 1;
    char *c = realloc(n->children, n->childlen + l);
    if (!c)
        return -ENOMEM;
    memcpy(c + n->childlen, leaf, l);
    n->children = c;
    n->childlen += l;
    return 0;
}

void node_del_child(struct xs_node *n, const char *leaf)
{
    unsigned off = 0;
    while (off < n->childlen) {
        size_t l = strlen(n->children + off) + 1;
        if (!strcmp(n->children + off, leaf)) {
            memmove(n->children + off, n->children + off + l, n->childlen - off - l);
            n->childlen -= l;
            return;
        }
        off += l;
    }
}

/* Xen's TDB record: struct xs_tdb_record_hdr (24 bytes) + perms (8 each)
 * + value + children; quota node-size compares against it. */
size_t node_record_size(const struct xs_node *n)
{
    return 24 + 8 * (size_t)n->nperms + n->datalen + n->childlen;
}

/* ---- the store ---- */

static void free_hent_node(struct xs_hent *e)
{
    node_free((struct xs_node *)e);
}

static int store_add_basic(struct xs_store *s, const char *name, const char *child)
{
    struct xs_perm p = {0, XSP_NONE};
    struct xs_node *n = node_new(name);
    if (!n || node_set_perms(n, &p, 1) || (child && node_add_child(n, child))) {
        node_free(n);
        return -ENOMEM;
    }
    return store_put(s, n);
}

int store_init(struct xs_store *s)
{
    memset(s, 0, sizeof(*s));
    s->owned = calloc(XS_DOMID_MAX, sizeof(*s->owned));
    if (!s->owned)
        return -ENOMEM;
    if (store_add_basic(s, "/", "tool") || store_add_basic(s, "/tool", "xenstored") ||
        store_add_basic(s, "/tool/xenstored", NULL)) {
        store_fini(s);
        return -ENOMEM;
    }
    return 0;
}

void store_fini(struct xs_store *s)
{
    htab_free(&s->nodes, free_hent_node);
    free(s->owned);
    s->owned = NULL;
}

struct xs_node *store_find(const struct xs_store *s, const char *name)
{
    return (struct xs_node *)htab_find(&s->nodes, name);
}

static void account(struct xs_store *s, const struct xs_node *n, int delta)
{
    if (n && n->nperms)
        s->owned[n->perms[0].id & (XS_DOMID_MAX - 1)] += delta;
}

int store_put(struct xs_store *s, struct xs_node *n)
{
    struct xs_node *old = (struct xs_node *)htab_remove(&s->nodes, n->h.name);
    n->gen = ++s->gen;
    if (htab_insert(&s->nodes, &n->h)) {
        /* Cannot happen after a remove (no growth needed), but be safe. */
        if (old)
            htab_insert(&s->nodes, &old->h);
        node_free(n);
        return -ENOMEM;
    }
    account(s, old, -1);
    account(s, n, +1);
    node_free(old);
    return 0;
}

void store_del(struct xs_store *s, const char *name)
{
    struct xs_node *old = (struct xs_node *)htab_remove(&s->nodes, name);
    account(s, old, -1);
    node_free(old);
    s->gen++;
}

/* ---- paths ---- */

static bool valid_chars(const char *p)
{
    static const char ok[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/_@";
    return p[strspn(p, ok)] == '\0';
}

/* Offset of what follows "/local/domain/<domid>/" (domid up to 5 digits),
 * 0 when the path is not below a domain's home. */
static size_t local_offset(const char *p)
{
    static const char pre[] = "/local/domain/";
    if (strncmp(p, pre, sizeof(pre) - 1))
        return 0;
    size_t i = sizeof(pre) - 1, digits = 0;
    while (p[i] >= '0' && p[i] <= '9' && digits < 5) {
        i++;
        digits++;
    }
    if (!digits || p[i] != '/')
        return 0;
    return i + 1;
}

bool xs_valid_path(const char *p, unsigned path_len_quota)
{
    size_t len = strlen(p);
    if (p[0] != '/')
        return false;
    if (len > 1 && p[len - 1] == '/')
        return false;
    if (strstr(p, "//"))
        return false;
    if (len > local_offset(p) + path_len_quota)
        return false;
    return valid_chars(p);
}

char *xs_parent(const char *p)
{
    const char *slash = strrchr(p + 1, '/');
    if (!slash)
        return strdup("/");
    return strndup(p, (size_t)(slash - p));
}

const char *xs_basename(const char *p)
{
    return strrchr(p, '/') + 1;
}

/* ---- permissions ---- */

int xs_perms_parse(const char *s, unsigned num, struct xs_perm *out)
{
    for (unsigned i = 0; i < num; i++) {
        switch (*s) {
        case 'r':
            out[i].perms = XSP_READ;
            break;
        case 'w':
            out[i].perms = XSP_WRITE;
            break;
        case 'b':
            out[i].perms = XSP_READ | XSP_WRITE;
            break;
        case 'n':
            out[i].perms = XSP_NONE;
            break;
        default:
            return -EINVAL;
        }
        s++;
        char *end;
        errno = 0;
        long id = strtol(s, &end, 0);
        if (*end || !*s || errno || id < 0 || id >= (long)XS_DOMID_MAX)
            return -EINVAL;
        out[i].id = (uint32_t)id;
        s = end + 1;
    }
    return 0;
}

/* Writes "b0\0r3\0..." into buf; returns the length or -E2BIG. */
int xs_perms_format(const struct xs_perm *p, unsigned num, char *buf, size_t len)
{
    size_t off = 0;
    for (unsigned i = 0; i < num; i++) {
        static const char ch[4] = {'n', 'r', 'w', 'b'};
        int k = snprintf(buf + off, len - off, "%c%u", ch[p[i].perms & 3], p[i].id);
        if (k < 0 || (size_t)k + 1 > len - off)
            return -E2BIG;
        off += (size_t)k + 1;
    }
    return (int)off;
}

/* ---- errno names (Xen's xsd_errors table) ---- */

bool xs_errno_known(int err)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == err)
            return true;
    return false;
}

const char *xs_errno_name(int err)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == err)
            return xsd_errors[i].errstring;
    return "EINVAL";
}
