/* Unit tests of the toolstack's xenstore client against the xenstore core,
 * served in a thread of this process on a temporary socket. */
#include "domus/xenstore.h"
#include "domus/xsclient.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

struct server {
    struct xs_daemon *xs;
    int stop_fd;
    pthread_t thread;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    xs_daemon_run(s->xs, s->stop_fd);
    return NULL;
}

static bool value_is(struct xsc *c, const char *path, const char *want)
{
    char *v = NULL;
    bool ok = xsc_read(c, path, &v) == 0 && v && !strcmp(v, want);
    free(v);
    return ok;
}

static void test_ops(struct xsc *c)
{
    const char *perms[] = {"n5", "r0"};
    char *v = NULL;

    CHECK("write", xsc_write(c, "/local/domain/5/name", "guest") == 0);
    CHECK("read back", value_is(c, "/local/domain/5/name", "guest"));
    CHECK("write empty value",
          xsc_write(c, "/local/domain/5/control/shutdown", "") == 0 &&
              value_is(c, "/local/domain/5/control/shutdown", ""));
    CHECK("mkdir", xsc_mkdir(c, "/local/domain/5/device") == 0 &&
                       value_is(c, "/local/domain/5/device", ""));
    CHECK("set perms",
          xsc_set_perms(c, "/local/domain/5/control/shutdown", perms, 2) == 0);
    CHECK("read missing -> -ENOENT", xsc_read(c, "/no/such/node", &v) == -ENOENT && !v);
    CHECK("bad path -> -EINVAL", xsc_write(c, "relative//bad", "x") == -EINVAL);
    CHECK("introduce (no ring hooks)", xsc_introduce(c, 5, 0xfeff1, 3) == 0);
    CHECK("release", xsc_release(c, 5) == 0);
    CHECK("release again -> error", xsc_release(c, 5) < 0);
    CHECK("rm", xsc_rm(c, "/local/domain/5") == 0 &&
                    xsc_read(c, "/local/domain/5/name", &v) == -ENOENT);
    CHECK("too many perms -> -E2BIG",
          xsc_set_perms(c, "/x",
                        (const char *[]){"n0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"},
                        8) == -E2BIG);
    CHECK("error names", xsc_errno("ENOENT") == ENOENT && xsc_errno("EACCES") == EACCES &&
                             xsc_errno("whatever") == EIO);
}

int main(void)
{
    char dir[] = "/tmp/test_xsclient_XXXXXX", path[128];
    struct server s = {.stop_fd = -1};
    struct xsc c = {.fd = -1};
    uint64_t one = 1;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/sub/socket", dir);
    mode_t um = umask(0); /* the modes below are Domus's own, not the umask's */
    s.xs = xs_daemon_new(NULL);
    s.stop_fd = eventfd(0, EFD_CLOEXEC);
    if (!s.xs || s.stop_fd < 0 || xs_daemon_listen(s.xs, path) < 0 ||
        pthread_create(&s.thread, NULL, serve, &s)) {
        printf("FAIL xsclient: cannot start the xenstore core\n");
        return 1;
    }
    umask(um);
    struct stat st, sd;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    CHECK("the socket is its owner's only (0600)",
          stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
    CHECK("in a directory of its owner's only (0700)",
          stat(sub, &sd) == 0 && (sd.st_mode & 0777) == 0700);
    CHECK("connect", xsc_open(&c, path) == 0);
    test_ops(&c);
    xsc_close(&c);
    CHECK("connect to nothing -> error", xsc_open(&c, "/nonexistent/socket") < 0);
    if (write(s.stop_fd, &one, sizeof(one)) == sizeof(one))
        pthread_join(s.thread, NULL);
    xs_daemon_free(s.xs);
    close(s.stop_fd);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    return failures ? 1 : 0;
}
