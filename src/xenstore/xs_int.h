/* xenstored internals shared by the src/xenstore sources. */
#ifndef DOMUS_XS_INT_H
#define DOMUS_XS_INT_H

#include "domus/xenstore.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#define XS_DOMID_MAX 0x10000U
#define XS_DOMID_FIRST_RESERVED 0x7FF0U
#define XS_DOMID_SELF 0x7FF0U

/* Permission bits, as libxenstore's enum xs_perm_type. */
#define XSP_NONE 0
#define XSP_READ 1
#define XSP_WRITE 2
#define XSP_OWNER 8

struct xs_perm {
    uint32_t id;
    uint8_t perms;
};

/* ---- hash table of named entries (store nodes, transaction entries) ---- */
struct xs_hent {
    struct xs_hent *hnext;
    char *name;
    uint32_t hash;
};
struct xs_htab {
    struct xs_hent **b;
    size_t nb, n;
};
uint32_t xs_hash(const char *s);
struct xs_hent *htab_find(const struct xs_htab *t, const char *name);
int htab_insert(struct xs_htab *t, struct xs_hent *e);
struct xs_hent *htab_remove(struct xs_htab *t, const char *name);
void htab_free(struct xs_htab *t, void (*fn)(struct xs_hent *));

/* ---- nodes ---- */
struct xs_node {
    struct xs_hent h; /* h.name: full path */
    uint64_t gen;
    struct xs_perm *perms;
    unsigned nperms;
    char *data;
    unsigned datalen;
    char *children; /* leaf names, each NUL-terminated */
    unsigned childlen;
};
struct xs_node *node_new(const char *name);
struct xs_node *node_copy(const struct xs_node *n);
void node_free(struct xs_node *n);
int node_set_data(struct xs_node *n, const void *data, unsigned len);
int node_set_perms(struct xs_node *n, const struct xs_perm *p, unsigned num);
int node_add_child(struct xs_node *n, const char *leaf);
void node_del_child(struct xs_node *n, const char *leaf);
size_t node_record_size(const struct xs_node *n);

struct xs_store {
    struct xs_htab nodes;
    uint64_t gen;
    uint32_t *owned; /* nodes owned, per domid */
};
int store_init(struct xs_store *s);
void store_fini(struct xs_store *s);
struct xs_node *store_find(const struct xs_store *s, const char *name);
/* Puts n (owned by the store afterwards) in place of any node of that name;
 * stamps a new generation.  0 or -ENOMEM (n freed). */
int store_put(struct xs_store *s, struct xs_node *n);
void store_del(struct xs_store *s, const char *name);

/* ---- paths and permissions ---- */
bool xs_valid_path(const char *path, unsigned path_len_quota);
char *xs_parent(const char *path); /* malloc'd; "/" for "/x" */
const char *xs_basename(const char *path);
int xs_perms_parse(const char *strs, unsigned num, struct xs_perm *out);
int xs_perms_format(const struct xs_perm *p, unsigned num, char *buf, size_t len);
bool xs_errno_known(int err);
const char *xs_errno_name(int err);

/* ---- transactions ---- */
struct xs_txent {
    struct xs_hent h;
    struct xs_txent *order;
    uint64_t base_gen;    /* 0: absent when first seen */
    struct xs_node *node; /* current state in the tx, NULL: absent */
    bool modified;
    /* The one watch event the node's changes fire at commit (Xen's
     * fire_watch mark): exact only while every change asked exact; the
     * perms of the first change (the old ones: who lost access hears it). */
    bool ev, ev_exact;
    struct xs_perm *ev_perms;
    unsigned ev_nperms;
    struct xs_txent *ev_next; /* events in the order they arose */
};
struct xs_tx {
    struct xs_tx *next;
    uint32_t id;
    struct xs_htab ents;
    struct xs_txent *first, *last;
    struct xs_txent *ev_first, *ev_last;
    int delta_owned; /* nodes gained by the connection's domain */
    size_t bytes;    /* node records copied in (charged to conn->tx_bytes) */
    int fail;        /* the first error of a change left half done (-errno), 0: none */
};
void tx_free(struct xs_tx *t);

/* A view is the store as seen by a request: directly, or through a tx. */
struct xs_view {
    struct xs_daemon *d;
    struct xs_conn *c;
    struct xs_tx *tx;
};
/* Current node at name: 0 (*out set), -ENOENT, -ENOSPC (tx too big), -ENOMEM.
 * The node stays valid until the next modification through the view. */
int view_get(struct xs_view *v, const char *name, const struct xs_node **out);
/* Stores n (consumed) as the new state of its path. */
int view_put(struct xs_view *v, struct xs_node *n);
int view_del(struct xs_view *v, const char *name);
int tx_commit(struct xs_daemon *d, struct xs_conn *c, struct xs_tx *t);

/* ---- connections ---- */
struct xs_msg {
    struct xs_msg *next;
    uint32_t len, off;
    bool reply;
    char data[];
};
struct xs_watch {
    struct xs_watch *next;
    char *path; /* canonical (absolute or @special) */
    char *token;
    bool relative;
};
struct xs_domain;

struct xs_conn_ops {
    void (*flush)(struct xs_conn *c);   /* push queued output out */
    void (*destroy)(struct xs_conn *c); /* detach transport (close fds) */
    void (*release)(struct xs_conn *c); /* free transport memory, at reap time */
};

struct xs_conn {
    struct xs_daemon *d;
    struct xs_conn *next, *prev;
    struct xs_conn *dirty_next;
    bool dirty, dead, ignored, memory;
    unsigned domid;
    int target; /* SET_TARGET domid or -1 */
    struct xs_domain *dom;
    const struct xs_conn_ops *ops;
    void *opaque;
    /* input */
    struct xsd_sockmsg hdr;
    uint32_t in_used;
    bool in_hdr;
    char *in_buf; /* XENSTORE_PAYLOAD_MAX + 1 */
    /* output */
    struct xs_msg *out_head, *out_tail;
    size_t out_bytes;
    unsigned out_replies;
    /* state */
    struct xs_watch *watches;
    unsigned nwatches;
    struct xs_tx *txs;
    unsigned ntx;
    size_t tx_bytes;
    uint32_t next_txid;
};

/* epoll sources: every registered object starts with one. */
enum { XS_EV_LISTEN = 1, XS_EV_SOCK, XS_EV_RING, XS_EV_STOP };
struct xs_evsrc {
    int kind;
};

struct xs_domain {
    struct xs_evsrc ev; /* XS_EV_RING */
    struct xs_domain *next;
    unsigned domid;
    bool shutdown;
    struct xs_conn *conn; /* ring connection, NULL without ring */
    void *page;
    int notify_fd, kick_fd;
    bool hooked; /* page came from the map hook */
    bool dead;   /* released; freed by xs_daemon_flush */
    bool warned; /* logged a protocol violation already (log once) */
};

struct xs_daemon {
    struct xs_quota q;
    struct xs_store store;
    struct xs_conn *conns;
    struct xs_conn *dirty;
    struct xs_conn *graveyard;
    struct xs_domain *doms;
    struct xs_domain *dom_graveyard;
    struct xs_perm *sp_intro, *sp_release; /* @introduceDomain/@releaseDomain perms */
    unsigned sp_intro_n, sp_release_n;
    struct xs_ring_hooks hooks;
    int epfd, listen_fd;
    char *sock_path;
    struct xs_stats st;
    FILE *trace; /* xs_daemon_set_trace */
};
/* A trace line (xs_daemon_set_trace): "<s.us> dom<N> <what> <arg>". */
void xs_trace(const struct xs_conn *c, const char *what, const char *arg);

/* core */
struct xs_conn *conn_new(struct xs_daemon *d, unsigned domid,
                         const struct xs_conn_ops *ops, void *opaque);
void conn_kill(struct xs_conn *c);  /* mark dead, drop state; freed by xs_daemon_flush */
void conn_reset(struct xs_conn *c); /* drop watches, transactions, queued I/O */
void conn_txs_clear(struct xs_conn *c);
size_t conn_rx_space(struct xs_conn *c, void **buf);
int conn_rx_commit(struct xs_conn *c, size_t n);
long conn_input(struct xs_conn *c, const void *data, size_t len);
int conn_queue(struct xs_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id,
               const void *data, uint32_t len, bool reply);
void conn_consume(struct xs_conn *c, size_t n);
void conn_mark_dirty(struct xs_conn *c);
bool conn_privileged(const struct xs_conn *c);
unsigned perm_for_conn(const struct xs_conn *c, const struct xs_perm *p, unsigned n);
void xs_daemon_flush(struct xs_daemon *d);

/* request processing (xs_ops.c) */
struct xs_req {
    uint32_t type, req_id, tx_id, len;
    char *p; /* payload, NUL-terminated at p[len] */
    struct xs_tx *tx;
};
void xs_process(struct xs_conn *c, struct xs_req *r);
/* NUL-terminated strings in the payload. */
unsigned xs_req_nstrings(const struct xs_req *r);
/* The payload when it is exactly one NUL-terminated string, else NULL. */
const char *xs_req_onearg(const struct xs_req *r);
void xs_reply(struct xs_conn *c, struct xs_req *r, const void *data, uint32_t len);
int rm_tree(struct xs_view *v, const char *name);

/* Notes in v's transaction that path's change fires watches at commit: one
 * event per node however often it changes, charged to the transaction's
 * memory quota.  0, -ENOSPC or -ENOMEM. */
int tx_note_event(struct xs_view *v, const char *path, bool exact,
                  const struct xs_perm *perms, unsigned nperms);

/* watches (xs_watch.c) */
void fire_watches(struct xs_view *v, const char *path, bool exact,
                  const struct xs_perm *perms, unsigned nperms);
void fire_event_now(struct xs_daemon *d, const char *path, bool exact,
                    const struct xs_perm *perms, unsigned nperms);
int watch_add(struct xs_conn *c, struct xs_req *r);
int watch_remove(struct xs_conn *c, struct xs_req *r);
void watches_clear(struct xs_conn *c);

/* domains (xs_domain.c) */
struct xs_domain *dom_find(struct xs_daemon *d, unsigned domid);
int do_introduce(struct xs_conn *c, struct xs_req *r);
int do_release(struct xs_conn *c, struct xs_req *r);
int do_resume(struct xs_conn *c, struct xs_req *r);
int do_set_target(struct xs_conn *c, struct xs_req *r);
int do_is_introduced(struct xs_conn *c, struct xs_req *r);
int set_perms_special(struct xs_conn *c, const char *name, struct xs_perm *p, unsigned n);
bool special_readable(struct xs_conn *c, const char *name);
void domains_free(struct xs_daemon *d);
void ring_kicked(struct xs_domain *dom);
void dom_bury(struct xs_daemon *d, struct xs_domain *dom);

#endif
