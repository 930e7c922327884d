/* A whole domain to and from a save image (vmsave.h). */
#include "domus/hv_save.h"
#include "domus/kvm.h"
#include "domus/recbuf.h"
#include "domus/util.h"
#include "domus/vmlazy.h"
#include "domus/vmsave.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const struct vm_state_ops vm_kvm_state_ops = {
    kvm_vcpu_save,       kvm_vcpu_load,     kvm_clock_save,     kvm_clock_load,
    kvm_dirty_log_start, kvm_dirty_log_get, kvm_dirty_log_stop,
};

static int save_vcpus(struct domain *d, struct simg_writer *w,
                      const struct vm_state_ops *ops, char *err, size_t errlen)
{
    struct simg_vcpu *s = malloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    int rc = 0;
    for (unsigned i = 0; i < d->nr_vcpus && !rc; i++) {
        memset(s, 0, sizeof(*s));
        rc = ops->vcpu_save(&d->vcpus[i], s);
        if (rc)
            dfmt(err, errlen, "reading vCPU %u's state: %s", i, strerror(-rc));
        else if ((rc = simg_write_vcpu(w, i, s)))
            dfmt(err, errlen, "writing the image: %s", strerror(-rc));
    }
    free(s);
    return rc;
}

static int save_modules(struct domain *d, struct simg_writer *w, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < hv_nr_modules && !rc; i++) {
        struct recbuf rb;
        rb_init(&rb);
        rc = hv_modules[i].save(d, &rb);
        if (!rc)
            rc = simg_write_record(w,
                                   hv_modules[i].rec_type |
                                       (hv_modules[i].optional ? SIMG_REC_OPTIONAL : 0),
                                   rb.data, rb.len);
        if (rc)
            dfmt(err, errlen, "the %s record: %s", hv_modules[i].name, strerror(-rc));
        rb_free(&rb);
    }
    return rc;
}

int vm_save_image(struct domain *d, struct simg_writer *w, const char *config,
                  const struct vm_state_ops *ops, char *err, size_t errlen)
{
    int rc = simg_write_header(w, config);
    if (!rc && (rc = simg_write_memory(w, &d->mem)))
        dfmt(err, errlen, "writing the memory: %s", strerror(-rc));
    else if (rc)
        dfmt(err, errlen, "writing the header: %s", strerror(-rc));
    return rc ?: vm_save_state(d, w, ops, err, errlen);
}

int vm_save_state(struct domain *d, struct simg_writer *w, const struct vm_state_ops *ops,
                  char *err, size_t errlen)
{
    struct simg_clock c;
    int rc = 0;
    if ((rc = ops->clock_save(d, &c)))
        dfmt(err, errlen, "reading the clock: %s", strerror(-rc));
    if (!rc && (rc = simg_write_clock(w, &c)))
        dfmt(err, errlen, "writing the image: %s", strerror(-rc));
    rc = rc ?: save_vcpus(d, w, ops, err, errlen);
    rc = rc ?: save_modules(d, w, err, errlen);
    if (!rc && (rc = simg_write_end(w)))
        dfmt(err, errlen, "writing the image: %s", strerror(-rc));
    return rc;
}

int vm_restore_header(struct simg_reader *r, char **config)
{
    return simg_read_header(r, config);
}

/* What a restore holds until the image is verified. */
struct staged {
    struct domain *d;
    struct vm_lazy *lz; /* a lazy restore: page data indexed, not loaded */
    bool postcopy;      /* with lz: a post-copy migration's stream */
    struct simg_vcpu *vcpus;
    struct simg_clock clock;
    bool have_clock;
    struct {
        uint8_t *body;
        size_t len;
        bool have;
    } mod[16];
};

static int st_pages(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    struct staged *s = ctx;
    if (rec->loaded) /* read straight into guest memory */
        return 0;
    if (s->lz)
        return vm_lazy_index(s->lz, rec, err, errlen);
    return simg_load_pages(&s->d->mem, rec->body, rec->len, err, errlen);
}

/* Post-copy (a migration's stream): the pages the source still holds. */
static int st_postcopy(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    struct staged *s = ctx;
    if (!s->lz || !s->postcopy) {
        dfmt(err, errlen, "a post-copy record outside a post-copy migration");
        return -EINVAL;
    }
    return vm_lazy_postcopy_set(s->lz, rec, err, errlen);
}

static int st_vcpu(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    struct staged *s = ctx;
    return simg_load_vcpu_record(s->vcpus, s->d->nr_vcpus, rec, err, errlen);
}

static int st_clock(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    struct staged *s = ctx;
    if (s->have_clock) {
        dfmt(err, errlen, "twice");
        return -EINVAL;
    }
    s->have_clock = true;
    return simg_load_clock(&s->clock, rec, err, errlen);
}

static int st_module(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    struct staged *s = ctx;
    for (size_t i = 0; i < hv_nr_modules; i++) {
        if (hv_modules[i].rec_type != (rec->type & ~SIMG_REC_OPTIONAL))
            continue;
        if (s->mod[i].have) {
            dfmt(err, errlen, "twice");
            return -EINVAL;
        }
        s->mod[i].body = malloc(rec->len ? rec->len : 1);
        if (!s->mod[i].body)
            return -ENOMEM;
        memcpy(s->mod[i].body, rec->body, rec->len);
        s->mod[i].len = rec->len;
        s->mod[i].have = true;
        return 0;
    }
    return -EINVAL;
}

static const struct simg_handler handlers[] = {
    {SIMG_REC_PAGE_DATA, st_pages},   {SIMG_REC_VCPU_REGS, st_vcpu},
    {SIMG_REC_VCPU_SREGS, st_vcpu},   {SIMG_REC_VCPU_XSAVE, st_vcpu},
    {SIMG_REC_VCPU_XCRS, st_vcpu},    {SIMG_REC_VCPU_MSRS, st_vcpu},
    {SIMG_REC_VCPU_LAPIC, st_vcpu},   {SIMG_REC_VCPU_EVENTS, st_vcpu},
    {SIMG_REC_VCPU_MPSTATE, st_vcpu}, {SIMG_REC_VCPU_TSC, st_vcpu},
    {SIMG_REC_CLOCK, st_clock},       {SIMG_REC_HVM_PARAMS, st_module},
    {SIMG_REC_HV_EVTCHN, st_module},  {SIMG_REC_HV_GNTTAB, st_module},
    {SIMG_REC_HV_AREAS, st_module},   {SIMG_REC_HV_TIMERS, st_module},
    {SIMG_REC_HV_MEMRES, st_module},  {SIMG_REC_POSTCOPY, st_postcopy},
    {SIMG_REC_HV_VMASST, st_module},
};

/* Everything present: the clock, every vCPU's records, every module's. */
static int check_complete(struct staged *s, char *err, size_t errlen)
{
    if (!s->have_clock) {
        dfmt(err, errlen, "truncated image: no clock record");
        return -EINVAL;
    }
    for (size_t i = 0; i < hv_nr_modules; i++)
        if (!s->mod[i].have && !hv_modules[i].optional) {
            dfmt(err, errlen, "truncated image: no %s record", hv_modules[i].name);
            return -EINVAL;
        }
    return simg_vcpus_complete(s->vcpus, s->d->nr_vcpus, err, errlen);
}

static int apply(struct staged *s, const struct vm_state_ops *ops, uint32_t modules,
                 char *err, size_t errlen)
{
    struct domain *d = s->d;
    int rc = ops->clock_load(d, &s->clock);
    if (rc)
        dfmt(err, errlen, "setting the clock: %s", strerror(-rc));
    for (unsigned i = 0; i < d->nr_vcpus && !rc; i++)
        if ((rc = ops->vcpu_load(&d->vcpus[i], &s->vcpus[i])))
            dfmt(err, errlen, "setting vCPU %u's state: %s", i, strerror(-rc));
    for (size_t i = 0; i < hv_nr_modules && !rc; i++) {
        char merr[160] = "";
        int (*fn)(struct domain *, const void *, size_t, char *, size_t) =
            modules & (1u << i) ? hv_modules[i].load : hv_modules[i].resume;
        if (!fn || !s->mod[i].have) /* an optional record left out */
            continue;
        rc = fn(d, s->mod[i].body, s->mod[i].len, merr, sizeof(merr));
        if (rc)
            dfmt(err, errlen, "%s record: %s", hv_modules[i].name,
                 merr[0] ? merr : strerror(-rc));
    }
    return rc;
}

int vm_restore_body(struct domain *d, struct simg_reader *r,
                    const struct vm_state_ops *ops)
{
    return vm_restore_body_modules(d, r, ops, VM_RESTORE_ALL_MODULES);
}

uint32_t vm_restore_resumed_modules(void)
{
    uint32_t m = 0;

    for (size_t i = 0; i < hv_nr_modules; i++)
        if (hv_modules[i].rec_type == SIMG_REC_HVM_PARAMS)
            m |= 1u << i;
    return m;
}

static int restore_body(struct domain *d, struct simg_reader *r,
                        const struct vm_state_ops *ops, uint32_t modules,
                        const struct vm_lazy_start *ls);

int vm_restore_body_modules(struct domain *d, struct simg_reader *r,
                            const struct vm_state_ops *ops, uint32_t modules)
{
    return restore_body(d, r, ops, modules, NULL);
}

int vm_restore_body_lazy(struct domain *d, struct simg_reader *r,
                         const struct vm_state_ops *ops, uint32_t modules,
                         const struct vm_lazy_start *ls)
{
    if (!r->index_only || !ls->lz)
        return -EINVAL;
    return restore_body(d, r, ops, modules, ls);
}

int vm_restore_body_postcopy(struct domain *d, struct simg_reader *r,
                             const struct vm_state_ops *ops, uint32_t modules,
                             const struct vm_lazy_start *ls)
{
    if (r->index_only || !ls->lz || !ls->postcopy)
        return -EINVAL;
    return restore_body(d, r, ops, modules, ls);
}

static int restore_body(struct domain *d, struct simg_reader *r,
                        const struct vm_state_ops *ops, uint32_t modules,
                        const struct vm_lazy_start *ls)
{
    _Static_assert(
        sizeof(((struct staged *)0)->mod) / sizeof(((struct staged *)0)->mod[0]) >= 5,
        "a slot per module");
    struct staged *s = calloc(1, sizeof(*s));
    int rc = -ENOMEM;
    if (!s || hv_nr_modules > ARRAY_SIZE(s->mod))
        goto out;
    s->d = d;
    s->lz = ls ? ls->lz : NULL;
    s->postcopy = ls && ls->postcopy;
    s->vcpus = calloc(d->nr_vcpus ? d->nr_vcpus : 1, sizeof(*s->vcpus));
    if (!s->vcpus)
        goto out;
    rc = simg_read_all(r, handlers, ARRAY_SIZE(handlers), s);
    r->end_ns = drealtime_ns();
    if (!rc)
        rc = check_complete(s, r->err, sizeof(r->err));
    if (!rc && ls) /* KVM may touch guest memory from here on */
        rc = ls->serve(ls->ctx, r->err, sizeof(r->err));
    if (!rc)
        rc = apply(s, ops, modules, r->err, sizeof(r->err));
out:
    if (s) {
        for (size_t i = 0; i < ARRAY_SIZE(s->mod); i++)
            free(s->mod[i].body);
        free(s->vcpus);
    }
    free(s);
    return rc;
}
