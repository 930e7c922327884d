/* SPDX-License-Identifier: GPL-2.0 */
/* The rogue front end's shared state and helpers (rogue_main.c); its
 * attacks on blkback (rogue_blk.c) and netback (rogue_net.c), and the
 * xenstore abuser (rogue_xs.c). */
#ifndef ROGUE_H
#define ROGUE_H
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/slab.h>

#include <xen/events.h>
#include <xen/grant_table.h>
#include <xen/page.h>
#include <xen/xenbus.h>
#include <xen/interface/io/blkif.h>
#include <xen/interface/io/netif.h>

extern unsigned int cycles, flood, revokes;

#define BE_WAIT_MS 8000
#define FOREIGN_DOMID 7 /* a domain that is not the back end's */

struct rogue {
    struct xenbus_device *dev;
    const char *kind; /* "vbd", "vif" */
    void *ring[2];    /* vbd: ring[0]; vif: tx, rx */
    grant_ref_t ring_ref[2];
    evtchn_port_t port;
    int irq;
    atomic_t events;
    void *data[2]; /* pages for I/O: data[0] granted writable to the back end */
    grant_ref_t data_ref;
    struct blkif_front_ring blk;
    struct xen_netif_tx_front_ring tx;
    struct xen_netif_rx_front_ring rx;
    unsigned int pass, fail;
};

/* One expectation: a PASS or FAIL line; returns ok. */
__printf(3, 4) bool rg_check(struct rogue *r, bool ok, const char *fmt, ...);
unsigned int rg_be_state(struct rogue *r);
/* Until the back end's state is want or want2: false after BE_WAIT_MS. */
bool rg_wait_be2(struct rogue *r, unsigned int want, unsigned int want2);
bool rg_wait_be(struct rogue *r, unsigned int want);
int rg_set_fe(struct rogue *r, unsigned int s);
int rg_fe_write(struct rogue *r, const char *node, const char *val);
int rg_fe_writeu(struct rogue *r, const char *node, unsigned long v);
/* A grant of page to domain to; the ref, or -errno. */
int rg_grant(struct rogue *r, void *page, domid_t to, bool ro);
/* Ends access to an idle ref and frees it; false when the back end has it. */
bool rg_end_grant(grant_ref_t ref);
/* An unbound port for the back end, bound to our counting handler. */
int rg_bind(struct rogue *r);
void rg_unbind(struct rogue *r);
/* ring[i]: a zeroed page granted writable to the back end. */
int rg_new_ring(struct rogue *r, unsigned int i);
/* Unbinds the port and ends the rings' grants. */
void rg_drop_rings(struct rogue *r);
/* Closing, Closed, Initialising: true when the back end followed to InitWait. */
bool rg_reset(struct rogue *r);
void rg_kick(struct rogue *r);
/* flood events with nothing on the ring; checks the back end stays Connected. */
void rg_event_flood(struct rogue *r);

void vbd_attacks(struct rogue *r);
void vif_attacks(struct rogue *r);
/* The xenstore abuser: r->kind only. */
void xs_attacks(struct rogue *r);
#endif
