/* Unit tests of the memory reservation (memop.c) through the hypercall
 * dispatch, without /dev/kvm: the balloon's decrease and populate, maxmem,
 * hostile arguments, and the save/load round trip.  Guest-virtual
 * addresses translate 1:1. */
#include "domus/hv.h"
#include "domus/hv_save.h"
#include "domus/memop.h"
#include "domus/recbuf.h"
#include "domus/saveimg.h"
#include "domus/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <xen/memory.h>

#include "check.h"

static int f_translate(struct vcpu *v, uint64_t gva, uint64_t *gpa)
{
    (void)v;
    *gpa = gva;
    return 0;
}

static const struct hv_ops ops = {.translate = f_translate};

#define MIB 64ULL
#define PAGES (MIB << 20 >> 12)
#define ARG 0x10000ULL  /* the reservation struct */
#define LIST 0x11000ULL /* the extent list (up to 2 pages) */
#define PFN0 0x1000ULL  /* 16 MiB: the pages the tests balloon */

static struct domain *new_domain(void)
{
    struct domain *d = calloc(1, sizeof(*d));
    domain_init(d, 5, "t", 1, &ops);
    if (gmem_init(&d->mem, MIB << 20) < 0 || memop_init(d) < 0)
        abort();
    return d;
}

static void free_domain(struct domain *d)
{
    memop_destroy(d);
    gmem_destroy(&d->mem);
    free(d);
}

static int64_t memop(struct domain *d, uint64_t cmd, uint64_t arg)
{
    uint64_t a[6] = {cmd, arg, 0, 0, 0, 0};
    return hv_hypercall(&d->vcpus[0], __HYPERVISOR_memory_op, a);
}

/* op on the n pfns of list (n <= 8; else list[0] then what LIST holds), order order, for
 * domid. */
static int64_t resv(struct domain *d, unsigned op, const xen_pfn_t *list, uint64_t n,
                    unsigned order, domid_t domid)
{
    struct xen_memory_reservation x = {
        .nr_extents = n, .extent_order = order, .domid = domid};
    set_xen_guest_handle(x.extent_start, (xen_pfn_t *)(uintptr_t)LIST);
    gmem_write(&d->mem, ARG, &x, sizeof(x));
    if (list) /* the first extent only when the list is long (hostile) */
        gmem_write(&d->mem, LIST, list, (n && n <= 8 ? n : 1) * sizeof(*list));
    return memop(d, op, ARG);
}

static uint64_t tot(struct domain *d)
{
    uint64_t t, m;
    memop_counts(d, &t, &m);
    return t;
}

/* Bytes the memfd holds (what the host backs). */
static uint64_t backed(const struct domain *d)
{
    struct stat st;
    return fstat(d->mem.fd, &st) < 0 ? 0 : (uint64_t)st.st_blocks * 512;
}

static int64_t query(struct domain *d, unsigned op, domid_t domid)
{
    gmem_write(&d->mem, ARG, &domid, sizeof(domid));
    return memop(d, op, ARG);
}

static void test_balloon(void)
{
    struct domain *d = new_domain();
    xen_pfn_t l[4] = {PFN0, PFN0 + 1, PFN0 + 7, PFN0 + 2};

    CHECK("all RAM starts populated",
          tot(d) == PAGES &&
              query(d, XENMEM_current_reservation, DOMID_SELF) == (int64_t)PAGES);
    CHECK("maximum_reservation is RAM",
          query(d, XENMEM_maximum_reservation, DOMID_SELF) == (int64_t)PAGES);
    CHECK("reservation of another domain is -ESRCH",
          query(d, XENMEM_current_reservation, 9) == -ESRCH);
    memset(d->mem.host + (PFN0 << 12), 0xab, 8 << 12);
    d->mem.host[LIST] = 0; /* the list's page is allocated before we count */
    uint64_t before = backed(d);
    CHECK("decrease 4 pages",
          resv(d, XENMEM_decrease_reservation, l, 4, 0, DOMID_SELF) == 4);
    CHECK("... counted", tot(d) == PAGES - 4);
    uint64_t after = backed(d);
    CHECK("... the host got them back", before - after == 4 * 4096);
    CHECK("... and they read as zero",
          d->mem.host[(PFN0 + 7) << 12] == 0 && d->mem.host[(PFN0 + 3) << 12] == 0xab);
    CHECK("decrease of a page given back stops there",
          resv(d, XENMEM_decrease_reservation, l + 2, 1, 0, DOMID_SELF) == 0 &&
              tot(d) == PAGES - 4);
    xen_pfn_t mixed[3] = {PFN0 + 3, PFN0 + 1, PFN0 + 4};
    CHECK("a list stops at its first bad extent",
          resv(d, XENMEM_decrease_reservation, mixed, 3, 0, DOMID_SELF) == 1 &&
              tot(d) == PAGES - 5);
    CHECK("maxmem below the pages held", memop_set_max(d, PAGES - 5) == 0);
    CHECK("populate above maxmem gives nothing",
          resv(d, XENMEM_populate_physmap, l, 1, 0, DOMID_SELF) == 0 &&
              tot(d) == PAGES - 5);
    CHECK("mem-max above RAM is -EINVAL", memop_set_max(d, PAGES + 1) == -EINVAL);
    CHECK("mem-max 0 is -EINVAL", memop_set_max(d, 0) == -EINVAL);
    CHECK("mem-max back to RAM",
          memop_set_max(d, PAGES) == 0 &&
              query(d, XENMEM_maximum_reservation, DOMID_SELF) == (int64_t)PAGES);
    CHECK("populate 4 back", resv(d, XENMEM_populate_physmap, l, 4, 0, DOMID_SELF) == 4 &&
                                 tot(d) == PAGES - 1);
    d->mem.host[PFN0 << 12] = 1;
    CHECK("populate over a page held: a zero page, same count",
          resv(d, XENMEM_populate_physmap, l, 1, 0, DOMID_SELF) == 1 &&
              tot(d) == PAGES - 1 && d->mem.host[PFN0 << 12] == 0);
    xen_pfn_t big[2] = {0x2000, 0x2201};
    CHECK("a 2 MiB extent",
          resv(d, XENMEM_decrease_reservation, big, 2, 9, DOMID_SELF) == 1 &&
              tot(d) == PAGES - 1 - 512);
    CHECK("a 2 MiB extent back",
          resv(d, XENMEM_populate_physmap, big, 1, 9, DOMID_SELF) == 1 &&
              tot(d) == PAGES - 1);
    CHECK("continuation: start extent in the cmd's high bits",
          resv(d, XENMEM_decrease_reservation | (1u << 6), l, 2, 0, DOMID_SELF) == 2 &&
              tot(d) == PAGES - 2);
    free_domain(d);
}

static void test_hostile(void)
{
    struct domain *d = new_domain();
    xen_pfn_t l[2] = {PFN0, PFN0 + 1};
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK("nr_extents 2^63 does nothing",
          resv(d, XENMEM_decrease_reservation, l, 1ULL << 63, 0, DOMID_SELF) == 0 &&
              tot(d) == PAGES);
    CHECK("nr_extents just too many for RAM does nothing",
          resv(d, XENMEM_populate_physmap, l, PAGES * 512 + 1, 0, DOMID_SELF) == 0);
    memset(d->mem.host + LIST, 0, 8192 * sizeof(xen_pfn_t));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* A long list of one page: decrease stops at its second time. */
    int64_t r = resv(d, XENMEM_decrease_reservation, NULL, 8192, 0, DOMID_SELF);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK("a list of 8192 zero pfns: pfn 0 given back once, then stops",
          r == 1 && tot(d) == PAGES - 1);
    CHECK("... in well under a second", t1.tv_sec - t0.tv_sec < 2);
    for (unsigned o = 10; o < 64; o += 13)
        CHECK("extent_order above 9 does nothing",
              resv(d, XENMEM_decrease_reservation, l, 1, o, DOMID_SELF) == 0);
    xen_pfn_t mis[1] = {PFN0 + 1};
    CHECK("a misaligned 2 MiB extent is refused",
          resv(d, XENMEM_decrease_reservation, mis, 1, 9, DOMID_SELF) == 0);
    xen_pfn_t out[] = {
        GMEM_SPECIAL_BASE >> 12, (MIB << 20) >> 12, 0xF0000, 1ULL << 40, ~0ULL,
        (1ULL << 40) - 1};
    for (unsigned i = 0; i < ARRAY_SIZE(out); i++) {
        CHECK("decrease of a pfn outside RAM does nothing",
              resv(d, XENMEM_decrease_reservation, out + i, 1, 0, DOMID_SELF) == 0);
        CHECK("populate of a pfn outside RAM does nothing",
              resv(d, XENMEM_populate_physmap, out + i, 1, 0, DOMID_SELF) == 0);
    }
    CHECK("... the special pages kept",
          gmem_ptr(&d->mem, GMEM_SPECIAL_BASE, 4096) != NULL);
    CHECK("another domain is -ESRCH",
          resv(d, XENMEM_decrease_reservation, l, 1, 0, 3) == -ESRCH);
    CHECK("a reservation struct outside memory is -EFAULT",
          memop(d, XENMEM_decrease_reservation, 1ULL << 40) == -EFAULT);
    struct xen_memory_reservation x = {.nr_extents = 4, .domid = DOMID_SELF};
    set_xen_guest_handle(x.extent_start, (xen_pfn_t *)(uintptr_t)(1ULL << 40));
    gmem_write(&d->mem, ARG, &x, sizeof(x));
    CHECK("an extent list outside memory does nothing",
          memop(d, XENMEM_populate_physmap, ARG) == 0);
    set_xen_guest_handle(x.extent_start, (xen_pfn_t *)(uintptr_t)(~0ULL - 8));
    gmem_write(&d->mem, ARG, &x, sizeof(x));
    CHECK("an extent list that wraps does nothing",
          memop(d, XENMEM_decrease_reservation, ARG) == 0);
    CHECK("a start extent beyond the list returns it",
          resv(d, XENMEM_decrease_reservation | (5u << 6), l, 2, 0, DOMID_SELF) == 5);
    CHECK("increase_reservation is -EOPNOTSUPP",
          resv(d, XENMEM_increase_reservation, l, 1, 0, DOMID_SELF) == -EOPNOTSUPP);
    CHECK("get_pod_target is -EPERM", memop(d, XENMEM_get_pod_target, ARG) == -EPERM);
    CHECK("set_pod_target is -EPERM", memop(d, XENMEM_set_pod_target, ARG) == -EPERM);
    CHECK("counts unchanged by all that", tot(d) == PAGES - 1);
    free_domain(d);

    struct domain *u = calloc(1, sizeof(*u));
    domain_init(u, 6, "u", 1, &ops);
    if (gmem_init(&u->mem, MIB << 20) < 0)
        abort();
    CHECK("without a reservation table: decrease is -ENOSYS",
          resv(u, XENMEM_decrease_reservation, l, 1, 0, DOMID_SELF) == -ENOSYS);
    CHECK("... and current_reservation is the RAM",
          query(u, XENMEM_current_reservation, DOMID_SELF) == (int64_t)PAGES);
    free_domain(u);
}

static const struct hv_module *module(void)
{
    for (size_t i = 0; i < hv_nr_modules; i++)
        if (hv_modules[i].rec_type == SIMG_REC_HV_MEMRES)
            return &hv_modules[i];
    return NULL;
}

static void test_save_load(void)
{
    const struct hv_module *m = module();
    struct domain *a = new_domain(), *b = new_domain();
    xen_pfn_t l[3] = {PFN0, PFN0 + 9, 0x3fff};
    struct recbuf rb, again;
    char err[256] = "";

    CHECK("the memory reservation is a module", m != NULL);
    if (!m)
        return;
    resv(a, XENMEM_decrease_reservation, l, 3, 0, DOMID_SELF);
    memop_set_max(a, PAGES - 2);
    memset(b->mem.host + (PFN0 << 12), 0x5a, 16 << 12);
    rb_init(&rb);
    rb_init(&again);
    CHECK("save", m->save(a, &rb) == 0 && rb.len == 24 + PAGES / 8);
    CHECK("load", m->load(b, rb.data, rb.len, err, sizeof(err)) == 0);
    uint64_t t, mx;
    memop_counts(b, &t, &mx);
    CHECK("... counts as saved", t == PAGES - 3 && mx == PAGES - 2);
    CHECK("... the pages given back are gone",
          b->mem.host[(PFN0 + 9) << 12] == 0 && b->mem.host[(PFN0 + 8) << 12] == 0x5a);
    CHECK("... decrease of a page given back still stops",
          resv(b, XENMEM_decrease_reservation, l + 1, 1, 0, DOMID_SELF) == 0);
    resv(b, XENMEM_populate_physmap, l, 1, 0, DOMID_SELF);
    resv(b, XENMEM_decrease_reservation, l, 1, 0, DOMID_SELF);
    CHECK("save again: the same bytes", m->save(b, &again) == 0 && again.len == rb.len &&
                                            !memcmp(again.data, rb.data, rb.len));

    /* Bad bodies change nothing. */
    uint8_t *bad = malloc(rb.len);
    struct {
        const char *name;
        size_t off;
        uint64_t val;
        size_t len;
    } cases[] = {
        {"load: wrong page count refused", 0, PAGES + 64, rb.len},
        {"load: count that is not the bitmap's refused", 8, PAGES, rb.len},
        {"load: maximum above RAM refused", 16, PAGES + 1, rb.len},
        {"load: maximum 0 refused", 16, 0, rb.len},
        {"load: truncated body refused", 0, PAGES, rb.len - 8},
        {"load: header only refused", 0, PAGES, 24},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        struct domain *c = new_domain();
        memcpy(bad, rb.data, rb.len);
        memcpy(bad + cases[i].off, &cases[i].val, 8);
        CHECK(cases[i].name, m->load(c, bad, cases[i].len, err, sizeof(err)) == -EINVAL &&
                                 err[0] && tot(c) == PAGES);
        free_domain(c);
    }
    free(bad);
    rb_free(&rb);
    rb_free(&again);
    free_domain(a);
    free_domain(b);
}

int main(void)
{
    test_balloon();
    test_hostile();
    test_save_load();
    return failures ? 1 : 0;
}
