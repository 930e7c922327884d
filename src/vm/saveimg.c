/* The save image's record stream (saveimg.h, docs/save-image.md). */
#include "domus/saveimg.h"
#include "domus/recbuf.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define PAD8(n) (((n) + 7u) & ~(size_t)7u)

static const char *const rec_names[] = {
    [SIMG_REC_END] = "end",
    [SIMG_REC_PAGE_DATA] = "page data",
    [SIMG_REC_VCPU_REGS] = "vcpu regs",
    [SIMG_REC_VCPU_SREGS] = "vcpu sregs",
    [SIMG_REC_VCPU_XSAVE] = "vcpu xsave",
    [SIMG_REC_VCPU_XCRS] = "vcpu xcrs",
    [SIMG_REC_VCPU_MSRS] = "vcpu msrs",
    [SIMG_REC_VCPU_LAPIC] = "vcpu lapic",
    [SIMG_REC_VCPU_EVENTS] = "vcpu events",
    [SIMG_REC_VCPU_MPSTATE] = "vcpu mp_state",
    [SIMG_REC_CLOCK] = "clock",
    [SIMG_REC_HVM_PARAMS] = "hvm params",
    [SIMG_REC_HV_EVTCHN] = "event channels",
    [SIMG_REC_HV_GNTTAB] = "grant table",
    [SIMG_REC_HV_AREAS] = "guest areas",
    [SIMG_REC_HV_TIMERS] = "timers",
    [SIMG_REC_VCPU_TSC] = "vcpu tsc",
    [SIMG_REC_HV_MEMRES] = "memory reservation",
    [SIMG_REC_POSTCOPY] = "post-copy pages",
    [SIMG_REC_HV_VMASST] = "vm_assist",
};

const char *simg_rec_name(uint32_t type)
{
    type &= ~SIMG_REC_OPTIONAL;
    return type < ARRAY_SIZE(rec_names) ? rec_names[type] : NULL;
}

/* ---- writing ---- */

void simg_writer_init(struct simg_writer *w, int fd)
{
    memset(w, 0, sizeof(*w));
    w->fd = fd;
}

void simg_writer_set_rate(struct simg_writer *w, uint64_t bytes_per_s)
{
    w->rate = bytes_per_s;
    w->rate_t0 = dnow_ns();
    w->rate_b0 = w->bytes;
}

/* Waits until the bytes written since the rate was set fit it. */
static void pace(struct simg_writer *w)
{
    if (!w->rate || w->rate_paused)
        return;
    uint64_t due =
        w->rate_t0 + (uint64_t)((double)(w->bytes - w->rate_b0) * 1e9 / (double)w->rate);
    uint64_t now = dnow_ns();
    if (due > now) {
        struct timespec ts = {(time_t)((due - now) / 1000000000u),
                              (long)((due - now) % 1000000000u)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

static int put(struct simg_writer *w, const void *p, size_t len)
{
    const uint8_t *b = p;
    w->crc = (uint32_t)crc32(w->crc, b, (uInt)len);
    while (len) {
        pace(w);
        ssize_t n = write(w->fd, b, len < (64u << 10) || !w->rate ? len : (64u << 10));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        b += n;
        len -= (size_t)n;
        w->bytes += (uint64_t)n;
    }
    return 0;
}

static int put_pad(struct simg_writer *w, size_t len)
{
    static const uint8_t zero[8];
    return put(w, zero, PAD8(len) - len);
}

int simg_write_header(struct simg_writer *w, const char *config_json)
{
    size_t clen = strlen(config_json);
    if (clen == 0)
        return -EINVAL; /* a reader refuses an empty config */
    if (clen > SIMG_MAX_CONFIG)
        return -E2BIG;
    struct recbuf rb;
    rb_init(&rb);
    rb_put_bytes(&rb, SIMG_MAGIC, SIMG_MAGIC_LEN);
    rb_put_u32(&rb, SIMG_VERSION);
    rb_put_u32(&rb, 0);
    rb_put_u32(&rb, (uint32_t)clen);
    rb_put_u32(&rb, 0);
    int rc = rb.err;
    if (!rc)
        rc = put(w, rb.data, rb.len);
    if (!rc)
        rc = put(w, config_json, clen);
    if (!rc)
        rc = put_pad(w, clen);
    rb_free(&rb);
    return rc;
}

int simg_write_record2(struct simg_writer *w, uint32_t type, const void *head,
                       size_t hlen, const void *data, size_t dlen)
{
    if (hlen > SIMG_MAX_BODY || dlen > SIMG_MAX_BODY - hlen)
        return -E2BIG;
    struct recbuf rb;
    rb_init(&rb);
    rb_put_u32(&rb, type);
    rb_put_u32(&rb, (uint32_t)(hlen + dlen));
    int rc = rb.err;
    if (!rc)
        rc = put(w, rb.data, rb.len);
    if (!rc && hlen)
        rc = put(w, head, hlen);
    if (!rc && dlen)
        rc = put(w, data, dlen);
    if (!rc)
        rc = put_pad(w, hlen + dlen);
    rb_free(&rb);
    return rc;
}

int simg_write_record(struct simg_writer *w, uint32_t type, const void *body, size_t len)
{
    return simg_write_record2(w, type, body, len, NULL, 0);
}

int simg_write_end(struct simg_writer *w)
{
    uint8_t b[16] = {0}; /* type 0, length 8, crc, reserved */
    b[4] = 8;
    w->crc = (uint32_t)crc32(w->crc, b, 8);
    uint32_t crc = w->crc;
    for (int i = 0; i < 4; i++)
        b[8 + i] = (uint8_t)(crc >> (8 * i));
    return put(w, b, sizeof(b));
}

static bool page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[DOMUS_PAGE_SIZE];
    return memcmp(p, zero, DOMUS_PAGE_SIZE) == 0;
}

/* One batch: the pfns, then their pages copied into data. */
struct batch {
    uint32_t n;
    uint64_t pfn[SIMG_BATCH_PAGES];
    uint8_t *data;
};

static struct batch *batch_new(void)
{
    struct batch *b = calloc(1, sizeof(*b));

    if (b && !(b->data = malloc((size_t)SIMG_BATCH_PAGES * DOMUS_PAGE_SIZE))) {
        free(b);
        b = NULL;
    }
    return b;
}

static void batch_free(struct batch *b)
{
    if (b)
        free(b->data);
    free(b);
}

static int flush_batch(struct simg_writer *w, struct batch *b)
{
    if (!b->n)
        return 0;
    struct recbuf rb;
    rb_init(&rb);
    rb_put_u32(&rb, b->n);
    rb_put_u32(&rb, 0);
    for (uint32_t i = 0; i < b->n; i++)
        rb_put_u64(&rb, b->pfn[i]);
    int rc = rb.err;
    if (!rc)
        rc = simg_write_record2(w, SIMG_REC_PAGE_DATA, rb.data, rb.len, b->data,
                                (size_t)b->n * DOMUS_PAGE_SIZE);
    if (!rc)
        w->page_bytes += (uint64_t)b->n * DOMUS_PAGE_SIZE;
    rb_free(&rb);
    b->n = 0;
    return rc;
}

/* The next offset at or after o (region-relative, below size) where the
 * memfd may hold data, and in *end where that data stops: holes (pages
 * never touched, or punched out) read as zeros and are not read at all,
 * which would allocate them (SEEK_DATA / SEEK_HOLE; without them, every
 * page is data). */
static uint64_t next_data(const struct gmem *m, uint64_t base, uint64_t o, uint64_t size,
                          uint64_t *end)
{
    off_t d = lseek(m->fd, (off_t)(base + o), SEEK_DATA), h;

    *end = size;
    if (d < 0)
        return errno == ENXIO ? size : o;
    if ((uint64_t)d >= base + size)
        return size;
    h = lseek(m->fd, d, SEEK_HOLE);
    if (h >= 0 && (uint64_t)h < base + size)
        *end = ((uint64_t)h - base + DOMUS_PAGE_SIZE - 1) & ~(DOMUS_PAGE_SIZE - 1);
    return ((uint64_t)d - base) & ~(DOMUS_PAGE_SIZE - 1);
}

static int write_region(struct simg_writer *w, const struct gmem *m, unsigned idx,
                        struct batch *b)
{
    uint64_t gpa = gmem_region_gpa(m, idx), size = m->region[idx].size;
    uint64_t base = m->region[idx].fd_offset, end = 0;
    for (uint64_t o = 0; o < size; o += DOMUS_PAGE_SIZE) {
        if (o >= end) {
            uint64_t d = next_data(m, base, o, size, &end);
            w->zero_skipped += (d - o) >> DOMUS_PAGE_SHIFT;
            if ((o = d) >= size)
                break;
        }
        const uint8_t *p = gmem_ptr(m, gpa + o, DOMUS_PAGE_SIZE);
        if (!p)
            return -EFAULT;
        if (page_is_zero(p)) {
            w->zero_skipped++;
            continue;
        }
        b->pfn[b->n] = (gpa + o) >> DOMUS_PAGE_SHIFT;
        memcpy(b->data + (size_t)b->n * DOMUS_PAGE_SIZE, p, DOMUS_PAGE_SIZE);
        if (++b->n == SIMG_BATCH_PAGES) {
            int rc = flush_batch(w, b);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int simg_write_memory(struct simg_writer *w, const struct gmem *m)
{
    static const unsigned regions[] = {GMEM_REGION_LOW, GMEM_REGION_HIGH,
                                       GMEM_REGION_SPECIAL};
    struct batch *b = batch_new();
    int rc = b ? 0 : -ENOMEM;
    for (unsigned i = 0; i < ARRAY_SIZE(regions) && !rc; i++)
        rc = write_region(w, m, regions[i], b);
    if (!rc)
        rc = flush_batch(w, b);
    batch_free(b);
    return rc;
}

/* One page into the batch, flushed when full. */
static int batch_add(struct simg_writer *w, struct batch *b, uint64_t gpa,
                     const uint8_t *src)
{
    b->pfn[b->n] = gpa >> DOMUS_PAGE_SHIFT;
    memcpy(b->data + (size_t)b->n * DOMUS_PAGE_SIZE, src, DOMUS_PAGE_SIZE);
    return ++b->n == SIMG_BATCH_PAGES ? flush_batch(w, b) : 0;
}

int simg_write_pages(struct simg_writer *w, const struct gmem *m, const uint64_t *bm,
                     uint64_t npages)
{
    struct batch *b = batch_new();
    int rc = b ? 0 : -ENOMEM;
    for (uint64_t p = 0; p < npages && !rc; p++) {
        if (!(bm[p / 64] & (1ULL << (p % 64))))
            continue;
        uint64_t gpa = gmem_page_gpa(m, p);
        const uint8_t *src = gmem_ptr(m, gpa, DOMUS_PAGE_SIZE);
        if (!src) {
            rc = -EFAULT;
            break;
        }
        rc = batch_add(w, b, gpa, src);
    }
    if (!rc)
        rc = flush_batch(w, b);
    batch_free(b);
    return rc;
}

int simg_write_page_list(struct simg_writer *w, const struct gmem *m,
                         const uint64_t *pages, size_t n)
{
    struct batch *b = batch_new();
    uint64_t np = gmem_dirty_npages(m);
    int rc = b ? 0 : -ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        const uint8_t *src = NULL;
        uint64_t gpa = pages[i] < np ? gmem_page_gpa(m, pages[i]) : 0;
        if (pages[i] >= np || !(src = gmem_ptr(m, gpa, DOMUS_PAGE_SIZE))) {
            rc = -EFAULT;
            break;
        }
        rc = batch_add(w, b, gpa, src);
    }
    if (!rc)
        rc = flush_batch(w, b);
    batch_free(b);
    return rc;
}

/* ---- spooling a stream (live migration's receiver) ---- */

/* splice(2) of up to n bytes when one side is a pipe (the receiver's
 * stream into domus-vm's stdin: the pages are not copied through user
 * space): the bytes moved, -EPIPE at the end, -EIO when out failed, or 1
 * with nothing moved when splice cannot join these two. */
static int splice_n(int fd, int out, uint64_t n, uint64_t *at)
{
    for (bool first = true; n; first = false) {
        ssize_t r = splice(fd, NULL, out, NULL, n < (1u << 20) ? n : (1u << 20), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && first && (errno == EINVAL || errno == ENOSYS))
            return 1;
        if (r < 0)
            return errno == EPIPE ? -EIO : -errno;
        if (r == 0)
            return -EPIPE;
        n -= (uint64_t)r;
        *at += (uint64_t)r;
    }
    return 0;
}

/* Exactly n bytes from fd to out (and the count in *at); 0, or -EPIPE at
 * the end of the stream. */
static int copy_n(int fd, int out, uint64_t n, uint64_t *at)
{
    char buf[1 << 14];
    int rc = n ? splice_n(fd, out, n, at) : 0;

    if (rc <= 0)
        return rc;
    while (n) {
        ssize_t r = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EPIPE;
        for (ssize_t w = 0, k; w < r; w += k)
            if ((k = write(out, buf + w, (size_t)(r - w))) <= 0)
                return -EIO;
        n -= (uint64_t)r;
        *at += (uint64_t)r;
    }
    return 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Reads 8 bytes of fd into b and out. */
static int take8(int fd, int out, uint8_t *b, uint64_t *at)
{
    size_t got = 0;

    while (got < 8) {
        ssize_t r = read(fd, b + got, 8 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EPIPE;
        got += (size_t)r;
    }
    *at += 8;
    return write(out, b, 8) == 8 ? 0 : -EIO;
}

/* The stream from fd into the spool file out, record by record, up to and
 * with the end record (the restore checks the rest: checksum, contents). */
static int spool_error(int rc, uint64_t at, char *err, size_t errlen)
{
    dfmt(err, errlen,
         rc == -EPIPE ? "truncated stream: it ends at byte %llu"
         : rc == -EIO ? "the stream could not be passed on at byte %llu"
                      : "reading the stream at byte %llu",
         (unsigned long long)at);
    return rc;
}

int simg_spool_header(int fd, int out, uint64_t *at, char *err, size_t errlen)
{
    uint8_t b[8];
    int rc = take8(fd, out, b, at);

    if (!rc && memcmp(b, "DOMUSIMG", 8)) {
        dfmt(err, errlen, "not a Domus migration stream (no DOMUSIMG magic)");
        return -EINVAL;
    }
    rc = rc ?: take8(fd, out, b, at); /* version, flags */
    rc = rc ?: take8(fd, out, b, at); /* config length, reserved */
    if (!rc && (le32(b) == 0 || le32(b) > SIMG_MAX_CONFIG)) {
        dfmt(err, errlen, "malformed stream: a config of %u bytes", le32(b));
        return -EINVAL;
    }
    rc = rc ?: copy_n(fd, out, (le32(b) + 7u) & ~7u, at);
    return rc ? spool_error(rc, *at, err, errlen) : 0;
}

int simg_spool_records(int fd, int out, uint64_t *at, char *err, size_t errlen)
{
    uint8_t b[8];
    int rc = 0;

    while (!rc) {
        if ((rc = take8(fd, out, b, at)))
            break;
        uint32_t type = le32(b), len = le32(b + 4);
        if (len > SIMG_MAX_BODY) {
            dfmt(err, errlen, "malformed stream: a record of %u bytes at byte %llu", len,
                 (unsigned long long)*at - 8);
            return -EINVAL;
        }
        rc = copy_n(fd, out, (len + 7ull) & ~7ull, at);
        if (!rc && type == 0)
            return 0;
    }
    return spool_error(rc, *at, err, errlen);
}

int simg_spool(int fd, int out, char *err, size_t errlen)
{
    uint64_t at = 0;
    return simg_spool_header(fd, out, &at, err, errlen)
               ?: simg_spool_records(fd, out, &at, err, errlen);
}

/* ---- reading ---- */

static void reader_init(struct simg_reader *r)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

void simg_reader_init_fd(struct simg_reader *r, int fd)
{
    reader_init(r);
    r->fd = fd;
}

void simg_reader_init_mem(struct simg_reader *r, const void *p, size_t len)
{
    reader_init(r);
    r->mem = p;
    r->mem_len = len;
}

void simg_reader_free(struct simg_reader *r)
{
    free(r->body);
    r->body = NULL;
    r->body_cap = 0;
}

/* Reads len bytes; -EINVAL with "truncated image" when the source ends. */
static int get(struct simg_reader *r, void *dst, size_t len, const char *what)
{
    uint8_t *d = dst;
    size_t got = 0;
    if (r->fd < 0) {
        got = len <= r->mem_len - r->off ? len : r->mem_len - r->off;
        memcpy(d, r->mem + r->off, got);
    } else {
        while (got < len) {
            ssize_t n = read(r->fd, d + got, len - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                dfmt(r->err, sizeof(r->err), "reading the image: %s", strerror(errno));
                return -errno;
            }
            if (n == 0)
                break;
            got += (size_t)n;
        }
    }
    r->crc = (uint32_t)crc32(r->crc, d, (uInt)got);
    r->off += got;
    if (got < len) {
        dfmt(r->err, sizeof(r->err), "truncated image: it ends at byte %llu inside %s",
             (unsigned long long)r->off, what);
        return -EINVAL;
    }
    return 0;
}

static int get_pad(struct simg_reader *r, size_t len, const char *what)
{
    uint8_t pad[8];
    size_t n = PAD8(len) - len;
    int rc = get(r, pad, n, what);
    for (size_t i = 0; !rc && i < n; i++)
        if (pad[i]) {
            dfmt(r->err, sizeof(r->err), "corrupted image: non-zero padding after %s",
                 what);
            return -EINVAL;
        }
    return rc;
}

static int check_config(struct simg_reader *r, const char *cfg)
{
    json_object *o = json_tokener_parse(cfg);
    bool ok = o && json_object_is_type(o, json_type_object);
    json_object_put(o);
    if (!ok) {
        dfmt(r->err, sizeof(r->err),
             "corrupted image: the domain config is not a JSON object");
        return -EINVAL;
    }
    return 0;
}

int simg_read_header(struct simg_reader *r, char **config)
{
    uint8_t h[SIMG_MAGIC_LEN + 16];
    *config = NULL;
    int rc = get(r, h, sizeof(h), "the header");
    if (rc)
        return rc;
    struct recrd rd;
    rd_init(&rd, h + SIMG_MAGIC_LEN, 16);
    uint32_t version = rd_u32(&rd), flags = rd_u32(&rd), clen = rd_u32(&rd),
             res = rd_u32(&rd);
    if (memcmp(h, SIMG_MAGIC, SIMG_MAGIC_LEN)) {
        dfmt(r->err, sizeof(r->err), "not a Domus save image (wrong magic)");
        return -EINVAL;
    }
    if (version != SIMG_VERSION) {
        dfmt(r->err, sizeof(r->err), "save image version %u, this Domus reads version %u",
             version, SIMG_VERSION);
        return -EINVAL;
    }
    if (flags || res || clen == 0 || clen > SIMG_MAX_CONFIG) {
        dfmt(r->err, sizeof(r->err),
             "corrupted image header (flags %#x, config length %u)", flags, clen);
        return -EINVAL;
    }
    char *cfg = malloc((size_t)clen + 1);
    if (!cfg)
        return -ENOMEM;
    rc = get(r, cfg, clen, "the domain config");
    if (!rc)
        rc = get_pad(r, clen, "the domain config");
    cfg[clen] = 0;
    if (!rc && strlen(cfg) != clen) {
        dfmt(r->err, sizeof(r->err),
             "corrupted image: a NUL byte inside the domain config");
        rc = -EINVAL;
    }
    if (!rc)
        rc = check_config(r, cfg);
    if (rc)
        free(cfg);
    else
        *config = cfg;
    return rc;
}

static int read_end(struct simg_reader *r, uint32_t len, uint32_t crc_before)
{
    uint8_t b[8];
    if (len != 8) {
        dfmt(r->err, sizeof(r->err), "corrupted image: end record of length %u", len);
        return -EINVAL;
    }
    int rc = get(r, b, sizeof(b), "the end record");
    if (rc)
        return rc;
    struct recrd rd;
    rd_init(&rd, b, sizeof(b));
    uint32_t crc = rd_u32(&rd);
    if ((crc != crc_before && !r->skipped) || rd_u32(&rd)) {
        dfmt(r->err, sizeof(r->err),
             "corrupted image: checksum mismatch (image says %08x, contents give %08x)",
             crc, crc_before);
        return -EINVAL;
    }
    return 0;
}

static int grow_body(struct simg_reader *r, size_t len)
{
    if (len <= r->body_cap)
        return 0;
    uint8_t *n = realloc(r->body, len);
    if (!n)
        return -ENOMEM;
    r->body = n;
    r->body_cap = len;
    return 0;
}

/* Index mode: moves past len bytes of page data without reading them. */
static int skip(struct simg_reader *r, uint64_t len, const char *what)
{
    struct stat st;

    if (r->fd >= 0 && !r->size) {
        if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            dfmt(r->err, sizeof(r->err), "a lazy restore needs a regular image file");
            return -EINVAL;
        }
        r->size = (uint64_t)st.st_size;
    }
    uint64_t size = r->fd >= 0 ? r->size : r->mem_len;
    if (len > size - r->off || size < r->off) {
        r->off = size;
        dfmt(r->err, sizeof(r->err), "truncated image: it ends at byte %llu inside %s",
             (unsigned long long)r->off, what);
        return -EINVAL;
    }
    if (r->fd >= 0 && lseek(r->fd, (off_t)len, SEEK_CUR) < 0) {
        dfmt(r->err, sizeof(r->err), "reading the image: %s", strerror(errno));
        return -errno;
    }
    r->off += len;
    r->skipped = true;
    return 0;
}

/* A page data record's count and pfns into r->body (the pages not read):
 * its count in *n; 0 or -errno with r->err set. */
static int read_page_head(struct simg_reader *r, const struct simg_rec *rec, uint32_t *n)
{
    const char *what = "a page data record";
    uint8_t h[8];
    int rc = get(r, h, sizeof(h), what);

    if (rc)
        return rc;
    *n = le32(h);
    if (le32(h + 4) || *n == 0 || *n > SIMG_BATCH_PAGES ||
        rec->len != 8 + (size_t)*n * (8 + DOMUS_PAGE_SIZE)) {
        dfmt(r->err, sizeof(r->err),
             "corrupted image: a page data record of %u bytes for %u pages", rec->len,
             *n);
        return -EINVAL;
    }
    if (grow_body(r, 8 + (size_t)*n * 8) < 0)
        return -ENOMEM;
    memcpy(r->body, h, 8);
    return get(r, r->body + 8, (size_t)*n * 8, what);
}

/* Index mode's page data record: its pfns into the body, the pages skipped. */
static int read_page_index(struct simg_reader *r, struct simg_rec *rec)
{
    uint32_t n = 0;
    int rc = read_page_head(r, rec, &n);
    rec->data_off = r->off;
    if (!rc)
        rc = skip(r, PAD8((size_t)n * DOMUS_PAGE_SIZE), "a page data record");
    rec->body = r->body;
    return rc ? rc : 1;
}

static int read_pages_into(struct simg_reader *r, struct simg_rec *rec);

int simg_read_record(struct simg_reader *r, struct simg_rec *rec)
{
    uint8_t h[8];
    uint64_t at = r->off;
    int rc = get(r, h, sizeof(h), "a record header");
    if (rc)
        return rc;
    struct recrd rd;
    rd_init(&rd, h, sizeof(h));
    rec->type = rd_u32(&rd);
    rec->len = rd_u32(&rd);
    rec->data_off = 0;
    rec->loaded = false;
    if (rec->type == SIMG_REC_END)
        return read_end(r, rec->len, r->crc) ?: 0;
    if (rec->len > SIMG_MAX_BODY) {
        dfmt(r->err, sizeof(r->err),
             "corrupted image: record type %#x at byte %llu is %u bytes", rec->type,
             (unsigned long long)at, rec->len);
        return -EINVAL;
    }
    if (r->index_only && rec->type == SIMG_REC_PAGE_DATA)
        return read_page_index(r, rec);
    if (r->pages_to && r->fd >= 0 && rec->type == SIMG_REC_PAGE_DATA)
        return read_pages_into(r, rec);
    const char *name = simg_rec_name(rec->type);
    char what[64];
    dfmt(what, sizeof(what), "a %s record", name ? name : "record");
    if (grow_body(r, rec->len ? rec->len : 1) < 0)
        return -ENOMEM;
    rc = get(r, r->body, rec->len, what);
    if (!rc)
        rc = get_pad(r, rec->len, what);
    rec->body = r->body;
    return rc ? rc : 1;
}

/* The i-th pfn of a page data record: its host address, or NULL with err
 * set when it lies outside RAM and the special pages (the extra pages are
 * the grant table's). */
static uint8_t *page_dst(const struct gmem *m, const uint8_t *pfns, uint32_t i, char *err,
                         size_t errlen)
{
    struct recrd p;
    rd_init(&p, pfns + (size_t)i * 8, 8);
    uint64_t pfn = rd_u64(&p);
    uint8_t *dst = pfn < (UINT64_MAX >> DOMUS_PAGE_SHIFT)
                       ? gmem_ptr(m, pfn << DOMUS_PAGE_SHIFT, DOMUS_PAGE_SIZE)
                       : NULL;
    if (!dst || dst >= m->host + m->region[GMEM_REGION_EXTRA].fd_offset) {
        dfmt(err, errlen,
             "corrupted image: page data for pfn %#llx, outside the guest's RAM",
             (unsigned long long)pfn);
        return NULL;
    }
    return dst;
}

/* n pages from the fd straight to where iov says, into the checksum. */
static int readv_pages(struct simg_reader *r, struct iovec *iov, uint32_t n)
{
    uint32_t i = 0;

    for (uint32_t k = 0; k < n; k++)
        iov[k].iov_len = DOMUS_PAGE_SIZE;
    while (i < n) {
        ssize_t got = readv(r->fd, iov + i, (int)(n - i));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            dfmt(r->err, sizeof(r->err), "reading the image: %s", strerror(errno));
            return -errno;
        }
        if (got == 0) {
            dfmt(r->err, sizeof(r->err),
                 "truncated image: it ends at byte %llu inside a page data record",
                 (unsigned long long)r->off);
            return -EINVAL;
        }
        r->off += (uint64_t)got;
        for (; i < n && (size_t)got >= iov[i].iov_len; i++) {
            got -= (ssize_t)iov[i].iov_len;
            uint8_t *page = (uint8_t *)iov[i].iov_base + iov[i].iov_len - DOMUS_PAGE_SIZE;
            r->crc = (uint32_t)crc32(r->crc, page, DOMUS_PAGE_SIZE);
        }
        if (i < n) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + got;
            iov[i].iov_len -= (size_t)got;
        }
    }
    return 0;
}

/* A page data record read into r->pages_to: its pfns (all checked first)
 * into the body, then its pages where they go.  A pfn twice in one record
 * (no writer does that) may fail the checksum: one readv fills both. */
static int read_pages_into(struct simg_reader *r, struct simg_rec *rec)
{
    struct iovec iov[SIMG_BATCH_PAGES];
    uint32_t n = 0;
    int rc = read_page_head(r, rec, &n);

    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++)
        if (!(iov[i].iov_base =
                  page_dst(r->pages_to, r->body + 8, i, r->err, sizeof(r->err))))
            return -EINVAL;
    rec->body = r->body;
    rec->loaded = true;
    return readv_pages(r, iov, n) ?: 1; /* whole pages: no padding */
}

/* A page data body's count, checked against its length (the full record's
 * length: in index mode the body holds only the pfns); 0 when bad. */
static uint32_t page_count(const void *body, size_t len, char *err, size_t errlen)
{
    struct recrd rd;
    rd_init(&rd, body, len < 8 ? 0 : 8);
    uint32_t n = rd_u32(&rd), res = rd_u32(&rd);
    if (rd.err || res || n == 0 || n > SIMG_BATCH_PAGES ||
        len != 8 + (size_t)n * (8 + DOMUS_PAGE_SIZE)) {
        dfmt(err, errlen, "corrupted image: a page data record of %zu bytes for %u pages",
             len, n);
        return 0;
    }
    return n;
}

int simg_load_pages(const struct gmem *m, const void *body, size_t len, char *err,
                    size_t errlen)
{
    uint32_t n = page_count(body, len, err, errlen);
    if (!n)
        return -EINVAL;
    const uint8_t *pfns = (const uint8_t *)body + 8;
    const uint8_t *data = pfns + (size_t)n * 8;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *dst = page_dst(m, pfns, i, err, errlen);
        if (!dst)
            return -EINVAL;
        memcpy(dst, data + (size_t)i * DOMUS_PAGE_SIZE, DOMUS_PAGE_SIZE);
    }
    return 0;
}

int simg_index_pages(const struct gmem *m, const struct simg_rec *rec, uint64_t *index,
                     char *err, size_t errlen)
{
    uint32_t n = page_count(rec->body, rec->len, err, errlen);
    if (!n || !rec->data_off) {
        if (n)
            dfmt(err, errlen, "a page data record read whole in index mode");
        return -EINVAL;
    }
    const uint8_t *pfns = rec->body + 8;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *dst = page_dst(m, pfns, i, err, errlen);
        if (!dst)
            return -EINVAL;
        index[(size_t)(dst - m->host) >> DOMUS_PAGE_SHIFT] =
            rec->data_off + (uint64_t)i * DOMUS_PAGE_SIZE + 1;
    }
    return 0;
}

static const struct simg_handler *find_handler(const struct simg_handler *h, size_t nh,
                                               uint32_t type)
{
    for (size_t i = 0; i < nh; i++)
        if (h[i].type == type)
            return &h[i];
    return NULL;
}

int simg_read_all(struct simg_reader *r, const struct simg_handler *h, size_t nh,
                  void *ctx)
{
    struct simg_rec rec;
    int rc;
    while ((rc = simg_read_record(r, &rec)) == 1) {
        const struct simg_handler *fn =
            find_handler(h, nh, rec.type & ~SIMG_REC_OPTIONAL);
        if (!fn && (rec.type & SIMG_REC_OPTIONAL))
            continue;
        if (!fn) {
            dfmt(r->err, sizeof(r->err),
                 "unknown mandatory record type %u (%s) at byte %llu: this Domus cannot "
                 "restore it",
                 rec.type, simg_rec_name(rec.type) ?: "not known to this version",
                 (unsigned long long)(r->off - 8 - ((rec.len + 7u) & ~7u)));
            return -EINVAL;
        }
        char err[sizeof(r->err) - 32];
        err[0] = 0;
        rc = fn->fn(ctx, &rec, err, sizeof(err));
        if (rc) {
            dfmt(r->err, sizeof(r->err), "%s record: %s", simg_rec_name(rec.type) ?: "a",
                 err[0] ? err : strerror(-rc));
            return rc;
        }
    }
    return rc;
}
