/* Guest memory on demand through userfaultfd, from one of two sources:
 * a save image file (lazy restore, `domus restore --lazy`: the guest runs
 * before its memory is read, docs/save-image.md, "Lazy restore") or the
 * source host over a migration's connection (post-copy, `domus migrate
 * --postcopy`, docs/migration.md).  Both share the fault thread below; a
 * file has a fill thread, a connection a pull thread.
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
    uint64_t fill_ns;     /* from the fill's start to its end (post-copy:
                           * from the first page data to the last) */
    uint64_t wanted;      /* post-copy: pages the source held */
    uint64_t wanted_left; /* of which not in yet */
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

/* ---- post-copy: the source over a connection ----
 * The stream's post-copy record (SIMG_REC_POSTCOPY) names the pages whose
 * latest contents the source still holds ("wanted").  vm_lazy_serve_conn
 * punches them out of the memfd (their copies from earlier rounds are
 * stale), registers the range and starts the fault thread, which asks the
 * source for a wanted page at its first touch (u64 memfd page number,
 * little-endian, on fd) and gives a zero page for a page neither side
 * holds.  vm_lazy_pull starts the pull thread: it reads page data records
 * from fd (those asked for and those the source pushes, in any order, a
 * page maybe twice: the copy that comes second finds it there) up to an
 * end record whose crc covers them, copies each in with UFFDIO_COPY, and
 * once every wanted page is in unregisters the range, ends the fault
 * thread and writes u64 all ones (the source may destroy its copy); then
 * done(0).  A connection that ends or fails first, a malformed record or
 * an end with pages missing: done(-errno, why), the guest having run on
 * memory it does not wholly have (the caller destroys the domain). */

/* The post-copy record (after the index's vm_lazy_new); 0 or -EINVAL. */
int vm_lazy_postcopy_set(struct vm_lazy *lz, const struct simg_rec *rec, char *err,
                         size_t errlen);
/* Drops the wanted pages, registers, starts the fault thread asking on fd
 * (dup'd; call before anything touches guest memory).  0 or -errno. */
int vm_lazy_serve_conn(struct vm_lazy *lz, int fd, char *err, size_t errlen);
/* Starts the pull thread (after vm_lazy_serve_conn); 0 or -errno. */
int vm_lazy_pull(struct vm_lazy *lz, vm_lazy_done_fn done, void *ctx, char *err,
                 size_t errlen);

/* Snapshot of the counters. */
void vm_lazy_stats(const struct vm_lazy *lz, struct vm_lazy_stats *s);

/* Stops the fill and fault threads (joined), unregisters, frees.  Stop the
 * other threads that touch guest memory (vCPUs, back ends) first: once the
 * userfaultfd is closed, a page not yet brought in reads as zeros (a thread
 * still waiting is woken to that).  NULL is fine. */
void vm_lazy_free(struct vm_lazy *lz);

#endif
