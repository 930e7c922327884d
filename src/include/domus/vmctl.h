/* The control protocol between domusd (and domus-xenstored) and a domain's
 * domus-vm: the same JSON lines as between the CLI and domusd (toolstack.h).
 * One connection carries one request line and one reply line.
 *
 * Requests (objects; "cmd" names the command):
 *   {"cmd":"pause"} / {"cmd":"unpause"}
 *        -> {"ok":true}; pause returns once every vCPU is out of KVM_RUN and
 *           parked (kvm_domain_pause).
 *   {"cmd":"info"}
 *        -> {"ok":true,"state":"r"|"p","cputime_ns":N,"mem_kib":N,"vcpus":N}
 *   {"cmd":"xs-ring"}   (with --xenstore only)
 *        -> {"ok":true,"gfn":N,"port":N,"offset":N} carrying three fds
 *           (SCM_RIGHTS): the domain's memory fd (the ring page at offset),
 *           kick_fd and notify_fd, as xs_ring_hooks.map wants.
 *   {"cmd":"shutdown","how":"poweroff"|"reboot"}
 *        -> {"ok":false,...}: there is no PV control interface without
 *           xenstore (the toolstack writes control/shutdown instead).
 *   {"cmd":"attach","kind":"vbd"|"vif","spec":SPEC}
 *        -> {"ok":true}: hot-plug: starts a back end for one more device, as
 *           --disk SPEC / --vif SPEC would (vmproc.h); a devid already served
 *           or a kind at its maximum is refused.  Needs --xenstore-path.
 *   {"cmd":"detach","kind":"vbd"|"vif","devid":N}
 *        -> {"ok":true}: stops that device's back end.
 *   {"cmd":"save","config":JSON,"after":"destroy"|"resume"|"pause",
 *    "timeout_ms":N} carrying one fd (the image, open for writing)
 *        -> waits up to timeout_ms for the guest's suspend
 *           (SCHEDOP_shutdown(SHUTDOWN_suspend): the caller asked it with
 *           control/shutdown), writes the image (config, a JSON object, in
 *           its header) while every vCPU is parked, then: "destroy" keeps
 *           the guest suspended for the caller's destroy, "resume" lets it
 *           carry on (the hypercall returns 1: a checkpoint), "pause" the
 *           same but paused.  {"ok":true,"bytes":N,"ms":N}.  A failed write
 *           cancels the suspend (the guest sees 1 and runs on).
 *   {"cmd":"resume"}
 *        -> {"ok":true}: cancels a suspend kept for a destroy (the guest
 *           sees 1 and runs on).
 *   {"cmd":"migrate-precopy","config":JSON,"downtime_ms":N,"max_rounds":N}
 *    carrying the stream's fd (and a terminal's for progress lines)
 *        -> live migration's pre-copy (vm.h, docs/migration.md): header,
 *           round 0, dirty rounds, the guest running; {"ok":true,
 *           "rounds":N,"pages":N,"bytes":N,"last_dirty":N,"expected_ms":N,
 *           "mib_s":N}.  A failure ends it (dirty logging off).
 *   {"cmd":"migrate-finish","timeout_ms":N}
 *        -> waits for the guest's suspend, sends the rest; the guest is
 *           then held as after a save "destroy" ("resume" cancels it);
 *           the same numbers plus "paused_at_ns" (CLOCK_REALTIME) and
 *           "final_ms".  A failure cancels the suspend (the guest sees 1).
 *   {"cmd":"migrate-abort"}
 *        -> {"ok":true}: ends a pre-copy whose guest was never suspended.
 * Every failure: {"ok":false,"error":"reason"}; a line that is not a JSON
 * object, lacks "cmd" or names an unknown command is such a failure. */
#ifndef DOMUS_VMCTL_H
#define DOMUS_VMCTL_H

#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMCTL_MAX_FDS 3
#define VMCTL_LINE_MAX 8192 /* a request or reply line, newline included */

/* Sends obj as one line on fd with nfds descriptors (SCM_RIGHTS, none when
 * nfds is 0); 0 or -errno. */
int vmctl_send(int fd, json_object *obj, const int *fds, unsigned nfds);

/* Reads one line (up to VMCTL_LINE_MAX) from fd into buf (NUL-terminated,
 * newline removed), waiting at most timeout_ms; descriptors that came with
 * it go to fds (up to *nfds, which is set to their number; extra ones are
 * closed).  0, -ETIMEDOUT, -EMSGSIZE, -EPROTO (EOF before a newline) or
 * -errno. */
int vmctl_recv_line(int fd, char *buf, size_t len, int *fds, unsigned *nfds,
                    int timeout_ms);

/* One exchange with the domus-vm listening at sock: sends req, returns 0
 * and its reply object in *reply (the caller puts it) and the descriptors
 * that came with it in fds/nfds as vmctl_recv_line; -errno when the socket
 * cannot be reached or the reply is not a JSON object. */
int vmctl_call(const char *sock, json_object *req, json_object **reply, int *fds,
               unsigned *nfds, int timeout_ms);

/* vmctl_call sending the n_send descriptors send_fds with the request
 * (SCM_RIGHTS; the caller keeps them open). */
int vmctl_call_with(const char *sock, json_object *req, const int *send_fds,
                    unsigned n_send, json_object **reply, int *fds, unsigned *nfds,
                    int timeout_ms);
/* A reply's verdict: true for {"ok":true}; else false and *error points to
 * its "error" text (or a fixed text) inside reply. */
bool vmctl_ok(json_object *reply, const char **error);

/* A request {"cmd":cmd} to add members to. */
json_object *vmctl_req(const char *cmd);

/* Integer member key of obj in [0, max] into *out; -EINVAL if absent or
 * not such an integer. */
int vmctl_get_u64(json_object *obj, const char *key, uint64_t max, uint64_t *out);

/* String member key of obj (inside obj), or NULL if absent or not a string. */
const char *vmctl_get_str(json_object *obj, const char *key);

/* A failure reply, {"ok":false,"error":<fmt formatted, cut at 1 KiB>}. */
json_object *vmctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_object *vmctl_verror(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

/* The request object one line holds (the caller puts it), or NULL with *why
 * saying what is wrong: json-c's reason, or "not a JSON object". */
json_object *vmctl_parse_request(const char *line, const char **why);

#endif
