/* blkback's xenbus side and domusd's disk nodes against the xenstore core
 * (served in a thread on a temporary socket), with a front end played by
 * this test: no guest, no KVM (fake hv_ops).  Checks the nodes and
 * permissions domusd writes, the back end's InitWait/Connected handshake,
 * a request served through the ring, and that impossible ring indexes make
 * the back end close (state 5). */
#include "domus/blkback.h"
#include "domus/dsd_disk.h"
#include "domus/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gnt_test.h"
#include "xsd_harness.h"

#define GT_GPA 0x100000ULL
#define RING_GPA 0x101000ULL
#define DATA_GPA 0x102000ULL
#define RING4_GPA 0x200000ULL

static char dir[] = "/tmp/test_blkxs_XXXXXX";
static char img[160];

static void test_disk_check(void)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    char err[512];

    cfg->n_disks = 2;
    snprintf(cfg->disks[0], sizeof(cfg->disks[0]), "disk.img,raw,xvdb,rw");
    snprintf(cfg->disks[1], sizeof(cfg->disks[1]), "vdev=xvdc,access=ro,target=%s", img);
    CHECK("disk check: disks need xenstore",
          dsd_disk_check(false, cfg, dir, err, sizeof(err)) == -EOPNOTSUPP);
    CHECK("disk check: relative target made absolute, canonical form",
          dsd_disk_check(true, cfg, dir, err, sizeof(err)) == 0 &&
              strstr(cfg->disks[0], dir) &&
              !strncmp(cfg->disks[0], "format=raw,vdev=xvdb,access=rw", 30));
    char arg[256], want[256];
    snprintf(want, sizeof(want), "51744:r:%s", img);
    CHECK("disk arg for domus-vm",
          dsd_disk_arg(cfg, 1, arg, sizeof(arg)) == 0 && !strcmp(arg, want));
    snprintf(cfg->disks[1], sizeof(cfg->disks[1]), "%s,raw,xvdb,ro", img);
    CHECK("disk check: the same vdev twice",
          dsd_disk_check(true, cfg, dir, err, sizeof(err)) == -EEXIST &&
              strstr(err, "disk 1"));
    snprintf(cfg->disks[1], sizeof(cfg->disks[1]), "%s/missing.img,raw,xvdc,ro", dir);
    CHECK("disk check: a missing image names the disk",
          dsd_disk_check(true, cfg, dir, err, sizeof(err)) == -ENOENT &&
              strstr(err, "disk 1: "));
    snprintf(cfg->disks[1], sizeof(cfg->disks[1]), "%s,qcow2,xvdc,ro", img);
    CHECK("disk check: a bad spec names the disk",
          dsd_disk_check(true, cfg, dir, err, sizeof(err)) == -EINVAL &&
              strstr(err, "disk 1 '"));
    free(cfg);
}

static void test_nodes(void)
{
    struct xlcfg *cfg = calloc(1, sizeof(*cfg));
    cfg->n_disks = 1;
    snprintf(cfg->disks[0], sizeof(cfg->disks[0]),
             "format=raw,vdev=xvdb,access=ro,target=%s", img);
    CHECK("nodes: written", dsd_disk_nodes(&c, 5, cfg) == 0);
    const char *f = "/local/domain/5/device/vbd/51728",
               *b = "/local/domain/0/backend/vbd/5/51728";
    char p[160];
#define V(dir, rel, want) (snprintf(p, sizeof(p), "%s/%s", dir, rel), value_is(p, want))
    CHECK("nodes: front end", V(f, "backend", b) && V(f, "backend-id", "0") &&
                                  V(f, "state", "1") && V(f, "virtual-device", "51728") &&
                                  V(f, "device-type", "disk"));
    CHECK("nodes: back end",
          V(b, "frontend", f) && V(b, "frontend-id", "5") && V(b, "online", "1") &&
              V(b, "state", "1") && V(b, "params", img) && V(b, "mode", "r") &&
              V(b, "type", "phy") && V(b, "dev", "xvdb") && V(b, "removable", "0") &&
              V(b, "bootable", "1") && V(b, "device-type", "disk") &&
              V(b, "discard-enable", "1"));
    CHECK("nodes: the guest owns its front end, Domain 0 reads it",
          perms_are(f, "n5,r0") &&
              (snprintf(p, sizeof(p), "%s/state", f), perms_are(p, "n5,r0")));
    CHECK("nodes: Domain 0 owns the back end, the guest reads it",
          perms_are(b, "n0,r5") &&
              (snprintf(p, sizeof(p), "%s/params", b), perms_are(p, "n0,r5")));
    dsd_disk_nodes_rm(&c, 5);
    CHECK("nodes: removed", absent("/local/domain/0/backend/vbd/5"));
    free(cfg);
}

/* ---- a front end played by the test ---- */

static int f_route_fd(struct domain *d, uint32_t port, int fd)
{
    (void)d, (void)port, (void)fd;
    return 0;
}
static int f_route_rm(struct domain *d, uint32_t port)
{
    (void)d, (void)port;
    return 0;
}
static struct hv_ops ops;
static unsigned delivered;
static int f_deliver(struct domain *d, uint32_t port, uint32_t vcpu)
{
    (void)d, (void)port, (void)vcpu;
    __atomic_add_fetch(&delivered, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void grant(struct domain *d, grant_ref_t ref, uint64_t gpa)
{
    test_grant(d, GT_GPA, ref, gpa, 0, false);
}

static void test_backend(void)
{
    struct domain *d = calloc(1, sizeof(*d));
    struct blkback *bk = NULL;
    char err[256];
    const char *f = "/local/domain/6/device/vbd/51712",
               *b = "/local/domain/0/backend/vbd/6/51712";
    char p[160];

    ops.route_eventfd = f_route_fd;
    ops.route_remove = f_route_rm;
    ops.deliver = f_deliver;
    domain_init(d, 6, "fe", 1, &ops);
    if (gmem_init(&d->mem, 32ULL << 20) < 0 || gnttab_set_frame(d, 0, GT_GPA) < 0)
        abort();
    struct blkback_cfg cfg = {51712, true, img, sock};
    CHECK("backend: started", blkback_start(d, &cfg, &bk, err, sizeof(err)) == 0);
    usleep(100000);
    snprintf(p, sizeof(p), "%s/state", b);
    char *v = NULL;
    CHECK("backend: waits for the toolstack's nodes", xsc_read(&c, p, &v) == -ENOENT);
    free(v);
    struct xlcfg *xc = calloc(1, sizeof(*xc));
    xc->n_disks = 1;
    snprintf(xc->disks[0], sizeof(xc->disks[0]), "%s,raw,xvda,rw", img);
    dsd_disk_nodes(&c, 6, xc);
    free(xc);
    CHECK("backend: InitWait once the nodes exist", wait_value(p, "2"));
    CHECK("backend: advertises the disk",
          V(b, "sectors", "2048") && V(b, "sector-size", "512") && V(b, "info", "0") &&
              V(b, "feature-flush-cache", "1") && V(b, "feature-discard", "1") &&
              V(b, "max-ring-page-order", "4"));
    /* The front end: an unbound port for Domain 0, the ring granted. */
    pthread_mutex_lock(&d->lock);
    int port = evtchn_alloc(d);
    d->ports[port].state = EVS_UNBOUND;
    d->ports[port].remote_dom = 0;
    pthread_mutex_unlock(&d->lock);
    blkif_sring_t *s = gmem_ptr(&d->mem, RING_GPA, 4096);
    blkif_front_ring_t front;
    SHARED_RING_INIT(s);
    FRONT_RING_INIT(&front, s, 4096);
    grant(d, 8, RING_GPA);
    grant(d, 9, DATA_GPA);
    char num[16];
    snprintf(p, sizeof(p), "%s/ring-ref", f);
    xsc_write(&c, p, "8");
    snprintf(p, sizeof(p), "%s/event-channel", f);
    snprintf(num, sizeof(num), "%d", port);
    xsc_write(&c, p, num);
    snprintf(p, sizeof(p), "%s/protocol", f);
    xsc_write(&c, p, "x86_64-abi");
    snprintf(p, sizeof(p), "%s/state", f);
    xsc_write(&c, p, "3");
    snprintf(p, sizeof(p), "%s/state", b);
    CHECK("backend: Connected after the front end is Initialised", wait_value(p, "4"));
    CHECK("backend: the port is bound to the back end",
          d->ports[port].state == EVS_INTERDOMAIN && d->ports[port].backend_fd >= 0);
    /* One read request; the kick is the eventfd the port was bound to. */
    blkif_request_t *r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
    *r = (blkif_request_t){.operation = BLKIF_OP_READ, .nr_segments = 1, .id = 77};
    r->seg[0] = (struct blkif_request_segment){9, 0, 7};
    __atomic_store_n(&s->req_prod, front.req_prod_pvt, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(d->ports[port].backend_fd, &one, sizeof(one)) != sizeof(one))
        printf("# kick failed\n");
    for (int i = 0; i < 300 && __atomic_load_n(&s->rsp_prod, __ATOMIC_ACQUIRE) != 1; i++)
        usleep(10000);
    blkif_response_t *rsp = RING_GET_RESPONSE(&front, 0);
    CHECK("backend: a request is answered and the guest notified",
          s->rsp_prod == 1 && rsp->id == 77 && rsp->status == BLKIF_RSP_OKAY &&
              delivered >= 1);
    /* Impossible indexes: the back end closes. */
    __atomic_store_n(&s->req_prod, front.req_prod_pvt + 1000, __ATOMIC_RELEASE);
    if (write(d->ports[port].backend_fd, &one, sizeof(one)) != sizeof(one))
        printf("# kick failed\n");
    CHECK("backend: a producer far ahead makes it Closing", wait_value(p, "5"));
    CHECK("backend: and unbinds the port", d->ports[port].state == EVS_UNBOUND);
    snprintf(p, sizeof(p), "%s/state", f);
    xsc_write(&c, p, "6");
    snprintf(p, sizeof(p), "%s/state", b);
    CHECK("backend: Closed after the front end", wait_value(p, "6"));
    snprintf(p, sizeof(p), "%s/state", f);
    xsc_write(&c, p, "1");
    snprintf(p, sizeof(p), "%s/state", b);
    CHECK("backend: InitWait again when the front end re-initialises",
          wait_value(p, "2"));
    /* A hostile front end: garbage ring-ref and event channel. */
    snprintf(p, sizeof(p), "%s/ring-ref", f);
    xsc_write(&c, p, "99999999999999999999");
    snprintf(p, sizeof(p), "%s/state", f);
    xsc_write(&c, p, "3");
    snprintf(p, sizeof(p), "%s/state", b);
    CHECK("backend: a bad ring-ref makes it Closing", wait_value(p, "5"));
    /* ring-page-order beyond 4, then a 4-page ring with one bad grant, then
     * a good one: each time Closed and InitWait again first. */
    const char *orders[3] = {"5", "2", "2"};
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof(p), "%s/state", f);
        xsc_write(&c, p, "6");
        snprintf(p, sizeof(p), "%s/state", b);
        wait_value(p, "6");
        snprintf(p, sizeof(p), "%s/state", f);
        xsc_write(&c, p, "1");
        snprintf(p, sizeof(p), "%s/state", b);
        wait_value(p, "2");
        snprintf(p, sizeof(p), "%s/ring-page-order", f);
        xsc_write(&c, p, orders[k]);
        for (unsigned i = 0; i < 4; i++) {
            grant(d, 20 + i, RING4_GPA + i * 4096ULL);
            snprintf(p, sizeof(p), "%s/ring-ref%u", f, i);
            snprintf(num, sizeof(num), "%u", k == 1 && i == 2 ? 9999 : 20 + i);
            xsc_write(&c, p, num);
        }
        s = gmem_ptr(&d->mem, RING4_GPA, 4 * 4096);
        SHARED_RING_INIT(s);
        FRONT_RING_INIT(&front, s, 4 * 4096);
        snprintf(p, sizeof(p), "%s/state", f);
        xsc_write(&c, p, "3");
        snprintf(p, sizeof(p), "%s/state", b);
        if (k == 0)
            CHECK("backend: ring-page-order 5 makes it Closing", wait_value(p, "5"));
        else if (k == 1)
            CHECK("backend: a bad ring-ref2 makes it Closing", wait_value(p, "5"));
        else
            CHECK("backend: Connected with a 4-page ring", wait_value(p, "4"));
    }
    for (unsigned i = 0; i < 100; i++) {
        r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
        *r = (blkif_request_t){
            .operation = BLKIF_OP_READ, .nr_segments = 1, .id = 300 + i};
        r->seg[0] = (struct blkif_request_segment){9, 0, 7};
    }
    __atomic_store_n(&s->req_prod, front.req_prod_pvt, __ATOMIC_RELEASE);
    if (write(d->ports[port].backend_fd, &one, sizeof(one)) != sizeof(one))
        printf("# kick failed\n");
    for (int i = 0; i < 300 && __atomic_load_n(&s->rsp_prod, __ATOMIC_ACQUIRE) != 100;
         i++)
        usleep(10000);
    unsigned ok = 0;
    for (RING_IDX i = 0; i < 100; i++)
        ok += RING_GET_RESPONSE(&front, i)->status == BLKIF_RSP_OKAY;
    CHECK("backend: 100 requests answered on the 4-page ring",
          s->rsp_prod == 100 && ok == 100);
    /* Quiesced (a save's or migration's last round): a request waits, with
     * neither the ring read nor memory written, until the resume. */
    CHECK("backend: quiesced", blkback_quiesce(bk) == 0);
    r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
    *r = (blkif_request_t){.operation = BLKIF_OP_READ, .nr_segments = 1, .id = 500};
    r->seg[0] = (struct blkif_request_segment){9, 0, 7};
    __atomic_store_n(&s->req_prod, front.req_prod_pvt, __ATOMIC_RELEASE);
    if (write(d->ports[port].backend_fd, &one, sizeof(one)) != sizeof(one))
        printf("# kick failed\n");
    usleep(300000);
    CHECK("backend: a quiesced back end leaves a request unanswered",
          __atomic_load_n(&s->rsp_prod, __ATOMIC_ACQUIRE) == 100);
    blkback_resume(bk);
    for (int i = 0; i < 300 && __atomic_load_n(&s->rsp_prod, __ATOMIC_ACQUIRE) != 101;
         i++)
        usleep(10000);
    CHECK("backend: answered once resumed",
          s->rsp_prod == 101 && RING_GET_RESPONSE(&front, 100)->id == 500);
    CHECK("backend: quiesced again", blkback_quiesce(bk) == 0);
    blkback_stop(bk);
    CHECK("backend: stopped", 1);
    gmem_destroy(&d->mem);
    free(d);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    snprintf(img, sizeof(img), "%s/disk.img", dir);
    FILE *fi = fopen(img, "w");
    if (!fi || ftruncate(fileno(fi), 1 << 20) < 0)
        return 1;
    fclose(fi);
    if (xsd_start(dir, "blkxs") < 0)
        return 1;
    test_disk_check();
    test_nodes();
    test_backend();
    xsd_stop();
    unlink(img);
    rmdir(dir);
    return failures ? 1 : 0;
}
