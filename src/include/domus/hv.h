/* The hypervisor core of one guest domain (runs inside domus-vm).
 *
 * A domain owns its guest memory, its vCPUs, its event channels and grant
 * table, and its HVM parameters.  Everything the hypercall layer does to the
 * outside world (KVM, back ends) goes through struct hv_ops, so the hypercall
 * and event channel logic can be driven by unit tests without /dev/kvm. */
#ifndef DOMUS_HV_H
#define DOMUS_HV_H

#include "domus/gmem.h"
#include "domus/memop.h"
#include "domus/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/hvm/params.h>

#define HV_MAX_VCPUS 128
#define HV_NR_PORTS (sizeof(xen_ulong_t) * sizeof(xen_ulong_t) * 64) /* 2-level ABI */
#define HV_GNTTAB_MAX_FRAMES 32
#define HV_XEN_MAJOR 4
#define HV_XEN_MINOR 17
/* The address given to hv_ops' set_vcpu_time_info and set_runstate to end a
 * registration (a guest's address 0; KVM's GPA_INVALID). */
#define HV_GPA_NONE (~0ULL)

struct domain;
struct vcpu;

/* Event channel port state (Xen's ECS_*). */
enum evtchn_state {
    EVS_FREE = 0,
    EVS_RESERVED,
    EVS_UNBOUND,
    EVS_INTERDOMAIN,
    EVS_VIRQ,
    EVS_IPI,
};

struct evtchn {
    enum evtchn_state state;
    uint32_t vcpu;        /* notify vCPU */
    domid_t remote_dom;   /* UNBOUND: who may bind; INTERDOMAIN: the peer */
    uint32_t remote_port; /* INTERDOMAIN */
    uint32_t virq;        /* VIRQ */
    int backend_fd; /* eventfd signalled when the guest sends (Dom0 back end), or -1 */
};

/* Side effects of hypercalls on the outside world.  The KVM implementation
 * lives in kvm.c; unit tests supply fakes.  Each returns 0 or -errno. */
struct hv_ops {
    int (*set_shared_info)(struct domain *d, uint64_t gfn);
    int (*set_vcpu_info)(struct vcpu *v, uint64_t gpa);
    int (*set_vcpu_time_info)(struct vcpu *v, uint64_t gpa);
    int (*set_runstate)(struct vcpu *v, uint64_t gpa);
    /* vm_assist(runstate_update_flag) turned on or off.  NULL: nothing to
     * tell (a runstate area that never changes). */
    int (*set_runstate_update_flag)(struct domain *d, bool on);
    int (*set_upcall_vector)(struct vcpu *v, uint8_t vector);
    int (*set_global_upcall_vector)(struct domain *d, uint8_t vector);
    int (*set_timer)(struct vcpu *v, uint32_t port, uint64_t expires_ns);
    /* Marks port pending for the guest and raises the upcall on vcpu. */
    int (*deliver)(struct domain *d, uint32_t port, uint32_t vcpu);
    /* Routes guest sends on port: to a local port (IPI/loopback), to an
     * eventfd (back end), or nowhere (remove). */
    int (*route_local)(struct domain *d, uint32_t port, uint32_t target, uint32_t vcpu);
    int (*route_eventfd)(struct domain *d, uint32_t port, int fd);
    int (*route_remove)(struct domain *d, uint32_t port);
    /* Makes extra page idx (gmem_place_extra) appear at gpa in the guest;
     * gpa 0 and host NULL: takes it out of the guest's map. */
    int (*map_extra)(struct domain *d, unsigned idx, uint64_t gpa, void *host);
    /* Guest-virtual to guest-physical for vcpu v; -EFAULT when unmapped. */
    int (*translate)(struct vcpu *v, uint64_t gva, uint64_t *gpa);
    /* Gets vcpu v's thread to serve a posted call soon: out of KVM_RUN, or
     * out of a pause's wait.  NULL: HV_KICK_SIGNAL to the thread. */
    void (*kick)(struct vcpu *v);
    /* vCPU v (on its own thread) made SCHEDOP_shutdown(SHUTDOWN_suspend):
     * no vCPU may enter the guest again, v's own thread included once its
     * hypercall has completed, until the domain is resumed (kvm.h).  NULL:
     * nothing to stop (unit tests). */
    void (*suspend)(struct vcpu *v);
    /* The guest's system time in ns (what timeouts and timers are absolute
     * in: kvmclock).  NULL: CLOCK_MONOTONIC. */
    uint64_t (*now_ns)(struct domain *d);
    /* When v's one-shot timer fires (system ns), 0 if it is not set; called
     * on v's own thread.  NULL: v->singleshot_ns. */
    uint64_t (*timer_expiry)(struct vcpu *v);
};

/* What made a vCPU leave KVM_RUN for us: counted by its own thread only. */
#define VCPU_STATS_HCALLS 48
#define VCPU_STATS_PORTS 6
struct vcpu_stats {
    uint64_t runs, hcall[VCPU_STATS_HCALLS], io, mmio, intr, other;
    uint16_t port[VCPU_STATS_PORTS];
    uint64_t port_n[VCPU_STATS_PORTS];
};

struct vcpu {
    struct domain *d;
    uint32_t id;
    int fd;    /* KVM vCPU fd, -1 in unit tests */
    void *run; /* struct kvm_run mapping */
    size_t run_size;
    pthread_t thread;
    uint64_t vcpu_info_gpa; /* 0 until registered */
    uint64_t time_info_gpa; /* secondary time area, 0 until registered */
    uint64_t runstate_gpa;  /* 0 until registered */
    uint8_t upcall_vector;  /* HVMOP_set_evtchn_upcall_vector, 0 until set */
    uint32_t timer_port;    /* VIRQ_TIMER port or 0 */
    uint64_t periodic_ns;
    uint64_t singleshot_ns; /* pending expiry when no timer port is bound */
    atomic_bool kicked;
    atomic_bool down; /* VCPUOP_down: the vCPU does not run until VCPUOP_up */

    /* A call another thread asked this vCPU's thread to run (vCPU ioctls
     * block while the vCPU is inside KVM_RUN): see vcpu_call in kvm.c. */
    pthread_mutex_t call_lock;
    pthread_cond_t call_cond;
    int (*call_fn)(struct vcpu *v, void *arg);
    void *call_arg;
    int call_rc;
    bool call_done;
    bool call_ended; /* the thread left its loop: calls run on the caller's thread */
    bool thread_started;
    /* The VIRQ_TIMER binding changed (under d->lock); set_timer is applied
     * after d->lock is released: see evtchn.c. */
    atomic_bool timer_dirty;
    struct vcpu_stats stats; /* this vCPU's exits, logged when it stops */

    /* SCHEDOP_block and SCHEDOP_poll wait here (schedop.c): sched_seq counts
     * wake-ups, under sched_lock. */
    pthread_mutex_t sched_lock;
    pthread_cond_t sched_cond;
    uint64_t sched_seq;
    atomic_bool polling;            /* inside SCHEDOP_poll: any delivery wakes it */
    uint64_t blocks, polls, yields; /* served SCHEDOPs, for vcpu-list/top */
};

struct domain {
    uint32_t domid;
    char name[64];
    struct gmem mem;
    struct hv_res res; /* memory reservation (memop.h), under res.lock */
    const struct hv_ops *ops;
    void *priv; /* for ops */

    unsigned nr_vcpus;
    struct vcpu vcpus[HV_MAX_VCPUS];

    pthread_mutex_t lock;     /* event channels, grant table, params */
    uint64_t shared_info_gpa; /* 0 until mapped */
    struct evtchn ports[HV_NR_PORTS];
    uint64_t hvm_params[HVM_NR_PARAMS];
    uint64_t vm_assist; /* 1 << VMASST_TYPE_*: what the guest turned on */

    /* Grants Domain 0 is using (gnttab_map), per ref: pin counts and the
     * frame read at the first pin, as Xen's active grant entries. */
    pthread_mutex_t gnt_lock;
    struct gnt_active {
        uint16_t readers, writers;
        uint32_t frame;
    } gnt_active[HV_GNTTAB_MAX_FRAMES * (4096 / sizeof(grant_entry_v1_t))];

    unsigned gnt_nr_frames;
    uint64_t gnt_frame_gpa[HV_GNTTAB_MAX_FRAMES];
    unsigned gnt_version;

    /* The memory map the builder gave the guest (for XENMEM_memory_map). */
    struct {
        uint64_t addr, size;
        uint32_t type;
    } memmap[16];
    unsigned memmap_n;

    /* The log lines this guest's hypercalls cause (unsupported calls):
     * Xen's printk_ratelimit, 10 lines per 5 s. */
    struct dratelimit log_rl;

    /* Set once, by the first shutdown request; -1 while running. */
    atomic_int shutdown_reason;
    atomic_bool paused;
    /* SCHEDOP_shutdown(SHUTDOWN_suspend) made by vCPU suspend_vcpu and not
     * yet resumed (suspend.c); the domain does not end. */
    atomic_bool suspended;
    atomic_uint suspend_vcpu;
    _Atomic uint64_t suspended_at_ns; /* CLOCK_REALTIME of that call */
    int event_fd; /* eventfd written on shutdown and on suspend (or -1) */
    /* Restored after the guest's own suspend (evtchn_resume.c), under
     * d->lock: the VIRQ and IPI ports it had bound, so that its re-binding
     * gets the same numbers back (HV_NR_PORTS entries, or NULL), and
     * whether the evtchn_mask words of its shared_info are to be kept when
     * it maps the page again: together they keep each port masked or not as
     * the guest's own IRQ state says (Linux re-binds without touching the
     * masks; its PV spinlock kicker must stay masked). */
    struct evtchn *resume_ports;
    bool resume_masks;
};

/* --- vcpucall.c --- */

#define HV_KICK_SIGNAL SIGUSR1 /* makes a vCPU thread leave KVM_RUN */

/* The vCPU whose thread this is (set by the vCPU thread), or NULL. */
extern __thread struct vcpu *vcpu_current;

/* Runs fn(t, arg) on t's own thread and returns its result: posts it, kicks
 * t with HV_KICK_SIGNAL and waits, serving calls aimed at the caller's own
 * vCPU meanwhile.  Runs fn directly when t has no thread, when the caller is
 * t, and once t's thread has called vcpu_calls_end.  Must not be called with
 * a lock t's thread may wait for (d->lock): t would never serve it. */
int vcpu_call(struct vcpu *t, int (*fn)(struct vcpu *, void *), void *arg);

/* For v's own thread: runs the call posted to v, if any. */
void vcpu_serve_calls(struct vcpu *v);

/* For v's own thread leaving its loop: serves the last posted call; later
 * calls run on their callers' threads. */
void vcpu_calls_end(struct vcpu *v);

/* --- schedop.c --- */

/* SCHEDOP_yield, SCHEDOP_block and SCHEDOP_poll for vCPU v (arg: the
 * guest-virtual argument); true with *rc set when cmd is one of them.
 * Block waits until an event is pending for v (evtchn_upcall_pending in its
 * vcpu_info) or its timer is due; poll until one of the ports is pending, an
 * upcall is pending or the timeout (absolute system time, 0 for none)
 * passes.  Both return early (0, a spurious wake-up that Xen allows too) when
 * the domain is paused or shuts down, and serve calls posted to v meanwhile. */
bool schedop(struct vcpu *v, uint64_t cmd, uint64_t arg, int64_t *rc);

/* Wakes v if it waits in SCHEDOP_block or SCHEDOP_poll (it looks again). */
void sched_wake(struct vcpu *v);

/* An event was raised for vCPU vcpu of d: wakes it, and every vCPU in
 * SCHEDOP_poll (the port may be one of theirs). */
void sched_wake_event(struct domain *d, uint32_t vcpu);

/* The guest's system time (ops->now_ns, or CLOCK_MONOTONIC). */
uint64_t hv_now_ns(struct domain *d);

/* --- domain.c --- */

/* Initialises d (domid, name, nr_vcpus vCPUs, ops); memory is set up by the
 * caller.  Ports 0 is reserved. */
void domain_init(struct domain *d, uint32_t domid, const char *name, unsigned nr_vcpus,
                 const struct hv_ops *ops);

/* Records a shutdown request (first one wins); returns true if it was first. */
bool domain_shutdown(struct domain *d, int reason);

/* Copies between guest-virtual memory of vcpu v and host buffers, page by
 * page through ops->translate and gmem_ptr; 0 or -EFAULT. */
int guest_copy_from(struct vcpu *v, void *dst, uint64_t gva, size_t len);
int guest_copy_to(struct vcpu *v, uint64_t gva, const void *src, size_t len);

/* --- suspend.c --- */

/* SCHEDOP_shutdown(SHUTDOWN_suspend) by v: records it (d->suspended, the
 * vCPU), stops the vCPUs through ops->suspend and writes d->event_fd.
 * Returns the hypercall's value as a restored domain sees it, 0 (a
 * cancelled suspend or a checkpoint later makes it 1: kvm_domain_resume);
 * -EBUSY when the domain is suspended already. */
int64_t hv_suspend(struct vcpu *v);

/* VCPUOP_is_up, VCPUOP_down and VCPUOP_up on target t, as Xen does them for
 * an HVM/PVH guest: is_up is 1 unless t is down; down marks t down and gets
 * it out of the guest (the last vCPU going down powers the domain off, as on
 * Xen); up lets it run again.  -EINVAL for another cmd. */
int64_t hv_vcpu_updown(struct vcpu *t, unsigned cmd);

/* --- evtchn_resume.c --- */

/* Takes the VIRQ and IPI ports of table t (HV_NR_PORTS entries, a restored
 * image's) as d's re-binding hints, and asks for the masks to be kept at
 * the next shared_info mapping.  -ENOMEM. */
int evtchn_resume_set(struct domain *d, const struct evtchn *t);

/* The port a re-binding of (state EVS_VIRQ, virq, vcpu) or (EVS_IPI, vcpu:
 * the lowest-numbered hint left of that vCPU) should get: a hint port still
 * free, claimed (the hint is used up); 0 when there is none.  d->lock held. */
uint32_t evtchn_resume_port(struct domain *d, enum evtchn_state state, uint32_t vcpu,
                            uint32_t virq);

/* The guest maps shared_info at page (zeroed here): its evtchn_mask words
 * are kept when the domain was restored (once); the rest is cleared. */
void evtchn_resume_shinfo(struct domain *d, void *page);

/* Frees the hints. */
void evtchn_resume_free(struct domain *d);

/* --- hypercall.c --- */

/* Executes hypercall nr with args for vcpu v; returns the value for the
 * guest's %rax (negative Xen errno on failure, -ENOSYS for unknown calls). */
int64_t hv_hypercall(struct vcpu *v, uint64_t nr, const uint64_t args[6]);

/* Xen's vm_assist for an HVM guest: only runstate_update_flag can be turned
 * on (VMASST_CMD_enable) or off; -EINVAL for another type, -ENOSYS for
 * another command, or d->ops' -errno.  Kept in d->vm_assist. */
int hv_vm_assist(struct domain *d, uint64_t cmd, uint64_t type);

/* --- evtchn.c --- */

/* Event channel operation cmd with the argument struct at guest-virtual arg. */
int64_t evtchn_op(struct vcpu *v, unsigned cmd, uint64_t arg);

/* The host side (Domain 0 back ends of this domain): allocates a port bound
 * to Domain 0 whose guest sends signal fd (an eventfd); -errno or port. */
int evtchn_alloc_backend_port(struct domain *d, int fd);

/* The host side binding a port the guest allocated for Domain 0
 * (EVTCHNOP_alloc_unbound with remote_dom 0, as a front end does): the
 * UNBOUND port becomes INTERDOMAIN with backend_fd = fd, and guest sends on
 * it signal fd (routed in-kernel like evtchn_alloc_backend_port's ports).
 * -EINVAL when port is not such an unbound port (a hostile front end may
 * name any number). */
int evtchn_bind_backend(struct domain *d, uint32_t port, int fd);

/* Undoes evtchn_bind_backend (the port is UNBOUND again, routed nowhere)
 * if port is still bound to fd; -EINVAL otherwise (the guest closed it). */
int evtchn_unbind_backend(struct domain *d, uint32_t port, int fd);

/* Raises port for the guest as if its remote end had sent; 0 or -errno. */
int evtchn_notify_guest(struct domain *d, uint32_t port);
/* The same for a back end's thread: only the first failure is logged
 * ("WHO: raising port P: reason"); *said remembers that it was. */
void evtchn_notify_logged(struct domain *d, uint32_t port, const char *who, bool *said);

/* Routes port as its state says (IPI and loopback in-kernel, back-end
 * ports to their eventfd), as a bind does; for a restored port table.
 * Lock held by the caller; 0 or the ops' -errno. */
int evtchn_route(struct domain *d, uint32_t port);

/* Is port pending in d's shared_info (false when there is none)? */
bool evtchn_is_pending(struct domain *d, uint32_t port);

/* Pure operations on the port table (lock held by caller), for unit tests. */
int evtchn_alloc(struct domain *d);
bool evtchn_valid(const struct domain *d, uint32_t port);

/* --- gnttab.c --- */

int64_t gnttab_op(struct vcpu *v, unsigned cmd, uint64_t arg, unsigned count);

/* Where grant frame idx of d lives (set by add_to_physmap); -EINVAL if idx
 * is beyond the table's maximum. */
int gnttab_set_frame(struct domain *d, unsigned idx, uint64_t gpa);

/* Validates grant ref of d for use by domain `grantee`; on success returns
 * the granted frame's guest-physical address in *gpa.  Write access needs
 * the grant not to be read-only.  Xen's GNTST_* (negative) on failure. */
int gnttab_check(struct domain *d, grant_ref_t ref, domid_t grantee, bool write,
                 uint64_t *gpa);

/* Starts domain `grantee`'s use of grant ref of d, as Xen's map does: while
 * the entry grants that access, sets GTF_reading (and GTF_writing for
 * write) in the guest's entry with a compare-and-swap of its flags and
 * domid, so a front end's end of access (Linux's gnttab_end_foreign_access)
 * sees the grant busy and does not free or reuse the page.  The frame is
 * read at the first use of the ref and kept until its last gnttab_unmap.
 * Returns the frame's gpa in *gpa and GNTST_okay, or a GNTST_* (negative)
 * and nothing changed.  Every success needs one gnttab_unmap(ref, write). */
int gnttab_map(struct domain *d, grant_ref_t ref, domid_t grantee, bool write,
               uint64_t *gpa);

/* Ends one gnttab_map use: GTF_writing is cleared with the last writer,
 * GTF_reading with the last user. */
void gnttab_unmap(struct domain *d, grant_ref_t ref, bool write);

#endif
