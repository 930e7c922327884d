/* A domain's memory reservation: which of its RAM pages it holds and how
 * many it may hold (Xen's tot_pages and max_pages), changed by the guest's
 * balloon driver through XENMEM_decrease_reservation and
 * XENMEM_populate_physmap.
 *
 * Every RAM page (gmem's low and high regions) has one bit: set while the
 * page is populated.  All RAM starts populated: the e820 covers maxmem, and
 * a guest booted with less (memory= below maxmem) balloons the rest out
 * itself, as Xen's guests do with populate-on-demand.  A page given back is
 * punched out of the memfd (FALLOC_FL_PUNCH_HOLE): the host gets the memory
 * back and KVM's mapping of it is dropped (the kernel's MMU notifier).  A
 * guest that touches a page it gave back gets a fresh zero page that the
 * host allocates anew and that this table does not count (Xen would read
 * all ones there and drop the writes): the host's bound is still the memfd
 * (maxmem), which the guest can never exceed.
 *
 * All state is under struct hv_res's lock. */
#ifndef DOMUS_MEMOP_H
#define DOMUS_MEMOP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct domain;
struct vcpu;
struct recbuf;

#define MEMOP_MAX_ORDER 9 /* Xen's default domU max order: 2 MiB extents */

struct hv_res {
    pthread_mutex_t lock;
    uint64_t *populated; /* one bit per RAM page (index = memfd offset / 4 KiB) */
    uint64_t nr_pages;   /* RAM pages: bits in populated; 0 until memop_init */
    uint64_t tot_pages;  /* bits set */
    uint64_t max_pages;  /* populate stops here (maxmem); <= nr_pages */
};

/* After gmem_init: every RAM page populated, max_pages = all of them.
 * 0 or -ENOMEM. */
int memop_init(struct domain *d);
/* Frees the bitmap; safe twice and before memop_init. */
void memop_destroy(struct domain *d);

/* memory_op cmd (with Xen's start extent in its high bits) for the ops of
 * this module: XENMEM_decrease_reservation, populate_physmap,
 * increase_reservation, current_reservation, maximum_reservation,
 * get_pod_target, set_pod_target.  Returns the guest's result, or
 * -ENOSYS for any other op (the caller dispatches those).  A guest's bad
 * argument never logs and never allocates. */
int64_t memop_op(struct vcpu *v, uint64_t cmd, uint64_t arg);

/* Sets max_pages (mem-max); -EINVAL above the domain's RAM (its memfd
 * cannot grow) or below 1 page. */
int memop_set_max(struct domain *d, uint64_t pages);
/* Current tot_pages and max_pages (RAM pages when not initialised). */
void memop_counts(struct domain *d, uint64_t *tot, uint64_t *max);

/* Save image record SIMG_REC_HV_MEMRES: u64 nr_pages, u64 tot_pages,
 * u64 max_pages, then the bitmap, (nr_pages + 63) / 64 u64 words.  Load
 * checks that nr_pages matches the domain's RAM, that tot_pages is the
 * bitmap's population and max_pages <= nr_pages, and punches the pages the
 * bitmap says are not populated. */
int memop_save(struct domain *d, struct recbuf *rb);
int memop_load(struct domain *d, const void *body, size_t len, char *err, size_t errlen);

#endif
