/* Guest physical memory of one domain.
 *
 * RAM is one memfd (so back ends and save/restore can map it).  It appears at
 * guest-physical [0, low_end) and, when larger than GMEM_LOW_LIMIT, the rest at
 * [GMEM_HIGH_BASE, GMEM_HIGH_BASE + high_size).  GMEM_SPECIAL_PAGES special pages
 * (console ring, xenstore ring, ...) follow the RAM in the memfd and appear at
 * GMEM_SPECIAL_BASE; the e820 marks them reserved.
 *
 * Every access to guest memory by host code goes through gmem_ptr(), the one
 * overflow-checked translation helper. */
#ifndef DOMUS_GMEM_H
#define DOMUS_GMEM_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_LOW_LIMIT 0xC0000000ULL    /* low RAM ends at most here (3 GiB) */
#define GMEM_HIGH_BASE 0x100000000ULL   /* RAM above GMEM_LOW_LIMIT continues here */
#define GMEM_SPECIAL_BASE 0xFEFF0000ULL /* special pages, reserved in the e820 */
#define GMEM_SPECIAL_PAGES 16
#define GMEM_MIN_RAM (32ULL << 20)
#define GMEM_EXTRA_PAGES 32 /* pages the guest may place anywhere (grant frames) */

/* Special page indexes (gpa = GMEM_SPECIAL_BASE + idx * 4096). */
enum gmem_special {
    GMEM_SPECIAL_CONSOLE = 0,  /* struct xencons_interface */
    GMEM_SPECIAL_XENSTORE = 1, /* struct xenstore_domain_interface */
};

/* The region table: every piece of guest-physical memory, where it lies in
 * the memfd and which KVM memory slot maps it.  The memslots, the host's
 * translation (gmem_ptr) and, later, dirty logging and ballooning all read
 * it.  Fixed entries: */
enum gmem_region_idx {
    GMEM_REGION_LOW = 0,     /* RAM at [0, low_end) */
    GMEM_REGION_HIGH = 1,    /* RAM at GMEM_HIGH_BASE (size 0 when none) */
    GMEM_REGION_SPECIAL = 2, /* the special pages */
    GMEM_REGION_EXTRA = 3,   /* + idx: extra page idx, gpa 0 until placed */
    GMEM_NR_REGIONS = GMEM_REGION_EXTRA + GMEM_EXTRA_PAGES,
};
#define GMEM_EXTRA_SLOT_BASE 8 /* KVM slot of extra page 0 */

struct gmem_region {
    uint64_t gpa;       /* guest-physical base; atomic for the extra pages */
    uint64_t size;      /* bytes (0: no such region) */
    uint64_t fd_offset; /* where it starts in the memfd (and in host) */
    uint32_t slot;      /* KVM memory slot */
};

struct gmem {
    int fd;        /* memfd: RAM, the special pages, then the extra pages */
    uint8_t *host; /* mapping of the whole memfd */
    uint64_t ram_size;
    uint64_t low_end;   /* gpa where low RAM ends */
    uint64_t high_size; /* bytes of RAM at GMEM_HIGH_BASE */
    struct gmem_region region[GMEM_NR_REGIONS];
    /* Pages Domus itself wrote while dirty logging is on (gmem_dirty_*):
     * one bit per page of RAM and the special pages, by memfd page. */
    uint64_t *dirty;
    _Atomic int dirty_on;
};

/* The seals of a guest memfd: it can neither shrink nor grow. */
#define GMEM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/* Creates the memfd for ram_bytes of RAM (a multiple of 4 KiB, at least
 * GMEM_MIN_RAM) plus the special pages, seals it (GMEM_SEALS, and no more
 * seals), maps it and fills the region table.  Returns 0 or -errno (-ENOMEM
 * when the host cannot back it). */
int gmem_init(struct gmem *m, uint64_t ram_bytes);

/* Unmaps and closes; safe on a zeroed or already destroyed gmem. */
void gmem_destroy(struct gmem *m);

/* Host pointer for guest-physical [gpa, gpa + len) when that range lies wholly
 * inside one region (low RAM, high RAM, special pages or one placed extra
 * page); NULL otherwise, also on arithmetic overflow or len == 0. */
void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len);

/* Copies between guest memory and host buffers; 0 or -EFAULT. */
int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, size_t len);
int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, size_t len);

/* Places extra page idx at guest-physical gpa (page-aligned, outside RAM
 * and the special pages): its region's gpa; returns its host address, or
 * NULL (the page stays where it was). */
void *gmem_place_extra(struct gmem *m, unsigned idx, uint64_t gpa);

/* Extra page idx is placed nowhere any more. */
void gmem_unplace_extra(struct gmem *m, unsigned idx);

/* The mapping of [gpa, gpa+len), its pages allocated in one call
 * (MADV_POPULATE_WRITE, best effort) rather than by a fault each, for the
 * caller to fill; NULL when gmem_ptr refuses the range.  gmem_store: src
 * copied there; 0 or -EFAULT.  The builder's way in: 45 MB of kernel took
 * 0.15-0.24 s so in the 6.12 test host (4 Dec 2026), 0.23-0.71 s written
 * through the memfd (pwrite), 0.14-0.23 s faulting page by page; natively
 * 70 ms the first and second way, 130 ms the third. */
void *gmem_prepare(const struct gmem *m, uint64_t gpa, size_t len);
int gmem_store(const struct gmem *m, uint64_t gpa, const void *src, size_t len);

/* Reads one byte of each page of [gpa, gpa+len) through the mapping, so
 * that a page a lazy restore has not brought in yet (vmlazy.h: only this
 * mapping is served) is in the memfd before another mapping of it sees it.
 * 0 or -EFAULT when gmem_ptr refuses the range. */
int gmem_populate(const struct gmem *m, uint64_t gpa, uint64_t len);

/* Offset in the memfd of a gpa that gmem_ptr accepts, or -1. */
int64_t gmem_fd_offset(const struct gmem *m, uint64_t gpa);

/* ---- dirty tracking (live migration) ----
 * KVM logs the pages the guest's vCPUs write (KVM_MEM_LOG_DIRTY_PAGES,
 * kvm_dirty_log_*); writes by Domus on the guest's behalf through the host
 * mapping are invisible to it.  Those whose pages can be anywhere in RAM
 * (back ends writing granted pages, grant copies) are marked here; the
 * pages at fixed places (the special pages, shared_info, vcpu_info) are
 * sent again in the final round instead.  Pages are numbered by their
 * place in the memfd (page p is at fd offset p * 4096), which is also how
 * the memslots' dirty bitmaps of the fixed regions line up. */

/* The pages tracked: RAM and the special pages. */
uint64_t gmem_dirty_npages(const struct gmem *m);

/* Starts marking (allocates the bitmap, all clear); 0 or -ENOMEM. */
int gmem_dirty_start(struct gmem *m);

/* Stops marking; the bitmap is kept (freed by gmem_destroy). */
void gmem_dirty_stop(struct gmem *m);

/* The pages of [gpa, gpa + len) are dirty (no-op unless marking, or
 * outside RAM and the special pages). */
void gmem_mark_dirty(const struct gmem *m, uint64_t gpa, uint64_t len);

/* ORs the pages marked since the last call into bm (gmem_dirty_npages
 * bits) and clears them. */
void gmem_dirty_collect(struct gmem *m, uint64_t *bm);

/* The guest-physical address of memfd page p (< gmem_dirty_npages). */
uint64_t gmem_page_gpa(const struct gmem *m, uint64_t p);

/* Region i's guest-physical base (an atomic read: extra pages move). */
uint64_t gmem_region_gpa(const struct gmem *m, unsigned i);

#endif
