// SPDX-License-Identifier: GPL-2.0
/* A rogue front end, for tests/scenarios/61-rogue.sh: the guest's vbd and
 * vif are driven by this module instead of xen-blkfront and xen-netfront
 * (the guest boots with module_blacklist=xen_blkfront,xen_netfront), and
 * it does to Domain 0's blkback and netback what a malicious guest would:
 * bad and foreign grant refs, bad segments, indirect descriptors with bad
 * counts and pages, a ring full of garbage, event floods, rsp_event games,
 * grants revoked and changed under a request, producer indexes far ahead,
 * requests after the back end closed, bad ring refs and ports at connect,
 * and connect/close cycles; then it abuses xenstore (quotas on entries,
 * values, paths, watches, transactions).  Each expectation is one line
 * on the console:
 *
 *   rogue: PASS|FAIL vbd|vif|xs: what
 *
 * and `rogue: done` at the end.  Built with hostile.ko (`make hostile`). */
#include "rogue.h"

unsigned int cycles = 30, flood = 100000, revokes = 200;
module_param(cycles, uint, 0444);
module_param(flood, uint, 0444);
module_param(revokes, uint, 0444);

static atomic_t running = ATOMIC_INIT(0);
static struct rogue xs = {.kind = "xs"};
static DECLARE_WAIT_QUEUE_HEAD(all_done);

bool rg_check(struct rogue *r, bool ok, const char *fmt, ...)
{
    struct va_format vaf;
    va_list ap;

    va_start(ap, fmt);
    vaf.fmt = fmt;
    vaf.va = &ap;
    pr_info("rogue: %s %s: %pV\n", ok ? "PASS" : "FAIL", r->kind, &vaf);
    va_end(ap);
    if (ok)
        r->pass++;
    else
        r->fail++;
    return ok;
}

unsigned int rg_be_state(struct rogue *r)
{
    return xenbus_read_unsigned(r->dev->otherend, "state", XenbusStateUnknown);
}

/* Until the back end's state is want (or, with want2, that): true, or false
 * after BE_WAIT_MS. */
bool rg_wait_be2(struct rogue *r, unsigned int want, unsigned int want2)
{
    unsigned int i, s = XenbusStateUnknown;

    for (i = 0; i < BE_WAIT_MS / 10; i++) {
        s = rg_be_state(r);
        if (s == want || s == want2)
            return true;
        msleep(10);
    }
    return false;
}

bool rg_wait_be(struct rogue *r, unsigned int want)
{
    return rg_wait_be2(r, want, want);
}

int rg_set_fe(struct rogue *r, unsigned int s)
{
    return xenbus_printf(XBT_NIL, r->dev->nodename, "state", "%u", s);
}

int rg_fe_write(struct rogue *r, const char *node, const char *val)
{
    return xenbus_write(XBT_NIL, r->dev->nodename, node, val);
}

int rg_fe_writeu(struct rogue *r, const char *node, unsigned long v)
{
    return xenbus_printf(XBT_NIL, r->dev->nodename, node, "%lu", v);
}

static irqreturn_t rogue_irq(int irq, void *arg)
{
    struct rogue *r = arg;

    atomic_inc(&r->events);
    return IRQ_HANDLED;
}

int rg_grant(struct rogue *r, void *page, domid_t to, bool ro)
{
    return gnttab_grant_foreign_access(to, virt_to_gfn(page), ro);
}

/* Ends access to ref (which must be idle) and frees it; false if busy. */
bool rg_end_grant(grant_ref_t ref)
{
    return gnttab_try_end_foreign_access(ref) == 1;
}

/* ---- the rings and the port, shared by both kinds ---- */

void rg_unbind(struct rogue *r)
{
    if (r->irq > 0)
        unbind_from_irqhandler(r->irq, r); /* closes the port */
    r->irq = 0;
    r->port = 0;
}

int rg_bind(struct rogue *r)
{
    int rc = xenbus_alloc_evtchn(r->dev, &r->port);

    if (rc)
        return rc;
    rc = bind_evtchn_to_irqhandler(r->port, rogue_irq, 0, "rogue", r);
    if (rc < 0) {
        xenbus_free_evtchn(r->dev, r->port);
        return rc;
    }
    r->irq = rc;
    return 0;
}

/* Ends the rings' grants; a ring the back end still has is leaked, as
 * Linux's front ends do (gnttab_end_foreign_access frees it later). */
void rg_drop_rings(struct rogue *r)
{
    unsigned int i;

    rg_unbind(r);
    for (i = 0; i < 2; i++) {
        if (!r->ring[i])
            continue;
        gnttab_end_foreign_access(r->ring_ref[i], virt_to_page(r->ring[i]));
        r->ring[i] = NULL;
    }
}

int rg_new_ring(struct rogue *r, unsigned int i)
{
    int ref;

    r->ring[i] = (void *)get_zeroed_page(GFP_KERNEL);
    if (!r->ring[i])
        return -ENOMEM;
    ref = rg_grant(r, r->ring[i], r->dev->otherend_id, false);
    if (ref < 0) {
        free_page((unsigned long)r->ring[i]);
        r->ring[i] = NULL;
        return ref;
    }
    r->ring_ref[i] = ref;
    return 0;
}

/* Closes the device and starts it again: Closing, Closed (the back end
 * disconnects), Initialising (the back end waits for us again).  true when
 * the back end followed. */
bool rg_reset(struct rogue *r)
{
    bool ok;

    rg_set_fe(r, XenbusStateClosing);
    rg_wait_be2(r, XenbusStateClosing, XenbusStateClosed);
    rg_set_fe(r, XenbusStateClosed);
    ok = rg_wait_be(r, XenbusStateClosed);
    rg_drop_rings(r);
    rg_set_fe(r, XenbusStateInitialising);
    return ok && rg_wait_be(r, XenbusStateInitWait);
}

void rg_kick(struct rogue *r)
{
    notify_remote_via_evtchn(r->port);
}

void rg_event_flood(struct rogue *r)
{
    unsigned long t0 = jiffies;
    unsigned int i;

    for (i = 0; i < flood; i++) {
        rg_kick(r);
        if (!(i & 1023))
            cond_resched();
    }
    rg_check(r, rg_be_state(r) == XenbusStateConnected,
             "%u events with nothing on the ring (%u ms), still connected", flood,
             jiffies_to_msecs(jiffies - t0));
}

/* ---- the driver ---- */

static int rogue_thread(void *arg)
{
    struct rogue *r = arg;

    if (!strcmp(r->kind, "vbd"))
        vbd_attacks(r);
    else
        vif_attacks(r);
    pr_info("rogue: %s finished: %u passed, %u failed\n", r->kind, r->pass, r->fail);
    if (atomic_dec_and_test(&running))
        wake_up(&all_done);
    return 0;
}

static int rogue_probe(struct xenbus_device *dev, const struct xenbus_device_id *id)
{
    struct rogue *r = kzalloc(sizeof(*r), GFP_KERNEL);
    struct task_struct *t;

    if (!r)
        return -ENOMEM;
    r->dev = dev;
    r->kind = id->devicetype;
    r->data[0] = (void *)get_zeroed_page(GFP_KERNEL);
    r->data[1] = (void *)get_zeroed_page(GFP_KERNEL);
    if (!r->data[0] || !r->data[1])
        return -ENOMEM; /* (a test module: left as it is) */
    dev_set_drvdata(&dev->dev, r);
    atomic_inc(&running);
    t = kthread_run(rogue_thread, r, "rogue-%s", r->kind);
    if (IS_ERR(t)) {
        atomic_dec(&running);
        return PTR_ERR(t);
    }
    return 0;
}

static void rogue_changed(struct xenbus_device *dev, enum xenbus_state s)
{
    /* the attack threads poll the back end's state themselves */
}

static void rogue_remove(struct xenbus_device *dev) {}

static const struct xenbus_device_id vbd_ids[] = {{"vbd"}, {""}};
static const struct xenbus_device_id vif_ids[] = {{"vif"}, {""}};

static struct xenbus_driver vbd_drv = {
    .ids = vbd_ids,
    .probe = rogue_probe,
    .otherend_changed = rogue_changed,
    .remove = rogue_remove,
    .not_essential = true,
};

static struct xenbus_driver vif_drv = {
    .ids = vif_ids,
    .probe = rogue_probe,
    .otherend_changed = rogue_changed,
    .remove = rogue_remove,
    .not_essential = true,
};

static int __init rogue_init(void)
{
    int rc = xenbus_register_frontend(&vbd_drv);

    if (rc)
        return rc;
    rc = xenbus_register_frontend(&vif_drv);
    if (rc) {
        xenbus_unregister_driver(&vbd_drv);
        return rc;
    }
    /* The probes start their threads from the registration; wait for them. */
    msleep(500);
    wait_event_timeout(all_done, atomic_read(&running) == 0, 600 * HZ);
    /* The xenstore abuser last: the devices' watches must find room. */
    xs_attacks(&xs);
    pr_info("rogue: xs finished: %u passed, %u failed\n", xs.pass, xs.fail);
    pr_info("rogue: done\n");
    return 0;
}

static void __exit rogue_exit(void)
{
    xenbus_unregister_driver(&vif_drv);
    xenbus_unregister_driver(&vbd_drv);
}

module_init(rogue_init);
module_exit(rogue_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Domus test: a rogue front end for vbd and vif");
