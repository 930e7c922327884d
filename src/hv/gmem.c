#include "domus/gmem.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SPECIAL_SIZE (GMEM_SPECIAL_PAGES * DOMUS_PAGE_SIZE)
#define EXTRA_SIZE (GMEM_EXTRA_PAGES * DOMUS_PAGE_SIZE)
#define TAIL_SIZE (SPECIAL_SIZE + EXTRA_SIZE)

static void fill_regions(struct gmem *m)
{
    struct gmem_region *r = m->region;

    r[GMEM_REGION_LOW] = (struct gmem_region){0, m->low_end, 0, 0};
    r[GMEM_REGION_HIGH] =
        (struct gmem_region){GMEM_HIGH_BASE, m->high_size, m->low_end, 1};
    r[GMEM_REGION_SPECIAL] =
        (struct gmem_region){GMEM_SPECIAL_BASE, SPECIAL_SIZE, m->ram_size, 2};
    for (unsigned i = 0; i < GMEM_EXTRA_PAGES; i++)
        r[GMEM_REGION_EXTRA + i] = (struct gmem_region){
            0, DOMUS_PAGE_SIZE, m->ram_size + SPECIAL_SIZE + i * DOMUS_PAGE_SIZE,
            GMEM_EXTRA_SLOT_BASE + i};
}

int gmem_init(struct gmem *m, uint64_t ram_bytes)
{
    int rc;
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    if (ram_bytes < GMEM_MIN_RAM || (ram_bytes & (DOMUS_PAGE_SIZE - 1)))
        return -EINVAL;
    if (ram_bytes > (1ULL << 46))
        return -ENOMEM;
    m->fd = memfd_create("domus-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (m->fd < 0)
        return -errno;
    /* Its size is fixed for good: whoever maps it (back ends, xenstored)
     * can never fault on a page cut off under the mapping. */
    if (ftruncate(m->fd, (off_t)(ram_bytes + TAIL_SIZE)) < 0 ||
        fcntl(m->fd, F_ADD_SEALS, GMEM_SEALS | F_SEAL_SEAL) < 0) {
        rc = -errno;
        goto out;
    }
    m->host = mmap(NULL, ram_bytes + TAIL_SIZE, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_NORESERVE, m->fd, 0);
    if (m->host == MAP_FAILED) {
        m->host = NULL;
        rc = -ENOMEM;
        goto out;
    }
    m->ram_size = ram_bytes;
    m->low_end = ram_bytes < GMEM_LOW_LIMIT ? ram_bytes : GMEM_LOW_LIMIT;
    m->high_size = ram_bytes - m->low_end;
    fill_regions(m);
    return 0;
out:
    gmem_destroy(m);
    return rc;
}

void gmem_destroy(struct gmem *m)
{
    if (m->host)
        munmap(m->host, m->ram_size + TAIL_SIZE);
    if (m->fd >= 0)
        close(m->fd);
    free(m->dirty);
    memset(m, 0, sizeof(*m));
    m->fd = -1;
}

/* Where [gpa, gpa+len) lies in the memfd, or -1 when gmem_ptr refuses it. */
static int64_t fd_range(const struct gmem *m, uint64_t gpa, uint64_t len)
{
    uint8_t *p = gmem_ptr(m, gpa, len);
    return p ? (int64_t)(p - m->host) : -1;
}

void *gmem_prepare(const struct gmem *m, uint64_t gpa, size_t len)
{
    uint8_t *p = gmem_ptr(m, gpa, len);
    uintptr_t lo, hi;

    if (!p)
        return NULL;
    lo = (uintptr_t)p & ~(uintptr_t)(DOMUS_PAGE_SIZE - 1);
    hi = ((uintptr_t)p + len + DOMUS_PAGE_SIZE - 1) & ~(uintptr_t)(DOMUS_PAGE_SIZE - 1);
    (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE); /* best effort */
    return p;
}

int gmem_store(const struct gmem *m, uint64_t gpa, const void *src, size_t len)
{
    uint8_t *p = gmem_prepare(m, gpa, len);

    if (!p)
        return -EFAULT;
    memcpy(p, src, len);
    return 0;
}

/* Is [gpa, gpa+len) inside [base, base+size)?  len > 0, no overflow. */
static int in_region(uint64_t gpa, uint64_t len, uint64_t base, uint64_t size)
{
    return gpa >= base && gpa - base <= size && len <= size - (gpa - base);
}

int64_t gmem_fd_offset(const struct gmem *m, uint64_t gpa)
{
    return fd_range(m, gpa, 1);
}

uint64_t gmem_region_gpa(const struct gmem *m, unsigned i)
{
    return __atomic_load_n(&m->region[i].gpa, __ATOMIC_ACQUIRE);
}

void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
    if (!m->host || len == 0)
        return NULL;
    for (unsigned i = 0; i < GMEM_NR_REGIONS; i++) {
        const struct gmem_region *r = &m->region[i];
        uint64_t base = gmem_region_gpa(m, i);
        if (i >= GMEM_REGION_EXTRA && !base)
            continue; /* an extra page not placed */
        if (in_region(gpa, len, base, r->size))
            return m->host + r->fd_offset + (gpa - base);
    }
    return NULL;
}

void *gmem_place_extra(struct gmem *m, unsigned idx, uint64_t gpa)
{
    struct gmem_region *r;

    if (!m->host || idx >= GMEM_EXTRA_PAGES || !gpa || (gpa & (DOMUS_PAGE_SIZE - 1)))
        return NULL;
    r = &m->region[GMEM_REGION_EXTRA + idx];
    uint64_t old = __atomic_exchange_n(&r->gpa, 0, __ATOMIC_ACQ_REL);
    if (gmem_ptr(m, gpa, 1) != NULL) {
        __atomic_store_n(&r->gpa, old, __ATOMIC_RELEASE);
        return NULL; /* overlaps memory that is already there */
    }
    __atomic_store_n(&r->gpa, gpa, __ATOMIC_RELEASE);
    return m->host + r->fd_offset;
}

void gmem_unplace_extra(struct gmem *m, unsigned idx)
{
    if (idx < GMEM_EXTRA_PAGES)
        __atomic_store_n(&m->region[GMEM_REGION_EXTRA + idx].gpa, 0, __ATOMIC_RELEASE);
}

int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, size_t len)
{
    const void *p = gmem_ptr(m, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(dst, p, len);
    return 0;
}

int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, size_t len)
{
    void *p = gmem_ptr(m, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(p, src, len);
    return 0;
}

/* ---- dirty tracking ---- */

uint64_t gmem_dirty_npages(const struct gmem *m)
{
    return (m->ram_size + SPECIAL_SIZE) >> DOMUS_PAGE_SHIFT;
}

int gmem_dirty_start(struct gmem *m)
{
    size_t words = (gmem_dirty_npages(m) + 63) / 64;

    if (!m->dirty && !(m->dirty = calloc(words ? words : 1, sizeof(uint64_t))))
        return -ENOMEM;
    atomic_store(&m->dirty_on, 1);
    return 0;
}

void gmem_dirty_stop(struct gmem *m)
{
    atomic_store(&m->dirty_on, 0);
}

void gmem_mark_dirty(const struct gmem *m, uint64_t gpa, uint64_t len)
{
    int64_t off;

    if (!atomic_load(&m->dirty_on) || !len || (off = fd_range(m, gpa, len)) < 0)
        return;
    uint64_t first = (uint64_t)off >> DOMUS_PAGE_SHIFT,
             last = ((uint64_t)off + len - 1) >> DOMUS_PAGE_SHIFT;
    for (uint64_t p = first; p <= last && p < gmem_dirty_npages(m); p++)
        __atomic_fetch_or(&m->dirty[p / 64], 1ULL << (p % 64), __ATOMIC_RELEASE);
}

void gmem_dirty_collect(struct gmem *m, uint64_t *bm)
{
    size_t words = (gmem_dirty_npages(m) + 63) / 64;

    if (!m->dirty)
        return;
    for (size_t i = 0; i < words; i++)
        bm[i] |= __atomic_exchange_n(&m->dirty[i], 0, __ATOMIC_ACQ_REL);
}

uint64_t gmem_page_gpa(const struct gmem *m, uint64_t p)
{
    uint64_t off = p << DOMUS_PAGE_SHIFT;

    if (off < m->low_end)
        return off;
    if (off < m->ram_size)
        return GMEM_HIGH_BASE + (off - m->low_end);
    return GMEM_SPECIAL_BASE + (off - m->ram_size);
}
int gmem_populate(const struct gmem *m, uint64_t gpa, uint64_t len)
{
    const volatile uint8_t *p = gmem_ptr(m, gpa, len);

    if (!p)
        return -EFAULT;
    for (uint64_t o = 0; o < len; o += DOMUS_PAGE_SIZE)
        (void)p[o];
    return 0;
}
