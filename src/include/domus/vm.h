/* The per-domain process (domus-vm) as a library: its arguments, its device
 * table, its init levels and its control commands.  The process as seen from
 * outside (command line, exit status, sockets) is vmproc.h; the control
 * protocol's messages are vmctl.h.  src/vm/domus_vm_main.c only calls
 * vm_parse_args, vm_init, vm_run and vm_exit.
 *
 * Threads: the control thread (main) owns struct vm; the device back ends and
 * vCPUs run in threads of their own, started and stopped only from it. */
#ifndef DOMUS_VM_H
#define DOMUS_VM_H

#include "domus/blkback.h"
#include "domus/hv.h"
#include "domus/netback.h"
#include "domus/vmproc.h"
#include "domus/vmsave.h"

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- device kinds (vm_dev.c) ---- */

/* One device's configuration, by kind. */
union vm_dev_cfg {
    struct {
        const char *log_path, *sock_path;
    } console;
    struct blkback_cfg vbd;
    struct netback_cfg vif;
};

/* A kind of device the domain process serves (console, xenstore ring, vbd,
 * vif, ...).  Every op gets the back end that start made.
 *   parse:   a spec (the --disk / --vif / attach syntax of vmproc.h) into
 *            *cfg and its devid; NULL for kinds that are not hot-pluggable.
 *            The spec buffer is modified and referenced by cfg; -EINVAL on
 *            a malformed spec.
 *   start:   starts the back end for cfg; xs_path is xenstored's socket for
 *            the kinds that need it (vbd, vif); 0 and *be, or -errno with
 *            a reason in err and nothing left behind.
 *   stop:    stops and frees be (its thread joined); be may be NULL.
 *   quiesce: stops be taking new requests from the guest and waits for those
 *            in flight: from then on it writes nothing into the guest's
 *            memory (vbd, vif; the console's and the xenstore ring's pages
 *            are the special pages, sent last anyway: -ENOTSUP); resume
 *            undoes it.
 *   save / load: writes be's state to / reads it from fd (the domain image):
 *            -ENOTSUP for every kind (a restored guest's front ends
 *            reconnect to new back ends, as on Xen). */
struct vm_dev_kind {
    const char *name; /* "console", "xs-ring", "vbd", "vif" */
    unsigned max;     /* instances at most */
    int (*parse)(char *spec, union vm_dev_cfg *cfg, uint32_t *devid);
    int (*start)(struct domain *d, const char *xs_path, const union vm_dev_cfg *cfg,
                 void **be, char *err, size_t errlen);
    void (*stop)(void *be);
    int (*quiesce)(void *be);
    int (*resume)(void *be);
    int (*save)(void *be, int fd);
    int (*load)(void *be, int fd);
};

extern const struct vm_dev_kind vm_kind_console, vm_kind_xs_ring, vm_kind_vbd,
    vm_kind_vif;
/* The kinds above, NULL-terminated (control commands look kinds up here). */
extern const struct vm_dev_kind *const vm_dev_kinds[];

/* The kind called name among kinds (NULL-terminated), or NULL. */
const struct vm_dev_kind *vm_dev_kind_find(const struct vm_dev_kind *const *kinds,
                                           const char *name);

#define VM_MAX_DEVS (2 + VM_MAX_DISKS + VM_MAX_VIFS)

/* One running device: a slot is free while kind is NULL. */
struct vm_dev {
    const struct vm_dev_kind *kind;
    uint32_t devid;
    void *be;
    unsigned seq; /* start order: devices stop in reverse */
};

/* A device given on the command line, started at the dev init level. */
struct vm_dev_spec {
    const struct vm_dev_kind *kind;
    uint32_t devid;
    union vm_dev_cfg cfg;
};

/* ---- arguments (vm_args.c) ---- */

struct vm_args {
    unsigned domid;
    const char *name, *kernel, *ramdisk, *cmdline;
    uint64_t memory_mb, maxmem_mb;
    unsigned vcpus;
    const char *console_log, *console_sock, *control_sock;
    int ready_fd;
    bool xenstore;
    const char *xs_path;
    struct vm_dev_spec devs[VM_MAX_DISKS + VM_MAX_VIFS]; /* --disk, --vif in order */
    unsigned n_devs;
    const char *restore; /* --restore: a save image instead of --kernel */
    bool paused;         /* --paused: a restored domain's vCPUs wait for unpause */
    bool lazy;           /* --lazy: the guest runs before its memory is read */
    bool postcopy;       /* --postcopy: stdin is a post-copy migration's socket */
};

/* The command line of vmproc.h into *a (argv strings are referenced and the
 * --disk ones modified); -EINVAL on anything malformed or missing. */
int vm_parse_args(int argc, char **argv, struct vm_args *a);
void vm_usage(void);

/* A decimal in [0, max] into *out; -EINVAL otherwise. */
int vm_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* ---- the domain process ---- */

struct vm {
    struct domain dom;
    struct vm_args args;
    const struct vm_dev_kind *const *kinds; /* for attach/detach: vm_dev_kinds */
    struct vm_dev devs[VM_MAX_DEVS];
    unsigned dev_seq;
    const char *xs_path; /* xenstored's socket for back ends, NULL: no xenstore */
    int ctl_fd;          /* control socket, or -1 */
    unsigned levels;     /* init steps done (vm_init) */
    /* A save kept the guest suspended for its destroy: the main loop does
     * not cancel that suspend (vm_suspend.c). */
    bool hold_suspend;
    struct vm_mig *mig; /* a live migration between its pre-copy and its end */
    /* A post-copy that failed after the destination ran the guest: this
     * copy is older than the guest and must never run (no unpause, no
     * resume); only its destroy is left. */
    bool pc_failed;
    const struct vm_state_ops *state_ops; /* vm_kvm_state_ops; fakes in tests */
    /* --lazy (vmlazy.h): the fault and fill threads; lazy_rc is 0 while
     * filling, 1 when done, -errno (with lazy_err) when it failed. */
    struct vm_lazy *lazy;
    atomic_int lazy_rc;
    char lazy_err[256];
    char err[512]; /* why vm_init failed */
    /* Instants (CLOCK_REALTIME ns, 0: not reached), told with "ready": a
     * start's for `domus -v create`'s phases (the process's main, memory
     * mapped, the kernel built, the KVM VM made), a restore's for live
     * migration's downtime phases (the end record verified, the state
     * applied); both: the back ends up, the vCPU threads started. */
    uint64_t t_main, t_mem, t_built, t_kvm, t_end, t_applied, t_devices, t_vcpus;
};

/* vm ready for vm_init or for the unit tests: domain_init'd from args,
 * kinds vm_dev_kinds, no device, no fd. */
void vm_setup(struct vm *vm, const struct vm_args *args);

/* Starts a device of kind k: refuses a devid k already has (-EEXIST) and a
 * kind at its max (-ENOSPC), with a reason in err; otherwise k->start, and
 * the device is recorded (k->start gets vm->xs_path). */
int vm_dev_add(struct vm *vm, const struct vm_dev_kind *k, const union vm_dev_cfg *cfg,
               uint32_t devid, char *err, size_t errlen);
/* The device (k, devid), or NULL. */
struct vm_dev *vm_dev_find(struct vm *vm, const struct vm_dev_kind *k, uint32_t devid);
/* Stops and forgets device (k, devid); -ENOENT if there is none. */
int vm_dev_remove(struct vm *vm, const struct vm_dev_kind *k, uint32_t devid);
/* Stops every device, the last started first. */
void vm_dev_stop_all(struct vm *vm);
/* Every device's quiesce (a save's or migration's last pages: the back
 * ends' writes are not in KVM's dirty log); the first error, logged, or 0.
 * vm_dev_resume_all undoes it. */
int vm_dev_quiesce_all(struct vm *vm);
void vm_dev_resume_all(struct vm *vm);
/* Number of devices of kind k. */
unsigned vm_dev_count(const struct vm *vm, const struct vm_dev_kind *k);

/* The "stats" control command's reply (vm_stats.c): {"ok":true,
 * "cputime_ns","mem_kib","vcpus","vcpu_ns":[each
 * vCPU's],"vbds":[{"devid","oo_req","rd_req",
 * "wr_req","f_req","ds_req","rd_sect","wr_sect"}],"vifs":[{"devid",
 * "tx_pkts","tx_bytes","rx_pkts","rx_bytes"}]}: the vCPUs' CPU time and the
 * back ends' counters (blkback_stats, netback_stats), for xentop's view. */
json_object *vm_stats_json(struct vm *vm);

/* ---- init levels (vm_init.c) ----
 * Set-up is a table of steps in three levels, as kvmtool's core_init,
 * dev_init and late_init:
 *   core: host memory check and guest memory, the kernel built into it, the
 *         KVM VM and its vCPUs (not running);
 *   dev:  the devices: console, xenstore ring, then --disk and --vif in
 *         order (the device table);
 *   late: the control socket, then the vCPU threads.
 * vm_init runs the steps in order; when one fails, the steps done are undone
 * in reverse and the reason is in vm->err.  vm_exit undoes every step done,
 * in reverse: the vCPUs are stopped and joined first, then the control
 * socket closed, the devices stopped (last started first), the VM and
 * memory freed.  Save will walk the same levels in reverse, restore in
 * order. */
enum vm_level { VM_LEVEL_CORE, VM_LEVEL_DEV, VM_LEVEL_LATE };

struct vm_step {
    enum vm_level level;
    const char *name;
    int (*init)(struct vm *vm);  /* 0, or -errno with vm->err set; undoes itself */
    void (*exit)(struct vm *vm); /* NULL: nothing to undo */
};

/* Runs steps[0..n) in order; on a failure undoes the steps done in reverse
 * and returns the error.  vm->levels counts the steps done.  A table whose
 * levels go down (a dev step before a core one) runs nothing: -EINVAL. */
int vm_steps_init(struct vm *vm, const struct vm_step *steps, unsigned n);
/* Undoes the vm->levels steps done, in reverse. */
void vm_steps_exit(struct vm *vm, const struct vm_step *steps);

/* The domain process's own steps (the table above). */
int vm_init(struct vm *vm);
void vm_exit(struct vm *vm);

/* Serves the control socket until the domain ends; returns the exit status
 * (vmproc.h): destroyed on SIGTERM/SIGINT, or the shutdown reason's. */
int vm_run(struct vm *vm);

/* ---- suspend and save (vm_suspend.c) ---- */

enum vm_save_after { VM_SAVE_DESTROY, VM_SAVE_RESUME, VM_SAVE_PAUSE };

struct vm_save_result {
    uint64_t bytes; /* the image's size */
    uint64_t ms;    /* from the guest's suspend to the image written */
};

/* Waits up to timeout_ms for the guest's suspend (hv_suspend: the caller
 * asked for it through xenstore), pauses the domain, writes its image to fd
 * (config, a JSON object, in the header), then as after says: DESTROY keeps
 * the guest suspended and paused for the caller to destroy
 * (vm->hold_suspend), RESUME resumes it with 1 (a checkpoint), PAUSE the
 * same but leaves it paused.  When the write fails the suspend is cancelled
 * (the guest sees 1 and runs on).  0, or -errno with a reason in err:
 * -ETIMEDOUT when the guest did not suspend (a late suspend is cancelled by
 * vm_event), -ESRCH when it shut down instead. */
int vm_save(struct vm *vm, int fd, const char *config, enum vm_save_after after,
            unsigned timeout_ms, struct vm_save_result *res, char *err, size_t errlen);

/* -EBUSY with a reason in err when the guest's memory is still arriving (a
 * lazy restore's fill or a post-copy's pull runs: the memory here is not
 * yet the guest's whole memory, so it cannot be saved or sent); else 0. */
int vm_memory_busy(const struct vm *vm, char *err, size_t errlen);

/* Waits up to timeout_ms for d->suspended: 0, -ETIMEDOUT, or -ESRCH when
 * the domain shut down instead (vm_suspend.c). */
int vm_wait_suspend(struct domain *d, unsigned timeout_ms);

/* ---- live migration (vm_migrate.c, docs/migration.md) ----
 * The save image's stream, sent while the guest runs.  vm_migrate_precopy
 * starts dirty logging, writes the header and every non-zero page (round
 * 0), then rounds of the pages dirtied since the last one, until the
 * pages left would take at most downtime_ms at the bandwidth measured, or
 * they stop shrinking, or max_rounds; it returns with the guest running
 * and the migration open.  The caller then asks the guest to suspend
 * (control/shutdown) and calls vm_migrate_finish: it waits for the
 * suspend, pauses, sends the pages dirtied since (with the special pages,
 * shared_info and the vCPUs' registered areas, which KVM's log does not
 * see), then the state records and the end, exactly as vm_save_image.
 * Then the guest is held suspended for its destroy (vm_resume_held cancels
 * it, as after a save); a failure cancels the suspend (the guest sees 1).
 * vm_migrate_abort ends an open migration whose guest never suspended. */
struct vm_mig_opts {
    unsigned downtime_ms; /* target for the final round */
    unsigned max_rounds;  /* of dirty pages after round 0 */
    int progress_fd;      /* a terminal for progress lines, or -1 */
    uint64_t bandwidth;   /* bytes a second at most (--bandwidth), 0: any */
};
struct vm_mig_result {
    unsigned rounds;       /* after round 0 */
    uint64_t pages;        /* page records' pages sent */
    uint64_t bytes;        /* the stream so far */
    uint64_t last_dirty;   /* pages left for the final round */
    uint64_t expected_ms;  /* their time at the measured bandwidth */
    uint64_t mib_s;        /* the bandwidth measured, MiB/s */
    uint64_t paused_at_ns; /* finish: CLOCK_REALTIME of the pause */
    uint64_t final_ms;     /* finish: from the pause to the end record */
    /* finish, CLOCK_REALTIME (the downtime's phases, docs/migration.md):
     * the guest's SCHEDOP_shutdown(suspend), the last pages and the end
     * record sent */
    uint64_t suspended_ns, pages_ns, end_ns;
    uint64_t postcopy_pages; /* finish with post-copy: the pages left */
};
int vm_migrate_precopy(struct vm *vm, int fd, const char *config,
                       const struct vm_mig_opts *o, struct vm_mig_result *res, char *err,
                       size_t errlen);
int vm_migrate_finish(struct vm *vm, unsigned timeout_ms, bool postcopy,
                      struct vm_mig_result *res, char *err, size_t errlen);
void vm_migrate_abort(struct vm *vm);

/* A debugging check (vm_migcheck.c): with DOMUS_MIG_CHECK=FILE, the source
 * copies every memory page to FILE.src after its final round, and the
 * destination, before the guest's first instruction, logs the pages that
 * differ from FILE.src.  Nothing without the variable. */
void vm_migcheck_source(const struct gmem *m);
void vm_migcheck_dest(const struct gmem *m);

/* Post-copy (docs/migration.md): vm_migrate_finish with postcopy sends,
 * instead of the pages dirtied since the last round, a post-copy record
 * naming them (SIMG_REC_POSTCOPY), and keeps the connection.  Once the
 * destination runs the guest, vm_migrate_postcopy sends those pages on
 * it: first any the destination asks for (u64 memfd page numbers,
 * little-endian), then the rest in order, rate-limited as the pre-copy
 * was; page data records and an end record with their own crc; then it
 * waits (up to 120 s) for the destination's u64 all ones: every page is
 * in.  0, after which the caller destroys the held guest; or -errno with
 * err set: the connection failed, the destination closed it or broke the
 * protocol.  Either way the migration ends and the guest stays held
 * suspended and paused: it cannot resume (the destination ran it since),
 * nor go before every page is delivered. */
struct vm_pc_result {
    uint64_t pages;   /* the pages left for post-copy */
    uint64_t asked;   /* of which sent because the destination asked */
    uint64_t pushed;  /* sent in order */
    uint64_t bytes;   /* the post-copy stream */
    uint64_t ms;      /* to the destination's "every page in" */
    uint64_t sent_ms; /* to the end record (every page sent) */
};
int vm_migrate_postcopy(struct vm *vm, struct vm_pc_result *res, char *err,
                        size_t errlen);

/* Cancels a suspend vm_save kept (DESTROY): the guest sees 1 and runs on.
 * -EINVAL when there is none. */
int vm_resume_held(struct vm *vm);

/* The main loop's handler of the domain's event fd when no shutdown is
 * recorded: drains it, and cancels a suspend nobody is saving (the guest
 * sees 1). */
void vm_event(struct vm *vm);

/* ---- control commands (vm_ctl.c) ---- */

/* Answers one request line of the control protocol (vmctl.h): the reply
 * object (never NULL; the caller puts it), and in fds/nfds the descriptors
 * to send with it (at most VMCTL_MAX_FDS; the caller does not close them).
 * Malformed, truncated or unknown requests get {"ok":false,"error":...}. */
json_object *vm_ctl_handle(struct vm *vm, const char *line, int *fds, unsigned *nfds);
/* The same for a request that came with descriptors in_fds[0..n_in) (the
 * caller closes them after). */
json_object *vm_ctl_handle_fds(struct vm *vm, const char *line, const int *in_fds,
                               unsigned n_in, int *fds, unsigned *nfds);

/* Accepts one connection on vm->ctl_fd, reads one request, answers it. */
void vm_ctl_serve(struct vm *vm);

#endif
