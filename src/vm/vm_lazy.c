/* Guest memory filled on demand through userfaultfd (vmlazy.h): a lazy
 * restore's pages from the image file, a post-copy migration's from the
 * source over the connection. */
#include "domus/vmlazy.h"
#include "domus/recbuf.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A post-copy page's state in index[] (the connection is the source). */
enum { PC_NONE, PC_WANTED, PC_ASKED, PC_IN };

struct vm_lazy {
    const struct gmem *m;
    uint8_t *base; /* the registered range: RAM and the special pages */
    uint64_t len;
    uint64_t npages;
    /* per page: the image's offset of its data + 1, 0: a zero page (a
     * file); or PC_* (a connection) */
    uint64_t *index;
    int uffd, img_fd, stop_fd;
    int conn_fd;           /* post-copy: page data in, requests out; or -1 */
    bool have_wanted;      /* post-copy: the stream's post-copy record was read */
    pthread_mutex_t wlock; /* one writer at a time on conn_fd */
    bool registered, fault_running, fill_running;
    pthread_t fault_th, fill_th;
    char *fill_path;
    vm_lazy_done_fn done;
    void *done_ctx;
    atomic_bool stop;
    atomic_uint_fast64_t faults, zero_faults, filled, present, wanted_left;
    uint64_t wanted;
    uint64_t fill_ns;
};

struct vm_lazy *vm_lazy_new(const struct gmem *m)
{
    struct vm_lazy *lz = calloc(1, sizeof(*lz));

    if (!lz)
        return NULL;
    lz->m = m;
    lz->base = m->host;
    lz->len = m->region[GMEM_REGION_EXTRA].fd_offset;
    lz->npages = lz->len >> DOMUS_PAGE_SHIFT;
    lz->uffd = lz->img_fd = lz->stop_fd = lz->conn_fd = -1;
    pthread_mutex_init(&lz->wlock, NULL);
    lz->index = calloc(lz->npages, sizeof(*lz->index));
    if (!lz->index) {
        free(lz);
        return NULL;
    }
    return lz;
}

int vm_lazy_index(struct vm_lazy *lz, const struct simg_rec *rec, char *err,
                  size_t errlen)
{
    return simg_index_pages(lz->m, rec, lz->index, err, errlen);
}

/* ---- the fault thread ---- */

/* Reads page data at image offset off into buf; 0 or -errno. */
static int read_page(struct vm_lazy *lz, uint64_t off, uint8_t *buf)
{
    size_t got = 0;

    while (got < DOMUS_PAGE_SIZE) {
        ssize_t n =
            pread(lz->img_fd, buf + got, DOMUS_PAGE_SIZE - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        got += (size_t)n;
    }
    return 0;
}

/* Resolves the fault at addr: the image's page, or a zero page.  A page
 * the image cannot give (a read error) is given as zeros and said once:
 * the fill thread fails on the same read and the domain is destroyed. */
static void serve(struct vm_lazy *lz, uint64_t addr, uint8_t *buf)
{
    uint64_t page = (addr - (uint64_t)(uintptr_t)lz->base) >> DOMUS_PAGE_SHIFT;
    uint64_t off = page < lz->npages ? lz->index[page] : 0;
    uint64_t dst = (uint64_t)(uintptr_t)lz->base + (page << DOMUS_PAGE_SHIFT);
    int rc = 0, tries = 0;

    if (off && (rc = read_page(lz, off - 1, buf)) < 0) {
        derr("lazy restore: reading page %#llx of the image: %s",
             (unsigned long long)(off - 1), strerror(-rc));
        off = 0;
    }
    atomic_fetch_add(&lz->faults, 1); /* before the faulting thread goes on */
    if (!off)
        atomic_fetch_add(&lz->zero_faults, 1);
    do {
        if (off) {
            struct uffdio_copy c = {dst, (uint64_t)(uintptr_t)buf, DOMUS_PAGE_SIZE, 0, 0};
            rc = ioctl(lz->uffd, UFFDIO_COPY, &c) < 0 ? -errno : 0;
        } else {
            struct uffdio_zeropage z = {{dst, DOMUS_PAGE_SIZE}, 0, 0};
            rc = ioctl(lz->uffd, UFFDIO_ZEROPAGE, &z) < 0 ? -errno : 0;
        }
    } while (rc == -EAGAIN && ++tries < 100);
    if (rc == -EEXIST) { /* the fill thread was first: wake the faulting thread */
        struct uffdio_range r = {dst, DOMUS_PAGE_SIZE};
        rc = ioctl(lz->uffd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
    }
    if (rc < 0)
        derr("lazy restore: resolving a fault at page %#llx: %s",
             (unsigned long long)page, strerror(-rc));
}

/* Post-copy: asks the source for page (u64, little-endian); 0 or -errno. */
static int ask(struct vm_lazy *lz, uint64_t page)
{
    uint8_t b[8];
    size_t got = 0;
    int rc = 0;

    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(page >> (8 * i));
    pthread_mutex_lock(&lz->wlock);
    while (got < sizeof(b) && !rc) {
        ssize_t n = send(lz->conn_fd, b + got, sizeof(b) - got, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = n < 0 ? -errno : -EIO;
        else
            got += (size_t)n;
    }
    pthread_mutex_unlock(&lz->wlock);
    return rc;
}

static bool pc_cas(uint64_t *st, uint64_t from, uint64_t to)
{
    return __atomic_compare_exchange_n(st, &from, to, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

/* Post-copy: a page the source holds is asked for once (its copy, by the
 * pull thread, wakes every thread waiting on it); one that has come is
 * woken; one neither side holds (never written) is a zero page. */
static void serve_conn(struct vm_lazy *lz, uint64_t addr)
{
    uint64_t page = (addr - (uint64_t)(uintptr_t)lz->base) >> DOMUS_PAGE_SHIFT;
    uint64_t *st = page < lz->npages ? &lz->index[page] : NULL;
    uint64_t dst = (uint64_t)(uintptr_t)lz->base + (page << DOMUS_PAGE_SHIFT);
    struct uffdio_range r = {dst, DOMUS_PAGE_SIZE};
    uint64_t v = st ? __atomic_load_n(st, __ATOMIC_ACQUIRE) : PC_NONE;
    int rc;

    if (v == PC_WANTED && pc_cas(st, PC_WANTED, PC_ASKED)) {
        atomic_fetch_add(&lz->faults, 1);
        if ((rc = ask(lz, page)) < 0)
            derr("post-copy: asking the source for page %#llx: %s",
                 (unsigned long long)page, strerror(-rc));
        return;
    }
    v = st ? __atomic_load_n(st, __ATOMIC_ACQUIRE) : PC_NONE;
    if (v == PC_WANTED || v == PC_ASKED)
        return; /* asked for already */
    if (v == PC_NONE) {
        int tries = 0;
        atomic_fetch_add(&lz->zero_faults, 1);
        do {
            struct uffdio_zeropage z = {{dst, DOMUS_PAGE_SIZE}, 0, 0};
            rc = ioctl(lz->uffd, UFFDIO_ZEROPAGE, &z) < 0 ? -errno : 0;
        } while (rc == -EAGAIN && ++tries < 100);
        if (rc != -EEXIST) {
            if (rc < 0)
                derr("post-copy: a zero page at page %#llx: %s", (unsigned long long)page,
                     strerror(-rc));
            return;
        }
    }
    if (ioctl(lz->uffd, UFFDIO_WAKE, &r) < 0)
        derr("post-copy: waking a fault at page %#llx: %s", (unsigned long long)page,
             strerror(errno));
}

static void *fault_thread(void *arg)
{
    struct vm_lazy *lz = arg;
    uint8_t *buf = malloc(DOMUS_PAGE_SIZE);
    struct pollfd p[2] = {{lz->uffd, POLLIN, 0}, {lz->stop_fd, POLLIN, 0}};

    while (buf) {
        struct uffd_msg msg[16];
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        ssize_t n = read(lz->uffd, msg, sizeof(msg));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break;
        for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++)
            if (msg[i].event != UFFD_EVENT_PAGEFAULT)
                continue;
            else if (lz->conn_fd >= 0)
                serve_conn(lz, msg[i].arg.pagefault.address);
            else
                serve(lz, msg[i].arg.pagefault.address, buf);
    }
    free(buf);
    return NULL;
}

/* A new userfaultfd that also sees faults taken in the kernel (KVM's, a
 * read(2) into guest memory): from /dev/userfaultfd (Linux 6.1; its file
 * mode is the permission, and domusd's children have no CAP_SYS_PTRACE),
 * else from the system call (which needs that capability unless
 * vm.unprivileged_userfaultfd is 1).  The fd, or -1 with errno set. */
static int uffd_new(void)
{
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC), fd, e;

    if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        e = errno;
        close(dev);
        if (fd >= 0)
            return fd;
        errno = e;
    }
    return (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
}

/* A userfaultfd registered over the range, with copy and zero page. */
static int uffd_open(struct vm_lazy *lz, char *err, size_t errlen)
{
    struct uffdio_api api = {.api = UFFD_API};
    struct uffdio_register reg = {
        {(uint64_t)(uintptr_t)lz->base, lz->len}, UFFDIO_REGISTER_MODE_MISSING, 0};
    uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE);

    lz->uffd = uffd_new();
    if (lz->uffd < 0) {
        dfmt(err, errlen, "userfaultfd: %s%s", strerror(errno),
             errno == EPERM ? " (a lazy restore needs /dev/userfaultfd, or "
                              "CAP_SYS_PTRACE, or vm.unprivileged_userfaultfd = 1)"
                            : "");
        return -errno;
    }
    if (ioctl(lz->uffd, UFFDIO_API, &api) < 0 ||
        ioctl(lz->uffd, UFFDIO_REGISTER, &reg) < 0) {
        dfmt(err, errlen, "userfaultfd on the guest's memory: %s", strerror(errno));
        return -errno;
    }
    lz->registered = true;
    if ((reg.ioctls & need) != need) {
        dfmt(err, errlen, "userfaultfd: this kernel cannot copy into shared memory");
        return -ENOTSUP;
    }
    return 0;
}

/* Registers the range with a new userfaultfd and starts the fault thread. */
static int start_faults(struct vm_lazy *lz, char *err, size_t errlen)
{
    int rc = uffd_open(lz, err, errlen);

    if (rc < 0)
        return rc;
    if ((rc = -pthread_create(&lz->fault_th, NULL, fault_thread, lz)) < 0) {
        dfmt(err, errlen, "cannot start the fault thread: %s", strerror(-rc));
        return rc;
    }
    lz->fault_running = true;
    return 0;
}

int vm_lazy_serve(struct vm_lazy *lz, const char *path, char *err, size_t errlen)
{
    lz->img_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (lz->img_fd < 0) {
        dfmt(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    lz->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lz->stop_fd < 0) {
        dfmt(err, errlen, "eventfd: %s", strerror(errno));
        return -errno;
    }
    return start_faults(lz, err, errlen);
}

/* ---- the fill thread ---- */

/* Copies len bytes of pages from src to dst, skipping pages already
 * there (a fault was first).  0 or -errno. */
static int copy_pages(struct vm_lazy *lz, uint8_t *dst, const uint8_t *src, uint64_t len)
{
    while (len) {
        struct uffdio_copy c = {(uint64_t)(uintptr_t)dst, (uint64_t)(uintptr_t)src, len,
                                0, 0};
        if (ioctl(lz->uffd, UFFDIO_COPY, &c) == 0) {
            atomic_fetch_add(&lz->filled, len >> DOMUS_PAGE_SHIFT);
            return 0;
        }
        uint64_t done = 0;
        if (c.copy > 0) {
            done = (uint64_t)c.copy;
            atomic_fetch_add(&lz->filled, done >> DOMUS_PAGE_SHIFT);
        } else if (c.copy == -EEXIST || (c.copy == 0 && errno == EEXIST)) {
            done = DOMUS_PAGE_SIZE;
            atomic_fetch_add(&lz->present, 1);
        } else if (c.copy != -EAGAIN && errno != EAGAIN) {
            return c.copy < 0 ? (int)c.copy : -errno;
        }
        dst += done;
        src += done;
        len -= done;
    }
    return 0;
}

/* One page data record: runs of pages adjacent in memory, one copy each. */
static int fill_record(struct vm_lazy *lz, const struct simg_rec *rec, char *err,
                       size_t errlen)
{
    struct recrd rd;
    rd_init(&rd, rec->body, rec->len);
    uint32_t n = rd_u32(&rd);
    rd_u32(&rd);
    const uint8_t *pfns = rd_bytes(&rd, (size_t)n * 8);
    const uint8_t *data = rd_bytes(&rd, (size_t)n * DOMUS_PAGE_SIZE);
    uint8_t *run = NULL;
    uint32_t start = 0;
    int rc = 0;

    if (rd.err || !n)
        return -EINVAL; /* simg_read_record checked the framing */
    for (uint32_t i = 0; i <= n && !rc; i++) {
        uint8_t *dst = NULL;
        if (i < n) {
            struct recrd p;
            rd_init(&p, pfns + (size_t)i * 8, 8);
            uint64_t pfn = rd_u64(&p);
            dst = pfn < (UINT64_MAX >> DOMUS_PAGE_SHIFT)
                      ? gmem_ptr(lz->m, pfn << DOMUS_PAGE_SHIFT, DOMUS_PAGE_SIZE)
                      : NULL;
            if (!dst || dst < lz->base || dst >= lz->base + lz->len) {
                dfmt(err, errlen, "corrupted image: page data for pfn %#llx",
                     (unsigned long long)pfn);
                return -EINVAL;
            }
        }
        if (run && dst == run + (size_t)(i - start) * DOMUS_PAGE_SIZE)
            continue;
        if (run && (rc = copy_pages(lz, run, data + (size_t)start * DOMUS_PAGE_SIZE,
                                    (uint64_t)(i - start) * DOMUS_PAGE_SIZE)) < 0)
            dfmt(err, errlen, "copying into guest memory: %s", strerror(-rc));
        run = dst;
        start = i;
    }
    return rc;
}

/* Reads the image from its start, copying its pages; 0 at a verified end. */
static int fill_all(struct vm_lazy *lz, struct simg_reader *r)
{
    struct simg_rec rec;
    char *config = NULL;
    int rc = simg_read_header(r, &config);

    free(config);
    while (!rc && (rc = simg_read_record(r, &rec)) == 1) {
        char err[sizeof(r->err) - 32] = "";
        rc = 0;
        if (atomic_load(&lz->stop))
            return -ECANCELED;
        if ((rec.type & ~SIMG_REC_OPTIONAL) != SIMG_REC_PAGE_DATA)
            continue;
        if ((rc = fill_record(lz, &rec, err, sizeof(err))) < 0)
            dfmt(r->err, sizeof(r->err), "page data record at byte %llu: %s",
                 (unsigned long long)r->off, err);
    }
    return rc;
}

static void *fill_thread(void *arg)
{
    struct vm_lazy *lz = arg;
    struct simg_reader r;
    uint64_t t0 = dnow_ns();
    int fd = open(lz->fill_path, O_RDONLY | O_CLOEXEC), rc;

    simg_reader_init_fd(&r, fd);
    if (fd < 0) {
        rc = -errno;
        dfmt(r.err, sizeof(r.err), "%s: %s", lz->fill_path, strerror(errno));
    } else {
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        rc = fill_all(lz, &r);
    }
    lz->fill_ns = dnow_ns() - t0;
    if (!rc) { /* every page is in: later touches are ordinary faults */
        struct uffdio_range range = {(uint64_t)(uintptr_t)lz->base, lz->len};
        if (ioctl(lz->uffd, UFFDIO_UNREGISTER, &range) < 0) {
            rc = -errno;
            dfmt(r.err, sizeof(r.err), "userfaultfd unregister: %s", strerror(errno));
        } else {
            lz->registered = false;
            eventfd_write(lz->stop_fd, 1); /* the fault thread ends */
        }
    }
    if (rc != -ECANCELED && lz->done)
        lz->done(lz->done_ctx, rc, r.err[0] ? r.err : strerror(-rc));
    simg_reader_free(&r);
    if (fd >= 0)
        close(fd);
    return NULL;
}

int vm_lazy_fill(struct vm_lazy *lz, const char *path, vm_lazy_done_fn done, void *ctx,
                 char *err, size_t errlen)
{
    int rc;

    if (!lz->fault_running) {
        dfmt(err, errlen, "the fill needs the fault thread running");
        return -EINVAL;
    }
    if (!(lz->fill_path = strdup(path))) {
        dfmt(err, errlen, "out of memory");
        return -ENOMEM;
    }
    lz->done = done;
    lz->done_ctx = ctx;
    if ((rc = -pthread_create(&lz->fill_th, NULL, fill_thread, lz)) < 0) {
        dfmt(err, errlen, "cannot start the fill thread: %s", strerror(-rc));
        return rc;
    }
    lz->fill_running = true;
    return 0;
}

/* ---- post-copy: the source over a connection ---- */

int vm_lazy_postcopy_set(struct vm_lazy *lz, const struct simg_rec *rec, char *err,
                         size_t errlen)
{
    struct recrd rd;
    rd_init(&rd, rec->body, rec->len);
    uint64_t n = rd_u64(&rd), res = rd_u64(&rd), words = (n + 63) / 64;

    if (rd.err || res || n != lz->npages || rec->len != 16 + words * 8) {
        dfmt(err, errlen,
             "a post-copy record of %u bytes for %llu pages (this domain "
             "has %llu)",
             rec->len, (unsigned long long)n, (unsigned long long)lz->npages);
        return -EINVAL;
    }
    if (lz->have_wanted) {
        dfmt(err, errlen, "twice");
        return -EINVAL;
    }
    for (uint64_t w = 0; w < words; w++) {
        uint64_t bits = rd_u64(&rd);
        if (w == words - 1 && n % 64 && bits >> (n % 64)) {
            dfmt(err, errlen, "a post-copy record with pages beyond the guest's");
            return -EINVAL;
        }
        for (; bits; bits &= bits - 1) {
            lz->index[w * 64 + (uint64_t)__builtin_ctzll(bits)] = PC_WANTED;
            lz->wanted++;
        }
    }
    atomic_store(&lz->wanted_left, lz->wanted);
    lz->have_wanted = true;
    return 0;
}

/* The wanted pages' stale copies (earlier rounds) out of the memfd, so
 * that their first touch faults.  0 or -errno. */
static int punch_wanted(struct vm_lazy *lz)
{
    for (uint64_t p = 0; p < lz->npages;) {
        uint64_t q = p;
        while (q < lz->npages && lz->index[q] == PC_WANTED)
            q++;
        if (q > p && fallocate(lz->m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               (off_t)(p << DOMUS_PAGE_SHIFT),
                               (off_t)((q - p) << DOMUS_PAGE_SHIFT)) < 0)
            return -errno;
        p = q > p ? q : p + 1;
    }
    return 0;
}

int vm_lazy_serve_conn(struct vm_lazy *lz, int fd, char *err, size_t errlen)
{
    int rc;

    if (!lz->have_wanted) {
        dfmt(err, errlen, "the stream has no post-copy record");
        return -EINVAL;
    }
    if ((rc = punch_wanted(lz)) < 0) {
        dfmt(err, errlen, "dropping the pages the source still holds: %s", strerror(-rc));
        return rc;
    }
    if ((lz->conn_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0 ||
        (lz->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        dfmt(err, errlen, "%s", strerror(errno));
        return -errno;
    }
    return start_faults(lz, err, errlen);
}

/* A page data record's pages are in: those the source held are no longer
 * wanted. */
static void mark_in(struct vm_lazy *lz, const struct simg_rec *rec)
{
    struct recrd rd;
    rd_init(&rd, rec->body, rec->len);
    uint32_t n = rd_u32(&rd);
    rd_u32(&rd);
    for (uint32_t i = 0; i < n && !rd.err; i++) {
        int64_t off = gmem_fd_offset(lz->m, rd_u64(&rd) << DOMUS_PAGE_SHIFT);
        uint64_t page = off >= 0 ? (uint64_t)off >> DOMUS_PAGE_SHIFT : lz->npages;
        uint64_t *st = page < lz->npages ? &lz->index[page] : NULL;
        if (st && (pc_cas(st, PC_WANTED, PC_IN) || pc_cas(st, PC_ASKED, PC_IN)))
            atomic_fetch_sub(&lz->wanted_left, 1);
    }
}

/* The post-copy stream: page data records, then an end record whose crc
 * covers them; 0 once every wanted page is in. */
static int pull_all(struct vm_lazy *lz, struct simg_reader *r, uint64_t *t0)
{
    struct simg_rec rec;
    int rc;

    while ((rc = simg_read_record(r, &rec)) == 1) {
        char err[sizeof(r->err) - 32] = "";
        if (!*t0)
            *t0 = dnow_ns();
        if (atomic_load(&lz->stop))
            return -ECANCELED;
        if (rec.type != SIMG_REC_PAGE_DATA) {
            dfmt(r->err, sizeof(r->err), "a %s record in the post-copy stream",
                 simg_rec_name(rec.type) ? simg_rec_name(rec.type) : "unknown");
            return -EPROTO;
        }
        if ((rc = fill_record(lz, &rec, err, sizeof(err))) < 0) {
            dfmt(r->err, sizeof(r->err), "post-copy page data at byte %llu: %s",
                 (unsigned long long)r->off, err);
            return rc;
        }
        mark_in(lz, &rec);
    }
    if (!rc && atomic_load(&lz->wanted_left)) {
        dfmt(r->err, sizeof(r->err),
             "the source ended the post-copy stream with %llu "
             "pages not sent",
             (unsigned long long)atomic_load(&lz->wanted_left));
        rc = -EPROTO;
    }
    if (rc < 0 && !strncmp(r->err, "truncated image", 15))
        dfmt(r->err, sizeof(r->err),
             "the connection to the source ended with %llu of "
             "%llu pages not in",
             (unsigned long long)atomic_load(&lz->wanted_left),
             (unsigned long long)lz->wanted);
    return rc;
}

/* Every page in: the range unregistered, the fault thread ended, then the
 * source told (u64 all ones) that it may destroy its copy. */
static int pull_finish(struct vm_lazy *lz, char *err, size_t errlen)
{
    struct uffdio_range range = {(uint64_t)(uintptr_t)lz->base, lz->len};
    int rc;

    if (ioctl(lz->uffd, UFFDIO_UNREGISTER, &range) < 0) {
        dfmt(err, errlen, "userfaultfd unregister: %s", strerror(errno));
        return -errno;
    }
    lz->registered = false;
    eventfd_write(lz->stop_fd, 1);
    if ((rc = ask(lz, UINT64_MAX)) < 0)
        dfmt(err, errlen, "telling the source every page is in: %s", strerror(-rc));
    return rc;
}

static void *pull_thread(void *arg)
{
    struct vm_lazy *lz = arg;
    struct simg_reader r;
    uint64_t t0 = 0;
    int rc;

    simg_reader_init_fd(&r, lz->conn_fd);
    rc = pull_all(lz, &r, &t0); /* t0: the first record, when the guest runs */
    lz->fill_ns = t0 ? dnow_ns() - t0 : 0;
    if (!rc)
        rc = pull_finish(lz, r.err, sizeof(r.err));
    if (rc != -ECANCELED && lz->done)
        lz->done(lz->done_ctx, rc, r.err[0] ? r.err : strerror(-rc));
    simg_reader_free(&r);
    return NULL;
}

int vm_lazy_pull(struct vm_lazy *lz, vm_lazy_done_fn done, void *ctx, char *err,
                 size_t errlen)
{
    int rc;

    if (!lz->fault_running || lz->conn_fd < 0) {
        dfmt(err, errlen, "the pull needs the fault thread serving a connection");
        return -EINVAL;
    }
    lz->done = done;
    lz->done_ctx = ctx;
    if ((rc = -pthread_create(&lz->fill_th, NULL, pull_thread, lz)) < 0) {
        dfmt(err, errlen, "cannot start the pull thread: %s", strerror(-rc));
        return rc;
    }
    lz->fill_running = true;
    return 0;
}

void vm_lazy_stats(const struct vm_lazy *lz, struct vm_lazy_stats *s)
{
    s->faults = atomic_load(&lz->faults);
    s->zero_faults = atomic_load(&lz->zero_faults);
    s->filled = atomic_load(&lz->filled);
    s->present = atomic_load(&lz->present);
    s->fill_ns = lz->fill_ns;
    s->wanted = lz->wanted;
    s->wanted_left = atomic_load(&lz->wanted_left);
}

void vm_lazy_free(struct vm_lazy *lz)
{
    if (!lz)
        return;
    atomic_store(&lz->stop, true);
    if (lz->conn_fd >= 0) /* a pull thread waiting for the source */
        shutdown(lz->conn_fd, SHUT_RDWR);
    if (lz->fill_running)
        pthread_join(lz->fill_th, NULL);
    if (lz->fault_running) {
        eventfd_write(lz->stop_fd, 1);
        pthread_join(lz->fault_th, NULL);
    }
    if (lz->registered) {
        struct uffdio_range range = {(uint64_t)(uintptr_t)lz->base, lz->len};
        ioctl(lz->uffd, UFFDIO_UNREGISTER, &range);
    }
    if (lz->uffd >= 0) /* closing it wakes any thread still waiting */
        close(lz->uffd);
    if (lz->img_fd >= 0)
        close(lz->img_fd);
    if (lz->stop_fd >= 0)
        close(lz->stop_fd);
    if (lz->conn_fd >= 0)
        close(lz->conn_fd);
    pthread_mutex_destroy(&lz->wlock);
    free(lz->fill_path);
    free(lz->index);
    free(lz);
}
