/* libFuzzer target: the save image reader on arbitrary bytes, as a restore
 * reads it: the header, then every record through the handlers a restore
 * uses (page data into a 32 MiB guest, the vCPU and clock records for two
 * vCPUs, each hypervisor module's load into a fresh domain).  A read must
 * end in success or in -errno with a message in r.err (a handler's own
 * message included); the target aborts otherwise.
 *
 * Build: make build/fuzz/saveimg_fuzz   (also `make fuzz`)
 * Run:   build/fuzz/saveimg_fuzz -max_total_time=30 build/fuzz/corpus-saveimg
 *        (tests/proto/saveimg-fuzz.sh seeds the corpus with valid images)
 * SAVEIMG_FUZZ_SAY=1 prints each input's outcome (accepted, or the error). */
#include "domus/hv.h"
#include "domus/hv_save.h"
#include "domus/saveimg.h"
#include "domus/vmlazy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int f_dom(struct domain *d, uint64_t x)
{
    (void)d, (void)x;
    return 0;
}
static int f_vcpu(struct vcpu *v, uint64_t x)
{
    (void)v, (void)x;
    return 0;
}
static int f_vec(struct vcpu *v, uint8_t x)
{
    (void)v, (void)x;
    return 0;
}
static int f_gvec(struct domain *d, uint8_t x)
{
    (void)d, (void)x;
    return 0;
}
static int f_timer(struct vcpu *v, uint32_t p, uint64_t ns)
{
    (void)v, (void)p, (void)ns;
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
    return 0;
}
static int f_fd(struct domain *d, uint32_t p, int fd)
{
    (void)d, (void)p, (void)fd;
    return 0;
}
static int f_rm(struct domain *d, uint32_t p)
{
    (void)d, (void)p;
    return 0;
}
static int f_extra(struct domain *d, unsigned i, uint64_t gpa, void *h)
{
    (void)d, (void)i, (void)gpa, (void)h;
    return 0;
}
static int f_translate(struct vcpu *v, uint64_t gva, uint64_t *gpa)
{
    (void)v;
    *gpa = gva;
    return 0;
}

static const struct hv_ops ops = {
    .set_shared_info = f_dom,
    .set_vcpu_info = f_vcpu,
    .set_vcpu_time_info = f_vcpu,
    .set_runstate = f_vcpu,
    .set_upcall_vector = f_vec,
    .set_global_upcall_vector = f_gvec,
    .set_timer = f_timer,
    .deliver = f_deliver,
    .route_local = f_local,
    .route_eventfd = f_fd,
    .route_remove = f_rm,
    .map_extra = f_extra,
    .translate = f_translate,
};

struct ctx {
    struct domain *d;
    struct vm_lazy *lz; /* a post-copy destination's state, for record 18 */
    struct simg_vcpu v[2];
    struct simg_clock clock;
};

static int h_pages(void *c, const struct simg_rec *rec, char *err, size_t errlen)
{
    if (rec->loaded) /* read straight into guest memory (pages_to) */
        return 0;
    return simg_load_pages(&((struct ctx *)c)->d->mem, rec->body, rec->len, err, errlen);
}
static int h_vcpu(void *c, const struct simg_rec *rec, char *err, size_t errlen)
{
    return simg_load_vcpu_record(((struct ctx *)c)->v, 2, rec, err, errlen);
}
static int h_clock(void *c, const struct simg_rec *rec, char *err, size_t errlen)
{
    return simg_load_clock(&((struct ctx *)c)->clock, rec, err, errlen);
}
static int h_module(void *c, const struct simg_rec *rec, char *err, size_t errlen)
{
    for (size_t i = 0; i < hv_nr_modules; i++) {
        if (hv_modules[i].rec_type != (rec->type & ~SIMG_REC_OPTIONAL))
            continue;
        /* what a restore after a suspend takes from it, then the whole load */
        if (hv_modules[i].resume &&
            hv_modules[i].resume(((struct ctx *)c)->d, rec->body, rec->len, err, errlen))
            return -EINVAL;
        evtchn_resume_free(((struct ctx *)c)->d);
        return hv_modules[i].load(((struct ctx *)c)->d, rec->body, rec->len, err, errlen);
    }
    abort(); /* a handler without a module */
}

/* The post-copy record (a migration's list of the pages the source still
 * holds) into a post-copy destination's lazy state, as domus-vm
 * --postcopy takes it. */
static int h_postcopy(void *c, const struct simg_rec *rec, char *err, size_t errlen)
{
    return vm_lazy_postcopy_set(((struct ctx *)c)->lz, rec, err, errlen);
}

static const struct simg_handler handlers[] = {
    {SIMG_REC_PAGE_DATA, h_pages},   {SIMG_REC_VCPU_REGS, h_vcpu},
    {SIMG_REC_VCPU_SREGS, h_vcpu},   {SIMG_REC_VCPU_XSAVE, h_vcpu},
    {SIMG_REC_VCPU_XCRS, h_vcpu},    {SIMG_REC_VCPU_MSRS, h_vcpu},
    {SIMG_REC_VCPU_LAPIC, h_vcpu},   {SIMG_REC_VCPU_EVENTS, h_vcpu},
    {SIMG_REC_VCPU_MPSTATE, h_vcpu}, {SIMG_REC_VCPU_TSC, h_vcpu},
    {SIMG_REC_CLOCK, h_clock},       {SIMG_REC_HVM_PARAMS, h_module},
    {SIMG_REC_HV_EVTCHN, h_module},  {SIMG_REC_HV_GNTTAB, h_module},
    {SIMG_REC_HV_AREAS, h_module},   {SIMG_REC_HV_TIMERS, h_module},
    {SIMG_REC_HV_MEMRES, h_module},  {SIMG_REC_POSTCOPY, h_postcopy},
    {SIMG_REC_HV_VMASST, h_module},
};

/* A lazy restore's index pass (vmlazy.h): page data indexed, not read. */
static uint64_t lazy_index[(GMEM_MIN_RAM >> 12) + GMEM_SPECIAL_PAGES];
static int h_index(void *c, const struct simg_rec *rec, char *err, size_t errlen)
{
    return simg_index_pages(&((struct ctx *)c)->d->mem, rec, lazy_index, err, errlen);
}

static void check(int rc, const struct simg_reader *r)
{
    if (rc > 0 || (rc < 0 && !r->err[0])) {
        fprintf(stderr, "read returned %d with message '%s'\n", rc, r->err);
        abort();
    }
}

/* Live migration's receiver spools the same bytes from a connection
 * (simg_spool): it either copies a prefix ending at an end record and
 * reads no further, or fails saying why. */
static void spool(const uint8_t *data, size_t size)
{
    static int in = -1, out = -1;
    char err[160] = "";

    if (in < 0 && ((in = memfd_create("in", MFD_CLOEXEC)) < 0 ||
                   (out = memfd_create("out", MFD_CLOEXEC)) < 0))
        abort();
    if (ftruncate(in, 0) || ftruncate(out, 0) ||
        pwrite(in, data, size, 0) != (ssize_t)size || lseek(in, 0, SEEK_SET) ||
        lseek(out, 0, SEEK_SET))
        abort();
    int rc = simg_spool(in, out, err, sizeof(err));
    off_t got = lseek(in, 0, SEEK_CUR), put = lseek(out, 0, SEEK_END);
    if (rc > 0 || (rc < 0 && !err[0]) || (!rc && (got != put || got > (off_t)size))) {
        fprintf(stderr, "spool returned %d ('%s'), read %lld, wrote %lld of %zu\n", rc,
                err, (long long)got, (long long)put, size);
        abort();
    }
}

/* An eager restore's reader: the same bytes from a file, page data read
 * straight into guest memory (pages_to). */
static void direct(const uint8_t *data, size_t size, struct ctx *c)
{
    static int fd = -1;
    struct simg_reader r;
    char *cfg = NULL;
    int rc;

    if ((fd < 0 && (fd = memfd_create("direct", MFD_CLOEXEC)) < 0) || ftruncate(fd, 0) ||
        pwrite(fd, data, size, 0) != (ssize_t)size || lseek(fd, 0, SEEK_SET))
        abort();
    simg_reader_init_fd(&r, fd);
    r.pages_to = &c->d->mem;
    rc = simg_read_header(&r, &cfg);
    check(rc, &r);
    if (!rc) {
        rc = simg_read_all(&r, handlers, sizeof(handlers) / sizeof(handlers[0]), c);
        check(rc, &r);
    }
    free(cfg);
    simg_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spool(data, size);
    static struct ctx c;
    static struct domain d;
    memset(&c, 0, sizeof(c));
    domain_init(&d, 3, "fuzz", 2, &ops);
    if (gmem_init(&d.mem, GMEM_MIN_RAM) < 0 || memop_init(&d) < 0)
        abort();
    c.d = &d;
    if (!(c.lz = vm_lazy_new(&d.mem)))
        abort();
    struct simg_reader r;
    simg_reader_init_mem(&r, data, size);
    char *cfg = NULL;
    int rc = simg_read_header(&r, &cfg);
    check(rc, &r);
    if (!rc) {
        rc = simg_read_all(&r, handlers, sizeof(handlers) / sizeof(handlers[0]), &c);
        check(rc, &r);
    }
    if (getenv("SAVEIMG_FUZZ_SAY")) /* the seeds' check: what became of each */
        fprintf(stderr, "saveimg: %s\n", rc ? r.err : "accepted");
    free(cfg);
    simg_reader_free(&r);
    vm_lazy_free(c.lz);
    memset(&c, 0, sizeof(c));
    c.d = &d;
    if (!(c.lz = vm_lazy_new(&d.mem)))
        abort();
    direct(data, size, &c);
    vm_lazy_free(c.lz);
    c.lz = NULL;
    /* The same bytes in index mode, page data through the lazy index. */
    simg_reader_init_mem(&r, data, size);
    r.index_only = true;
    cfg = NULL;
    rc = simg_read_header(&r, &cfg);
    check(rc, &r);
    struct simg_rec rec;
    while (!rc && (rc = simg_read_record(&r, &rec)) == 1) {
        char err[128] = "";
        rc = 0;
        if ((rec.type & ~SIMG_REC_OPTIONAL) == SIMG_REC_PAGE_DATA &&
            h_index(&c, &rec, err, sizeof(err)) < 0) {
            if (!err[0])
                abort();
            rc = -EINVAL;
        }
    }
    if (rc > 0 || (rc < 0 && rc != -EINVAL && !r.err[0]))
        abort(); /* -EINVAL: the reader's message or the handler's */
    free(cfg);
    simg_reader_free(&r);
    memop_destroy(&d);
    gmem_destroy(&d.mem);
    return 0;
}
