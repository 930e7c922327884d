/* domus save and domus restore, with xl's options (cli.h).  On a terminal
 * a progress line says how much of the image is written (MiB, MiB/s). */
#include "domus/cli.h"
#include "domus/util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_NS 250000000 /* 4 lines a second */

struct progress {
    const char *verb; /* "Saving", "Restoring" */
    const char *path;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done, shown;
    bool growing; /* the file is the one being written */
    uint64_t t0;
};

static void progress_line(struct progress *p, bool last)
{
    struct stat st;
    double mib, s = (double)(dnow_ns() - p->t0) / 1e9;

    if (stat(p->path, &st) < 0)
        return;
    mib = (double)st.st_size / (1 << 20);
    if (p->growing) /* the image being written: its size is the work done */
        fprintf(stderr, "\r%s %s: %.1f MiB, %.1f MiB/s%s", p->verb, p->path, mib,
                s > 0 ? mib / s : 0.0, last ? "\n" : "");
    else /* read by domus-vm, out of sight: the size and the time so far */
        fprintf(stderr, "\r%s %s: %.1f MiB image, %.1f s%s", p->verb, p->path, mib, s,
                last ? "\n" : "");
    p->shown = true;
}

static void *progress_thread(void *arg)
{
    struct progress *p = arg;
    struct timespec ts;

    pthread_mutex_lock(&p->lock);
    while (!p->done) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += PROGRESS_NS;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        if (!p->done)
            progress_line(p, false);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Only on a terminal: elsewhere (scripts, logs) save is quiet, as xl. */
static void progress_start(struct progress *p, const char *verb, const char *path)
{
    *p = (struct progress){.verb = verb,
                           .path = path,
                           .t0 = dnow_ns(),
                           .growing = !strcmp(verb, "Saving to")};
    if (!isatty(STDERR_FILENO))
        return;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (pthread_create(&p->thread, NULL, progress_thread, p) != 0)
        p->path = NULL;
}

static void progress_end(struct progress *p, bool ok)
{
    if (!isatty(STDERR_FILENO) || !p->path)
        return;
    pthread_mutex_lock(&p->lock);
    p->done = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    if (ok)
        progress_line(p, true);
    else if (p->shown)
        fputc('\n', stderr);
}

/* cwd and the config file (if any) into req. */
static int add_common(json_object *req, const char *cfg)
{
    char cwd[PATH_MAX];

    if (getcwd(cwd, sizeof(cwd)))
        json_object_object_add(req, "cwd", json_object_new_string(cwd));
    return cfg ? cli_req_add_cfg(req, cfg) : 0;
}

static int send_with_progress(json_object *req, const char *verb, const char *path,
                              json_object **reply)
{
    struct progress p;
    int rc;

    progress_start(&p, verb, path);
    rc = cli_request(req, reply);
    progress_end(&p, rc == 0);
    return rc;
}

int cli_save(int argc, char **argv)
{
    bool checkpoint = false, pause = false;
    json_object *req, *reply = NULL;
    int c, n, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt(argc, argv, "+cp")) != -1) {
        if (c == 'c')
            checkpoint = true;
        else if (c == 'p')
            pause = true;
        else
            return cli_usage_error("save");
    }
    n = argc - optind;
    if (n < 2 || n > 3)
        return cli_usage_error("save");
    req = cli_dom_req("save", argv[optind]);
    json_object_object_add(req, "path", json_object_new_string(argv[optind + 1]));
    json_object_object_add(req, "checkpoint", json_object_new_boolean(checkpoint));
    json_object_object_add(req, "pause", json_object_new_boolean(pause));
    if (add_common(req, n == 3 ? argv[optind + 2] : NULL)) {
        json_object_put(req);
        return 1;
    }
    rc = send_with_progress(req, "Saving to", argv[optind + 1], &reply);
    json_object_put(reply);
    return rc;
}

int cli_restore(int argc, char **argv)
{
    static const struct option opts[] = {{"lazy", 0, 0, 'L'}, {0, 0, 0, 0}};
    bool paused = false, console = false, lazy = false;
    json_object *req, *reply = NULL;
    char name[128];
    const char *image;
    int c, n, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+pecd", opts, NULL)) != -1) {
        if (c == 'L')
            lazy = true;
        else if (c == 'p')
            paused = true;
        else if (c == 'c')
            console = true;
        else if (c != 'e' && c != 'd') /* -e: domusd watches it anyway; -d: debug */
            return cli_usage_error("restore");
    }
    n = argc - optind;
    if (n < 1 || n > 2)
        return cli_usage_error("restore");
    image = argv[argc - 1];
    req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string("restore"));
    json_object_object_add(req, "path", json_object_new_string(image));
    json_object_object_add(req, "paused", json_object_new_boolean(paused));
    if (lazy)
        json_object_object_add(req, "lazy", json_object_new_boolean(true));
    if (add_common(req, n == 2 ? argv[optind] : NULL)) {
        json_object_put(req);
        return 1;
    }
    rc = send_with_progress(req, "Restoring from", image, &reply);
    if (rc)
        return rc;
    snprintf(name, sizeof(name), "%s", cli_jstr(reply, "name"));
    cli_print_warnings(reply);
    json_object_put(reply);
    return console ? cli_console_of(name) : 0;
}
