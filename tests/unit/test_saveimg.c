/* Unit tests of the save image (saveimg.h, hv_save.h): the record stream
 * written and read back, guest memory without its zero pages, every
 * hypervisor module's save/load round trip, and images that must be
 * refused (truncated at every length, any byte flipped, wrong magic or
 * version, an unknown mandatory record, bad padding, bad module bodies). */
#include "domus/hv.h"
#include "domus/hv_save.h"
#include "domus/recbuf.h"
#include "domus/saveimg.h"
#include "domus/util.h"
#include "domus/vmsave.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"

/* ---- fake KVM: counts what load replays ---- */

static struct {
    unsigned shinfo, info, time, runstate, rsflag, vec, gvec, timer, local, fd, rm, extra;
    uint64_t shinfo_gfn, timer_ns;
} fk;

static int f_shinfo(struct domain *d, uint64_t gfn)
{
    (void)d;
    fk.shinfo++;
    fk.shinfo_gfn = gfn;
    return 0;
}
static int f_info(struct vcpu *v, uint64_t gpa)
{
    (void)v, (void)gpa;
    fk.info++;
    return 0;
}
static int f_time(struct vcpu *v, uint64_t gpa)
{
    (void)v, (void)gpa;
    fk.time++;
    return 0;
}
static int f_run(struct vcpu *v, uint64_t gpa)
{
    (void)v, (void)gpa;
    fk.runstate++;
    return 0;
}
static int f_rsflag(struct domain *d, bool on)
{
    (void)d;
    fk.rsflag += on;
    return 0;
}
static int f_vec(struct vcpu *v, uint8_t vec)
{
    (void)v, (void)vec;
    fk.vec++;
    return 0;
}
static int f_gvec(struct domain *d, uint8_t vec)
{
    (void)d, (void)vec;
    fk.gvec++;
    return 0;
}
static int f_timer(struct vcpu *v, uint32_t port, uint64_t ns)
{
    (void)v, (void)port;
    fk.timer++;
    fk.timer_ns = ns;
    return 0;
}
static int f_deliver(struct domain *d, uint32_t p, uint32_t v)
{
    (void)d, (void)p, (void)v;
    return 0;
}
static int f_local(struct domain *d, uint32_t p, uint32_t t, uint32_t v)
{
    (void)d, (void)p, (void)t, (void)v;
    fk.local++;
    return 0;
}
static int f_fd(struct domain *d, uint32_t p, int fd)
{
    (void)d, (void)p, (void)fd;
    fk.fd++;
    return 0;
}
static int f_rm(struct domain *d, uint32_t p)
{
    (void)d, (void)p;
    fk.rm++;
    return 0;
}
static int f_extra(struct domain *d, unsigned i, uint64_t gpa, void *h)
{
    (void)d, (void)i, (void)gpa, (void)h;
    fk.extra++;
    return 0;
}
static int f_translate(struct vcpu *v, uint64_t gva, uint64_t *gpa)
{
    (void)v;
    *gpa = gva;
    return 0;
}

static const struct hv_ops fake_ops = {
    .set_shared_info = f_shinfo,
    .set_vcpu_info = f_info,
    .set_vcpu_time_info = f_time,
    .set_runstate = f_run,
    .set_runstate_update_flag = f_rsflag,
    .set_upcall_vector = f_vec,
    .set_global_upcall_vector = f_gvec,
    .set_timer = f_timer,
    .deliver = f_deliver,
    .route_local = f_local,
    .route_eventfd = f_fd,
    .route_remove = f_rm,
    .map_extra = f_extra,
    .translate = f_translate,
    /* kick: HV_KICK_SIGNAL; suspend: none; now_ns: CLOCK_MONOTONIC;
     * timer_expiry: singleshot_ns */
};

static struct domain *new_domain(unsigned vcpus)
{
    struct domain *d = calloc(1, sizeof(*d));
    domain_init(d, 7, "saved", vcpus, &fake_ops);
    if (gmem_init(&d->mem, 64ULL << 20) < 0)
        abort();
    return d;
}

static void free_domain(struct domain *d)
{
    gmem_destroy(&d->mem);
    free(d);
}

/* ---- image buffers ---- */

struct image {
    uint8_t *p;
    size_t len;
};

/* Everything written to fd so far, read back. */
static struct image slurp(int fd)
{
    struct image im = {0};
    off_t len = lseek(fd, 0, SEEK_END);
    im.p = malloc(len ? (size_t)len : 1);
    im.len = (size_t)len;
    if (pread(fd, im.p, im.len, 0) != (ssize_t)im.len)
        abort();
    return im;
}

static const char *config = "{\"name\":\"saved\",\"memory\":64,\"vcpus\":2}";

/* A small image: header, a record of each given type, end. */
static struct image small_image(const uint32_t *types, size_t n)
{
    int fd = memfd_create("img", 0);
    struct simg_writer w;
    simg_writer_init(&w, fd);
    int rc = simg_write_header(&w, config);
    for (size_t i = 0; i < n && !rc; i++) {
        uint8_t body[13];
        memset(body, (int)i + 1, sizeof(body));
        rc = simg_write_record(&w, types[i], body, sizeof(body) - i % 2);
    }
    if (!rc)
        rc = simg_write_end(&w);
    if (rc)
        abort();
    struct image im = slurp(fd);
    close(fd);
    return im;
}

/* Reads a whole image, counting records: 0 or -errno with err copied. */
static int read_image(const struct image *im, unsigned *records, char *err, size_t errlen)
{
    struct simg_reader r;
    simg_reader_init_mem(&r, im->p, im->len);
    char *cfg = NULL;
    struct simg_rec rec;
    int rc = simg_read_header(&r, &cfg);
    *records = 0;
    while (!rc && (rc = simg_read_record(&r, &rec)) == 1) {
        ++*records;
        rc = 0;
    }
    if (!rc && cfg && strcmp(cfg, config))
        rc = -EILSEQ;
    dfmt(err, errlen, "%s", r.err);
    free(cfg);
    simg_reader_free(&r);
    return rc;
}

static void test_stream(void)
{
    const uint32_t types[] = {SIMG_REC_CLOCK, 99 | SIMG_REC_OPTIONAL,
                              SIMG_REC_HVM_PARAMS};
    struct image im = small_image(types, 3);
    unsigned n;
    char err[256];
    CHECK("stream: an image is a multiple of 8 bytes", im.len % 8 == 0);
    CHECK("stream: written and read back, 3 records and a good checksum",
          read_image(&im, &n, err, sizeof(err)) == 0 && n == 3);

    bool all = true;
    for (size_t len = 0; len < im.len; len++) {
        struct image t = {im.p, len};
        all = all && read_image(&t, &n, err, sizeof(err)) == -EINVAL;
        all = all && (len < SIMG_MAGIC_LEN + 16 || strstr(err, "truncated image"));
    }
    CHECK("stream: refused, as truncated, at every shorter length", all);

    all = true;
    for (size_t i = 0; i < im.len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            im.p[i] ^= (uint8_t)(1u << bit);
            int rc = read_image(&im, &n, err, sizeof(err));
            im.p[i] ^= (uint8_t)(1u << bit);
            /* Flipping the optional bit of the unknown record makes it mandatory:
             * refused too.  Nothing is accepted. */
            all = all && rc < 0;
        }
    }
    CHECK("stream: refused with any one bit flipped", all);

    memcpy(im.p, "XENFXXXX", 8);
    CHECK("stream: wrong magic",
          read_image(&im, &n, err, sizeof(err)) == -EINVAL && strstr(err, "wrong magic"));
    memcpy(im.p, SIMG_MAGIC, 8);
    im.p[8] = 2;
    CHECK("stream: version 2 refused, saying so",
          read_image(&im, &n, err, sizeof(err)) == -EINVAL && strstr(err, "version 2"));
    free(im.p);
}

static int count_rec(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    (void)rec, (void)err, (void)errlen;
    ++*(unsigned *)ctx;
    return 0;
}

static int read_all(const struct image *im, const struct simg_handler *h, size_t nh,
                    void *ctx, char *err, size_t errlen)
{
    struct simg_reader r;
    simg_reader_init_mem(&r, im->p, im->len);
    char *cfg = NULL;
    int rc = simg_read_header(&r, &cfg);
    if (!rc)
        rc = simg_read_all(&r, h, nh, ctx);
    dfmt(err, errlen, "%s", r.err);
    free(cfg);
    simg_reader_free(&r);
    return rc;
}

static void test_unknown_records(void)
{
    const struct simg_handler h[] = {{SIMG_REC_CLOCK, count_rec}};
    char err[256];
    unsigned n = 0;
    const uint32_t opt[] = {SIMG_REC_CLOCK, 4242 | SIMG_REC_OPTIONAL, SIMG_REC_CLOCK};
    struct image im = small_image(opt, 3);
    CHECK("records: an unknown optional record is skipped",
          read_all(&im, h, 1, &n, err, sizeof(err)) == 0 && n == 2);
    free(im.p);
    const uint32_t mand[] = {SIMG_REC_CLOCK, 4242};
    im = small_image(mand, 2);
    n = 0;
    CHECK("records: an unknown mandatory record fails the restore, named",
          read_all(&im, h, 1, &n, err, sizeof(err)) == -EINVAL &&
              strstr(err, "unknown mandatory record type 4242") && n == 1);
    free(im.p);
    const uint32_t known[] = {SIMG_REC_HV_EVTCHN};
    im = small_image(known, 1);
    CHECK("records: a known type without a handler here is refused too",
          read_all(&im, h, 1, &n, err, sizeof(err)) == -EINVAL &&
              strstr(err, "event channels"));
    free(im.p);
}

static void test_bad_framing(void)
{
    const uint32_t t[] = {SIMG_REC_CLOCK};
    struct image im = small_image(t, 1);
    unsigned n;
    char err[256];
    size_t rec = SIMG_MAGIC_LEN + 16 + ((strlen(config) + 7) & ~7u);
    im.p[rec + 8 + 13] = 1; /* padding after the 13-byte body */
    CHECK("framing: non-zero padding refused",
          read_image(&im, &n, err, sizeof(err)) == -EINVAL && strstr(err, "padding"));
    im.p[rec + 8 + 13] = 0;
    uint32_t big = SIMG_MAX_BODY + 1;
    memcpy(im.p + rec + 4, &big, 4);
    CHECK("framing: a record longer than the limit refused before reading it",
          read_image(&im, &n, err, sizeof(err)) == -EINVAL && strstr(err, "bytes"));
    free(im.p);

    int fd = memfd_create("img", 0);
    struct simg_writer w;
    simg_writer_init(&w, fd);
    CHECK("framing: an empty config is not written",
          simg_write_header(&w, "") == -EINVAL && w.bytes == 0);
    CHECK("framing: header written",
          simg_write_header(&w, "[1,2]") == 0 && simg_write_end(&w) == 0);
    im = slurp(fd);
    close(fd);
    struct simg_reader r;
    simg_reader_init_mem(&r, im.p, im.len);
    char *cfg;
    CHECK("framing: a config that is not a JSON object refused",
          simg_read_header(&r, &cfg) == -EINVAL && strstr(r.err, "JSON object"));
    simg_reader_free(&r);
    free(im.p);
}

/* ---- memory ---- */

static int load_pages(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    return simg_load_pages(ctx, rec->body, rec->len, err, errlen);
}

/* A reader with pages_to: every page data record comes loaded already. */
static int loaded_pages(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    return rec->loaded ? 0 : -EINVAL;
}

/* The image in fd read again with pages_to = m: the reader's result. */
static int read_into(int fd, struct gmem *m, char *err, size_t errlen)
{
    const struct simg_handler h[] = {{SIMG_REC_PAGE_DATA, loaded_pages}};
    struct simg_reader r;
    char *cfg = NULL;
    int rc;

    simg_reader_init_fd(&r, fd);
    r.pages_to = m;
    lseek(fd, 0, SEEK_SET);
    rc = simg_read_header(&r, &cfg);
    rc = rc ?: simg_read_all(&r, h, 1, NULL);
    snprintf(err, errlen, "%s", r.err);
    free(cfg);
    simg_reader_free(&r);
    return rc;
}

/* Page data read straight into guest memory: the same RAM as through the
 * record's body; a pfn outside RAM and a stream cut inside the pages are
 * refused, and a flipped byte fails the checksum. */
static void test_pages_into(struct domain *a, int fd, size_t len)
{
    struct domain *c = new_domain(1);
    uint8_t byte;
    char err[256];
    int cut = memfd_create("cut", 0);

    CHECK("memory: read straight into guest memory, the same RAM and special pages",
          read_into(fd, &c->mem, err, sizeof(err)) == 0 &&
              !memcmp(a->mem.host, c->mem.host,
                      a->mem.ram_size + GMEM_SPECIAL_PAGES * 4096));
    pread(fd, &byte, 1, (off_t)len / 2);
    byte ^= 0x40;
    pwrite(fd, &byte, 1, (off_t)len / 2);
    CHECK("memory: straight in, a flipped byte fails the checksum",
          read_into(fd, &c->mem, err, sizeof(err)) == -EINVAL && strstr(err, "checksum"));
    byte ^= 0x40;
    pwrite(fd, &byte, 1, (off_t)len / 2);
    struct image im = slurp(fd);
    CHECK("memory: straight in, a stream cut inside a record's pages is truncated",
          write(cut, im.p, len / 3) == (ssize_t)(len / 3) &&
              read_into(cut, &c->mem, err, sizeof(err)) == -EINVAL &&
              strstr(err, "truncated"));
    uint64_t bad = (64ULL << 20) >> 12; /* the first record's first pfn: past RAM */
    size_t first = 24 + ((strlen(config) + 7) & ~(size_t)7) + 8 + 8;
    ftruncate(cut, 0);
    memcpy(im.p + first, &bad, 8);
    CHECK("memory: straight in, a pfn outside RAM refused",
          pwrite(cut, im.p, im.len, 0) == (ssize_t)im.len &&
              read_into(cut, &c->mem, err, sizeof(err)) == -EINVAL &&
              strstr(err, "outside"));
    free(im.p);
    close(cut);
    free_domain(c);
}

static void test_memory(void)
{
    struct domain *a = new_domain(1), *b = new_domain(1);
    /* 700 pages of data (two batches), the rest zero, a special page set. */
    for (unsigned i = 0; i < 700; i++) {
        uint64_t v = 0x1234567800000000ULL | i;
        gmem_write(&a->mem, (uint64_t)(3 * i + 1) * DOMUS_PAGE_SIZE + (i % 512) * 8, &v,
                   8);
    }
    gmem_write(&a->mem, GMEM_SPECIAL_BASE + 4096 + 100, "ring", 4);
    int fd = memfd_create("img", 0);
    struct simg_writer w;
    simg_writer_init(&w, fd);
    int rc = simg_write_header(&w, config);
    rc = rc ?: simg_write_memory(&w, &a->mem);
    rc = rc ?: simg_write_end(&w);
    uint64_t pages = (64ULL << 20) / DOMUS_PAGE_SIZE + GMEM_SPECIAL_PAGES;
    CHECK("memory: written, 701 pages, the zero pages left out",
          rc == 0 && w.page_bytes == 701 * DOMUS_PAGE_SIZE &&
              w.zero_skipped == pages - 701);
    struct image im = slurp(fd);
    CHECK("memory: the image holds the pages, not the RAM",
          im.len < 702 * (DOMUS_PAGE_SIZE + 8) + 4096);

    const struct simg_handler h[] = {{SIMG_REC_PAGE_DATA, load_pages}};
    char err[256];
    struct simg_reader r;
    simg_reader_init_fd(&r, fd);
    lseek(fd, 0, SEEK_SET);
    char *cfg = NULL;
    rc = simg_read_header(&r, &cfg);
    rc = rc ?: simg_read_all(&r, h, 1, &b->mem);
    CHECK("memory: read back from the fd into a new domain", rc == 0);
    CHECK("memory: RAM and special pages equal",
          !memcmp(a->mem.host, b->mem.host, a->mem.ram_size + GMEM_SPECIAL_PAGES * 4096));
    test_pages_into(a, fd, im.len);
    free(cfg);
    simg_reader_free(&r);
    close(fd);
    free(im.p);

    /* A page data record naming a pfn outside RAM, or an extra page. */
    uint8_t body[8 + 8 + 4096] = {1};
    uint64_t pfns[] = {(64ULL << 20) >> 12,
                       (GMEM_SPECIAL_BASE >> 12) + GMEM_SPECIAL_PAGES, UINT64_MAX,
                       0x7fffffffffffffffULL};
    bool all = true;
    for (unsigned i = 0; i < ARRAY_SIZE(pfns); i++) {
        memcpy(body + 8, &pfns[i], 8);
        all = all &&
              simg_load_pages(&b->mem, body, sizeof(body), err, sizeof(err)) == -EINVAL;
    }
    CHECK("memory: pfns outside RAM and the special pages refused", all);
    CHECK("memory: a record shorter than its count refused",
          simg_load_pages(&b->mem, body, sizeof(body) - 1, err, sizeof(err)) == -EINVAL);
    free_domain(a);
    free_domain(b);
}

/* ---- vCPUs and the clock ---- */

struct restore_ctx {
    struct simg_vcpu v[2];
    struct simg_clock clock;
};

static int load_vcpu(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    return simg_load_vcpu_record(((struct restore_ctx *)ctx)->v, 2, rec, err, errlen);
}

static int load_clock(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    return simg_load_clock(&((struct restore_ctx *)ctx)->clock, rec, err, errlen);
}

static const struct simg_handler vcpu_handlers[] = {
    {SIMG_REC_VCPU_REGS, load_vcpu},   {SIMG_REC_VCPU_SREGS, load_vcpu},
    {SIMG_REC_VCPU_XSAVE, load_vcpu},  {SIMG_REC_VCPU_XCRS, load_vcpu},
    {SIMG_REC_VCPU_MSRS, load_vcpu},   {SIMG_REC_VCPU_LAPIC, load_vcpu},
    {SIMG_REC_VCPU_EVENTS, load_vcpu}, {SIMG_REC_VCPU_MPSTATE, load_vcpu},
    {SIMG_REC_VCPU_TSC, load_vcpu},    {SIMG_REC_CLOCK, load_clock},
};

static void fill_vcpu(struct simg_vcpu *s, unsigned seed)
{
    uint8_t *p = (uint8_t *)s;
    for (size_t i = 0; i < sizeof(*s); i++)
        p[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
    s->nr_msrs = 40 + seed;
    for (unsigned i = 0; i < SIMG_MAX_MSRS; i++)
        s->msrs[i] = (struct kvm_msr_entry){
            .index = 0xc0000080 + i, .data = i < s->nr_msrs ? i * 0x1001ULL + seed : 0};
    s->have = 0;
}

static bool same_vcpu(const struct simg_vcpu *a, const struct simg_vcpu *b)
{
    return !memcmp(&a->regs, &b->regs, sizeof(a->regs)) &&
           !memcmp(&a->sregs, &b->sregs, sizeof(a->sregs)) &&
           !memcmp(&a->xsave, &b->xsave, sizeof(a->xsave)) &&
           !memcmp(&a->xcrs, &b->xcrs, sizeof(a->xcrs)) && a->nr_msrs == b->nr_msrs &&
           !memcmp(a->msrs, b->msrs, a->nr_msrs * sizeof(a->msrs[0])) &&
           !memcmp(&a->lapic, &b->lapic, sizeof(a->lapic)) &&
           !memcmp(&a->events, &b->events, sizeof(a->events)) &&
           !memcmp(&a->mp_state, &b->mp_state, sizeof(a->mp_state)) &&
           a->tsc_offset == b->tsc_offset && b->have == SIMG_VCPU_ALL;
}

/* An image of two vCPUs (the second without its records from skip on). */
static struct image vcpu_image(const struct simg_vcpu *v, bool twice)
{
    int fd = memfd_create("img", 0);
    struct simg_writer w;
    simg_writer_init(&w, fd);
    struct simg_clock c = {123456789012ULL, KVM_CLOCK_TSC_STABLE, 2994000};
    int rc = simg_write_header(&w, config);
    rc = rc ?: simg_write_clock(&w, &c);
    for (unsigned i = 0; i < 2 && !rc; i++)
        rc = simg_write_vcpu(&w, i, &v[i]);
    if (!rc && twice)
        rc = simg_write_vcpu(&w, 1, &v[1]);
    rc = rc ?: simg_write_end(&w);
    if (rc)
        abort();
    struct image im = slurp(fd);
    close(fd);
    return im;
}

static void test_vcpu_records(void)
{
    static struct simg_vcpu v[2];
    static struct restore_ctx ctx;
    fill_vcpu(&v[0], 1);
    fill_vcpu(&v[1], 2);
    char err[256];
    struct image im = vcpu_image(v, false);
    int rc =
        read_all(&im, vcpu_handlers, ARRAY_SIZE(vcpu_handlers), &ctx, err, sizeof(err));
    CHECK("vcpu: two vCPUs' records read back", rc == 0);
    CHECK("vcpu: every piece equal, every record seen",
          same_vcpu(&v[0], &ctx.v[0]) && same_vcpu(&v[1], &ctx.v[1]) &&
              simg_vcpus_complete(ctx.v, 2, err, sizeof(err)) == 0);
    CHECK("vcpu: the clock read back", ctx.clock.clock_ns == 123456789012ULL &&
                                           ctx.clock.flags == KVM_CLOCK_TSC_STABLE &&
                                           ctx.clock.tsc_khz == 2994000);
    free(im.p);

    memset(&ctx, 0, sizeof(ctx));
    im = vcpu_image(v, true);
    CHECK("vcpu: a record twice refused",
          read_all(&im, vcpu_handlers, ARRAY_SIZE(vcpu_handlers), &ctx, err,
                   sizeof(err)) == -EINVAL &&
              strstr(err, "twice"));
    free(im.p);

    memset(&ctx, 0, sizeof(ctx));
    CHECK("vcpu: a vCPU without records is incomplete",
          simg_vcpus_complete(ctx.v, 1, err, sizeof(err)) == -EINVAL &&
              strstr(err, "vcpu regs"));
    uint8_t body[16] = {2}; /* vCPU 2 of 2 */
    struct simg_rec rec = {SIMG_REC_VCPU_TSC, sizeof(body), body, 0, false};
    CHECK("vcpu: a record for a vCPU the domain lacks refused",
          simg_load_vcpu_record(ctx.v, 2, &rec, err, sizeof(err)) == -EINVAL);
    body[0] = 0;
    rec.len = 12;
    CHECK("vcpu: a short record refused",
          simg_load_vcpu_record(ctx.v, 2, &rec, err, sizeof(err)) == -EINVAL);
    rec.type = SIMG_REC_VCPU_MSRS;
    body[4] = 1; /* one MSR in 8 bytes */
    rec.len = 16;
    CHECK("vcpu: an MSR count beyond the body refused",
          simg_load_vcpu_record(ctx.v, 2, &rec, err, sizeof(err)) == -EINVAL &&
              !ctx.v[0].have);
}

/* ---- hypervisor modules ---- */

static void fill_domain(struct domain *d)
{
    d->hvm_params[HVM_PARAM_CALLBACK_IRQ] =
        (uint64_t)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | 0xf3;
    d->hvm_params[HVM_PARAM_STORE_PFN] = GMEM_SPECIAL_BASE >> 12;
    d->ports[1] = (struct evtchn){EVS_INTERDOMAIN, 0, 0, 0, 0, 42}; /* a back end's */
    d->ports[2] = (struct evtchn){EVS_VIRQ, 1, 0, 0, VIRQ_TIMER, -1};
    d->ports[3] = (struct evtchn){EVS_IPI, 1, 0, 0, 0, -1};
    d->ports[5] = (struct evtchn){EVS_INTERDOMAIN, 0, 7, 6, 0, -1}; /* loopback pair */
    d->ports[6] = (struct evtchn){EVS_INTERDOMAIN, 1, 7, 5, 0, -1};
    d->ports[9] = (struct evtchn){EVS_UNBOUND, 0, 0, 0, 0, -1};
    if (gnttab_set_frame(d, 0, 0xf0000000ULL) || gnttab_set_frame(d, 1, 0xf0001000ULL))
        abort();
    gmem_write(&d->mem, 0xf0001000ULL + 16, "grant", 5);
    d->shared_info_gpa = 0x20000;
    d->vcpus[1].vcpu_info_gpa = 0x21040;
    d->vcpus[1].time_info_gpa = 0x22000;
    d->vcpus[0].runstate_gpa = 0x23000;
    d->vcpus[1].upcall_vector = 0xf3;
    d->vcpus[1].timer_port = 2;
    d->vcpus[1].singleshot_ns = 123456789;
    d->vm_assist = 1ULL << VMASST_TYPE_runstate_update_flag;
}

static int save_module(const struct hv_module *m, struct domain *d, struct recbuf *rb)
{
    rb_init(rb);
    return m->save(d, rb);
}

static void test_modules(void)
{
    struct domain *a = new_domain(2);
    fill_domain(a);
    char err[256], name[96];
    for (size_t i = 0; i < hv_nr_modules; i++) {
        const struct hv_module *m = &hv_modules[i];
        struct domain *b = new_domain(2);
        struct recbuf rb;
        bool ok = save_module(m, a, &rb) == 0;
        /* Every shorter body is refused and changes nothing. */
        bool trunc = true;
        for (size_t len = 0; len < rb.len; len += (len < 64 ? 1 : 509))
            trunc = trunc && m->load(b, rb.data, len, err, sizeof(err)) < 0;
        trunc =
            trunc && b->ports[2].state == EVS_FREE && !b->hvm_params[HVM_PARAM_STORE_PFN];
        snprintf(name, sizeof(name), "module %s: every truncated body refused", m->name);
        CHECK(name, trunc);
        memset(&fk, 0, sizeof(fk));
        ok = ok && m->load(b, rb.data, rb.len, err, sizeof(err)) == 0;
        struct recbuf again;
        ok = ok && save_module(m, b, &again) == 0;
        /* The back end's port comes back unbound, so its bytes differ. */
        bool same = again.len == rb.len && (m->rec_type == SIMG_REC_HV_EVTCHN ||
                                            !memcmp(again.data, rb.data, rb.len));
        snprintf(name, sizeof(name),
                 "module %s: save, load, save gives the same record (%zu bytes)", m->name,
                 rb.len);
        CHECK(name, ok && same);
        if (m->rec_type == SIMG_REC_HV_EVTCHN) {
            CHECK(
                "module event channels: ports as saved, the back end's unbound for dom0",
                b->ports[2].state == EVS_VIRQ && b->ports[2].vcpu == 1 &&
                    b->ports[3].state == EVS_IPI && b->ports[5].remote_port == 6 &&
                    b->ports[1].state == EVS_UNBOUND && b->ports[1].backend_fd == -1 &&
                    b->ports[9].state == EVS_UNBOUND && b->ports[4].state == EVS_FREE);
            CHECK("module event channels: IPI and loopback routed again", fk.local == 3);
            CHECK("module event channels: a second load refused (-EBUSY)",
                  m->load(b, rb.data, rb.len, err, sizeof(err)) == -EBUSY);
        }
        if (m->rec_type == SIMG_REC_HV_GNTTAB)
            CHECK("module grant table: frames placed, contents copied",
                  b->gnt_nr_frames == 2 && b->gnt_frame_gpa[1] == 0xf0001000ULL &&
                      !memcmp(gmem_ptr(&b->mem, 0xf0001000ULL + 16, 5), "grant", 5));
        if (m->rec_type == SIMG_REC_HV_AREAS)
            CHECK("module guest areas: replayed through the ops, shared_info first",
                  fk.shinfo == 1 && fk.shinfo_gfn == 0x20 && fk.info == 1 &&
                      fk.time == 1 && fk.runstate == 1 && fk.vec == 1 &&
                      b->vcpus[1].upcall_vector == 0xf3);
        if (m->rec_type == SIMG_REC_HV_TIMERS)
            CHECK("module timers: the pending single-shot timer armed again",
                  fk.timer == 1 && fk.timer_ns == 123456789 &&
                      b->vcpus[1].timer_port == 2);
        if (m->rec_type == SIMG_REC_HVM_PARAMS)
            CHECK("module hvm params: the callback vector set again", fk.gvec == 1);
        if (m->rec_type == SIMG_REC_HV_VMASST)
            CHECK("module vm_assist: runstate_update_flag turned on again",
                  fk.rsflag == 1 && b->vm_assist == a->vm_assist && m->optional &&
                      m->resume == m->load);
        rb_free(&rb);
        rb_free(&again);
        free_domain(b);
    }
    free_domain(a);
}

static void test_vm_assist(void)
{
    struct domain *b = new_domain(1);
    char err[256];
    struct recbuf rb;

    memset(&fk, 0, sizeof(fk));
    CHECK("vm_assist: another type refused (-EINVAL)",
          hv_vm_assist(b, VMASST_CMD_enable, VMASST_TYPE_writable_pagetables) ==
                  -EINVAL &&
              !b->vm_assist && !fk.rsflag);
    CHECK("vm_assist: another command refused (-ENOSYS)",
          hv_vm_assist(b, 7, VMASST_TYPE_runstate_update_flag) == -ENOSYS &&
              !b->vm_assist);
    CHECK("vm_assist: runstate_update_flag on, told to the ops",
          !hv_vm_assist(b, VMASST_CMD_enable, VMASST_TYPE_runstate_update_flag) &&
              b->vm_assist == 1ULL << VMASST_TYPE_runstate_update_flag && fk.rsflag == 1);
    CHECK("vm_assist: and off",
          !hv_vm_assist(b, VMASST_CMD_disable, VMASST_TYPE_runstate_update_flag) &&
              !b->vm_assist);
    rb_init(&rb);
    rb_put_u64(&rb, 1ULL << VMASST_TYPE_writable_pagetables);
    CHECK("vm_assist: a record with a bit a guest cannot set refused",
          hv_load_vmassist(b, rb.data, rb.len, err, sizeof(err)) == -EINVAL &&
              !b->vm_assist);
    rb_free(&rb);
    free_domain(b);
}

static void test_module_bad_bodies(void)
{
    struct domain *b = new_domain(2);
    char err[256];
    struct recbuf rb;
    rb_init(&rb);
    rb_put_u32(&rb, 1);
    rb_put_u32(&rb, 0);
    uint32_t port[] = {5, EVS_INTERDOMAIN, 0, 7, 6, 0}; /* loopback without a peer */
    for (unsigned i = 0; i < 6; i++)
        rb_put_u32(&rb, port[i]);
    CHECK("bad bodies: a loopback port without its peer",
          hv_load_evtchn(b, rb.data, rb.len, err, sizeof(err)) == -EINVAL &&
              strstr(err, "peer") && b->ports[5].state == EVS_FREE);
    rb.data[8 + 8] = 9; /* vcpu 9 of 2 */
    CHECK("bad bodies: a port on a vCPU the domain lacks",
          hv_load_evtchn(b, rb.data, rb.len, err, sizeof(err)) == -EINVAL);
    rb_free(&rb);

    rb_put_u32(&rb, 3);
    rb_put_u32(&rb, 0);
    CHECK("bad bodies: timers for 3 vCPUs in a 2-vCPU domain",
          hv_load_timers(b, rb.data, rb.len, err, sizeof(err)) == -EINVAL &&
              strstr(err, "the domain has 2"));
    rb_free(&rb);

    rb_put_u32(&rb, 2); /* grant table version 2 */
    rb_put_u32(&rb, 0);
    CHECK("bad bodies: grant table version 2",
          hv_load_gnttab(b, rb.data, rb.len, err, sizeof(err)) == -EINVAL);
    rb_free(&rb);

    rb_put_u32(&rb, 2);
    rb_put_u32(&rb, 0);
    rb_put_u32(&rb, 5), rb_put_u32(&rb, 0), rb_put_u64(&rb, 1);
    rb_put_u32(&rb, 5), rb_put_u32(&rb, 0), rb_put_u64(&rb, 2);
    CHECK("bad bodies: a param twice",
          hv_load_params(b, rb.data, rb.len, err, sizeof(err)) == -EINVAL &&
              !b->hvm_params[5]);
    rb_free(&rb);

    rb_put_u64(&rb, 64ULL << 20); /* shared_info just past RAM */
    rb_put_u32(&rb, 2);
    rb_put_u32(&rb, 0);
    for (unsigned i = 0; i < 2; i++)
        rb_put_u64(&rb, 0), rb_put_u64(&rb, 0), rb_put_u64(&rb, 0), rb_put_u64(&rb, 0);
    CHECK("bad bodies: shared_info outside RAM",
          hv_load_areas(b, rb.data, rb.len, err, sizeof(err)) == -EINVAL && !fk.shinfo);
    rb_free(&rb);
    free_domain(b);
}

/* ---- a whole domain (vmsave.h) over fake KVM state ---- */

static struct {
    unsigned seq, clock_at, vcpu_at[2], loads;
    int fail_vcpu_save;
    struct simg_vcpu loaded[2];
    struct simg_clock clock;
} fs;

static int fs_vcpu_save(struct vcpu *v, struct simg_vcpu *s)
{
    if (fs.fail_vcpu_save)
        return fs.fail_vcpu_save;
    fill_vcpu(s, v->id + 10);
    return 0;
}
static int fs_vcpu_load(struct vcpu *v, const struct simg_vcpu *s)
{
    fs.vcpu_at[v->id] = ++fs.seq;
    fs.loads++;
    fs.loaded[v->id] = *s;
    return 0;
}
static int fs_clock_save(struct domain *d, struct simg_clock *c)
{
    (void)d;
    *c = (struct simg_clock){5000000000ULL, 0, 1000000};
    return 0;
}
static int fs_clock_load(struct domain *d, const struct simg_clock *c)
{
    (void)d;
    fs.clock_at = ++fs.seq;
    fs.clock = *c;
    return 0;
}
static const struct vm_state_ops fake_state = {
    fs_vcpu_save, fs_vcpu_load, fs_clock_save, fs_clock_load, NULL, NULL, NULL};

static int save_domain(struct domain *a, struct image *im, char *err, size_t errlen)
{
    int fd = memfd_create("img", 0);
    struct simg_writer w;
    simg_writer_init(&w, fd);
    int rc = vm_save_image(a, &w, config, &fake_state, err, errlen);
    *im = slurp(fd);
    close(fd);
    return rc;
}

static int restore_domain(const struct image *im, struct domain *b, char *err,
                          size_t errlen)
{
    struct simg_reader r;
    simg_reader_init_mem(&r, im->p, im->len);
    char *cfg = NULL;
    int rc = vm_restore_header(&r, &cfg);
    if (!rc && strcmp(cfg, config))
        rc = -EILSEQ;
    if (!rc)
        rc = vm_restore_body(b, &r, &fake_state);
    dfmt(err, errlen, "%s", r.err);
    free(cfg);
    simg_reader_free(&r);
    return rc;
}

/* im without its vm_assist record (as an older Domus wrote it), the end
 * record's crc32 made again; {NULL, 0} if there is none. */
static struct image without_vmassist(const struct image *im)
{
    const uint8_t hdr[8] = {SIMG_REC_HV_VMASST, 0, 0, 0x80, 8, 0, 0, 0};
    uint8_t *at = memmem(im->p, im->len, hdr, sizeof(hdr));
    struct image t = {NULL, 0};

    if (!at || !(t.p = malloc(im->len)))
        return t;
    size_t off = (size_t)(at - im->p);
    memcpy(t.p, im->p, off);
    memcpy(t.p + off, at + 16, im->len - off - 16);
    t.len = im->len - 16;
    uint32_t crc = (uint32_t)crc32(0, t.p, (uInt)(t.len - 8));
    for (unsigned i = 0; i < 4; i++)
        t.p[t.len - 8 + i] = (uint8_t)(crc >> (8 * i));
    return t;
}

static void test_vmsave(void)
{
    static struct simg_vcpu want[2];
    struct domain *a = new_domain(2), *b = new_domain(2);
    fill_domain(a);
    gmem_write(&a->mem, 0x123000, "memory", 6);
    char err[256];
    struct image im;
    CHECK("vmsave: a 2-vCPU domain saved", save_domain(a, &im, err, sizeof(err)) == 0);
    memset(&fs, 0, sizeof(fs));
    int rc = restore_domain(&im, b, err, sizeof(err));
    CHECK("vmsave: restored into a new domain", rc == 0);
    fill_vcpu(&want[0], 10);
    fill_vcpu(&want[1], 11);
    want[0].have = want[1].have = SIMG_VCPU_ALL;
    CHECK("vmsave: memory, vCPUs and clock as saved",
          !memcmp(gmem_ptr(&b->mem, 0x123000, 6), "memory", 6) &&
              same_vcpu(&want[0], &fs.loaded[0]) && same_vcpu(&want[1], &fs.loaded[1]) &&
              fs.clock.clock_ns == 5000000000ULL);
    CHECK("vmsave: the clock set before the vCPUs",
          fs.clock_at == 1 && fs.vcpu_at[0] == 2 && fs.vcpu_at[1] == 3);
    CHECK("vmsave: the modules loaded",
          b->ports[3].state == EVS_IPI && b->gnt_nr_frames == 2 &&
              b->vcpus[1].singleshot_ns == 123456789 && b->shared_info_gpa == 0x20000 &&
              b->hvm_params[HVM_PARAM_STORE_PFN] == GMEM_SPECIAL_BASE >> 12 &&
              b->vm_assist == a->vm_assist);
    free_domain(b);
    struct image old = without_vmassist(&im);
    b = new_domain(2);
    CHECK("vmsave: an image without the optional vm_assist record restores",
          old.p && restore_domain(&old, b, err, sizeof(err)) == 0 && !b->vm_assist &&
              b->shared_info_gpa == 0x20000);
    free_domain(b);
    free(old.p);

    /* Cut anywhere before the checksum: refused, and nothing applied. */
    bool all = true;
    size_t cuts[] = {im.len - 1, im.len - 16, im.len / 2, 200};
    for (unsigned i = 0; i < ARRAY_SIZE(cuts); i++) {
        struct image t = {im.p, cuts[i]};
        b = new_domain(2);
        memset(&fs, 0, sizeof(fs));
        all = all && restore_domain(&t, b, err, sizeof(err)) == -EINVAL && !fs.loads &&
              !fs.clock_at && b->ports[3].state == EVS_FREE && strstr(err, "truncated");
        free_domain(b);
    }
    CHECK("vmsave: a truncated image applies nothing", all);

    b = new_domain(1);
    memset(&fs, 0, sizeof(fs));
    CHECK("vmsave: an image of 2 vCPUs refused by a 1-vCPU domain",
          restore_domain(&im, b, err, sizeof(err)) == -EINVAL && !fs.loads);
    free_domain(b);
    free(im.p);

    fs.fail_vcpu_save = -EIO;
    CHECK("vmsave: a vCPU that cannot be read fails the save, saying so",
          save_domain(a, &im, err, sizeof(err)) == -EIO && strstr(err, "vCPU 0"));
    free(im.p);
    fs.fail_vcpu_save = 0;
    free_domain(a);
}

/* A memfd holding len bytes of p, at offset 0. */
static int mem_file(const void *p, size_t len)
{
    int fd = memfd_create("spool-test", MFD_CLOEXEC);
    if (fd < 0 || write(fd, p, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)
        return -1;
    return fd;
}

/* simg_spool over in[0, len): its result, err, the bytes it wrote and how
 * far it read. */
static int spool_of(const uint8_t *in, size_t len, char *err, size_t errlen,
                    size_t *wrote, off_t *read_to)
{
    int ifd = mem_file(in, len), ofd = memfd_create("spool-out", MFD_CLOEXEC);
    int rc = simg_spool(ifd, ofd, err, errlen);
    *wrote = (size_t)lseek(ofd, 0, SEEK_END);
    *read_to = lseek(ifd, 0, SEEK_CUR);
    close(ifd);
    close(ofd);
    return rc;
}

/* simg_spool from a connection (a socket pair holding in[0, len), then
 * closed when close_after) into a pipe, as migrate-receive feeds domus-vm
 * (splice): its result; the pipe's bytes in out, what is left on the
 * connection in *left. */
static int spool_pipe(const uint8_t *in, size_t len, bool close_after, uint8_t *out,
                      size_t *wrote, size_t *left)
{
    int sv[2], p[2], rc = -1;
    char err[160], rest[64];
    ssize_t n;

    *wrote = *left = 0;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(p) < 0)
        return -1;
    if (write(sv[1], in, len) == (ssize_t)len) {
        if (close_after)
            shutdown(sv[1], SHUT_WR);
        rc = simg_spool(sv[0], p[1], err, sizeof(err));
    }
    close(p[1]);
    while ((n = read(p[0], out + *wrote, 4096)) > 0)
        *wrote += (size_t)n;
    shutdown(sv[1], SHUT_WR);
    while ((n = read(sv[0], rest, sizeof(rest))) > 0)
        *left += (size_t)n;
    close(sv[0]), close(sv[1]), close(p[0]);
    return rc;
}

static void test_spool_pipe(const uint8_t *img, size_t n)
{
    uint8_t *out = calloc(1, n + 64);
    size_t wrote, left;

    CHECK("spool: a connection into a pipe, up to the end record",
          spool_pipe(img, n + 10, false, out, &wrote, &left) == 0 && wrote == n &&
              !memcmp(out, img, n) && left == 10);
    CHECK("spool: a connection cut inside a record is truncated",
          spool_pipe(img, n - 20, true, out, &wrote, &left) == -EPIPE &&
              !memcmp(out, img, wrote) && left == 0);
    free(out);
}

/* Live migration's receiver: a stream copied up to its end record and no
 * further; anything that is not a whole stream refused with why. */
static void test_spool(void)
{
    int fd = memfd_create("spool-img", MFD_CLOEXEC);
    struct simg_writer w;
    uint8_t body[100] = {1, 2, 3}, *img;
    char err[160];
    size_t wrote;
    off_t at;

    simg_writer_init(&w, fd);
    CHECK("spool: an image to spool",
          simg_write_header(&w, "{\"name\":\"g\"}") == 0 &&
              simg_write_record(&w, 16, body, sizeof(body)) == 0 &&
              simg_write_end(&w) == 0);
    size_t n = (size_t)w.bytes;
    img = calloc(1, n + 64);
    CHECK("spool: read back", pread(fd, img, n, 0) == (ssize_t)n);
    memcpy(img + n, "NEXT LINE\n", 10); /* what follows the stream on a connection */
    CHECK("spool: the whole stream, nothing after its end record",
          spool_of(img, n + 10, err, sizeof(err), &wrote, &at) == 0 && wrote == n &&
              at == (off_t)n);
    test_spool_pipe(img, n);
    size_t cuts[] = {0, 5, 8, 20, 24, 40, n - 16, n - 1};
    bool all = true;
    for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
        err[0] = '\0';
        int rc = spool_of(img, cuts[i], err, sizeof(err), &wrote, &at);
        if (rc != -EPIPE || !strstr(err, "truncated stream")) {
            printf("  cut at %zu: %d '%s'\n", cuts[i], rc, err);
            all = false;
        }
    }
    CHECK("spool: a stream cut anywhere is truncated", all);
    img[0] = 'X';
    CHECK("spool: no magic", spool_of(img, n, err, sizeof(err), &wrote, &at) == -EINVAL &&
                                 strstr(err, "magic"));
    img[0] = 'D';
    img[16] = 0xff, img[18] = 0xff; /* a config of 16 MiB */
    CHECK("spool: a config over the limit",
          spool_of(img, n, err, sizeof(err), &wrote, &at) == -EINVAL &&
              strstr(err, "config"));
    CHECK("spool: read back again", pread(fd, img, n, 0) == (ssize_t)n);
    size_t rec = 24 + 16; /* the header and its padded config */
    img[rec + 6] = 0x50;  /* the record's length: 5 MiB */
    CHECK("spool: a record over the limit",
          spool_of(img, n, err, sizeof(err), &wrote, &at) == -EINVAL &&
              strstr(err, "record"));
    free(img);
    close(fd);
}

int main(void)
{
    test_spool();
    test_stream();
    test_unknown_records();
    test_bad_framing();
    test_memory();
    test_vcpu_records();
    memset(&fk, 0, sizeof(fk));
    test_modules();
    test_vm_assist();
    memset(&fk, 0, sizeof(fk));
    test_module_bad_bodies();
    test_vmsave();
    return failures ? 1 : 0;
}
