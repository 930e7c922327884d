// SPDX-License-Identifier: GPL-2.0
/* The rogue front end against netback (rogue.h). */
#include "rogue.h"

#define NET_RING_SIZE __CONST_RING_SIZE(xen_netif_tx, XEN_PAGE_SIZE)

static u16 next_id;

/* Connects with tx-ring-ref set to tx_ref (NULL: our ring's grant); true
 * when the back end ends up in want. */
static bool vif_connect(struct rogue *r, const char *tx_ref, unsigned int want)
{
    char v[16];

    if (rg_new_ring(r, 0) || rg_new_ring(r, 1) || rg_bind(r))
        return false;
    SHARED_RING_INIT((struct xen_netif_tx_sring *)r->ring[0]);
    FRONT_RING_INIT(&r->tx, (struct xen_netif_tx_sring *)r->ring[0], XEN_PAGE_SIZE);
    SHARED_RING_INIT((struct xen_netif_rx_sring *)r->ring[1]);
    FRONT_RING_INIT(&r->rx, (struct xen_netif_rx_sring *)r->ring[1], XEN_PAGE_SIZE);
    snprintf(v, sizeof(v), "%u", r->ring_ref[0]);
    rg_fe_write(r, "tx-ring-ref", tx_ref ? tx_ref : v);
    rg_fe_writeu(r, "rx-ring-ref", r->ring_ref[1]);
    rg_fe_writeu(r, "event-channel", r->port);
    rg_fe_write(r, "request-rx-copy", "1");
    rg_set_fe(r, XenbusStateConnected);
    rg_wait_be2(r, want, XenbusStateClosing);
    return rg_be_state(r) == want;
}

static void push(struct rogue *r, struct xen_netif_tx_request q)
{
    *RING_GET_REQUEST(&r->tx, r->tx.req_prod_pvt) = q;
    r->tx.req_prod_pvt++;
}

static void send(struct rogue *r)
{
    int notify;

    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&r->tx, notify);
    rg_kick(r);
}

/* tx responses until n have come or ms have passed: how many; *okay of
 * them XEN_NETIF_RSP_OKAY (NULL ones, for extras, are not counted). */
static unsigned int collect(struct rogue *r, unsigned int n, unsigned int ms,
                            unsigned int *okay)
{
    unsigned long end = jiffies + msecs_to_jiffies(ms);
    unsigned int got = 0;

    *okay = 0;
    for (;;) {
        RING_IDX rp = READ_ONCE(r->tx.sring->rsp_prod), i;

        virt_rmb();
        for (i = r->tx.rsp_cons; i != rp; i++, got++)
            *okay += RING_GET_RESPONSE(&r->tx, i)->status == XEN_NETIF_RSP_OKAY;
        r->tx.rsp_cons = rp;
        if (got >= n || time_after(jiffies, end))
            return got;
        usleep_range(500, 1000);
    }
}

static struct xen_netif_tx_request txq(grant_ref_t ref, u16 off, u16 size, u16 flags)
{
    return (struct xen_netif_tx_request){
        .gref = ref, .offset = off, .size = size, .flags = flags, .id = next_id++};
}

/* A broadcast frame of the local experimental ethertype in data[0]. */
static void frame(struct rogue *r)
{
    u8 *f = r->data[0];

    memset(f, 0xff, 6);
    memcpy(f + 6, "\x00\x16\x3e\x66\x66\x66\x88\xb5", 8);
    memset(f + 14, 'R', 46);
}

static void valid_tx(struct rogue *r, const char *what)
{
    unsigned int okay, got;

    push(r, txq(r->data_ref, 0, 60, 0));
    send(r);
    got = collect(r, 1, 5000, &okay);
    rg_check(r, got == 1 && okay == 1, "%s: %u answered, %u OKAY", what, got, okay);
}

/* Slots that must each be answered with an error. */
static void bad_tx(struct rogue *r)
{
    int foreign = rg_grant(r, r->data[1], FOREIGN_DOMID, true);
    unsigned int i, n = 0, okay, got;

    push(r, txq(0x7ffffff0, 0, 60, 0)), n++;      /* no such grant */
    push(r, txq(foreign, 0, 60, 0)), n++;         /* another domain's */
    push(r, txq(r->data_ref, 4000, 200, 0)), n++; /* across the page's end */
    push(r, txq(r->data_ref, 0, 0, 0)), n++;      /* empty */
    push(r, txq(r->data_ref, 0, 65535, 0)), n++;  /* 64 KiB in one slot */
    push(r, txq(r->data_ref, 0, 10, 0)), n++;     /* shorter than a header */
    /* 20 data slots, beyond the 18 a packet may have */
    push(r, txq(r->data_ref, 0, 20 * 60, XEN_NETTXF_more_data)), n++;
    for (i = 1; i < 20; i++, n++)
        push(r, txq(r->data_ref, 0, 60, i < 19 ? XEN_NETTXF_more_data : 0));
    /* later slots claiming more than the first one's total */
    push(r, txq(r->data_ref, 0, 60, XEN_NETTXF_more_data)), n++;
    push(r, txq(r->data_ref, 0, 1000, 0)), n++;
    send(r);
    got = collect(r, n, 5000, &okay);
    rg_check(
        r, got == n && okay == 0 && rg_be_state(r) == XenbusStateConnected,
        "bad grants, offsets, sizes and slot chains: %u of %u slots answered, %u OKAY",
        got, n, okay);
    rg_check(r, foreign >= 0 && rg_end_grant(foreign),
             "the foreign grant is idle at once");
}

/* A whole ring of random tx slots: answered, or the device closed (a
 * random chain may run past the ring, which Xen's netback also ends). */
static void garbage(struct rogue *r)
{
    unsigned int i, okay, got;

    for (i = 0; i < NET_RING_SIZE; i++) {
        get_random_bytes(RING_GET_REQUEST(&r->tx, r->tx.req_prod_pvt),
                         sizeof(struct xen_netif_tx_request));
        r->tx.req_prod_pvt++;
    }
    unsigned int s;

    send(r);
    got = collect(r, NET_RING_SIZE, 5000, &okay);
    s = rg_be_state(r);
    /* The last random packet may claim more slots to come: the back end
     * waits for them (it answered the rest), as Xen's does. */
    rg_check(r,
             s == XenbusStateClosing ||
                 (s == XenbusStateConnected && got >= NET_RING_SIZE - 18),
             "a ring of random tx slots: %u of %lu answered, back end state %u", got,
             NET_RING_SIZE, s);
    if (s != XenbusStateConnected || got != NET_RING_SIZE)
        rg_check(r, rg_reset(r) && vif_connect(r, NULL, XenbusStateConnected),
                 "connected again after the garbage");
}

/* rx buffers whose grants are bad: whatever arrives is answered with
 * errors, not written anywhere. */
static void bad_rx(struct rogue *r)
{
    unsigned int i;

    for (i = 0; i < NET_RING_SIZE; i++) {
        struct xen_netif_rx_request *q = RING_GET_REQUEST(&r->rx, r->rx.req_prod_pvt);

        q->id = i;
        q->gref = 0x7fffff00 + (i & 0xff); /* beyond the table */
        r->rx.req_prod_pvt++;
    }
    RING_PUSH_REQUESTS(&r->rx);
    rg_kick(r);
    msleep(2000);
    rg_check(r, rg_be_state(r) == XenbusStateConnected,
             "a ring of rx buffers with bad grants: still connected, %u answered",
             READ_ONCE(r->rx.sring->rsp_prod));
}

static void event_flood(struct rogue *r)
{
    rg_event_flood(r);
    valid_tx(r, "a frame after the event flood");
}

static void overrun(struct rogue *r)
{
    unsigned int okay;

    bool closed;

    WRITE_ONCE(r->tx.sring->req_prod, r->tx.req_prod_pvt + 100000);
    rg_kick(r);
    closed = rg_wait_be(r, XenbusStateClosing);
    rg_check(r, closed,
             "tx req_prod 100000 ahead: the back end closes the device (state %u)",
             rg_be_state(r));
    WRITE_ONCE(r->tx.sring->req_prod, r->tx.req_prod_pvt);
    push(r, txq(r->data_ref, 0, 60, 0));
    send(r);
    rg_check(r, collect(r, 1, 1000, &okay) == 0, "a frame after the close is not taken");
}

static void connects(struct rogue *r)
{
    unsigned int i, ok = 0;

    rg_check(r, rg_reset(r) && vif_connect(r, "4294967295", XenbusStateClosing),
             "a tx ring ref beyond the table is refused");
    for (i = 0; i < cycles; i++)
        ok += rg_reset(r) && vif_connect(r, NULL, XenbusStateConnected);
    rg_check(r, ok == cycles, "%u connect/close cycles: %u connected", cycles, ok);
    valid_tx(r, "a frame after the cycles");
}

void vif_attacks(struct rogue *r)
{
    bool ok;

    r->data_ref = rg_grant(r, r->data[0], r->dev->otherend_id, true);
    frame(r);
    rg_set_fe(r, XenbusStateInitialising);
    ok = rg_wait_be(r, XenbusStateInitWait) && vif_connect(r, NULL, XenbusStateConnected);
    if (!rg_check(r, ok, "connected (back end state %u)", rg_be_state(r)))
        return;
    valid_tx(r, "a well-formed frame");
    bad_tx(r);
    garbage(r);
    bad_rx(r);
    event_flood(r);
    overrun(r);
    connects(r);
    rg_set_fe(r, XenbusStateClosing);
    rg_set_fe(r, XenbusStateClosed);
}
