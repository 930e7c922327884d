/* The domus-vm control protocol's transport: JSON lines with descriptors
 * (SCM_RIGHTS) on a unix stream socket (vmctl.h). */
#include "domus/vmctl.h"
#include "domus/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int vmctl_send(int fd, json_object *obj, const int *fds, unsigned nfds)
{
    size_t len = 0;
    const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
    char line[VMCTL_LINE_MAX];
    union {
        char buf[CMSG_SPACE(VMCTL_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {line, len + 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (!s || len + 1 > sizeof(line) || nfds > VMCTL_MAX_FDS)
        return -EMSGSIZE;
    memcpy(line, s, len);
    line[len] = '\n';
    if (nfds) {
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
    }
    /* Unix stream sockets send a line this short whole, fds with its first
     * byte; a short send is an error rather than a retry with fds again. */
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (n < 0)
        return -errno;
    return (size_t)n == len + 1 ? 0 : -EIO;
}

/* Keeps up to max of the descriptors in mh's SCM_RIGHTS, closes the rest. */
static void take_fds(struct msghdr *mh, int *fds, unsigned max, unsigned *got)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int tmp;
        for (size_t i = 0; i < n; i++) {
            memcpy(&tmp, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (*got < max)
                fds[(*got)++] = tmp;
            else
                close(tmp);
        }
    }
}

int vmctl_recv_line(int fd, char *buf, size_t len, int *fds, unsigned *nfds,
                    int timeout_ms)
{
    unsigned max = nfds ? *nfds : 0, got = 0;
    size_t have = 0;
    int rc = -EMSGSIZE;

    while (have + 1 < len) {
        union {
            char b[CMSG_SPACE(VMCTL_MAX_FDS * sizeof(int))];
            struct cmsghdr align;
        } cbuf;
        struct iovec iov = {buf + have, len - 1 - have};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cbuf.b,
                            .msg_controllen = sizeof(cbuf.b)};
        if ((rc = dpoll_fd(fd, POLLIN, timeout_ms)) < 0)
            break;
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EPROTO;
            break;
        }
        take_fds(&mh, fds, max, &got);
        char *nl = memchr(buf + have, '\n', (size_t)n);
        have += (size_t)n;
        if (nl) {
            *nl = '\0';
            rc = 0;
            break;
        }
        rc = -EMSGSIZE;
    }
    if (nfds)
        *nfds = got;
    if (rc < 0) {
        for (unsigned i = 0; i < got; i++)
            close(fds[i]);
        if (nfds)
            *nfds = 0;
        buf[0] = '\0';
    }
    return rc;
}

static int connect_sock(const char *path, int *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

int vmctl_call(const char *sock, json_object *req, json_object **reply, int *fds,
               unsigned *nfds, int timeout_ms)
{
    return vmctl_call_with(sock, req, NULL, 0, reply, fds, nfds, timeout_ms);
}

int vmctl_call_with(const char *sock, json_object *req, const int *send_fds,
                    unsigned n_send, json_object **reply, int *fds, unsigned *nfds,
                    int timeout_ms)
{
    char line[VMCTL_LINE_MAX];
    unsigned none = 0;
    int fd = -1, rc;

    *reply = NULL;
    if (!nfds)
        nfds = &none;
    rc = connect_sock(sock, &fd);
    if (!rc)
        rc = vmctl_send(fd, req, send_fds, n_send);
    if (!rc)
        rc = vmctl_recv_line(fd, line, sizeof(line), fds, nfds, timeout_ms);
    if (fd >= 0)
        close(fd);
    if (rc)
        return rc;
    *reply = json_tokener_parse(line);
    if (!*reply || !json_object_is_type(*reply, json_type_object)) {
        json_object_put(*reply);
        *reply = NULL;
        for (unsigned i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        return -EPROTO;
    }
    return 0;
}

bool vmctl_ok(json_object *reply, const char **error)
{
    json_object *v;

    if (json_object_object_get_ex(reply, "ok", &v) &&
        json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v))
        return true;
    if (error) {
        *error = "malformed reply";
        if (json_object_object_get_ex(reply, "error", &v) &&
            json_object_is_type(v, json_type_string))
            *error = json_object_get_string(v);
    }
    return false;
}

json_object *vmctl_req(const char *cmd)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "cmd", json_object_new_string(cmd));
    return o;
}

int vmctl_get_u64(json_object *obj, const char *key, uint64_t max, uint64_t *out)
{
    json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, json_type_int))
        return -EINVAL;
    errno = 0;
    uint64_t x = json_object_get_uint64(v);
    if (errno || x > max || json_object_get_int64(v) < 0)
        return -EINVAL;
    *out = x;
    return 0;
}

const char *vmctl_get_str(json_object *obj, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

json_object *vmctl_verror(const char *fmt, va_list ap)
{
    json_object *o = json_object_new_object();
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    return o;
}

json_object *vmctl_error(const char *fmt, ...)
{
    json_object *o;
    va_list ap;

    va_start(ap, fmt);
    o = vmctl_verror(fmt, ap);
    va_end(ap);
    return o;
}

json_object *vmctl_parse_request(const char *line, const char **why)
{
    enum json_tokener_error jerr;
    json_object *o = json_tokener_parse_verbose(line, &jerr);

    if (o && json_object_is_type(o, json_type_object))
        return o;
    *why = o || jerr == json_tokener_success ? "not a JSON object"
                                             : json_tokener_error_desc(jerr);
    json_object_put(o);
    return NULL;
}
