/* Per-thread seccomp filters for the back ends (contract: sandbox.h). */
#include "domus/sandbox.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <liburing.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

/* Every sandboxed thread: its eventfds and the log, waiting, malloc's
 * arenas, locks, clocks, signal masks (abort, the thread's end), ending.
 * mmap, mprotect and tgkill pass only with the arguments in allow_base. */
static const int base_calls[] = {
    SCMP_SYS(read),         SCMP_SYS(write),         SCMP_SYS(poll),
    SCMP_SYS(ppoll),        SCMP_SYS(munmap),        SCMP_SYS(mremap),
    SCMP_SYS(madvise),      SCMP_SYS(brk),           SCMP_SYS(futex),
    SCMP_SYS(sched_yield),  SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),    SCMP_SYS(gettimeofday),  SCMP_SYS(getpid),
    SCMP_SYS(gettid),       SCMP_SYS(getrandom),     SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),   SCMP_SYS(restart_syscall),
    SCMP_SYS(exit),         SCMP_SYS(exit_group),
};

#ifdef SANDBOX_ASAN
/* The sanitizers' report from a sandboxed thread: it reads /proc/self/maps
 * and the binaries (read-only opens: allow_asan), asks whether stderr is a
 * terminal (TCGETS) and probes memory through a pipe.  Not in the normal
 * build.  An external symbolizer (fork, execve) stays forbidden: GCC's
 * runtime symbolizes in-process; without it frames are module+offset. */
static const int asan_calls[] = {
    SCMP_SYS(close),      SCMP_SYS(fstat),
    SCMP_SYS(newfstatat), SCMP_SYS(lseek),
    SCMP_SYS(pread64),    SCMP_SYS(readlink),
    SCMP_SYS(readlinkat), SCMP_SYS(fcntl),
    SCMP_SYS(pipe2),      SCMP_SYS(sched_getaffinity),
};
#endif

static const int xenstore_calls[] = {SCMP_SYS(sendto), SCMP_SYS(recvfrom)};
static const int disk_calls[] = {SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(fdatasync),
                                 SCMP_SYS(fallocate), SCMP_SYS(io_uring_enter)};
static const int tap_calls[] = {SCMP_SYS(writev)};
static const int clients_calls[] = {SCMP_SYS(accept4),     SCMP_SYS(epoll_wait),
                                    SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
                                    SCMP_SYS(sendto),      SCMP_SYS(close)};
static const int log_calls[] = {SCMP_SYS(fstat), SCMP_SYS(pread64), SCMP_SYS(ftruncate)};

/* What one need allows: system calls with any arguments, and one ioctl
 * request (0: none). */
struct grant {
    unsigned need;
    const char *what;
    const int *calls;
    size_t ncalls;
    unsigned long ioctl;
};

static const struct grant grants[] = {
    {SANDBOX_EVTCHN, "event channels", NULL, 0, KVM_XEN_HVM_EVTCHN_SEND},
    {SANDBOX_BIND, "port binding", NULL, 0, KVM_XEN_HVM_SET_ATTR},
    {SANDBOX_XENSTORE, "xenstore", xenstore_calls, ARRAY_SIZE(xenstore_calls), 0},
    {SANDBOX_DISK, "disk", disk_calls, ARRAY_SIZE(disk_calls), 0},
    {SANDBOX_TAP, "tap", tap_calls, ARRAY_SIZE(tap_calls), TUNSETOFFLOAD},
    {SANDBOX_CLIENTS, "clients", clients_calls, ARRAY_SIZE(clients_calls), 0},
    {SANDBOX_LOG, "log file", log_calls, ARRAY_SIZE(log_calls), 0},
};

static int allow_calls(scmp_filter_ctx ctx, const int *calls, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n && !rc; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
    return rc;
}

/* Allows system call nr when (argument arg & mask) == value. */
static int allow_if(scmp_filter_ctx ctx, int nr, unsigned arg, scmp_datum_t mask,
                    scmp_datum_t value)
{
    struct scmp_arg_cmp c = {
        .arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value};

    return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &c);
}

#define ALL_BITS ((scmp_datum_t)-1)

/* Mappings never executable; signals to this process only. */
static int allow_base(scmp_filter_ctx ctx)
{
    int rc = allow_calls(ctx, base_calls, ARRAY_SIZE(base_calls));

    rc = rc ? rc : allow_if(ctx, SCMP_SYS(mmap), 2, PROT_EXEC, 0);
    rc = rc ? rc : allow_if(ctx, SCMP_SYS(mprotect), 2, PROT_EXEC, 0);
    return rc ? rc : allow_if(ctx, SCMP_SYS(tgkill), 0, ALL_BITS, (scmp_datum_t)getpid());
}

#ifdef SANDBOX_ASAN
/* Read-only opens and TCGETS, for the sanitizers' reports. */
static int allow_asan(scmp_filter_ctx ctx)
{
    const scmp_datum_t how = O_ACCMODE | O_CREAT | O_TRUNC | O_TMPFILE;
    int rc = allow_calls(ctx, asan_calls, ARRAY_SIZE(asan_calls));

    rc = rc ? rc : allow_if(ctx, SCMP_SYS(ioctl), 1, ALL_BITS, TCGETS);
    rc = rc ? rc : allow_if(ctx, SCMP_SYS(openat), 2, how, O_RDONLY);
    return rc ? rc : allow_if(ctx, SCMP_SYS(open), 1, how, O_RDONLY);
}
#else
static int allow_asan(scmp_filter_ctx ctx)
{
    (void)ctx;
    return 0;
}
#endif

/* The rules for needs; their names, for the log, in what. */
static int add_rules(scmp_filter_ctx ctx, unsigned needs, char *what, size_t len)
{
    size_t used = (size_t)snprintf(what, len, "base");
    int rc = allow_base(ctx);

    rc = rc ? rc : allow_asan(ctx);
    for (size_t i = 0; i < ARRAY_SIZE(grants) && !rc; i++) {
        const struct grant *g = &grants[i];
        if (!(needs & g->need))
            continue;
        rc = allow_calls(ctx, g->calls, g->ncalls);
        if (!rc && g->ioctl)
            rc = allow_if(ctx, SCMP_SYS(ioctl), 1, ALL_BITS, g->ioctl);
        if (used < len)
            used += (size_t)snprintf(what + used, len - used, ", %s", g->what);
    }
    return rc;
}

static bool disabled(void)
{
    return denv_is_1("DOMUS_NO_SANDBOX");
}

int sandbox_thread(const char *who, unsigned needs)
{
    scmp_filter_ctx ctx = NULL;
    char what[128];
    int rc;

    if (disabled()) {
        dinfo("%s: not sandboxed (DOMUS_NO_SANDBOX=1)", who);
        return 0;
    }
    if (!(ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM)))) {
        rc = -ENOMEM;
        goto out;
    }
    /* This thread only; no_new_privs; denials to the audit log (API 3). */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 0);
    rc = rc ? rc : seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (!rc && seccomp_api_get() >= 3)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);
    rc = rc ? rc : add_rules(ctx, needs, what, sizeof(what));
    rc = rc ? rc : seccomp_load(ctx);
out:
    if (ctx)
        seccomp_release(ctx);
    if (rc)
        dwarn("%s: not sandboxed: seccomp: %s", who, strerror(-rc));
    else
        dinfo("%s: sandboxed (seccomp: %s)", who, what);
    return rc;
}

/* Debian 12's liburing 2.3 declares io_uring_register_restrictions and
 * io_uring_enable_rings but does not export them. */
static int uring_register(struct io_uring *ring, unsigned op, void *arg, unsigned n)
{
    return syscall(SYS_io_uring_register, ring->ring_fd, op, arg, n) < 0 ? -errno : 0;
}

int sandbox_uring(unsigned entries, struct io_uring *ring, struct io_uring_params *p,
                  const unsigned char *ops, unsigned nops, unsigned char sqe_flags,
                  int efd)
{
    struct io_uring_restriction res[SANDBOX_URING_MAX_OPS + 1];
    int rc;

    if (nops > SANDBOX_URING_MAX_OPS)
        return -EINVAL;
    memset(res, 0, sizeof(res));
    for (unsigned i = 0; i < nops; i++) {
        res[i].opcode = IORING_RESTRICTION_SQE_OP;
        res[i].sqe_op = ops[i];
    }
    res[nops].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
    res[nops].sqe_flags = sqe_flags;
    p->flags |= IORING_SETUP_R_DISABLED;
    if ((rc = io_uring_queue_init_params(entries, ring, p)) < 0)
        return rc;
    rc = efd >= 0 ? io_uring_register_eventfd(ring, efd) : 0;
    rc = rc ? rc : uring_register(ring, IORING_REGISTER_RESTRICTIONS, res, nops + 1);
    rc = rc ? rc : uring_register(ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (rc)
        io_uring_queue_exit(ring);
    return rc;
}

/* ---- whole daemons ---- */

/* What no Domus process does; refused to the daemons and what they run. */
static const int never_calls[] = {
    SCMP_SYS(init_module),
    SCMP_SYS(finit_module),
    SCMP_SYS(delete_module),
    SCMP_SYS(kexec_load),
    SCMP_SYS(kexec_file_load),
    SCMP_SYS(reboot),
    SCMP_SYS(mount),
    SCMP_SYS(umount2),
    SCMP_SYS(pivot_root),
    SCMP_SYS(chroot),
    SCMP_SYS(unshare),
    SCMP_SYS(setns),
    SCMP_SYS(process_vm_readv),
    SCMP_SYS(process_vm_writev),
    SCMP_SYS(bpf),
    SCMP_SYS(perf_event_open),
    SCMP_SYS(userfaultfd),
    SCMP_SYS(keyctl),
    SCMP_SYS(add_key),
    SCMP_SYS(request_key),
    SCMP_SYS(swapon),
    SCMP_SYS(swapoff),
    SCMP_SYS(settimeofday),
    SCMP_SYS(clock_settime),
    SCMP_SYS(clock_adjtime),
    SCMP_SYS(adjtimex),
    SCMP_SYS(iopl),
    SCMP_SYS(ioperm),
    SCMP_SYS(acct),
    SCMP_SYS(personality),
    SCMP_SYS(open_by_handle_at),
    SCMP_SYS(name_to_handle_at),
    SCMP_SYS(quotactl),
    SCMP_SYS(syslog),
    SCMP_SYS(uselib),
    SCMP_SYS(fanotify_init),
#ifndef SANDBOX_ASAN
    SCMP_SYS(ptrace), /* LeakSanitizer stops the threads with it at exit */
#endif
};
static const int exec_calls[] = {SCMP_SYS(execve), SCMP_SYS(execveat)};

static int deny_calls(scmp_filter_ctx ctx, const int *calls, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n && !rc; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), calls[i], 0);
    return rc;
}

/* The deny filter on every thread of the process (TSYNC). */
static int deny_filter(unsigned flags)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int rc;

    if (!ctx)
        return -ENOMEM;
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    rc = rc ? rc : deny_calls(ctx, never_calls, ARRAY_SIZE(never_calls));
    if (!rc && (flags & SANDBOX_PROC_NO_EXEC))
        rc = deny_calls(ctx, exec_calls, ARRAY_SIZE(exec_calls));
    rc = rc ? rc : seccomp_load(ctx);
    seccomp_release(ctx);
    return rc;
}

static bool kept(int cap, const int *keep, unsigned nkeep)
{
    for (unsigned i = 0; i < nkeep; i++)
        if (keep[i] == cap)
            return true;
    return false;
}

static int last_cap(void)
{
    int last = CAP_LAST_CAP;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");

    if (f) {
        if (fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
            last = CAP_LAST_CAP;
        fclose(f);
    }
    return last;
}

/* Every capability but keep leaves every set; the bounding set only when
 * we may (CAP_SETPCAP). */
static int drop_caps(const int *keep, unsigned nkeep)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct c[2];
    int last = last_cap();

    if (syscall(SYS_capget, &h, c) < 0)
        return -errno;
    bool setpcap = c[0].effective & (1u << CAP_SETPCAP);
    for (int cap = 0; cap <= last; cap++) {
        if (kept(cap, keep, nkeep))
            continue;
        if (setpcap && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return -errno;
        c[cap / 32].effective &= ~(1u << (cap % 32));
        c[cap / 32].permitted &= ~(1u << (cap % 32));
    }
    c[0].inheritable = c[1].inheritable = 0;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    return syscall(SYS_capset, &h, c) < 0 ? -errno : 0;
}

int sandbox_process(const char *who, const int *keep, unsigned nkeep, unsigned flags)
{
    int rc;

    if (disabled()) {
        dinfo("%s: not sandboxed (DOMUS_NO_SANDBOX=1)", who);
        return 0;
    }
    rc = drop_caps(keep, nkeep);
    if (!rc && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        rc = -errno;
    rc = rc ? rc : deny_filter(flags);
    if (rc)
        dwarn("%s: least privilege: %s", who, strerror(-rc));
    else
        dinfo("%s: %u capabilities kept, no_new_privs, seccomp deny list%s", who, nkeep,
              flags & SANDBOX_PROC_NO_EXEC ? " (no exec)" : "");
    return rc;
}
