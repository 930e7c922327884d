/* Block back end: the Domain 0 end of xen-blkfront (contract: blkback.h). */
#include "domus/blkback.h"
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
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <xen/io/protocols.h>

#define SECTORS_PER_PAGE (DOMUS_PAGE_SIZE / BLKBACK_SECTOR)

/* ---- requests ---- */

/* n segments (a private copy) as host iovecs into granted guest frames.
 * to_guest: the data goes into guest memory (a read), so the grants must be
 * writable.  Returns the byte count, or -1 on any bad segment. */
static int64_t map_segments(const struct blkback_io *io,
                            const struct blkif_request_segment *segs, unsigned n,
                            bool to_guest, struct iovec *iov)
{
    int64_t total = 0;

    for (unsigned i = 0; i < n; i++) {
        const struct blkif_request_segment *s = &segs[i];
        uint64_t gpa;
        if (s->first_sect > s->last_sect || s->last_sect >= SECTORS_PER_PAGE)
            return -1;
        if (gnttab_check(io->d, s->gref, 0, to_guest, &gpa) != GNTST_okay)
            return -1;
        size_t len = (size_t)(s->last_sect - s->first_sect + 1) * BLKBACK_SECTOR;
        void *p =
            gmem_ptr(&io->d->mem, gpa + (uint64_t)s->first_sect * BLKBACK_SECTOR, len);
        if (!p)
            return -1;
        iov[i] = (struct iovec){p, len};
        total += (int64_t)len;
    }
    return total;
}

static bool in_image(const struct blkback_io *io, uint64_t sector, uint64_t count)
{
    return sector <= io->sectors && count <= io->sectors - sector;
}

/* Reads or writes n segments at sector. */
static int16_t transfer(const struct blkback_io *io,
                        const struct blkif_request_segment *segs, unsigned n,
                        uint64_t sector, bool write)
{
    struct iovec iov[BLKBACK_MAX_INDIRECT_SEGMENTS];
    int64_t total;
    ssize_t got;

    if (write && !io->readwrite)
        return BLKIF_RSP_ERROR;
    if (n == 0 || n > BLKBACK_MAX_INDIRECT_SEGMENTS)
        return BLKIF_RSP_ERROR;
    total = map_segments(io, segs, n, !write, iov);
    if (total < 0 || !in_image(io, sector, (uint64_t)total / BLKBACK_SECTOR))
        return BLKIF_RSP_ERROR;
    off_t off = (off_t)(sector * BLKBACK_SECTOR);
    do {
        got =
            write ? pwritev(io->fd, iov, (int)n, off) : preadv(io->fd, iov, (int)n, off);
    } while (got < 0 && errno == EINTR);
    return got == total ? BLKIF_RSP_OKAY : BLKIF_RSP_ERROR;
}

static int16_t do_rw(const struct blkback_io *io, const blkif_request_t *req, bool write)
{
    if (req->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
        return BLKIF_RSP_ERROR;
    return transfer(io, req->seg, req->nr_segments, req->sector_number, write);
}

#define SEGS_PER_INDIRECT_PAGE (DOMUS_PAGE_SIZE / sizeof(struct blkif_request_segment))

/* BLKIF_OP_INDIRECT: the segments live in granted pages (read-only grants
 * are fine); they are copied out once, then checked like direct ones. */
static int16_t do_indirect(const struct blkback_io *io, const blkif_request_t *req)
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
        if (gnttab_check(io->d, ir.indirect_grefs[p], 0, false, &gpa) != GNTST_okay ||
            !(src = gmem_ptr(&io->d->mem, gpa, n * sizeof(segs[0]))))
            return BLKIF_RSP_ERROR;
        memcpy(&segs[first], src, n * sizeof(segs[0]));
    }
    return transfer(io, segs, ir.nr_segments, ir.sector_number,
                    ir.indirect_op == BLKIF_OP_WRITE);
}

static int16_t do_flush(const struct blkback_io *io, const blkif_request_t *req)
{
    int16_t st = req->nr_segments ? do_rw(io, req, true) : BLKIF_RSP_OKAY;

    if (st == BLKIF_RSP_OKAY && fdatasync(io->fd) < 0)
        st = errno == EINVAL ? BLKIF_RSP_OKAY : BLKIF_RSP_ERROR; /* nothing to sync */
    return st;
}

static int16_t do_discard(const struct blkback_io *io, const blkif_request_t *req)
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

int16_t blkback_do_request(const struct blkback_io *io, const blkif_request_t *req)
{
    switch (req->operation) {
    case BLKIF_OP_READ:
        return do_rw(io, req, false);
    case BLKIF_OP_WRITE:
        return do_rw(io, req, true);
    case BLKIF_OP_WRITE_BARRIER:
    case BLKIF_OP_FLUSH_DISKCACHE:
        if (!io->readwrite && req->nr_segments)
            return BLKIF_RSP_ERROR;
        return do_flush(io, req);
    case BLKIF_OP_DISCARD:
        return do_discard(io, req);
    case BLKIF_OP_INDIRECT:
        return do_indirect(io, req);
    default:
        return BLKIF_RSP_EOPNOTSUPP;
    }
}

int blkback_do_ring(const struct blkback_io *io, blkif_back_ring_t *ring, bool *notify)
{
    int served = 0, more;
    bool n;

    *notify = false;
    do {
        RING_IDX rp = __atomic_load_n(&ring->sring->req_prod, __ATOMIC_ACQUIRE);
        if (RING_REQUEST_PROD_OVERFLOW(ring, rp))
            return -EPROTO;
        while (ring->req_cons != rp &&
               !RING_REQUEST_CONS_OVERFLOW(ring, ring->req_cons)) {
            blkif_request_t req;
            RING_COPY_REQUEST(ring, ring->req_cons, &req);
            ring->req_cons++;
            int16_t st = blkback_do_request(io, &req);
            blkif_response_t *rsp = RING_GET_RESPONSE(ring, ring->rsp_prod_pvt);
            rsp->id = req.id;
            rsp->operation =
                req.operation; /* an indirect one answers as its indirect_op */
            if (req.operation == BLKIF_OP_INDIRECT)
                memcpy(&rsp->operation,
                       (const uint8_t *)&req +
                           offsetof(blkif_request_indirect_t, indirect_op),
                       1);
            rsp->status = st;
            ring->rsp_prod_pvt++;
            served++;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, n);
        *notify = *notify || n;
        RING_FINAL_CHECK_FOR_REQUESTS(ring, more);
    } while (more);
    return served;
}

/* ---- the xenbus side ---- */

struct blkback {
    struct xbe xb;
    struct blkback_io io;
    blkif_back_ring_t ring;
};

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

    memset(&b->ring, 0, sizeof(b->ring));
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

static const char *blk_connect(struct xbe *x)
{
    struct blkback *b = x->priv;
    blkif_sring_t *sring;
    uint64_t n;

    if (!xbe_read_uint(x, x->fpath, "ring-page-order", 64, &n) && n)
        return "multi-page rings are not offered";
    if (!xbe_read_uint(x, x->fpath, "multi-queue-num-queues", 1024, &n) && n != 1)
        return "multiple queues are not offered";
    if (check_protocol(x))
        return "unsupported protocol (native x86_64-abi only)";
    if (!(sring = xbe_map_ring(x, "ring-ref")))
        return "ring-ref is not a writable grant to Domain 0";
    BACK_RING_INIT(&b->ring, sring, DOMUS_PAGE_SIZE);
    return xbe_bind_port(x, "event-channel");
}

static void blk_serve(struct xbe *x)
{
    struct blkback *b = x->priv;
    bool notify;

    int n = blkback_do_ring(&b->io, &b->ring, &notify);
    if (n < 0)
        xbe_fatal(x, "front end ring indexes are corrupt");
    else if (notify)
        xbe_notify(x);
}

static const struct xbe_ops blk_ops = {
    .advertise = advertise,
    .connect = blk_connect,
    .disconnect = blk_disconnect,
    .serve = blk_serve,
};

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
    if ((rc = xbe_init(&b->xb, d, "vbd", cfg->devid, cfg->xs_path, &blk_ops, b)) < 0) {
        dfmt(err, errlen, "disk %s: %s", cfg->path, strerror(-rc));
        goto out;
    }
    if ((rc = open_image(b, cfg->path, err, errlen)) < 0)
        goto out;
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

void blkback_stop(struct blkback *b)
{
    if (!b)
        return;
    xbe_stop(&b->xb);
    if (b->io.fd >= 0 && b->io.readwrite && fdatasync(b->io.fd) < 0 && errno != EINVAL)
        dwarn("vbd %u: sync: %s", b->xb.devid, strerror(errno));
    if (b->io.fd >= 0)
        close(b->io.fd);
    free(b);
}
