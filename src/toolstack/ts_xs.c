/* Synchronous xenstore client for the toolstack (see xsclient.h). */
#include "domus/xsclient.h"
#include "domus/toolstack.h"
#include "domus/util.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xen/io/xs_wire.h>

int xsc_errno(const char *name)
{
    static const struct {
        const char *name;
        int err;
    } names[] = {{"EINVAL", EINVAL}, {"EACCES", EACCES},   {"EEXIST", EEXIST},
                 {"EISDIR", EISDIR}, {"ENOENT", ENOENT},   {"ENOMEM", ENOMEM},
                 {"ENOSPC", ENOSPC}, {"EIO", EIO},         {"ENOTEMPTY", ENOTEMPTY},
                 {"ENOSYS", ENOSYS}, {"EROFS", EROFS},     {"EBUSY", EBUSY},
                 {"EAGAIN", EAGAIN}, {"EISCONN", EISCONN}, {"E2BIG", E2BIG},
                 {"EPERM", EPERM}};

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (!strcmp(names[i].name, name))
            return names[i].err;
    }
    return EIO;
}

int xsc_open(struct xsc *c, const char *path)
{
    c->req_id = 0;
    c->fd = -1;
    return ts_unix_connect(path, &c->fd);
}

void xsc_close(struct xsc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Reads exactly len bytes before the deadline. */
static int read_full(int fd, void *buf, size_t len, int64_t deadline)
{
    uint8_t *p = buf;

    while (len) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - dnow_ms());
        ssize_t n;

        if (left <= 0)
            return -ETIMEDOUT;
        if (poll(&pf, 1, left) < 0 && errno != EINTR)
            return -errno;
        n = read(fd, p, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one message; *body is malloc'd and NUL-terminated. */
static int read_msg(struct xsc *c, struct xsd_sockmsg *hdr, char **body, int64_t deadline)
{
    int rc = read_full(c->fd, hdr, sizeof(*hdr), deadline);

    if (rc)
        return rc;
    if (hdr->len > XENSTORE_PAYLOAD_MAX)
        return -EPROTO;
    *body = malloc(hdr->len + 1);
    if (!*body)
        return -ENOMEM;
    rc = read_full(c->fd, *body, hdr->len, deadline);
    if (rc) {
        free(*body);
        *body = NULL;
        return rc;
    }
    (*body)[hdr->len] = '\0';
    return 0;
}

int xsc_request(struct xsc *c, uint32_t type, const void *payload, size_t len,
                char **reply, size_t *reply_len)
{
    struct xsd_sockmsg hdr = {.type = type, .req_id = ++c->req_id, .len = (uint32_t)len};
    int64_t deadline = dnow_ms() + XSC_TIMEOUT_MS;
    char *body = NULL;
    int rc;

    if (c->fd < 0 || len > XENSTORE_PAYLOAD_MAX)
        return -EINVAL;
    rc = write_full(c->fd, &hdr, sizeof(hdr));
    if (!rc)
        rc = write_full(c->fd, payload, len);
    while (!rc) {
        struct xsd_sockmsg r;
        rc = read_msg(c, &r, &body, deadline);
        if (rc)
            break;
        if (r.type == XS_WATCH_EVENT || r.req_id != hdr.req_id) {
            free(body); /* not ours: watch events, stale replies */
            body = NULL;
            continue;
        }
        if (r.type == XS_ERROR)
            rc = -xsc_errno(body);
        else if (reply_len)
            *reply_len = r.len;
        break;
    }
    if (!rc && reply) {
        *reply = body;
        body = NULL;
    }
    free(body);
    return rc;
}

/* Payload of NUL-separated strings; the last one keeps its NUL when term. */
static int request_parts(struct xsc *c, uint32_t type, const char *const *parts, size_t n,
                         int term, char **reply)
{
    char buf[XENSTORE_PAYLOAD_MAX];
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]) + (i + 1 < n || term ? 1 : 0);
        if (len + l > sizeof(buf))
            return -E2BIG;
        memcpy(buf + len, parts[i], l); /* includes the NUL when wanted */
        len += l;
    }
    return xsc_request(c, type, buf, len, reply, NULL);
}

int xsc_write(struct xsc *c, const char *path, const char *value)
{
    const char *parts[] = {path, value};
    return request_parts(c, XS_WRITE, parts, 2, 0, NULL);
}

int xsc_mkdir(struct xsc *c, const char *path)
{
    return request_parts(c, XS_MKDIR, &path, 1, 1, NULL);
}

int xsc_rm(struct xsc *c, const char *path)
{
    return request_parts(c, XS_RM, &path, 1, 1, NULL);
}

int xsc_read(struct xsc *c, const char *path, char **value)
{
    return request_parts(c, XS_READ, &path, 1, 1, value);
}

int xsc_set_perms(struct xsc *c, const char *path, const char *const *perms, size_t n)
{
    const char *parts[8];

    if (n + 1 > ARRAY_SIZE(parts))
        return -E2BIG;
    parts[0] = path;
    memcpy(parts + 1, perms, n * sizeof(*perms));
    return request_parts(c, XS_SET_PERMS, parts, n + 1, 1, NULL);
}

int xsc_introduce(struct xsc *c, unsigned domid, uint64_t gfn, unsigned port)
{
    char a[16], b[24], p[16];
    const char *parts[] = {a, b, p};

    snprintf(a, sizeof(a), "%u", domid);
    snprintf(b, sizeof(b), "%" PRIu64, gfn);
    snprintf(p, sizeof(p), "%u", port);
    return request_parts(c, XS_INTRODUCE, parts, 3, 1, NULL);
}

int xsc_release(struct xsc *c, unsigned domid)
{
    char a[16];
    const char *parts[] = {a};

    snprintf(a, sizeof(a), "%u", domid);
    return request_parts(c, XS_RELEASE, parts, 1, 1, NULL);
}
