/* domus CLI: talking to domusd, starting it when needed (as xencommons would). */
#include "domus/cli.h"
#include "domus/vmctl.h"
#include "domus/toolstack.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_WAIT_MS 10000

int cli_verbose;
uint64_t cli_t0;

uint64_t cli_instant(const char *words, const char *key)
{
    size_t kl = strlen(key);

    for (const char *p = words; p && (p = strstr(p, key)); p += kl)
        if ((p == words || p[-1] == ' ') && p[kl] == '=')
            return strtoull(p + kl + 1, NULL, 10);
    return 0;
}

void cli_print_phases(FILE *f, const char *title, const struct cli_phase *p, size_t n,
                      uint64_t (*get)(void *ctx, const char *key), void *ctx)
{
    fprintf(f, "%s (ms):", title);
    for (size_t i = 0; i < n; i++) {
        uint64_t a = get(ctx, p[i].from), b = get(ctx, p[i].to);
        if (a && b)
            fprintf(f, "%s %s %.1f", i ? "," : "", p[i].label,
                    ((double)b - (double)a) / 1e6);
        else
            fprintf(f, "%s %s ?", i ? "," : "", p[i].label);
    }
    fprintf(f, "\n");
}

/* Runs "<our dir>/domusd --daemon" and waits for it to detach. */
static int start_daemon(void)
{
    char dir[PATH_MAX], bin[PATH_MAX + 16];
    int status;
    pid_t pid;
    int rc = ts_self_dir(dir, sizeof(dir));

    if (rc)
        return rc;
    snprintf(bin, sizeof(bin), "%s/domusd", dir);
    if (access(bin, X_OK) < 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        execl(bin, bin, "--daemon", (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

static int connect_daemon(int *fd)
{
    char path[PATH_MAX];
    int rc = ts_sock_path(path, sizeof(path));
    bool started = false;

    if (rc)
        return rc;
    for (int waited = 0;; waited += 50) {
        rc = ts_unix_connect(path, fd);
        if (!rc || (rc != -ENOENT && rc != -ECONNREFUSED && rc != -EAGAIN))
            return rc;
        if (!started && rc != -EAGAIN) { /* EAGAIN: it runs, but is busy */
            started = true;
            rc = start_daemon();
            if (rc) {
                fprintf(stderr, "domus: error: cannot start domusd: %s\n",
                        rc == -ECHILD ? "it failed (see above)" : strerror(-rc));
                return rc;
            }
            continue;
        }
        if (waited >= START_WAIT_MS)
            return rc;
        usleep(50000);
    }
}

json_object *cli_dom_req(const char *cmd, const char *dom)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "cmd", json_object_new_string(cmd));
    json_object_object_add(o, "dom", json_object_new_string(dom));
    return o;
}

const char *cli_jstr(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

long long cli_jnum(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

void cli_print_warnings(json_object *reply)
{
    json_object *w;

    if (!json_object_object_get_ex(reply, "warnings", &w) ||
        !json_object_is_type(w, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(w); i++)
        fprintf(stderr, "warning: %s\n",
                json_object_get_string(json_object_array_get_idx(w, i)));
}

static int parse_reply(const char *line, json_object **reply)
{
    json_object *o = json_tokener_parse(line), *ok, *err;

    if (!o || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "ok", &ok)) {
        fprintf(stderr, "domus: error: malformed reply from domusd\n");
        json_object_put(o);
        return 1;
    }
    if (!json_object_get_boolean(ok)) {
        cli_print_warnings(o); /* e.g. a create's config warnings */
        json_object_object_get_ex(o, "error", &err);
        fprintf(stderr, "%s\n", err ? json_object_get_string(err) : "error");
        json_object_put(o);
        return 1;
    }
    *reply = o;
    return 0;
}

int cli_request(json_object *req, json_object **reply)
{
    char *line = NULL;
    int fd = -1, rc, ret = 1;

    *reply = NULL;
    rc = connect_daemon(&fd);
    if (rc) {
        if (rc != -ECHILD)
            fprintf(stderr, "domus: error: cannot reach domusd: %s\n", strerror(-rc));
        goto out;
    }
    rc = ts_send_json(fd, req, -1);
    if (!rc)
        rc = ts_read_line(fd, &line, DOMUS_REQ_MAX, -1);
    if (rc) {
        fprintf(stderr, "domus: error: talking to domusd: %s\n",
                rc == -EPIPE ? "connection closed" : strerror(-rc));
        goto out;
    }
    ret = parse_reply(line, reply);
out:
    free(line);
    if (fd >= 0)
        close(fd);
    json_object_put(req);
    return ret;
}

int cli_send_fds(json_object *req, const int *fds, unsigned nfds, int *conn, char *err,
                 size_t errlen)
{
    int rc = connect_daemon(conn);

    if (rc) {
        *conn = -1;
        snprintf(err, errlen, "cannot reach domusd: %s", strerror(-rc));
    } else if ((rc = vmctl_send(*conn, req, fds, nfds))) {
        snprintf(err, errlen, "talking to domusd: %s", strerror(-rc));
        close(*conn);
        *conn = -1;
    }
    json_object_put(req);
    return rc;
}

int cli_recv_reply(int conn, json_object **reply, char *err, size_t errlen)
{
    char *line = NULL;
    int rc = ts_read_line(conn, &line, DOMUS_REQ_MAX, -1);

    *reply = NULL;
    if (rc) {
        snprintf(err, errlen, "talking to domusd: %s",
                 rc == -EPIPE ? "connection closed" : strerror(-rc));
    } else {
        *reply = json_tokener_parse(line);
        if (!*reply || !json_object_is_type(*reply, json_type_object)) {
            json_object_put(*reply);
            *reply = NULL;
            snprintf(err, errlen, "malformed reply from domusd");
            rc = -EPROTO;
        }
    }
    free(line);
    close(conn);
    return rc;
}

int cli_call_fds(json_object *req, const int *fds, unsigned nfds, json_object **reply,
                 char *err, size_t errlen)
{
    int conn, rc = cli_send_fds(req, fds, nfds, &conn, err, errlen);

    *reply = NULL;
    return rc ?: cli_recv_reply(conn, reply, err, errlen);
}
