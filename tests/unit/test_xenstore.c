/* xenstored core: node operations, permissions, watches, transactions,
 * quotas and domain management, driven through the memory transport. */
#include "xs_test.h"

/* From ASan's runtime (the unit tests are built with it): bytes allocated
 * and not freed. */
size_t __sanitizer_get_current_allocated_bytes(void);

static struct xs_daemon *d;

/* dom0 gives domain domid its home, owned by it (as libxl does). */
static void make_home(struct tc *t0, unsigned domid)
{
    char path[64], perm[16];
    snprintf(path, sizeof(path), "/local/domain/%u", domid);
    snprintf(perm, sizeof(perm), "n%u", domid);
    REQ(t0, XS_MKDIR, 0, path);
    REQ(t0, XS_SET_PERMS, 0, path, perm);
}

static void test_basic(void)
{
    struct tc t;
    tc_open(&t, d, 0);
    WR(&t, 0, "/a/b/c", "hello");
    CHECK("write creates parents", is_ok(XS_WRITE));
    REQ(&t, XS_READ, 0, "/a/b/c");
    CHECK("read back value",
          R.h.type == XS_READ && R.h.len == 5 && !memcmp(R.body, "hello", 5));
    CHECK("reply echoes req_id", R.h.req_id == t.req_id);
    REQ(&t, XS_READ, 0, "/a/b");
    CHECK("implicit parent has empty value", R.h.type == XS_READ && R.h.len == 0);
    REQ(&t, XS_READ, 0, "/nope");
    CHECK("read missing -> ENOENT", is_err("ENOENT"));
    WR(&t, 0, "/a/x", "");
    REQ(&t, XS_DIRECTORY, 0, "/a");
    CHECK("directory lists children",
          R.h.type == XS_DIRECTORY && R.h.len == 4 && !memcmp(R.body, "b\0x\0", 4));
    REQ(&t, XS_MKDIR, 0, "/a/b");
    CHECK("mkdir existing ok", is_ok(XS_MKDIR));
    REQ(&t, XS_READ, 0, "/a/b/c");
    CHECK("mkdir keeps values", R.h.len == 5);
    REQ(&t, XS_GET_PERMS, 0, "/a/b/c");
    CHECK("default perms n0", R.h.type == XS_GET_PERMS && !strcmp(R.body, "n0"));
    REQ(&t, XS_RM, 0, "/a/b");
    CHECK("rm subtree", is_ok(XS_RM));
    REQ(&t, XS_READ, 0, "/a/b/c");
    CHECK("rm removed children", is_err("ENOENT"));
    REQ(&t, XS_RM, 0, "/a/b");
    CHECK("rm missing with parent ok", is_ok(XS_RM));
    REQ(&t, XS_RM, 0, "/zz/top");
    CHECK("rm missing parent ENOENT", is_err("ENOENT"));
    REQ(&t, XS_RM, 0, "/");
    CHECK("rm / EINVAL", is_err("EINVAL"));
    WR(&t, 0, "rel", "v");
    REQ(&t, XS_READ, 0, "/local/domain/0/rel");
    CHECK("dom0 relative path under /local/domain/0",
          R.h.type == XS_READ && R.h.len == 1);
    REQ(&t, XS_GET_DOMAIN_PATH, 0, "7");
    CHECK("get domain path",
          R.h.type == XS_GET_DOMAIN_PATH && !strcmp(R.body, "/local/domain/7"));
    REQ(&t, XS_RM, 0, "/a");
    REQ(&t, XS_RM, 0, "/local/domain/0");
    xs_conn_free(t.c);
}

static void test_perms(void)
{
    struct tc t0, t5, t6;
    tc_open(&t0, d, 0);
    tc_open(&t5, d, 5);
    tc_open(&t6, d, 6);
    make_home(&t0, 5);
    WR(&t5, 0, "data/x", "1");
    CHECK("domain writes relative in its home", is_ok(XS_WRITE));
    REQ(&t5, XS_GET_PERMS, 0, "data/x");
    CHECK("created node owned by creator, inherits", !strcmp(R.body, "n5"));
    REQ(&t6, XS_READ, 0, "/local/domain/5/data/x");
    CHECK("other domain cannot read", is_err("EACCES"));
    REQ(&t6, XS_READ, 0, "/local/domain/5/data/none");
    CHECK("missing node hidden as EACCES", is_err("EACCES"));
    WR(&t6, 0, "/local/domain/5/data/y", "1");
    CHECK("other domain cannot create", is_err("EACCES"));
    REQ(&t5, XS_SET_PERMS, 0, "data/x", "n5", "r6");
    CHECK("owner adds r6", is_ok(XS_SET_PERMS));
    REQ(&t6, XS_READ, 0, "/local/domain/5/data/x");
    CHECK("r6 can read", R.h.type == XS_READ && !strcmp(R.body, "1"));
    WR(&t6, 0, "/local/domain/5/data/x", "2");
    CHECK("r6 cannot write", is_err("EACCES"));
    REQ(&t5, XS_SET_PERMS, 0, "data/x", "n6");
    CHECK("unprivileged cannot change owner", is_err("EPERM"));
    REQ(&t6, XS_SET_PERMS, 0, "/local/domain/5/data/x", "n6");
    CHECK("non-owner cannot set perms", is_err("EACCES"));
    REQ(&t5, XS_SET_PERMS, 0, "data/x", "b5");
    REQ(&t6, XS_READ, 0, "/local/domain/5/data/x");
    CHECK("default perm b applies to others", R.h.type == XS_READ);
    REQ(&t0, XS_SET_PERMS, 0, "/local/domain/5/data/x", "n6", "b5");
    CHECK("dom0 changes owner", is_ok(XS_SET_PERMS));
    REQ(&t5, XS_READ, 0, "data/x");
    CHECK("acl entry for old owner works", R.h.type == XS_READ);
    REQ(&t0, XS_SET_PERMS, 0, "/local/domain/5/data/x", "q5");
    CHECK("bad perm letter EINVAL", is_err("EINVAL"));
    REQ(&t0, XS_SET_PERMS, 0, "/local/domain/5/data/x", "r");
    CHECK("perm without domid EINVAL", is_err("EINVAL"));
    REQ(&t0, XS_SET_PERMS, 0, "/local/domain/5/data/x");
    CHECK("set perms without perms EINVAL", is_err("EINVAL"));
    REQ(&t5, XS_INTRODUCE, 0, "9", "1", "2");
    CHECK("INTRODUCE unprivileged EACCES", is_err("EACCES"));
    REQ(&t5, XS_CONTROL, 0, "print", "hi");
    CHECK("CONTROL unprivileged EACCES", is_err("EACCES"));
    REQ(&t5, XS_IS_DOMAIN_INTRODUCED, 0, "0");
    CHECK("IS_DOMAIN_INTRODUCED unprivileged EACCES", is_err("EACCES"));
    REQ(&t0, XS_RM, 0, "/local/domain/5");
    xs_conn_free(t0.c);
    xs_conn_free(t5.c);
    xs_conn_free(t6.c);
}

static void test_watches(void)
{
    struct tc t0, t5, t6;
    tc_open(&t0, d, 0);
    tc_open(&t5, d, 5);
    tc_open(&t6, d, 6);
    make_home(&t0, 5);
    REQ(&t0, XS_WATCH, 0, "/w", "tok");
    CHECK("watch ack", is_ok(XS_WATCH));
    CHECK("initial event on registration", tc_has_event(&t0, "/w|tok"));
    t0.nev = 0;
    REQ(&t0, XS_WATCH, 0, "/w", "tok");
    CHECK("duplicate watch EEXIST", is_err("EEXIST"));
    WR(&t0, 0, "/w/a/b", "1");
    CHECK("event for child write", tc_has_event(&t0, "/w/a/b|tok"));
    REQ(&t0, XS_WATCH, 0, "/w/a/b", "deep");
    WR(&t0, 0, "/wx", "1");
    CHECK("no event for sibling prefix", !tc_has_event(&t0, "/wx|tok"));
    t0.nev = 0;
    REQ(&t0, XS_RM, 0, "/w");
    CHECK("rm fires on removed node", tc_has_event(&t0, "/w|tok"));
    CHECK("rm fires exact watches on children", tc_has_event(&t0, "/w/a/b|deep"));
    CHECK("rm fires no child paths to parent watch", !tc_has_event(&t0, "/w/a/b|tok"));
    tc_drain(&t0);
    t0.nev = 0;
    for (int i = 0; i < 5; i++)
        WR(&t0, 0, "/w/dup", "1"); /* event, reply, event, reply...: all kept */
    struct tc o;
    tc_open(&o, d, 0);
    for (int i = 0; i < 5; i++)
        WR(&o, 0, "/w/dup", "2"); /* 5 identical unread events in a row */
    xs_conn_free(o.c);
    int dups = 0;
    tc_drain(&t0);
    for (int i = 0; i < t0.nev; i++)
        dups += !strcmp(t0.ev[i], "/w/dup|tok");
    CHECK("identical unread events in a row coalesced", dups == 6);
    REQ(&t0, XS_UNWATCH, 0, "/w", "tok");
    CHECK("unwatch ok", is_ok(XS_UNWATCH));
    REQ(&t0, XS_UNWATCH, 0, "/w", "tok");
    CHECK("unwatch again ENOENT", is_err("ENOENT"));
    t0.nev = 0;
    WR(&t0, 0, "/w/q", "1");
    CHECK("no event after unwatch", !tc_has_event(&t0, "/w/q|tok"));

    REQ(&t5, XS_WATCH, 0, "dev", "rel");
    CHECK("relative watch initial event", tc_has_event(&t5, "dev|rel"));
    WR(&t5, 0, "dev/vbd", "x");
    CHECK("relative watch event relative", tc_has_event(&t5, "dev/vbd|rel"));
    REQ(&t6, XS_WATCH, 0, "/local/domain/5/dev", "spy");
    tc_drain(&t6);
    t6.nev = 0;
    WR(&t5, 0, "dev/secret", "x");
    CHECK("no event without read permission",
          !tc_has_event(&t6, "/local/domain/5/dev/secret|spy"));

    REQ(&t0, XS_WATCH, 0, "@introduceDomain", "in");
    REQ(&t0, XS_WATCH, 0, "@releaseDomain", "out");
    REQ(&t5, XS_WATCH, 0, "@introduceDomain", "in5");
    tc_drain(&t0);
    tc_drain(&t5);
    t0.nev = t5.nev = 0;
    REQ(&t0, XS_INTRODUCE, 0, "12", "4096", "3");
    CHECK("INTRODUCE ok", is_ok(XS_INTRODUCE));
    CHECK("@introduceDomain event", tc_has_event(&t0, "@introduceDomain|in"));
    CHECK("@introduceDomain not sent to unprivileged",
          !tc_has_event(&t5, "@introduceDomain|in5"));
    REQ(&t0, XS_SET_PERMS, 0, "@introduceDomain", "n0", "r5");
    CHECK("set perms on special path", is_ok(XS_SET_PERMS));
    REQ(&t0, XS_INTRODUCE, 0, "13", "4096", "3");
    CHECK("@introduceDomain to permitted domain",
          tc_has_event(&t5, "@introduceDomain|in5"));
    CHECK("xs_domain_shutdown ok", xs_domain_shutdown(d, 12) == 0);
    CHECK("@releaseDomain on shutdown", tc_has_event(&t0, "@releaseDomain|out"));
    t0.nev = 0;
    xs_domain_shutdown(d, 12);
    CHECK("@releaseDomain once per shutdown", !tc_has_event(&t0, "@releaseDomain|out"));
    REQ(&t0, XS_RESUME, 0, "12");
    CHECK("RESUME ok", is_ok(XS_RESUME));
    xs_domain_shutdown(d, 12);
    CHECK("@releaseDomain again after RESUME", tc_has_event(&t0, "@releaseDomain|out"));
    REQ(&t0, XS_RESET_WATCHES, 0, "");
    CHECK("RESET_WATCHES ok", is_ok(XS_RESET_WATCHES));
    t0.nev = 0;
    REQ(&t0, XS_RELEASE, 0, "13");
    CHECK("no events after RESET_WATCHES", !tc_has_event(&t0, "@releaseDomain|out"));
    REQ(&t0, XS_RELEASE, 0, "12");
    REQ(&t0, XS_RM, 0, "/local/domain/5");
    REQ(&t0, XS_RM, 0, "/w");
    REQ(&t0, XS_RM, 0, "/wx");
    xs_conn_free(t0.c);
    xs_conn_free(t5.c);
    xs_conn_free(t6.c);
}

static uint32_t start_tx(struct tc *t)
{
    REQ(t, XS_TRANSACTION_START, 0, "");
    return R.h.type == XS_TRANSACTION_START ? (uint32_t)strtoul(R.body, NULL, 10) : 0;
}

static void test_transactions(void)
{
    struct tc t, o;
    tc_open(&t, d, 0);
    tc_open(&o, d, 0);
    REQ(&o, XS_WATCH, 0, "/t", "tw");
    tc_drain(&o);
    o.nev = 0;
    uint32_t tx = start_tx(&t);
    CHECK("transaction start gives id", tx != 0);
    WR(&t, tx, "/t/a", "1");
    CHECK("write in tx", is_ok(XS_WRITE) && R.h.tx_id == tx);
    REQ(&t, XS_READ, tx, "/t/a");
    CHECK("tx sees own write", R.h.type == XS_READ && !strcmp(R.body, "1"));
    REQ(&o, XS_READ, 0, "/t/a");
    CHECK("others do not see uncommitted write", is_err("ENOENT"));
    CHECK("no watch event before commit", !tc_has_event(&o, "/t/a|tw"));
    REQ(&t, XS_TRANSACTION_END, tx, "T");
    CHECK("commit ok", is_ok(XS_TRANSACTION_END));
    REQ(&o, XS_READ, 0, "/t/a");
    CHECK("committed write visible", R.h.type == XS_READ && !strcmp(R.body, "1"));
    CHECK("watch fires on commit", tc_has_event(&o, "/t/a|tw"));

    tx = start_tx(&t);
    REQ(&t, XS_READ, tx, "/t/a");
    WR(&t, tx, "/t/b", "2");
    WR(&o, 0, "/t/a", "changed");
    REQ(&t, XS_TRANSACTION_END, tx, "T");
    CHECK("conflict -> EAGAIN", is_err("EAGAIN"));
    REQ(&o, XS_READ, 0, "/t/b");
    CHECK("conflicting tx not applied", is_err("ENOENT"));

    tx = start_tx(&t);
    WR(&t, tx, "/t/c", "3");
    REQ(&t, XS_RM, tx, "/t/a");
    REQ(&t, XS_TRANSACTION_END, tx, "F");
    CHECK("abort ok", is_ok(XS_TRANSACTION_END));
    REQ(&o, XS_READ, 0, "/t/a");
    CHECK("aborted tx discarded", R.h.type == XS_READ);

    tx = start_tx(&t);
    REQ(&t, XS_RM, tx, "/t/a");
    REQ(&t, XS_DIRECTORY, tx, "/t");
    CHECK("directory in tx reflects rm", R.h.type == XS_DIRECTORY && R.h.len == 0);
    REQ(&t, XS_TRANSACTION_START, tx, "");
    CHECK("nested start EBUSY", is_err("EBUSY"));
    REQ(&t, XS_TRANSACTION_END, tx, "X");
    CHECK("end with bad arg EINVAL", is_err("EINVAL"));
    REQ(&t, XS_TRANSACTION_END, tx, "T");
    CHECK("rm in tx committed", is_ok(XS_TRANSACTION_END));
    REQ(&o, XS_READ, 0, "/t/a");
    CHECK("rm applied", is_err("ENOENT"));
    REQ(&t, XS_READ, tx, "/t");
    CHECK("ended tx id ENOENT", is_err("ENOENT"));
    REQ(&t, XS_READ, 4242, "/t");
    CHECK("unknown tx id ENOENT", is_err("ENOENT"));
    REQ(&t, XS_TRANSACTION_END, 0, "T");
    CHECK("end without tx ENOENT", is_err("ENOENT"));

    /* Two transactions adding siblings: the second must retry. */
    uint32_t t1 = start_tx(&t), t2 = start_tx(&o);
    WR(&t, t1, "/t/s1", "1");
    WR(&o, t2, "/t/s2", "1");
    REQ(&t, XS_TRANSACTION_END, t1, "T");
    CHECK("first sibling tx commits", is_ok(XS_TRANSACTION_END));
    REQ(&o, XS_TRANSACTION_END, t2, "T");
    CHECK("second sibling tx EAGAIN", is_err("EAGAIN"));
    REQ(&t, XS_RM, 0, "/t");
    xs_conn_free(t.c);
    xs_conn_free(o.c);
}

static void test_quotas(void)
{
    struct tc t0, t7;
    char path[64], big[4000];
    tc_open(&t0, d, 0);
    tc_open(&t7, d, 7);
    make_home(&t0, 7);
    int ok = 0;
    /* Nested, so no children list reaches the node-size quota. */
    for (int i = 0; i < 40 && ok == i; i++) {
        snprintf(path, sizeof(path), "n%d", i);
        REQ(&t7, XS_MKDIR, 0, path);
        ok += is_ok(XS_MKDIR);
    }
    for (int i = 0; i < 1100; i++) {
        snprintf(path, sizeof(path), "n%d/m%d", i % 40, i / 40);
        REQ(&t7, XS_MKDIR, 0, path);
        if (!is_ok(XS_MKDIR))
            break;
        ok++;
    }
    CHECK("node quota: 999 more nodes besides home", ok == 999);
    if (ok != 999)
        fprintf(stderr, "  ok=%d %s\n", ok, R.body);
    CHECK("node quota error ENOSPC", is_err("ENOSPC"));
    REQ(&t0, XS_RM, 0, "/local/domain/7");
    make_home(&t0, 7);
    memset(big, 'x', sizeof(big));
    big[2000] = '\0';
    WR(&t7, 0, "v", big);
    CHECK("2000-byte value fits", is_ok(XS_WRITE));
    big[2000] = 'x';
    big[2040] = '\0';
    WR(&t7, 0, "v", big);
    CHECK("node size quota ENOSPC", is_err("ENOSPC"));
    big[3000] = '\0';
    WR(&t0, 0, "/local/domain/7/v", big);
    CHECK("dom0 exempt from node size", is_ok(XS_WRITE));
    int w = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(path, sizeof(path), "w%d", i);
        REQ(&t7, XS_WATCH, 0, path, "t");
        if (!is_ok(XS_WATCH))
            break;
        w++;
    }
    CHECK("watch quota (Xen: more than 128 refused)", w == 129 && is_err("E2BIG"));
    int n = 0;
    for (int i = 0; i < 20; i++) {
        REQ(&t7, XS_TRANSACTION_START, 0, "");
        if (R.h.type != XS_TRANSACTION_START)
            break;
        n++;
    }
    CHECK("transaction quota (Xen: more than 10 refused)", n == 11 && is_err("ENOSPC"));
    REQ(&t7, XS_SET_PERMS, 0, "v", "n7", "r1", "r2", "r3", "r4");
    CHECK("set perms on an over-size node ENOSPC", is_err("ENOSPC"));
    REQ(&t7, XS_MKDIR, 0, "p");
    REQ(&t7, XS_SET_PERMS, 0, "p", "n7", "r1", "r2", "r3", "r4", "r5");
    CHECK("perms quota ENOSPC", is_err("ENOSPC"));
    REQ(&t7, XS_SET_PERMS, 0, "p", "n7", "r1", "r2", "r3", "r4");
    CHECK("5 perms fit", is_ok(XS_SET_PERMS));
    if (!is_ok(XS_SET_PERMS))
        fprintf(stderr, "  %s\n", R.body);
    /* Path length: 2048 below /local/domain/7/ is fine, 2049 is not. */
    char lp[2200] = "";
    memset(lp, 'p', 2048);
    lp[2048] = '\0';
    REQ(&t7, XS_READ, 0, lp);
    CHECK("2048-char relative path accepted", is_err("ENOENT"));
    lp[2048] = 'p';
    lp[2049] = '\0';
    REQ(&t7, XS_READ, 0, lp);
    CHECK("2049-char relative path EINVAL", is_err("EINVAL"));
    /* Outstanding requests: a domain that never reads its replies. */
    struct tc t8;
    tc_open(&t8, d, 8);
    char buf[64 * 40];
    size_t len = 0;
    for (int i = 0; i < 40; i++) {
        struct xsd_sockmsg h = {XS_GET_DOMAIN_PATH, (uint32_t)i, 0, 2};
        memcpy(buf + len, &h, sizeof(h));
        memcpy(buf + len + sizeof(h), "8", 2);
        len += sizeof(h) + 2;
    }
    long used = xs_conn_input(t8.c, buf, len);
    CHECK("outstanding quota stops input at 20", used == 20 * 18);
    struct reply r;
    int got = 0;
    while (tc_next(&t8, &r))
        got++;
    used = xs_conn_input(t8.c, buf + used, len - (size_t)used);
    CHECK("input resumes once replies are read", got == 20 && used == 20 * 18);
    for (int i = 0; i < 1500; i++) {
        snprintf(path, sizeof(path), "/q/n%d", i);
        REQ(&t0, XS_MKDIR, 0, path);
    }
    CHECK("dom0 has no node quota", is_ok(XS_MKDIR));
    REQ(&t0, XS_RM, 0, "/q");
    REQ(&t0, XS_RM, 0, "/local/domain/7");
    xs_conn_free(t0.c);
    xs_conn_free(t7.c);
    xs_conn_free(t8.c);
}

/* Memory bound on what transactions copy, with a small quota. */
static void test_tx_memory(void)
{
    struct xs_quota q;
    xs_quota_defaults(&q);
    q.tx_bytes = 20000;
    struct xs_daemon *saved = d;
    d = xs_daemon_new(&q);
    struct tc t0, t7;
    char path[64], big[3001];
    tc_open(&t0, d, 0);
    tc_open(&t7, d, 7);
    make_home(&t0, 7);
    memset(big, 'v', 3000);
    big[3000] = '\0';
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof(path), "/local/domain/7/b%d", i);
        WR(&t0, 0, path, big);
    }
    uint32_t tx = start_tx(&t7);
    int ok = 0;
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof(path), "b%d", i);
        REQ(&t7, XS_READ, tx, path);
        if (R.h.type != XS_READ)
            break;
        ok++;
    }
    CHECK("tx copy quota stops reads with ENOSPC",
          ok >= 5 && ok < 10 && is_err("ENOSPC"));
    REQ(&t7, XS_TRANSACTION_END, tx, "F");
    tx = start_tx(&t7);
    REQ(&t7, XS_READ, tx, "b0");
    CHECK("quota freed when the transaction ends", R.h.type == XS_READ);
    REQ(&t0, XS_TRANSACTION_START, 0, "");
    tx = (uint32_t)strtoul(R.body, NULL, 10);
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof(path), "/local/domain/7/b%d", i);
        REQ(&t0, XS_READ, tx, path);
    }
    CHECK("dom0 transactions not bounded", R.h.type == XS_READ);
    xs_conn_free(t0.c);
    xs_conn_free(t7.c);
    xs_daemon_free(d);
    d = saved;
}

/* Events of a transaction: one per node however often it changes (a guest
 * rewriting one long-path node pinned a whole event each time), and
 * permission checks only for connections whose watches match. */
static void test_tx_events(void)
{
    struct tc t0, t7;
    static struct tc many[100]; /* 80 KiB each */
    static char name[1901], path[2048];
    tc_open(&t0, d, 0);
    tc_open(&t7, d, 7);
    make_home(&t0, 7);
    memset(name, 'n', 1900);
    name[1900] = '\0';
    snprintf(path, sizeof(path), "/local/domain/7/%s", name);
    REQ(&t0, XS_WATCH, 0, "/local/domain/7", "long");
    tc_drain(&t0);
    t0.nev = 0;
    uint32_t tx = start_tx(&t7);
    size_t before = __sanitizer_get_current_allocated_bytes();
    int ok = 0;
    for (int i = 0; i < 20000; i++) {
        WR(&t7, tx, name, i % 2 ? "odd" : "even");
        ok += is_ok(XS_WRITE);
    }
    size_t grown = __sanitizer_get_current_allocated_bytes() - before;
    printf("tx events: 20000 writes of a %zu-byte path in one transaction: heap +%zu "
           "bytes\n",
           strlen(path), grown);
    CHECK("tx: rewriting one long-path node 20000 times is fine", ok == 20000);
    CHECK("tx: and holds one pending event, not 20000", grown < (1u << 20));
    REQ(&t7, XS_TRANSACTION_END, tx, "T");
    CHECK("tx: commits", is_ok(XS_TRANSACTION_END));
    tc_drain(&t0);
    int long_events = 0;
    for (int i = 0; i < t0.nev; i++)
        long_events += strstr(t0.ev[i], "|long") != NULL;
    CHECK("tx: its commit fires the node's watch once", long_events == 1);

    for (unsigned i = 0; i < 100; i++) {
        char home[64];
        tc_open(&many[i], d, 100 + i);
        snprintf(home, sizeof(home), "/local/domain/%u/x", 100 + i);
        REQ(&many[i], XS_WATCH, 0, home, "mine");
    }
    struct xs_stats st0, st1;
    xs_daemon_stats(d, &st0);
    REQ(&t0, XS_TRANSACTION_START, 0, "");
    tx = (uint32_t)strtoul(R.body, NULL, 10);
    for (int i = 0; i < 100; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/elsewhere/n%d", i);
        WR(&t0, tx, p, "v");
    }
    REQ(&t0, XS_TRANSACTION_END, tx, "T");
    xs_daemon_stats(d, &st1);
    printf("tx events: commit of 100 nodes, 100 connections watching elsewhere: %llu "
           "permission checks\n",
           (unsigned long long)(st1.watch_checks - st0.watch_checks));
    CHECK("tx: no permission checks for watches that do not match",
          is_ok(XS_TRANSACTION_END) && st1.watch_checks == st0.watch_checks);
    REQ(&many[0], XS_WATCH, 0, "/elsewhere", "all");
    xs_daemon_stats(d, &st0);
    WR(&t0, 0, "/elsewhere/n0", "w");
    xs_daemon_stats(d, &st1);
    CHECK("tx: one check for a connection whose watch matches",
          st1.watch_checks == st0.watch_checks + 1);
    REQ(&t0, XS_RM, 0, "/elsewhere");
    REQ(&t0, XS_RM, 0, "/local/domain/7");
    for (unsigned i = 0; i < 100; i++)
        xs_conn_free(many[i].c);
    xs_conn_free(t0.c);
    xs_conn_free(t7.c);
}

static void test_domains(void)
{
    struct tc t0, t3;
    tc_open(&t0, d, 0);
    tc_open(&t3, d, 3);
    REQ(&t0, XS_IS_DOMAIN_INTRODUCED, 0, "3");
    CHECK("not introduced: F",
          R.h.type == XS_IS_DOMAIN_INTRODUCED && !strcmp(R.body, "F"));
    REQ(&t0, XS_INTRODUCE, 0, "3", "1234", "0");
    CHECK("INTRODUCE port 0 EINVAL", is_err("EINVAL"));
    REQ(&t0, XS_INTRODUCE, 0, "0", "1234", "1");
    CHECK("INTRODUCE dom0 EINVAL", is_err("EINVAL"));
    REQ(&t0, XS_INTRODUCE, 0, "3", "1234");
    CHECK("INTRODUCE short EINVAL", is_err("EINVAL"));
    REQ(&t0, XS_INTRODUCE, 0, "3", "1234", "1");
    CHECK("INTRODUCE without hooks ok", is_ok(XS_INTRODUCE));
    REQ(&t0, XS_IS_DOMAIN_INTRODUCED, 0, "3");
    CHECK("introduced: T", !strcmp(R.body, "T"));
    make_home(&t0, 3);
    WR(&t3, 0, "device/vif/0/state", "1");
    REQ(&t0, XS_MKDIR, 0, "/keep");
    REQ(&t0, XS_SET_PERMS, 0, "/keep", "n3");
    REQ(&t0, XS_WATCH, 0, "/local/domain/3", "home");
    t0.nev = 0;
    REQ(&t0, XS_MKDIR, 0, "/shared");
    REQ(&t0, XS_SET_PERMS, 0, "/shared", "n0", "r3", "b4");
    REQ(&t0, XS_RELEASE, 0, "3");
    CHECK("RELEASE ok", is_ok(XS_RELEASE));
    REQ(&t0, XS_GET_PERMS, 0, "/shared");
    CHECK("released domid dropped from other nodes' ACLs",
          R.h.type == XS_GET_PERMS && R.h.len == 6 && !memcmp(R.body, "n0\0b4\0", 6));
    REQ(&t0, XS_RM, 0, "/shared");
    REQ(&t0, XS_READ, 0, "/local/domain/3");
    CHECK("released domain's nodes removed", is_err("ENOENT"));
    REQ(&t0, XS_READ, 0, "/keep");
    CHECK("every node it owned removed", is_err("ENOENT"));
    CHECK("removal fires watches", tc_has_event(&t0, "/local/domain/3|home"));
    REQ(&t0, XS_RELEASE, 0, "3");
    CHECK("RELEASE again ENOENT", is_err("ENOENT"));
    REQ(&t0, XS_RELEASE, 0, "0");
    CHECK("RELEASE 0 EINVAL", is_err("EINVAL"));
    REQ(&t0, XS_RESUME, 0, "3");
    CHECK("RESUME unknown ENOENT", is_err("ENOENT"));
    REQ(&t0, XS_SET_TARGET, 0, "3", "4");
    CHECK("SET_TARGET unknown ENOENT", is_err("ENOENT"));
    REQ(&t0, XS_IS_DOMAIN_INTRODUCED, 0, "0");
    CHECK("dom0 introduced", !strcmp(R.body, "T"));
    xs_conn_free(t0.c);
    xs_conn_free(t3.c);
}

static void test_directory_part(void)
{
    struct tc t;
    char path[128], all[16384];
    size_t alllen = 0;
    tc_open(&t, d, 0);
    for (int i = 0; i < 150; i++) {
        snprintf(path, sizeof(path), "/big/child-with-a-rather-long-name-%03d", i);
        REQ(&t, XS_MKDIR, 0, path);
    }
    REQ(&t, XS_DIRECTORY, 0, "/big");
    CHECK("DIRECTORY too big E2BIG", is_err("E2BIG"));
    char gen[32] = "";
    unsigned off = 0;
    int rounds = 0, samegen = 1;
    for (; rounds < 10; rounds++) {
        char o[16];
        snprintf(o, sizeof(o), "%u", off);
        REQ(&t, XS_DIRECTORY_PART, 0, "/big", o);
        if (R.h.type != XS_DIRECTORY_PART)
            break;
        if (rounds == 0)
            snprintf(gen, sizeof(gen), "%.30s", R.body);
        samegen &= !strcmp(gen, R.body);
        size_t gl = strlen(R.body) + 1, l = R.h.len - gl;
        memcpy(all + alllen, R.body + gl, l);
        alllen += l;
        if (l && R.body[R.h.len - 1] == '\0' && R.body[R.h.len - 2] == '\0')
            break; /* trailing empty string: end of list */
        off += (unsigned)l;
    }
    int count = 0;
    for (size_t i = 0; i < alllen; i++)
        count += all[i] == '\0';
    CHECK("DIRECTORY_PART pages through all children",
          rounds > 0 && count == 151 && samegen);
    REQ(&t, XS_DIRECTORY_PART, 0, "/big", "3");
    CHECK("DIRECTORY_PART mid-name offset EINVAL", is_err("EINVAL"));
    REQ(&t, XS_DIRECTORY_PART, 0, "/big");
    CHECK("DIRECTORY_PART without offset EINVAL", is_err("EINVAL"));
    REQ(&t, XS_RM, 0, "/big");
    xs_conn_free(t.c);
}

static void test_control(void)
{
    struct tc t;
    tc_open(&t, d, 0);
    REQ(&t, XS_CONTROL, 0, "print", "hello from test");
    CHECK("CONTROL print", is_ok(XS_CONTROL));
    REQ(&t, XS_CONTROL, 0, "help");
    CHECK("CONTROL help lists print", R.h.type == XS_CONTROL && strstr(R.body, "print"));
    REQ(&t, XS_CONTROL, 0, "quota");
    CHECK("CONTROL quota", R.h.type == XS_CONTROL && strstr(R.body, "nodes: 1000"));
    REQ(&t, XS_CONTROL, 0, "log", "on");
    CHECK("CONTROL log on", is_ok(XS_CONTROL));
    REQ(&t, XS_CONTROL, 0, "live-update", "-s");
    CHECK("CONTROL unknown EINVAL", is_err("EINVAL"));
    xs_conn_free(t.c);
}

/* xs_daemon_set_trace: a line per request and per event; off with NULL. */
static void test_trace(void)
{
    char *buf = NULL, path[200];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct tc t;

    tc_open(&t, d, 0);
    xs_daemon_set_trace(d, f);
    WR(&t, 0, "/t/x", "v1");
    REQ(&t, XS_READ, 0, "/t/nope");
    REQ(&t, XS_WATCH, 0, "/t", "tok");
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = 0;
    REQ(&t, XS_READ, 0, path);
    WR(&t, 0, "/t/y", "a\nforged line");
    xs_daemon_set_trace(d, NULL);
    REQ(&t, XS_READ, 0, "/t/after");
    fclose(f);
    CHECK("trace: a write with its value",
          buf && strstr(buf, " dom0 WRITE tx0 /t/x = v1\n"));
    CHECK("trace: a failed read with its error",
          buf && strstr(buf, " dom0 READ -No such file or directory tx0 /t/nope\n"));
    CHECK("trace: a watch and its first event",
          buf && strstr(buf, " dom0 WATCH tx0 /t\n") && strstr(buf, " dom0 EVENT /t\n"));
    CHECK("trace: a long path cut to 96 bytes",
          buf && strstr(buf, " tx0 /ppp") && !strstr(buf, path));
    CHECK("trace: a value's newline does not start a line",
          buf && strstr(buf, "/t/y = a?forged line\n") && !strstr(buf, "\nforged"));
    CHECK("trace: nothing once turned off", buf && !strstr(buf, "/t/after"));
    free(buf);
    REQ(&t, XS_UNWATCH, 0, "/t", "tok");
    REQ(&t, XS_RM, 0, "/t");
    xs_conn_free(t.c);
}

int main(void)
{
    d = xs_daemon_new(NULL);
    CHECK("daemon created", d != NULL);
    if (!d)
        return 1;
    test_basic();
    test_perms();
    test_watches();
    test_transactions();
    test_quotas();
    test_tx_memory();
    test_tx_events();
    test_domains();
    test_directory_part();
    test_control();
    test_trace();
    struct xs_stats st;
    xs_daemon_stats(d, &st);
    CHECK("tree back to the basic nodes", st.nodes == 5);
    xs_daemon_free(d);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
