/* Block back end: the Domain 0 end of xen-blkfront (contract: blkback.h). */
#include "domus/blkback.h"
#include "domus/util.h"
#include "domus/xsclient.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <xen/io/protocols.h>
#include <xen/io/xenbus.h>
#include <xen/io/xs_wire.h>

#define SECTORS_PER_PAGE (DOMUS_PAGE_SIZE / BLKBACK_SECTOR)

/* ---- requests ---- */

/* n segments (a private copy) as host iovecs into granted guest frames.
 * to_guest: the data goes into guest memory (a read), so the grants must be
 * writable.  Returns the byte count, or -1 on any bad segment. */
static int64_t map_segments(const struct blkback_io *io, const struct blkif_request_segment *segs,
                            unsigned n, bool to_guest, struct iovec *iov)
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
        void *p = gmem_ptr(&io->d->mem, gpa + (uint64_t)s->first_sect * BLKBACK_SECTOR, len);
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
static int16_t transfer(const struct blkback_io *io, const struct blkif_request_segment *segs,
                        unsigned n, uint64_t sector, bool write)
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
        got = write ? pwritev(io->fd, iov, (int)n, off) : preadv(io->fd, iov, (int)n, off);
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
    pages = (unsigned)((ir.nr_segments + SEGS_PER_INDIRECT_PAGE - 1) / SEGS_PER_INDIRECT_PAGE);
    for (unsigned p = 0; p < pages; p++) {
        uint64_t gpa;
        unsigned first = p * (unsigned)SEGS_PER_INDIRECT_PAGE;
        unsigned n = ir.nr_segments - first < SEGS_PER_INDIRECT_PAGE
                         ? ir.nr_segments - first : (unsigned)SEGS_PER_INDIRECT_PAGE;
        const void *src;
        if (gnttab_check(io->d, ir.indirect_grefs[p], 0, false, &gpa) != GNTST_okay ||
            !(src = gmem_ptr(&io->d->mem, gpa, n * sizeof(segs[0]))))
            return BLKIF_RSP_ERROR;
        memcpy(&segs[first], src, n * sizeof(segs[0]));
    }
    return transfer(io, segs, ir.nr_segments, ir.sector_number, ir.indirect_op == BLKIF_OP_WRITE);
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
    if (dr.nr_sectors &&
        fallocate(io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
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

#define xen_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

int blkback_do_ring(const struct blkback_io *io, blkif_back_ring_t *ring, bool *notify)
{
    int served = 0, more;
    bool n;

    *notify = false;
    do {
        RING_IDX rp = __atomic_load_n(&ring->sring->req_prod, __ATOMIC_ACQUIRE);
        if (RING_REQUEST_PROD_OVERFLOW(ring, rp))
            return -EPROTO;
        while (ring->req_cons != rp && !RING_REQUEST_CONS_OVERFLOW(ring, ring->req_cons)) {
            blkif_request_t req;
            RING_COPY_REQUEST(ring, ring->req_cons, &req);
            ring->req_cons++;
            int16_t st = blkback_do_request(io, &req);
            blkif_response_t *rsp = RING_GET_RESPONSE(ring, ring->rsp_prod_pvt);
            rsp->id = req.id;
            rsp->operation = req.operation; /* an indirect one answers as its indirect_op */
            if (req.operation == BLKIF_OP_INDIRECT)
                memcpy(&rsp->operation,
                       (const uint8_t *)&req + offsetof(blkif_request_indirect_t, indirect_op), 1);
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
    struct blkback_io io;
    uint32_t devid;
    char bpath[96], fpath[96];
    char xs_path[108];
    struct xsc xs; /* requests */
    struct xsc xw; /* watch events only */
    bool xs_ok;
    int kick_fd, stop_fd;
    pthread_t thread;
    bool thread_started;
    enum xenbus_state state; /* ours, as last written */
    bool connected;
    uint32_t port;
    blkif_back_ring_t ring;
};

static int xs_writef(struct blkback *b, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int xs_writef(struct blkback *b, const char *rel, const char *fmt, ...)
{
    char path[160], val[64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", b->bpath, rel);
    return xsc_write(&b->xs, path, val);
}

/* An unsigned number at dir/rel (front end nodes are hostile: strict
 * decimal, at most max).  -ENOENT when absent, -EINVAL when malformed. */
static int xs_read_uint(struct blkback *b, const char *dir, const char *rel, uint64_t max,
                        uint64_t *out)
{
    char path[160], *v = NULL, *end;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    rc = xsc_read(&b->xs, path, &v);
    if (rc)
        goto out;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    rc = (!*v || *v < '0' || *v > '9' || *end || errno || x > max) ? -EINVAL : 0;
    if (!rc)
        *out = x;
out:
    free(v);
    return rc;
}

static void set_state(struct blkback *b, enum xenbus_state s)
{
    if (b->state == s)
        return;
    b->state = s;
    int rc = xs_writef(b, "state", "%d", (int)s);
    if (rc)
        dwarn("vbd %u: writing state %d: %s", b->devid, (int)s, strerror(-rc));
}

static int advertise(struct blkback *b)
{
    uint64_t enable = 1;
    int rc;

    xs_read_uint(b, b->bpath, "discard-enable", 1, &enable);
    b->io.discard = enable && b->io.readwrite;
    rc = xs_writef(b, "sector-size", "%d", BLKBACK_SECTOR);
    rc = rc ? rc : xs_writef(b, "sectors", "%" PRIu64, b->io.sectors);
    rc = rc ? rc : xs_writef(b, "info", "%d", b->io.readwrite ? 0 : VDISK_READONLY);
    rc = rc ? rc : xs_writef(b, "feature-flush-cache", "1");
    rc = rc ? rc : xs_writef(b, "feature-barrier", "1");
    rc = rc ? rc : xs_writef(b, "feature-discard", "%d", b->io.discard);
    rc = rc ? rc : xs_writef(b, "feature-max-indirect-segments", "%d",
                             BLKBACK_MAX_INDIRECT_SEGMENTS);
    if (!rc && b->io.discard) {
        rc = xs_writef(b, "discard-granularity", "%llu", DOMUS_PAGE_SIZE);
        rc = rc ? rc : xs_writef(b, "discard-alignment", "0");
        rc = rc ? rc : xs_writef(b, "discard-secure", "0");
    }
    return rc;
}

static void disconnect(struct blkback *b)
{
    if (!b->connected)
        return;
    evtchn_unbind_backend(b->io.d, b->port, b->kick_fd); /* -EINVAL if the guest closed it */
    b->connected = false;
    memset(&b->ring, 0, sizeof(b->ring));
}

/* The front end broke the protocol: stop serving it and close. */
static void fatal(struct blkback *b, const char *why)
{
    dwarn("dom%u vbd %u: %s; closing", b->io.d->domid, b->devid, why);
    disconnect(b);
    set_state(b, XenbusStateClosing);
}

/* The front end's protocol node, if any, must be the native ABI. */
static int check_protocol(struct blkback *b)
{
    char path[160], *v = NULL;
    int rc;

    snprintf(path, sizeof(path), "%s/protocol", b->fpath);
    rc = xsc_read(&b->xs, path, &v);
    if (rc == -ENOENT)
        return 0;
    if (!rc && strcmp(v, XEN_IO_PROTO_ABI_X86_64))
        rc = -EPROTONOSUPPORT;
    free(v);
    return rc;
}

static const char *connect_ring(struct blkback *b)
{
    uint64_t ref, port, x, gpa;
    blkif_sring_t *sring;

    if (xs_read_uint(b, b->fpath, "ring-ref", UINT32_MAX, &ref) ||
        xs_read_uint(b, b->fpath, "event-channel", UINT32_MAX, &port))
        return "front end gave no valid ring-ref or event-channel";
    if (!xs_read_uint(b, b->fpath, "ring-page-order", 64, &x) && x)
        return "multi-page rings are not offered";
    if (!xs_read_uint(b, b->fpath, "multi-queue-num-queues", 1024, &x) && x != 1)
        return "multiple queues are not offered";
    if (check_protocol(b))
        return "unsupported protocol (native x86_64-abi only)";
    if (gnttab_check(b->io.d, (grant_ref_t)ref, 0, true, &gpa) != GNTST_okay ||
        !(sring = gmem_ptr(&b->io.d->mem, gpa, DOMUS_PAGE_SIZE)))
        return "ring-ref is not a writable grant to Domain 0";
    if (evtchn_bind_backend(b->io.d, (uint32_t)port, b->kick_fd) < 0)
        return "event-channel is not a port unbound for Domain 0";
    b->port = (uint32_t)port;
    BACK_RING_INIT(&b->ring, sring, DOMUS_PAGE_SIZE);
    b->connected = true;
    dinfo("dom%u vbd %u: connected (ring-ref %" PRIu64 ", port %u)", b->io.d->domid, b->devid,
          ref, b->port);
    return NULL;
}

static void serve(struct blkback *b)
{
    bool notify;

    if (!b->connected)
        return;
    int n = blkback_do_ring(&b->io, &b->ring, &notify);
    if (n < 0)
        fatal(b, "front end ring indexes are corrupt");
    else if (notify)
        evtchn_notify_guest(b->io.d, b->port);
}

static void frontend_changed(struct blkback *b, uint64_t fst)
{
    const char *why;

    switch (fst) {
    case XenbusStateInitialising:
        if (b->state == XenbusStateClosed)
            set_state(b, XenbusStateInitWait);
        break;
    case XenbusStateInitialised:
    case XenbusStateConnected:
        if (b->state != XenbusStateInitWait)
            break;
        if ((why = connect_ring(b))) {
            fatal(b, why);
            break;
        }
        set_state(b, XenbusStateConnected);
        serve(b);
        break;
    case XenbusStateClosing:
        set_state(b, XenbusStateClosing);
        break;
    case XenbusStateClosed:
        disconnect(b);
        set_state(b, XenbusStateClosed);
        break;
    default: /* Unknown, gone or nonsense */
        disconnect(b);
        break;
    }
}

/* Looks at both directories and moves the back end along. */
static void reconcile(struct blkback *b)
{
    uint64_t x, fst = XenbusStateUnknown;

    if (xs_read_uint(b, b->bpath, "state", 64, &x))
        return; /* the toolstack has not written the backend yet */
    if (b->state == XenbusStateInitialising) {
        int rc = advertise(b);
        if (rc) {
            dwarn("vbd %u: advertising features: %s", b->devid, strerror(-rc));
            return;
        }
        b->state = XenbusStateUnknown; /* force the write */
        set_state(b, XenbusStateInitWait);
    }
    xs_read_uint(b, b->fpath, "state", 64, &fst);
    frontend_changed(b, fst);
}

static int add_watch(struct blkback *b, const char *path, const char *token)
{
    char buf[256];
    size_t lp = strlen(path) + 1, lt = strlen(token) + 1;

    memcpy(buf, path, lp);
    memcpy(buf + lp, token, lt);
    return xsc_request(&b->xw, XS_WATCH, buf, lp + lt, NULL, NULL);
}

static int xs_setup(struct blkback *b)
{
    char path[160];
    int rc = xsc_open(&b->xs, b->xs_path);

    rc = rc ? rc : xsc_open(&b->xw, b->xs_path);
    snprintf(path, sizeof(path), "%s/state", b->bpath);
    rc = rc ? rc : add_watch(b, path, "back");
    snprintf(path, sizeof(path), "%s/state", b->fpath);
    rc = rc ? rc : add_watch(b, path, "front");
    return rc;
}

/* Reads (and drops) one watch event; false when xenstored went away. */
static bool drain_watch(struct blkback *b)
{
    struct xsd_sockmsg hdr;
    char body[XENSTORE_PAYLOAD_MAX];

    if (recv(b->xw.fd, &hdr, sizeof(hdr), MSG_WAITALL) != sizeof(hdr) ||
        hdr.len > XENSTORE_PAYLOAD_MAX)
        return false;
    return !hdr.len || recv(b->xw.fd, body, hdr.len, MSG_WAITALL) == (ssize_t)hdr.len;
}

static void *blk_thread(void *arg)
{
    struct blkback *b = arg;
    int rc = xs_setup(b);

    b->xs_ok = !rc;
    if (rc)
        dwarn("vbd %u: xenstore %s: %s; the disk stays unplugged", b->devid, b->xs_path,
              strerror(-rc));
    else
        reconcile(b);
    for (;;) {
        struct pollfd p[3] = {{b->stop_fd, POLLIN, 0}, {b->kick_fd, POLLIN, 0},
                              {b->xs_ok ? b->xw.fd : -1, POLLIN, 0}};
        uint64_t v;
        if (poll(p, 3, b->connected ? 1000 : -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (p[2].revents) {
            b->xs_ok = drain_watch(b);
            if (b->xs_ok)
                reconcile(b);
        }
        if (p[1].revents && read(b->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            dwarn("vbd %u: kick: %s", b->devid, strerror(errno));
        serve(b); /* also on timeout: an event may have been lost */
    }
    return NULL;
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
    *b = (struct blkback){.io = {.d = d, .fd = -1, .readwrite = cfg->readwrite},
                          .devid = cfg->devid, .xs = {.fd = -1}, .xw = {.fd = -1},
                          .kick_fd = -1, .stop_fd = -1, .state = XenbusStateInitialising};
    snprintf(b->bpath, sizeof(b->bpath), "/local/domain/0/backend/vbd/%u/%u", d->domid,
             cfg->devid);
    snprintf(b->fpath, sizeof(b->fpath), "/local/domain/%u/device/vbd/%u", d->domid,
             cfg->devid);
    snprintf(b->xs_path, sizeof(b->xs_path), "%s", cfg->xs_path ? cfg->xs_path : "");
    if ((rc = open_image(b, cfg->path, err, errlen)) < 0)
        goto out;
    b->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->kick_fd < 0 || b->stop_fd < 0) {
        rc = -errno;
        dfmt(err, errlen, "disk %s: %s", cfg->path, strerror(errno));
        goto out;
    }
    if ((rc = -pthread_create(&b->thread, NULL, blk_thread, b)) < 0) {
        dfmt(err, errlen, "disk %s: thread: %s", cfg->path, strerror(-rc));
        goto out;
    }
    b->thread_started = true;
    *out = b;
    return 0;
out:
    blkback_stop(b);
    return rc;
}

void blkback_stop(struct blkback *b)
{
    uint64_t one = 1;

    if (!b)
        return;
    if (b->thread_started && write(b->stop_fd, &one, sizeof(one)) == sizeof(one))
        pthread_join(b->thread, NULL);
    disconnect(b);
    if (b->io.fd >= 0 && b->io.readwrite && fdatasync(b->io.fd) < 0 && errno != EINVAL)
        dwarn("vbd %u: sync: %s", b->devid, strerror(errno));
    int fds[] = {b->io.fd, b->kick_fd, b->stop_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    xsc_close(&b->xs);
    xsc_close(&b->xw);
    free(b);
}
