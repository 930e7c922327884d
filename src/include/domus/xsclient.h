/* A small synchronous xenstore client (Domain 0 side, Unix socket), as the
 * toolstack needs it: one request at a time, replies matched by req_id,
 * watch events skipped.  Errors come back as -errno (Xen's XS_ERROR names
 * mapped to errno values; -ETIMEDOUT when xenstored does not answer). */
#ifndef DOMUS_XSCLIENT_H
#define DOMUS_XSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#define XSC_TIMEOUT_MS 5000

struct xsc {
    int fd;
    uint32_t req_id;
};

/* Connects to xenstored's socket at path.  0 or -errno. */
int xsc_open(struct xsc *c, const char *path);
void xsc_close(struct xsc *c);

/* One request: type (XS_*) with payload; the reply payload in a malloc'd,
 * NUL-terminated buffer (*reply may be NULL to drop it).  0 or -errno. */
int xsc_request(struct xsc *c, uint32_t type, const void *payload, size_t len,
                char **reply, size_t *reply_len);

int xsc_write(struct xsc *c, const char *path, const char *value);
int xsc_mkdir(struct xsc *c, const char *path);
int xsc_rm(struct xsc *c, const char *path);
/* *value is malloc'd. */
int xsc_read(struct xsc *c, const char *path, char **value);
/* perms as xenstore-chmod writes them: "n0", "r5", ... (first = owner). */
int xsc_set_perms(struct xsc *c, const char *path, const char *const *perms, size_t n);
int xsc_introduce(struct xsc *c, unsigned domid, uint64_t gfn, unsigned port);
int xsc_release(struct xsc *c, unsigned domid);

/* errno for one of Xen's XS_ERROR names ("ENOENT"), EIO when unknown. */
int xsc_errno(const char *name);

#endif
