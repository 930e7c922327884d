/* Toolstack helpers shared by domus and domusd: paths, JSON lines over unix
 * sockets (see toolstack.h). */
#include "domus/toolstack.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

const char *ts_run_dir(void)
{
    return env_or("DOMUS_RUN_DIR", DOMUS_RUN_DIR_DEFAULT);
}

const char *ts_log_dir(void)
{
    return env_or("DOMUS_LOG_DIR", DOMUS_LOG_DIR_DEFAULT);
}

int ts_sock_path(char *buf, size_t len)
{
    struct sockaddr_un sa;
    int n = snprintf(buf, len, "%s/%s", ts_run_dir(), DOMUSD_SOCK_NAME);

    if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    return 0;
}

int ts_self_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    char *slash;

    if (n < 0)
        return -errno;
    if ((size_t)n >= len - 1)
        return -ENAMETOOLONG;
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (!slash)
        return -EINVAL;
    *slash = '\0';
    return 0;
}

int ts_mkdir_p(const char *dir)
{
    return ts_mkdir_mode(dir, 0755);
}

int ts_mkdir_mode(const char *dir, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int write_all(int fd, const char *buf, size_t len, int timeout_ms)
{
    while (len) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = write(fd, buf, len);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = dpoll_fd(fd, POLLOUT, timeout_ms);
            if (rc)
                return rc;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int ts_send_json(int fd, json_object *obj, int timeout_ms)
{
    size_t len = 0;
    const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
    int rc;

    if (!s)
        return -ENOMEM;
    rc = write_all(fd, s, len, timeout_ms);
    if (!rc)
        rc = write_all(fd, "\n", 1, timeout_ms);
    return rc;
}

int ts_unix_connect(const char *path, int *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, rc;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* A unix connect either completes at once or fails (-EAGAIN: backlog full). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

/* Reads byte by byte so nothing after the line is consumed. */
int ts_read_line(int fd, char **line, size_t max, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : dnow_ms() + timeout_ms;
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    int rc;

    if (!buf)
        return -ENOMEM;
    for (;;) {
        int left = deadline < 0 ? -1 : (int)(deadline - dnow_ms());
        char c;
        ssize_t r;

        if (deadline >= 0 && left <= 0) {
            rc = -ETIMEDOUT;
            goto out;
        }
        rc = dpoll_fd(fd, POLLIN, left);
        if (rc)
            goto out;
        r = read(fd, &c, 1);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EPIPE;
            goto out;
        }
        if (c == '\n')
            break;
        if (len + 2 > max) {
            rc = -E2BIG;
            goto out;
        }
        if (len + 2 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        buf[len++] = c;
    }
    buf[len] = '\0';
    *line = buf;
    return 0;
out:
    free(buf);
    return rc;
}

int ts_read_line_bytewise(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t n = 0;
    uint64_t end = dnow_ns() + (uint64_t)timeout_ms * 1000000u;

    while (n + 1 < len) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left_ns = (int64_t)(end - dnow_ns());
        if (left_ns <= 0)
            return -ETIMEDOUT;
        int rc = poll(&p, 1, (int)(left_ns / 1000000) + 1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (rc == 0)
            continue;
        ssize_t r = read(fd, buf + n, 1);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EPIPE;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return 0;
}
