/* A debugging check of live migration (vm.h, docs/migration.md): with
 * DOMUS_MIG_CHECK=FILE in both hosts' environment, the source copies every
 * memory page to FILE.src once its final round is sent (the guest paused),
 * and the destination, its memory restored and before the guest's first
 * instruction there, compares its own pages with FILE.src and logs those
 * that differ: a page the stream lost, or a write after the last round.
 * The two hosts must share FILE's directory (the tests' two network
 * namespaces do). */
#include "domus/gmem.h"
#include "domus/util.h"
#include "domus/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGCHECK_LOG_MAX 32 /* pages named in the log; the rest counted */

static const char *check_file(char *path, size_t len)
{
    const char *base = getenv("DOMUS_MIG_CHECK");
    if (!base || !*base || (size_t)snprintf(path, len, "%s.src", base) >= len)
        return NULL;
    return path;
}

static const uint8_t *page(const struct gmem *m, uint64_t p)
{
    static const uint8_t none[DOMUS_PAGE_SIZE];
    const uint8_t *h = gmem_ptr(m, gmem_page_gpa(m, p), DOMUS_PAGE_SIZE);
    return h ? h : none;
}

void vm_migcheck_source(const struct gmem *m)
{
    char path[512], tmp[530];
    uint64_t n = gmem_dirty_npages(m), p;
    FILE *f;

    if (!check_file(path, sizeof(path)))
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!(f = fopen(tmp, "we"))) {
        dwarn("migration check: %s: %s", tmp, strerror(errno));
        return;
    }
    for (p = 0; p < n && fwrite(page(m, p), DOMUS_PAGE_SIZE, 1, f) == 1; p++)
        ;
    if (fclose(f) || p < n || rename(tmp, path) < 0)
        dwarn("migration check: %s: cannot write it", path);
    else
        dinfo("migration check: %llu pages copied to %s", (unsigned long long)n, path);
}

/* Page p differs from the source's copy s: its address, the bytes that
 * differ, and the first 8-byte word that does on each side. */
static void log_page(const struct gmem *m, uint64_t p, const uint8_t *s, const uint8_t *d)
{
    unsigned nb = 0, first = DOMUS_PAGE_SIZE;
    uint64_t ws = 0, wd = 0;

    for (unsigned i = 0; i < DOMUS_PAGE_SIZE; i++)
        if (s[i] != d[i] && nb++ == 0)
            first = i;
    memcpy(&ws, s + (first & ~7u), 8);
    memcpy(&wd, d + (first & ~7u), 8);
    dwarn("migration check: page %#llx (memfd page %llu): %u bytes differ, the first at "
          "%#x: source %#018llx, here %#018llx",
          (unsigned long long)gmem_page_gpa(m, p), (unsigned long long)p, nb, first,
          (unsigned long long)ws, (unsigned long long)wd);
}

void vm_migcheck_dest(const struct gmem *m)
{
    char path[512];
    uint8_t src[DOMUS_PAGE_SIZE];
    uint64_t n = gmem_dirty_npages(m), bad = 0, p;
    FILE *f;

    if (!check_file(path, sizeof(path)))
        return;
    if (!(f = fopen(path, "re"))) {
        dwarn("migration check: %s: %s", path, strerror(errno));
        return;
    }
    for (p = 0; p < n && fread(src, sizeof(src), 1, f) == 1; p++) {
        const uint8_t *d = page(m, p);
        if (!memcmp(src, d, sizeof(src)))
            continue;
        if (bad++ < MIGCHECK_LOG_MAX)
            log_page(m, p, src, d);
    }
    fclose(f);
    if (p < n)
        dwarn("migration check: %s: too short (%llu pages)", path, (unsigned long long)p);
    else
        dinfo("migration check: %llu of %llu pages differ from the source's",
              (unsigned long long)bad, (unsigned long long)n);
}
