/* The block back end of one virtual disk (Domain 0 side of xen-blkfront).
 *
 * One blkback serves one disk of one domain, in a thread of the domain's
 * domus-vm.  It touches guest memory only through gnttab_check() on grants
 * the guest gave to Domain 0 (the ring pages and each data segment).  It is
 * a Domain 0 client of xenstored: it waits for the toolstack's backend
 * directory /local/domain/0/backend/vbd/<domid>/<devid>, writes sectors,
 * sector-size, info, feature-flush-cache, feature-barrier, feature-discard
 * (when discard-enable is not 0), feature-max-indirect-segments,
 * max-ring-page-order (BLKBACK_MAX_RING_ORDER), feature-persistent (when
 * offered, below) and goes InitWait; when the front end
 * (/local/domain/<domid>/device/vbd/<devid>) is Initialised or Connected it
 * reads ring-ref (or, with ring-page-order N, ring-ref0 .. ring-ref(2^N -
 * 1)), event-channel, protocol (native x86_64-abi only) and
 * feature-persistent, maps the ring pages contiguously, binds the event
 * channel (evtchn_bind_backend) and goes Connected; an order beyond the maximum, a
 * ring page that is not a writable grant to Domain 0 or more than one
 * queue close the front end.  Front end Closing -> Closing; Closed ->
 * disconnect (after the I/O in flight completes; the ring is unmapped),
 * Closed; Initialising after Closed -> InitWait again.
 *
 * Requests: READ, WRITE (grants of at most BLKIF_MAX_SEGMENTS_PER_REQUEST
 * segments, each first_sect <= last_sect <= 7, the whole range inside the
 * image), INDIRECT READ/WRITE (at most BLKBACK_MAX_INDIRECT_SEGMENTS
 * segments in granted pages, copied out once), FLUSH_DISKCACHE and
 * WRITE_BARRIER (their data written, then fdatasync after every request
 * before them), DISCARD (hole punched, synchronously) when offered;
 * anything else gets BLKIF_RSP_EOPNOTSUPP.  A read-only disk (mode "r",
 * VDISK_READONLY) answers writes and discards with BLKIF_RSP_ERROR.
 * Checked requests run asynchronously on io_uring, as many in flight as
 * the ring holds, and are answered as they complete (out of order, by id,
 * as blkif allows); a short transfer is continued, a failed one answered
 * BLKIF_RSP_ERROR.  Where io_uring is unavailable (old kernel, seccomp)
 * they are served one at a time with preadv/pwritev, as logged at start.
 * A block device with 512-byte logical sectors is opened O_DIRECT, as
 * Linux's blkback submits its bios: guest data goes to the device without
 * a copy in Domain 0's page cache (every segment is sector-aligned).  A
 * file, or another sector size, is used through the page cache.
 * Persistent grants (feature-persistent) are offered when domus-vm runs
 * with DOMUS_BLK_PERSISTENT=1 (Linux's blkback offers them by default).
 * They buy Domus nothing: Domain 0 reaches granted frames through its own
 * mapping of guest memory, so a kept grant saves no map or unmap, and each
 * use is still checked against the grant table.  They cost the guest a copy
 * through its bounce pages: measured in the test host (RAM disk, blkfront
 * with and without xen_blkfront.feature_persistent=0, interleaved), without
 * them sequential reads ran ~30% and writes ~15% faster, 4 KiB random reads
 * the same.
 * Ring indexes are hostile: a producer more than a ring ahead disconnects
 * the front end (state Closing), never a crash. */
#ifndef DOMUS_BLKBACK_H
#define DOMUS_BLKBACK_H

#include "domus/hv.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xen/io/blkif.h>

#define BLKBACK_SECTOR 512
#define BLKBACK_MAX_INDIRECT_SEGMENTS 256 /* feature-max-indirect-segments */
#define BLKBACK_MAX_RING_ORDER 4          /* max-ring-page-order */
#define BLKBACK_MAX_RING_PAGES (1u << BLKBACK_MAX_RING_ORDER)

struct blkback;
struct blkback_aio; /* io_uring state (blkback.c) */

struct blkback_cfg {
    uint32_t devid;      /* Xen vdev number (xldisk_devid) */
    bool readwrite;      /* false: writes refused, mode "r" */
    const char *path;    /* the raw image */
    const char *xs_path; /* xenstored's socket */
};

/* Opens the image (read-write or read-only) and starts the thread, which
 * connects to xenstored and follows the protocol above.  -errno with a
 * reason in err (nothing left behind). */
int blkback_start(struct domain *d, const struct blkback_cfg *cfg, struct blkback **out,
                  char *err, size_t errlen);

/* The back end's thread parked, its I/O in flight answered (xbe_quiesce,
 * waiting up to BLKBACK_QUIESCE_MS), until blkback_resume.  0 or -errno. */
#define BLKBACK_QUIESCE_MS 10000
int blkback_quiesce(struct blkback *b);
void blkback_resume(struct blkback *b);

/* Stops the thread, unbinds the event channel, syncs and closes the image.
 * NULL is fine. */
void blkback_stop(struct blkback *b);

/* What a disk's front end asked for, as Xen's blkback counts it (the
 * statistics/ files xentop reads): requests checked and started, by kind,
 * and the sectors they move.  Updated by the back end's thread, read by
 * anyone (relaxed atomics). */
struct blkback_stats {
    uint64_t rd_req, wr_req, f_req, ds_req, oo_req, rd_sect, wr_sect;
};

/* A copy of b's counters (zeros for NULL). */
void blkback_get_stats(const struct blkback *b, struct blkback_stats *out);

/* ---- the request path, exposed for unit tests (no thread, no xenstore) ---- */

struct blkback_io {
    struct domain *d;
    int fd;           /* the image */
    uint64_t sectors; /* its size in BLKBACK_SECTOR units */
    bool readwrite;
    bool direct;                 /* the image is open O_DIRECT (a block device) */
    bool discard;                /* DISCARD offered */
    struct blkback_aio *aio;     /* NULL: requests served synchronously */
    struct blkback_stats *stats; /* counted into, or NULL */
};

/* Serves one request (a private copy of the ring slot) synchronously,
 * whatever io->aio: the checks of the ring path, then preadv/pwritev and
 * fdatasync.  Returns the BLKIF_RSP_* status for its response. */
int16_t blkback_do_request(const struct blkback_io *io, const blkif_request_t *req);

/* Consumes the requests on ring.  Synchronously (io->aio NULL) each is
 * served and answered in turn.  With io_uring, checked reads, writes and
 * flushes are submitted (at most the slots of io->aio in flight; the rest
 * wait on the ring until completions free slots) and answered, in the
 * order they complete, by this or a later call; the others are answered at
 * once.  Completions already there are answered first.  *notify is set
 * when the front end wants an event.  Returns the number of requests taken
 * off the ring, or -EPROTO when the front end's indexes are impossible
 * (the caller disconnects it, after blkback_drain). */
int blkback_do_ring(const struct blkback_io *io, blkif_back_ring_t *ring, bool *notify);

/* In-flight slots of blkback's io_uring: as many as the largest ring has
 * requests (512). */
#define BLKBACK_MAX_IN_FLIGHT                                                            \
    __CONST_RING_SIZE(blkif, (BLKBACK_MAX_RING_PAGES * DOMUS_PAGE_SIZE))

/* Sets up io->aio with depth slots (requests in flight), its completions
 * signalling an eventfd, its ring restricted to readv, writev and fsync
 * (sandbox_uring: the thread's seccomp filter does not see the ring's
 * operations).  0, or -errno (io_uring unavailable, or too old for
 * restrictions, Linux < 5.10: io->aio stays NULL). */
int blkback_aio_init(struct blkback_io *io, unsigned depth);

/* Frees io->aio (nothing may be in flight); NULL is fine. */
void blkback_aio_fini(struct blkback_io *io);

/* The eventfd readable when completions wait, or -1 without io_uring. */
int blkback_aio_fd(const struct blkback_io *io);

/* Requests submitted and not yet answered. */
unsigned blkback_in_flight(const struct blkback_io *io);

/* Waits for every request in flight and answers it on ring (*notify as
 * for blkback_do_ring).  Done before a ring goes away. */
void blkback_drain(const struct blkback_io *io, blkif_back_ring_t *ring, bool *notify);

/* Maps the n (at most BLKBACK_MAX_RING_PAGES) ring pages the front end
 * granted in refs, each a writable grant to Domain 0 of a page of d's RAM
 * (gnttab_map: in use, the front end cannot end access to them),
 * contiguously (memfd pages placed in reserved address space).  NULL on
 * failure (nothing left in use), *bad the index of the first bad grant (n
 * when it was the mapping itself). */
void *blkback_map_ring(struct domain *d, const grant_ref_t *refs, unsigned n,
                       unsigned *bad);

/* Unmaps what blkback_map_ring returned for refs (n pages) and ends the
 * grants' use; NULL is fine. */
void blkback_unmap_ring(struct domain *d, const grant_ref_t *refs, void *ring,
                        unsigned n);

#endif
