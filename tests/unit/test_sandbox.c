/* sandbox_thread (sandbox.h): a thread restricts itself and no other; what
 * its needs name passes (an ioctl on an eventfd reaching the kernel says
 * ENOTTY), the rest fails with EPERM; the dangerous calls fail under every
 * need; DOMUS_NO_SANDBOX=1 leaves it free; sandbox_uring's ring runs only
 * the operations named; a sanitizer report from a sandboxed thread is still
 * whole (run in a child: --use-after-free); sandbox_process, in a child,
 * keeps only the capabilities named, sets no_new_privs and refuses exec
 * (when asked), unshare, mount and bpf. */
#include "domus/sandbox.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define ALL_NEEDS                                                                        \
    (SANDBOX_EVTCHN | SANDBOX_BIND | SANDBOX_XENSTORE | SANDBOX_DISK | SANDBOX_TAP |     \
     SANDBOX_CLIENTS)
#define MAX_RESULTS 64

static char dir[] = "/tmp/test_sandbox_XXXXXX";
static char file[160];

/* What a thread does once sandboxed; errnos (0: success) in err[]. */
struct job {
    unsigned needs;
    void (*fn)(struct job *j);
    int rc; /* sandbox_thread's */
    int err[MAX_RESULTS];
    int fds[4]; /* made by the main thread for it */
};

static int result(long r)
{
    return r < 0 ? errno : 0;
}

static void *job_thread(void *arg)
{
    struct job *j = arg;

    j->rc = sandbox_thread("test", j->needs);
    if (!j->rc)
        j->fn(j);
    return NULL;
}

static void run(struct job *j)
{
    pthread_t t;

    if (pthread_create(&t, NULL, job_thread, j) || pthread_join(t, NULL))
        abort();
}

/* ---- calls no back end may make: harmless if they ever passed (a bad
 * argument gives an error other than EPERM) ---- */

struct call {
    const char *name;
    long nr;
    long a[6];
};

static const struct call forbidden[] = {
    {"execve", SYS_execve, {(long)"/nonexistent/domus"}},
    {"execveat", SYS_execveat, {AT_FDCWD, (long)"/nonexistent/domus"}},
    {"clone (a process)", SYS_clone, {CLONE_SIGHAND}},
    {"clone (a thread)", SYS_clone, {CLONE_THREAD}},
    {"clone3", SYS_clone3, {0, 0}},
    {"ptrace", SYS_ptrace, {PTRACE_PEEKDATA}},
    {"mount", SYS_mount, {0}},
    {"umount2", SYS_umount2, {0}},
    {"chroot", SYS_chroot, {0}},
    {"socket", SYS_socket, {-1}},
    {"socketpair", SYS_socketpair, {-1}},
    {"connect", SYS_connect, {-1}},
    {"bind", SYS_bind, {-1}},
    {"listen", SYS_listen, {-1}},
    {"openat to write", SYS_openat, {AT_FDCWD, 0, O_WRONLY | O_CREAT, 0600}},
    {"open to write", SYS_open, {0, O_RDWR}},
    {"creat", SYS_creat, {0, 0600}},
    {"unlink", SYS_unlink, {0}},
    {"unlinkat", SYS_unlinkat, {AT_FDCWD, 0}},
    {"rename", SYS_rename, {0, 0}},
    {"mkdir", SYS_mkdir, {0}},
    {"chmod", SYS_chmod, {0}},
    {"fchmod", SYS_fchmod, {-1}},
    {"chown", SYS_chown, {0}},
    {"truncate", SYS_truncate, {0}},
    {"ftruncate", SYS_ftruncate, {-1}},
    {"setuid", SYS_setuid, {-1}},
    {"setgid", SYS_setgid, {-1}},
    {"capset", SYS_capset, {0}},
    {"kill", SYS_kill, {-1, 0}},
    {"tgkill (another process)", SYS_tgkill, {1, 1, 0}},
    {"bpf", SYS_bpf, {-1}},
    {"init_module", SYS_init_module, {0}},
    {"finit_module", SYS_finit_module, {-1}},
    {"kexec_file_load", SYS_kexec_file_load, {-1, -1, 0, 0, -1}},
    {"open_by_handle_at", SYS_open_by_handle_at, {-1}},
    {"io_uring_setup", SYS_io_uring_setup, {0, 0}},
    {"io_uring_register", SYS_io_uring_register, {-1}},
    {"memfd_create", SYS_memfd_create, {0}},
    {"unshare", SYS_unshare, {-1}},
    {"setns", SYS_setns, {-1}},
    {"process_vm_writev", SYS_process_vm_writev, {0}},
    {"reboot", SYS_reboot, {0}},
    {"mmap executable",
     SYS_mmap,
     {0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANON, -1}},
    {"mprotect executable", SYS_mprotect, {0, 0, PROT_EXEC}},
    {"ioctl FIONBIO", SYS_ioctl, {-1, FIONBIO}},
};

static void try_forbidden(struct job *j)
{
    for (size_t i = 0; i < ARRAY_SIZE(forbidden); i++) {
        const long *a = forbidden[i].a;
        j->err[i] = result(syscall(forbidden[i].nr, a[0], a[1], a[2], a[3], a[4], a[5]));
    }
}

static void test_forbidden(void)
{
    static const unsigned kinds[] = {0, ALL_NEEDS};
    char name[96];

    _Static_assert(ARRAY_SIZE(forbidden) <= MAX_RESULTS, "too many calls");
    for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
        struct job j = {.needs = kinds[k], .fn = try_forbidden};
        run(&j);
        CHECK(k ? "sandboxed with every need" : "sandboxed with no need", j.rc == 0);
        for (size_t i = 0; i < ARRAY_SIZE(forbidden); i++) {
            snprintf(name, sizeof(name), "%s: %s fails with EPERM",
                     k ? "every need" : "no need", forbidden[i].name);
            CHECK(name, j.err[i] == EPERM);
        }
    }
}

/* ---- what each need allows ---- */

enum {
    R_WRITE,
    R_READ,
    R_MALLOC,
    R_POLL,
    R_SEND_EV,
    R_SET_ATTR,
    R_TUN,
    R_SENDTO,
    R_PREADV
};

/* The base and one probe per need: fds[0..1] a pipe, fds[2] an eventfd,
 * fds[3] one end of a socketpair. */
static void probe(struct job *j)
{
    struct kvm_irq_routing_xen_evtchn e = {0};
    struct kvm_xen_hvm_attr a = {0};
    struct pollfd p = {j->fds[0], POLLIN, 0};
    char c = 'x', buf[8];
    struct iovec iov = {buf, 1};
    void *m;

    j->err[R_WRITE] = result(write(j->fds[1], &c, 1));
    j->err[R_READ] = result(read(j->fds[0], &c, 1));
    m = malloc(1 << 20); /* mmap'd by malloc */
    j->err[R_MALLOC] = m ? 0 : ENOMEM;
    free(m);
    j->err[R_POLL] = result(poll(&p, 1, 0));
    j->err[R_SEND_EV] = result(ioctl(j->fds[2], KVM_XEN_HVM_EVTCHN_SEND, &e));
    j->err[R_SET_ATTR] = result(ioctl(j->fds[2], KVM_XEN_HVM_SET_ATTR, &a));
    j->err[R_TUN] = result(ioctl(j->fds[2], TUNSETOFFLOAD, 0));
    j->err[R_SENDTO] = result(send(j->fds[3], &c, 1, MSG_DONTWAIT));
    j->err[R_PREADV] = result(preadv(j->fds[0], &iov, 1, 0)); /* ESPIPE on a pipe */
}

static void probe_with(unsigned needs, struct job *j)
{
    int sv[2];

    *j = (struct job){.needs = needs, .fn = probe};
    if (pipe(j->fds) < 0 || (j->fds[2] = eventfd(0, 0)) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    j->fds[3] = sv[0];
    run(j);
    close(sv[1]);
    for (int i = 0; i < 4; i++)
        close(j->fds[i]);
}

static void test_needs(void)
{
    struct job j;

    probe_with(0, &j);
    CHECK("no need: write, read, malloc, poll pass",
          j.rc == 0 && !j.err[R_WRITE] && !j.err[R_READ] && !j.err[R_MALLOC] &&
              !j.err[R_POLL]);
    CHECK("no need: KVM, tap ioctls, send, preadv fail with EPERM",
          j.err[R_SEND_EV] == EPERM && j.err[R_SET_ATTR] == EPERM &&
              j.err[R_TUN] == EPERM && j.err[R_SENDTO] == EPERM &&
              j.err[R_PREADV] == EPERM);
    probe_with(SANDBOX_EVTCHN, &j);
    CHECK("event channels: KVM_XEN_HVM_EVTCHN_SEND reaches the kernel, no other ioctl",
          j.err[R_SEND_EV] == ENOTTY && j.err[R_SET_ATTR] == EPERM &&
              j.err[R_TUN] == EPERM);
    probe_with(SANDBOX_BIND, &j);
    CHECK("port binding: KVM_XEN_HVM_SET_ATTR reaches the kernel, no other ioctl",
          j.err[R_SET_ATTR] == ENOTTY && j.err[R_SEND_EV] == EPERM &&
              j.err[R_TUN] == EPERM);
    probe_with(SANDBOX_TAP, &j);
    CHECK("tap: TUNSETOFFLOAD reaches the kernel, no other ioctl",
          j.err[R_TUN] != EPERM && j.err[R_SEND_EV] == EPERM &&
              j.err[R_SET_ATTR] == EPERM);
    probe_with(SANDBOX_XENSTORE, &j);
    CHECK("xenstore: send passes", j.err[R_SENDTO] == 0 && j.err[R_PREADV] == EPERM);
    probe_with(SANDBOX_DISK, &j);
    CHECK("disk: preadv reaches the kernel", j.err[R_PREADV] == ESPIPE);
}

/* A disk image opened before: preadv, pwritev, fdatasync, punching a hole;
 * io_uring_enter reaches the kernel (EBADF), io_uring_setup does not. */
static void disk_io(struct job *j)
{
    char w[512] = "sandboxed", r[512] = "";
    struct iovec wi = {w, sizeof(w)}, ri = {r, sizeof(r)};

    j->err[0] = result(pwritev(j->fds[0], &wi, 1, 4096));
    j->err[1] = result(preadv(j->fds[0], &ri, 1, 4096)) || strcmp(r, w) ? EIO : 0;
    j->err[2] = result(fdatasync(j->fds[0]));
    j->err[3] = result(
        fallocate(j->fds[0], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096));
    j->err[4] = result(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0));
    j->err[5] = result(syscall(SYS_io_uring_setup, 0, NULL));
}

static void test_disk(void)
{
    struct job j = {.needs = SANDBOX_DISK, .fn = disk_io};

    j.fds[0] = open(file, O_RDWR);
    run(&j);
    close(j.fds[0]);
    CHECK("disk: pwritev, preadv, fdatasync pass", !j.err[0] && !j.err[1] && !j.err[2]);
    CHECK("disk: fallocate reaches the kernel", j.err[3] != EPERM);
    CHECK("disk: io_uring_enter reaches the kernel, io_uring_setup does not",
          j.err[4] == EBADF && j.err[5] == EPERM);
}

/* A listening socket made before: accept4 (EAGAIN: nobody), epoll. */
static void clients(struct job *j)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int ep = j->fds[1];

    j->err[0] = result(accept4(j->fds[0], NULL, NULL, SOCK_NONBLOCK));
    j->err[1] = result(epoll_ctl(ep, EPOLL_CTL_ADD, j->fds[0], &ev));
    j->err[2] = result(epoll_wait(ep, &ev, 1, 0));
    j->err[3] = result(close(ep));
}

static void test_clients(void)
{
    struct job j = {.needs = SANDBOX_CLIENTS, .fn = clients};
    char sock[200], err[128];

    snprintf(sock, sizeof(sock), "%s/sock", dir);
    j.fds[0] = unix_listen(sock, SOCK_NONBLOCK, "test", err, sizeof(err));
    j.fds[1] = epoll_create1(0);
    run(&j);
    close(j.fds[0]);
    CHECK("clients: accept4 reaches the kernel, epoll_ctl, epoll_wait, close pass",
          j.err[0] == EAGAIN && !j.err[1] && !j.err[2] && !j.err[3]);
}

/* ---- a restricted io_uring ---- */

/* One SQE's result: op at the file (or an opening of it), with flags. */
static int uring_one(struct io_uring *r, int fd, unsigned char op, unsigned char flags)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(r);
    struct io_uring_cqe *cqe;
    static char buf[64];
    struct iovec iov = {buf, sizeof(buf)};
    int res;

    if (op == IORING_OP_READV)
        io_uring_prep_readv(sqe, fd, &iov, 1, 0);
    else if (op == IORING_OP_OPENAT)
        io_uring_prep_openat(sqe, AT_FDCWD, file, O_RDWR, 0);
    else
        io_uring_prep_nop(sqe);
    io_uring_sqe_set_flags(sqe, flags);
    if (io_uring_submit_and_wait(r, 1) < 0 || io_uring_peek_cqe(r, &cqe) < 0)
        return -EIO;
    res = cqe->res;
    io_uring_cqe_seen(r, cqe);
    if (op == IORING_OP_OPENAT && res >= 0)
        close(res);
    return res;
}

static void test_uring(void)
{
    static const unsigned char ops[] = {IORING_OP_READV};
    struct io_uring_params p = {0};
    struct io_uring r;
    int fd = open(file, O_RDONLY), efd = eventfd(0, 0);

    CHECK("io_uring: a ring restricted to readv and IOSQE_IO_DRAIN",
          sandbox_uring(4, &r, &p, ops, 1, IOSQE_IO_DRAIN, efd) == 0);
    CHECK("io_uring: readv passes, also drained",
          uring_one(&r, fd, IORING_OP_READV, 0) == 64 &&
              uring_one(&r, fd, IORING_OP_READV, IOSQE_IO_DRAIN) == 64);
    CHECK("io_uring: openat and nop are refused (EACCES)",
          uring_one(&r, fd, IORING_OP_OPENAT, 0) == -EACCES &&
              uring_one(&r, fd, IORING_OP_NOP, 0) == -EACCES);
    CHECK("io_uring: readv with IOSQE_ASYNC is refused",
          uring_one(&r, fd, IORING_OP_READV, IOSQE_ASYNC) == -EACCES);
    CHECK("io_uring: no more registrations",
          io_uring_register_eventfd(&r, efd) == -EACCES);
    io_uring_queue_exit(&r);
    close(fd);
    close(efd);
}

/* ---- only the thread ---- */

static void unlink_file(struct job *j)
{
    j->err[0] = result(unlink(file));
    j->err[1] = result(socket(AF_UNIX, SOCK_STREAM, 0));
}

static void test_only_the_thread(void)
{
    struct job j = {.needs = ALL_NEEDS, .fn = unlink_file};
    struct stat st;
    int s;

    run(&j);
    CHECK("sandboxed: unlink and socket fail with EPERM, the file stays",
          j.err[0] == EPERM && j.err[1] == EPERM && stat(file, &st) == 0);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK("the main thread still makes sockets", s >= 0);
    close(s);
    setenv("DOMUS_NO_SANDBOX", "1", 1);
    j = (struct job){.needs = 0, .fn = unlink_file};
    run(&j);
    unsetenv("DOMUS_NO_SANDBOX");
    CHECK("DOMUS_NO_SANDBOX=1: the thread is left free",
          j.rc == 0 && j.err[0] == 0 && j.err[1] == 0 && stat(file, &st) < 0);
}

/* ---- a sanitizer report from a sandboxed thread ---- */

static char *volatile stale; /* hides the bug from the compiler */

static void use_after_free(struct job *j)
{
    char *p = malloc(8);

    stale = p;
    free(p);
    j->err[0] = stale[0]; /* heap-use-after-free */
}

static void test_report(const char *self)
{
    char out[16384] = "";
    int pfd[2], status = 0;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    if (pipe(pfd) < 0 || (pid = fork()) < 0)
        abort();
    if (pid == 0) {
        dup2(pfd[1], 2);
        execl("/proc/self/exe", self, "--use-after-free", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    while (len < sizeof(out) - 1 &&
           (n = read(pfd[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    close(pfd[0]);
    waitpid(pid, &status, 0);
    CHECK("a sanitizer report from a sandboxed thread: the error and its frames",
          WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
              strstr(out, "AddressSanitizer: heap-use-after-free") &&
              strstr(out, "test_sandbox.c:") && strstr(out, "freed by thread T1"));
}

/* ---- sandbox_process: a whole daemon, in a child ---- */

enum { P_NNP, P_CAPS, P_EXEC, P_UNSHARE, P_MOUNT, P_BPF_ERRNO, P_STILL, P_N };

/* In a child: sandbox_process(keep NET_ADMIN, flags), then what passes;
 * last an execve, after which (when it works) nothing is written to out. */
static void process_child(unsigned flags, int out)
{
    static const int keep[] = {CAP_NET_ADMIN};
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct c[2] = {{0}};
    int r[P_N] = {0};
    char *const argv[] = {"/bin/true", NULL};

    r[P_STILL] = sandbox_process("test", keep, 1, flags);
    r[P_NNP] = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : EINVAL;
    bool root = geteuid() == 0;
    if (syscall(SYS_capget, &h, c) < 0)
        r[P_CAPS] = errno;
    else if (c[0].effective != (root ? 1u << CAP_NET_ADMIN : 0) || c[1].effective ||
             c[0].inheritable)
        r[P_CAPS] = EINVAL;
    r[P_UNSHARE] = result(unshare(CLONE_NEWUTS));
    r[P_MOUNT] = result(mount("none", dir, "tmpfs", 0, NULL));
    r[P_BPF_ERRNO] = result(syscall(SYS_bpf, 0, NULL, 0));
    r[P_EXEC] = result(execve("/bin/true", argv, NULL)); /* returns only on failure */
    if (write(out, r, sizeof(r)) != sizeof(r))
        _exit(2);
    _exit(0);
}

static bool process_run(unsigned flags, int r[P_N])
{
    int p[2], st;
    if (pipe(p) < 0)
        return false;
    pid_t pid = fork();
    if (pid == 0)
        process_child(flags, p[1]);
    close(p[1]);
    bool ok = pid > 0 && read(p[0], r, sizeof(int) * P_N) == (ssize_t)(sizeof(int) * P_N);
    close(p[0]);
    return ok && waitpid(pid, &st, 0) == pid;
}

static void test_process(void)
{
    int r[P_N];

    CHECK("process: sandbox_process in a child", process_run(SANDBOX_PROC_NO_EXEC, r));
    CHECK("process: applied", r[P_STILL] == 0);
    CHECK("process: no_new_privs set", r[P_NNP] == 0);
    CHECK("process: only the capability kept is left (none when not root)",
          r[P_CAPS] == 0);
    CHECK("process: execve refused (SANDBOX_PROC_NO_EXEC)", r[P_EXEC] == EPERM);
    CHECK("process: unshare refused", r[P_UNSHARE] == EPERM);
    CHECK("process: mount refused", r[P_MOUNT] == EPERM);
    CHECK("process: bpf refused", r[P_BPF_ERRNO] == EPERM);
    /* Without NO_EXEC the child execs /bin/true and writes nothing. */
    CHECK("process: execve allowed without SANDBOX_PROC_NO_EXEC", !process_run(0, r));
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--use-after-free")) {
        struct job j = {.needs = ALL_NEEDS, .fn = use_after_free};
        run(&j);
        return 0;
    }
    if (!mkdtemp(dir))
        return 1;
    snprintf(file, sizeof(file), "%s/disk.img", dir);
    int fd = open(file, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 1 << 16) < 0)
        return 1;
    close(fd);
    test_forbidden();
    test_needs();
    test_disk();
    test_clients();
    test_uring();
    test_only_the_thread();
    test_process();
    test_report(argv[0]);
    unlink(file);
    char sock[200];
    snprintf(sock, sizeof(sock), "%s/sock", dir);
    unlink(sock);
    rmdir(dir);
    return failures ? 1 : 0;
}
