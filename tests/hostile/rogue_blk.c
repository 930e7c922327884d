// SPDX-License-Identifier: GPL-2.0
/* The rogue front end against blkback (rogue.h). */
#include "rogue.h"

#include <xen/interface/io/protocols.h>

static u64 next_id = 1;

/* Connects with ring-ref and event-channel set to ring_ref and port (NULL:
 * our ring's grant, our port); true when the back end ends up in want
 * (Connected, or Closing when it must refuse). */
static bool vbd_connect(struct rogue *r, const char *ring_ref, const char *port,
                        unsigned int want)
{
    char v[16];

    if (rg_new_ring(r, 0) || rg_bind(r))
        return false;
    SHARED_RING_INIT((struct blkif_sring *)r->ring[0]);
    FRONT_RING_INIT(&r->blk, (struct blkif_sring *)r->ring[0], XEN_PAGE_SIZE);
    snprintf(v, sizeof(v), "%u", r->ring_ref[0]);
    rg_fe_write(r, "ring-ref", ring_ref ? ring_ref : v);
    snprintf(v, sizeof(v), "%u", r->port);
    rg_fe_write(r, "event-channel", port ? port : v);
    rg_fe_write(r, "protocol", XEN_IO_PROTO_ABI_NATIVE);
    rg_set_fe(r, XenbusStateInitialised);
    rg_wait_be2(r, want, XenbusStateClosing);
    return rg_be_state(r) == want;
}

static void push(struct rogue *r, const struct blkif_request *q)
{
    *RING_GET_REQUEST(&r->blk, r->blk.req_prod_pvt) = *q;
    r->blk.req_prod_pvt++;
}

static void send(struct rogue *r)
{
    int notify;

    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&r->blk, notify);
    rg_kick(r); /* whether asked or not */
}

/* Responses until n have come or ms have passed: how many came; *okay of
 * them BLKIF_RSP_OKAY. */
static unsigned int collect(struct rogue *r, unsigned int n, unsigned int ms,
                            unsigned int *okay)
{
    unsigned long end = jiffies + msecs_to_jiffies(ms);
    unsigned int got = 0;

    *okay = 0;
    for (;;) {
        RING_IDX rp = READ_ONCE(r->blk.sring->rsp_prod), i;

        virt_rmb();
        for (i = r->blk.rsp_cons; i != rp; i++, got++)
            *okay += RING_GET_RESPONSE(&r->blk, i)->status == BLKIF_RSP_OKAY;
        r->blk.rsp_cons = rp;
        if (got >= n || time_after(jiffies, end))
            return got;
        usleep_range(500, 1000);
    }
}

static struct blkif_request rw(u8 op, u64 sector, grant_ref_t ref, u8 first, u8 last)
{
    struct blkif_request q = {.operation = op};

    q.u.rw.nr_segments = 1;
    q.u.rw.id = next_id++;
    q.u.rw.sector_number = sector;
    q.u.rw.seg[0].gref = ref;
    q.u.rw.seg[0].first_sect = first;
    q.u.rw.seg[0].last_sect = last;
    return q;
}

static struct blkif_request ind(u8 op, u16 nseg, grant_ref_t page_ref)
{
    struct blkif_request q = {.operation = BLKIF_OP_INDIRECT};

    q.u.indirect.indirect_op = op;
    q.u.indirect.nr_segments = nseg;
    q.u.indirect.id = next_id++;
    q.u.indirect.indirect_grefs[0] = page_ref;
    return q;
}

/* Pushes the n requests, then checks that all n are answered and none
 * OKAY (but want_ok of them). */
static void expect(struct rogue *r, const struct blkif_request *q, unsigned int n,
                   unsigned int want_ok, const char *what)
{
    unsigned int i, okay, got;

    for (i = 0; i < n; i++)
        push(r, &q[i]);
    send(r);
    got = collect(r, n, 5000, &okay);
    rg_check(r, got == n && okay == want_ok, "%s: %u of %u answered, %u OKAY (want %u)",
             what, got, n, okay, want_ok);
}

static void valid_read(struct rogue *r, const char *what)
{
    struct blkif_request q = rw(BLKIF_OP_READ, 0, r->data_ref, 0, 7);

    expect(r, &q, 1, 1, what);
}

static void bad_requests(struct rogue *r)
{
    domid_t be = r->dev->otherend_id;
    int foreign = rg_grant(r, r->data[1], FOREIGN_DOMID, false);
    int ro = rg_grant(r, r->data[1], be, true);
    struct blkif_request q[] = {
        rw(BLKIF_OP_READ, 0, 0x7ffffff0, 0, 7),           /* no such grant */
        rw(BLKIF_OP_READ, 0, foreign, 0, 7),              /* granted to another domain */
        rw(BLKIF_OP_READ, 0, ro, 0, 7),                   /* read-only, for a read */
        rw(BLKIF_OP_READ, 0, r->data_ref, 5, 2),          /* first > last */
        rw(BLKIF_OP_READ, 0, r->data_ref, 0, 8),          /* beyond the page */
        rw(BLKIF_OP_READ, ~0ULL >> 9, r->data_ref, 0, 7), /* beyond the disk */
        rw(BLKIF_OP_READ, 0, r->data_ref, 0, 7),          /* 0 segments (below) */
        rw(BLKIF_OP_WRITE, 0, r->data_ref, 0, 7),         /* 12 segments (below) */
        rw(99, 0, r->data_ref, 0, 7),                     /* no such operation */
        rw(BLKIF_OP_DISCARD, ~0ULL >> 9, 0, 0, 0),        /* discard beyond the disk */
    };

    q[6].u.rw.nr_segments = 0;
    q[7].u.rw.nr_segments = BLKIF_MAX_SEGMENTS_PER_REQUEST + 1;
    q[9].u.discard.nr_sectors = 1 << 20;
    expect(r, q, ARRAY_SIZE(q), 0,
           "bad, foreign and read-only grants, bad sectors, counts and operations");
    rg_check(r, foreign >= 0 && ro >= 0 && rg_end_grant(foreign) && rg_end_grant(ro),
             "the grants of refused requests are idle at once (ended)");
}

/* Indirect descriptors: bad counts, bad pages, bad segments inside. */
static void bad_indirect(struct rogue *r)
{
    struct blkif_request_segment *seg = r->data[1];
    int page = rg_grant(r, r->data[1], r->dev->otherend_id, true);
    struct blkif_request q[] = {
        ind(BLKIF_OP_READ, 0, page),            /* no segments */
        ind(BLKIF_OP_READ, 0xffff, page),       /* far too many */
        ind(BLKIF_OP_READ, 257, page),          /* one beyond the offer */
        ind(BLKIF_OP_READ, 4, 0x7ffffff0),      /* no such page */
        ind(BLKIF_OP_READ, 16, page),           /* segments with bad grants */
        ind(BLKIF_OP_INDIRECT, 1, page),        /* nested */
        ind(BLKIF_OP_FLUSH_DISKCACHE, 1, page), /* not a transfer */
    };
    struct blkif_request good = ind(BLKIF_OP_READ, 2, page);
    unsigned int i;

    memset(seg, 0, XEN_PAGE_SIZE);
    for (i = 0; i < 16; i++)
        seg[i] = (struct blkif_request_segment){.gref = 0x7ffff000 + i, .last_sect = 7};
    expect(r, q, ARRAY_SIZE(q), 0,
           "indirect requests with bad counts, pages and segments");
    for (i = 0; i < 2; i++)
        seg[i] = (struct blkif_request_segment){.gref = r->data_ref, .last_sect = 7};
    expect(r, &good, 1, 1, "a well-formed indirect read");
    rg_check(r, page >= 0 && rg_end_grant(page), "the indirect page is idle at once");
}

/* A whole ring of random bytes: every slot answered, the device lives. */
static void garbage(struct rogue *r)
{
    unsigned int i, n = RING_SIZE(&r->blk), okay, got;

    for (i = 0; i < n; i++) {
        get_random_bytes(RING_GET_REQUEST(&r->blk, r->blk.req_prod_pvt),
                         sizeof(struct blkif_request));
        r->blk.req_prod_pvt++;
    }
    send(r);
    got = collect(r, n, 10000, &okay);
    rg_check(r, got == n && rg_be_state(r) == XenbusStateConnected,
             "a ring of %u random requests: %u answered (%u OKAY), still connected", n,
             got, okay);
}

static void event_flood(struct rogue *r)
{
    rg_event_flood(r);
    valid_read(r, "a read after the event flood");
}

/* rsp_event far away (no event wanted), then behind: answers still come
 * (we poll), and events stay bounded. */
static void rsp_event_games(struct rogue *r)
{
    struct blkif_sring *s = r->blk.sring;
    int ev = atomic_read(&r->events);

    WRITE_ONCE(s->rsp_event, r->blk.rsp_cons + 0x40000000);
    valid_read(r, "a read with rsp_event a quarter of the index space away");
    WRITE_ONCE(s->rsp_event, r->blk.rsp_cons - 5);
    valid_read(r, "a read with rsp_event behind the responses");
    WRITE_ONCE(s->req_event, 0xdeadbeef);
    valid_read(r, "a read with req_event scribbled on");
    rg_check(r, atomic_read(&r->events) - ev <= 8, "events for those: %d",
             atomic_read(&r->events) - ev);
}

/* A read into a fresh grant, whose access we try to end at once and, when
 * that works, hand the ref to another page: the back end must answer, and
 * once it has, every grant must end (none left reading or writing). */
static void revoke_once(struct rogue *r, unsigned int i, unsigned int *ended,
                        unsigned int *answered, unsigned int *left_busy)
{
    domid_t be = r->dev->otherend_id;
    int ref = rg_grant(r, r->data[1], be, false);
    struct blkif_request q;
    unsigned int okay;

    if (ref < 0)
        return;
    q = rw(BLKIF_OP_READ, 8, ref, 0, 7);
    push(r, &q);
    send(r);
    udelay((i % 4) * 500); /* at once, or while the back end may have it */
    if (gnttab_end_foreign_access_ref(ref)) {
        (*ended)++;
        gnttab_grant_foreign_access_ref(ref, be, virt_to_gfn(r->data[0]), 1);
    }
    *answered += collect(r, 1, 5000, &okay);
    if (!rg_end_grant(ref))
        (*left_busy)++;
}

static void revoke(struct rogue *r)
{
    unsigned int i, ended = 0, answered = 0, busy = 0;

    for (i = 0; i < revokes; i++)
        revoke_once(r, i, &ended, &answered, &busy);
    rg_check(
        r, answered == revokes && busy == 0,
        "%u reads whose grant was revoked or changed under them (%u ended early): %u "
        "answered, %u grants left busy after the answer",
        revokes, ended, answered, busy);
}

/* req_prod a long way ahead: the back end must end the device (Closing),
 * and serve nothing after. */
static void overrun(struct rogue *r)
{
    struct blkif_request q = rw(BLKIF_OP_READ, 0, r->data_ref, 0, 7);
    unsigned int okay;

    bool closed;

    WRITE_ONCE(r->blk.sring->req_prod, r->blk.req_prod_pvt + 100000);
    rg_kick(r);
    closed = rg_wait_be(r, XenbusStateClosing);
    rg_check(r, closed,
             "req_prod 100000 ahead: the back end closes the device (state %u)",
             rg_be_state(r));
    WRITE_ONCE(r->blk.sring->req_prod, r->blk.req_prod_pvt);
    push(r, &q);
    send(r);
    rg_check(r, collect(r, 1, 1000, &okay) == 0,
             "a request after the close is not served");
}

/* Bad rings and ports at connect: each refused with Closing. */
static void bad_connects(struct rogue *r)
{
    int foreign = rg_grant(r, r->data[1], FOREIGN_DOMID, false);
    char v[16];

    snprintf(v, sizeof(v), "%d", foreign);
    rg_check(r, rg_reset(r) && vbd_connect(r, v, NULL, XenbusStateClosing),
             "a ring granted to another domain is refused");
    rg_check(r, rg_reset(r) && vbd_connect(r, "12junk", NULL, XenbusStateClosing),
             "a ring-ref that is not a number is refused");
    rg_check(r, rg_reset(r) && vbd_connect(r, NULL, "4095", XenbusStateClosing),
             "a port that is not ours is refused");
    rg_fe_write(r, "ring-page-order", "9");
    rg_check(r, rg_reset(r) && vbd_connect(r, NULL, NULL, XenbusStateClosing),
             "ring-page-order 9 is refused");
    xenbus_rm(XBT_NIL, r->dev->nodename, "ring-page-order");
    if (foreign >= 0)
        rg_end_grant(foreign);
}

static void connect_cycles(struct rogue *r)
{
    unsigned int i, ok = 0;

    for (i = 0; i < cycles; i++)
        ok += rg_reset(r) && vbd_connect(r, NULL, NULL, XenbusStateConnected);
    rg_check(r, ok == cycles, "%u connect/close cycles: %u connected", cycles, ok);
    valid_read(r, "a read after the cycles");
}

void vbd_attacks(struct rogue *r)
{
    bool ok;

    r->data_ref = rg_grant(r, r->data[0], r->dev->otherend_id, false);
    rg_set_fe(r, XenbusStateInitialising);
    ok = rg_wait_be(r, XenbusStateInitWait) &&
         vbd_connect(r, NULL, NULL, XenbusStateConnected);
    if (!rg_check(r, ok, "connected (back end state %u)", rg_be_state(r)))
        return;
    valid_read(r, "a well-formed read");
    bad_requests(r);
    bad_indirect(r);
    garbage(r);
    event_flood(r);
    rsp_event_games(r);
    revoke(r);
    overrun(r);
    bad_connects(r);
    connect_cycles(r);
    rg_set_fe(r, XenbusStateClosing);
    rg_set_fe(r, XenbusStateClosed);
}
