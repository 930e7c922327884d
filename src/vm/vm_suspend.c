/* domus-vm's side of save: the guest's own suspend awaited, the image
 * written while every vCPU is parked, then the guest kept for its destroy
 * or resumed with 1 (vm.h). */
#include "domus/kvm.h"
#include "domus/util.h"
#include "domus/vm.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SUSPEND_POLL_MS 5

/* Sleeps until the domain's event fd is written (a suspend, a shutdown) or
 * SUSPEND_POLL_MS pass.  The fd is left for the main loop to drain: while
 * it holds an older event, this is a plain 1 ms sleep. */
static void wait_event(const struct domain *d)
{
    struct pollfd p = {d->event_fd, POLLIN, 0};
    struct timespec ts = {0, 1000000};

    if (d->event_fd < 0 || poll(&p, 1, 0) != 0)
        nanosleep(&ts, NULL);
    else
        poll(&p, 1, SUSPEND_POLL_MS);
}

int vm_wait_suspend(struct domain *d, unsigned timeout_ms)
{
    uint64_t end = dnow_ns() + (uint64_t)timeout_ms * 1000000u;

    for (;;) {
        if (atomic_load(&d->suspended))
            return 0;
        if (atomic_load(&d->shutdown_reason) >= 0)
            return -ESRCH;
        if (dnow_ns() >= end)
            return -ETIMEDOUT;
        wait_event(d);
    }
}

/* The guest runs on as if its suspend had been cancelled: SCHEDOP_shutdown
 * returns 1. */
static int cancel(struct vm *vm, bool run)
{
    vm->hold_suspend = false;
    vm_dev_resume_all(vm);
    return kvm_domain_resume(&vm->dom, 1, run);
}

static int write_image(struct vm *vm, int fd, const char *config,
                       struct vm_save_result *res, char *err, size_t errlen)
{
    struct simg_writer w;
    int rc;

    simg_writer_init(&w, fd);
    rc = vm_save_image(&vm->dom, &w, config, vm->state_ops, err, errlen);
    if (!rc && fdatasync(fd) < 0 && errno != EINVAL && errno != EROFS) {
        rc = -errno;
        dfmt(err, errlen, "writing the image: %s", strerror(errno));
    }
    res->bytes = w.bytes;
    return rc;
}

int vm_memory_busy(const struct vm *vm, char *err, size_t errlen)
{
    if (!vm->lazy || atomic_load(&vm->lazy_rc) != 0)
        return 0;
    dfmt(err, errlen,
         "the guest's memory is still arriving (%s); try again when every "
         "page is in",
         vm->args.postcopy ? "post-copy" : "lazy restore");
    return -EBUSY;
}

int vm_save(struct vm *vm, int fd, const char *config, enum vm_save_after after,
            unsigned timeout_ms, struct vm_save_result *res, char *err, size_t errlen)
{
    struct domain *d = &vm->dom;
    uint64_t t0;
    int rc;

    *res = (struct vm_save_result){0};
    if (vm->hold_suspend) {
        dfmt(err, errlen, "the domain is saved already, waiting for its destroy");
        return -EBUSY;
    }
    if ((rc = vm_memory_busy(vm, err, errlen)))
        return rc;
    rc = vm_wait_suspend(d, timeout_ms);
    if (rc == -ETIMEDOUT)
        dfmt(err, errlen,
             "the guest did not suspend within %u ms (its kernel answers "
             "control/shutdown=suspend when xenbus runs)",
             timeout_ms);
    else if (rc)
        dfmt(err, errlen, "the domain shut down instead of suspending");
    if (rc)
        return rc;
    t0 = dnow_ns();
    kvm_domain_pause(d, true);
    vm_dev_quiesce_all(vm); /* their last writes before the memory is read */
    rc = write_image(vm, fd, config, res, err, errlen);
    res->ms = (dnow_ns() - t0) / 1000000u;
    if (rc) {
        int crc = cancel(vm, true);
        dwarn("dom%u: save failed (%s): suspend cancelled%s", d->domid, err,
              crc ? ", but the guest could not be resumed" : "");
        return rc;
    }
    dinfo("dom%u: saved %llu bytes in %llu ms", d->domid, (unsigned long long)res->bytes,
          (unsigned long long)res->ms);
    if (after == VM_SAVE_DESTROY)
        vm->hold_suspend = true;
    else if ((rc = cancel(vm, after == VM_SAVE_RESUME)) < 0)
        dfmt(err, errlen, "the image is written, but the guest could not resume: %s",
             strerror(-rc));
    return rc;
}

int vm_resume_held(struct vm *vm)
{
    if (!vm->hold_suspend)
        return -EINVAL;
    vm_migrate_abort(vm); /* a post-copy finish kept its connection */
    return cancel(vm, true);
}

void vm_event(struct vm *vm)
{
    struct domain *d = &vm->dom;
    uint64_t n;

    if (d->event_fd >= 0 && read(d->event_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        dwarn("dom%u: event fd: %s", d->domid, strerror(errno));
    if (!atomic_load(&d->suspended) || vm->hold_suspend || vm->mig)
        return; /* a migration's vm_migrate_finish takes (or cancels) it */
    dinfo("dom%u: a suspend nobody saves: cancelled (the guest sees 1)", d->domid);
    if (cancel(vm, true) < 0)
        derr("dom%u: the suspend could not be cancelled", d->domid);
}
