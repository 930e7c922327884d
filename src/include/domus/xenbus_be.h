/* The back-end half of a xenbus device, shared by blkback and netback.
 *
 * One xbe serves one device (kind "vbd" or "vif", number devid) of one
 * domain, in a thread of the domain's domus-vm.  It is a Domain 0 client of
 * xenstored: it watches its backend directory
 * /local/domain/0/backend/<kind>/<domid>/<devid> and the front end's
 * /local/domain/<domid>/device/<kind>/<devid>, and drives Xen's state
 * machine on the back-end side:
 *
 *   toolstack's backend "state" appears -> ops->advertise, InitWait;
 *   front end Initialised or Connected  -> ops->connect, Connected;
 *   front end Closing -> Closing; Closed -> ops->disconnect, Closed;
 *   front end Initialising after Closed -> InitWait again;
 *   the toolstack writes our "state" Closing (detach, as libxl does) ->
 *     Closing until the front end is Closed, then Closed (at once when not
 *     connected); no InitWait again after that.
 *
 * The front end's nodes are hostile: numbers are read strictly
 * (xbe_read_uint) and a front end that breaks the protocol is disconnected
 * and sees Closing (xbe_fatal), never a crash.  The device's event channel
 * is the one the front end allocated for Domain 0; guest sends on it signal
 * kick_fd, and the thread then calls ops->serve (also once a second while
 * connected, in case an event was lost, and whenever ops->poll_fd is
 * readable).
 *
 * The thread connects to xenstored, then sandboxes itself (sandbox.h):
 * xenstore, raising and binding ports, and ops->sandbox; everything else
 * the back end needs (image, tap, io_uring ring) is opened before
 * xbe_start. */
#ifndef DOMUS_XENBUS_BE_H
#define DOMUS_XENBUS_BE_H

#include "domus/hv.h"
#include "domus/xsclient.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <xen/io/xenbus.h>

/* The barriers xen/io/ring.h's macros expect of their user. */
#define xen_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

/* The front end's request producer index prod is impossible: more than a
 * ring ahead of the responses, or behind the requests already taken (which
 * a consumer loop "until req_cons == prod" would chase for 2^32 slots). */
#define XBE_REQ_PROD_BAD(r, prod)                                                        \
    (RING_REQUEST_PROD_OVERFLOW(r, prod) ||                                              \
     (RING_IDX)((prod) - (r)->req_cons) > RING_SIZE(r))

/* Responses the front end has not come back for: it has not asked again
 * (rsp_event) since they were pushed, so it is still consuming them, or it
 * never had the event.  Read from the shared ring: only a hint. */
#define XBE_RSP_UNSEEN(r)                                                                \
    ((int32_t)(__atomic_load_n(&(r)->sring->rsp_prod, __ATOMIC_ACQUIRE) -                \
               __atomic_load_n(&(r)->sring->rsp_event, __ATOMIC_ACQUIRE)) >= 0)

struct xbe;

struct xbe_ops {
    /* Writes the back end's feature nodes (before InitWait).  0 or -errno. */
    int (*advertise)(struct xbe *x);
    /* Maps the front end's rings; NULL on success, or why not. */
    const char *(*connect)(struct xbe *x);
    /* Forgets the rings (the port is unbound by xbe). */
    void (*disconnect)(struct xbe *x);
    /* Does the device's work: called on kicks, timeouts and poll_fd. */
    void (*serve)(struct xbe *x);
    /* An extra fd for the thread to poll and its events (0: none), or NULL. */
    short (*poll_fd)(struct xbe *x, int *fd);
    /* Responses are waiting for the front end (XBE_RSP_UNSEEN on a ring),
     * or NULL.  After a second with no events, the event is sent again. */
    bool (*unseen)(struct xbe *x);
    /* Finishes the work in flight before the thread parks (xbe_quiesce):
     * after it the back end writes nothing into the guest; or NULL. */
    void (*quiesce)(struct xbe *x);
    /* What the ops do in the thread beyond xenstore and event channels:
     * SANDBOX_* (sandbox.h), e.g. SANDBOX_DISK. */
    unsigned sandbox;
};

struct xbe {
    struct domain *d;
    const struct xbe_ops *ops;
    void *priv;
    const char *kind;
    uint32_t devid;
    char bpath[96], fpath[96];
    char xs_path[108];
    struct xsc xs; /* requests */
    struct xsc xw; /* watch events only */
    bool xs_ok;
    int kick_fd, stop_fd;
    /* xbe_quiesce's handshake: asked (qreq), the thread parked (parked_fd
     * written), asked to go on (resume_fd written). */
    atomic_bool qreq;
    int parked_fd, resume_fd;
    pthread_t thread;
    bool thread_started;
    enum xenbus_state state; /* ours, as last written */
    bool connected;
    bool unplug; /* the toolstack asked the device to close (detach) */
    uint32_t port;
    uint64_t kicks, timeouts; /* events from the guest; 1 s waits that ended with none */
    bool notify_failed;       /* raising the port failed (said once in the log) */
    uint64_t resent;          /* events sent again for responses left unseen */
    char who[64];             /* "dom<domid> <kind> <devid>", for the log */
    struct dratelimit log_rl; /* lines the front end causes (xbe_log_ok) */
};

/* Fills x for device kind/devid of d (paths, eventfds; no thread yet).
 * 0 or -errno. */
int xbe_init(struct xbe *x, struct domain *d, const char *kind, uint32_t devid,
             const char *xs_path, const struct xbe_ops *ops, void *priv);

/* Starts the thread (xenstore is reached from it).  0 or -errno. */
int xbe_start(struct xbe *x);

/* Parks the thread until xbe_resume: ops->quiesce finishes the work in
 * flight, and from then on the back end neither reads the guest's rings
 * nor writes its memory (the final round of a save or migration, which
 * KVM's dirty log cannot see the back ends' writes for).  Waits up to
 * timeout_ms for the thread: 0, or -ETIMEDOUT (it parks later).  0 at once
 * without a thread. */
int xbe_quiesce(struct xbe *x, unsigned timeout_ms);

/* Lets a quiesced thread go on; nothing when it was not asked to park. */
void xbe_resume(struct xbe *x);

/* Stops the thread, unbinds the port, closes what xbe_init opened.  Safe
 * on a zeroed or half-initialised xbe whose fds are -1. */
void xbe_stop(struct xbe *x);

/* May a line the front end causes (each connect, close or refusal) be
 * logged now?  At most 10 per 5 s per device, as Xen's printk_ratelimit
 * (a front end cycling through its states would otherwise log without
 * bound); the next line let through is preceded by how many were not. */
bool xbe_log_ok(struct xbe *x);

/* Writes <bpath>/<rel> = printf(fmt, ...).  0 or -errno. */
int xbe_writef(struct xbe *x, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An unsigned decimal at <dir>/<rel>, at most max.  -ENOENT when absent,
 * -EINVAL when malformed. */
int xbe_read_uint(struct xbe *x, const char *dir, const char *rel, uint64_t max,
                  uint64_t *out);

/* Binds the front end's event channel (read from <fpath>/<rel>) to kick_fd.
 * NULL, or why not. */
const char *xbe_bind_port(struct xbe *x, const char *rel);

/* A grant of the front end's named by <fpath>/<rel>, writable, to Domain
 * 0, as a pointer to its page, in use (gnttab_map: the front end cannot
 * end access to it) until xbe_unmap_ring(*ref).  NULL when absent or not
 * such a grant. */
void *xbe_map_ring(struct xbe *x, const char *rel, grant_ref_t *ref);
void xbe_unmap_ring(struct xbe *x, grant_ref_t ref);

/* The front end broke the protocol: disconnect and go Closing. */
void xbe_fatal(struct xbe *x, const char *why);

/* Raises the device's port for the guest. */
void xbe_notify(struct xbe *x);

#endif
