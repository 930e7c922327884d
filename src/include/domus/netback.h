/* The network back end of one virtual interface (Domain 0 side of
 * xen-netfront).
 *
 * One netback serves one vif of one domain, in a thread of the domain's
 * domus-vm (the xenbus side is xenbus_be.h, kind "vif").  Domain 0's end of
 * the interface is a tap device vif<domid>.<devid> (MAC fe:ff:ff:ff:ff:ff,
 * as Xen's vif-bridge script sets it) attached to a Linux bridge, which is
 * created and brought up when missing.  Closing the tap removes it from the
 * bridge; the bridge stays, as it does under Xen.
 *
 * Advertised: feature-rx-copy (the only receive mode), feature-sg,
 * feature-gso-tcpv4/-tcpv6, feature-ipv6-csum-offload; one queue and one
 * event channel (no split channels, no multi-queue), native ABI.
 *
 * Transmit (guest -> tap): each packet is a first request (size = the whole
 * packet), optional extra-info slots (GSO), then slots chained by
 * NETTXF_more_data.  The data is read from the guest's grants straight into
 * a writev() on the tap, behind a virtio_net_hdr that carries what the
 * guest asked: NETTXF_csum_blank becomes NEEDS_CSUM (offsets found by
 * parsing Ethernet/IPv4/IPv6/TCP/UDP headers), NETTXF_data_validated
 * DATA_VALID, a GSO extra TCPV4/TCPV6 with its MSS.  Every request gets its
 * response (extras XEN_NETIF_RSP_NULL): OKAY, or ERROR for a bad grant, an
 * offset/size outside the page, sizes that do not add up or too many
 * slots.  A packet still being queued is left for the next kick.
 *
 * Receive (tap -> guest): a frame read from the tap (with its
 * virtio_net_hdr; tap offloads set from the front end's features) is copied
 * into the guest's posted rx buffers, a page per slot, the first response
 * carrying NETRXF_csum_blank|data_validated for a partial checksum (or
 * data_validated) and NETRXF_extra_info followed by a GSO extra slot for a
 * GSO frame.  When too few buffers are posted the frame waits, and the tap
 * is not read, until the guest posts more.
 *
 * Ring indexes are hostile: a producer more than a ring ahead disconnects
 * the front end (state Closing), never a crash. */
#ifndef DOMUS_NETBACK_H
#define DOMUS_NETBACK_H

#include "domus/hv.h"

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xen/io/netif.h>

#define NETBACK_MAX_SLOTS XEN_NETIF_NR_SLOTS_MIN /* data slots of one packet */
#define NETBACK_MAX_FRAME (65535 + 14 + 4)       /* a GSO frame from the tap */
#define NETBACK_TX_BATCH 4096 /* packets netback_do_tx takes in one call at most */

struct netback;

struct netback_cfg {
    uint32_t devid;      /* the vif's number (handle) */
    uint8_t mac[6];      /* the guest's MAC (the front end reads it from xenstore) */
    char bridge[16];     /* Linux bridge to attach the tap to */
    unsigned mtu;        /* the tap's MTU, 68..65535 */
    const char *xs_path; /* xenstored's socket */
};

/* Creates the tap vif<domid>.<devid>, attaches it to the bridge (created
 * when missing) and starts the thread.  -errno with a reason in err;
 * nothing left behind but a bridge that was created. */
int netback_start(struct domain *d, const struct netback_cfg *cfg, struct netback **out,
                  char *err, size_t errlen);

/* The back end's thread parked (xbe_quiesce, waiting up to
 * NETBACK_QUIESCE_MS): no frame goes to the guest, no packet is taken from
 * it, until netback_resume.  0 or -errno. */
#define NETBACK_QUIESCE_MS 5000
int netback_quiesce(struct netback *nb);
void netback_resume(struct netback *nb);

/* Stops the thread, unbinds the event channel, closes the tap (which
 * removes it).  NULL is fine. */
void netback_stop(struct netback *nb);

/* A vif's traffic from the guest's side (xentop's NETTX/NETRX): packets and
 * bytes (Ethernet frames) it sent that reached the tap, and that it was
 * given.  Updated by the back end's thread, read by anyone. */
struct netback_stats {
    uint64_t tx_pkts, tx_bytes, rx_pkts, rx_bytes;
};

/* A copy of nb's counters (zeros for NULL). */
void netback_get_stats(const struct netback *nb, struct netback_stats *out);

/* ---- the data path, exposed for unit tests (no thread, no xenstore) ---- */

struct netback_io {
    struct domain *d;
    int tap_fd;                  /* frames with a virtio_net_hdr in front */
    struct netback_stats *stats; /* counted into, or NULL */
};

/* Consumes every complete packet on the tx ring, writing each to tap_fd.
 * *notify is set when the front end wants an event.  Returns the number of
 * packets taken (at most NETBACK_TX_BATCH: call again when it says so), or -EPROTO when
 * the front end's indexes are impossible or a packet chains more slots than a ring holds
 * (the caller disconnects). */
int netback_do_tx(const struct netback_io *io, netif_tx_back_ring_t *ring, bool *notify);

/* Places one frame (vh, then len bytes of data, len <= NETBACK_MAX_FRAME)
 * in the rx ring.  0 when placed, -EAGAIN when the guest has posted too few
 * buffers (nothing consumed), -EPROTO for impossible indexes.  A bad grant
 * in a posted buffer answers that slot NETIF_RSP_ERROR (the guest drops the
 * frame).  *notify is set when the front end wants an event. */
int netback_rx_frame(const struct netback_io *io, netif_rx_back_ring_t *ring,
                     const struct virtio_net_hdr *vh, const uint8_t *data, size_t len,
                     bool *notify);

/* Where the L4 checksum of an Ethernet frame goes: *start = offset of the
 * TCP/UDP header, *off = the checksum field within it, *l4_end = end of
 * the TCP header (start + 8 for UDP).  0, or -EINVAL when the frame is not
 * IPv4/IPv6 TCP/UDP with whole headers within len. */
int netback_csum_offsets(const uint8_t *frame, size_t len, uint16_t *start, uint16_t *off,
                         uint16_t *l4_end);

#endif
