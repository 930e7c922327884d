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
#include <sys/socket.h>
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
    uint64_t t0;    /* when the migration started here (dnow_ns) */
    /* Post-copy: finish sent the state and left bm's pages for
     * vm_migrate_postcopy (pc_left of them not sent yet). */
    bool postcopy;
    uint64_t pc_left, cursor;
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
    int n = snprintf(
        line, sizeof(line),
        "\rround %u: %llu pages dirty, %.1f MiB/s, expected downtime %llu ms, "
        "%.2f s in  ",
        round, (unsigned long long)dirty, m->bytes_s / (1 << 20),
        (unsigned long long)expected_ms(m, dirty), (double)(dnow_ns() - m->t0) / 1e9);

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
    if (!vm->mig->postcopy) /* post-copy: logging ended with the pre-copy */
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
    m->t0 = dnow_ns();
    m->npages = gmem_dirty_npages(&vm->dom.mem);
    m->bytes_s = 100.0 * (1 << 20); /* until round 0 measures it */
    vm->mig = m;
    if (!(m->bm = calloc((m->npages + 63) / 64, sizeof(uint64_t))))
        return -ENOMEM;
    if ((m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return -errno;
    simg_writer_init(&m->w, m->fd);
    simg_writer_set_rate(&m->w, o->bandwidth);
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
    if ((rc = vm_memory_busy(vm, err, errlen)))
        return rc;
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
static void mark_page(struct vm_mig *m, uint64_t *bm, const struct gmem *mem,
                      uint64_t gpa, uint64_t len)
{
    for (uint64_t a = gpa & ~(uint64_t)(DOMUS_PAGE_SIZE - 1); gpa && a < gpa + len;
         a += DOMUS_PAGE_SIZE) {
        int64_t off = gmem_fd_offset(mem, a);
        uint64_t p = (uint64_t)off / DOMUS_PAGE_SIZE;
        if (off >= 0 && p < m->npages)
            bm[p / 64] |= 1ULL << (p % 64);
    }
}

static void mark_fixed(struct vm_mig *m, uint64_t *bm, struct domain *d)
{
    const struct gmem_region *sp = &d->mem.region[GMEM_REGION_SPECIAL];

    mark_page(m, bm, &d->mem, sp->gpa, sp->size);
    mark_page(m, bm, &d->mem, d->shared_info_gpa, DOMUS_PAGE_SIZE);
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        const struct vcpu *v = &d->vcpus[i];
        mark_page(m, bm, &d->mem, v->vcpu_info_gpa, 64);
        mark_page(m, bm, &d->mem, v->time_info_gpa, 32);
        mark_page(m, bm, &d->mem, v->runstate_gpa, 48);
    }
}

static int final_round(struct vm *vm, struct vm_mig_result *res, char *err, size_t errlen)
{
    struct vm_mig *m = vm->mig;
    struct domain *d = &vm->dom;
    int rc = vm->state_ops->dirty_get(d, m->bm);

    if (rc) {
        dfmt(err, errlen, "dirty logging: %s", strerror(-rc));
        return rc;
    }
    mark_fixed(m, m->bm, d);
    progress(m, 0, count(m->bm, m->npages));
    if ((rc = send_round(m, d)))
        dfmt(err, errlen, "sending the last pages: %s", strerror(-rc));
    else
        vm_migcheck_source(&d->mem);
    res->pages_ns = drealtime_ns();
    rc = rc ?: vm_save_state(d, &m->w, vm->state_ops, err, errlen);
    res->end_ns = drealtime_ns();
    return rc;
}

/* The post-copy record: the pages in bm, which the stream leaves out. */
static int write_wanted(struct vm_mig *m)
{
    uint8_t head[16] = {0};

    for (int i = 0; i < 8; i++)
        head[i] = (uint8_t)(m->npages >> (8 * i));
    return simg_write_record2(&m->w, SIMG_REC_POSTCOPY, head, sizeof(head), m->bm,
                              (m->npages + 63) / 64 * sizeof(uint64_t));
}

/* Post-copy's final round: the fixed pages (KVM's log misses them), the
 * post-copy record naming the pages dirtied since the last round, which
 * stay behind for vm_migrate_postcopy, then the state. */
static int final_round_postcopy(struct vm *vm, struct vm_mig_result *res, char *err,
                                size_t errlen)
{
    struct vm_mig *m = vm->mig;
    struct domain *d = &vm->dom;
    uint64_t words = (m->npages + 63) / 64, *fixed = calloc(words, sizeof(uint64_t));
    int rc = fixed ? vm->state_ops->dirty_get(d, m->bm) : -ENOMEM;

    if (rc) {
        dfmt(err, errlen, "dirty logging: %s", strerror(-rc));
        free(fixed);
        return rc;
    }
    mark_fixed(m, fixed, d);
    for (uint64_t w = 0; w < words; w++)
        m->bm[w] &= ~fixed[w];
    m->pc_left = count(m->bm, m->npages);
    rc = simg_write_pages(&m->w, &d->mem, fixed, m->npages) ?: write_wanted(m);
    free(fixed);
    if (rc)
        dfmt(err, errlen, "sending the fixed pages: %s", strerror(-rc));
    res->pages_ns = drealtime_ns();
    rc = rc ?: vm_save_state(d, &m->w, vm->state_ops, err, errlen);
    res->end_ns = drealtime_ns();
    res->postcopy_pages = m->pc_left;
    return rc;
}

int vm_migrate_finish(struct vm *vm, unsigned timeout_ms, bool postcopy,
                      struct vm_mig_result *res, char *err, size_t errlen)
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
    vm_dev_quiesce_all(vm); /* the back ends' last writes before the last round */
    rc = postcopy ? final_round_postcopy(vm, res, err, errlen)
                  : final_round(vm, res, err, errlen);
    res->final_ms = (dnow_ns() - t0) / 1000000u;
    res->pages = vm->mig->pages_sent;
    res->bytes = vm->mig->w.bytes;
    if (!rc && postcopy) { /* the connection kept for the pages left */
        vm->state_ops->dirty_stop(d);
        vm->mig->postcopy = true;
    } else {
        vm_migrate_abort(vm); /* logging off, the stream's fd closed */
    }
    if (rc) {
        vm_dev_resume_all(vm);
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

/* ---- post-copy: the pages left, pushed and asked for ---- */

#define PC_PUSH_PAGES 32         /* a push record: 128 KiB */
#define PC_ACK_TIMEOUT_MS 120000 /* the destination's "every page in" */

struct pc {
    struct vm_mig *m;
    const struct gmem *mem;
    struct simg_writer w; /* the post-copy stream: its own crc */
    struct vm_pc_result *res;
};

static bool take(struct vm_mig *m, uint64_t p)
{
    if (p >= m->npages || !(m->bm[p / 64] & (1ULL << (p % 64))))
        return false;
    m->bm[p / 64] &= ~(1ULL << (p % 64));
    m->pc_left--;
    return true;
}

/* A page the destination asked for: sent now, outside the rate limit,
 * unless it was sent already (it is on its way). */
static int answer(struct pc *pc, uint64_t page)
{
    int rc;

    if (!take(pc->m, page))
        return 0;
    pc->w.rate_paused = true;
    rc = simg_write_page_list(&pc->w, pc->mem, &page, 1);
    pc->w.rate_paused = false;
    pc->res->asked++;
    return rc;
}

/* The next pages in memfd order, one record. */
static int push(struct pc *pc)
{
    struct vm_mig *m = pc->m;
    uint64_t list[PC_PUSH_PAGES];
    size_t n = 0;

    for (; m->cursor < m->npages && n < PC_PUSH_PAGES; m->cursor++)
        if (take(m, m->cursor))
            list[n++] = m->cursor;
    pc->res->pushed += n;
    return n ? simg_write_page_list(&pc->w, pc->mem, list, n) : 0;
}

/* The requests that came (u64 pages, all ones: every page is in); 1 on
 * the destination's "every page in", 0 to go on, or -errno. */
static int requests(struct pc *pc, uint8_t *buf, size_t *have, bool end_sent)
{
    ssize_t got = recv(pc->m->fd, buf + *have, 512 - *have, MSG_DONTWAIT);
    size_t i = 0;
    int rc = 0;

    if (got == 0)
        return -ECONNRESET;
    if (got < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    *have += (size_t)got;
    for (; i + 8 <= *have && !rc; i += 8) {
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--)
            v = v << 8 | buf[i + (size_t)k];
        if (v == UINT64_MAX)
            rc = end_sent ? 1 : -EPROTO;
        else
            rc = answer(pc, v);
    }
    memmove(buf, buf + i, *have - i);
    *have -= i;
    return rc;
}

/* Pushes the pages left, answering requests first, then the end record,
 * then waits for the destination's "every page in". */
static int pc_loop(struct pc *pc)
{
    uint8_t buf[512];
    size_t have = 0;
    bool end_sent = false;
    uint64_t deadline = 0;
    int rc = 0;

    while (rc >= 0) {
        struct pollfd p = {pc->m->fd, POLLIN, 0};
        if (!end_sent && !pc->m->pc_left) {
            if ((rc = simg_write_end(&pc->w)))
                break;
            end_sent = true;
            pc->res->sent_ms = dnow_ns();
            deadline = dnow_ns() + (uint64_t)PC_ACK_TIMEOUT_MS * 1000000u;
        }
        int n = poll(&p, 1, end_sent ? 1000 : 0);
        if (n > 0 && (rc = requests(pc, buf, &have, end_sent)) != 0)
            break;
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (end_sent && dnow_ns() > deadline)
            rc = -ETIMEDOUT;
        else if (!end_sent && n == 0)
            rc = push(pc);
    }
    return rc;
}

int vm_migrate_postcopy(struct vm *vm, struct vm_pc_result *res, char *err, size_t errlen)
{
    struct vm_mig *m = vm->mig;
    struct pc pc = {m, &vm->dom.mem, {0}, res};
    uint64_t t0 = dnow_ns(), left = m ? m->pc_left : 0;
    int rc;

    *res = (struct vm_pc_result){0};
    if (!m || !m->postcopy) {
        dfmt(err, errlen, "no post-copy migration is under way");
        return -EINVAL;
    }
    simg_writer_init(&pc.w, m->fd);
    simg_writer_set_rate(&pc.w, m->o.bandwidth);
    rc = pc_loop(&pc);
    res->pages = left;
    res->bytes = pc.w.bytes;
    res->ms = (dnow_ns() - t0) / 1000000u;
    res->sent_ms = res->sent_ms ? (res->sent_ms - t0) / 1000000u : 0;
    if (rc == 1) {
        dinfo("dom%u: post-copy: %llu pages in %llu ms (%llu asked for, %llu pushed)",
              vm->dom.domid, (unsigned long long)left, (unsigned long long)res->ms,
              (unsigned long long)res->asked, (unsigned long long)res->pushed);
        rc = 0;
    } else {
        dfmt(err, errlen, "%s after %llu ms, %llu of %llu pages sent",
             rc == -ECONNRESET  ? "the destination closed the connection"
             : rc == -ETIMEDOUT ? "the destination did not say every page is in"
             : rc == -EPROTO    ? "the destination broke the protocol"
                                : strerror(-rc),
             (unsigned long long)res->ms, (unsigned long long)(left - m->pc_left),
             (unsigned long long)left);
        derr("dom%u: post-copy failed: %s; this copy is kept paused", vm->dom.domid, err);
        vm->pc_failed = true;
    }
    mig_free(vm); /* the guest stays held: destroyed, or kept after a failure */
    return rc;
}
