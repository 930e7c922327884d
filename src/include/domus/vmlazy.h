/* Lazy restore (domus restore --lazy): the guest runs before its memory is
 * read from the save image (docs/save-image.md, "Lazy restore").
 *
 * The guest's memfd mapping (RAM and the special pages) is registered with
 * userfaultfd in missing mode.  Every first touch of a page, whoever makes
 * it (a vCPU inside KVM, KVM itself, a back-end thread, the control thread
 * through gmem_ptr), blocks in the kernel until the fault thread resolves
 * it: UFFDIO_COPY of the page's 4 KiB from the image (pread at the offset
 * the index gives), or UFFDIO_ZEROPAGE for a page the image does not hold.
 * The fault thread touches no guest memory itself: it reads into its own
 * buffer.  The fill thread reads the whole image once more, in order,
 * checking its crc32, and copies every page not yet there; then it
 * unregisters the range (later touches are ordinary) and the fault thread
 * ends.
 *
 * A mapping of the memfd outside the registered one (blkback's rings,
 * xenstored's ring page) is not served: gmem_populate the page first.
 *
 * The image's checksum is known only once the fill has read everything: a
 * mismatch, a truncated file or a read error after the guest started is
 * reported through the done callback; the domain process then destroys
 * the domain (vm_init.c). */
#ifndef DOMUS_VMLAZY_H
#define DOMUS_VMLAZY_H

#include "domus/gmem.h"
#include "domus/saveimg.h"

#include <stdbool.h>
#include <stdint.h>

struct vm_lazy;

struct vm_lazy_stats {
    uint64_t faults;      /* faults the fault thread resolved */
    uint64_t zero_faults; /* of which with a zero page */
    uint64_t filled;      /* pages the fill thread copied */
    uint64_t present;     /* pages it found there already */
    uint64_t fill_ns;     /* from the fill's start to its end */
};

/* Called once from the fill thread when it ends: rc 0 (every page in, the
 * checksum verified) or -errno with err saying why. */
typedef void (*vm_lazy_done_fn)(void *ctx, int rc, const char *err);

/* An index for m's RAM and special pages (all zero pages until
 * vm_lazy_index); NULL when out of memory. */
struct vm_lazy *vm_lazy_new(const struct gmem *m);

/* A page data record read in index mode (simg_reader.index_only). */
int vm_lazy_index(struct vm_lazy *lz, const struct simg_rec *rec, char *err,
                  size_t errlen);

/* Registers m's RAM and special pages with a new userfaultfd and starts
 * the fault thread, which reads pages from path.  Call after the index is
 * complete and before anything touches guest memory.  0 or -errno with
 * err set (nothing left registered). */
int vm_lazy_serve(struct vm_lazy *lz, const char *path, char *err, size_t errlen);

/* Starts the fill thread reading path from its start; done is called at
 * its end.  0 or -errno with err set. */
int vm_lazy_fill(struct vm_lazy *lz, const char *path, vm_lazy_done_fn done, void *ctx,
                 char *err, size_t errlen);

/* Snapshot of the counters. */
void vm_lazy_stats(const struct vm_lazy *lz, struct vm_lazy_stats *s);

/* Stops the fill and fault threads (joined), unregisters, frees.  Stop the
 * other threads that touch guest memory (vCPUs, back ends) first: once the
 * userfaultfd is closed, a page not yet brought in reads as zeros (a thread
 * still waiting is woken to that).  NULL is fine. */
void vm_lazy_free(struct vm_lazy *lz);

#endif
