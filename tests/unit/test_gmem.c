/* Unit tests of gmem's region table (gmem.h): the fixed regions, their
 * memfd offsets and KVM slots, and extra pages moving through it. */
#include "domus/gmem.h"
#include "domus/util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

static void test_regions(uint64_t ram, uint64_t low, uint64_t high)
{
    struct gmem m;
    char name[96];

    snprintf(name, sizeof(name), "regions (%llu MiB): init",
             (unsigned long long)(ram >> 20));
    if (gmem_init(&m, ram) < 0) {
        CHECK(name, 0);
        return;
    }
    const struct gmem_region *r = m.region;
    CHECK(name, m.low_end == low && m.high_size == high);
    CHECK("regions: low RAM at 0, slot 0, memfd 0",
          r[GMEM_REGION_LOW].gpa == 0 && r[GMEM_REGION_LOW].size == low &&
              r[GMEM_REGION_LOW].fd_offset == 0 && r[GMEM_REGION_LOW].slot == 0);
    CHECK("regions: high RAM after low RAM in the memfd, slot 1",
          r[GMEM_REGION_HIGH].gpa == GMEM_HIGH_BASE && r[GMEM_REGION_HIGH].size == high &&
              r[GMEM_REGION_HIGH].fd_offset == low && r[GMEM_REGION_HIGH].slot == 1);
    CHECK("regions: special pages after RAM, slot 2",
          r[GMEM_REGION_SPECIAL].gpa == GMEM_SPECIAL_BASE &&
              r[GMEM_REGION_SPECIAL].size == GMEM_SPECIAL_PAGES * DOMUS_PAGE_SIZE &&
              r[GMEM_REGION_SPECIAL].fd_offset == ram &&
              r[GMEM_REGION_SPECIAL].slot == 2);
    bool extras = true;
    for (unsigned i = 0; i < GMEM_EXTRA_PAGES; i++) {
        const struct gmem_region *e = &r[GMEM_REGION_EXTRA + i];
        extras =
            extras && !gmem_region_gpa(&m, GMEM_REGION_EXTRA + i) &&
            e->size == DOMUS_PAGE_SIZE && e->slot == GMEM_EXTRA_SLOT_BASE + i &&
            e->fd_offset == ram + (GMEM_SPECIAL_PAGES + (uint64_t)i) * DOMUS_PAGE_SIZE;
    }
    CHECK("regions: extra pages unplaced, after the special pages, slots 8..", extras);
    CHECK("regions: gmem_ptr through the table",
          gmem_ptr(&m, 0, 1) == m.host &&
              gmem_ptr(&m, low - 4096, 4096) == m.host + low - 4096 &&
              !gmem_ptr(&m, low - 4096, 4097) &&
              gmem_ptr(&m, GMEM_SPECIAL_BASE + 4096, 1) == m.host + ram + 4096 &&
              (high ? gmem_ptr(&m, GMEM_HIGH_BASE, 1) == m.host + low
                    : !gmem_ptr(&m, GMEM_HIGH_BASE, 1)));
    uint64_t at = 0xF0000000ULL;
    uint8_t *p = gmem_place_extra(&m, 5, at);
    const struct gmem_region *e5 = &r[GMEM_REGION_EXTRA + 5];
    CHECK("regions: a placed extra page is its region's gpa",
          p == m.host + e5->fd_offset &&
              gmem_region_gpa(&m, GMEM_REGION_EXTRA + 5) == at &&
              gmem_ptr(&m, at + 8, 8) == p + 8 &&
              gmem_fd_offset(&m, at) == (int64_t)e5->fd_offset);
    CHECK("regions: an extra page cannot sit on RAM or another extra page",
          !gmem_place_extra(&m, 6, 4096) && !gmem_place_extra(&m, 6, at) &&
              !gmem_place_extra(&m, GMEM_EXTRA_PAGES, at + 4096));
    uint8_t *q = gmem_place_extra(&m, 5, at + 8192);
    CHECK("regions: a moved extra page leaves its old place",
          q == p && !gmem_ptr(&m, at, 1) && gmem_ptr(&m, at + 8192, 1) == p);
    gmem_destroy(&m);
}

static int bit(const uint64_t *bm, uint64_t p)
{
    return (int)((bm[p / 64] >> (p % 64)) & 1);
}

static uint64_t popcount(const uint64_t *bm, uint64_t n)
{
    uint64_t c = 0;
    for (uint64_t p = 0; p < n; p++)
        c += (uint64_t)bit(bm, p);
    return c;
}

/* Domus's own dirty marks: by memfd page, across low RAM, high RAM and the
 * special pages; nothing before the start, nothing for extra pages. */
static void test_dirty(void)
{
    struct gmem m;
    uint64_t ram = 3584ULL << 20, bm[(3584ULL << 20) / 4096 / 64 + 1] = {0};

    if (gmem_init(&m, ram) < 0) {
        CHECK("dirty: init", 0);
        return;
    }
    uint64_t n = gmem_dirty_npages(&m), high0 = GMEM_LOW_LIMIT / 4096;
    CHECK("dirty: RAM and the special pages are tracked",
          n == ram / 4096 + GMEM_SPECIAL_PAGES && (n + 63) / 64 <= ARRAY_SIZE(bm));
    gmem_mark_dirty(&m, 0x5000, 1);
    gmem_dirty_collect(&m, bm);
    CHECK("dirty: nothing is marked before gmem_dirty_start", popcount(bm, n) == 0);
    CHECK("dirty: start", gmem_dirty_start(&m) == 0);
    gmem_mark_dirty(&m, 0x5000, 1);
    gmem_mark_dirty(&m, 0x7ff0, 0x20); /* two pages */
    gmem_mark_dirty(&m, GMEM_HIGH_BASE + 0x3000, 4096);
    gmem_mark_dirty(&m, GMEM_SPECIAL_BASE + 4096, 8);
    gmem_mark_dirty(&m, GMEM_SPECIAL_BASE - 4096, 8); /* a hole: ignored */
    uint8_t *x = gmem_place_extra(&m, 0, 0x200000000ULL);
    gmem_mark_dirty(&m, 0x200000000ULL, 8); /* an extra page: not tracked */
    gmem_dirty_collect(&m, bm);
    uint64_t sp = (ram >> 12) + 1;
    CHECK("dirty: the pages written are marked, by memfd page",
          x && bit(bm, 5) && bit(bm, 7) && bit(bm, 8) && bit(bm, high0 + 3) &&
              bit(bm, sp) && popcount(bm, n) == 5);
    CHECK("dirty: page numbers map back to their gpa",
          gmem_page_gpa(&m, 5) == 0x5000 &&
              gmem_page_gpa(&m, high0 + 3) == GMEM_HIGH_BASE + 0x3000 &&
              gmem_page_gpa(&m, sp) == GMEM_SPECIAL_BASE + 4096);
    memset(bm, 0, sizeof(bm));
    gmem_dirty_collect(&m, bm);
    CHECK("dirty: a collect clears the marks", popcount(bm, n) == 0);
    gmem_dirty_stop(&m);
    gmem_mark_dirty(&m, 0x5000, 1);
    gmem_dirty_collect(&m, bm);
    CHECK("dirty: nothing is marked after gmem_dirty_stop", popcount(bm, n) == 0);
    gmem_destroy(&m);
}

int main(void)
{
    test_dirty();
    test_regions(64ULL << 20, 64ULL << 20, 0);
    test_regions(3584ULL << 20, GMEM_LOW_LIMIT, 512ULL << 20);
    return failures ? 1 : 0;
}
