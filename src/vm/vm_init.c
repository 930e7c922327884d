/* The domain process's init and exit levels (vm.h) and its main loop. */
#include "domus/builder.h"
#include "domus/kvm.h"
#include "domus/util.h"
#include "domus/vm.h"
#include "domus/vmlazy.h"
#include "domus/vmsave.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <xen/arch-x86/hvm/start_info.h>
#include <xen/sched.h>

void vm_setup(struct vm *vm, const struct vm_args *args)
{
    memset(vm, 0, sizeof(*vm));
    vm->args = *args;
    vm->kinds = vm_dev_kinds;
    vm->ctl_fd = -1;
    vm->state_ops = &vm_kvm_state_ops;
    domain_init(&vm->dom, args->domid, args->name ? args->name : "", args->vcpus, NULL);
    if (args->xenstore)
        vm->xs_path = args->xs_path;
}

int vm_steps_init(struct vm *vm, const struct vm_step *steps, unsigned n)
{
    vm->levels = 0;
    for (unsigned i = 1; i < n; i++)
        if (steps[i].level < steps[i - 1].level) {
            dfmt(vm->err, sizeof(vm->err), "step '%s' is out of level order",
                 steps[i].name);
            return -EINVAL;
        }
    for (unsigned i = 0; i < n; i++) {
        int rc = steps[i].init(vm);
        if (rc < 0) {
            vm_steps_exit(vm, steps);
            return rc;
        }
        vm->levels = i + 1;
    }
    return 0;
}

void vm_steps_exit(struct vm *vm, const struct vm_step *steps)
{
    while (vm->levels) {
        const struct vm_step *s = &steps[--vm->levels];
        if (s->exit)
            s->exit(vm);
    }
}

/* Seconds since the process started, for debug timings. */
static double elapsed(void)
{
    static uint64_t t0;
    uint64_t t = dnow_ns();
    if (!t0)
        t0 = t;
    return (double)(t - t0) / 1e9;
}

/* ---- core: memory, kernel, KVM ---- */

/* Refuses what the host cannot back, then maps the guest's memory. */
static int memory_init(struct vm *vm)
{
    uint64_t mb = vm->args.memory_mb;
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t avail = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz >> 20 : 0;
    int rc;

    elapsed();
    if (avail && mb > avail) {
        dfmt(vm->err, sizeof(vm->err),
             "memory: %llu MiB requested, host has %llu MiB available",
             (unsigned long long)mb, (unsigned long long)avail);
        return -ENOMEM;
    }
    /* The memfd and the e820 cover maxmem; a guest booted with less gives
     * the rest back through its balloon (memop.h), as on Xen. */
    if (vm->args.maxmem_mb > mb)
        mb = vm->args.maxmem_mb;
    if ((rc = gmem_init(&vm->dom.mem, mb << 20)) < 0) {
        dfmt(vm->err, sizeof(vm->err), "guest memory (%llu MiB): %s",
             (unsigned long long)mb, strerror(-rc));
        return rc;
    }
    if ((rc = memop_init(&vm->dom)) < 0) {
        dfmt(vm->err, sizeof(vm->err), "guest memory's reservation table: %s",
             strerror(-rc));
        gmem_destroy(&vm->dom.mem);
    }
    vm->t_mem = drealtime_ns();
    return rc;
}

static void memory_exit(struct vm *vm)
{
    memop_destroy(&vm->dom);
    gmem_destroy(&vm->dom.mem);
}

/* Copies the memory map the builder wrote into the domain (XENMEM_memory_map). */
static void record_memmap(struct domain *d, uint64_t start_info_gpa)
{
    struct hvm_start_info *si = gmem_ptr(&d->mem, start_info_gpa, sizeof(*si));
    if (!si)
        return;
    unsigned n = si->memmap_entries < ARRAY_SIZE(d->memmap)
                     ? si->memmap_entries
                     : (unsigned)ARRAY_SIZE(d->memmap);
    struct hvm_memmap_table_entry *e =
        gmem_ptr(&d->mem, si->memmap_paddr, n * sizeof(*e) + !n);
    for (unsigned i = 0; e && i < n; i++) {
        d->memmap[i].addr = e[i].addr;
        d->memmap[i].size = e[i].size;
        d->memmap[i].type = e[i].type;
    }
    d->memmap_n = e ? n : 0;
}

/* The kernel, its initramfs and start_info, then the KVM VM with the boot
 * vCPU at the PVH entry. */
static int kernel_vm_init(struct vm *vm)
{
    const struct vm_args *a = &vm->args;
    struct domain *d = &vm->dom;
    struct build_args ba = {a->kernel, a->ramdisk, a->cmdline, a->vcpus};
    struct build_result br;
    int rc;

    if ((rc = builder_build_pvh(&d->mem, &ba, &br, vm->err, sizeof(vm->err))) < 0)
        return rc;
    vm->t_built = drealtime_ns();
    dlog_debug("dom%u: built (%.3f s)", d->domid, elapsed());
    record_memmap(d, br.start_info_gpa);
    if ((rc = kvm_domain_create(d, vm->err, sizeof(vm->err))) < 0)
        return rc; /* it frees what it made */
    dlog_debug("dom%u: KVM VM created (%.3f s)", d->domid, elapsed());
    if ((rc = kvm_boot_vcpu_setup(d, br.entry, br.start_info_gpa)) < 0) {
        dfmt(vm->err, sizeof(vm->err), "boot vCPU set-up: %s", strerror(-rc));
        kvm_domain_destroy(d);
    }
    vm->t_kvm = drealtime_ns();
    return rc;
}

/* ---- lazy restore (vmlazy.h) ---- */

static int lazy_serve(void *ctx, char *err, size_t errlen)
{
    struct vm *vm = ctx;
    return vm_lazy_serve(vm->lazy, vm->args.restore, err, errlen);
}

/* A fill's or pull's end: rc kept for vm_run (a failure destroys the
 * domain there) and the main loop woken. */
static void lazy_end(struct vm *vm, int rc)
{
    atomic_store(&vm->lazy_rc, rc ? rc : 1);
    eventfd_write(vm->dom.event_fd, 1);
}

/* The fill thread's end: said in the log. */
static void lazy_done(void *ctx, int rc, const char *err)
{
    struct vm *vm = ctx;
    struct vm_lazy_stats st;

    vm_lazy_stats(vm->lazy, &st);
    if (rc == 0)
        dinfo("dom%u: lazy restore: every page in after %.3f s (%llu copied by the "
              "fill, %llu faults served, %llu of them zero pages)",
              vm->dom.domid, (double)st.fill_ns / 1e9, (unsigned long long)st.filled,
              (unsigned long long)st.faults, (unsigned long long)st.zero_faults);
    else
        snprintf(vm->lazy_err, sizeof(vm->lazy_err), "%s", err);
    lazy_end(vm, rc);
}

/* ---- post-copy migration (vmlazy.h, docs/migration.md) ---- */

static int postcopy_serve(void *ctx, char *err, size_t errlen)
{
    struct vm *vm = ctx;
    return vm_lazy_serve_conn(vm->lazy, STDIN_FILENO, err, errlen);
}

/* The pull's end: every page in (said in the log), or the guest's memory
 * is split with the source for good. */
static void postcopy_done(void *ctx, int rc, const char *err)
{
    struct vm *vm = ctx;
    struct vm_lazy_stats st;

    vm_lazy_stats(vm->lazy, &st);
    if (rc == 0)
        dinfo("dom%u: post-copy: every page in after %.3f s (%llu pages the source "
              "held: %llu asked for on a fault; %llu copies found the page there "
              "already, %llu zero pages given)",
              vm->dom.domid, (double)st.fill_ns / 1e9, (unsigned long long)st.wanted,
              (unsigned long long)st.faults, (unsigned long long)st.present,
              (unsigned long long)st.zero_faults);
    else
        snprintf(vm->lazy_err, sizeof(vm->lazy_err), "%s (%llu of %llu pages not in)",
                 err, (unsigned long long)st.wanted_left, (unsigned long long)st.wanted);
    lazy_end(vm, rc);
}

/* Lazy restore: the image's records but its pages, the fault thread
 * serving guest memory from the file before the state is applied, then the
 * fill thread.  Post-copy: the stream's pages into memory as they come, the
 * post-copy record's pages dropped and served on fault from the source,
 * then the pull.  Both: the special pages (the rings xenstored maps on its
 * own) are brought in at once. */
static int lazy_body(struct vm *vm, struct simg_reader *r, bool postcopy)
{
    struct domain *d = &vm->dom;
    struct vm_lazy_start ls = {NULL, postcopy ? postcopy_serve : lazy_serve, vm,
                               postcopy};
    uint32_t mods = vm_restore_resumed_modules();
    int rc;

    if (!(vm->lazy = ls.lz = vm_lazy_new(&d->mem)))
        return -ENOMEM;
    if (postcopy)
        rc = vm_restore_body_postcopy(d, r, &vm_kvm_state_ops, mods, &ls);
    else
        rc = vm_restore_body_lazy(d, r, &vm_kvm_state_ops, mods, &ls);
    if (!rc && postcopy)
        rc = vm_lazy_pull(vm->lazy, postcopy_done, vm, r->err, sizeof(r->err));
    else if (!rc)
        rc = vm_lazy_fill(vm->lazy, vm->args.restore, lazy_done, vm, r->err,
                          sizeof(r->err));
    if (!rc)
        rc = gmem_populate(&d->mem, GMEM_SPECIAL_BASE,
                           (uint64_t)GMEM_SPECIAL_PAGES * DOMUS_PAGE_SIZE);
    if (rc < 0) {
        vm_lazy_free(vm->lazy);
        vm->lazy = NULL;
    }
    return rc;
}

/* The restore's input: the image, or (--postcopy) stdin, a socket that
 * /proc/self/fd/0 cannot open. */
static int restore_fd(struct vm *vm)
{
    if (vm->args.postcopy)
        return fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    return open(vm->args.restore, O_RDONLY | O_CLOEXEC);
}

/* Restore mode (--restore): the KVM VM, then the save image into it in
 * place of the builder's work: memory, clock, vCPUs, HVM params (vmsave.h). */
static int image_vm_init(struct vm *vm)
{
    struct domain *d = &vm->dom;
    struct simg_reader r;
    char *config = NULL;
    int rc, fd;

    if ((rc = kvm_domain_create(d, vm->err, sizeof(vm->err))) < 0)
        return rc;
    fd = restore_fd(vm);
    if (fd < 0) {
        rc = -errno;
        dfmt(vm->err, sizeof(vm->err), "%s: %s", vm->args.restore, strerror(errno));
        kvm_domain_destroy(d);
        return rc;
    }
    simg_reader_init_fd(&r, fd);
    r.index_only = vm->args.lazy;
    r.pages_to = vm->args.lazy ? NULL : &d->mem;
    rc = vm_restore_header(&r, &config);
    if (!rc && (vm->args.lazy || vm->args.postcopy))
        rc = lazy_body(vm, &r, vm->args.postcopy);
    else if (!rc)
        rc = vm_restore_body_modules(d, &r, &vm_kvm_state_ops,
                                     vm_restore_resumed_modules());
    if (rc < 0) {
        dfmt(vm->err, sizeof(vm->err), "%s: %s", vm->args.restore,
             r.err[0] ? r.err : strerror(-rc));
        kvm_domain_destroy(d);
    } else {
        if (!vm->args.lazy && !vm->args.postcopy) /* memory complete only here */
            vm_migcheck_dest(&d->mem);
        vm->t_end = r.end_ns;
        vm->t_applied = drealtime_ns();
        dlog_debug("dom%u: restored %llu bytes (%.3f s)", d->domid,
                   (unsigned long long)r.off, elapsed());
    }
    free(config);
    simg_reader_free(&r);
    close(fd);
    return rc;
}

static int kernel_or_image_init(struct vm *vm)
{
    return vm->args.restore ? image_vm_init(vm) : kernel_vm_init(vm);
}

/* The lazy restore's threads serve faults until the vCPUs and the VM are
 * gone. */
static void kernel_vm_exit(struct vm *vm)
{
    kvm_domain_destroy(&vm->dom);
    vm_lazy_free(vm->lazy);
    vm->lazy = NULL;
}

/* ---- dev: the device table ---- */

static int devices_init(struct vm *vm)
{
    const struct vm_args *a = &vm->args;
    union vm_dev_cfg con = {.console = {a->console_log, a->console_sock}}, none = {0};
    int rc = vm_dev_add(vm, &vm_kind_console, &con, 0, vm->err, sizeof(vm->err));

    if (!rc && a->xenstore)
        rc = vm_dev_add(vm, &vm_kind_xs_ring, &none, 0, vm->err, sizeof(vm->err));
    for (unsigned i = 0; !rc && i < a->n_devs; i++)
        rc = vm_dev_add(vm, a->devs[i].kind, &a->devs[i].cfg, a->devs[i].devid, vm->err,
                        sizeof(vm->err));
    if (rc < 0)
        vm_dev_stop_all(vm);
    vm->t_devices = drealtime_ns();
    return rc;
}

/* ---- late: control socket, vCPUs ---- */

static int control_init(struct vm *vm)
{
    if (!vm->args.control_sock)
        return 0;
    vm->ctl_fd =
        unix_listen(vm->args.control_sock, 0, "control socket", vm->err, sizeof(vm->err));
    return vm->ctl_fd < 0 ? vm->ctl_fd : 0;
}

static void control_exit(struct vm *vm)
{
    if (vm->ctl_fd < 0)
        return;
    close(vm->ctl_fd);
    unlink(vm->args.control_sock);
    vm->ctl_fd = -1;
}

static int vcpus_init(struct vm *vm)
{
    int rc;

    if (vm->args.paused) /* the threads park at their first guest entry */
        kvm_domain_pause(&vm->dom, true);
    rc = kvm_domain_start(&vm->dom);

    if (rc < 0) {
        dfmt(vm->err, sizeof(vm->err), "cannot start vCPU threads");
        kvm_domain_stop(&vm->dom);
    }
    vm->t_vcpus = drealtime_ns();
    return rc;
}

/* The vCPUs leave the guest and are joined before anything they use goes. */
static void vcpus_exit(struct vm *vm)
{
    kvm_domain_stop(&vm->dom);
}

static const struct vm_step vm_steps[] = {
    {VM_LEVEL_CORE, "memory", memory_init, memory_exit},
    {VM_LEVEL_CORE, "kernel and VM", kernel_or_image_init, kernel_vm_exit},
    {VM_LEVEL_DEV, "devices", devices_init, vm_dev_stop_all},
    {VM_LEVEL_LATE, "control socket", control_init, control_exit},
    {VM_LEVEL_LATE, "vCPUs", vcpus_init, vcpus_exit},
};

int vm_init(struct vm *vm)
{
    vm->dom.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->dom.event_fd < 0) {
        dfmt(vm->err, sizeof(vm->err), "eventfd: %s", strerror(errno));
        return -errno;
    }
    return vm_steps_init(vm, vm_steps, ARRAY_SIZE(vm_steps));
}

void vm_exit(struct vm *vm)
{
    vm_steps_exit(vm, vm_steps);
    evtchn_resume_free(&vm->dom);
    if (vm->dom.event_fd >= 0)
        close(vm->dom.event_fd);
    vm->dom.event_fd = -1;
}

/* ---- main loop ---- */

/* The connection to the source failed before every page came: the guest
 * cannot run on (its pages are on the source, whose copy is older) and
 * its vCPUs may wait in faults that will never be served, so the process
 * ends at once (its threads with it) rather than through vm_exit, which
 * would join them. */
static void postcopy_failed(struct vm *vm)
{
    derr("dom%u: post-copy migration failed after the guest started here: %s; the "
         "domain is destroyed (the rest of its memory is on the source, whose copy "
         "stays paused)",
         vm->dom.domid, vm->lazy_err);
    if (vm->args.control_sock)
        unlink(vm->args.control_sock);
    _exit(DOMUS_VM_EXIT_DESTROYED);
}

int vm_run(struct vm *vm)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    ev.data.fd = vm->dom.event_fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, vm->dom.event_fd, &ev);
    if (vm->ctl_fd >= 0) {
        ev.data.fd = vm->ctl_fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, vm->ctl_fd, &ev);
    }
    int status = -1;
    while (status < 0) {
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, -1);
        for (int i = 0; i < n; i++) {
            int reason = atomic_load(&vm->dom.shutdown_reason);
            if (evs[i].data.fd == sfd)
                status = DOMUS_VM_EXIT_DESTROYED;
            else if (evs[i].data.fd == vm->ctl_fd)
                vm_ctl_serve(vm);
            else if (reason >= 0)
                status = DOMUS_VM_EXIT_SHUTDOWN_BASE + reason;
            else
                vm_event(vm);
        }
        if (status < 0 && atomic_load(&vm->lazy_rc) < 0 && vm->args.postcopy)
            postcopy_failed(vm);
        if (status < 0 && atomic_load(&vm->lazy_rc) < 0) {
            derr("dom%u: lazy restore of %s failed after the guest started: %s; the "
                 "domain is destroyed",
                 vm->dom.domid, vm->args.restore, vm->lazy_err);
            kvm_domain_pause(&vm->dom, true);
            status = DOMUS_VM_EXIT_DESTROYED;
        }
    }
    close(ep);
    close(sfd);
    return status;
}
