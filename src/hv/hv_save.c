/* Save and load of the hypervisor modules' state (hv_save.h). */
#include "domus/hv_save.h"
#include "domus/saveimg.h"
#include "domus/util.h"

#include <xen/vcpu.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BAD(...)                                                                         \
    do {                                                                                 \
        dfmt(err, errlen, __VA_ARGS__);                                                  \
        return -EINVAL;                                                                  \
    } while (0)

/* ---- HVM params ---- */

int hv_save_params(struct domain *d, struct recbuf *rb)
{
    pthread_mutex_lock(&d->lock);
    uint32_t n = 0;
    for (unsigned i = 0; i < HVM_NR_PARAMS; i++)
        n += d->hvm_params[i] != 0;
    rb_put_u32(rb, n);
    rb_put_u32(rb, 0);
    for (unsigned i = 0; i < HVM_NR_PARAMS; i++) {
        if (!d->hvm_params[i])
            continue;
        rb_put_u32(rb, i);
        rb_put_u32(rb, 0);
        rb_put_u64(rb, d->hvm_params[i]);
    }
    pthread_mutex_unlock(&d->lock);
    return rb->err;
}

static int check_params(struct recrd *rd, uint64_t *val, char *err, size_t errlen)
{
    uint32_t n = rd_u32(rd), res = rd_u32(rd);
    if (rd->err || res || n > HVM_NR_PARAMS)
        BAD("%u params", n);
    int64_t last = -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = rd_u32(rd), pad = rd_u32(rd);
        uint64_t v = rd_u64(rd);
        if (rd->err || pad || idx >= HVM_NR_PARAMS || (int64_t)idx <= last)
            BAD("param %u out of range or order", idx);
        val[idx] = v;
        last = idx;
    }
    if (rd_done(rd))
        BAD("%zu bytes for %u params", rd->len, n);
    return 0;
}

int hv_load_params(struct domain *d, const void *body, size_t len, char *err,
                   size_t errlen)
{
    uint64_t val[HVM_NR_PARAMS] = {0};
    struct recrd rd;
    rd_init(&rd, body, len);
    int rc = check_params(&rd, val, err, errlen);
    if (rc)
        return rc;
    uint64_t cb = val[HVM_PARAM_CALLBACK_IRQ];
    if (cb >> 56 == HVM_PARAM_CALLBACK_TYPE_VECTOR &&
        (rc = d->ops->set_global_upcall_vector(d, (uint8_t)cb)) < 0)
        return rc;
    pthread_mutex_lock(&d->lock);
    memcpy(d->hvm_params, val, sizeof(val));
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* ---- event channels ---- */

int hv_save_evtchn(struct domain *d, struct recbuf *rb)
{
    pthread_mutex_lock(&d->lock);
    uint32_t n = 0;
    for (uint32_t p = 1; p < HV_NR_PORTS; p++)
        n += d->ports[p].state != EVS_FREE;
    rb_put_u32(rb, n);
    rb_put_u32(rb, 0);
    for (uint32_t p = 1; p < HV_NR_PORTS; p++) {
        const struct evtchn *e = &d->ports[p];
        if (e->state == EVS_FREE)
            continue;
        uint32_t f[] = {p, e->state, e->vcpu, e->remote_dom, e->remote_port, e->virq};
        for (unsigned i = 0; i < ARRAY_SIZE(f); i++)
            rb_put_u32(rb, f[i]);
    }
    pthread_mutex_unlock(&d->lock);
    return rb->err;
}

/* One port as read, before it is checked against the others. */
static int read_port(struct domain *d, struct recrd *rd, struct evtchn *t, int64_t *last,
                     char *err, size_t errlen)
{
    uint32_t p = rd_u32(rd), st = rd_u32(rd), vcpu = rd_u32(rd), rdom = rd_u32(rd);
    uint32_t rport = rd_u32(rd), virq = rd_u32(rd);
    if (rd->err)
        BAD("short port table");
    if (p == 0 || p >= HV_NR_PORTS || (int64_t)p <= *last)
        BAD("port %u out of range or order", p);
    if (st < EVS_RESERVED || st > EVS_IPI || vcpu >= d->nr_vcpus || rdom > DOMID_MASK ||
        rport >= HV_NR_PORTS || virq >= NR_VIRQS)
        BAD("port %u: state %u, vcpu %u, remote %u:%u, virq %u", p, st, vcpu, rdom, rport,
            virq);
    *last = p;
    struct evtchn *e = &t[p];
    *e = (struct evtchn){st, vcpu, (domid_t)rdom, rport, virq, -1};
    if (st == EVS_INTERDOMAIN && rdom == 0) /* a back end's: it binds again */
        *e = (struct evtchn){EVS_UNBOUND, vcpu, 0, 0, 0, -1};
    return 0;
}

/* Loopback pairs must point at each other. */
static int check_pairs(struct domain *d, const struct evtchn *t, char *err, size_t errlen)
{
    for (uint32_t p = 1; p < HV_NR_PORTS; p++) {
        const struct evtchn *e = &t[p];
        if (e->state != EVS_INTERDOMAIN)
            continue;
        const struct evtchn *r = &t[e->remote_port];
        if (e->remote_dom != d->domid || r->state != EVS_INTERDOMAIN ||
            r->remote_port != p)
            BAD("port %u: interdomain to %u:%u, which is not its peer", p, e->remote_dom,
                e->remote_port);
    }
    return 0;
}

static int check_evtchn(struct domain *d, struct recrd *rd, struct evtchn *t, char *err,
                        size_t errlen)
{
    uint32_t n = rd_u32(rd), res = rd_u32(rd);
    if (rd->err || res || n >= HV_NR_PORTS)
        BAD("%u ports", n);
    int64_t last = 0;
    for (uint32_t i = 0; i < n; i++) {
        int rc = read_port(d, rd, t, &last, err, errlen);
        if (rc)
            return rc;
    }
    if (rd_done(rd))
        BAD("%zu bytes for %u ports", rd->len, n);
    return check_pairs(d, t, err, errlen);
}

static bool ports_free(const struct domain *d)
{
    for (uint32_t p = 1; p < HV_NR_PORTS; p++)
        if (d->ports[p].state != EVS_FREE)
            return false;
    return true;
}

int hv_load_evtchn(struct domain *d, const void *body, size_t len, char *err,
                   size_t errlen)
{
    struct evtchn *t = calloc(HV_NR_PORTS, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (uint32_t p = 0; p < HV_NR_PORTS; p++)
        t[p].backend_fd = -1;
    struct recrd rd;
    rd_init(&rd, body, len);
    int rc = check_evtchn(d, &rd, t, err, errlen);
    if (rc)
        goto out;
    pthread_mutex_lock(&d->lock);
    if (!ports_free(d)) {
        dfmt(err, errlen, "the domain has ports bound already");
        rc = -EBUSY;
    }
    for (uint32_t p = 1; p < HV_NR_PORTS && !rc; p++)
        d->ports[p] = t[p];
    for (uint32_t p = 1; p < HV_NR_PORTS && !rc; p++)
        if (d->ports[p].state != EVS_FREE)
            rc = evtchn_route(d, p);
    pthread_mutex_unlock(&d->lock);
out:
    free(t);
    return rc;
}

int hv_resume_evtchn(struct domain *d, const void *body, size_t len, char *err,
                     size_t errlen)
{
    struct evtchn *t = calloc(HV_NR_PORTS, sizeof(*t));
    struct recrd rd;
    int rc;

    if (!t)
        return -ENOMEM;
    rd_init(&rd, body, len);
    rc = check_evtchn(d, &rd, t, err, errlen);
    if (!rc)
        rc = evtchn_resume_set(d, t);
    free(t);
    return rc;
}

/* ---- grant table ---- */

int hv_save_gnttab(struct domain *d, struct recbuf *rb)
{
    pthread_mutex_lock(&d->lock);
    unsigned n = d->gnt_nr_frames;
    rb_put_u32(rb, d->gnt_version);
    rb_put_u32(rb, n);
    for (unsigned i = 0; i < n; i++)
        rb_put_u64(rb, d->gnt_frame_gpa[i]);
    static const uint8_t zero[DOMUS_PAGE_SIZE];
    for (unsigned i = 0; i < n; i++) {
        const void *f = d->gnt_frame_gpa[i]
                            ? gmem_ptr(&d->mem, d->gnt_frame_gpa[i], DOMUS_PAGE_SIZE)
                            : NULL;
        rb_put_bytes(rb, f ? f : zero, DOMUS_PAGE_SIZE);
    }
    pthread_mutex_unlock(&d->lock);
    return rb->err;
}

static int check_gnttab(struct recrd *rd, uint64_t *gpa, unsigned *n, char *err,
                        size_t errlen)
{
    uint32_t version = rd_u32(rd), nr = rd_u32(rd);
    if (rd->err || version != 1 || nr > HV_GNTTAB_MAX_FRAMES || nr > GMEM_EXTRA_PAGES)
        BAD("grant table version %u with %u frames", version, nr);
    for (uint32_t i = 0; i < nr; i++) {
        gpa[i] = rd_u64(rd);
        if (gpa[i] & (DOMUS_PAGE_SIZE - 1))
            BAD("grant frame %u at %#llx", i, (unsigned long long)gpa[i]);
    }
    rd_bytes(rd, (size_t)nr * DOMUS_PAGE_SIZE);
    if (rd_done(rd))
        BAD("%zu bytes for %u grant frames", rd->len, nr);
    *n = nr;
    return 0;
}

int hv_load_gnttab(struct domain *d, const void *body, size_t len, char *err,
                   size_t errlen)
{
    uint64_t gpa[HV_GNTTAB_MAX_FRAMES];
    unsigned n = 0;
    struct recrd rd;
    rd_init(&rd, body, len);
    int rc = check_gnttab(&rd, gpa, &n, err, errlen);
    const uint8_t *frames = (const uint8_t *)body + 8 + (size_t)n * 8;
    for (unsigned i = 0; i < n && !rc; i++) {
        if (!gpa[i])
            continue;
        rc = gnttab_set_frame(d, i, gpa[i]);
        void *f = rc ? NULL : gmem_ptr(&d->mem, gpa[i], DOMUS_PAGE_SIZE);
        if (!f) {
            dfmt(err, errlen, "grant frame %u cannot be placed at %#llx", i,
                 (unsigned long long)gpa[i]);
            rc = rc ? rc : -EINVAL;
            break;
        }
        memcpy(f, frames + (size_t)i * DOMUS_PAGE_SIZE, DOMUS_PAGE_SIZE);
    }
    if (!rc) {
        pthread_mutex_lock(&d->lock);
        if (n > d->gnt_nr_frames)
            d->gnt_nr_frames = n;
        pthread_mutex_unlock(&d->lock);
    }
    return rc;
}

/* ---- guest-registered areas ---- */

int hv_save_areas(struct domain *d, struct recbuf *rb)
{
    pthread_mutex_lock(&d->lock);
    rb_put_u64(rb, d->shared_info_gpa);
    rb_put_u32(rb, d->nr_vcpus);
    rb_put_u32(rb, 0);
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        const struct vcpu *v = &d->vcpus[i];
        rb_put_u64(rb, v->vcpu_info_gpa);
        rb_put_u64(rb, v->time_info_gpa);
        rb_put_u64(rb, v->runstate_gpa);
        rb_put_u32(rb, v->upcall_vector);
        rb_put_u32(rb, 0);
    }
    pthread_mutex_unlock(&d->lock);
    return rb->err;
}

struct areas {
    uint64_t shinfo, info[HV_MAX_VCPUS], time[HV_MAX_VCPUS], runstate[HV_MAX_VCPUS];
    uint8_t vector[HV_MAX_VCPUS];
};

static bool area_ok(struct domain *d, uint64_t gpa, size_t size)
{
    return !gpa || gmem_ptr(&d->mem, gpa, size);
}

static int check_areas(struct domain *d, struct recrd *rd, struct areas *a, char *err,
                       size_t errlen)
{
    a->shinfo = rd_u64(rd);
    uint32_t n = rd_u32(rd), res = rd_u32(rd);
    if (rd->err || res || n != d->nr_vcpus)
        BAD("areas for %u vCPUs, the domain has %u", n, d->nr_vcpus);
    if ((a->shinfo & (DOMUS_PAGE_SIZE - 1)) || !area_ok(d, a->shinfo, DOMUS_PAGE_SIZE))
        BAD("shared_info at %#llx", (unsigned long long)a->shinfo);
    for (uint32_t i = 0; i < n; i++) {
        a->info[i] = rd_u64(rd);
        a->time[i] = rd_u64(rd);
        a->runstate[i] = rd_u64(rd);
        uint32_t vec = rd_u32(rd), pad = rd_u32(rd);
        if (rd->err || pad || vec > 0xff || (vec && vec < 0x10) ||
            !area_ok(d, a->info[i], sizeof(struct vcpu_info)) ||
            !area_ok(d, a->time[i], sizeof(struct vcpu_time_info)) ||
            !area_ok(d, a->runstate[i], sizeof(struct vcpu_runstate_info)))
            BAD("vCPU %u: an area outside the guest's memory or vector %u", i, vec);
        a->vector[i] = (uint8_t)vec;
    }
    if (rd_done(rd))
        BAD("%zu bytes for %u vCPUs' areas", rd->len, n);
    return 0;
}

static int load_vcpu_areas(struct vcpu *v, const struct areas *a)
{
    const struct hv_ops *ops = v->d->ops;
    unsigned i = v->id;
    int rc = 0;
    if (a->info[i] && !(rc = ops->set_vcpu_info(v, a->info[i])))
        v->vcpu_info_gpa = a->info[i];
    if (!rc && a->time[i] && !(rc = ops->set_vcpu_time_info(v, a->time[i])))
        v->time_info_gpa = a->time[i];
    if (!rc && a->runstate[i] && !(rc = ops->set_runstate(v, a->runstate[i])))
        v->runstate_gpa = a->runstate[i];
    if (!rc && a->vector[i] && !(rc = ops->set_upcall_vector(v, a->vector[i])))
        v->upcall_vector = a->vector[i];
    return rc;
}

int hv_load_areas(struct domain *d, const void *body, size_t len, char *err,
                  size_t errlen)
{
    struct areas *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    struct recrd rd;
    rd_init(&rd, body, len);
    int rc = check_areas(d, &rd, a, err, errlen);
    /* shared_info first: KVM wants it before the vCPUs' areas. */
    if (!rc && a->shinfo &&
        !(rc = d->ops->set_shared_info(d, a->shinfo >> DOMUS_PAGE_SHIFT)))
        d->shared_info_gpa = a->shinfo;
    for (unsigned i = 0; i < d->nr_vcpus && !rc; i++)
        rc = load_vcpu_areas(&d->vcpus[i], a);
    free(a);
    return rc;
}

/* ---- vm_assist ---- */

int hv_save_vmassist(struct domain *d, struct recbuf *rb)
{
    pthread_mutex_lock(&d->lock);
    rb_put_u64(rb, d->vm_assist);
    pthread_mutex_unlock(&d->lock);
    return rb->err;
}

int hv_load_vmassist(struct domain *d, const void *body, size_t len, char *err,
                     size_t errlen)
{
    const uint64_t known = 1ULL << VMASST_TYPE_runstate_update_flag;
    struct recrd rd;

    rd_init(&rd, body, len);
    uint64_t bits = rd_u64(&rd);
    if (rd.err || rd_done(&rd) || (bits & ~known))
        BAD("vm_assist %#llx (%zu bytes)", (unsigned long long)bits, len);
    if (!bits)
        return 0;
    return hv_vm_assist(d, VMASST_CMD_enable, VMASST_TYPE_runstate_update_flag);
}

/* ---- timers ---- */

int hv_save_timers(struct domain *d, struct recbuf *rb)
{
    rb_put_u32(rb, d->nr_vcpus);
    rb_put_u32(rb, 0);
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        const struct vcpu *v = &d->vcpus[i];
        rb_put_u32(rb, v->timer_port);
        rb_put_u32(rb, 0);
        rb_put_u64(rb, v->periodic_ns);
        rb_put_u64(rb, v->singleshot_ns);
    }
    return rb->err;
}

int hv_load_timers(struct domain *d, const void *body, size_t len, char *err,
                   size_t errlen)
{
    struct recrd rd;
    rd_init(&rd, body, len);
    uint32_t n = rd_u32(&rd), res = rd_u32(&rd);
    if (rd.err || res || n != d->nr_vcpus)
        BAD("timers for %u vCPUs, the domain has %u", n, d->nr_vcpus);
    struct {
        uint32_t port;
        uint64_t periodic, single;
    } t[HV_MAX_VCPUS];
    for (uint32_t i = 0; i < n; i++) {
        t[i].port = rd_u32(&rd);
        uint32_t pad = rd_u32(&rd);
        t[i].periodic = rd_u64(&rd);
        t[i].single = rd_u64(&rd);
        if (rd.err || pad || t[i].port >= HV_NR_PORTS)
            BAD("vCPU %u: timer port %u", i, t[i].port);
    }
    if (rd_done(&rd))
        BAD("%zu bytes for %u vCPUs' timers", len, n);
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        struct vcpu *v = &d->vcpus[i];
        v->timer_port = t[i].port;
        v->periodic_ns = t[i].periodic;
        v->singleshot_ns = t[i].single;
        if (t[i].port)
            rc = d->ops->set_timer(v, t[i].port, t[i].single);
    }
    return rc;
}

const struct hv_module hv_modules[] = {
    {SIMG_REC_HVM_PARAMS, "hvm params", hv_save_params, hv_load_params, NULL, false},
    {SIMG_REC_HV_GNTTAB, "grant table", hv_save_gnttab, hv_load_gnttab, NULL, false},
    {SIMG_REC_HV_EVTCHN, "event channels", hv_save_evtchn, hv_load_evtchn,
     hv_resume_evtchn, false},
    {SIMG_REC_HV_AREAS, "guest areas", hv_save_areas, hv_load_areas, NULL, false},
    {SIMG_REC_HV_TIMERS, "timers", hv_save_timers, hv_load_timers, NULL, false},
    {SIMG_REC_HV_MEMRES, "memory reservation", memop_save, memop_load, NULL, false},
    {SIMG_REC_HV_VMASST, "vm_assist", hv_save_vmassist, hv_load_vmassist,
     hv_load_vmassist, true},
};
const size_t hv_nr_modules = ARRAY_SIZE(hv_modules);
