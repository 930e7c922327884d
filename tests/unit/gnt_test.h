/* Grant entries written by hand, as a guest's front end writes them, for
 * the back-end unit tests (test_blkback, test_netback, test_blkxs). */
#ifndef DOMUS_TEST_GNT_H
#define DOMUS_TEST_GNT_H

#include "domus/hv.h"

#include <stdbool.h>
#include <stdint.h>

/* Entry ref of d's v1 grant table (its frame at gt_gpa) grants the frame
 * at gpa to domain `to`, read-only when ro. */
static inline void test_grant(struct domain *d, uint64_t gt_gpa, grant_ref_t ref,
                              uint64_t gpa, domid_t to, bool ro)
{
    grant_entry_v1_t *e = gmem_ptr(&d->mem, gt_gpa + ref * sizeof(*e), sizeof(*e));
    e->domid = to;
    e->frame = (uint32_t)(gpa >> 12);
    e->flags = GTF_permit_access | (ro ? GTF_readonly : 0);
}

#endif
