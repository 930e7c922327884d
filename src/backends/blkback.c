/* Block back end: the Domain 0 end of xen-blkfront (contract: blkback.h). */
#include "domus/blkback.h"
#include "domus/sandbox.h"
#include "domus/util.h"
#include "domus/xenbus_be.h"
#include "domus/xsclient.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include <xen/io/protocols.h>

#define SECTORS_PER_PAGE (DOMUS_PAGE_SIZE / BLKBACK_SECTOR)

/* ---- requests ---- */

/* The I/O one checked request still needs: a transfer of iov[first..niov)
 * at off (left bytes), then an fdatasync when flush.  Nothing to transfer
 * (niov == first) and flush: a bare flush. */
struct blk_op {
    bool write, flush;
    unsigned first, niov;
    uint64_t off, left;
    struct iovec iov[BLKBACK_MAX_INDIRECT_SEGMENTS];
    /* The grants in use (gnttab_map) until the I/O is answered: mapped for
     * writing when the data goes into guest memory (a read). */
    unsigned nmapped;
    bool to_guest;
    grant_ref_t gref[BLKBACK_MAX_INDIRECT_SEGMENTS];
};

/* Ends op's use of its grants: the front end may reuse the pages now. */
static void unmap_op(const struct blkback_io *io, struct blk_op *op)
{
    for (unsigned i = 0; i < op->nmapped; i++)
        gnttab_unmap(io->d, op->gref[i], op->to_guest);
    op->nmapped = 0;
}

/* prepare()'s answer when the request needs the I/O in its blk_op (the
 * BLKIF_RSP_* statuses are all <= 0). */
#define BLK_PENDING 1

/* Maps segment s (gnttab_map) into op's iovec i; its length, or -1. */
static int64_t map_segment(const struct blkback_io *io,
                           const struct blkif_request_segment *s, struct blk_op *op,
                           unsigned i)
{
    uint64_t gpa;
    if (s->first_sect > s->last_sect || s->last_sect >= SECTORS_PER_PAGE)
        return -1;
    if (gnttab_map(io->d, s->gref, 0, op->to_guest, &gpa) != GNTST_okay)
        return -1;
    op->gref[op->nmapped++] = s->gref;
    size_t len = (size_t)(s->last_sect - s->first_sect + 1) * BLKBACK_SECTOR;
    void *p = gmem_ptr(&io->d->mem, gpa + (uint64_t)s->first_sect * BLKBACK_SECTOR, len);
    if (!p)
        return -1;
    op->iov[i] = (struct iovec){p, len};
    return (int64_t)len;
}

/* n segments (a private copy) as host iovecs into granted guest frames,
 * mapped until unmap_op.  to_guest: the data goes into guest memory (a
 * read), so the grants must be writable.  Returns the byte count, or -1 on
 * any bad segment (nothing left mapped). */
static int64_t map_segments(const struct blkback_io *io,
                            const struct blkif_request_segment *segs, unsigned n,
                            bool to_guest, struct blk_op *op)
{
    int64_t total = 0;

    op->to_guest = to_guest;
    op->nmapped = 0;
    for (unsigned i = 0; i < n; i++) {
        int64_t len = map_segment(io, &segs[i], op, i);
        if (len < 0) {
            unmap_op(io, op);
            return -1;
        }
        total += len;
    }
    return total;
}

static bool in_image(const struct blkback_io *io, uint64_t sector, uint64_t count)
{
    return sector <= io->sectors && count <= io->sectors - sector;
}

/* Checks a read or write of n segments at sector into op. */
static int transfer(const struct blkback_io *io, const struct blkif_request_segment *segs,
                    unsigned n, uint64_t sector, bool write, struct blk_op *op)
{
    int64_t total;

    if (write && !io->readwrite)
        return BLKIF_RSP_ERROR;
    if (n == 0 || n > BLKBACK_MAX_INDIRECT_SEGMENTS)
        return BLKIF_RSP_ERROR;
    total = map_segments(io, segs, n, !write, op);
    if (total < 0)
        return BLKIF_RSP_ERROR;
    if (!in_image(io, sector, (uint64_t)total / BLKBACK_SECTOR)) {
        unmap_op(io, op);
        return BLKIF_RSP_ERROR;
    }
    op->write = write;
    op->first = 0;
    op->niov = n;
    op->off = sector * BLKBACK_SECTOR;
    op->left = (uint64_t)total;
    return BLK_PENDING;
}

static int do_rw(const struct blkback_io *io, const blkif_request_t *req, bool write,
                 struct blk_op *op)
{
    if (req->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
        return BLKIF_RSP_ERROR;
    return transfer(io, req->seg, req->nr_segments, req->sector_number, write, op);
}

#define SEGS_PER_INDIRECT_PAGE (DOMUS_PAGE_SIZE / sizeof(struct blkif_request_segment))

/* BLKIF_OP_INDIRECT: the segments live in granted pages (read-only grants
 * are fine); they are copied out once, then checked like direct ones. */
static int do_indirect(const struct blkback_io *io, const blkif_request_t *req,
                       struct blk_op *op)
{
    struct blkif_request_segment segs[BLKBACK_MAX_INDIRECT_SEGMENTS];
    blkif_request_indirect_t ir;
    unsigned pages;

    memcpy(&ir, req, sizeof(ir));
    if (ir.indirect_op != BLKIF_OP_READ && ir.indirect_op != BLKIF_OP_WRITE)
        return BLKIF_RSP_EOPNOTSUPP;
    if (ir.nr_segments == 0 || ir.nr_segments > BLKBACK_MAX_INDIRECT_SEGMENTS)
        return BLKIF_RSP_ERROR;
    pages = (unsigned)((ir.nr_segments + SEGS_PER_INDIRECT_PAGE - 1) /
                       SEGS_PER_INDIRECT_PAGE);
    for (unsigned p = 0; p < pages; p++) {
        uint64_t gpa;
        unsigned first = p * (unsigned)SEGS_PER_INDIRECT_PAGE;
        unsigned n = ir.nr_segments - first < SEGS_PER_INDIRECT_PAGE
                         ? ir.nr_segments - first
                         : (unsigned)SEGS_PER_INDIRECT_PAGE;
        const void *src;
        if (gnttab_map(io->d, ir.indirect_grefs[p], 0, false, &gpa) != GNTST_okay)
            return BLKIF_RSP_ERROR;
        src = gmem_ptr(&io->d->mem, gpa, n * sizeof(segs[0]));
        if (src)
            memcpy(&segs[first], src, n * sizeof(segs[0]));
        gnttab_unmap(io->d, ir.indirect_grefs[p], false);
        if (!src)
            return BLKIF_RSP_ERROR;
    }
    return transfer(io, segs, ir.nr_segments, ir.sector_number,
                    ir.indirect_op == BLKIF_OP_WRITE, op);
}

/* FLUSH_DISKCACHE / WRITE_BARRIER: its data (if any) written, then
 * fdatasync. */
static int do_flush(const struct blkback_io *io, const blkif_request_t *req,
                    struct blk_op *op)
{
    if (req->nr_segments) {
        int st = do_rw(io, req, true, op);
        if (st != BLK_PENDING)
            return st;
    } else {
        op->write = true;
        op->first = op->niov = 0;
        op->off = op->left = 0;
    }
    op->flush = true;
    return BLK_PENDING;
}

/* Done at once (synchronously, also with io_uring). */
static int do_discard(const struct blkback_io *io, const blkif_request_t *req)
{
    blkif_request_discard_t dr;

    memcpy(&dr, req, sizeof(dr));
    if (!io->discard)
        return BLKIF_RSP_EOPNOTSUPP;
    if (!io->readwrite || !in_image(io, dr.sector_number, dr.nr_sectors))
        return BLKIF_RSP_ERROR;
    if (dr.nr_sectors && fallocate(io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   (off_t)(dr.sector_number * BLKBACK_SECTOR),
                                   (off_t)(dr.nr_sectors * BLKBACK_SECTOR)) < 0)
        return errno == EOPNOTSUPP ? BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR;
    return BLKIF_RSP_OKAY;
}

/* Checks one request: its final BLKIF_RSP_* status, or BLK_PENDING with
 * the I/O still to do in op. */
static int check(const struct blkback_io *io, const blkif_request_t *req,
                 struct blk_op *op)
{
    op->flush = false;
    op->nmapped = 0;
    switch (req->operation) {
    case BLKIF_OP_READ:
        return do_rw(io, req, false, op);
    case BLKIF_OP_WRITE:
        return do_rw(io, req, true, op);
    case BLKIF_OP_WRITE_BARRIER:
    case BLKIF_OP_FLUSH_DISKCACHE:
        if (!io->readwrite && req->nr_segments)
            return BLKIF_RSP_ERROR;
        return do_flush(io, req, op);
    case BLKIF_OP_DISCARD:
        return do_discard(io, req);
    case BLKIF_OP_INDIRECT:
        return do_indirect(io, req, op);
    default:
        return BLKIF_RSP_EOPNOTSUPP;
    }
}

static void add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* check, and the request counted as Xen's blkback counts it: a read, a
 * write or a flush that passed the checks, with its sectors; a discard. */
static int prepare(const struct blkback_io *io, const blkif_request_t *req,
                   struct blk_op *op)
{
    int st = check(io, req, op);
    struct blkback_stats *s = io->stats;

    if (!s)
        return st;
    if (req->operation == BLKIF_OP_DISCARD)
        add(&s->ds_req, 1);
    if (st != BLK_PENDING)
        return st;
    if (op->flush && !op->left)
        add(&s->f_req, 1);
    else if (op->write) {
        add(&s->wr_req, 1);
        add(&s->wr_sect, op->left / BLKBACK_SECTOR);
    } else {
        add(&s->rd_req, 1);
        add(&s->rd_sect, op->left / BLKBACK_SECTOR);
    }
    return st;
}

/* fdatasync's result as a status (EINVAL: nothing to sync). */
static int16_t sync_status(int err)
{
    return !err || err == EINVAL ? BLKIF_RSP_OKAY : BLKIF_RSP_ERROR;
}

/* Does op's I/O in this thread. */
static int16_t run_sync(const struct blkback_io *io, struct blk_op *op)
{
    if (op->niov) {
        ssize_t got;
        do {
            got = op->write ? pwritev(io->fd, op->iov, (int)op->niov, (off_t)op->off)
                            : preadv(io->fd, op->iov, (int)op->niov, (off_t)op->off);
        } while (got < 0 && errno == EINTR);
        if (got < 0 || (uint64_t)got != op->left)
            return BLKIF_RSP_ERROR;
    }
    if (op->flush)
        return sync_status(fdatasync(io->fd) < 0 ? errno : 0);
    return BLKIF_RSP_OKAY;
}

int16_t blkback_do_request(const struct blkback_io *io, const blkif_request_t *req)
{
    struct blk_op op;
    int st = prepare(io, req, &op);

    if (st != BLK_PENDING)
        return (int16_t)st;
    st = run_sync(io, &op);
    unmap_op(io, &op);
    return (int16_t)st;
}

/* The operation a response to req carries: an indirect one answers as its
 * indirect_op. */
static uint8_t rsp_operation(const blkif_request_t *req)
{
    uint8_t op = req->operation;

    if (op == BLKIF_OP_INDIRECT)
        memcpy(&op,
               (const uint8_t *)req + offsetof(blkif_request_indirect_t, indirect_op), 1);
    return op;
}

static void answer(blkif_back_ring_t *ring, uint64_t id, uint8_t op, int16_t st)
{
    blkif_response_t *rsp = RING_GET_RESPONSE(ring, ring->rsp_prod_pvt);

    rsp->id = id;
    rsp->operation = op;
    rsp->status = st;
    ring->rsp_prod_pvt++;
}

static int do_ring_sync(const struct blkback_io *io, blkif_back_ring_t *ring,
                        bool *notify)
{
    int served = 0, more;
    bool n;

    *notify = false;
    do {
        RING_IDX rp = __atomic_load_n(&ring->sring->req_prod, __ATOMIC_ACQUIRE);
        if (XBE_REQ_PROD_BAD(ring, rp))
            return -EPROTO;
        while (ring->req_cons != rp &&
               !RING_REQUEST_CONS_OVERFLOW(ring, ring->req_cons)) {
            blkif_request_t req;
            RING_COPY_REQUEST(ring, ring->req_cons, &req);
            ring->req_cons++;
            answer(ring, req.id, rsp_operation(&req), blkback_do_request(io, &req));
            served++;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, n);
        *notify = *notify || n;
        RING_FINAL_CHECK_FOR_REQUESTS(ring, more);
    } while (more);
    return served;
}

/* ---- asynchronous I/O on io_uring ---- */

/* A request in flight: user_data of its SQE is its index. */
struct blk_slot {
    uint64_t id;
    uint8_t operation; /* of the response */
    struct blk_op op;
};

struct blkback_aio {
    struct io_uring ring;
    int efd;        /* signalled on each completion */
    unsigned depth; /* slots */
    unsigned nfree; /* free slots, listed in free_list[0..nfree) */
    unsigned *free_list;
    struct blk_slot *slots;
    uint64_t resubmits; /* short transfers continued */
    bool submit_failed; /* io_uring_enter failed (said once in the log) */
    bool efd_failed;    /* reading efd failed (said once) */
};

/* All the ring may do (queue()): the thread's seccomp filter does not see
 * it. */
static const unsigned char ring_ops[] = {IORING_OP_READV, IORING_OP_WRITEV,
                                         IORING_OP_FSYNC};

int blkback_aio_init(struct blkback_io *io, unsigned depth)
{
    struct blkback_aio *a = calloc(1, sizeof(*a));
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE, .cq_entries = 2 * depth};
    int rc;

    if (!a || !depth)
        return free(a), -EINVAL;
    a->efd = -1;
    a->depth = depth;
    a->slots = calloc(depth, sizeof(*a->slots));
    a->free_list = calloc(depth, sizeof(*a->free_list));
    if (!a->slots || !a->free_list) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = sandbox_uring(depth < 128 ? depth : 128, &a->ring, &p, ring_ops,
                            sizeof(ring_ops), IOSQE_IO_DRAIN, a->efd)) < 0)
        goto fail;
    for (unsigned i = 0; i < depth; i++)
        a->free_list[i] = depth - 1 - i;
    a->nfree = depth;
    io->aio = a;
    return 0;
fail:
    if (a->efd >= 0)
        close(a->efd);
    free(a->slots);
    free(a->free_list);
    free(a);
    return rc;
}

void blkback_aio_fini(struct blkback_io *io)
{
    struct blkback_aio *a = io->aio;

    if (!a)
        return;
    io_uring_queue_exit(&a->ring);
    close(a->efd);
    free(a->slots);
    free(a->free_list);
    free(a);
    io->aio = NULL;
}

int blkback_aio_fd(const struct blkback_io *io)
{
    return io->aio ? io->aio->efd : -1;
}

unsigned blkback_in_flight(const struct blkback_io *io)
{
    return io->aio ? io->aio->depth - io->aio->nfree : 0;
}

/* Queues slot s's next step: the rest of its transfer, or its fdatasync
 * (drained: after every earlier SQE).  false when no SQE can be had. */
static bool queue(const struct blkback_io *io, unsigned s, bool drain)
{
    struct blkback_aio *a = io->aio;
    struct blk_op *op = &a->slots[s].op;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);

    if (!sqe) {
        io_uring_submit(&a->ring);
        if (!(sqe = io_uring_get_sqe(&a->ring)))
            return false;
    }
    if (op->first < op->niov) {
        struct iovec *iov = &op->iov[op->first];
        unsigned n = op->niov - op->first;
        if (op->write)
            io_uring_prep_writev(sqe, io->fd, iov, n, op->off);
        else
            io_uring_prep_readv(sqe, io->fd, iov, n, op->off);
    } else {
        io_uring_prep_fsync(sqe, io->fd, IORING_FSYNC_DATASYNC);
        drain = true;
    }
    if (drain)
        io_uring_sqe_set_flags(sqe, IOSQE_IO_DRAIN);
    io_uring_sqe_set_data64(sqe, s);
    return true;
}

static void release(struct blkback_aio *a, unsigned s)
{
    a->free_list[a->nfree++] = s;
}

/* Moves op's transfer on by done bytes (less than op->left). */
static void advance(struct blk_op *op, uint64_t done)
{
    op->off += done;
    op->left -= done;
    while (done && done >= op->iov[op->first].iov_len)
        done -= op->iov[op->first++].iov_len;
    op->iov[op->first].iov_base = (uint8_t *)op->iov[op->first].iov_base + done;
    op->iov[op->first].iov_len -= done;
}

/* One completion (res as the syscall would return it, -errno) of slot s:
 * its next step queued, or its response. */
static void complete(const struct blkback_io *io, blkif_back_ring_t *ring, unsigned s,
                     int res)
{
    struct blkback_aio *a = io->aio;
    struct blk_slot *sl = &a->slots[s];
    struct blk_op *op = &sl->op;
    int16_t st = BLKIF_RSP_OKAY;

    if (op->first < op->niov) { /* a transfer */
        if (res == -EINTR || res == -EAGAIN) {
            res = 0; /* again */
        } else if (res <= 0) {
            st = BLKIF_RSP_ERROR; /* an error, or the end of the image */
            goto out;
        } else if ((uint64_t)res >= op->left) {
            op->first = op->niov;
            op->left = 0;
            if (!op->flush)
                goto out;
        } else {
            a->resubmits++;
            advance(op, (uint64_t)res);
        }
        if (queue(io, s, false))
            return;
        st = BLKIF_RSP_ERROR;
    } else { /* the fdatasync */
        st = sync_status(-res);
    }
out:
    unmap_op(io, op);
    answer(ring, sl->id, sl->operation, st);
    release(a, s);
}

/* Answers every completion there is; their number. */
static unsigned reap(const struct blkback_io *io, blkif_back_ring_t *ring)
{
    struct blkback_aio *a = io->aio;
    struct io_uring_cqe *cqe;
    unsigned n = 0;

    while (io_uring_peek_cqe(&a->ring, &cqe) == 0) {
        uint64_t s = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&a->ring, cqe);
        if (s < a->depth)
            complete(io, ring, (unsigned)s, res);
        n++;
    }
    return n;
}

/* Takes requests off the ring while there are free slots: checked ones
 * are queued, the others answered. */
static int take(const struct blkback_io *io, blkif_back_ring_t *ring, RING_IDX rp)
{
    struct blkback_aio *a = io->aio;
    int taken = 0;

    while (ring->req_cons != rp && !RING_REQUEST_CONS_OVERFLOW(ring, ring->req_cons) &&
           a->nfree) {
        blkif_request_t req;
        RING_COPY_REQUEST(ring, ring->req_cons, &req);
        ring->req_cons++;
        taken++;
        unsigned s = a->free_list[--a->nfree];
        struct blk_slot *sl = &a->slots[s];
        sl->id = req.id;
        sl->operation = rsp_operation(&req);
        int st = prepare(io, &req, &sl->op);
        if (st == BLK_PENDING && !queue(io, s, sl->op.flush))
            st = BLKIF_RSP_ERROR;
        if (st != BLK_PENDING) {
            unmap_op(io, &sl->op);
            answer(ring, sl->id, sl->operation, (int16_t)st);
            release(a, s);
        }
    }
    /* Requests left waiting for a free slot: Xen's "out of requests". */
    if (!a->nfree && ring->req_cons != rp && io->stats)
        add(&io->stats->oo_req, 1);
    return taken;
}

/* Hands the queued SQEs to the kernel. */
static void submit(struct blkback_aio *a)
{
    int rc = io_uring_submit(&a->ring);
    bool failed = rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY; /* for good */

    if (failed && !a->submit_failed)
        dwarn("blkback: submitting I/O: %s", strerror(-rc));
    a->submit_failed = a->submit_failed || failed;
}

/* Clears the completions' eventfd; true when completions came meanwhile
 * (they would not wake the thread again). */
static bool rearm_completions(struct blkback_aio *a)
{
    uint64_t v;

    if (read(a->efd, &v, sizeof(v)) < 0 && errno != EAGAIN && !a->efd_failed) {
        dwarn("blkback: completions: %s", strerror(errno));
        a->efd_failed = true;
    }
    return io_uring_cq_ready(&a->ring) != 0;
}

static int do_ring_aio(const struct blkback_io *io, blkif_back_ring_t *ring, bool *notify)
{
    struct blkback_aio *a = io->aio;
    int taken = 0, more;
    bool n;

    *notify = false;
    do {
        reap(io, ring);
        RING_IDX rp = __atomic_load_n(&ring->sring->req_prod, __ATOMIC_ACQUIRE);
        if (XBE_REQ_PROD_BAD(ring, rp))
            return -EPROTO;
        taken += take(io, ring, rp);
        submit(a);
        reap(io, ring); /* those done at once (cached reads, RAM disks) */
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, n);
        *notify = *notify || n;
        /* With every slot busy, completions bring us back (poll_fd). */
        more = 0;
        if (a->nfree)
            RING_FINAL_CHECK_FOR_REQUESTS(ring, more);
        /* Completions reaped above signalled the eventfd too: cleared
         * here, not at the next wake-up, which would find nothing to do. */
        if (!more)
            more = rearm_completions(a);
    } while (more);
    return taken;
}

int blkback_do_ring(const struct blkback_io *io, blkif_back_ring_t *ring, bool *notify)
{
    return io->aio ? do_ring_aio(io, ring, notify) : do_ring_sync(io, ring, notify);
}

/* Slots whose SQEs the kernel never took (a submission that failed for
 * good): they are answered with an error and their grants ended, and the
 * SQEs taken back, so that no later io_uring_enter hands them over.  The
 * SQ ring maps slot i to SQE i (liburing sets it so; no SQPOLL here). */
static unsigned abandon_unsubmitted(const struct blkback_io *io, blkif_back_ring_t *ring)
{
    struct blkback_aio *a = io->aio;
    struct io_uring_sq *sq = &a->ring.sq;
    unsigned head = __atomic_load_n(sq->khead, __ATOMIC_ACQUIRE), n = 0;

    for (unsigned i = head; i != sq->sqe_tail; i++, n++) {
        uint64_t s = sq->sqes[i & sq->ring_mask].user_data;
        if (s >= a->depth)
            continue;
        struct blk_slot *sl = &a->slots[s];
        unmap_op(io, &sl->op);
        answer(ring, sl->id, sl->operation, BLKIF_RSP_ERROR);
        release(a, (unsigned)s);
    }
    sq->sqe_head = sq->sqe_tail = head;
    __atomic_store_n(sq->ktail, head, __ATOMIC_RELEASE);
    return n;
}

/* Waits for one completion of what the kernel has, without submitting. */
static int wait_completion(struct blkback_aio *a)
{
    struct io_uring_cqe *cqe;
    int rc;

    do
        rc = io_uring_wait_cqe(&a->ring, &cqe);
    while (rc == -EINTR);
    return rc;
}

void blkback_drain(const struct blkback_io *io, blkif_back_ring_t *ring, bool *notify)
{
    struct blkback_aio *a = io->aio;
    unsigned retries = 0;
    bool n, broken = false;

    *notify = false;
    if (!a || a->nfree == a->depth)
        return; /* nothing in flight (ring may be unset) */
    while (a->nfree < a->depth) {
        int rc = broken ? wait_completion(a) : io_uring_submit_and_wait(&a->ring, 1);
        bool again =
            rc == -EINTR || ((rc == -EAGAIN || rc == -EBUSY) && ++retries < 1000);
        if (rc < 0 && broken) {
            /* What the kernel has keeps its grants busy, as in Xen. */
            dwarn("blkback: %u requests left in flight: %s", a->depth - a->nfree,
                  strerror(-rc));
            break;
        }
        if (rc < 0 && !again) {
            /* What the kernel never took is answered now; the rest is
             * waited for without submitting. */
            dwarn("blkback: waiting for I/O: %s", strerror(-rc));
            abandon_unsubmitted(io, ring);
            broken = true;
            continue;
        }
        reap(io, ring);
    }
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, n);
    *notify = n;
}

/* ---- multi-page rings ---- */

void *blkback_map_ring(struct domain *d, const grant_ref_t *refs, unsigned n,
                       unsigned *bad)
{
    size_t len = (size_t)n * DOMUS_PAGE_SIZE;
    uint8_t *base;
    unsigned i = 0;

    *bad = n;
    if (n == 0 || n > BLKBACK_MAX_RING_PAGES)
        return NULL;
    base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    for (; i < n; i++) {
        uint64_t gpa;
        int64_t off;
        if (gnttab_map(d, refs[i], 0, true, &gpa) != GNTST_okay) {
            *bad = i;
            goto fail;
        }
        /* This second mapping of the memfd is not one a lazy restore serves. */
        if ((off = gmem_fd_offset(&d->mem, gpa)) < 0 ||
            gmem_populate(&d->mem, gpa, DOMUS_PAGE_SIZE) < 0) {
            *bad = i++;
            goto fail;
        }
        if (mmap(base + i * DOMUS_PAGE_SIZE, DOMUS_PAGE_SIZE, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED, d->mem.fd, (off_t)off) == MAP_FAILED) {
            i++;
            goto fail;
        }
    }
    return base;
fail:
    while (i--)
        gnttab_unmap(d, refs[i], true);
    munmap(base, len);
    return NULL;
}

void blkback_unmap_ring(struct domain *d, const grant_ref_t *refs, void *ring, unsigned n)
{
    if (!ring)
        return;
    munmap(ring, (size_t)n * DOMUS_PAGE_SIZE);
    for (unsigned i = 0; i < n; i++)
        gnttab_unmap(d, refs[i], true);
}

/* ---- the xenbus side ---- */

struct blkback {
    struct xbe xb;
    struct blkback_io io;
    blkif_back_ring_t ring;
    void *ring_map; /* its pages (ring_pages), mapped contiguously */
    unsigned ring_pages;
    grant_ref_t ring_refs[BLKBACK_MAX_RING_PAGES]; /* in use while mapped */
    char why[96];                                  /* blk_connect's refusal */
    bool offer_persistent; /* DOMUS_BLK_PERSISTENT=1: feature-persistent offered */
    bool persistent;       /* the front end keeps its grants (feature-persistent) */
    /* This connection's work, logged at disconnect: serve calls, requests
     * taken, nanoseconds spent serving, events sent to the guest. */
    uint64_t serves, requests, busy_ns, events;
    struct blkback_stats stats; /* for the domain's whole life, across connections */
};

void blkback_get_stats(const struct blkback *b, struct blkback_stats *out)
{
    const uint64_t *in = b ? (const uint64_t *)&b->stats : NULL;
    uint64_t *o = (uint64_t *)out;

    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        o[i] = in ? __atomic_load_n(&in[i], __ATOMIC_RELAXED) : 0;
}

static int advertise(struct xbe *x)
{
    struct blkback *b = x->priv;
    uint64_t enable = 1;
    int rc;

    xbe_read_uint(x, x->bpath, "discard-enable", 1, &enable);
    b->io.discard = enable && b->io.readwrite;
    rc = xbe_writef(x, "sector-size", "%d", BLKBACK_SECTOR);
    rc = rc ? rc : xbe_writef(x, "sectors", "%" PRIu64, b->io.sectors);
    rc = rc ? rc : xbe_writef(x, "info", "%d", b->io.readwrite ? 0 : VDISK_READONLY);
    rc = rc ? rc : xbe_writef(x, "feature-flush-cache", "1");
    rc = rc ? rc : xbe_writef(x, "feature-barrier", "1");
    rc = rc ? rc : xbe_writef(x, "feature-discard", "%d", b->io.discard);
    rc = rc ? rc
            : xbe_writef(x, "feature-max-indirect-segments", "%d",
                         BLKBACK_MAX_INDIRECT_SEGMENTS);
    rc = rc ? rc : xbe_writef(x, "max-ring-page-order", "%d", BLKBACK_MAX_RING_ORDER);
    if (b->offer_persistent)
        rc = rc ? rc : xbe_writef(x, "feature-persistent", "1");
    if (!rc && b->io.discard) {
        rc = xbe_writef(x, "discard-granularity", "%llu", DOMUS_PAGE_SIZE);
        rc = rc ? rc : xbe_writef(x, "discard-alignment", "0");
        rc = rc ? rc : xbe_writef(x, "discard-secure", "0");
    }
    return rc;
}

static void blk_disconnect(struct xbe *x)
{
    struct blkback *b = x->priv;
    bool notify;

    blkback_drain(&b->io, &b->ring, &notify); /* the port is gone: no event */
    if (b->serves && xbe_log_ok(x))
        dinfo("%s: %" PRIu64 " requests in %" PRIu64 " wake-ups, %.3f s busy, %" PRIu64
              " events to the guest (%" PRIu64 " sent again)",
              x->who, b->requests, b->serves, (double)b->busy_ns / 1e9, b->events,
              x->resent);
    b->serves = b->requests = b->busy_ns = b->events = 0;
    memset(&b->ring, 0, sizeof(b->ring));
    blkback_unmap_ring(x->d, b->ring_refs, b->ring_map, b->ring_pages);
    b->ring_map = NULL;
}

/* The front end's protocol node, if any, must be the native ABI. */
static int check_protocol(struct xbe *x)
{
    char path[160], *v = NULL;
    int rc;

    snprintf(path, sizeof(path), "%s/protocol", x->fpath);
    rc = xsc_read(&x->xs, path, &v);
    if (rc == -ENOENT)
        return 0;
    if (!rc && strcmp(v, XEN_IO_PROTO_ABI_X86_64))
        rc = -EPROTONOSUPPORT;
    free(v);
    return rc;
}

/* The front end's ring pages: "ring-ref", or with ring-page-order N the
 * grants ring-ref0..ring-ref(2^N - 1), mapped contiguously. */
static const char *map_rings(struct xbe *x)
{
    struct blkback *b = x->priv;
    grant_ref_t refs[BLKBACK_MAX_RING_PAGES];
    uint64_t order = 0, ref;
    unsigned n = 1, bad;
    int rc = xbe_read_uint(x, x->fpath, "ring-page-order", UINT32_MAX, &order);

    if (rc == -EINVAL)
        return "ring-page-order is not a number";
    if (!rc && order > BLKBACK_MAX_RING_ORDER) {
        snprintf(b->why, sizeof(b->why), "ring-page-order %" PRIu64 " is beyond %d",
                 order, BLKBACK_MAX_RING_ORDER);
        return b->why;
    }
    if (rc) { /* absent: one page, "ring-ref" */
        if (xbe_read_uint(x, x->fpath, "ring-ref", UINT32_MAX, &ref))
            return "ring-ref is not a writable grant to Domain 0";
        refs[0] = (grant_ref_t)ref;
    } else {
        n = 1u << order;
        for (unsigned i = 0; i < n; i++) {
            char rel[24];
            snprintf(rel, sizeof(rel), "ring-ref%u", i);
            if (xbe_read_uint(x, x->fpath, rel, UINT32_MAX, &ref)) {
                snprintf(b->why, sizeof(b->why), "%s is missing or not a number", rel);
                return b->why;
            }
            refs[i] = (grant_ref_t)ref;
        }
    }
    memcpy(b->ring_refs, refs, n * sizeof(refs[0]));
    if (!(b->ring_map = blkback_map_ring(x->d, refs, n, &bad))) {
        if (bad >= n)
            snprintf(b->why, sizeof(b->why), "mapping %u ring pages: %s", n,
                     strerror(errno));
        else if (rc)
            snprintf(b->why, sizeof(b->why),
                     "ring-ref is not a writable grant to Domain 0");
        else
            snprintf(b->why, sizeof(b->why),
                     "ring-ref%u is not a writable grant to Domain 0", bad);
        return b->why;
    }
    b->ring_pages = n;
    BACK_RING_INIT(&b->ring, (blkif_sring_t *)b->ring_map, n * DOMUS_PAGE_SIZE);
    return NULL;
}

static const char *blk_connect(struct xbe *x)
{
    struct blkback *b = x->priv;
    const char *why;
    uint64_t n;

    if (!xbe_read_uint(x, x->fpath, "multi-queue-num-queues", 1024, &n) && n != 1)
        return "multiple queues are not offered";
    if (check_protocol(x))
        return "unsupported protocol (native x86_64-abi only)";
    b->persistent = b->offer_persistent &&
                    !xbe_read_uint(x, x->fpath, "feature-persistent", 1, &n) && n == 1;
    if ((why = map_rings(x)))
        return why;
    if ((why = xbe_bind_port(x, "event-channel"))) {
        memset(&b->ring, 0, sizeof(b->ring));
        blkback_unmap_ring(x->d, b->ring_refs, b->ring_map, b->ring_pages);
        b->ring_map = NULL;
        return why;
    }
    if (xbe_log_ok(x))
        dinfo("%s: ring of %u page(s), %u requests, %s%s I/O, persistent grants %s",
              x->who, b->ring_pages, RING_SIZE(&b->ring),
              b->io.aio ? "io_uring" : "synchronous", b->io.direct ? " direct" : "",
              b->persistent ? "on" : "off");
    return NULL;
}

static void blk_serve(struct xbe *x)
{
    struct blkback *b = x->priv;
    uint64_t t0 = dnow_ns();
    bool notify;
    int n = blkback_do_ring(&b->io, &b->ring, &notify);
    if (n < 0)
        xbe_fatal(x, "front end ring indexes are corrupt");
    else if (notify)
        xbe_notify(x);
    b->serves++;
    b->requests += n > 0 ? (uint64_t)n : 0;
    b->events += n >= 0 && notify;
    b->busy_ns += dnow_ns() - t0;
}

/* io_uring's completions wake the thread. */
static short blk_poll_fd(struct xbe *x, int *fd)
{
    struct blkback *b = x->priv;

    *fd = blkback_aio_fd(&b->io);
    return *fd >= 0 ? POLLIN : 0;
}

static bool blk_unseen(struct xbe *x)
{
    struct blkback *b = x->priv;

    return b->ring.sring && XBE_RSP_UNSEEN(&b->ring);
}

/* Before the thread parks (xbe_quiesce): the I/O in flight finished and
 * answered, its grants ended. */
static void blk_quiesce(struct xbe *x)
{
    struct blkback *b = x->priv;
    bool notify;

    blkback_drain(&b->io, &b->ring, &notify);
    if (notify)
        xbe_notify(x);
}

static const struct xbe_ops blk_ops = {
    .advertise = advertise,
    .connect = blk_connect,
    .disconnect = blk_disconnect,
    .serve = blk_serve,
    .poll_fd = blk_poll_fd,
    .unseen = blk_unseen,
    .quiesce = blk_quiesce,
    .sandbox = SANDBOX_DISK,
};

/* A block device with 512-byte logical sectors: reopened O_DIRECT (its
 * requests are all sector-aligned); anything else keeps the page cache. */
static void try_direct(struct blkback *b, const char *path)
{
    int ssz = 0, fd;

    if (ioctl(b->io.fd, BLKSSZGET, &ssz) < 0 || ssz != BLKBACK_SECTOR)
        return;
    fd = open(path, (b->io.readwrite ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_DIRECT);
    if (fd < 0)
        return;
    close(b->io.fd);
    b->io.fd = fd;
    b->io.direct = true;
}

static int open_image(struct blkback *b, const char *path, char *err, size_t errlen)
{
    struct stat st;
    uint64_t size;

    b->io.fd = open(path, (b->io.readwrite ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (b->io.fd < 0 || fstat(b->io.fd, &st) < 0) {
        dfmt(err, errlen, "disk %s: %s", path, strerror(errno));
        return -errno;
    }
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(b->io.fd, BLKGETSIZE64, &size) < 0) {
            dfmt(err, errlen, "disk %s: size: %s", path, strerror(errno));
            return -errno;
        }
        try_direct(b, path);
    } else if (S_ISREG(st.st_mode)) {
        size = (uint64_t)st.st_size;
    } else {
        dfmt(err, errlen, "disk %s: not a file or block device", path);
        return -EINVAL;
    }
    b->io.sectors = size / BLKBACK_SECTOR;
    return 0;
}

int blkback_start(struct domain *d, const struct blkback_cfg *cfg, struct blkback **out,
                  char *err, size_t errlen)
{
    struct blkback *b = calloc(1, sizeof(*b));
    int rc;

    if (!b)
        return -ENOMEM;
    b->io = (struct blkback_io){.d = d, .fd = -1, .readwrite = cfg->readwrite};
    b->io.stats = &b->stats;
    b->offer_persistent = denv_is_1("DOMUS_BLK_PERSISTENT");
    if ((rc = xbe_init(&b->xb, d, "vbd", cfg->devid, cfg->xs_path, &blk_ops, b)) < 0) {
        dfmt(err, errlen, "disk %s: %s", cfg->path, strerror(-rc));
        goto out;
    }
    if ((rc = open_image(b, cfg->path, err, errlen)) < 0)
        goto out;
    if ((rc = blkback_aio_init(&b->io, BLKBACK_MAX_IN_FLIGHT)) < 0)
        dinfo("vbd %u: io_uring unavailable (%s): synchronous I/O", cfg->devid,
              strerror(-rc));
    if ((rc = xbe_start(&b->xb)) < 0) {
        dfmt(err, errlen, "disk %s: thread: %s", cfg->path, strerror(-rc));
        goto out;
    }
    *out = b;
    return 0;
out:
    blkback_stop(b);
    return rc;
}

int blkback_quiesce(struct blkback *b)
{
    return xbe_quiesce(&b->xb, BLKBACK_QUIESCE_MS);
}

void blkback_resume(struct blkback *b)
{
    xbe_resume(&b->xb);
}

void blkback_stop(struct blkback *b)
{
    if (!b)
        return;
    xbe_stop(&b->xb); /* waits for the I/O in flight (disconnect) */
    blkback_aio_fini(&b->io);
    if (b->io.fd >= 0 && b->io.readwrite && fdatasync(b->io.fd) < 0 && errno != EINVAL)
        dwarn("vbd %u: sync: %s", b->xb.devid, strerror(errno));
    if (b->io.fd >= 0)
        close(b->io.fd);
    free(b);
}
