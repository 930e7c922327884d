/* Least privilege for the back-end threads of domus-vm (console, xenstore
 * ring, blkback, netback): a seccomp filter on the calling thread only.
 *
 * A thread calls sandbox_thread() once its set-up is done (files, sockets,
 * rings and eventfds opened by domus-vm's main thread or by itself before
 * the call).  From then on only the system calls its work needs pass; every
 * other fails with EPERM (and is reported by the kernel's audit log, when
 * that is on).  The filter binds the calling thread alone: no TSYNC, so the
 * vCPU threads, the control thread and the other back ends are untouched;
 * no_new_privs is set on the thread, as seccomp requires.
 *
 * Every sandboxed thread may use memory (mmap and mprotect never
 * executable), locks, clocks, read and write (its eventfds, the log),
 * poll, signal masks and end itself; the needs below add the rest.
 * Nothing creates processes or threads, runs programs, opens, creates or
 * changes files, makes or connects sockets, traces, mounts, changes
 * credentials, signals other processes or loads code: test_sandbox checks
 * such calls fail under every kind of need.
 *
 * DOMUS_NO_SANDBOX=1 in the environment leaves the thread unrestricted
 * (for debugging), said in the log. */
#ifndef DOMUS_SANDBOX_H
#define DOMUS_SANDBOX_H

/* Raises guest ports: ioctl KVM_XEN_HVM_EVTCHN_SEND. */
#define SANDBOX_EVTCHN (1u << 0)
/* Binds and unbinds guest ports to eventfds: ioctl KVM_XEN_HVM_SET_ATTR. */
#define SANDBOX_BIND (1u << 1)
/* Requests and watch events on its connected xenstore sockets: sendto,
 * recvfrom. */
#define SANDBOX_XENSTORE (1u << 2)
/* I/O on an open disk image: preadv, pwritev, fdatasync, fallocate,
 * io_uring_enter (on a ring set up before). */
#define SANDBOX_DISK (1u << 3)
/* Frames on an open tap: writev, ioctl TUNSETOFFLOAD. */
#define SANDBOX_TAP (1u << 4)
/* Clients of a listening socket: accept4, epoll_wait, epoll_ctl, sendto,
 * close. */
#define SANDBOX_CLIENTS (1u << 5)
/* Keeping an open log file within its cap: fstat, pread64, ftruncate. */
#define SANDBOX_LOG (1u << 6)

/* Restricts the calling thread to what needs (SANDBOX_*) allows.  who
 * names it in the log line that says so ("dom5 vbd 51712").  0, or -errno
 * (the thread then runs unrestricted, with a warning in the log). */
int sandbox_thread(const char *who, unsigned needs);

/* Least privilege for a whole daemon (domusd, domus-xenstored), called
 * once early, before it starts threads or children (all of which inherit
 * it):
 *  - every capability but keep[0..nkeep) (CAP_*) leaves the permitted,
 *    effective, inheritable and ambient sets, and the bounding set where
 *    the process may drop from it (CAP_SETPCAP);
 *  - no_new_privs: nothing it runs gains privileges (setuid, file caps);
 *  - a seccomp filter on all its threads that refuses (EPERM) what no
 *    Domus process does: loading kernel code, kexec, reboot, mounts and
 *    namespaces, tracing or reading other processes' memory, keyrings,
 *    swap, setting clocks, I/O ports, the kernel log; and with
 *    SANDBOX_PROC_NO_EXEC, running programs.
 * DOMUS_NO_SANDBOX=1 leaves the process as it is.  0 or -errno (a warning
 * in the log; the process goes on, maybe partly restricted). */
#define SANDBOX_PROC_NO_EXEC (1u << 0)
int sandbox_process(const char *who, const int *keep, unsigned nkeep, unsigned flags);

/* io_uring's operations are not system calls: seccomp does not see them,
 * and a thread allowed io_uring_enter could open, connect or send through
 * its ring.  So a back end's ring is restricted as it is set up: it runs
 * only the SQE opcodes ops[0..nops) (IORING_OP_*, at most
 * SANDBOX_URING_MAX_OPS) with no SQE flags but sqe_flags (IOSQE_*), and
 * takes no more registrations once efd (-1: none) is registered for its
 * completions.  Like io_uring_queue_init_params (p->flags gets
 * IORING_SETUP_R_DISABLED until the ring is ready).  0 or -errno, nothing
 * left behind. */
#define SANDBOX_URING_MAX_OPS 8
struct io_uring;
struct io_uring_params;
int sandbox_uring(unsigned entries, struct io_uring *ring, struct io_uring_params *p,
                  const unsigned char *ops, unsigned nops, unsigned char sqe_flags,
                  int efd);

#endif
