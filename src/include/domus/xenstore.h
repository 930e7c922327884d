/* Domus xenstored: Xen's xenstore protocol (xen/io/xs_wire.h,
 * docs/misc/xenstore.txt) served over a Unix socket (Domain 0) and over
 * per-domain shared rings (struct xenstore_domain_interface).
 *
 * Structure: one struct xs_daemon holds the node tree, the domains, the
 * watches and transactions.  Every client is a connection (struct xs_conn)
 * with a domid; requests are processed with that domid's rights (domid 0 is
 * privileged).  Transports only move bytes in and out of a connection:
 *   - socket: xs_daemon_listen() + xs_daemon_run() (epoll, single-threaded);
 *   - ring:   xs_ring_attach() (hypervisor side) or INTRODUCE via the
 *             map hook (struct xs_ring_hooks);
 *   - memory: xs_conn_new() + xs_conn_input()/xs_conn_output(), used by unit
 *             tests and the fuzzer.
 * Nothing a client sends makes the daemon exit or crash: a malformed request
 * gets Xen's error reply, an oversized one (len > XENSTORE_PAYLOAD_MAX)
 * closes a socket client or stops serving a ring (error field set).
 *
 * Error replies use Xen's XSD_ERRORS names.  Quotas (Xen 4.17 defaults) apply
 * to unprivileged domains only; exceeding one gives ENOSPC (nodes, node size,
 * transactions, permissions per node) or E2BIG (watches), as Xen does. */
#ifndef DOMUS_XENSTORE_H
#define DOMUS_XENSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct xs_daemon;
struct xs_conn;

struct xs_quota {
    unsigned nodes;        /* nodes owned per domain: 1000 */
    unsigned node_size;    /* bytes per node record: 2048 (Xen's record size:
                              24 + 8 * nperms + datalen + children list) */
    unsigned watches;      /* watches per connection: 128 */
    unsigned transactions; /* open transactions per connection: 10 */
    unsigned perms;        /* permission entries per node: 5 */
    unsigned outstanding;  /* requests whose replies are not yet consumed: 20 */
    unsigned path_len;     /* path length below /local/domain/N/: 2048 */
    unsigned tx_nodes;     /* nodes one transaction may touch: 1024 */
    size_t out_bytes;      /* output queued per connection beyond which watch
                              events are dropped and input is paused: 1 MiB */
    size_t tx_bytes;       /* node records copied into one connection's open
                              transactions: 2 MiB (ENOSPC beyond; Xen bounds
                              all of a domain's memory at 2.5 MiB instead) */
};

/* Fills q with Xen 4.17's defaults (above). */
void xs_quota_defaults(struct xs_quota *q);

/* Hooks the hypervisor layer provides for INTRODUCE / RELEASE.
 * map: translate INTRODUCE's (domid, gfn, evtchn) into a host pointer to the
 *      domain's ring page (struct xenstore_domain_interface, one 4 KiB page
 *      that stays mapped until unmap) and two fds: notify_fd, which the
 *      daemon writes an 8-byte 1 to (eventfd semantics) whenever it produced
 *      or consumed ring data; kick_fd, which becomes readable when the guest
 *      notifies (the daemon drains it, -1 if the caller uses xs_ring_kick()).
 *      Returns 0 or -errno (the errno is the INTRODUCE reply).
 * unmap: gives page and fds back when the domain is released; the daemon
 *      does not close them itself.
 * Without hooks, INTRODUCE records the domain as introduced with no ring
 * (useful for control-plane tests). */
struct xs_ring_hooks {
    void *opaque;
    int (*map)(void *opaque, unsigned domid, uint64_t gfn, unsigned evtchn, void **page,
               int *notify_fd, int *kick_fd);
    void (*unmap)(void *opaque, unsigned domid, void *page, int notify_fd, int kick_fd);
};

/* Creates a daemon with the basic tree (/, /tool, /tool/xenstored; all owned
 * by domain 0, perms n0).  q may be NULL for the defaults.  NULL on ENOMEM. */
struct xs_daemon *xs_daemon_new(const struct xs_quota *q);

/* Closes every connection and socket (removing the socket file) and frees
 * everything.  NULL is fine. */
void xs_daemon_free(struct xs_daemon *d);

/* Trace (xenstored's --trace-file): one line per request taken (wall
 * clock, domain, type, result, first argument cut to 96 bytes) and per watch
 * event queued, flushed as written; NULL turns it off.  The caller keeps f
 * open.  For debugging: it grows with the guests' traffic. */
void xs_daemon_set_trace(struct xs_daemon *d, FILE *f);

/* Installs INTRODUCE/RELEASE hooks (copied). */
void xs_daemon_set_ring_hooks(struct xs_daemon *d, const struct xs_ring_hooks *h);

/* Listens on a Unix stream socket at path (parent directory created, a stale
 * socket replaced; -EADDRINUSE when a live daemon answers there).  Clients
 * are Domain 0.  0 or -errno. */
int xs_daemon_listen(struct xs_daemon *d, const char *path);

/* Serves until stop_fd (e.g. a signalfd; -1 for none) becomes readable.
 * Returns 0 when stopped, -errno only if epoll itself fails. */
int xs_daemon_run(struct xs_daemon *d, int stop_fd);

/* Memory transport.  xs_conn_new: a connection acting as domain domid
 * (0: privileged; otherwise unprivileged, relative paths under
 * /local/domain/<domid>).  NULL on ENOMEM. */
struct xs_conn *xs_conn_new(struct xs_daemon *d, unsigned domid);

/* Feeds request bytes; processes every complete message and delivers all
 * resulting output (also other connections' watch events, ring pushes).
 * Returns the bytes consumed (less than len when the connection has too many
 * unconsumed replies; call again after xs_conn_output), or -EPROTO when the
 * client broke the protocol (len > XENSTORE_PAYLOAD_MAX): the connection is
 * then dead and only good for xs_conn_free. */
long xs_conn_input(struct xs_conn *c, const void *data, size_t len);

/* Copies up to len bytes of queued output (replies, watch events) into buf
 * and removes them from the queue.  Returns the byte count. */
size_t xs_conn_output(struct xs_conn *c, void *buf, size_t len);

/* Bytes of output queued. */
size_t xs_conn_pending(const struct xs_conn *c);

/* Destroys the connection (its watches and transactions go too). */
void xs_conn_free(struct xs_conn *c);

/* Ring transport (hypervisor side).  Attaches domain domid's ring page
 * (page: host pointer to one 4 KiB page, borrowed until release) with
 * notify_fd/kick_fd as described for xs_ring_hooks.map, marks the domain
 * introduced (firing @introduceDomain), resets the ring indexes and
 * advertises XENSTORE_SERVER_FEATURE_RECONNECTION|ERROR.  Every index in the
 * page is treated as hostile: a guest whose indexes are inconsistent gets its
 * connection ignored (error = XENSTORE_ERROR_RINGIDX), never an access
 * outside the page.  0, -EINVAL (domid 0 or reserved, NULL page), -EEXIST
 * (already attached), -ENOMEM. */
int xs_ring_attach(struct xs_daemon *d, unsigned domid, void *page, int notify_fd,
                   int kick_fd);

/* "The ring has new input / space": processes the domain's ring now (the
 * same as kick_fd becoming readable).  -ENOENT if domid has no ring. */
int xs_ring_kick(struct xs_daemon *d, unsigned domid);

/* The domain shut down or crashed: fires @releaseDomain once (until RESUME).
 * -ENOENT if not introduced. */
int xs_domain_shutdown(struct xs_daemon *d, unsigned domid);

/* The domain is gone: as RELEASE (its nodes removed, @releaseDomain fired,
 * unmap hook called).  -ENOENT if not introduced. */
int xs_domain_release(struct xs_daemon *d, unsigned domid);

/* Statistics for logs and benchmarks. */
struct xs_stats {
    uint64_t requests, errors, watch_events, nodes, conns;
    uint64_t watch_checks; /* permission checks for watches that matched an event */
};
void xs_daemon_stats(const struct xs_daemon *d, struct xs_stats *st);

#endif
