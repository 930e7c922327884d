/* The memory reservation ops of memory_op (memop.h): the balloon's
 * decrease_reservation and populate_physmap, and the reservation queries.
 *
 * Xen's rules, as in its common/memory.c: an extent list is processed in
 * order and stops at the first extent that cannot be done; the result is
 * the number of extents done (with the start extent a continuation passed
 * in the cmd's high bits).  A bad reservation struct is -EFAULT, another
 * domain -ESRCH, an extent order above MEMOP_MAX_ORDER or a list that
 * cannot lie in guest memory ends the call with nothing done. */
#include "domus/hv.h"
#include "domus/memop.h"
#include "domus/recbuf.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <xen/memory.h>

/* Xen passes a continuation's start extent in cmd's bits 6 and up. */
#define MEMOP_EXTENT_SHIFT 6
#define MEMOP_CMD_MASK ((1u << MEMOP_EXTENT_SHIFT) - 1)
#define BATCH 512 /* extents read from the guest at a time */

static uint64_t words(uint64_t bits)
{
    return (bits + 63) / 64;
}

int memop_init(struct domain *d)
{
    struct hv_res *r = &d->res;
    uint64_t n = d->mem.ram_size >> DOMUS_PAGE_SHIFT;
    uint64_t *bits = malloc(words(n) * sizeof(*bits) + !n);

    if (!bits)
        return -ENOMEM;
    memset(bits, 0xff, words(n) * sizeof(*bits));
    if (n % 64)
        bits[n / 64] = (1ULL << (n % 64)) - 1;
    pthread_mutex_lock(&r->lock);
    free(r->populated);
    r->populated = bits;
    r->nr_pages = r->tot_pages = r->max_pages = n;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

void memop_destroy(struct domain *d)
{
    struct hv_res *r = &d->res;

    pthread_mutex_lock(&r->lock);
    free(r->populated);
    r->populated = NULL;
    r->nr_pages = r->tot_pages = r->max_pages = 0;
    pthread_mutex_unlock(&r->lock);
}

void memop_counts(struct domain *d, uint64_t *tot, uint64_t *max)
{
    struct hv_res *r = &d->res;

    pthread_mutex_lock(&r->lock);
    *tot = r->nr_pages ? r->tot_pages : d->mem.ram_size >> DOMUS_PAGE_SHIFT;
    *max = r->nr_pages ? r->max_pages : d->mem.ram_size >> DOMUS_PAGE_SHIFT;
    pthread_mutex_unlock(&r->lock);
}

int memop_set_max(struct domain *d, uint64_t pages)
{
    struct hv_res *r = &d->res;
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    if (!r->nr_pages || pages < 1 || pages > r->nr_pages)
        rc = -EINVAL;
    else
        r->max_pages = pages;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ---- one extent ---- */

static bool test_bit(const struct hv_res *r, uint64_t i)
{
    return r->populated[i / 64] & (1ULL << (i % 64));
}

static void set_bits(struct hv_res *r, uint64_t i, uint64_t n, bool on)
{
    for (uint64_t k = i; k < i + n; k++) {
        if (on)
            r->populated[k / 64] |= 1ULL << (k % 64);
        else
            r->populated[k / 64] &= ~(1ULL << (k % 64));
    }
}

/* Counts the populated pages of [i, i+n). */
static uint64_t count_bits(const struct hv_res *r, uint64_t i, uint64_t n)
{
    uint64_t c = 0;

    for (uint64_t k = i; k < i + n; k++)
        c += test_bit(r, k);
    return c;
}

/* The RAM page index of the extent of 2^order pages at gfn: the extent
 * must lie wholly inside one RAM region (not the special or extra pages).
 * -1 otherwise. */
static int64_t ram_index(const struct domain *d, uint64_t gfn, unsigned order)
{
    uint64_t len = DOMUS_PAGE_SIZE << order;

    if (gfn >= (1ULL << (52 - DOMUS_PAGE_SHIFT)))
        return -1;
    uint64_t gpa = gfn << DOMUS_PAGE_SHIFT;
    if (gpa & (len - 1))
        return -1; /* extents are aligned to their size */
    const uint8_t *p = gmem_ptr(&d->mem, gpa, len);
    if (!p)
        return -1;
    uint64_t off = (uint64_t)(p - d->mem.host);
    if (off >= d->mem.ram_size || len > d->mem.ram_size - off)
        return -1;
    return (int64_t)(off >> DOMUS_PAGE_SHIFT);
}

/* Gives the pages back to the host.  The memfd stays its size (sealed);
 * the kernel unmaps the range from every mapping, KVM's included. */
static void punch(struct domain *d, uint64_t idx, uint64_t n)
{
    if (fallocate(d->mem.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)(idx << DOMUS_PAGE_SHIFT), (off_t)(n << DOMUS_PAGE_SHIFT)) < 0) {
        /* Cannot fail on a memfd short of a kernel without shmem hole
         * punching; the pages then stay allocated (zero them for the
         * guest's sake: it gets them back zeroed on populate). */
        memset(d->mem.host + (idx << DOMUS_PAGE_SHIFT), 0, n << DOMUS_PAGE_SHIFT);
    }
}

/* decrease: every page of the extent must be populated. */
static bool decrease_one(struct domain *d, uint64_t gfn, unsigned order)
{
    struct hv_res *r = &d->res;
    int64_t i = ram_index(d, gfn, order);
    uint64_t n = 1ULL << order;

    if (i < 0 || count_bits(r, (uint64_t)i, n) != n)
        return false;
    set_bits(r, (uint64_t)i, n, false);
    r->tot_pages -= n;
    punch(d, (uint64_t)i, n);
    return true;
}

/* populate: pages already there are replaced by zero pages (Xen gives the
 * gfn a fresh page); new ones count against max_pages. */
static bool populate_one(struct domain *d, uint64_t gfn, unsigned order)
{
    struct hv_res *r = &d->res;
    int64_t i = ram_index(d, gfn, order);
    uint64_t n = 1ULL << order, have;

    if (i < 0)
        return false;
    have = count_bits(r, (uint64_t)i, n);
    if (r->tot_pages + (n - have) > r->max_pages)
        return false; /* Xen: "over-allocation" */
    if (have)
        punch(d, (uint64_t)i, n);
    set_bits(r, (uint64_t)i, n, true);
    r->tot_pages += n - have;
    return true;
}

/* ---- the extent list ---- */

struct resv_call {
    struct xen_memory_reservation x;
    uint64_t list;  /* guest-virtual address of the extent list */
    uint64_t start; /* first extent (continuation) */
};

/* Reads and checks the reservation; 0, or the guest's result in *ret. */
static int read_resv(struct vcpu *v, uint64_t cmd, uint64_t arg, struct resv_call *c,
                     int64_t *ret)
{
    struct domain *d = v->d;

    c->start = cmd >> MEMOP_EXTENT_SHIFT;
    *ret = -EFAULT;
    if (guest_copy_from(v, &c->x, arg, sizeof(c->x)) < 0)
        return -1;
    *ret = -ESRCH;
    if (c->x.domid != DOMID_SELF && c->x.domid != d->domid)
        return -1;
    *ret = (int64_t)c->start;
    c->list = (uint64_t)(uintptr_t)c->x.extent_start.p;
    /* The list must fit in the guest's memory, as Xen checks the handle's
     * range: this also bounds the work of one call. */
    if (c->start >= c->x.nr_extents || c->x.extent_order > MEMOP_MAX_ORDER ||
        c->x.nr_extents > d->mem.ram_size / sizeof(xen_pfn_t) ||
        c->list + c->x.nr_extents * sizeof(xen_pfn_t) < c->list)
        return -1;
    return 0;
}

static int64_t resv_op(struct vcpu *v, uint64_t cmd, uint64_t arg,
                       bool (*one)(struct domain *, uint64_t, unsigned))
{
    struct domain *d = v->d;
    struct resv_call c;
    xen_pfn_t gfn[BATCH];
    int64_t ret;
    uint64_t done;

    if (!d->res.nr_pages)
        return -ENOSYS;
    if (read_resv(v, cmd, arg, &c, &ret) < 0)
        return ret;
    for (done = c.start; done < c.x.nr_extents;) {
        uint64_t n = c.x.nr_extents - done < BATCH ? c.x.nr_extents - done : BATCH, k;
        if (guest_copy_from(v, gfn, c.list + done * sizeof(xen_pfn_t),
                            n * sizeof(xen_pfn_t)))
            break;
        pthread_mutex_lock(&d->res.lock);
        for (k = 0; k < n && one(d, gfn[k], c.x.extent_order); k++)
            ;
        pthread_mutex_unlock(&d->res.lock);
        done += k;
        if (k < n)
            break;
    }
    return (int64_t)done;
}

static int64_t reservation_query(struct vcpu *v, unsigned op, uint64_t arg)
{
    domid_t dom;
    uint64_t tot, max;

    if (guest_copy_from(v, &dom, arg, sizeof(dom)) < 0)
        return -EFAULT;
    if (dom != DOMID_SELF && dom != v->d->domid)
        return -ESRCH;
    memop_counts(v->d, &tot, &max);
    return (int64_t)(op == XENMEM_current_reservation ? tot : max);
}

int64_t memop_op(struct vcpu *v, uint64_t cmd, uint64_t arg)
{
    unsigned op = (unsigned)(cmd & MEMOP_CMD_MASK);

    switch (op) {
    case XENMEM_decrease_reservation:
        return resv_op(v, cmd, arg, decrease_one);
    case XENMEM_populate_physmap:
        return resv_op(v, cmd, arg, populate_one);
    case XENMEM_increase_reservation:
        /* It hands out machine frames that an auto-translated guest cannot
         * place (populate_physmap is its way): Domus has none to give. */
        return -EOPNOTSUPP;
    case XENMEM_current_reservation:
    case XENMEM_maximum_reservation:
        return cmd >> MEMOP_EXTENT_SHIFT ? -ENOSYS : reservation_query(v, op, arg);
    case XENMEM_get_pod_target:
    case XENMEM_set_pod_target:
        return -EPERM; /* the toolstack's, never an unprivileged guest's */
    default:
        return -ENOSYS;
    }
}

/* ---- save and load ---- */

int memop_save(struct domain *d, struct recbuf *rb)
{
    struct hv_res *r = &d->res;

    pthread_mutex_lock(&r->lock);
    rb_put_u64(rb, r->nr_pages);
    rb_put_u64(rb, r->tot_pages);
    rb_put_u64(rb, r->max_pages);
    for (uint64_t w = 0; w < words(r->nr_pages); w++)
        rb_put_u64(rb, r->populated[w]);
    pthread_mutex_unlock(&r->lock);
    return rb->err;
}

#define BAD(...)                                                                         \
    do {                                                                                 \
        dfmt(err, errlen, __VA_ARGS__);                                                  \
        return -EINVAL;                                                                  \
    } while (0)

/* The pages the bitmap says are gone are punched (a restored memfd has
 * them as zero pages already where the image had none; this makes sure). */
static void punch_absent(struct domain *d)
{
    struct hv_res *r = &d->res;

    for (uint64_t i = 0, run = 0; i <= r->nr_pages; i++) {
        if (i < r->nr_pages && !test_bit(r, i)) {
            run++;
            continue;
        }
        if (run)
            punch(d, i - run, run);
        run = 0;
    }
}

int memop_load(struct domain *d, const void *body, size_t len, char *err, size_t errlen)
{
    struct hv_res *r = &d->res;
    struct recrd rd;
    uint64_t n, tot, max, pop = 0;
    const uint64_t *bits;

    rd_init(&rd, body, len);
    n = rd_u64(&rd);
    tot = rd_u64(&rd);
    max = rd_u64(&rd);
    if (rd.err || n != r->nr_pages)
        BAD("reservation of %llu pages, the domain has %llu", (unsigned long long)n,
            (unsigned long long)r->nr_pages);
    bits = rd_bytes(&rd, words(n) * sizeof(uint64_t));
    if (!bits || rd_done(&rd))
        BAD("%zu bytes for a reservation of %llu pages", len, (unsigned long long)n);
    for (uint64_t w = 0; w < words(n); w++) {
        uint64_t x;
        memcpy(&x, bits + w, sizeof(x));
        if (w == n / 64 && n % 64 && (x >> (n % 64)))
            BAD("reservation bitmap has bits beyond page %llu", (unsigned long long)n);
        pop += (uint64_t)__builtin_popcountll(x);
    }
    if (pop != tot || max > n || (n && max < 1))
        BAD("reservation: %llu pages counted, %llu in the bitmap, maximum %llu of %llu",
            (unsigned long long)tot, (unsigned long long)pop, (unsigned long long)max,
            (unsigned long long)n);
    if (!n)
        return 0; /* a domain without a reservation table (unit tests) */
    pthread_mutex_lock(&r->lock);
    memcpy(r->populated, bits, words(n) * sizeof(uint64_t));
    r->tot_pages = tot;
    r->max_pages = max;
    punch_absent(d);
    pthread_mutex_unlock(&r->lock);
    return 0;
}
