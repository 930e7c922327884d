/* Unit tests of blkback's request path (blkback.h) without a guest: a
 * domain's memory with a grant table, a shared ring and data pages built by
 * hand, an image in a memfd.  Hostile requests and ring indexes must get
 * errors (or a disconnect), never a crash (run under ASan/UBSan). */
#include "domus/blkback.h"
#include "domus/xenbus_be.h"
#include "domus/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "gnt_test.h"

#define GT_GPA 0x100000ULL   /* grant table frame */
#define RING_GPA 0x101000ULL /* shared ring */
#define DATA_GPA 0x110000ULL /* data pages, one per grant ref 1.. */
#define IMG_SECTORS 2048     /* 1 MiB */

static struct domain *dom;
static struct blkback_io io;

static void grant(grant_ref_t ref, uint64_t gpa, domid_t to, bool ro)
{
    test_grant(dom, GT_GPA, ref, gpa, to, ro);
}

static uint8_t *page(unsigned i)
{
    return gmem_ptr(&dom->mem, DATA_GPA + i * 4096ULL, 4096);
}

static void setup(void)
{
    dom = calloc(1, sizeof(*dom));
    domain_init(dom, 7, "blk", 1, NULL);
    if (gmem_init(&dom->mem, 32ULL << 20) < 0 || gnttab_set_frame(dom, 0, GT_GPA) < 0)
        abort();
    for (unsigned i = 1; i <= 16; i++)
        grant(i, DATA_GPA + i * 4096ULL, 0, false);
    grant(20, DATA_GPA + 20 * 4096ULL, 0, true);  /* read-only grant */
    grant(21, DATA_GPA + 21 * 4096ULL, 3, false); /* granted to domain 3 */
    grant(22, 0xF0000000ULL, 0, false);           /* a frame outside RAM */
    grant(30, RING_GPA, 0, false);
    io = (struct blkback_io){.d = dom,
                             .fd = memfd_create("img", 0),
                             .sectors = IMG_SECTORS,
                             .readwrite = true,
                             .discard = true};
    if (io.fd < 0 || ftruncate(io.fd, IMG_SECTORS * 512) < 0)
        abort();
}

static blkif_request_t rq(uint8_t op, uint64_t sector, unsigned nseg)
{
    blkif_request_t r = {.operation = op,
                         .nr_segments = (uint8_t)nseg,
                         .id = 0x1234,
                         .sector_number = sector};
    for (unsigned i = 0; i < nseg && i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++)
        r.seg[i] = (struct blkif_request_segment){
            .gref = i + 1, .first_sect = 0, .last_sect = 7};
    return r;
}

static void test_rw(void)
{
    memset(page(1), 'A', 4096);
    memset(page(2), 'B', 4096);
    blkif_request_t r = rq(BLKIF_OP_WRITE, 8, 2);
    uint8_t buf[8192];
    CHECK("write of two segments", blkback_do_request(&io, &r) == BLKIF_RSP_OKAY &&
                                       pread(io.fd, buf, 8192, 4096) == 8192 &&
                                       buf[0] == 'A' && buf[4095] == 'A' &&
                                       buf[4096] == 'B' && buf[8191] == 'B');
    memset(page(3), 0, 4096);
    r = rq(BLKIF_OP_READ, 9, 1);
    r.seg[0] = (struct blkif_request_segment){.gref = 3, .first_sect = 2, .last_sect = 3};
    CHECK("read of a partial segment lands at first_sect",
          blkback_do_request(&io, &r) == BLKIF_RSP_OKAY && page(3)[1023] == 0 &&
              page(3)[1024] == 'A' && page(3)[2047] == 'A' && page(3)[2048] == 0);
    r = rq(BLKIF_OP_WRITE, IMG_SECTORS - 8, 1);
    CHECK("write of the last page", blkback_do_request(&io, &r) == BLKIF_RSP_OKAY);
    r = rq(BLKIF_OP_READ, IMG_SECTORS - 7, 1);
    CHECK("read past the end is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = rq(BLKIF_OP_WRITE, UINT64_MAX - 3, 1);
    CHECK("sector near 2^64 is an error", blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = rq(BLKIF_OP_READ, (UINT64_MAX / 512) + 1, 1);
    CHECK("sector whose byte offset overflows is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
}

static void test_hostile_segments(void)
{
    blkif_request_t r = rq(BLKIF_OP_READ, 0, 0);
    CHECK("no segments is an error", blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = rq(BLKIF_OP_READ, 0, 11);
    CHECK("11 segments are fine", blkback_do_request(&io, &r) == BLKIF_RSP_OKAY);
    r.nr_segments = 12;
    CHECK("12 segments are an error", blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.nr_segments = 255;
    CHECK("255 segments are an error", blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = rq(BLKIF_OP_READ, 0, 1);
    r.seg[0].first_sect = 5, r.seg[0].last_sect = 4;
    CHECK("first_sect > last_sect is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.seg[0].first_sect = 0, r.seg[0].last_sect = 8;
    CHECK("last_sect 8 is an error", blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.seg[0].first_sect = 255, r.seg[0].last_sect = 255;
    CHECK("sector 255 of a page is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = rq(BLKIF_OP_READ, 0, 1);
    r.seg[0].gref = 20;
    CHECK("read into a read-only grant is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.operation = BLKIF_OP_WRITE;
    CHECK("write from a read-only grant is fine",
          blkback_do_request(&io, &r) == BLKIF_RSP_OKAY);
    r.seg[0].gref = 21;
    CHECK("a grant to another domain is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.seg[0].gref = 22;
    CHECK("a grant of a frame outside RAM is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.seg[0].gref = 25;
    CHECK("an unused grant is an error", blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.seg[0].gref = 0xffffffffu;
    CHECK("a grant ref beyond the table is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.operation = 200;
    CHECK("unknown operation is EOPNOTSUPP",
          blkback_do_request(&io, &r) == BLKIF_RSP_EOPNOTSUPP);
}

/* An indirect request whose segment list is in page 15 (grant 15). */
static blkif_request_t irq(uint8_t op, uint64_t sector, unsigned nseg)
{
    blkif_request_t r;
    blkif_request_indirect_t ir = {.operation = BLKIF_OP_INDIRECT,
                                   .indirect_op = op,
                                   .nr_segments = (uint16_t)nseg,
                                   .id = 0x77,
                                   .sector_number = sector,
                                   .indirect_grefs = {15}};
    struct blkif_request_segment *segs = (void *)page(15);
    for (unsigned i = 0; i < 512; i++)
        segs[i] = (struct blkif_request_segment){
            .gref = 1 + i % 14, .first_sect = 0, .last_sect = 7};
    memcpy(&r, &ir, sizeof(ir));
    return r;
}

static void test_indirect(void)
{
    for (unsigned i = 1; i <= 14; i++)
        memset(page(i), 'a' + (int)i, 4096);
    blkif_request_t r = irq(BLKIF_OP_WRITE, 16, 28);
    uint8_t buf[4096];
    CHECK("indirect write of 28 segments",
          blkback_do_request(&io, &r) == BLKIF_RSP_OKAY &&
              pread(io.fd, buf, 4096, (16 + 27 * 8) * 512) == 4096 && buf[0] == 'a' + 14);
    memset(page(3), 0, 4096);
    r = irq(BLKIF_OP_READ, 16 + 2 * 8, 1);
    ((struct blkif_request_segment *)page(15))[0].gref = 3;
    CHECK("indirect read",
          blkback_do_request(&io, &r) == BLKIF_RSP_OKAY && page(3)[0] == 'a' + 3);
    r = irq(BLKIF_OP_READ, 0, 256);
    CHECK("indirect with 256 segments", blkback_do_request(&io, &r) == BLKIF_RSP_OKAY);
    r = irq(BLKIF_OP_READ, 0, 257);
    CHECK("indirect with 257 segments is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = irq(BLKIF_OP_READ, 0, 0);
    CHECK("indirect with no segments is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = irq(BLKIF_OP_READ, 0, 65535);
    CHECK("indirect with 65535 segments is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = irq(BLKIF_OP_DISCARD, 0, 1);
    CHECK("indirect discard is EOPNOTSUPP",
          blkback_do_request(&io, &r) == BLKIF_RSP_EOPNOTSUPP);
    r = irq(BLKIF_OP_READ, 0, 2);
    ((blkif_request_indirect_t *)&r)->indirect_grefs[0] = 25;
    CHECK("indirect page not granted is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    ((blkif_request_indirect_t *)&r)->indirect_grefs[0] = 20; /* read-only grant: fine */
    memcpy(page(20), page(15), 16);
    CHECK("indirect page may be a read-only grant",
          blkback_do_request(&io, &r) == BLKIF_RSP_OKAY);
    r = irq(BLKIF_OP_READ, 0, 2);
    ((struct blkif_request_segment *)page(15))[1].last_sect = 9;
    CHECK("indirect segment with last_sect 9 is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = irq(BLKIF_OP_WRITE, IMG_SECTORS - 8, 2);
    CHECK("indirect write past the end is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    io.readwrite = false;
    r = irq(BLKIF_OP_WRITE, 0, 1);
    CHECK("read-only disk: indirect write is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    io.readwrite = true;
}

/* The counters xentop shows, as Xen's blkback keeps them: requests that
 * passed the checks, by kind, with their sectors; refused ones not at all. */
static void test_stats(void)
{
    struct blkback_stats st = {0}, z;
    blkif_request_t r;

    io.stats = &st;
    r = rq(BLKIF_OP_WRITE, 8, 2);
    blkback_do_request(&io, &r);
    r = rq(BLKIF_OP_READ, 0, 3);
    blkback_do_request(&io, &r);
    r = rq(BLKIF_OP_READ, 9, 1);
    r.seg[0] = (struct blkif_request_segment){.gref = 3, .first_sect = 2, .last_sect = 3};
    blkback_do_request(&io, &r);
    r = rq(BLKIF_OP_FLUSH_DISKCACHE, 0, 0);
    blkback_do_request(&io, &r);
    r = rq(BLKIF_OP_WRITE_BARRIER, 16, 1); /* data, then a flush: a write */
    blkback_do_request(&io, &r);
    CHECK("stats: 2 reads of 24 + 2 sectors, 2 writes of 16 + 8, 1 flush",
          st.rd_req == 2 && st.rd_sect == 26 && st.wr_req == 2 && st.wr_sect == 24 &&
              st.f_req == 1 && st.oo_req == 0);
    r = rq(BLKIF_OP_READ, IMG_SECTORS - 7, 1);
    blkback_do_request(&io, &r);
    r = rq(BLKIF_OP_WRITE, 0, 12);
    blkback_do_request(&io, &r);
    r = rq(BLKIF_OP_READ, 0, 1);
    r.seg[0].gref = 21; /* granted to another domain */
    blkback_do_request(&io, &r);
    r.operation = 99;
    blkback_do_request(&io, &r);
    CHECK("stats: refused requests are not counted",
          st.rd_req == 2 && st.wr_req == 2 && st.rd_sect == 26 && st.wr_sect == 24);
    io.stats = NULL;
    blkback_get_stats(NULL, &z);
    CHECK("stats: a NULL back end has zero counters", z.rd_req == 0 && z.wr_sect == 0);
}

static void test_flush_discard_ro(void)
{
    blkif_request_t r = rq(BLKIF_OP_FLUSH_DISKCACHE, 0, 0);
    CHECK("flush", blkback_do_request(&io, &r) == BLKIF_RSP_OKAY);
    r.operation = BLKIF_OP_WRITE_BARRIER;
    CHECK("barrier without data", blkback_do_request(&io, &r) == BLKIF_RSP_OKAY);
    blkif_request_discard_t dr = {
        .operation = BLKIF_OP_DISCARD, .id = 9, .sector_number = 8, .nr_sectors = 8};
    memcpy(&r, &dr, sizeof(dr));
    uint8_t buf[4096], zero[4096] = {0};
    CHECK("discard punches a hole", blkback_do_request(&io, &r) == BLKIF_RSP_OKAY &&
                                        pread(io.fd, buf, 4096, 4096) == 4096 &&
                                        !memcmp(buf, zero, 4096));
    dr.nr_sectors = IMG_SECTORS;
    memcpy(&r, &dr, sizeof(dr));
    CHECK("discard past the end is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    dr.sector_number = 1, dr.nr_sectors = UINT64_MAX;
    memcpy(&r, &dr, sizeof(dr));
    CHECK("discard of 2^64 sectors is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    io.discard = false;
    CHECK("discard when not offered is EOPNOTSUPP",
          blkback_do_request(&io, &r) == BLKIF_RSP_EOPNOTSUPP);
    io.discard = true;
    io.readwrite = false;
    r = rq(BLKIF_OP_WRITE, 0, 1);
    CHECK("read-only disk: write is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r.operation = BLKIF_OP_WRITE_BARRIER;
    CHECK("read-only disk: barrier with data is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    dr.sector_number = 0, dr.nr_sectors = 8;
    memcpy(&r, &dr, sizeof(dr));
    CHECK("read-only disk: discard is an error",
          blkback_do_request(&io, &r) == BLKIF_RSP_ERROR);
    r = rq(BLKIF_OP_READ, 0, 1);
    CHECK("read-only disk: read is fine", blkback_do_request(&io, &r) == BLKIF_RSP_OKAY);
    io.readwrite = true;
}

/* A fresh ring on s holding three reads (ids 100..102; the middle one
 * indirect), pushed by the front end. */
static void three_reads(blkif_sring_t *s, blkif_front_ring_t *front,
                        blkif_back_ring_t *back)
{
    SHARED_RING_INIT(s);
    FRONT_RING_INIT(front, s, 4096);
    BACK_RING_INIT(back, s, 4096);
    for (unsigned i = 0; i < 3; i++) {
        blkif_request_t *r = RING_GET_REQUEST(front, front->req_prod_pvt++);
        *r = i == 1 ? irq(BLKIF_OP_READ, 8, 1) : rq(BLKIF_OP_READ, i * 8, 1);
        r->id = 100 + i;
    }
    s->req_prod = front->req_prod_pvt;
}

static void test_ring(void)
{
    blkif_sring_t *s = gmem_ptr(&dom->mem, RING_GPA, 4096);
    blkif_front_ring_t front;
    blkif_back_ring_t back;
    bool notify;

    three_reads(s, &front, &back);
    int n = blkback_do_ring(&io, &back, &notify);
    blkif_response_t *rsp = RING_GET_RESPONSE(&front, 2);
    CHECK("ring: three requests served and answered in order",
          n == 3 && s->rsp_prod == 3 && rsp->id == 102 && rsp->status == BLKIF_RSP_OKAY &&
              rsp->operation == BLKIF_OP_READ && notify);
    CHECK("ring: req_event asks for the next request", s->req_event == 4);
    CHECK("ring: an indirect read answers as a read",
          RING_GET_RESPONSE(&front, 1)->operation == BLKIF_OP_READ &&
              RING_GET_RESPONSE(&front, 1)->status == BLKIF_RSP_OKAY);
    /* A whole ring of garbage requests with sane indexes. */
    srand(42);
    for (unsigned i = 0; i < RING_SIZE(&front); i++) {
        uint8_t *p = (uint8_t *)RING_GET_REQUEST(&front, front.req_prod_pvt++);
        for (size_t k = 0; k < sizeof(blkif_request_t); k++)
            p[k] = (uint8_t)rand();
    }
    s->req_prod = front.req_prod_pvt;
    n = blkback_do_ring(&io, &back, &notify);
    unsigned bad_op = 0;
    for (RING_IDX i = front.req_prod_pvt - RING_SIZE(&front); i != front.req_prod_pvt;
         i++) {
        blkif_response_t *x = RING_GET_RESPONSE(&front, i);
        bad_op += x->status == BLKIF_RSP_OKAY && x->operation > BLKIF_OP_DISCARD;
    }
    CHECK("ring: garbage answers carry plausible operations", bad_op == 0);
    CHECK("ring: a full ring of garbage is answered",
          n == (int)RING_SIZE(&front) && back.rsp_prod_pvt == front.req_prod_pvt);
    s->req_prod = back.req_cons + RING_SIZE(&back) + 1;
    CHECK("ring: producer more than a ring ahead is -EPROTO",
          blkback_do_ring(&io, &back, &notify) == -EPROTO);
    s->req_prod = back.req_cons - 1;
    CHECK("ring: producer behind the consumer is -EPROTO",
          blkback_do_ring(&io, &back, &notify) == -EPROTO);
    s->req_prod = back.req_cons + 0x80000000u;
    CHECK("ring: producer far away is -EPROTO",
          blkback_do_ring(&io, &back, &notify) == -EPROTO);
    s->req_prod = back.req_cons;
    CHECK("ring: no new requests, nothing served",
          blkback_do_ring(&io, &back, &notify) == 0);
}

/* The same ring served on io_uring: answers come by completion, drained. */
/* A read in flight keeps its grant busy (GTF_reading | GTF_writing), so the
 * front end cannot end access to the page the read is filling; the answer
 * frees it.  The image is a pipe here: the read waits for its data. */
static void in_flight_grants(blkif_sring_t *s, blkif_front_ring_t *front,
                             blkif_back_ring_t *back)
{
    int p[2], img = io.fd;
    bool notify;
    grant_entry_v1_t *g = gmem_ptr(&dom->mem, GT_GPA + 5 * sizeof(*g), sizeof(*g));
    static uint8_t data[4096];

    if (pipe(p) < 0)
        abort();
    io.fd = p[0];
    blkif_request_t *r = RING_GET_REQUEST(front, front->req_prod_pvt++);
    *r = rq(BLKIF_OP_READ, 0, 1);
    r->seg[0].gref = 5;
    r->id = 900;
    s->req_prod = front->req_prod_pvt;
    blkback_do_ring(&io, back, &notify);
    uint16_t busy = g->flags, f = busy;
    /* The front end's end of access (Linux's): refused while busy. */
    bool ended = !(f & (GTF_reading | GTF_writing)) &&
                 __atomic_compare_exchange_n(&g->flags, &f, 0, false, __ATOMIC_SEQ_CST,
                                             __ATOMIC_SEQ_CST);
    CHECK("aio: a read in flight keeps its grant reading and writing: no end of access",
          blkback_in_flight(&io) == 1 && !ended &&
              (busy & (GTF_reading | GTF_writing)) == (GTF_reading | GTF_writing));
    memset(data, 'P', sizeof(data));
    if (write(p[1], data, sizeof(data)) != sizeof(data))
        abort();
    struct pollfd pe = {blkback_aio_fd(&io), POLLIN, 0};
    for (unsigned i = 0; i < 50 && blkback_in_flight(&io); i++) {
        poll(&pe, 1, 100);
        blkback_do_ring(&io, back, &notify);
    }
    CHECK("aio: the answered read leaves the grant as the front end made it",
          blkback_in_flight(&io) == 0 && page(5)[0] == 'P' &&
              g->flags == GTF_permit_access);
    io.fd = img;
    close(p[0]);
    close(p[1]);
}

static void test_ring_aio(void)
{
    blkif_sring_t *s = gmem_ptr(&dom->mem, RING_GPA, 4096);
    blkif_front_ring_t front;
    blkif_back_ring_t back;
    bool notify, dn;

    if (blkback_aio_init(&io, 4) < 0) {
        printf("# io_uring unavailable: asynchronous ring not tested\n");
        return;
    }
    CHECK("aio: an eventfd for completions", blkback_aio_fd(&io) >= 0);
    three_reads(s, &front, &back);
    int n = blkback_do_ring(&io, &back, &notify);
    blkback_drain(&io, &back, &dn);
    unsigned seen = 0;
    for (RING_IDX i = 0; i < 3; i++) {
        blkif_response_t *x = RING_GET_RESPONSE(&front, i);
        if (x->id >= 100 && x->id < 103 && x->status == BLKIF_RSP_OKAY &&
            x->operation == BLKIF_OP_READ)
            seen |= 1u << (x->id - 100);
    }
    CHECK("aio: three requests taken, each answered once",
          n == 3 && s->rsp_prod == 3 && seen == 7 && (notify || dn) &&
              blkback_in_flight(&io) == 0);
    CHECK("aio: answers unseen until the front end asks again", XBE_RSP_UNSEEN(&back));
    int more;
    front.rsp_cons = s->rsp_prod;
    RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
    CHECK("aio: answers seen once it does", !more && !XBE_RSP_UNSEEN(&back));
    /* Served without the drain: once nothing is in flight, the completions'
     * eventfd is quiet (no wake-up that would find nothing to do). */
    for (unsigned i = 0; i < 3; i++) {
        blkif_request_t *r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
        *r = rq(BLKIF_OP_READ, i * 8, 2);
        r->id = 500 + i;
    }
    s->req_prod = front.req_prod_pvt;
    struct pollfd pe = {blkback_aio_fd(&io), POLLIN, 0};
    for (unsigned i = 0; i < 50; i++) {
        if (blkback_do_ring(&io, &back, &notify) < 0 || blkback_in_flight(&io) == 0)
            break;
        poll(&pe, 1, 100);
    }
    CHECK("aio: all answered, the eventfd left quiet",
          back.rsp_prod_pvt == front.req_prod_pvt && blkback_in_flight(&io) == 0 &&
              poll(&pe, 1, 0) == 0);
    /* 24 reads through 4 slots: never more than 4 in flight. */
    for (unsigned i = 0; i < 24; i++) {
        blkif_request_t *r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
        *r = rq(BLKIF_OP_READ, (i % 8) * 8, 2);
        r->id = 1000 + i;
    }
    s->req_prod = front.req_prod_pvt;
    unsigned max_in_flight = 0, rounds = 0;
    while (back.rsp_prod_pvt != front.req_prod_pvt && rounds++ < 100) {
        if (blkback_do_ring(&io, &back, &notify) < 0)
            break;
        if (blkback_in_flight(&io) > max_in_flight)
            max_in_flight = blkback_in_flight(&io);
        blkback_drain(&io, &back, &dn);
    }
    uint32_t ids = 0;
    for (RING_IDX i = 3; i != front.req_prod_pvt; i++) {
        blkif_response_t *x = RING_GET_RESPONSE(&front, i);
        if (x->id >= 1000 && x->id < 1024 && x->status == BLKIF_RSP_OKAY)
            ids |= 1u << (x->id - 1000);
    }
    CHECK("aio: 24 reads through 4 slots all answered", ids == 0xffffff);
    CHECK("aio: in flight bounded by the slots", max_in_flight <= 4);
    /* Write, flush with data, bare flush, then read it back. */
    memset(page(4), 'W', 4096);
    memset(page(5), 'F', 4096);
    memset(page(6), 0, 4096);
    blkif_request_t rs[4] = {rq(BLKIF_OP_WRITE, 64, 1),
                             rq(BLKIF_OP_FLUSH_DISKCACHE, 72, 1),
                             rq(BLKIF_OP_WRITE_BARRIER, 0, 0), rq(BLKIF_OP_READ, 64, 2)};
    rs[0].seg[0].gref = 4, rs[1].seg[0].gref = 5;
    rs[3].seg[0].gref = 6, rs[3].seg[1].gref = 7;
    for (unsigned i = 0; i < 4; i++) {
        rs[i].id = 2000 + i;
        *RING_GET_REQUEST(&front, front.req_prod_pvt++) = rs[i];
    }
    s->req_prod = front.req_prod_pvt;
    blkback_do_ring(&io, &back, &notify);
    blkback_drain(&io, &back, &dn);
    unsigned ok = 0;
    for (RING_IDX i = front.req_prod_pvt - 4; i != front.req_prod_pvt; i++) {
        blkif_response_t *x = RING_GET_RESPONSE(&front, i);
        ok += x->status == BLKIF_RSP_OKAY && x->id >= 2000 && x->id < 2004 &&
              x->operation == rs[x->id - 2000].operation;
    }
    uint8_t buf[8192];
    CHECK("aio: write, flush with data, barrier, read: all answered",
          ok == 4 && back.rsp_prod_pvt == front.req_prod_pvt);
    CHECK("aio: the data is in the image",
          pread(io.fd, buf, 8192, 64 * 512) == 8192 && buf[0] == 'W' && buf[4096] == 'F');
    /* A read past the end of the file (the image shrank under us). */
    io.sectors = IMG_SECTORS + 16;
    blkif_request_t *r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
    *r = rq(BLKIF_OP_READ, IMG_SECTORS - 4, 1);
    r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
    *r = rq(BLKIF_OP_READ, IMG_SECTORS + 8, 1);
    s->req_prod = front.req_prod_pvt;
    blkback_do_ring(&io, &back, &notify);
    blkback_drain(&io, &back, &dn);
    CHECK("aio: short reads at the end of the file are errors",
          back.rsp_prod_pvt == front.req_prod_pvt &&
              RING_GET_RESPONSE(&front, front.req_prod_pvt - 1)->status ==
                  BLKIF_RSP_ERROR &&
              RING_GET_RESPONSE(&front, front.req_prod_pvt - 2)->status ==
                  BLKIF_RSP_ERROR);
    io.sectors = IMG_SECTORS;
    /* A whole ring of garbage. */
    srand(7);
    for (unsigned i = 0; i < RING_SIZE(&front); i++) {
        uint8_t *p = (uint8_t *)RING_GET_REQUEST(&front, front.req_prod_pvt++);
        for (size_t k = 0; k < sizeof(blkif_request_t); k++)
            p[k] = (uint8_t)rand();
    }
    s->req_prod = front.req_prod_pvt;
    rounds = 0;
    while (back.rsp_prod_pvt != front.req_prod_pvt && rounds++ < 100) {
        if (blkback_do_ring(&io, &back, &notify) < 0)
            break;
        blkback_drain(&io, &back, &dn);
    }
    CHECK("aio: a full ring of garbage is answered",
          back.rsp_prod_pvt == front.req_prod_pvt);
    s->req_prod = back.req_cons + RING_SIZE(&back) + 1;
    CHECK("aio: producer more than a ring ahead is -EPROTO",
          blkback_do_ring(&io, &back, &notify) == -EPROTO);
    blkback_drain(&io, &back, &dn);
    CHECK("aio: nothing in flight after the drain", blkback_in_flight(&io) == 0);
    /* Requests 5..9 taken, 0..4 answered: a producer moved back to 7 is
     * behind the consumer (the fuzzer's spin: take() chased it 2^32 slots). */
    blkif_back_ring_t t = back;
    t.rsp_prod_pvt = 5;
    t.req_cons = 10;
    CHECK("ring: producer between the answered and the taken is impossible",
          XBE_REQ_PROD_BAD(&t, 7) && !XBE_REQ_PROD_BAD(&t, 10) &&
              !XBE_REQ_PROD_BAD(&t, 12));
    in_flight_grants(s, &front, &back);
    blkback_aio_fini(&io);
    CHECK("aio: finished", io.aio == NULL && blkback_aio_fd(&io) == -1);
}

/* The io_uring instance's fd (there is one at a time here). */
static int uring_fd(void)
{
    char path[64], link[64];
    for (int fd = 3; fd < 1024; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        if (n > 0 && (link[n] = 0, strstr(link, "io_uring")))
            return fd;
    }
    return -1;
}

/* The drain when io_uring_enter fails for good: a read the kernel has (A)
 * is still reaped when it completes, a read the kernel never took (B) is
 * answered with an error and its grant ended, nothing stays in flight.
 * The ring's fd is replaced by /dev/null (its mappings keep it alive), so
 * every io_uring_enter fails with EOPNOTSUPP. */
static void test_drain_broken_ring(void)
{
    blkif_sring_t *s = gmem_ptr(&dom->mem, RING_GPA, 4096);
    grant_entry_v1_t *g6 = gmem_ptr(&dom->mem, GT_GPA + 6 * sizeof(*g6), sizeof(*g6));
    blkif_front_ring_t front;
    blkif_back_ring_t back;
    int p[2], img = io.fd, devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    bool notify;
    static uint8_t data[4096];

    if (blkback_aio_init(&io, 4) < 0 || pipe(p) < 0 || devnull < 0) {
        printf("# io_uring unavailable: the broken drain not tested\n");
        return;
    }
    SHARED_RING_INIT(s);
    FRONT_RING_INIT(&front, s, 4096);
    BACK_RING_INIT(&back, s, 4096);
    io.fd = p[0];
    blkif_request_t *r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
    *r = rq(BLKIF_OP_READ, 0, 1);
    r->seg[0].gref = 5, r->id = 700;
    s->req_prod = front.req_prod_pvt;
    blkback_do_ring(&io, &back, &notify); /* A: the kernel waits on the pipe */
    int rfd = uring_fd();
    CHECK("drain: the ring broken under a read in flight",
          rfd >= 0 && dup2(devnull, rfd) == rfd && blkback_in_flight(&io) == 1);
    r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
    *r = rq(BLKIF_OP_READ, 8, 1);
    r->seg[0].gref = 6, r->id = 701;
    s->req_prod = front.req_prod_pvt;
    blkback_do_ring(&io, &back, &notify); /* B: its submission fails */
    CHECK("drain: a read never submitted holds its grant",
          blkback_in_flight(&io) == 2 && (g6->flags & (GTF_reading | GTF_writing)));
    memset(data, 'Q', sizeof(data));
    if (write(p[1], data, sizeof(data)) != sizeof(data))
        abort();
    struct pollfd pe = {blkback_aio_fd(&io), POLLIN, 0};
    poll(&pe, 1, 2000);
    blkback_drain(&io, &back, &notify);
    unsigned ok = 0, err = 0;
    for (RING_IDX i = 0; i != back.rsp_prod_pvt; i++) {
        blkif_response_t *x = RING_GET_RESPONSE(&front, i);
        ok += x->id == 700 && x->status == BLKIF_RSP_OKAY;
        err += x->id == 701 && x->status == BLKIF_RSP_ERROR;
    }
    CHECK("drain: nothing left in flight after the failed wait",
          blkback_in_flight(&io) == 0);
    CHECK("drain: the read the kernel had is answered with its data",
          ok == 1 && page(5)[0] == 'Q');
    CHECK("drain: the read it never took is an error, its grant ended",
          err == 1 && back.rsp_prod_pvt == 2 && g6->flags == GTF_permit_access);
    blkback_aio_fini(&io);
    io.fd = img;
    close(p[0]);
    close(p[1]);
    close(devnull);
}

/* A front end cycling through its states logs at most 10 lines in 5 s. */
static void test_log_limit(void)
{
    struct xbe x;
    unsigned ok = 0;

    if (xbe_init(&x, dom, "vbd", 51712, NULL, NULL, NULL) < 0)
        abort();
    for (unsigned i = 0; i < 1000; i++)
        ok += xbe_log_ok(&x);
    CHECK("xbe: 1000 lines a front end causes at once, 10 let through", ok == 10);
    xbe_stop(&x);
}

#define RING16_GPA 0x200000ULL /* 16 ring pages, grants 40..55 */

/* The GTF_reading | GTF_writing bits set in any of grants first..first+n-1. */
static uint16_t ring_flags(grant_ref_t first, unsigned n)
{
    uint16_t f = 0;
    for (unsigned i = 0; i < n; i++) {
        grant_entry_v1_t *e =
            gmem_ptr(&dom->mem, GT_GPA + (first + i) * sizeof(*e), sizeof(*e));
        f |= e->flags & (GTF_reading | GTF_writing);
    }
    return f;
}

static void test_multipage_ring(void)
{
    grant_ref_t refs[17];
    unsigned bad;

    for (unsigned i = 0; i < 16; i++) {
        grant(40 + i, RING16_GPA + i * 4096ULL, 0, false);
        refs[i] = 40 + i;
    }
    uint8_t *m = blkback_map_ring(dom, refs, 4, &bad);
    uint8_t *g = gmem_ptr(&dom->mem, RING16_GPA, 4 * 4096);
    CHECK("map ring: 4 pages mapped", m != NULL);
    if (m) {
        m[0] = 1, m[4095] = 2, m[4096] = 3, m[4 * 4096 - 1] = 4;
        g[8192] = 5;
        CHECK("map ring: the mapping is the guest's pages, in order",
              g[0] == 1 && g[4095] == 2 && g[4096] == 3 && g[4 * 4096 - 1] == 4 &&
                  m[8192] == 5);
        CHECK("map ring: its grants are in use while mapped",
              ring_flags(40, 4) == (GTF_reading | GTF_writing));
        blkback_unmap_ring(dom, refs, m, 4);
        CHECK("map ring: and free again once unmapped", ring_flags(40, 4) == 0);
    }
    refs[2] = 20;
    CHECK("map ring: a read-only grant is refused, and named",
          !blkback_map_ring(dom, refs, 4, &bad) && bad == 2);
    CHECK("map ring: a refused ring leaves none of its grants in use",
          ring_flags(40, 2) == 0);
    refs[2] = 21;
    CHECK("map ring: a grant to another domain is refused",
          !blkback_map_ring(dom, refs, 4, &bad) && bad == 2);
    refs[3] = 22, refs[2] = 42;
    CHECK("map ring: a frame outside RAM is refused",
          !blkback_map_ring(dom, refs, 4, &bad) && bad == 3);
    refs[3] = 0xffffffffu;
    CHECK("map ring: a grant ref beyond the table is refused",
          !blkback_map_ring(dom, refs, 4, &bad) && bad == 3);
    refs[3] = 43;
    refs[16] = 44;
    CHECK("map ring: 17 pages are refused", !blkback_map_ring(dom, refs, 17, &bad));
    CHECK("map ring: 0 pages are refused", !blkback_map_ring(dom, refs, 0, &bad));

    /* A 16-page ring (512 requests) served through the mapping, on
     * io_uring when there is one. */
    m = blkback_map_ring(dom, refs, 16, &bad);
    CHECK("map ring: 16 pages mapped", m != NULL);
    if (!m)
        return;
    blkback_aio_init(&io, BLKBACK_MAX_IN_FLIGHT);
    blkif_sring_t *s = gmem_ptr(&dom->mem, RING16_GPA, 16 * 4096);
    blkif_front_ring_t front;
    blkif_back_ring_t back;
    bool notify, dn;
    SHARED_RING_INIT(s);
    FRONT_RING_INIT(&front, s, 16 * 4096);
    BACK_RING_INIT(&back, (blkif_sring_t *)m, 16 * 4096);
    for (unsigned i = 0; i < RING_SIZE(&front); i++) {
        blkif_request_t *r = RING_GET_REQUEST(&front, front.req_prod_pvt++);
        *r = rq(BLKIF_OP_READ, (i % 64) * 8, 1);
        r->seg[0].gref = 1 + i % 14;
        r->id = 5000 + i;
    }
    s->req_prod = front.req_prod_pvt;
    int n = blkback_do_ring(&io, &back, &notify);
    blkback_drain(&io, &back, &dn);
    unsigned ok = 0;
    for (RING_IDX i = 0; i < RING_SIZE(&front); i++) {
        blkif_response_t *x = RING_GET_RESPONSE(&front, i);
        ok += x->status == BLKIF_RSP_OKAY && x->id >= 5000 && x->id < 5512;
    }
    CHECK("16-page ring: 512 requests", RING_SIZE(&back) == 512 && n == 512);
    CHECK("16-page ring: all answered in the guest's pages",
          s->rsp_prod == 512 && ok == 512);
    s->req_prod = back.req_cons + 513;
    CHECK("16-page ring: producer more than a ring ahead is -EPROTO",
          blkback_do_ring(&io, &back, &notify) == -EPROTO);
    blkback_drain(&io, &back, &dn);
    blkback_aio_fini(&io);
    blkback_unmap_ring(dom, refs, m, 16);
}

int main(void)
{
    setup();
    test_rw();
    test_hostile_segments();
    test_indirect();
    test_stats();
    test_flush_discard_ro();
    test_ring();
    test_ring_aio();
    test_multipage_ring();
    test_drain_broken_ring();
    test_log_limit();
    close(io.fd);
    gmem_destroy(&dom->mem);
    free(dom);
    return failures ? 1 : 0;
}
