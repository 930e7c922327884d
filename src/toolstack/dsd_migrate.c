/* domusd's side of live migration at the source (domusd.h): domus-vm
 * sends the stream over the connection the CLI brought; domusd asks the
 * guest to suspend between pre-copy and the final round and then waits
 * for the receiver's verdict (docs/migration.md). */
#include "domus/domusd.h"
#include "domus/util.h"
#include "domus/vmctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIG_PRECOPY_TIMEOUT_MS (3600 * 1000) /* rounds over a slow link */
#define MIG_READY_TIMEOUT_MS 300000          /* the destination's restore */
#define MIG_DONE_TIMEOUT_MS 60000            /* its unpause after "go" */

static int precopy(const struct dsd_dom *dom, const struct dsd_migrate_opts *o,
                   const char *config, json_object *stats, char *err, size_t errlen)
{
    json_object *req = vmctl_req("migrate-precopy");
    int fds[2] = {o->conn, o->progress_fd};

    json_object_object_add(req, "config", json_object_new_string(config));
    json_object_object_add(req, "downtime_ms", json_object_new_int64(o->downtime_ms));
    json_object_object_add(req, "max_rounds", json_object_new_int64(o->max_rounds));
    if (o->bandwidth)
        json_object_object_add(req, "bandwidth",
                               json_object_new_int64((int64_t)o->bandwidth));
    return dsd_vm_call(dom, req, fds, o->progress_fd >= 0 ? 2 : 1, stats,
                       MIG_PRECOPY_TIMEOUT_MS, err, errlen);
}

/* An instant of the downtime's phases (docs/migration.md) for the CLI. */
static void stamp(json_object *stats, const char *key)
{
    json_object_object_add(stats, key, json_object_new_int64((int64_t)drealtime_ns()));
}

static int finish(struct dsd *d, struct dsd_dom *dom, bool postcopy, json_object *stats,
                  char *err, size_t errlen)
{
    json_object *req;
    int rc;

    stamp(stats, "suspend_req_ns");
    rc = dsd_xs_shutdown(d, dom, "suspend");

    if (rc < 0) {
        dfmt(err, errlen, "xenstore: %s", strerror(-rc));
        dsd_vm_call(dom, vmctl_req("migrate-abort"), NULL, 0, NULL, 10000, NULL, 0);
        return rc;
    }
    req = vmctl_req("migrate-finish");
    json_object_object_add(req, "timeout_ms",
                           json_object_new_int64(DSD_SUSPEND_TIMEOUT_MS));
    if (postcopy)
        json_object_object_add(req, "postcopy", json_object_new_boolean(1));
    rc = dsd_vm_call(dom, req, NULL, 0, stats,
                     DSD_SUSPEND_TIMEOUT_MS + DSD_SAVE_WRITE_TIMEOUT_MS, err, errlen);
    if (rc)
        dsd_xs_shutdown(d, dom, ""); /* a guest that answers late is cancelled */
    return rc;
}

/* The receiver's answer to "go": "done <ns> ..." once the domain runs
 * there (kept for the CLI), read before this copy is destroyed, so that
 * its teardown does not compete with the destination's unpause.  0, or
 * -errno with err set when the receiver went away or said something else:
 * its domusd destroys a domain whose receiver leaves before releasing it,
 * so this copy must run on (the "until the destination says it
 * runs").  The one window left: a receiver dying between its release and
 * its "done" leaves a copy on both sides. */
static int after_go(int conn, json_object *stats, char *err, size_t errlen)
{
    char line[1024];
    int rc = ts_read_line_bytewise(conn, line, sizeof(line), MIG_DONE_TIMEOUT_MS);

    if (!rc && !strncmp(line, "done ", 5)) {
        json_object_object_add(stats, "done_line", json_object_new_string(line));
        return 0;
    }
    if (!rc) {
        dfmt(err, errlen, "the destination, after go: %s",
             strncmp(line, "error: ", 7) ? line : line + 7);
        return -EREMOTEIO;
    }
    dfmt(err, errlen, "the receiver %s after go, before saying the domain runs there",
         rc == -ETIMEDOUT ? "did not answer" : "closed the connection");
    return rc;
}

/* Post-copy, once the destination runs the guest: domus-vm sends the
 * pages left (migrate-postcopy) until the destination has every one.  A
 * failure leaves this copy held and paused, never resumed. */
static int postcopy(struct dsd_dom *dom, json_object *stats, char *err, size_t errlen)
{
    char verr[512];
    int rc;

    stamp(stats, "pc_start_ns");
    rc = dsd_vm_call(dom, vmctl_req("migrate-postcopy"), NULL, 0, stats,
                     MIG_PRECOPY_TIMEOUT_MS, verr, sizeof(verr));
    stamp(stats, "pc_end_ns");
    if (!rc)
        return 0;
    dfmt(err, errlen,
         "post-copy failed after the guest started on the destination: %s. The "
         "destination destroys its copy (it lacks memory only this host had); this "
         "copy is kept paused and must not be resumed (the guest ran on since): "
         "domus destroy it",
         verr);
    derr("domain %u (%s): %s", dom->domid, dom->cfg.name, err);
    return -ENOTRECOVERABLE;
}

/* The receiver's verdict; on anything but "ready" the held guest resumes. */
static int handshake(struct dsd_dom *dom, int conn, bool pc, json_object *stats,
                     char *err, size_t errlen)
{
    char line[512], verr[160];
    int rc = ts_read_line_bytewise(conn, line, sizeof(line), MIG_READY_TIMEOUT_MS);

    if (!rc && !strcmp(line, "ready")) {
        stamp(stats, "ready_ns");
        if (write(conn, "go\n", 3) != 3) {
            rc = -errno;
            dfmt(err, errlen, "the receiver could not be told to go: %s",
                 strerror(errno));
        } else if (!(rc = after_go(conn, stats, err, errlen))) {
            return pc ? postcopy(dom, stats, err, errlen) : 0;
        }
    } else if (!rc) {
        dfmt(err, errlen, "the destination: %s",
             strncmp(line, "error: ", 7) ? line : line + 7);
        rc = -EREMOTEIO;
    } else
        dfmt(err, errlen, "the receiver %s",
             rc == -ETIMEDOUT ? "did not answer" : "closed the connection");
    if (dsd_vm_call(dom, vmctl_req("resume"), NULL, 0, NULL, 10000, verr, sizeof(verr)) <
        0)
        dwarn("domain %u: resuming it after a failed migration: %s", dom->domid, verr);
    return rc;
}

/* After a failed stream: the receiver's own reason, when it gave one
 * (a name in use, too little memory, ...), replaces ours. */
static void receiver_error(int conn, char *err, size_t errlen)
{
    char line[512];

    if (!ts_read_line_bytewise(conn, line, sizeof(line), 2000) &&
        !strncmp(line, "error: ", 7))
        dfmt(err, errlen, "the destination: %s", line + 7);
}

/* The stream's config: the image's, with "postcopy":true for a receiver
 * that must keep a back channel to the new domain (malloc'd; NULL). */
static char *mig_config(const struct dsd_dom *dom, const char *path, const char *text,
                        bool postcopy)
{
    char *c = dsd_image_config(dom, path, text ? text : ""), *s;
    json_object *o;

    if (!c || !postcopy || !(o = json_tokener_parse(c)))
        return c;
    json_object_object_add(o, "postcopy", json_object_new_boolean(1));
    s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    free(c);
    return s;
}

int dsd_migrate(struct dsd *d, struct dsd_dom *dom, const struct dsd_migrate_opts *o,
                json_object *stats, char *err, size_t errlen)
{
    const char *text = o->cfg_text ? o->cfg_text : dom->cfg_text;
    const char *path = o->cfg_text ? o->cfg_path : dom->cfg_path;
    char *config;
    int rc;

    if ((rc = dsd_can_suspend(d, dom, err, errlen)) < 0)
        return rc;
    if (!(config = mig_config(dom, path[0] ? path : "config", text, o->postcopy))) {
        dfmt(err, errlen, "out of memory");
        return -ENOMEM;
    }
    dinfo("domain %u (%s): migrating%s", dom->domid, dom->cfg.name,
          o->postcopy ? " (post-copy)" : "");
    rc = precopy(dom, o, config, stats, err, errlen);
    free(config);
    if (!rc)
        rc = finish(d, dom, o->postcopy, stats, err, errlen);
    if (rc)
        receiver_error(o->conn, err, errlen);
    else
        rc = handshake(dom, o->conn, o->postcopy, stats, err, errlen);
    if (!rc)
        dinfo("domain %u (%s): migrated away", dom->domid, dom->cfg.name);
    return rc;
}

void dsd_migrate_client_gone(struct dsd *d, uint64_t client)
{
    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (!x->mig_holder || x->mig_holder != client)
            continue;
        x->mig_holder = 0;
        dwarn("domain %u (%s): its migration receiver went away before the source said "
              "go: destroyed",
              x->domid, x->cfg.name);
        dsd_kill_domain(d, x);
    }
}
