/* domusd: the Domain 0 control plane daemon.
 *
 *   domusd [--daemon]   detach; returns once the socket accepts requests
 *   domusd -F           stay in the foreground, log to stderr
 *
 * One instance per $DOMUS_RUN_DIR, guarded by a lock on domusd.lock; a second
 * --daemon start while one runs succeeds without doing anything. */
#include "domus/domusd.h"
#include "domus/sandbox.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define ALREADY "already running"

static void usage(FILE *f)
{
    fprintf(f, "usage: domusd [--daemon | -F]\n"
               "  --daemon  run in the background (default)\n"
               "  -F        run in the foreground, logging to stderr\n"
               "Environment: DOMUS_RUN_DIR (default " DOMUS_RUN_DIR_DEFAULT
               "), DOMUS_LOG_DIR (default " DOMUS_LOG_DIR_DEFAULT ")\n");
}

/* fds 0-2 must exist so that pipes never land on them. */
static void ensure_stdio(void)
{
    int fd;
    while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
        ;
    if (fd > 2)
        close(fd);
}

static void stdin_null(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        close(fd);
    }
}

static int take_lock(char *err, size_t errlen)
{
    char path[PATH_MAX];
    int fd;

    if ((size_t)snprintf(path, sizeof(path), "%s/domusd.lock", ts_run_dir()) >=
        sizeof(path)) {
        dfmt(err, errlen, "run directory path too long");
        return -ENAMETOOLONG;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        dfmt(err, errlen, "%s", e == EWOULDBLOCK ? ALREADY : strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    return 0; /* the fd stays open for the daemon's lifetime */
}

static void pid_file(int create)
{
    char path[PATH_MAX];
    FILE *f;

    if ((size_t)snprintf(path, sizeof(path), "%s/domusd.pid", ts_run_dir()) >=
        sizeof(path))
        return;
    if (!create) {
        unlink(path);
        return;
    }
    f = fopen(path, "we");
    if (f) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }
}

static int setup(struct dsd *d, char *err, size_t errlen)
{
    /* Domain 0's sockets and state live here: the owner's only (a
     * directory that exists already keeps its mode). */
    int rc = ts_mkdir_mode(ts_run_dir(), 0700);

    if (rc) {
        dfmt(err, errlen, "cannot create %s: %s", ts_run_dir(), strerror(-rc));
        return rc;
    }
    ts_mkdir_p(ts_log_dir());
    rc = take_lock(err, errlen);
    if (rc)
        return rc;
    rc = dsd_server_init(d);
    if (rc) {
        dfmt(err, errlen, "cannot listen on %s/%s: %s", ts_run_dir(), DOMUSD_SOCK_NAME,
             strerror(-rc));
        return rc;
    }
    pid_file(1);
    return 0;
}

static void redirect_output(void)
{
    char path[PATH_MAX];
    int fd = -1;

    if ((size_t)snprintf(path, sizeof(path), "%s/domusd.log", ts_log_dir()) <
        sizeof(path))
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
}

static int serve(struct dsd *d)
{
    int rc;

    dinfo("listening on %s (pid %d)", d->sock_path, (int)getpid());
    rc = dsd_server_run(d);
    if (rc)
        derr("event loop: %s", strerror(-rc));
    dsd_server_fini(d);
    pid_file(0);
    dinfo("exiting");
    return rc ? 1 : 0;
}

static int run_foreground(struct dsd *d)
{
    char err[512];

    if (setup(d, err, sizeof(err)) < 0) {
        derr("%s", err);
        return 1;
    }
    return serve(d);
}

/* The parent waits for the child's verdict on its pipe, then exits. */
static int daemon_parent(int rfd)
{
    char msg[512];
    ssize_t n = read(rfd, msg, sizeof(msg) - 1);

    if (n <= 0) {
        fprintf(stderr, "domusd: error: the daemon died while starting\n");
        return 1;
    }
    msg[n] = '\0';
    if (!strcmp(msg, "ok") || !strcmp(msg, ALREADY))
        return 0;
    fprintf(stderr, "domusd: error: %s\n", msg);
    return 1;
}

static int run_daemon(struct dsd *d)
{
    char err[512] = "cannot chdir to /";
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
        perror("domusd: error: cannot start the daemon");
        return 1;
    }
    if (pid > 0) {
        close(p[1]);
        return daemon_parent(p[0]);
    }
    close(p[0]);
    setsid();
    /* Whatever the starter had open (a shell's pipes) must not be held by us. */
    close_range(3, p[1] - 1, 0);
    close_range(p[1] + 1, ~0U, 0);
    stdin_null();
    /* From here on, logs (ours, and those of the xenstored we may start) go
     * to the log file; set-up errors reach the starter through the pipe. */
    ts_mkdir_p(ts_log_dir());
    redirect_output();
    if (chdir("/") < 0 || setup(d, err, sizeof(err)) < 0) {
        if (write(p[1], err, strlen(err)) < 0)
            _exit(1);
        _exit(strcmp(err, ALREADY) ? 1 : 0);
    }
    if (write(p[1], "ok", 2) < 0)
        dwarn("cannot report readiness");
    close(p[1]);
    return serve(d);
}

/* The daemon changes to /: relative directories are made absolute first. */
static void absolute_env(const char *name)
{
    const char *v = getenv(name);
    char cwd[PATH_MAX], abs[PATH_MAX * 2];

    if (!v || !*v || v[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        return;
    snprintf(abs, sizeof(abs), "%s/%s", cwd, v);
    setenv(name, abs, 1);
}

/* What domusd and what it runs (domus-vm, domus-xenstored) keep: taps and
 * bridges (NET_ADMIN); disk images and directories whoever owns them (the
 * DAC ones, FOWNER); vCPU pinning (SYS_NICE).  The rest goes (sandbox.h). */
static void least_privilege(void)
{
    static const int keep[] = {CAP_NET_ADMIN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
                               CAP_FOWNER, CAP_SYS_NICE};

    sandbox_process("domusd", keep, sizeof(keep) / sizeof(keep[0]), 0);
}

int main(int argc, char **argv)
{
    struct dsd d = {.epfd = -1};
    int foreground = 0;

    dlog_set_prog("domusd");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-F") || !strcmp(argv[i], "--foreground"))
            foreground = 1;
        else if (!strcmp(argv[i], "--daemon"))
            foreground = 0;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(stdout), 0;
        else
            return usage(stderr), 2;
    }
    ensure_stdio();
    least_privilege();
    absolute_env("DOMUS_RUN_DIR");
    absolute_env("DOMUS_LOG_DIR");
    absolute_env("XENSTORED_PATH");
    return foreground ? run_foreground(&d) : run_daemon(&d);
}
