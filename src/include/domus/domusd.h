/* domusd internals: the domain registry, the domus-vm processes, the event
 * loop and the request handlers.  Single-threaded; every fd is non-blocking
 * and watched by one epoll; SIGCHLD/SIGTERM/SIGINT arrive through a signalfd,
 * so no work is done in signal handlers.  Nothing here exits on bad input. */
#ifndef DOMUS_DOMUSD_H
#define DOMUS_DOMUSD_H

#include "domus/toolstack.h"
#include "domus/xlcfg.h"

#include <json-c/json.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#define DSD_SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
#define DSD_BUILD_TIMEOUT_MS 180000         /* from spawn to "ready" */
#define DSD_STREAM_TIMEOUT_MS (3600 * 1000) /* ... restoring from a migration stream */
#define DSD_KILL_TIMEOUT_MS 10000           /* from SIGTERM to SIGKILL */
#define DSD_CONTROL_TIMEOUT_MS 2000         /* one control-socket exchange */
#define DSD_RESTART_BURST 10                /* this many restarts ...      */
#define DSD_RESTART_WINDOW_MS 30000         /* ... within this time: give up */
#define DSD_DOMID_MAX 0x7FEF                /* DOMID_FIRST_RESERVED - 1 */
#define DSD_DETACH_TIMEOUT_MS 10000         /* for the guest to close a detached device */
#define DSD_DETACH_POLL_MS 100              /* its back end's state is read this often */
#define DSD_CG_BUSY_MAX 16                  /* busy groups waiting to be removed */
#define DSD_CG_BUSY_MS 10000                /* retried this long, every DSD_CG_RETRY_MS */
#define DSD_CG_RETRY_MS 100
#define DSD_SUSPEND_TIMEOUT_MS 30000     /* for the guest to suspend when asked */
#define DSD_SAVE_WRITE_TIMEOUT_MS 600000 /* then for its image to be written */

enum dsd_state {
    DS_BUILDING, /* domus-vm started, not ready yet */
    DS_RUNNING,
    DS_SHUTDOWN, /* preserved after poweroff/reboot: no process */
    DS_CRASHED,  /* preserved after a crash: no process */
    DS_DYING,    /* SIGTERM sent, waiting for the process to exit */
};

enum dsd_wait { DW_NONE, DW_CREATE, DW_DESTROY };

struct dsd_dom {
    struct dsd_dom *next;
    unsigned domid;
    unsigned gen; /* 1 on create, +1 on every restart */
    struct xlcfg cfg;
    enum dsd_state state;
    int shutdown_reason; /* Xen SHUTDOWN_* of the last exit, -1 none */
    pid_t pid;           /* 0: no process */
    int ready_fd, err_fd, vmlog_fd;
    char errline[512]; /* last "error: ..." line of domus-vm */
    /* A start's instants ("key=ns ..."): domusd's request and spawn,
     * domus-vm's with its "ready", then domusd's, given with the answer
     * (`domus -v create`'s phases, migration's downtime phases). */
    char timings[768];
    char errpart[512]; /* incomplete stderr line */
    size_t errpart_len;
    bool destroy_requested, timed_out;
    bool xs_up;        /* its xenstore nodes exist and it was introduced */
    bool xs_nodes;     /* its nodes exist, written before it was ready */
    bool keep_sockets; /* freed without unlinking its sockets (a live orphan's) */
    bool adopted;      /* its domus-vm was started by an earlier domusd */
    /* The migration receiver's connection (client id) that restored it:
     * its end before "migrate-release" destroys the domain (0: none). */
    uint64_t mig_holder;
    int pidfd;               /* adopted: becomes readable when the process ends */
    char *cfg_text;          /* the xl.cfg text it was created from */
    char cfg_path[PATH_MAX]; /* and that file's name */
    uint64_t waiter;         /* client id waiting for the reply, 0: none */
    enum dsd_wait wkind;
    int64_t deadline_ms;      /* 0: none (build timeout or SIGKILL escalation) */
    int64_t start_timeout_ms; /* the start's deadline, from spawn (said when it passes) */
    int64_t restarts[DSD_RESTART_BURST];
    unsigned n_restarts;
    double cpu_time;   /* seconds, last known */
    double start_time; /* wall clock (s since the epoch) its domus-vm was started */
    /* Scheduling (dsd_sched.c): weight and cap are cfg.cpu_weight/cap, kept
     * up to date by sched-credit; each vCPU's hard and soft affinity. */
    cpu_set_t hard[XLCFG_MAX_VCPUS], soft[XLCFG_MAX_VCPUS];
    /* Restore: domus-vm loads this image instead of building the kernel
     * (its first start only); the domain stays paused after when paused. */
    char restore_path[PATH_MAX];
    bool restore_paused;
    /* A restore from a descriptor (migrate-receive's spool): it becomes
     * domus-vm's stdin, restore_path "/proc/self/fd/0"; > 0 while set. */
    int restore_fd;
    bool restore_lazy;     /* domus-vm --lazy (vmlazy.h) */
    bool restore_postcopy; /* domus-vm --postcopy: restore_fd is a socket */
    /* vCPUs 0..vcpus_online-1 are online (cpu/N/availability), the others up
     * to cfg.maxvcpus offline: cfg.vcpus at each start, then vcpu-set's. */
    unsigned vcpus_online;
    char console_sock[DSD_SUN_PATH_MAX];
    char control_sock[DSD_SUN_PATH_MAX];
    char console_log[PATH_MAX];
    char vm_log[PATH_MAX];
};

struct dsd_client {
    struct dsd_client *next;
    uint64_t id;
    int fd;
    bool dead;
    char *buf;
    size_t len, cap;
};

/* domusd as a xenstore client (dsd_xs.c). */
struct dsd_xs {
    bool enabled; /* a xenstored serves path (DOMUS_XENSTORE not 0) */
    bool started; /* domusd started that xenstored (pid in pid_file) */
    char path[DSD_SUN_PATH_MAX];
    char pid_file[PATH_MAX];
};

#define DSD_REQ_FDS 2

struct dsd {
    int epfd, listen_fd, sig_fd;
    char sock_path[DSD_SUN_PATH_MAX];
    char vm_bin[PATH_MAX];
    struct dsd_dom *doms;
    struct dsd_client *clients;
    uint64_t next_client_id;
    unsigned next_domid;
    bool quit;
    struct dsd_xs xs;
    struct dsd_detach *detaches; /* detaches waiting for the guest (dsd_hotplug.c) */
    bool cg_ok;                  /* domains get cgroup v2 groups under cg_dir */
    char cg_dir[PATH_MAX];       /* <cgroup2 mount>/domus */
    char cg_why[160];            /* why not, when !cg_ok */
    /* Groups found busy at removal (an adopted process that is not reaped
     * yet), retried by dsd_cgroup_tick until this deadline. */
    unsigned cg_busy[DSD_CG_BUSY_MAX];
    int64_t cg_busy_until[DSD_CG_BUSY_MAX];
    unsigned n_cg_busy;
    /* Descriptors that came (SCM_RIGHTS) with the request being handled;
     * a command that keeps one sets it to -1, the rest are closed after
     * it (migrate's stream, dsd_migrate.c). */
    int req_fds[DSD_REQ_FDS];
    unsigned req_nfds;
};

/* epoll keys: kind in the high 32 bits, fd in the low 32. */
enum dsd_ev { EV_LISTEN = 1, EV_SIGNAL, EV_CLIENT, EV_READY, EV_STDERR, EV_PIDFD };
#define DSD_KEY(kind, fd) (((uint64_t)(kind) << 32) | (uint32_t)(fd))

int dsd_watch(struct dsd *d, enum dsd_ev kind, int fd);
void dsd_unwatch_close(struct dsd *d, int *fd);

/* ---- registry (dsd_domain.c) ---- */

/* New domain with a fresh domid, linked into d->doms; its per-domain paths
 * are set but nothing is created yet.  -EBUSY when no domid is free,
 * -ENAMETOOLONG when a socket path would not fit. */
int dsd_dom_new(struct dsd *d, const struct xlcfg *cfg, struct dsd_dom **out);
/* Unlinks and frees: closes its pipes, removes its run-dir files. */
void dsd_dom_free(struct dsd *d, struct dsd_dom *dom);
/* By name, or by decimal domid. */
struct dsd_dom *dsd_dom_find(struct dsd *d, const char *spec);
struct dsd_dom *dsd_dom_by_pid(struct dsd *d, pid_t pid);
struct dsd_dom *dsd_dom_by_fd(struct dsd *d, int fd);
/* Removes dom<N>.console and dom<N>.control from the run dir. */
void dsd_unlink_dom_sockets(unsigned domid);
/* Records the xl.cfg the domain comes from (for dsd_persist_save). */
int dsd_dom_set_source(struct dsd_dom *dom, const char *path, const char *text);
bool dsd_uuid_taken(struct dsd *d, const char *uuid);
uint64_t dsd_committed_mib(struct dsd *d);
const char *dsd_state_name(enum dsd_state s);
/* xl's six state letters "rbpscd" for dom; info_state is 'r', 'b', 'p' or 0. */
void dsd_state_letters(const struct dsd_dom *dom, char info_state, char out[7]);

/* ---- domus-vm processes (dsd_vm.c) ---- */

/* Starts domus-vm for dom (state BUILDING).  On failure nothing is left
 * behind and err says why. */
int dsd_vm_spawn(struct dsd *d, struct dsd_dom *dom, char *err, size_t errlen);
/* One request (vmctl.h) to the running domain's domus-vm; req is consumed.
 * 0 with the reply in *reply when reply is not NULL (the caller puts it);
 * -EREMOTEIO when domus-vm refused it, with its reason in err; -ESRCH when
 * the domain is not running, -errno when its control socket cannot be
 * reached or answers nonsense (strerror in err). */
int dsd_vm_control(const struct dsd_dom *dom, json_object *req, json_object **reply,
                   char *err, size_t errlen);
void dsd_vm_read_ready(struct dsd *d, struct dsd_dom *dom);
/* Reads what domus-vm wrote to its stderr into its log (dom->vm_log, kept
 * under DSD_VMLOG_MAX bytes, the previous DSD_VMLOG_MAX in <log>.1) and
 * remembers its last error line.  While it runs, at most DSD_STDERR_BUDGET
 * reads of 4 KiB per call (the event loop comes back for the rest). */
#define DSD_VMLOG_MAX (4u << 20)
#define DSD_STDERR_BUDGET 16
void dsd_vm_read_stderr(struct dsd *d, struct dsd_dom *dom);
void dsd_vm_close_pipes(struct dsd *d, struct dsd_dom *dom);

/* ---- lifecycle (dsd_life.c) ---- */

void dsd_became_ready(struct dsd *d, struct dsd_dom *dom);
void dsd_reap_children(struct dsd *d);
void dsd_check_deadlines(struct dsd *d);
int dsd_next_timeout_ms(struct dsd *d);
/* Sends SIGTERM and arranges for SIGKILL later; the domain is freed on exit. */
void dsd_kill_domain(struct dsd *d, struct dsd_dom *dom);
/* At daemon exit: kills every domain and waits (bounded) for them. */
void dsd_destroy_all(struct dsd *d);

/* ---- xenstore (dsd_xs.c) ---- */

/* Unless DOMUS_XENSTORE=0: uses the xenstored on its socket, starting
 * domus-xenstored when none answers.  Only with DOMUS_XENSTORE=1 is a
 * failure an error (-errno); otherwise domains run without xenstore. */
int dsd_xs_start(struct dsd *d);
void dsd_xs_stop(struct dsd *d);
/* Writes the domain's nodes (unless dsd_xs_domain_nodes did) and
 * introduces it (its ring from domus-vm). */
int dsd_xs_domain_up(struct dsd *d, struct dsd_dom *dom);
/* Writes the domain's and its devices' nodes before it is ready (a
 * migration's restore, while the stream comes): dom->xs_nodes. */
int dsd_xs_domain_nodes(struct dsd *d, struct dsd_dom *dom);
/* Releases the domain and removes its nodes. */
void dsd_xs_domain_down(struct dsd *d, struct dsd_dom *dom);
/* Writes the domain's node rel (under /local/domain/N) = value, keeping its
 * permissions; -EOPNOTSUPP without xenstore. */
int dsd_xs_write(struct dsd *d, struct dsd_dom *dom, const char *rel, const char *value);
/* Writes control/shutdown ("poweroff", "reboot", "suspend", or "" to take
 * a request back); -EOPNOTSUPP when off. */
int dsd_xs_shutdown(struct dsd *d, struct dsd_dom *dom, const char *how);

/* ---- save and restore (dsd_save.c) ---- */

struct dsd_save_opts {
    const char *path;                /* the image, absolute */
    bool checkpoint, pause;          /* xl save -c / -p: the domain is not destroyed */
    const char *cfg_path, *cfg_text; /* a config to store instead (or NULL) */
};

/* Asks dom's guest to suspend (control/shutdown = suspend) and has its
 * domus-vm write the image to o->path (created, or truncated as xl does)
 * once it did, within DSD_SUSPEND_TIMEOUT_MS.  0: written; the guest is
 * then kept suspended for the caller to destroy, or resumed (checkpoint) or
 * paused as o says.  -errno with err: nothing is left (a file it created
 * is removed) and the guest runs on (its suspend cancelled: it sees 1).
 * Blocks domusd while the image is written. */
int dsd_save(struct dsd *d, struct dsd_dom *dom, const struct dsd_save_opts *o, char *err,
             size_t errlen);

/* The image header's config (JSON text, malloc'd): name, the xl.cfg path
 * and text, the memory; NULL when out of memory. */
char *dsd_image_config(const struct dsd_dom *dom, const char *path, const char *text);
/* 0 if dom can be asked to suspend (it runs and has its xenstore
 * connection), else -EINVAL / -EOPNOTSUPP with the reason in err. */
int dsd_can_suspend(const struct dsd *d, const struct dsd_dom *dom, char *err,
                    size_t errlen);
/* One request req (put here) to dom's domus-vm with nfds descriptors: 0, or
 * -errno / -EREMOTEIO (its refusal) with the reason in err; with stats, the
 * reply's numbers are copied there (a later call's non-zero ones win). */
int dsd_vm_call(const struct dsd_dom *dom, json_object *req, const int *fds,
                unsigned nfds, json_object *stats, int timeout_ms, char *err,
                size_t errlen);

/* ---- live migration, the source (dsd_migrate.c, docs/migration.md) ---- */

struct dsd_migrate_opts {
    int conn;             /* the connection to migrate-receive, both ways */
    int progress_fd;      /* a terminal for progress lines, or -1 */
    unsigned downtime_ms; /* the final round's target */
    unsigned max_rounds;
    uint64_t bandwidth;              /* bytes a second at most (--bandwidth), 0: any */
    bool postcopy;                   /* --postcopy: the pages left go after the unpause */
    const char *cfg_path, *cfg_text; /* -C: the config to send instead (or NULL) */
};

/* Sends dom over o->conn while it runs (domus-vm's migrate-precopy), asks
 * it to suspend, sends the rest (migrate-finish), then waits for the
 * receiver's "ready": the domain is then the destination's; "go" is sent
 * and 0 returned with the numbers in *stats (the caller destroys dom).
 * Any failure before: the guest runs on (its suspend cancelled: it sees 1),
 * -errno with err (the receiver's own words when it said why).  Blocks
 * domusd meanwhile, as a save does.  With o->postcopy the pages dirtied
 * since the last round stay behind, and after the receiver's "done" (the
 * guest runs there) domus-vm's migrate-postcopy sends them; a failure
 * then is -ENOTRECOVERABLE: the guest's memory is split between the
 * hosts, the destination destroys its copy, and dom is left held
 * suspended and paused (it must not run: the guest ran on since). */
int dsd_migrate(struct dsd *d, struct dsd_dom *dom, const struct dsd_migrate_opts *o,
                json_object *stats, char *err, size_t errlen);

/* The destination: a client connection closed.  A domain it restored for
 * a migration and never released (the receiver died between "ready" and
 * "go") is destroyed: the source's copy runs on. */
void dsd_migrate_client_gone(struct dsd *d, uint64_t client);

/* What the header of an image says: the xl.cfg path and text stored in it
 * (malloc'd), and the memory the domain had (MiB; 0 in an image that does
 * not say: the config's is used). */
struct dsd_image_cfg {
    char *path, *text;
    uint64_t memory_mib, maxmem_mib;
};

/* Reads the header of the image at path into ic (free with
 * dsd_image_cfg_free).  -errno with err ("PATH: not a Domus save image
 * ...", "PATH: the image's memory ... is not valid"). */
/* The header's config text (a JSON object) into ic; path names the image
 * in messages.  0 or -errno with err. */
int dsd_image_cfg_parse(const char *config, const char *path, struct dsd_image_cfg *ic,
                        char *err, size_t errlen);
int dsd_restore_config(const char *path, struct dsd_image_cfg *ic, char *err,
                       size_t errlen);
void dsd_image_cfg_free(struct dsd_image_cfg *ic);

/* ---- hot-plug (dsd_hotplug.c) ---- */

/* "block-attach" {"spec","cwd"}, "block-detach" {"dev"}, "block-list",
 * "network-attach" {"spec"}, "network-detach" {"dev"}, "network-list" on
 * dom (running, with xenstore).  A detach is answered later, from
 * dsd_hotplug_tick, once the guest closed the device or after
 * DSD_DETACH_TIMEOUT_MS (then by force, with a warning). */
void dsd_hotplug_request(struct dsd *d, uint64_t client, struct dsd_dom *dom,
                         const char *cmd, json_object *obj);
/* Moves the pending detaches along (from the event loop). */
void dsd_hotplug_tick(struct dsd *d);
/* The loop's timeout while detaches are pending, else -1. */
int dsd_hotplug_timeout_ms(struct dsd *d);
/* Forgets the pending detaches (at exit). */
void dsd_hotplug_fini(struct dsd *d);

/* ---- scheduling (dsd_sched.c) ---- */

/* At start-up: finds cgroup v2 ($DOMUS_CGROUP_ROOT, default /sys/fs/cgroup;
 * DOMUS_CGROUP=0 turns it off), creates <root>/domus and enables the cpu
 * (and, when possible, cpuset) controllers for it and its children.  When
 * that fails it says so once in the log and domains run without groups:
 * a weight or cap other than the defaults is then refused. */
void dsd_cgroup_init(struct dsd *d);
/* Before dom's first spawn (and at adoption): checks cfg's cpus/cpus_soft
 * against the host and fills dom->hard/soft, then takes what saved (the
 * state file's "sched", NULL: none) holds, creates the domain's group
 * <cg_dir>/dom<N> and writes its cpu.weight and cpu.max.  -errno with err;
 * the caller frees the domain (which removes the group). */
int dsd_sched_prepare(struct dsd *d, struct dsd_dom *dom, json_object *saved, char *err,
                      size_t errlen);
/* The group's cgroup.procs opened for writing (close-on-exec), -1 when the
 * domain has no group: the child writes "0" to it before exec. */
int dsd_cgroup_procs_fd(const struct dsd *d, const struct dsd_dom *dom);
/* Moves pid into the domain's group (again: a no-op when the child did). */
void dsd_cgroup_join(const struct dsd *d, const struct dsd_dom *dom, pid_t pid);
/* Removes the domain's group (once its process is gone); a group still
 * busy is retried from dsd_cgroup_tick for DSD_CG_BUSY_MS. */
void dsd_cgroup_remove(struct dsd *d, const struct dsd_dom *dom);
/* Retries the busy groups (from the event loop). */
void dsd_cgroup_tick(struct dsd *d);
/* The loop's timeout while groups are busy, else -1. */
int dsd_cgroup_timeout_ms(const struct dsd *d);
/* Once the domain runs: its vCPU threads get their hard affinity. */
void dsd_sched_apply_affinity(struct dsd_dom *dom);
/* "sched-credit" {"dom"?,"weight"?,"cap"?}, "vcpu-list" {"dom"?},
 * "vcpu-pin" {"dom","vcpu","hard","soft"?} (toolstack.h). */
void dsd_sched_request(struct dsd *d, uint64_t client, const char *cmd, json_object *obj);
/* The state file's "sched" member: {"weight","cap","affinity":[[hard,soft],
 * ...],"online":n} (cpu lists, one pair per vCPU up to maxvcpus; the vCPUs
 * online). */
json_object *dsd_sched_save(const struct dsd_dom *dom);

/* ---- memory (dsd_mem.c) ---- */

#define DSD_MEM_RESERVE_MIB 64 /* kept for Domain 0 (DOMUS_MEM_RESERVE_MIB) */

/* MiB a new domain or a larger target may take: the host's MemAvailable,
 * at most MemTotal less the running domains' targets, both less the
 * reserve.  0 or -errno (the host's memory cannot be read). */
int dsd_free_mib(struct dsd *d, uint64_t *avail);
/* "mem-set" {"dom","kib"}: memory/target, refused above maxmem or beyond
 * what the host can back; "mem-max" {"dom","kib"}: domus-vm's maximum and
 * memory/static-max, refused below the target or above the memory the
 * domain was made with.  dom is running or the reply is an error. */
void dsd_mem_request(struct dsd *d, uint64_t client, struct dsd_dom *dom, const char *cmd,
                     json_object *obj);
/* ---- vCPU hot-plug (dsd_vcpu.c) ---- */

/* "vcpu-set" {"dom","vcpus","ignore_host"?}: vCPUs 0..vcpus-1 online, the
 * rest offline, through cpu/N/availability in the guest's xenstore (the
 * guest's own Xen CPU hot-plug does the rest), as libxl_set_vcpuonline. */
void dsd_vcpu_set(struct dsd *d, uint64_t client, json_object *obj);

/* ---- xentop's view (dsd_top.c) ---- */

/* "top": {"node":{tot_mem_kib,free_mem_kib,cpus,cpu_mhz,xen_version},"domains":[
 * {domid,name,state (xentop's letters dsbcpr),cpu_ns,mem_kib,maxmem_kib
 * (-1: no limit),vcpus,vcpus_online,nets,net_tx_bytes,net_rx_bytes,vbds,
 * vbd_oo,vbd_rd,vbd_wr,vbd_rsect,vbd_wsect,vifs:[...],vbd_list:[...],
 * vcpu_ns:[each vCPU's CPU time]}]}
 * (the lists as domus-vm's "stats" has them), Domain-0 (the host) first,
 * then by domid. */
void dsd_top(struct dsd *d, uint64_t client);

/* ---- surviving a domusd restart (dsd_persist.c) ---- */

/* Writes $DOMUS_RUN_DIR/dom<N>.json (domid, gen, pid, cfg); removed with the
 * domain. */
void dsd_persist_save(const struct dsd_dom *dom);
void dsd_persist_remove(const struct dsd_dom *dom);
/* At start-up: adopts the domains whose domus-vm still runs; drops the rest. */
void dsd_persist_adopt(struct dsd *d);
/* An adopted domus-vm ended (its pidfd is readable): the domain is gone. */
void dsd_persist_adopted_exit(struct dsd *d, struct dsd_dom *dom);

/* ---- clients and requests (dsd_server.c, dsd_cmds.c) ---- */

int dsd_server_init(struct dsd *d);
int dsd_server_run(struct dsd *d);
void dsd_server_fini(struct dsd *d);
/* Sends obj (consumed) to client id if it is still connected. */
void dsd_reply(struct dsd *d, uint64_t client, json_object *obj);
void dsd_reply_error(struct dsd *d, uint64_t client, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"ok":false,"error":msg,"warnings":warnings} (warnings consumed; NULL:
 * none), for a create that fails after its config gave warnings. */
void dsd_reply_failure(struct dsd *d, uint64_t client, const char *msg,
                       json_object *warnings);
/* The config's warnings as a JSON array of strings (xlcfg.h), with a last
 * "N more warnings not shown" when some were not kept. */
json_object *dsd_cfg_warnings(const struct xlcfg *cfg);
json_object *dsd_ok(void);
/* Handles one request line of client. */
void dsd_handle_request(struct dsd *d, uint64_t client, const char *line);

#endif
