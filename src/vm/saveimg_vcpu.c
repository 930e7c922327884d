/* The save image's vCPU and clock records (saveimg.h). */
#include "domus/recbuf.h"
#include "domus/saveimg.h"
#include "domus/util.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* The records whose body is u32 vcpu, u32 0, then one KVM struct. */
static const struct {
    uint32_t type;
    size_t off, size;
} raw[] = {
    {SIMG_REC_VCPU_REGS, offsetof(struct simg_vcpu, regs), sizeof(struct kvm_regs)},
    {SIMG_REC_VCPU_SREGS, offsetof(struct simg_vcpu, sregs), sizeof(struct kvm_sregs)},
    {SIMG_REC_VCPU_XSAVE, offsetof(struct simg_vcpu, xsave),
     sizeof(((struct simg_vcpu *)0)->xsave)},
    {SIMG_REC_VCPU_XCRS, offsetof(struct simg_vcpu, xcrs), sizeof(struct kvm_xcrs)},
    {SIMG_REC_VCPU_LAPIC, offsetof(struct simg_vcpu, lapic),
     sizeof(struct kvm_lapic_state)},
    {SIMG_REC_VCPU_EVENTS, offsetof(struct simg_vcpu, events),
     sizeof(struct kvm_vcpu_events)},
    {SIMG_REC_VCPU_MPSTATE, offsetof(struct simg_vcpu, mp_state),
     sizeof(struct kvm_mp_state)},
    {SIMG_REC_VCPU_TSC, offsetof(struct simg_vcpu, tsc_offset), sizeof(uint64_t)},
};

static int write_msrs(struct simg_writer *w, uint32_t id, const struct simg_vcpu *s)
{
    if (s->nr_msrs > SIMG_MAX_MSRS)
        return -E2BIG;
    struct recbuf rb;
    rb_init(&rb);
    rb_put_u32(&rb, id);
    rb_put_u32(&rb, s->nr_msrs);
    for (uint32_t i = 0; i < s->nr_msrs; i++) {
        rb_put_u32(&rb, s->msrs[i].index);
        rb_put_u32(&rb, 0);
        rb_put_u64(&rb, s->msrs[i].data);
    }
    int rc = rb.err ?: simg_write_record(w, SIMG_REC_VCPU_MSRS, rb.data, rb.len);
    rb_free(&rb);
    return rc;
}

int simg_write_vcpu(struct simg_writer *w, uint32_t id, const struct simg_vcpu *s)
{
    uint8_t head[8] = {0};
    for (int i = 0; i < 4; i++)
        head[i] = (uint8_t)(id >> (8 * i));
    int rc = 0;
    for (size_t i = 0; i < ARRAY_SIZE(raw) && !rc; i++)
        rc = simg_write_record2(w, raw[i].type, head, sizeof(head),
                                (const uint8_t *)s + raw[i].off, raw[i].size);
    return rc ?: write_msrs(w, id, s);
}

int simg_write_clock(struct simg_writer *w, const struct simg_clock *c)
{
    struct recbuf rb;
    rb_init(&rb);
    rb_put_u64(&rb, c->clock_ns);
    rb_put_u32(&rb, c->flags);
    rb_put_u32(&rb, c->tsc_khz);
    int rc = rb.err ?: simg_write_record(w, SIMG_REC_CLOCK, rb.data, rb.len);
    rb_free(&rb);
    return rc;
}

static int load_msrs(struct simg_vcpu *s, struct recrd *rd, char *err, size_t errlen)
{
    uint32_t n = rd_u32(rd);
    if (rd->err || n > SIMG_MAX_MSRS || rd->len != 8 + (size_t)n * 16) {
        dfmt(err, errlen, "%u MSRs in %zu bytes", n, rd->len);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = rd_u32(rd), pad = rd_u32(rd);
        uint64_t v = rd_u64(rd);
        if (pad) {
            dfmt(err, errlen, "MSR %#x: non-zero padding", idx);
            return -EINVAL;
        }
        s->msrs[i] = (struct kvm_msr_entry){.index = idx, .data = v};
    }
    s->nr_msrs = n;
    return 0;
}

static int load_raw(struct simg_vcpu *s, uint32_t type, struct recrd *rd, char *err,
                    size_t errlen)
{
    if (rd_u32(rd)) {
        dfmt(err, errlen, "non-zero padding");
        return -EINVAL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(raw); i++) {
        if (raw[i].type != type)
            continue;
        const void *p = rd_bytes(rd, raw[i].size);
        if (!p || rd_done(rd)) {
            dfmt(err, errlen, "%zu bytes, KVM's struct has %zu", rd->len - 8,
                 raw[i].size);
            return -EINVAL;
        }
        memcpy((uint8_t *)s + raw[i].off, p, raw[i].size);
        return 0;
    }
    dfmt(err, errlen, "not a vCPU record");
    return -EINVAL;
}

int simg_load_vcpu_record(struct simg_vcpu *vcpus, unsigned nr,
                          const struct simg_rec *rec, char *err, size_t errlen)
{
    uint32_t type = rec->type & ~SIMG_REC_OPTIONAL;
    struct recrd rd;
    rd_init(&rd, rec->body, rec->len);
    uint32_t id = rd_u32(&rd);
    if (rd.err || id >= nr || type >= 32 || (vcpus[id].have & (1u << type))) {
        dfmt(err, errlen, "for vCPU %u of %u, or twice", id, nr);
        return -EINVAL;
    }
    struct simg_vcpu *s = &vcpus[id];
    int rc = type == SIMG_REC_VCPU_MSRS ? load_msrs(s, &rd, err, errlen)
                                        : load_raw(s, type, &rd, err, errlen);
    if (!rc)
        s->have |= 1u << type;
    return rc;
}

int simg_vcpus_complete(const struct simg_vcpu *vcpus, unsigned nr, char *err,
                        size_t errlen)
{
    for (unsigned i = 0; i < nr; i++) {
        uint32_t missing = SIMG_VCPU_ALL & ~vcpus[i].have;
        if (missing) {
            dfmt(err, errlen, "truncated image: vCPU %u has no %s record", i,
                 simg_rec_name((uint32_t)__builtin_ctz(missing)));
            return -EINVAL;
        }
    }
    return 0;
}

int simg_load_clock(struct simg_clock *c, const struct simg_rec *rec, char *err,
                    size_t errlen)
{
    struct recrd rd;
    rd_init(&rd, rec->body, rec->len);
    c->clock_ns = rd_u64(&rd);
    c->flags = rd_u32(&rd);
    c->tsc_khz = rd_u32(&rd);
    if (rd_done(&rd) || c->tsc_khz == 0) {
        dfmt(err, errlen, "%u bytes, TSC %u kHz", rec->len, c->tsc_khz);
        return -EINVAL;
    }
    return 0;
}
