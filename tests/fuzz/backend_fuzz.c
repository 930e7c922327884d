/* libFuzzer target: the block and network back ends' request paths
 * (blkback_do_ring, netback_do_tx, netback_rx_frame) against a hostile
 * front end that owns the shared rings, the grant entries and the pages.
 *
 * One domain (7) whose memory holds a grant table frame, a blkif ring, a
 * netif tx ring, a netif rx ring and NDATA data pages, all zeroed for each
 * input; a memfd image for blkback; a non-blocking socketpair end as the
 * tap (drained after each transmit).  The input is a list of records
 * (fuzz_util.h):
 *   byte 0: op;  bytes 1-2: length n (little endian, capped by what is
 *   left);  n bytes: the payload
 * ops (op % 11):
 *   0  grant entries: (ref, flags, frame) byte triples.  flags bit 0-1:
 *      permit_access / none / accept_transfer / transfer_completed type,
 *      bit 2 readonly, bit 3 granted to domain 3 instead of 0; frame:
 *      0..NDATA-1 a data page, then the blk, tx, rx ring pages, the grant
 *      table, a frame outside RAM; above: odd the last page of RAM, even
 *      another frame outside RAM
 *   1  page bytes: page index, offset (2 bytes), then the bytes
 *   2  blkif requests (sizeof(blkif_request_t) bytes each) queued, req_prod
 *      pushed;  3  netif tx requests (12 bytes each);  4  netif rx requests
 *      (8 bytes each)
 *   5  a shared index set raw: selector byte (ring = sel % 3, field = sel /
 *      3 % 4: req_prod, req_event, rsp_prod, rsp_event), 4-byte value
 *   6  blkback_do_ring;  7  netback_do_tx;  8  netback_rx_frame: a 10-byte
 *      virtio_net_hdr, a 17-bit length, then the data (patterned when short)
 *   9  rings re-initialised (selector byte: bit per ring);  10 blkback's
 *      io flags (bit 0 readwrite, bit 1 discard)
 * blkback runs on io_uring with BLK_SLOTS slots (synchronously where
 * io_uring is unavailable), so its answers may come in a later run.
 * A back end answering -EPROTO gets its ring re-initialised, as a
 * disconnect and reconnect would (blkback's I/O drained first).  At the
 * end every back end runs once and blkback's I/O is drained.
 *
 * Build: make build/fuzz/backend_fuzz   (also `make fuzz`)
 * Run:   build/fuzz/backend_fuzz -max_total_time=60 build/fuzz/corpus-backend
 *        (tests/proto/backend-fuzz.sh seeds the corpus) */
#include "domus/blkback.h"
#include "domus/netback.h"
#include "domus/xenbus_be.h" /* xen_mb() and friends for the ring macros */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PG 4096u
#define GT_GPA 0x100000ULL
#define BLK_GPA 0x101000ULL
#define TX_GPA 0x102000ULL
#define RX_GPA 0x103000ULL
#define DATA_GPA 0x110000ULL
#define NDATA 12
#define RAM (32ULL << 20) /* GMEM_MIN_RAM */
#define LAST_GPA (RAM - PG)
#define IMG_SECTORS 256
#define BLK_SLOTS 8 /* blkback's io_uring slots: fewer than the ring's 32 */

static struct domain *dom;
static struct blkback_io bio;
static struct netback_io nio;
static int peer = -1;

static blkif_sring_t *bs;
static blkif_front_ring_t bf;
static blkif_back_ring_t bb;
static netif_tx_sring_t *ts;
static netif_tx_front_ring_t tf;
static netif_tx_back_ring_t tb;
static netif_rx_sring_t *rs;
static netif_rx_front_ring_t rf;
static netif_rx_back_ring_t rb;

static uint8_t frame[2 * 65536];

static void *gpa_ptr(uint64_t gpa)
{
    return gmem_ptr(&dom->mem, gpa, PG);
}

static int init_once(void)
{
    int sv[2];

    dom = calloc(1, sizeof(*dom));
    if (!dom)
        return -1;
    domain_init(dom, 7, "fuzz", 1, NULL);
    if (gmem_init(&dom->mem, RAM) < 0 || gnttab_set_frame(dom, 0, GT_GPA) < 0)
        return -1;
    bio = (struct blkback_io){.d = dom,
                              .fd = memfd_create("img", 0),
                              .sectors = IMG_SECTORS,
                              .readwrite = true,
                              .discard = true};
    if (bio.fd < 0 || ftruncate(bio.fd, IMG_SECTORS * 512) < 0)
        return -1;
    if (blkback_aio_init(&bio, BLK_SLOTS) < 0) /* else the synchronous path */
        bio.aio = NULL;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0 ||
        fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
        return -1;
    nio = (struct netback_io){.d = dom, .tap_fd = sv[0]};
    peer = sv[1];
    bs = gpa_ptr(BLK_GPA);
    ts = gpa_ptr(TX_GPA);
    rs = gpa_ptr(RX_GPA);
    return 0;
}

static void reset_rings(unsigned which)
{
    if (which & 1) {
        bool notify;
        blkback_drain(&bio, &bb, &notify); /* as a disconnect does */
        SHARED_RING_INIT(bs);
        FRONT_RING_INIT(&bf, bs, PG);
        BACK_RING_INIT(&bb, bs, PG);
    }
    if (which & 2) {
        SHARED_RING_INIT(ts);
        FRONT_RING_INIT(&tf, ts, PG);
        BACK_RING_INIT(&tb, ts, PG);
    }
    if (which & 4) {
        SHARED_RING_INIT(rs);
        FRONT_RING_INIT(&rf, rs, PG);
        BACK_RING_INIT(&rb, rs, PG);
    }
}

static void set_grants(const uint8_t *p, size_t n)
{
    static const uint16_t types[4] = {GTF_permit_access, GTF_invalid, GTF_accept_transfer,
                                      GTF_transfer_completed};
    grant_entry_v1_t *gt = gpa_ptr(GT_GPA);

    for (; n >= 3; p += 3, n -= 3) {
        grant_entry_v1_t *e = &gt[p[0]]; /* refs 0..255 of the frame's 512 */
        uint64_t gpa;
        e->flags = types[p[1] & 3] | (p[1] & 4 ? GTF_readonly : 0);
        e->domid = p[1] & 8 ? 3 : 0;
        if (p[2] < NDATA)
            gpa = DATA_GPA + p[2] * (uint64_t)PG;
        else if (p[2] == NDATA)
            gpa = BLK_GPA;
        else if (p[2] == NDATA + 1)
            gpa = TX_GPA;
        else if (p[2] == NDATA + 2)
            gpa = RX_GPA;
        else if (p[2] == NDATA + 3)
            gpa = GT_GPA;
        else if (p[2] == NDATA + 4)
            gpa = 0xF0000000ULL;
        else if (p[2] & 1)
            gpa = LAST_GPA; /* RAM, zeroed for each input too */
        else
            gpa = (uint64_t)p[2] << 24; /* beyond RAM */
        e->frame = (uint32_t)(gpa >> 12);
    }
}

static void put_page(const uint8_t *p, size_t n)
{
    if (n < 3)
        return;
    size_t off = (p[1] | (size_t)p[2] << 8) % PG, len = n - 3;
    if (len > PG - off)
        len = PG - off;
    memcpy((uint8_t *)gpa_ptr(DATA_GPA + (p[0] % NDATA) * (uint64_t)PG) + off, p + 3,
           len);
}

/* Queues n bytes as raw requests (the last padded with zeros) at the front
 * end's req_prod_pvt and pushes them. */
#define QUEUE(front, p, n)                                                               \
    do {                                                                                 \
        size_t sz_ = sizeof(*RING_GET_REQUEST(&(front), 0));                             \
        for (size_t o_ = 0; o_ < (n); o_ += sz_) {                                       \
            void *r_ = RING_GET_REQUEST(&(front), (front).req_prod_pvt++);               \
            memset(r_, 0, sz_);                                                          \
            memcpy(r_, (p) + o_, (n)-o_ < sz_ ? (n)-o_ : sz_);                           \
        }                                                                                \
        RING_PUSH_REQUESTS(&(front));                                                    \
    } while (0)

static void set_index(const uint8_t *p, size_t n)
{
    if (n < 5)
        return;
    uint32_t v;
    memcpy(&v, p + 1, 4);
    RING_IDX *f[3][4] = {
        {&bs->req_prod, &bs->req_event, &bs->rsp_prod, &bs->rsp_event},
        {&ts->req_prod, &ts->req_event, &ts->rsp_prod, &ts->rsp_event},
        {&rs->req_prod, &rs->req_event, &rs->rsp_prod, &rs->rsp_event},
    };
    *f[p[0] % 3][p[0] / 3 % 4] = v;
    if (p[0] % 3 == 0 && p[0] / 3 % 4 == 0)
        bf.req_prod_pvt = v; /* the front end goes on from there */
    else if (p[0] % 3 == 1 && p[0] / 3 % 4 == 0)
        tf.req_prod_pvt = v;
    else if (p[0] % 3 == 2 && p[0] / 3 % 4 == 0)
        rf.req_prod_pvt = v;
}

static void run_blk(void)
{
    bool notify;
    if (blkback_do_ring(&bio, &bb, &notify) < 0)
        reset_rings(1);
}

static void run_tx(void)
{
    static uint8_t sink[sizeof(struct virtio_net_hdr) + NETBACK_MAX_FRAME + 64];
    bool notify;
    if (netback_do_tx(&nio, &tb, &notify) < 0)
        reset_rings(2);
    while (recv(peer, sink, sizeof(sink), MSG_DONTWAIT) >= 0)
        ;
}

static void run_rx(const uint8_t *p, size_t n)
{
    struct virtio_net_hdr vh = {0};
    size_t len = 60;
    bool notify;

    if (n >= sizeof(vh)) {
        memcpy(&vh, p, sizeof(vh));
        p += sizeof(vh), n -= sizeof(vh);
    }
    if (n >= 3) {
        len = p[0] | (size_t)p[1] << 8 | (size_t)(p[2] & 1) << 16;
        p += 3, n -= 3;
    }
    if (n > len)
        n = len;
    if (n)
        memcpy(frame, p, n);
    for (size_t i = n; i < len; i++)
        frame[i] = (uint8_t)i;
    if (netback_rx_frame(&nio, &rb, &vh, frame, len, &notify) == -EPROTO)
        reset_rings(4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ok = -1;

    if (ok < 0)
        ok = init_once();
    if (ok)
        abort();
    memset(gpa_ptr(GT_GPA), 0, PG);
    for (unsigned i = 0; i < NDATA; i++)
        memset(gpa_ptr(DATA_GPA + i * (uint64_t)PG), 0, PG);
    memset(gpa_ptr(LAST_GPA), 0, PG);
    reset_rings(7);
    bio.readwrite = bio.discard = true;

    uint8_t op;
    const uint8_t *p;
    size_t n;
    for (size_t off = 0; fuzz_record(data, size, &off, &op, &p, &n);) {
        switch (op % 11) {
        case 0:
            set_grants(p, n);
            break;
        case 1:
            put_page(p, n);
            break;
        case 2:
            QUEUE(bf, p, n);
            break;
        case 3:
            QUEUE(tf, p, n);
            break;
        case 4:
            QUEUE(rf, p, n);
            break;
        case 5:
            set_index(p, n);
            break;
        case 6:
            run_blk();
            break;
        case 7:
            run_tx();
            break;
        case 8:
            run_rx(p, n);
            break;
        case 9:
            reset_rings(n ? p[0] : 7);
            break;
        default:
            bio.readwrite = n && (p[0] & 1);
            bio.discard = n && (p[0] & 2);
            break;
        }
    }
    run_blk();
    run_tx();
    run_rx(NULL, 0);
    bool notify;
    blkback_drain(&bio, &bb, &notify); /* nothing in flight into the next input */
    return 0;
}
