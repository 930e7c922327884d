/* An in-process xenstored for the unit tests that talk to it as a client
 * (xsclient.h) does: the xenstore core served in a thread on a socket in a
 * temporary directory, one connection `c` to it, and checks of values and
 * permissions through that connection.  (xs_test.h instead drives the core
 * directly on its memory transport.) */
#ifndef XSD_HARNESS_H
#define XSD_HARNESS_H

#include "domus/xenstore.h"
#include "domus/xsclient.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <xen/io/xs_wire.h>

static struct xs_daemon *xsd;
static int xsd_stop_fd = -1;
static pthread_t xsd_thread;
static struct xsc c;   /* the test's connection */
static char sock[128]; /* the socket's path, for back ends to connect to */

static inline void *xsd_serve(void *arg)
{
    (void)arg;
    xs_daemon_run(xsd, xsd_stop_fd);
    return NULL;
}

/* Serves the xenstore core on dir/socket and connects c to it; on failure
 * prints "FAIL name: ..." and returns -1. */
static inline int xsd_start(const char *dir, const char *name)
{
    snprintf(sock, sizeof(sock), "%s/socket", dir);
    xsd = xs_daemon_new(NULL);
    xsd_stop_fd = eventfd(0, EFD_CLOEXEC);
    if (!xsd || xsd_stop_fd < 0 || xs_daemon_listen(xsd, sock) < 0 ||
        pthread_create(&xsd_thread, NULL, xsd_serve, NULL) || xsc_open(&c, sock) < 0) {
        printf("FAIL %s: cannot start the xenstore core\n", name);
        return -1;
    }
    return 0;
}

/* Closes c, stops the serving thread, frees the core, removes the socket. */
static inline void xsd_stop(void)
{
    uint64_t one = 1;
    xsc_close(&c);
    if (write(xsd_stop_fd, &one, sizeof(one)) == sizeof(one))
        pthread_join(xsd_thread, NULL);
    xs_daemon_free(xsd);
    close(xsd_stop_fd);
    unlink(sock);
}

static inline bool value_is(const char *path, const char *want)
{
    char *v = NULL;
    bool ok = xsc_read(&c, path, &v) == 0 && v && !strcmp(v, want);
    if (!ok)
        printf("# %s = '%s', want '%s'\n", path, v ? v : "(none)", want);
    free(v);
    return ok;
}

static inline bool absent(const char *path)
{
    char *v = NULL;
    int rc = xsc_read(&c, path, &v);
    free(v);
    if (rc != -ENOENT)
        printf("# %s: rc %d, want -ENOENT\n", path, rc);
    return rc == -ENOENT;
}

/* Permissions of path as "n5,r0". */
static inline bool perms_are(const char *path, const char *want)
{
    char *v = NULL, got[64] = "";
    size_t len = 0;
    if (xsc_request(&c, XS_GET_PERMS, path, strlen(path) + 1, &v, &len) == 0)
        for (size_t i = 0; i < len; i += strlen(v + i) + 1)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s",
                     *got ? "," : "", v + i);
    free(v);
    if (strcmp(got, want))
        printf("# perms of %s: '%s', want '%s'\n", path, got, want);
    return !strcmp(got, want);
}

/* value_is, once path has that value or after about 3 s. */
static inline bool wait_value(const char *path, const char *want)
{
    for (int i = 0; i < 300; i++) {
        char *v = NULL;
        bool ok = xsc_read(&c, path, &v) == 0 && v && !strcmp(v, want);
        free(v);
        if (ok)
            return true;
        usleep(10000);
    }
    return value_is(path, want);
}

#endif
