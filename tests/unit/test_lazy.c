/* Unit tests of the lazy restore (vmlazy.h) on real userfaultfd and a real
 * memfd, no KVM: an image's index read without its pages; pages read
 * through the mapping served by the fault thread (image pages and zero
 * pages) before the fill; the fill bringing in the rest and checking the
 * checksum; a flipped byte in the pages found only by the fill, which then
 * reports the mismatch; a truncated image refused by the index pass. */
#include "domus/gmem.h"
#include "domus/saveimg.h"
#include "domus/util.h"
#include "domus/vmlazy.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define RAM (64ULL << 20)
#define NDATA 1500 /* pages with data: three records */

static const char config[] = "{\"name\":\"lazy\"}";

/* Page i of the pattern: at pfn 3i+1, its number in a few places. */
static uint64_t data_gpa(unsigned i)
{
    return (uint64_t)(3 * i + 1) * DOMUS_PAGE_SIZE;
}

static void fill_source(struct gmem *a)
{
    for (unsigned i = 0; i < NDATA; i++) {
        uint64_t v = 0xfeed000000000000ULL | i;
        for (unsigned k = 0; k < 4; k++)
            gmem_write(a, data_gpa(i) + k * 1000, &v, sizeof(v));
    }
    gmem_write(a, GMEM_SPECIAL_BASE + DOMUS_PAGE_SIZE + 64, "xenstore ring", 13);
}

/* The image of a into a memfd; its fd, or -1. */
static int write_image(const struct gmem *a)
{
    int fd = memfd_create("lazy-img", 0);
    struct simg_writer w;

    simg_writer_init(&w, fd);
    if (fd < 0 || simg_write_header(&w, config) || simg_write_memory(&w, a) ||
        simg_write_end(&w))
        return -1;
    return fd;
}

/* The index pass over the image at path into lz; 0 or the reader's error. */
static int index_pass(struct vm_lazy *lz, int fd, char *err, size_t errlen)
{
    struct simg_reader r;
    struct simg_rec rec;
    char *cfg = NULL;
    int rc;

    lseek(fd, 0, SEEK_SET);
    simg_reader_init_fd(&r, fd);
    r.index_only = true;
    rc = simg_read_header(&r, &cfg);
    while (!rc && (rc = simg_read_record(&r, &rec)) == 1)
        rc = rec.type == SIMG_REC_PAGE_DATA ? vm_lazy_index(lz, &rec, err, errlen) : 0;
    if (rc)
        snprintf(err, errlen, "%s", r.err[0] ? r.err : err);
    free(cfg);
    simg_reader_free(&r);
    return rc;
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
    char err[256];
} ended = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, ""};

static void on_done(void *ctx, int rc, const char *err)
{
    (void)ctx;
    pthread_mutex_lock(&ended.lock);
    ended.done = 1;
    ended.rc = rc;
    snprintf(ended.err, sizeof(ended.err), "%s", err ? err : "");
    pthread_cond_signal(&ended.cond);
    pthread_mutex_unlock(&ended.lock);
}

/* Waits up to 30 s for on_done; its rc, or -ETIMEDOUT. */
static int wait_done(void)
{
    struct timespec t;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 30;
    pthread_mutex_lock(&ended.lock);
    while (!ended.done && rc == 0)
        rc = pthread_cond_timedwait(&ended.cond, &ended.lock, &t);
    rc = ended.done ? ended.rc : -ETIMEDOUT;
    ended.done = 0;
    pthread_mutex_unlock(&ended.lock);
    return rc;
}

static void fd_path(int fd, char *buf, size_t len)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static void test_lazy_restore(const struct gmem *a, int fd)
{
    struct gmem b;
    struct vm_lazy *lz;
    struct vm_lazy_stats st;
    char err[256] = "", path[64];
    int rc;

    fd_path(fd, path, sizeof(path));
    CHECK("lazy: target memory", gmem_init(&b, RAM) == 0);
    lz = vm_lazy_new(&b);
    rc = index_pass(lz, fd, err, sizeof(err));
    CHECK("lazy: the index pass reads the records but the pages", rc == 0);
    rc = vm_lazy_serve(lz, path, err, sizeof(err));
    if (rc)
        printf("  vm_lazy_serve: %s\n", err);
    CHECK("lazy: userfaultfd registered over the guest memory", rc == 0);
    if (rc) {
        vm_lazy_free(lz);
        gmem_destroy(&b);
        return;
    }
    /* Touched before any fill: the fault thread serves them. */
    const uint8_t *p = gmem_ptr(&b, data_gpa(777), DOMUS_PAGE_SIZE);
    const uint8_t *q = gmem_ptr(a, data_gpa(777), DOMUS_PAGE_SIZE);
    CHECK("lazy: a page with data read through the mapping is the image's",
          memcmp(p, q, DOMUS_PAGE_SIZE) == 0);
    const uint8_t *z = gmem_ptr(&b, data_gpa(5) + DOMUS_PAGE_SIZE, DOMUS_PAGE_SIZE);
    static const uint8_t zero[DOMUS_PAGE_SIZE];
    CHECK("lazy: a page the image does not hold reads as zeros",
          memcmp(z, zero, DOMUS_PAGE_SIZE) == 0);
    uint64_t v = 42; /* a write fault, then the fill must not overwrite it */
    CHECK("lazy: a write to a page not yet in",
          gmem_write(&b, data_gpa(1200) + 8, &v, sizeof(v)) == 0);
    CHECK("lazy: the special pages populated through the mapping",
          gmem_populate(&b, GMEM_SPECIAL_BASE, GMEM_SPECIAL_PAGES * DOMUS_PAGE_SIZE) ==
              0);
    vm_lazy_stats(lz, &st);
    CHECK("lazy: the faults were served by the fault thread",
          st.faults >= 3 + GMEM_SPECIAL_PAGES && st.zero_faults >= 1 && st.filled == 0);

    rc = vm_lazy_fill(lz, path, on_done, NULL, err, sizeof(err));
    rc = rc ?: wait_done();
    if (rc)
        printf("  fill: %s\n", ended.err);
    CHECK("lazy: the fill ends, the checksum verified", rc == 0);
    vm_lazy_stats(lz, &st);
    CHECK("lazy: the fill copied the pages not faulted in, skipped the others",
          st.filled + st.present == NDATA + 1 && st.present >= 3);
    uint64_t w = 0;
    gmem_read(&b, data_gpa(1200) + 8, &w, sizeof(w));
    CHECK("lazy: the guest's write survives the fill", w == 42);
    gmem_write(&b, data_gpa(1200) + 8, gmem_ptr(a, data_gpa(1200) + 8, 8), 8);
    CHECK("lazy: the whole memory equals the saved one",
          memcmp(a->host, b.host, RAM + GMEM_SPECIAL_PAGES * DOMUS_PAGE_SIZE) == 0);
    vm_lazy_free(lz);
    gmem_destroy(&b);
}

/* A byte of page data flipped: the index pass cannot see it, the fill does. */
static void test_lazy_corrupt(int fd)
{
    struct gmem b;
    struct vm_lazy *lz;
    char err[256] = "", path[64];
    off_t size = lseek(fd, 0, SEEK_END);
    uint8_t c;
    int rc;

    /* The middle of the image is page data (three records of pages). */
    pread(fd, &c, 1, size / 2);
    c ^= 0x40;
    pwrite(fd, &c, 1, size / 2);
    fd_path(fd, path, sizeof(path));
    gmem_init(&b, RAM);
    lz = vm_lazy_new(&b);
    rc = index_pass(lz, fd, err, sizeof(err));
    CHECK("lazy corrupt: the index pass does not read the flipped page", rc == 0);
    rc = rc ?: vm_lazy_serve(lz, path, err, sizeof(err));
    rc = rc ?: vm_lazy_fill(lz, path, on_done, NULL, err, sizeof(err));
    rc = rc ?: wait_done();
    CHECK("lazy corrupt: the fill reports the checksum mismatch",
          rc == -EINVAL && strstr(ended.err, "checksum mismatch"));
    vm_lazy_free(lz);
    gmem_destroy(&b);
    c ^= 0x40;
    pwrite(fd, &c, 1, size / 2);
}

/* Cut inside page data: the index pass knows the file's size. */
static void test_lazy_truncated(int fd)
{
    struct gmem b;
    struct vm_lazy *lz;
    char err[256] = "";
    off_t size = lseek(fd, 0, SEEK_END);

    ftruncate(fd, size / 2);
    gmem_init(&b, RAM);
    lz = vm_lazy_new(&b);
    int rc = index_pass(lz, fd, err, sizeof(err));
    CHECK("lazy truncated: the index pass refuses a cut image",
          rc == -EINVAL && strstr(err, "truncated image"));
    vm_lazy_free(lz);
    gmem_destroy(&b);
}

int main(void)
{
    struct gmem a;
    int fd;

    if (gmem_init(&a, RAM) < 0)
        return 1;
    fill_source(&a);
    fd = write_image(&a);
    CHECK("lazy: the image written", fd >= 0);
    if (fd >= 0) {
        test_lazy_restore(&a, fd);
        test_lazy_corrupt(fd);
        test_lazy_truncated(fd);
    }
    gmem_destroy(&a);
    return failures ? 1 : 0;
}
