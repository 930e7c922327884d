/* xenstored ring transport with a fake ring page in memory: INTRODUCE via
 * the map hook, request/reply through struct xenstore_domain_interface,
 * index wrap-around, a full response ring, watch events, reconnection,
 * hostile indexes and oversized messages, SET_TARGET, RELEASE, and the
 * eventfd kick path through the daemon's epoll loop. */
#include "xs_test.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

static struct xs_daemon *d;

struct fake {
    struct xenstore_domain_interface *page;
    int notify_fd, kick_fd; /* daemon's ends are the same eventfds */
    unsigned domid;
    uint64_t gfn;
    unsigned evtchn;
    int mapped, unmapped;
};
static struct fake doms[4];

static struct fake *fake_for(unsigned domid)
{
    for (int i = 0; i < 4; i++)
        if (doms[i].domid == domid)
            return &doms[i];
    return NULL;
}

static int fake_map(void *opaque, unsigned domid, uint64_t gfn, unsigned evtchn,
                    void **page, int *nfd, int *kfd)
{
    (void)opaque;
    struct fake *f = fake_for(domid);
    if (!f)
        return -ENOENT;
    f->page = aligned_alloc(4096, 4096);
    memset(f->page, 0xAA, 4096); /* garbage indexes: the daemon must reset them */
    f->notify_fd = eventfd(0, EFD_NONBLOCK);
    f->kick_fd = eventfd(0, EFD_NONBLOCK);
    f->gfn = gfn;
    f->evtchn = evtchn;
    f->mapped++;
    *page = f->page;
    *nfd = f->notify_fd;
    *kfd = f->kick_fd;
    return 0;
}

static void fake_unmap(void *opaque, unsigned domid, void *page, int nfd, int kfd)
{
    (void)opaque;
    struct fake *f = fake_for(domid);
    if (f && page == f->page) {
        f->unmapped++;
        free(page);
        close(nfd);
        close(kfd);
        f->page = NULL;
    }
}

/* ---- guest side of the ring ---- */

static size_t guest_put(struct xenstore_domain_interface *i, const void *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        XENSTORE_RING_IDX prod = i->req_prod, cons = i->req_cons;
        uint32_t space = XENSTORE_RING_SIZE - (prod - cons);
        if (!space)
            break;
        uint32_t chunk = XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(prod);
        if (chunk > space)
            chunk = space;
        if (chunk > len - done)
            chunk = (uint32_t)(len - done);
        memcpy(i->req + MASK_XENSTORE_IDX(prod), (const char *)data + done, chunk);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        i->req_prod = prod + chunk;
        done += chunk;
    }
    return done;
}

static size_t guest_get(struct xenstore_domain_interface *i, void *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        XENSTORE_RING_IDX prod = i->rsp_prod, cons = i->rsp_cons;
        uint32_t avail = prod - cons;
        if (!avail)
            break;
        uint32_t chunk = XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(cons);
        if (chunk > avail)
            chunk = avail;
        if (chunk > len - done)
            chunk = (uint32_t)(len - done);
        memcpy((char *)data + done, i->rsp + MASK_XENSTORE_IDX(cons), chunk);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        i->rsp_cons = cons + chunk;
        done += chunk;
    }
    return done;
}

static size_t guest_avail(struct xenstore_domain_interface *i)
{
    return i->rsp_prod - i->rsp_cons;
}

static uint32_t greq_id;

static void guest_send(struct fake *f, uint32_t type, const char *a, const char *b)
{
    char buf[256];
    size_t al = strlen(a) + 1, bl = b ? strlen(b) + 1 : 0;
    struct xsd_sockmsg h = {type, ++greq_id, 0, (uint32_t)(al + bl)};
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), a, al);
    if (b)
        memcpy(buf + sizeof(h) + al, b, bl);
    guest_put(f->page, buf, sizeof(h) + al + bl);
}

/* A raw request with a transaction id and an exact payload. */
static void guest_send_tx(struct fake *f, uint32_t type, uint32_t tx, const void *p,
                          uint32_t len)
{
    struct xsd_sockmsg h = {type, ++greq_id, tx, len};
    guest_put(f->page, &h, sizeof(h));
    guest_put(f->page, p, len);
}

/* Reads one whole message from the response ring, if there is one. */
static int guest_msg(struct fake *f, struct reply *r)
{
    if (guest_avail(f->page) < sizeof(r->h))
        return 0;
    struct xsd_sockmsg h;
    XENSTORE_RING_IDX save = f->page->rsp_cons;
    guest_get(f->page, &h, sizeof(h));
    if (guest_avail(f->page) < h.len || h.len > XENSTORE_PAYLOAD_MAX) {
        f->page->rsp_cons = save;
        return 0;
    }
    r->h = h;
    guest_get(f->page, r->body, h.len);
    r->body[h.len] = '\0';
    return 1;
}

static uint64_t notified(struct fake *f)
{
    uint64_t v = 0;
    if (read(f->notify_fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

/* ---- tests ---- */

static struct tc t0;

static void introduce(unsigned domid)
{
    char id[16];
    snprintf(id, sizeof(id), "%u", domid);
    REQ(&t0, XS_INTRODUCE, 0, id, "4660", "7");
    char path[64], perm[16];
    snprintf(path, sizeof(path), "/local/domain/%u", domid);
    snprintf(perm, sizeof(perm), "n%u", domid);
    REQ(&t0, XS_MKDIR, 0, path);
    REQ(&t0, XS_SET_PERMS, 0, path, perm);
}

static void test_basic_ring(void)
{
    struct fake *f = &doms[0];
    introduce(5);
    CHECK("INTRODUCE calls map hook with gfn and evtchn",
          f->mapped == 1 && f->gfn == 4660 && f->evtchn == 7);
    CHECK("ring indexes reset on introduce",
          f->page->req_cons == 0 && f->page->req_prod == 0 && f->page->rsp_prod == 0);
    CHECK("server features advertised",
          f->page->server_features ==
              (XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR));
    REQ(&t0, XS_IS_DOMAIN_INTRODUCED, 0, "5");
    CHECK("ring domain introduced", !strcmp(R.body, "T"));
    notified(f);
    guest_send(f, XS_WRITE, "name", NULL);
    /* WRITE "name" with value "" : our helper sends path + NUL only. */
    xs_ring_kick(d, 5);
    struct reply r;
    CHECK("reply in response ring",
          guest_msg(f, &r) && r.h.type == XS_WRITE && !strcmp(r.body, "OK"));
    CHECK("daemon notified the guest", notified(f) > 0);
    CHECK("request consumed", f->page->req_cons == f->page->req_prod);
    guest_send(f, XS_READ, "/local/domain/5/name", NULL);
    xs_ring_kick(d, 5);
    CHECK("absolute read works", guest_msg(f, &r) && r.h.type == XS_READ && r.h.len == 0);
    guest_send(f, XS_READ, "/tool/xenstored", NULL);
    xs_ring_kick(d, 5);
    CHECK("guest cannot read dom0 nodes",
          guest_msg(f, &r) && r.h.type == XS_ERROR && !strcmp(r.body, "EACCES"));
}

static void test_wrap_and_full(void)
{
    struct fake *f = &doms[0];
    int ok = 0;
    /* 300 round trips move ~25 KiB through each 1 KiB ring: many wraps. */
    for (int i = 0; i < 300; i++) {
        guest_send(f, XS_GET_DOMAIN_PATH, "5", NULL);
        xs_ring_kick(d, 5);
        struct reply r;
        ok += guest_msg(f, &r) && !strcmp(r.body, "/local/domain/5");
    }
    CHECK("300 round trips across ring wrap", ok == 300);

    /* Indexes close to 2^32: unsigned wrap of the free-running counters. */
    xs_ring_kick(d, 5);
    f->page->req_cons = f->page->req_prod = 0xFFFFFFF0u;
    f->page->rsp_cons = f->page->rsp_prod = 0xFFFFFFF8u;
    ok = 0;
    for (int i = 0; i < 20; i++) {
        guest_send(f, XS_GET_DOMAIN_PATH, "5", NULL);
        xs_ring_kick(d, 5);
        struct reply r;
        ok += guest_msg(f, &r) && !strcmp(r.body, "/local/domain/5");
    }
    CHECK("index wrap at 2^32", ok == 20 && f->page->error == XENSTORE_ERROR_NONE);

    /* The guest does not read: replies stop when the ring is full, input
     * stops at the outstanding quota, nothing is lost. */
    for (int i = 0; i < 30; i++) {
        guest_send(f, XS_READ, "/local/domain/5/name", NULL); /* 16+21 bytes each */
        xs_ring_kick(d, 5);
    }
    CHECK("response ring full, not overrun", guest_avail(f->page) <= XENSTORE_RING_SIZE);
    struct reply r;
    int got = 0;
    for (int i = 0; i < 200 && got < 30; i++) {
        while (guest_msg(f, &r))
            got += r.h.type == XS_READ;
        xs_ring_kick(d, 5);
    }
    CHECK("all 30 replies arrive once the guest reads", got == 30);
}

static void test_watch_into_ring(void)
{
    struct fake *f = &doms[0];
    struct reply r;
    guest_send(f, XS_WATCH, "device", "tok");
    xs_ring_kick(d, 5);
    int ack = guest_msg(f, &r) && r.h.type == XS_WATCH;
    int ev = guest_msg(f, &r) && r.h.type == XS_WATCH_EVENT && !strcmp(r.body, "device");
    CHECK("watch ack and initial event through ring", ack && ev);
    WR(&t0, 0, "/local/domain/5/device/vbd/768", "x");
    CHECK("dom0 write delivers event into ring without a kick",
          guest_msg(f, &r) && r.h.type == XS_WATCH_EVENT &&
              !strcmp(r.body, "device/vbd/768"));
}

/* What Linux's drivers/xen/manage.c does for `xl shutdown`: a relative
 * watch on control/shutdown, then read + acknowledge in a transaction. */
static void test_linux_shutdown(void)
{
    struct fake *f = &doms[0];
    struct reply r;
    REQ(&t0, XS_MKDIR, 0, "/local/domain/5/control");
    guest_send(f, XS_WRITE, "control/feature-poweroff", NULL);
    guest_send(f, XS_WATCH, "control/shutdown", "shutdown-tok");
    xs_ring_kick(d, 5);
    int ok = guest_msg(f, &r) && r.h.type == XS_WRITE;
    ok &= guest_msg(f, &r) && r.h.type == XS_WATCH;
    ok &= guest_msg(f, &r) && r.h.type == XS_WATCH_EVENT &&
          !strcmp(r.body, "control/shutdown");
    CHECK("linux: feature write, watch, initial event", ok);
    WR(&t0, 0, "/local/domain/5/control/shutdown", "poweroff");
    CHECK("linux: shutdown request arrives as a watch event",
          guest_msg(f, &r) && r.h.type == XS_WATCH_EVENT &&
              !strcmp(r.body, "control/shutdown") &&
              !strcmp(r.body + strlen(r.body) + 1, "shutdown-tok"));
    guest_send_tx(f, XS_TRANSACTION_START, 0, "", 1);
    xs_ring_kick(d, 5);
    uint32_t tx = guest_msg(f, &r) && r.h.type == XS_TRANSACTION_START
                      ? (uint32_t)strtoul(r.body, NULL, 10)
                      : 0;
    guest_send_tx(f, XS_READ, tx, "control/shutdown", 17);
    guest_send_tx(f, XS_WRITE, tx, "control/shutdown", 17); /* value "" */
    guest_send_tx(f, XS_TRANSACTION_END, tx, "T", 2);
    xs_ring_kick(d, 5);
    ok = tx && guest_msg(f, &r) && r.h.type == XS_READ && !strcmp(r.body, "poweroff");
    ok &= guest_msg(f, &r) && r.h.type == XS_WRITE;
    /* As Xen, the commit's watch events go out before its reply. */
    int ev = guest_msg(f, &r) && r.h.type == XS_WATCH_EVENT &&
             !strcmp(r.body, "control/shutdown");
    ok &= guest_msg(f, &r) && r.h.type == XS_TRANSACTION_END && !strcmp(r.body, "OK");
    CHECK("linux: read + acknowledge in a transaction commits", ok);
    CHECK("linux: own watch fires on the acknowledgement (before the reply, as Xen)", ev);
    REQ(&t0, XS_READ, 0, "/local/domain/5/control/shutdown");
    CHECK("linux: dom0 sees the acknowledgement", R.h.type == XS_READ && R.h.len == 0);
}

static void test_target(void)
{
    struct fake *f = &doms[0];
    struct reply r;
    introduce(6);
    WR(&t0, 0, "/local/domain/6/secret", "s");
    REQ(&t0, XS_SET_PERMS, 0, "/local/domain/6/secret", "n6");
    guest_send(f, XS_READ, "/local/domain/6/secret", NULL);
    xs_ring_kick(d, 5);
    CHECK("no access before SET_TARGET", guest_msg(f, &r) && r.h.type == XS_ERROR);
    REQ(&t0, XS_SET_TARGET, 0, "5", "6");
    CHECK("SET_TARGET ok", is_ok(XS_SET_TARGET));
    guest_send(f, XS_READ, "/local/domain/6/secret", NULL);
    xs_ring_kick(d, 5);
    CHECK("target's nodes accessible",
          guest_msg(f, &r) && r.h.type == XS_READ && !strcmp(r.body, "s"));
}

static void test_hostile(void)
{
    struct fake *f5 = &doms[0], *f6 = &doms[1];
    struct reply r;
    f6->page->req_prod = f6->page->req_cons + 5000;
    xs_ring_kick(d, 6);
    CHECK("bad req indexes -> ignored with RINGIDX",
          f6->page->error == XENSTORE_ERROR_RINGIDX);
    guest_send(f5, XS_GET_DOMAIN_PATH, "5", NULL);
    xs_ring_kick(d, 5);
    CHECK("other domain unaffected",
          guest_msg(f5, &r) && !strcmp(r.body, "/local/domain/5"));

    /* Reconnect clears it. */
    f6->page->connection = XENSTORE_RECONNECT;
    xs_ring_kick(d, 6);
    CHECK("reconnect resets ring and error", f6->page->connection == XENSTORE_CONNECTED &&
                                                 f6->page->error == XENSTORE_ERROR_NONE &&
                                                 f6->page->req_prod == 0);
    guest_send(f6, XS_GET_DOMAIN_PATH, "6", NULL);
    xs_ring_kick(d, 6);
    CHECK("served again after reconnect",
          guest_msg(f6, &r) && !strcmp(r.body, "/local/domain/6"));

    f6->page->rsp_cons = f6->page->rsp_prod + 4000; /* consumer ahead of producer */
    guest_send(f6, XS_GET_DOMAIN_PATH, "6", NULL);
    xs_ring_kick(d, 6);
    CHECK("bad rsp indexes -> ignored", f6->page->error == XENSTORE_ERROR_RINGIDX);

    f6->page->connection = XENSTORE_RECONNECT;
    xs_ring_kick(d, 6);
    struct xsd_sockmsg h = {XS_READ, 1, 0, XENSTORE_PAYLOAD_MAX + 1};
    guest_put(f6->page, &h, sizeof(h));
    xs_ring_kick(d, 6);
    CHECK("oversized payload -> ignored with PROTO",
          f6->page->error == XENSTORE_ERROR_PROTO);

    /* Random garbage indexes many times: never outside the page (ASan). */
    unsigned seed = 99;
    for (int i = 0; i < 2000; i++) {
        f6->page->connection = XENSTORE_RECONNECT;
        xs_ring_kick(d, 6);
        seed = seed * 1103515245u + 12345u;
        f6->page->req_prod = seed;
        seed = seed * 1103515245u + 12345u;
        f6->page->req_cons = seed % 3 ? f6->page->req_prod - (seed % 1100) : seed;
        seed = seed * 1103515245u + 12345u;
        f6->page->rsp_cons = seed;
        f6->page->rsp_prod = seed % 2 ? seed + (seed >> 20) % 1100 : seed;
        for (int k = 0; k < XENSTORE_RING_SIZE; k++)
            f6->page->req[k] = (char)(seed >> (k % 24));
        xs_ring_kick(d, 6);
    }
    guest_send(f5, XS_GET_DOMAIN_PATH, "5", NULL);
    xs_ring_kick(d, 5);
    CHECK("2000 garbage rings survived",
          guest_msg(f5, &r) && !strcmp(r.body, "/local/domain/5"));
}

static void test_release(void)
{
    REQ(&t0, XS_WATCH, 0, "@releaseDomain", "rel");
    tc_drain(&t0);
    t0.nev = 0;
    REQ(&t0, XS_RELEASE, 0, "6");
    CHECK("RELEASE ring domain", is_ok(XS_RELEASE));
    CHECK("unmap hook called", doms[1].unmapped == 1 && doms[1].page == NULL);
    CHECK("@releaseDomain fired", tc_has_event(&t0, "@releaseDomain|rel"));
    CHECK("kick after release ENOENT", xs_ring_kick(d, 6) == -ENOENT);
    REQ(&t0, XS_IS_DOMAIN_INTRODUCED, 0, "6");
    CHECK("released domain not introduced", !strcmp(R.body, "F"));
    void *page = aligned_alloc(4096, 4096);
    memset(page, 0, 4096);
    CHECK("attach domid 0 EINVAL", xs_ring_attach(d, 0, page, -1, -1) == -EINVAL);
    CHECK("attach existing EEXIST", xs_ring_attach(d, 5, page, -1, -1) == -EEXIST);
    CHECK("direct attach", xs_ring_attach(d, 9, page, -1, -1) == 0);
    struct fake f9 = {.page = page, .notify_fd = -1, .kick_fd = -1, .domid = 9};
    guest_send(&f9, XS_GET_DOMAIN_PATH, "9", NULL);
    xs_ring_kick(d, 9);
    struct reply r;
    CHECK("direct-attached ring works",
          guest_msg(&f9, &r) && !strcmp(r.body, "/local/domain/9"));
    CHECK("xs_domain_release", xs_domain_release(d, 9) == 0);
    free(page);
}

/* The kick eventfd through the real epoll loop, in a thread. */
static int stop_fd;
static void *run_loop(void *arg)
{
    (void)arg;
    xs_daemon_run(d, stop_fd);
    return NULL;
}

static void test_loop_kick(void)
{
    struct fake *f = &doms[0];
    stop_fd = eventfd(0, EFD_NONBLOCK);
    pthread_t th;
    pthread_create(&th, NULL, run_loop, NULL);
    notified(f);
    guest_send(f, XS_GET_DOMAIN_PATH, "5", NULL);
    uint64_t one = 1;
    CHECK("kick written", write(f->kick_fd, &one, 8) == 8);
    struct reply r;
    int got = 0;
    for (int i = 0; i < 2000 && !got; i++) {
        usleep(1000);
        got = guest_msg(f, &r);
    }
    CHECK("reply via kick fd and epoll loop", got && !strcmp(r.body, "/local/domain/5"));
    /* The loop's thread signals after the reply is in the ring: it may not
     * have yet when the reply is seen (a CI run under load caught it). */
    uint64_t n = 0;
    for (int i = 0; i < 2000 && !n; i++) {
        n = notified(f);
        if (!n)
            usleep(1000);
    }
    CHECK("notify fd signalled", n > 0);
    CHECK("stop written", write(stop_fd, &one, 8) == 8);
    pthread_join(th, NULL);
    close(stop_fd);
}

int main(void)
{
    d = xs_daemon_new(NULL);
    CHECK("daemon created", d != NULL);
    if (!d)
        return 1;
    doms[0].domid = 5;
    doms[1].domid = 6;
    struct xs_ring_hooks h = {.opaque = NULL, .map = fake_map, .unmap = fake_unmap};
    xs_daemon_set_ring_hooks(d, &h);
    tc_open(&t0, d, 0);
    test_basic_ring();
    test_wrap_and_full();
    test_watch_into_ring();
    test_linux_shutdown();
    test_target();
    test_hostile();
    test_release();
    test_loop_kick();
    xs_conn_free(t0.c);
    xs_daemon_free(d);
    CHECK("unmap on daemon teardown", doms[0].unmapped == 1);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
