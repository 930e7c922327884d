/* domus-vm's side of live migration (vm.h): pre-copy rounds over dirty
 * logging while the guest runs, then the final round and the state after
 * the guest's own suspend.  The stream is the save image's
 * (docs/save-image.md); docs/migration.md tells the whole protocol. */
#include "domus/gmem.h"
#include "domus/kvm.h"
#include "domus/util.h"
#include "domus/vm.h"
#include "domus/vmsave.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct vm_mig {
    int fd;
    struct vm_mig_opts o;
    struct simg_writer w;
    uint64_t *bm; /* pages dirty and not sent, by memfd page */
    uint64_t npages;
    uint64_t pages_sent;
    double bytes_s; /* the bandwidth of the last round */
};

static uint64_t count(const uint64_t *bm, uint64_t npages)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < (npages + 63) / 64; i++)
        n += (uint64_t)__builtin_popcountll(bm[i]);
    return n;
}

static uint64_t expected_ms(const struct vm_mig *m, uint64_t pages)
{
    return (uint64_t)((double)pages * DOMUS_PAGE_SIZE * 1000.0 / m->bytes_s);
}

static void progress(const struct vm_mig *m, unsigned round, uint64_t dirty)
{
    char line[160];
    int n =
        snprintf(line, sizeof(line),
                 "\rround %u: %llu pages dirty, %.1f MiB/s, expected downtime %llu ms  ",
                 round, (unsigned long long)dirty, m->bytes_s / (1 << 20),
                 (unsigned long long)expected_ms(m, dirty));

    if (m->o.progress_fd >= 0 && n > 0 && write(m->o.progress_fd, line, (size_t)n) < 0)
        return; /* a progress line is not worth failing for */
}

/* Sends the pages set in bm (then clears it) and measures the bandwidth. */
static int send_round(struct vm_mig *m, struct domain *d)
{
    uint64_t t0 = dnow_ns(), b0 = m->w.bytes, n = count(m->bm, m->npages);
    int rc = simg_write_pages(&m->w, &d->mem, m->bm, m->npages);
    uint64_t dt = dnow_ns() - t0;

    if (rc)
        return rc;
    m->pages_sent += n;
    if (dt > 1000000 && m->w.bytes - b0 >= (1 << 20)) /* enough to measure */
        m->bytes_s = (double)(m->w.bytes - b0) * 1e9 / (double)dt;
    memset(m->bm, 0, (m->npages + 63) / 64 * sizeof(uint64_t));
    return 0;
}

static void mig_free(struct vm *vm)
{
    struct vm_mig *m = vm->mig;

    if (!m)
        return;
    if (m->fd >= 0)
        close(m->fd);
    free(m->bm);
    free(m);
    vm->mig = NULL;
}

void vm_migrate_abort(struct vm *vm)
{
    if (!vm->mig)
        return;
    vm->state_ops->dirty_stop(&vm->dom);
    mig_free(vm);
}

static int mig_open(struct vm *vm, int fd, const struct vm_mig_opts *o)
{
    struct vm_mig *m = calloc(1, sizeof(*m));

    if (!m)
        return -ENOMEM;
    m->fd = -1;
    m->o = *o;
    m->npages = gmem_dirty_npages(&vm->dom.mem);
    m->bytes_s = 100.0 * (1 << 20); /* until round 0 measures it */
    vm->mig = m;
    if (!(m->bm = calloc((m->npages + 63) / 64, sizeof(uint64_t))))
        return -ENOMEM;
    if ((m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return -errno;
    simg_writer_init(&m->w, m->fd);
    return 0;
}

/* Round 0: every non-zero page, with dirty logging already on. */
static int round0(struct vm_mig *m, struct domain *d, const char *config)
{
    int rc = simg_write_header(&m->w, config);
    uint64_t t0 = dnow_ns();

    if (!rc && !(rc = simg_write_memory(&m->w, &d->mem))) {
        uint64_t dt = dnow_ns() - t0;
        m->pages_sent += m->w.page_bytes / DOMUS_PAGE_SIZE;
        if (dt > 1000000 && m->w.page_bytes >= (1 << 20))
            m->bytes_s = (double)m->w.page_bytes * 1e9 / (double)dt;
    }
    return rc;
}

/* The receiver says nothing while the stream runs: a line from it (its
 * error) or its end means it stopped reading. */
static bool receiver_spoke(int fd)
{
    struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && poll(&p, 1, 0) > 0;
}

/* The rounds after round 0; *left: the pages dirty and not sent. */
static int rounds(struct vm_mig *m, struct vm *vm, unsigned *nr, uint64_t *left)
{
    uint64_t prev = UINT64_MAX, n = 0;
    unsigned stuck = 0, r;
    int rc = 0;

    for (r = 1; r <= m->o.max_rounds && !rc; r++) {
        if (receiver_spoke(m->fd)) {
            rc = -ECONNABORTED;
            break;
        }
        if ((rc = vm->state_ops->dirty_get(&vm->dom, m->bm)))
            break;
        n = count(m->bm, m->npages);
        progress(m, r, n);
        dlog_debug("dom%u: migration round %u: %llu pages dirty, expected %llu ms",
                   vm->dom.domid, r, (unsigned long long)n,
                   (unsigned long long)expected_ms(m, n));
        if (expected_ms(m, n) <= m->o.downtime_ms)
            break; /* small enough for the final round */
        stuck = n >= prev ? stuck + 1 : 0;
        if (stuck >= 2)
            break; /* not converging: the guest dirties as fast as we send */
        prev = n;
        rc = send_round(m, &vm->dom);
        n = 0;
    }
    *nr = r > m->o.max_rounds ? m->o.max_rounds : r;
    *left = n;
    return rc;
}

int vm_migrate_precopy(struct vm *vm, int fd, const char *config,
                       const struct vm_mig_opts *o, struct vm_mig_result *res, char *err,
                       size_t errlen)
{
    struct domain *d = &vm->dom;
    int rc;

    *res = (struct vm_mig_result){0};
    if (vm->hold_suspend || vm->mig || atomic_load(&d->suspended)) {
        dfmt(err, errlen, "the domain is being saved or migrated already");
        return -EBUSY;
    }
    if (!vm->state_ops->dirty_start) {
        dfmt(err, errlen, "this domain process has no dirty logging");
        return -EOPNOTSUPP;
    }
    if ((rc = mig_open(vm, fd, o))) {
        dfmt(err, errlen, "%s", strerror(-rc));
        mig_free(vm);
        return rc;
    }
    if ((rc = vm->state_ops->dirty_start(d))) {
        dfmt(err, errlen, "dirty logging: %s", strerror(-rc));
        mig_free(vm);
        return rc;
    }
    struct vm_mig *m = vm->mig;
    rc = round0(m, d, config);
    if (!rc)
        rc = rounds(m, vm, &res->rounds, &res->last_dirty);
    if (rc) {
        dfmt(err, errlen, "sending the memory: %s",
             rc == -ECONNABORTED ? "the receiver stopped (connection abort)"
                                 : strerror(-rc));
        vm_migrate_abort(vm);
        return rc;
    }
    res->pages = m->pages_sent;
    res->bytes = m->w.bytes;
    res->expected_ms = expected_ms(m, res->last_dirty);
    res->mib_s = (uint64_t)(m->bytes_s / (1 << 20));
    return 0;
}

/* Pages KVM's log does not see: the special pages (rings the back ends and
 * xenstored write), shared_info and each vCPU's registered areas. */
static void mark_page(struct vm_mig *m, const struct gmem *mem, uint64_t gpa,
                      uint64_t len)
{
    for (uint64_t a = gpa & ~(uint64_t)(DOMUS_PAGE_SIZE - 1); gpa && a < gpa + len;
         a += DOMUS_PAGE_SIZE) {
        int64_t off = gmem_fd_offset(mem, a);
        uint64_t p = (uint64_t)off / DOMUS_PAGE_SIZE;
        if (off >= 0 && p < m->npages)
            m->bm[p / 64] |= 1ULL << (p % 64);
    }
}

static void mark_fixed(struct vm_mig *m, struct domain *d)
{
    const struct gmem_region *sp = &d->mem.region[GMEM_REGION_SPECIAL];

    mark_page(m, &d->mem, sp->gpa, sp->size);
    mark_page(m, &d->mem, d->shared_info_gpa, DOMUS_PAGE_SIZE);
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        const struct vcpu *v = &d->vcpus[i];
        mark_page(m, &d->mem, v->vcpu_info_gpa, 64);
        mark_page(m, &d->mem, v->time_info_gpa, 32);
        mark_page(m, &d->mem, v->runstate_gpa, 48);
    }
}

static int final_round(struct vm *vm, struct vm_mig_result *res, char *err,
                       size_t errlen)
{
    struct vm_mig *m = vm->mig;
    struct domain *d = &vm->dom;
    int rc = vm->state_ops->dirty_get(d, m->bm);

    if (rc) {
        dfmt(err, errlen, "dirty logging: %s", strerror(-rc));
        return rc;
    }
    mark_fixed(m, d);
    progress(m, 0, count(m->bm, m->npages));
    if ((rc = send_round(m, d)))
        dfmt(err, errlen, "sending the last pages: %s", strerror(-rc));
    res->pages_ns = drealtime_ns();
    rc = rc ?: vm_save_state(d, &m->w, vm->state_ops, err, errlen);
    res->end_ns = drealtime_ns();
    return rc;
}

int vm_migrate_finish(struct vm *vm, unsigned timeout_ms, struct vm_mig_result *res,
                      char *err, size_t errlen)
{
    struct domain *d = &vm->dom;
    uint64_t t0;
    int rc;

    *res = (struct vm_mig_result){0};
    if (!vm->mig) {
        dfmt(err, errlen, "no migration is under way");
        return -EINVAL;
    }
    rc = vm_wait_suspend(d, timeout_ms);
    if (rc) {
        dfmt(err, errlen,
             rc == -ETIMEDOUT ? "the guest did not suspend within %u ms"
                              : "the domain shut down instead of suspending",
             timeout_ms);
        vm_migrate_abort(vm);
        return rc;
    }
    res->suspended_ns = atomic_load(&d->suspended_at_ns);
    res->paused_at_ns = drealtime_ns();
    t0 = dnow_ns();
    kvm_domain_pause(d, true);
    rc = final_round(vm, res, err, errlen);
    res->final_ms = (dnow_ns() - t0) / 1000000u;
    res->pages = vm->mig->pages_sent;
    res->bytes = vm->mig->w.bytes;
    vm_migrate_abort(vm); /* logging off, the stream's fd closed */
    if (rc) {
        int crc = kvm_domain_resume(d, 1, true);
        dwarn("dom%u: migration failed (%s): suspend cancelled%s", d->domid, err,
              crc ? ", but the guest could not be resumed" : "");
        return rc;
    }
    vm->hold_suspend = true; /* for the destroy once the destination runs it */
    dinfo("dom%u: migration stream sent: %llu bytes, final round %llu ms", d->domid,
          (unsigned long long)res->bytes, (unsigned long long)res->final_ms);
    return 0;
}
