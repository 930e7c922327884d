// SPDX-License-Identifier: GPL-2.0
/* The xenstore abuser (rogue.h): quotas on entries, value size, path
 * length, watches and transactions, from the guest kernel's xenbus
 * connection.  Each refusal must come back as the errno Xen's xenstored
 * gives (the kernel maps an error string it does not know to EINVAL and
 * says "unknown error" in its log, which rogue.sh looks for). */
#include "rogue.h"

#define XS_DIR "data/rogue"

static void entries(struct rogue *r)
{
    char node[24];
    int i, err = 0;

    /* 40 directories, so that no children list reaches the node size */
    for (i = 0; i < 1500 && !err; i++) {
        snprintf(node, sizeof(node), "d%d/n%d", i % 40, i / 40);
        err = xenbus_write(XBT_NIL, XS_DIR, node, "x");
    }
    rg_check(r, err == -ENOSPC && i > 700 && i <= 1000,
             "entries: refused at the %dth node with %d (want -ENOSPC, quota 1000)", i,
             err);
    xenbus_rm(XBT_NIL, "data", "rogue");
    rg_check(r, !xenbus_write(XBT_NIL, XS_DIR, "after", "1"),
             "entries: a write once they are removed");
}

static void values(struct rogue *r)
{
    char *v = kmalloc(4001, GFP_KERNEL);
    int big, small;

    if (!v)
        return;
    memset(v, 'V', 4000);
    v[4000] = 0;
    big = xenbus_write(XBT_NIL, XS_DIR, "big", v);
    v[1500] = 0;
    small = xenbus_write(XBT_NIL, XS_DIR, "fits", v);
    rg_check(r, big == -ENOSPC && !small,
             "values: 4000 bytes refused with %d (want -ENOSPC), 1500 bytes %d", big,
             small);
    kfree(v);
}

static void paths(struct rogue *r)
{
    char *p = kmalloc(2400, GFP_KERNEL);
    int i, deep, longp;

    if (!p)
        return;
    for (i = 0; i < 2398; i += 2)
        memcpy(p + i, "a/", 2);
    p[2398] = 'z';
    p[2399] = 0;
    longp = xenbus_write(XBT_NIL, XS_DIR, p, "1");
    p[399] = 0; /* 200 levels: a/a/.../a */
    deep = xenbus_write(XBT_NIL, XS_DIR, p, "1");
    rg_check(r, longp == -EINVAL && !deep,
             "paths: 2400 bytes refused with %d (want -EINVAL), 200 levels %d", longp,
             deep);
    xenbus_rm(XBT_NIL, XS_DIR, "a");
    kfree(p);
}

static void watch_cb(struct xenbus_watch *w, const char *path, const char *token) {}

static void watches(struct rogue *r)
{
    unsigned int n = 200, i, ok = 0;
    struct xenbus_watch *w = kcalloc(n, sizeof(*w), GFP_KERNEL);
    int err = 0;

    if (!w)
        return;
    for (i = 0; i < n && !err; i++) {
        w[i].node = kasprintf(GFP_KERNEL, XS_DIR "/w%u", i);
        w[i].callback = watch_cb;
        err = w[i].node ? register_xenbus_watch(&w[i]) : -ENOMEM;
        ok += !err;
    }
    rg_check(r, err == -E2BIG && ok < 130,
             "watches: %u set, then %d (want -E2BIG, quota 128 with the kernel's own)",
             ok, err);
    for (i = 0; i < ok; i++)
        unregister_xenbus_watch(&w[i]);
    for (i = 0; i < n; i++)
        kfree(w[i].node);
    kfree(w);
}

static void transactions(struct rogue *r)
{
    struct xenbus_transaction t[16];
    unsigned int i, ok = 0;
    int err = 0;

    for (i = 0; i < ARRAY_SIZE(t) && !err; i++) {
        err = xenbus_transaction_start(&t[i]);
        ok += !err;
    }
    rg_check(r, err == -ENOSPC && ok <= 11,
             "transactions: %u open, then %d (want -ENOSPC, quota 10)", ok, err);
    for (i = 0; i < ok; i++)
        xenbus_transaction_end(t[i], 1);
}

/* One transaction rewriting one node thousands of times, then touching
 * more nodes than a transaction may. */
static void tx_flood(struct rogue *r)
{
    struct xenbus_transaction t;
    char node[24];
    int i, err = 0, rewrites;

    if (xenbus_transaction_start(&t))
        return;
    for (i = 0; i < 5000 && !err; i++)
        err = xenbus_printf(t, XS_DIR, "same", "%d", i);
    rewrites = i;
    for (i = 0; i < 1100 && !err; i++) {
        snprintf(node, sizeof(node), "t%d/n%d", i % 40, i / 40);
        err = xenbus_write(t, XS_DIR, node, "x");
    }
    xenbus_transaction_end(t, 1);
    rg_check(
        r, rewrites == 5000 && err == -ENOSPC && i > 700,
        "a transaction: 5000 rewrites of one node, then refused at its %dth node with %d "
        "(want -ENOSPC)",
        i, err);
}

void xs_attacks(struct rogue *r)
{
    entries(r);
    values(r);
    paths(r);
    watches(r);
    transactions(r);
    tx_flood(r);
    xenbus_rm(XBT_NIL, "data", "rogue");
    rg_check(r, !xenbus_write(XBT_NIL, XS_DIR, "end", "1"), "xenstore still answers");
}
