/* CPUID offered to guests: KVM's supported list, made Xen-shaped. */
#include "domus/kvm.h"
#include "domus/util.h"

#include <string.h>

#include <xen/arch-x86/cpuid.h>

/* XSAVE components offered: x87, SSE, AVX, AVX-512 (opmask, ZMM_Hi256,
 * Hi16_ZMM) and PKRU.  AMX needs a per-process permission in the host and
 * is left out. */
#define XCR0_OFFERED ((1ULL << 0) | (1ULL << 1) | (1ULL << 2) | (7ULL << 5) | (1ULL << 9))
#define XCR0_AVX512 (7ULL << 5)
#define XCR0_PKRU (1ULL << 9)

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == idx)
            return &c->entries[i];
    return NULL;
}

static void add(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx, uint32_t flags,
                uint32_t a, uint32_t b, uint32_t cx, uint32_t d)
{
    struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
    memset(e, 0, sizeof(*e));
    *e = (struct kvm_cpuid_entry2){.function = fn,
                                   .index = idx,
                                   .flags = flags,
                                   .eax = a,
                                   .ebx = b,
                                   .ecx = cx,
                                   .edx = d};
}

static uint64_t xcr0_offered(struct kvm_cpuid2 *c, uint64_t limit)
{
    struct kvm_cpuid_entry2 *e = find(c, 0xd, 0);
    if (!e)
        return 0;
    uint64_t mask = (e->eax | ((uint64_t)e->edx << 32)) & XCR0_OFFERED & limit;
    if ((mask & XCR0_AVX512) != XCR0_AVX512)
        mask &= ~XCR0_AVX512;
    return mask;
}

/* Leaf 0xD made consistent with the components in mask (standard format). */
static void fix_xsave(struct kvm_cpuid2 *c, uint64_t mask)
{
    uint32_t size = 576; /* legacy area + header */
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function != 0xd || e->index < 2)
            continue;
        if (e->index >= 64 || !(mask & (1ULL << e->index))) {
            e->eax = e->ebx = e->ecx = e->edx = 0;
            continue;
        }
        if (e->ebx + e->eax > size)
            size = e->ebx + e->eax;
    }
    struct kvm_cpuid_entry2 *s0 = find(c, 0xd, 0), *s1 = find(c, 0xd, 1);
    if (!mask)
        return;
    if (s0) {
        s0->eax = (uint32_t)mask;
        s0->edx = (uint32_t)(mask >> 32);
        s0->ebx = s0->ecx = size;
    }
    if (s1) {
        s1->eax &= ~(1U << 3); /* no XSAVES: no supervisor components */
        s1->ebx = s1->ecx = s1->edx = 0;
    }
}

/* Features whose state components are not offered are hidden. */
static void fix_leaf7(struct kvm_cpuid2 *c, uint64_t mask)
{
    struct kvm_cpuid_entry2 *e = find(c, 7, 0), *e1 = find(c, 7, 1);
    if (e && !(mask & XCR0_AVX512)) {
        e->ebx &= ~((1U << 16) | (1U << 17) | (1U << 21) | (1U << 26) | (1U << 27) |
                    (1U << 28) | (1U << 30) | (1U << 31));
        e->ecx &= ~((1U << 1) | (1U << 6) | (1U << 11) | (1U << 12) | (1U << 14));
        e->edx &= ~((1U << 2) | (1U << 3) | (1U << 8) | (1U << 23));
        if (e1)
            e1->eax &= ~(1U << 5);
    }
    if (e && !(mask & XCR0_PKRU))
        e->ecx &= ~(1U << 3);
    if (e && !(mask & (1ULL << 2))) /* no AVX state: no AVX2 either */
        e->ebx &= ~(1U << 5);
    struct kvm_cpuid_entry2 *l1 = find(c, 1, 0);
    if (l1 && !(mask & (1ULL << 2)))
        l1->ecx &= ~((1U << 28) | (1U << 12) | (1U << 29)); /* AVX, FMA, F16C */
    if (e)
        e->edx &= ~((1U << 22) | (1U << 24) | (1U << 25)); /* AMX */
}

/* No XSAVE at all: the guest falls back to FXSAVE. */
static void hide_xsave(struct kvm_cpuid2 *c)
{
    struct kvm_cpuid_entry2 *l1 = find(c, 1, 0);
    if (l1)
        l1->ecx &= ~((1U << 26) | (1U << 27));
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == 0xd)
            c->entries[i].eax = c->entries[i].ebx = c->entries[i].ecx =
                c->entries[i].edx = 0;
}

static void fix_topology(struct kvm_cpuid2 *c, unsigned apic_id, unsigned nr_vcpus)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == 1) {
            e->ebx = (e->ebx & 0xffff) | ((nr_vcpus & 0xff) << 16) | (apic_id << 24);
            e->edx |= 1U << 28; /* HTT: ebx[23:16] is valid */
            e->ecx |= 1U << 31; /* running under a hypervisor, as Xen tells its guests */
        } else if (e->function == 0xb || e->function == 0x1f) {
            e->edx = apic_id;
        } else if (e->function == 0x8000001e) {
            e->eax = apic_id;
        }
    }
}

static void add_xen_leaves(struct kvm_cpuid2 *c, unsigned vcpu_id, unsigned domid)
{
    const uint32_t b = XEN_CPUID_FIRST_LEAF;
    add(c, b, 0, 0, b + 4, XEN_CPUID_SIGNATURE_EBX, XEN_CPUID_SIGNATURE_ECX,
        XEN_CPUID_SIGNATURE_EDX);
    add(c, b + 1, 0, 0, (HV_XEN_MAJOR << 16) | HV_XEN_MINOR, 0, 0, 0);
    add(c, b + 2, 0, 0, 1, 0x40000000, 0, 0);
    /* TSC leaf: tsc_mode "default"; the guest keeps to its Xen pvclock. */
    add(c, b + 3, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 0, 0, 0);
    add(c, b + 3, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 0, 0, 0);
    add(c, b + 3, 2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 0, 0, 0);
    add(c, b + 4, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        XEN_HVM_CPUID_VCPU_ID_PRESENT | XEN_HVM_CPUID_DOMID_PRESENT |
            XEN_HVM_CPUID_UPCALL_VECTOR,
        vcpu_id, domid, 0);
}

void cpuid_build(const struct kvm_cpuid2 *supported, struct kvm_cpuid2 *out,
                 unsigned vcpu_id, unsigned nr_vcpus, unsigned domid, uint64_t xcr0_limit)
{
    out->nent = 0;
    for (uint32_t i = 0; i < supported->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &supported->entries[i];
        if (e->function >= 0x40000000 && e->function < 0x50000000)
            continue; /* KVM's own paravirt leaves: this is a Xen guest */
        if (e->function == 0x1d || e->function == 0x1e)
            continue; /* AMX tile information */
        out->entries[out->nent++] = *e;
    }
    uint64_t mask = xcr0_offered(out, xcr0_limit);
    if (!mask)
        hide_xsave(out);
    fix_xsave(out, mask);
    fix_leaf7(out, mask);
    fix_topology(out, vcpu_id, nr_vcpus);
    add_xen_leaves(out, vcpu_id, domid);
}

uint64_t cpuid_host_xcr0_limit(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid"
                     : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
                     : "a"(0x40000000), "c"(0));
    char sig[13];
    memcpy(sig, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    sig[12] = 0;
    return strcmp(sig, "TCGTCGTCGTCG") == 0 ? 0 : ~0ULL;
}
