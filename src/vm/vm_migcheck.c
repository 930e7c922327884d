/* A debugging check of live migration (vm.h, docs/migration.md): with
 * DOMUS_MIG_CHECK=FILE in both hosts' environment, the source writes one
 * hash per memory page to FILE.src once its final round is sent (the
 * guest paused), and the destination, its memory restored and before the
 * guest's first instruction there, hashes its own pages and logs those
 * that differ from FILE.src: a page the stream lost or a write after the
 * last round.  The two hosts must share FILE's directory (the tests' two
 * network namespaces do). */
#include "domus/gmem.h"
#include "domus/util.h"
#include "domus/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGCHECK_LOG_MAX 32 /* pages named in the log; the rest counted */

static uint64_t page_hash(const uint64_t *w)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < DOMUS_PAGE_SIZE / sizeof(*w); i++)
        h = (h ^ w[i]) * 1099511628211ULL;
    return h;
}

/* One hash per memfd page (gmem_dirty_npages); NULL on a failure. */
static uint64_t *hash_pages(const struct gmem *m, uint64_t *np)
{
    uint64_t n = gmem_dirty_npages(m), *h = calloc(n ? n : 1, sizeof(*h));
    for (uint64_t p = 0; h && p < n; p++) {
        const uint64_t *w = gmem_ptr(m, gmem_page_gpa(m, p), DOMUS_PAGE_SIZE);
        h[p] = w ? page_hash(w) : 0;
    }
    *np = n;
    return h;
}

static const char *check_file(char *path, size_t len, const char *suffix)
{
    const char *base = getenv("DOMUS_MIG_CHECK");
    if (!base || !*base || (size_t)snprintf(path, len, "%s.%s", base, suffix) >= len)
        return NULL;
    return path;
}

void vm_migcheck_source(const struct gmem *m)
{
    char path[512], tmp[530];
    uint64_t n = 0, *h;
    FILE *f = NULL;
    int rc = -ENOMEM;

    if (!check_file(path, sizeof(path), "src"))
        return;
    if (!(h = hash_pages(m, &n)))
        goto out;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    rc = (f = fopen(tmp, "we")) ? 0 : -errno;
    if (!rc && fwrite(h, sizeof(*h), n, f) != n)
        rc = -EIO;
    if (f && fclose(f) && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path) < 0)
        rc = -errno;
out:
    free(h);
    if (rc)
        dwarn("migration check: %s: %s", path, strerror(-rc));
    else
        dinfo("migration check: %llu page hashes in %s", (unsigned long long)n, path);
}

static void report(const struct gmem *m, const uint64_t *src, const uint64_t *dst,
                   uint64_t n)
{
    uint64_t bad = 0;
    for (uint64_t p = 0; p < n; p++) {
        if (src[p] == dst[p])
            continue;
        if (bad++ < MIGCHECK_LOG_MAX)
            dwarn("migration check: page %#llx (memfd page %llu) differs from the source's",
                  (unsigned long long)gmem_page_gpa(m, p), (unsigned long long)p);
    }
    dinfo("migration check: %llu of %llu pages differ from the source's",
          (unsigned long long)bad, (unsigned long long)n);
}

void vm_migcheck_dest(const struct gmem *m)
{
    char path[512];
    uint64_t n = 0, *dst = NULL, *src = NULL;
    FILE *f = NULL;

    if (!check_file(path, sizeof(path), "src"))
        return;
    if (!(dst = hash_pages(m, &n)) || !(src = calloc(n ? n : 1, sizeof(*src))))
        goto out;
    if (!(f = fopen(path, "re")) || fread(src, sizeof(*src), n, f) != n) {
        dwarn("migration check: %s: %s", path, f ? "too short" : strerror(errno));
        goto out;
    }
    report(m, src, dst, n);
out:
    if (f)
        fclose(f);
    free(src);
    free(dst);
}
