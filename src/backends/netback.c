/* Network back end: the Domain 0 end of xen-netfront (contract: netback.h). */
#include "domus/netback.h"
#include "domus/sandbox.h"
#include "domus/util.h"
#include "domus/xenbus_be.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if_bridge.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define ETH_HLEN 14
#define PAGE ((size_t)DOMUS_PAGE_SIZE)

/* ---- header parsing ---- */

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Offset of the L4 header and its protocol, past IPv4 or IPv6 (with the
 * common extension headers); -EINVAL otherwise. */
static int l4_header(const uint8_t *f, size_t len, size_t *l4, uint8_t *proto)
{
    size_t o = ETH_HLEN;
    uint16_t type;

    if (len < ETH_HLEN)
        return -EINVAL;
    type = be16(f + 12);
    if (type == 0x8100 && len >= ETH_HLEN + 4) { /* one VLAN tag */
        type = be16(f + 16);
        o += 4;
    }
    if (type == 0x0800) {
        if (len < o + 20 || (f[o] >> 4) != 4 || (f[o] & 15) < 5)
            return -EINVAL;
        *proto = f[o + 9];
        *l4 = o + (size_t)(f[o] & 15) * 4;
        return 0;
    }
    if (type != 0x86dd || len < o + 40)
        return -EINVAL;
    uint8_t nh = f[o + 6];
    o += 40;
    for (int i = 0; i < 4 && (nh == 0 || nh == 43 || nh == 60); i++) {
        if (len < o + 8)
            return -EINVAL;
        nh = f[o];
        o += ((size_t)f[o + 1] + 1) * 8;
    }
    *proto = nh;
    *l4 = o;
    return 0;
}

int netback_csum_offsets(const uint8_t *frame, size_t len, uint16_t *start, uint16_t *off,
                         uint16_t *l4_end)
{
    size_t l4, end;
    uint8_t proto;

    if (l4_header(frame, len, &l4, &proto))
        return -EINVAL;
    if (proto == 6) {
        if (len < l4 + 20 || (frame[l4 + 12] >> 4) < 5)
            return -EINVAL;
        end = l4 + (size_t)(frame[l4 + 12] >> 4) * 4;
        *off = 16;
    } else if (proto == 17) {
        end = l4 + 8;
        *off = 6;
    } else {
        return -EINVAL;
    }
    if (end > len || end < l4 + 8)
        return -EINVAL;
    *start = (uint16_t)l4;
    *l4_end = (uint16_t)end;
    return 0;
}

/* ---- transmit: guest -> tap ---- */

struct txpkt {
    netif_tx_request_t req[NETBACK_MAX_SLOTS]; /* data slots */
    unsigned nreq;
    netif_extra_info_t gso; /* type 0 when none */
    unsigned slots;         /* ring slots taken, extras included */
};

/* Copies one whole packet's slots from the ring at cons.  0 when complete,
 * -EAGAIN when the front end is still queueing it, -E2BIG when it has more
 * data slots than we take (pkt->slots says how many to answer), -EPROTO
 * when it chains more than a ring. */
static int tx_gather(netif_tx_back_ring_t *ring, RING_IDX cons, RING_IDX rp,
                     struct txpkt *pkt)
{
    netif_tx_request_t r;
    bool more;
    int rc = 0;

    memset(pkt, 0, sizeof(*pkt));
    RING_COPY_REQUEST(ring, cons, &r);
    pkt->req[pkt->nreq++] = r;
    pkt->slots = 1;
    more = r.flags & NETTXF_extra_info;
    while (more) {
        netif_extra_info_t e;
        if (cons + pkt->slots == rp) /* the rest is still to come, unless it cannot be */
            return pkt->slots >= RING_SIZE(ring) ? -EPROTO : -EAGAIN;
        RING_COPY_REQUEST(ring, cons + pkt->slots, &r); /* a slot holds an extra */
        memcpy(&e, &r, sizeof(e));
        pkt->slots++;
        if (e.type == XEN_NETIF_EXTRA_TYPE_GSO)
            pkt->gso = e;
        more = e.flags & XEN_NETIF_EXTRA_FLAG_MORE;
        if (pkt->slots > RING_SIZE(ring))
            return -EPROTO;
    }
    more = pkt->req[0].flags & NETTXF_more_data;
    while (more) {
        if (cons + pkt->slots == rp) /* the rest is still to come, unless it cannot be */
            return pkt->slots >= RING_SIZE(ring) ? -EPROTO : -EAGAIN;
        RING_COPY_REQUEST(ring, cons + pkt->slots, &r);
        pkt->slots++;
        if (pkt->slots > RING_SIZE(ring))
            return -EPROTO;
        if (pkt->nreq < NETBACK_MAX_SLOTS)
            pkt->req[pkt->nreq] = r;
        else
            rc = -E2BIG;
        pkt->nreq++;
        more = r.flags & NETTXF_more_data;
    }
    return rc;
}

/* Ends the use (gnttab_map) of the first n slots' grants of pkt. */
static void tx_unmap(const struct netback_io *io, const struct txpkt *pkt, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnttab_unmap(io->d, pkt->req[i].gref, false);
}

/* The packet's data as iovecs into the granted frames (after iov[0], the
 * virtio header), mapped until tx_unmap(pkt->nreq); the byte count, or -1
 * when a slot is bad (nothing left mapped). */
static ssize_t tx_map(const struct netback_io *io, const struct txpkt *pkt,
                      struct iovec *iov)
{
    size_t rest = pkt->req[0].size, total = rest;

    for (unsigned i = pkt->nreq;
         i-- > 1;) { /* the first slot has what the others do not */
        if (pkt->req[i].size > rest)
            return -1;
        rest -= pkt->req[i].size;
    }
    for (unsigned i = 0; i < pkt->nreq; i++) {
        const netif_tx_request_t *r = &pkt->req[i];
        size_t len = i ? r->size : rest;
        uint64_t gpa;
        void *p = NULL;
        if (r->offset + len > PAGE ||
            gnttab_map(io->d, r->gref, 0, false, &gpa) != GNTST_okay) {
            tx_unmap(io, pkt, i);
            return -1;
        }
        if (!(p = gmem_ptr(&io->d->mem, gpa + r->offset, len ? len : 1))) {
            tx_unmap(io, pkt, i + 1);
            return -1;
        }
        iov[1 + i] = (struct iovec){p, len};
    }
    if (total < ETH_HLEN)
        tx_unmap(io, pkt, pkt->nreq);
    return total >= ETH_HLEN ? (ssize_t)total : -1;
}

/* The first bytes of the packet, for header parsing. */
static size_t tx_peek(const struct iovec *iov, unsigned n, uint8_t *buf, size_t max)
{
    size_t got = 0;

    for (unsigned i = 0; i < n && got < max; i++) {
        size_t c = iov[i].iov_len < max - got ? iov[i].iov_len : max - got;
        memcpy(buf + got, iov[i].iov_base, c);
        got += c;
    }
    return got;
}

/* The virtio header for what the guest asked of the packet, from head (the
 * packet's first n bytes, copied once); -1 when it asks a checksum or GSO
 * of something that is not TCP/UDP over IP. */
static int tx_vnet_hdr(const struct txpkt *pkt, const uint8_t *head, size_t n,
                       struct virtio_net_hdr *vh)
{
    uint16_t start, off, end;
    bool csum = pkt->req[0].flags & NETTXF_csum_blank;

    memset(vh, 0, sizeof(*vh));
    if (pkt->gso.type &&
        (pkt->gso.u.gso.size == 0 || (pkt->gso.u.gso.type != XEN_NETIF_GSO_TYPE_TCPV4 &&
                                      pkt->gso.u.gso.type != XEN_NETIF_GSO_TYPE_TCPV6)))
        return -1;
    if (!csum && !pkt->gso.type) {
        if (pkt->req[0].flags & NETTXF_data_validated)
            vh->flags = VIRTIO_NET_HDR_F_DATA_VALID;
        return 0;
    }
    if (netback_csum_offsets(head, n, &start, &off, &end))
        return -1;
    vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    vh->csum_start = start;
    vh->csum_offset = off;
    if (pkt->gso.type) {
        vh->gso_type = pkt->gso.u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4
                           ? VIRTIO_NET_HDR_GSO_TCPV4
                           : VIRTIO_NET_HDR_GSO_TCPV6;
        vh->gso_size = pkt->gso.u.gso.size;
        vh->hdr_len = end;
    }
    return 0;
}

/* out = [vh][head's n bytes][the rest of the n data iovecs in, after their
 * first n bytes]: the tap gets the very header bytes the virtio header was
 * built from, not a second read of guest memory the guest may have changed
 * meanwhile.  Returns the iovec count. */
static int tx_iov(const struct iovec *in, unsigned nin, struct virtio_net_hdr *vh,
                  uint8_t *head, size_t n, struct iovec *out)
{
    int k = 0;
    out[k++] = (struct iovec){vh, sizeof(*vh)};
    out[k++] = (struct iovec){head, n};
    for (unsigned i = 0; i < nin; i++) {
        size_t skip = n < in[i].iov_len ? n : in[i].iov_len;
        n -= skip;
        if (in[i].iov_len > skip)
            out[k++] =
                (struct iovec){(uint8_t *)in[i].iov_base + skip, in[i].iov_len - skip};
    }
    return k;
}

static void count(uint64_t *pkts, uint64_t *bytes, uint64_t len)
{
    __atomic_fetch_add(pkts, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(bytes, len, __ATOMIC_RELAXED);
}

/* Sends one packet to the tap; the status for its responses. */
static int16_t tx_send(const struct netback_io *io, const struct txpkt *pkt)
{
    struct iovec iov[1 + NETBACK_MAX_SLOTS], out[2 + NETBACK_MAX_SLOTS];
    struct virtio_net_hdr vh;
    uint8_t head[256];
    ssize_t len = tx_map(io, pkt, iov);

    if (len < 0)
        return NETIF_RSP_ERROR;
    size_t n = tx_peek(iov + 1, pkt->nreq, head, sizeof(head));
    if (tx_vnet_hdr(pkt, head, n, &vh) == 0) {
        int cnt = tx_iov(iov + 1, pkt->nreq, &vh, head, n, out);
        if (writev(io->tap_fd, out, cnt) < 0)
            dlog_debug("vif tx: %s", strerror(errno)); /* dropped */
        else if (io->stats)
            count(&io->stats->tx_pkts, &io->stats->tx_bytes, (uint64_t)len);
    } /* else taken and dropped, as a NIC would */
    tx_unmap(io, pkt, pkt->nreq);
    return NETIF_RSP_OKAY;
}

static void tx_respond(netif_tx_back_ring_t *ring, RING_IDX cons, unsigned slots,
                       int16_t st)
{
    for (unsigned i = 0; i < slots; i++) {
        netif_tx_request_t r;
        RING_COPY_REQUEST(ring, cons + i, &r);
        netif_tx_response_t *rsp = RING_GET_RESPONSE(ring, ring->rsp_prod_pvt);
        rsp->id = r.id;
        rsp->status = st;
        ring->rsp_prod_pvt++;
    }
}

int netback_do_tx(const struct netback_io *io, netif_tx_back_ring_t *ring, bool *notify)
{
    int sent = 0, more = 0;
    bool n, partial = false;

    *notify = false;
    do {
        RING_IDX rp = __atomic_load_n(&ring->sring->req_prod, __ATOMIC_ACQUIRE);
        if (XBE_REQ_PROD_BAD(ring, rp))
            return -EPROTO;
        while (ring->req_cons != rp && sent < NETBACK_TX_BATCH) {
            struct txpkt pkt;
            int rc = tx_gather(ring, ring->req_cons, rp, &pkt);
            if ((partial = rc == -EAGAIN)) {
                /* the front end is still queueing it: an event when it adds
                 * more; if it did meanwhile, look again */
                __atomic_store_n(&ring->sring->req_event, rp + 1, __ATOMIC_RELEASE);
                xen_mb();
                partial = __atomic_load_n(&ring->sring->req_prod, __ATOMIC_ACQUIRE) == rp;
                break;
            }
            if (rc == -EPROTO)
                return -EPROTO;
            int16_t st = rc ? NETIF_RSP_ERROR : tx_send(io, &pkt);
            unsigned extras = pkt.slots - pkt.nreq;
            tx_respond(ring, ring->req_cons, 1, st);
            for (unsigned i = 0; i < extras; i++)
                RING_GET_RESPONSE(ring, ring->rsp_prod_pvt++)->status = NETIF_RSP_NULL;
            tx_respond(ring, ring->req_cons + 1 + extras, pkt.nreq - 1, st);
            ring->req_cons += pkt.slots;
            sent++;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, n);
        *notify = *notify || n;
        if (partial || sent >= NETBACK_TX_BATCH)
            break; /* the caller comes back for more (a batch is a fair share) */
        RING_FINAL_CHECK_FOR_REQUESTS(ring, more);
    } while (more);
    return sent;
}

/* ---- receive: tap -> guest ---- */

/* Copies len bytes into the buffer of rx request at ring index i and
 * answers it; false when the grant was bad. */
static bool rx_fill(const struct netback_io *io, netif_rx_back_ring_t *ring, RING_IDX i,
                    const uint8_t *data, size_t len, uint16_t flags)
{
    netif_rx_request_t req;
    uint64_t gpa;
    void *p = NULL;

    RING_COPY_REQUEST(ring, i, &req);
    if (gnttab_map(io->d, req.gref, 0, true, &gpa) == GNTST_okay) {
        p = gmem_ptr(&io->d->mem, gpa, PAGE);
        if (p)
            memcpy(p, data, len);
        gnttab_unmap(io->d, req.gref, true);
    }
    netif_rx_response_t *rsp = RING_GET_RESPONSE(ring, i);
    rsp->id = req.id;
    rsp->offset = 0;
    rsp->flags = flags;
    rsp->status = p ? (int16_t)len : NETIF_RSP_ERROR;
    return p != NULL;
}

static void rx_extra_gso(netif_rx_back_ring_t *ring, RING_IDX i,
                         const struct virtio_net_hdr *vh)
{
    netif_extra_info_t e = {.type = XEN_NETIF_EXTRA_TYPE_GSO};

    e.u.gso.size = vh->gso_size;
    e.u.gso.type = (vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV6
                       ? XEN_NETIF_GSO_TYPE_TCPV6
                       : XEN_NETIF_GSO_TYPE_TCPV4;
    memcpy(RING_GET_RESPONSE(ring, i), &e, sizeof(e));
}

int netback_rx_frame(const struct netback_io *io, netif_rx_back_ring_t *ring,
                     const struct virtio_net_hdr *vh, const uint8_t *data, size_t len,
                     bool *notify)
{
    bool gso = vh->gso_type != VIRTIO_NET_HDR_GSO_NONE;
    size_t chunks = len ? (len + PAGE - 1) / PAGE : 1, done = 0;
    RING_IDX rp = __atomic_load_n(&ring->sring->req_prod, __ATOMIC_ACQUIRE), i;
    uint16_t csum =
        vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM
            ? NETRXF_csum_blank | NETRXF_data_validated
            : (vh->flags & VIRTIO_NET_HDR_F_DATA_VALID ? NETRXF_data_validated : 0);

    *notify = false;
    if (len > NETBACK_MAX_FRAME || XBE_REQ_PROD_BAD(ring, rp))
        return len > NETBACK_MAX_FRAME ? -EINVAL : -EPROTO;
    if (rp - ring->req_cons < chunks + gso)
        return -EAGAIN;
    i = ring->req_cons;
    for (size_t c = 0; c < chunks; c++) {
        size_t n = len - done < PAGE ? len - done : PAGE;
        uint16_t fl = (c == 0 ? csum : 0) | (c + 1 < chunks ? NETRXF_more_data : 0) |
                      (c == 0 && gso ? NETRXF_extra_info : 0);
        rx_fill(io, ring, i++, data + done, n, fl);
        done += n;
        if (c == 0 && gso)
            rx_extra_gso(ring, i++, vh);
    }
    ring->req_cons = i;
    ring->rsp_prod_pvt = i;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, *notify);
    if (io->stats)
        count(&io->stats->rx_pkts, &io->stats->rx_bytes, len);
    return 0;
}

/* ---- the xenbus side ---- */

struct netback {
    struct xbe xb;
    struct netback_io io;
    struct netback_cfg cfg;
    char ifname[IFNAMSIZ];
    netif_tx_back_ring_t tx;
    netif_rx_back_ring_t rx;
    struct virtio_net_hdr *pend_vh; /* a frame read from the tap, waiting for buffers */
    uint8_t *frame;                 /* its buffer: header then data */
    size_t pend_len;                /* its data length; 0: none waiting */
    grant_ref_t ring_ref[2];        /* tx, rx: in use while ring_mapped[i] */
    bool ring_mapped[2];
    uint64_t rx_frames, rx_bytes, rx_waits, tx_pkts; /* for the log line at stop */
    struct netback_stats stats; /* the domain's whole life, across connections */
};

void netback_get_stats(const struct netback *nb, struct netback_stats *out)
{
    const uint64_t *in = nb ? (const uint64_t *)&nb->stats : NULL;
    uint64_t *o = (uint64_t *)out;

    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        o[i] = in ? __atomic_load_n(&in[i], __ATOMIC_RELAXED) : 0;
}

static int nb_advertise(struct xbe *x)
{
    static const char *const on[] = {"feature-rx-copy", "feature-sg", "feature-gso-tcpv4",
                                     "feature-gso-tcpv6", "feature-ipv6-csum-offload"};
    int rc = 0;

    for (size_t i = 0; i < ARRAY_SIZE(on) && !rc; i++)
        rc = xbe_writef(x, on[i], "1");
    rc = rc ? rc : xbe_writef(x, "feature-rx-flip", "0");
    rc = rc ? rc : xbe_writef(x, "hotplug-status", "connected");
    return rc;
}

/* Ends the use of the ring pages: the front end may free them. */
static void nb_unmap_rings(struct netback *nb)
{
    for (unsigned i = 0; i < 2; i++)
        if (nb->ring_mapped[i])
            xbe_unmap_ring(&nb->xb, nb->ring_ref[i]);
    nb->ring_mapped[0] = nb->ring_mapped[1] = false;
    memset(&nb->tx, 0, sizeof(nb->tx));
    memset(&nb->rx, 0, sizeof(nb->rx));
}

static void nb_disconnect(struct xbe *x)
{
    struct netback *nb = x->priv;

    nb_unmap_rings(nb);
    nb->pend_len = 0;
}

/* A front-end flag (0 when absent). */
static bool fe_flag(struct xbe *x, const char *rel)
{
    uint64_t v = 0;

    return !xbe_read_uint(x, x->fpath, rel, 1, &v) && v;
}

/* What the tap may hand us, from what the front end takes. */
static void set_offloads(struct netback *nb)
{
    struct xbe *x = &nb->xb;
    unsigned off = 0;

    if (!fe_flag(x, "feature-no-csum-offload")) {
        off |= TUN_F_CSUM;
        if (fe_flag(x, "feature-sg") && fe_flag(x, "feature-gso-tcpv4"))
            off |= TUN_F_TSO4 | TUN_F_TSO_ECN;
        if (fe_flag(x, "feature-sg") && fe_flag(x, "feature-gso-tcpv6"))
            off |= TUN_F_TSO6 | TUN_F_TSO_ECN;
    }
    if (ioctl(nb->io.tap_fd, TUNSETOFFLOAD, off) < 0 && xbe_log_ok(x))
        dwarn("%s: offloads %#x: %s", nb->ifname, off, strerror(errno));
}

static const char *nb_connect(struct xbe *x)
{
    struct netback *nb = x->priv;
    uint64_t n;
    void *txs, *rxs;

    if (!xbe_read_uint(x, x->fpath, "multi-queue-num-queues", 1024, &n) && n > 1)
        return "multiple queues are not offered";
    if (xbe_read_uint(x, x->fpath, "request-rx-copy", 1, &n) || n != 1)
        return "front end does not use the copying receive path";
    txs = xbe_map_ring(x, "tx-ring-ref", &nb->ring_ref[0]);
    nb->ring_mapped[0] = txs != NULL;
    rxs = txs ? xbe_map_ring(x, "rx-ring-ref", &nb->ring_ref[1]) : NULL;
    nb->ring_mapped[1] = rxs != NULL;
    if (!rxs) {
        nb_unmap_rings(nb);
        return "tx-ring-ref or rx-ring-ref is not a writable grant to Domain 0";
    }
    BACK_RING_INIT(&nb->tx, (netif_tx_sring_t *)txs, PAGE);
    BACK_RING_INIT(&nb->rx, (netif_rx_sring_t *)rxs, PAGE);
    set_offloads(nb);
    const char *why = xbe_bind_port(x, "event-channel");
    if (why)
        nb_unmap_rings(nb);
    return why;
}

/* Moves frames from the tap into the guest until it runs out of buffers
 * (the frame then waits) or the tap is empty. */
static int rx_pump(struct netback *nb, bool *notify)
{
    bool rechecked = false;

    for (int i = 0; i < 256; i++) {
        bool n;
        int rc;
        if (!nb->pend_len) {
            ssize_t got =
                read(nb->io.tap_fd, nb->frame, sizeof(*nb->pend_vh) + NETBACK_MAX_FRAME);
            if (got <= (ssize_t)sizeof(*nb->pend_vh))
                return 0; /* empty (EAGAIN) or a runt */
            nb->pend_len = (size_t)got - sizeof(*nb->pend_vh);
        }
        rc = netback_rx_frame(&nb->io, &nb->rx, nb->pend_vh,
                              nb->frame + sizeof(*nb->pend_vh), nb->pend_len, &n);
        *notify = *notify || n;
        if (rc == -EAGAIN) {
            nb->rx_waits += !rechecked;
            /* An event when it posts any more buffers (RING_FINAL_CHECK_FOR_
             * REQUESTS would not ask while a few, too few, are there). */
            RING_IDX rp = __atomic_load_n(&nb->rx.sring->req_prod, __ATOMIC_ACQUIRE);
            __atomic_store_n(&nb->rx.sring->req_event, rp + 1, __ATOMIC_RELEASE);
            xen_mb();
            if (rechecked ||
                __atomic_load_n(&nb->rx.sring->req_prod, __ATOMIC_ACQUIRE) == rp)
                return 0;
            rechecked = true;
            continue;
        }
        if (rc < 0 && rc != -EINVAL)
            return rc;
        nb->rx_frames += rc == 0;
        nb->rx_bytes += rc == 0 ? nb->pend_len : 0;
        nb->pend_len = 0;
        rechecked = false;
    }
    return 0;
}

static void nb_serve(struct xbe *x)
{
    struct netback *nb = x->priv;
    bool ntx = false, nrx = false;

    int sent = netback_do_tx(&nb->io, &nb->tx, &ntx);
    uint64_t one = 1;

    nb->tx_pkts += sent > 0 ? (uint64_t)sent : 0;
    if (sent < 0 || rx_pump(nb, &nrx) < 0) {
        xbe_fatal(x, "front end ring indexes are corrupt");
        return;
    }
    if (sent >= NETBACK_TX_BATCH && write(x->kick_fd, &one, sizeof(one)) < 0)
        dwarn("%s: kick: %s", nb->ifname, strerror(errno)); /* more to send: come back */
    if (ntx || nrx)
        xbe_notify(x);
}

static short nb_poll_fd(struct xbe *x, int *fd)
{
    struct netback *nb = x->priv;

    *fd = nb->io.tap_fd;
    return nb->pend_len ? 0 : POLLIN;
}

static bool nb_unseen(struct xbe *x)
{
    struct netback *nb = x->priv;

    return nb->tx.sring && (XBE_RSP_UNSEEN(&nb->tx) || XBE_RSP_UNSEEN(&nb->rx));
}

static const struct xbe_ops nb_ops = {
    .advertise = nb_advertise,
    .connect = nb_connect,
    .disconnect = nb_disconnect,
    .serve = nb_serve,
    .poll_fd = nb_poll_fd,
    .unseen = nb_unseen,
    .sandbox = SANDBOX_TAP,
};

/* ---- the tap and the bridge ---- */

static int if_ioctl(int s, unsigned long req, struct ifreq *ifr, const char *what,
                    char *err, size_t errlen)
{
    if (ioctl(s, req, ifr) == 0)
        return 0;
    dfmt(err, errlen, "%s %s: %s", what, ifr->ifr_name, strerror(errno));
    return -errno;
}

static int if_up(int s, const char *name, char *err, size_t errlen)
{
    struct ifreq ifr = {0};
    int rc;

    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    rc = if_ioctl(s, SIOCGIFFLAGS, &ifr, "flags of", err, errlen);
    ifr.ifr_flags |= IFF_UP;
    return rc ? rc : if_ioctl(s, SIOCSIFFLAGS, &ifr, "bringing up", err, errlen);
}

/* The bridge (created when missing, brought up) with the tap in it. */
static int bridge_attach(int s, const char *bridge, const char *tap, char *err,
                         size_t errlen)
{
    struct ifreq ifr = {0};
    int rc = 0;

    if (!if_nametoindex(bridge) && ioctl(s, SIOCBRADDBR, bridge) < 0 && errno != EEXIST) {
        dfmt(err, errlen, "creating bridge %s: %s", bridge, strerror(errno));
        return -errno;
    }
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", bridge);
    ifr.ifr_ifindex = (int)if_nametoindex(tap);
    rc = if_up(s, bridge, err, errlen);
    return rc ? rc
              : if_ioctl(s, SIOCBRADDIF, &ifr, "adding the vif to bridge", err, errlen);
}

/* Domain 0's end of the vif: MAC fe:ff:ff:ff:ff:ff, the MTU, up, bridged. */
static int tap_setup(struct netback *nb, char *err, size_t errlen)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    int rc;

    if (s < 0) {
        dfmt(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", nb->ifname);
    ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
    memset(ifr.ifr_hwaddr.sa_data, 0xff, 6);
    ifr.ifr_hwaddr.sa_data[0] = (char)0xfe;
    rc = if_ioctl(s, SIOCSIFHWADDR, &ifr, "setting the MAC of", err, errlen);
    ifr.ifr_mtu = (int)nb->cfg.mtu;
    rc = rc ? rc : if_ioctl(s, SIOCSIFMTU, &ifr, "setting the MTU of", err, errlen);
    rc = rc ? rc : if_up(s, nb->ifname, err, errlen);
    rc = rc ? rc : bridge_attach(s, nb->cfg.bridge, nb->ifname, err, errlen);
    close(s);
    return rc;
}

static int tap_open(struct netback *nb, char *err, size_t errlen)
{
    struct ifreq ifr = {0};
    int hdr = sizeof(struct virtio_net_hdr);

    nb->io.tap_fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (nb->io.tap_fd < 0) {
        dfmt(err, errlen, "vif %s: /dev/net/tun: %s", nb->ifname, strerror(errno));
        return -errno;
    }
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", nb->ifname);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_ONE_QUEUE;
    if (ioctl(nb->io.tap_fd, TUNSETIFF, &ifr) < 0 ||
        ioctl(nb->io.tap_fd, TUNSETVNETHDRSZ, &hdr) < 0) {
        dfmt(err, errlen, "vif %s: tap: %s", nb->ifname, strerror(errno));
        return -errno;
    }
    return tap_setup(nb, err, errlen);
}

int netback_start(struct domain *d, const struct netback_cfg *cfg, struct netback **out,
                  char *err, size_t errlen)
{
    struct netback *nb = calloc(1, sizeof(*nb));
    int rc;

    if (!nb)
        return -ENOMEM;
    nb->io = (struct netback_io){.d = d, .tap_fd = -1, .stats = &nb->stats};
    nb->cfg = *cfg;
    snprintf(nb->ifname, sizeof(nb->ifname), "vif%u.%u", d->domid, cfg->devid);
    if ((rc = xbe_init(&nb->xb, d, "vif", cfg->devid, cfg->xs_path, &nb_ops, nb)) < 0) {
        dfmt(err, errlen, "vif %s: %s", nb->ifname, strerror(-rc));
        goto out;
    }
    nb->frame = malloc(sizeof(struct virtio_net_hdr) + NETBACK_MAX_FRAME);
    nb->pend_vh = (struct virtio_net_hdr *)nb->frame;
    if (!nb->frame) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = tap_open(nb, err, errlen)) < 0)
        goto out;
    if ((rc = xbe_start(&nb->xb)) < 0) {
        dfmt(err, errlen, "vif %s: thread: %s", nb->ifname, strerror(-rc));
        goto out;
    }
    dinfo("dom%u: %s on bridge %s", d->domid, nb->ifname, cfg->bridge);
    *out = nb;
    return 0;
out:
    netback_stop(nb);
    return rc;
}

int netback_quiesce(struct netback *nb)
{
    return xbe_quiesce(&nb->xb, NETBACK_QUIESCE_MS);
}

void netback_resume(struct netback *nb)
{
    xbe_resume(&nb->xb);
}

void netback_stop(struct netback *nb)
{
    if (!nb)
        return;
    xbe_stop(&nb->xb);
    if (nb->xb.kicks || nb->rx_frames)
        dinfo("%s: to the guest %" PRIu64 " frames (%" PRIu64 " bytes, %" PRIu64
              " waits for buffers), from it %" PRIu64 " packets; %" PRIu64
              " events, %" PRIu64 " idle seconds, %" PRIu64 " events sent again",
              nb->ifname, nb->rx_frames, nb->rx_bytes, nb->rx_waits, nb->tx_pkts,
              nb->xb.kicks, nb->xb.timeouts, nb->xb.resent);
    if (nb->io.tap_fd >= 0)
        close(nb->io.tap_fd);
    free(nb->frame);
    free(nb);
}
