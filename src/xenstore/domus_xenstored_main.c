/* domus-xenstored: Xen's xenstore daemon protocol on a Unix socket.
 *
 *   domus-xenstored [--socket PATH] [--daemon] [--pid-file PATH] [--run-dir DIR]
 *                   [--trace-file FILE]
 *
 * Socket default: $XENSTORED_PATH, else /run/domus/xenstored/socket.
 * Serves in the foreground until SIGTERM/SIGINT (exit 0, socket removed);
 * --daemon detaches once the socket is listening.  --run-dir installs the
 * domus-vm INTRODUCE hook (xs_vmhook.h): a guest's ring is fetched from
 * DIR/dom<N>.control; without it INTRODUCE records domains without rings.
 * --trace-file (Xen's xenstored -T) appends a line per request and per watch
 * event to FILE (xs_daemon_set_trace). */
#include "domus/sandbox.h"
#include "domus/util.h"
#include "domus/xs_vmhook.h"
#include "domus/xenstore.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/domus/xenstored/socket"

struct opts {
    const char *socket;
    const char *pid_file;
    const char *run_dir;
    const char *trace;
    bool daemon;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: domus-xenstored [--socket PATH] [--daemon] [--pid-file PATH]"
            " [--run-dir DIR] [--trace-file FILE]\n"
            "  --socket PATH    Unix socket for Domain 0 clients\n"
            "                   (default $XENSTORED_PATH or " DEFAULT_SOCKET ")\n"
            "  --daemon         detach once listening\n"
            "  --pid-file PATH  write the daemon's pid there (removed on exit)\n"
            "  --run-dir DIR    fetch guest rings from DIR/dom<N>.control on INTRODUCE\n"
            "  -T, --trace-file FILE  append each request and watch event to FILE\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"socket", required_argument, NULL, 's'},
        {"pid-file", required_argument, NULL, 'p'},
        {"run-dir", required_argument, NULL, 'r'},
        {"daemon", no_argument, NULL, 'd'},
        {"trace-file", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("XENSTORED_PATH");
    o->socket = env && *env ? env : DEFAULT_SOCKET;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:p:r:dT:h", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            o->socket = optarg;
            break;
        case 'p':
            o->pid_file = optarg;
            break;
        case 'r':
            o->run_dir = optarg;
            break;
        case 'd':
            o->daemon = true;
            break;
        case 'T':
            o->trace = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return -EINVAL;
    }
    return 0;
}

static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f) ? -errno : 0;
}

/* Forks; the parent waits for the child's "ready" byte and exits with it. */
static int detach(int *ready_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        char b = 0;
        close(p[1]);
        ssize_t n = read(p[0], &b, 1);
        _exit(n == 1 && b == 'R' ? 0 : 1);
    }
    close(p[0]);
    setsid();
    *ready_fd = p[1];
    return 0;
}

static void quiet_stdio(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
}

static int stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL))
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    int rc, sfd = -1, ready_fd = -1;
    struct xs_daemon *d = NULL;
    FILE *trace = NULL;
    dlog_set_prog("domus-xenstored");
    if (parse_opts(argc, argv, &o))
        return 2;
    if (o.trace && !(trace = fopen(o.trace, "ae"))) {
        derr("cannot open %s: %s", o.trace, strerror(errno));
        return 1;
    }
    /* No capabilities, no programs run: sockets, guest memfds handed over
     * by domus-vm and files in its own directories are all it touches. */
    sandbox_process("domus-xenstored", NULL, 0, SANDBOX_PROC_NO_EXEC);
    d = xs_daemon_new(NULL);
    if (!d) {
        derr("out of memory");
        return 1;
    }
    xs_daemon_set_trace(d, trace);
    if (o.run_dir && (rc = xs_vmhook_install(d, o.run_dir))) {
        derr("cannot install the ring hook: %s", strerror(-rc));
        goto out;
    }
    rc = xs_daemon_listen(d, o.socket);
    if (rc) {
        derr("cannot listen on %s: %s", o.socket, strerror(-rc));
        goto out;
    }
    if (o.daemon && (rc = detach(&ready_fd))) {
        derr("cannot detach: %s", strerror(-rc));
        goto out;
    }
    if (o.pid_file && (rc = write_pid_file(o.pid_file))) {
        derr("cannot write %s: %s", o.pid_file, strerror(-rc));
        goto out;
    }
    sfd = stop_signals();
    if (sfd < 0) {
        rc = sfd;
        derr("signalfd: %s", strerror(-rc));
        goto out;
    }
    dinfo("serving on %s", o.socket);
    if (ready_fd >= 0) {
        (void)!write(ready_fd, "R", 1);
        close(ready_fd);
        ready_fd = -1;
        quiet_stdio();
    }
    rc = xs_daemon_run(d, sfd);
    if (rc)
        derr("event loop: %s", strerror(-rc));
    else
        dinfo("stopping");
out:
    if (o.pid_file && rc != -EADDRINUSE)
        unlink(o.pid_file);
    if (sfd >= 0)
        close(sfd);
    xs_daemon_free(d);
    if (trace)
        fclose(trace);
    return rc ? 1 : 0;
}
