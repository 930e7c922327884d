/* xenstored against malformed input: bad lengths, missing NULs, unknown
 * types and transactions, bad paths, and a seeded random barrage.  The daemon
 * must answer each request with Xen's error and keep serving others. */
#include "xs_test.h"

static struct xs_daemon *d;

static void test_framing(void)
{
    struct tc bad, good;
    tc_open(&bad, d, 0);
    tc_open(&good, d, 0);
    char big[XENSTORE_PAYLOAD_MAX + 1];
    memset(big, 'a', sizeof(big));
    long rc = tc_send(&bad, XS_READ, 0, big, XENSTORE_PAYLOAD_MAX + 1);
    CHECK("payload over XENSTORE_PAYLOAD_MAX -> connection dropped", rc == -EPROTO);
    rc = tc_send(&bad, XS_READ, 0, "/", 2);
    CHECK("dropped connection refuses input", rc == -EPROTO);
    xs_conn_free(bad.c);
    REQ(&good, XS_READ, 0, "/tool");
    CHECK("other connection unaffected", R.h.type == XS_READ);

    memset(big, 'a', XENSTORE_PAYLOAD_MAX);
    tc_send(&good, XS_READ, 0, big, XENSTORE_PAYLOAD_MAX);
    tc_reply(&good, &R);
    CHECK("exactly 4096 bytes without NUL -> EINVAL", is_err("EINVAL"));
    big[XENSTORE_PAYLOAD_MAX - 1] = '\0';
    tc_send(&good, XS_READ, 0, big, XENSTORE_PAYLOAD_MAX);
    tc_reply(&good, &R);
    CHECK("4095-char path -> EINVAL", is_err("EINVAL"));

    /* One byte at a time. */
    char msg[64];
    struct xsd_sockmsg h = {XS_READ, 77, 0, 6};
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), "/tool", 6);
    long sum = 0;
    for (size_t i = 0; i < sizeof(h) + 6; i++)
        sum += xs_conn_input(good.c, msg + i, 1);
    tc_reply(&good, &R);
    CHECK("byte-at-a-time message", sum == 22 && R.h.type == XS_READ && R.h.req_id == 77);

    /* Several messages in one buffer, zero-length payload included. */
    char multi[128];
    size_t off = 0;
    struct xsd_sockmsg h1 = {XS_TRANSACTION_START, 1, 0, 0};
    struct xsd_sockmsg h2 = {XS_GET_DOMAIN_PATH, 2, 0, 2};
    memcpy(multi, &h1, sizeof(h1));
    off += sizeof(h1);
    memcpy(multi + off, &h2, sizeof(h2));
    off += sizeof(h2);
    memcpy(multi + off, "4", 2);
    off += 2;
    xs_conn_input(good.c, multi, off);
    struct reply r1, r2;
    tc_reply(&good, &r1);
    tc_reply(&good, &r2);
    CHECK("two messages in one buffer",
          r1.h.type == XS_TRANSACTION_START && r1.h.req_id == 1 &&
              r2.h.type == XS_GET_DOMAIN_PATH && r2.h.req_id == 2);
    xs_conn_free(good.c);
}

static void test_bad_requests(void)
{
    struct tc t;
    tc_open(&t, d, 0);
    tc_send(&t, XS_READ, 0, "/tool", 5);
    tc_reply(&t, &R);
    CHECK("missing NUL -> EINVAL", is_err("EINVAL"));
    tc_send(&t, XS_READ, 0, "", 0);
    tc_reply(&t, &R);
    CHECK("empty READ -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_READ, 0, "/tool", "extra");
    CHECK("two args to READ -> EINVAL", is_err("EINVAL"));
    static const uint32_t types[] = {XS_WATCH_EVENT, XS_ERROR,   20, XS_TYPE_COUNT, 99,
                                     XS_INVALID,     0xFFFFFFFFu};
    int all = 1;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        tc_send(&t, types[i], 0, "/", 2);
        tc_reply(&t, &R);
        all &= is_err("ENOSYS") && R.h.req_id == t.req_id;
    }
    CHECK("unknown / reply-only types -> ENOSYS", all);
    REQ(&t, XS_READ, 12345, "/tool");
    CHECK("unknown tx id -> ENOENT", is_err("ENOENT"));
    REQ(&t, XS_TRANSACTION_END, 999, "T");
    CHECK("end unknown tx -> ENOENT", is_err("ENOENT"));
    static const char *bad_paths[] = {
        "/a//b", "/a/", "/a b", "/a\x01", "/a*", "/local/domain/0/", "//", "/\xff"};
    all = 1;
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        WR(&t, 0, bad_paths[i], "v");
        all &= is_err("EINVAL");
    }
    CHECK("invalid paths -> EINVAL", all);
    char lp[3200] = "/";
    memset(lp + 1, 'x', 2100);
    lp[2101] = '\0';
    REQ(&t, XS_READ, 0, lp);
    CHECK("path > 2048 outside /local/domain -> EINVAL", is_err("EINVAL"));
    tc_send(&t, XS_WRITE, 0, "/x", 2);
    tc_reply(&t, &R);
    CHECK("WRITE without NUL -> EINVAL", is_err("EINVAL"));
    char bin[] = "/bin\0a\0b\0\xff";
    tc_send(&t, XS_WRITE, 0, bin, sizeof(bin) - 1);
    tc_reply(&t, &R);
    REQ(&t, XS_READ, 0, "/bin");
    CHECK("binary value with NULs kept",
          R.h.len == 5 && !memcmp(R.body, "a\0b\0\xff", 5));
    REQ(&t, XS_WATCH, 0, "/x");
    CHECK("WATCH one arg -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_WATCH, 0, "/x", "t", "1");
    CHECK("WATCH with depth -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_WATCH, 0, "/x//y", "t");
    CHECK("WATCH bad path -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_WATCH, 0, "@anything", "t");
    CHECK("WATCH any @special ok", is_ok(XS_WATCH));
    REQ(&t, XS_SET_PERMS, 0, "/bin", "r99999999999");
    CHECK("perm domid out of range -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_SET_PERMS, 0, "@bogus", "r0");
    CHECK("SET_PERMS unknown special -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_GET_PERMS, 0, "@releaseDomain");
    CHECK("GET_PERMS on special -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_INTRODUCE, 0, "abc", "def", "ghi");
    CHECK("INTRODUCE garbage -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_INTRODUCE, 0, "40000", "1", "1");
    CHECK("INTRODUCE reserved domid -> EINVAL", is_err("EINVAL"));
    tc_send(&t, XS_GET_DOMAIN_PATH, 0, "", 0);
    tc_reply(&t, &R);
    CHECK("GET_DOMAIN_PATH empty -> EINVAL", is_err("EINVAL"));
    tc_send(&t, XS_TRANSACTION_END, 0, "T", 1);
    tc_reply(&t, &R);
    CHECK("TRANSACTION_END without NUL -> EINVAL", is_err("EINVAL"));
    tc_send(&t, XS_CONTROL, 0, "print", 5);
    tc_reply(&t, &R);
    CHECK("CONTROL without NUL -> EINVAL", is_err("EINVAL"));
    REQ(&t, XS_RM, 0, "/bin");
    xs_conn_free(t.c);
}

/* Seeded random requests; each must get exactly one reply. */
static void test_barrage(void)
{
    static const char *words[] = {"/",
                                  "/a",
                                  "/a/b",
                                  "a",
                                  "@introduceDomain",
                                  "@releaseDomain",
                                  "T",
                                  "F",
                                  "r1",
                                  "b0",
                                  "n5",
                                  "0",
                                  "1",
                                  "5",
                                  "//",
                                  "/a/",
                                  "x y",
                                  "",
                                  "/local/domain/5/x",
                                  "print",
                                  "help",
                                  "4096"};
    struct tc t[3];
    tc_open(&t[0], d, 0);
    tc_open(&t[1], d, 5);
    tc_open(&t[2], d, 6);
    unsigned seed = 12345;
    int replies = 0, sent = 0;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        struct tc *c = &t[(seed >> 8) % 3];
        uint32_t type = (seed >> 12) % (XS_TYPE_COUNT + 2);
        char p[512];
        uint32_t len = 0;
        int nargs = (int)((seed >> 20) % 4);
        for (int a = 0; a < nargs; a++) {
            seed = seed * 1103515245u + 12345u;
            const char *w = words[(seed >> 16) % (sizeof(words) / sizeof(words[0]))];
            size_t l = strlen(w) + ((seed >> 4) % 5 ? 1 : 0); /* sometimes no NUL */
            memcpy(p + len, w, l);
            len += (uint32_t)l;
        }
        uint32_t tx = (seed >> 28) == 0 ? (seed >> 24) % 4 : 0;
        tc_send(c, type, tx, p, len);
        sent++;
        struct reply r;
        while (tc_next(c, &r))
            if (r.h.type != XS_WATCH_EVENT)
                replies++;
    }
    CHECK("barrage: one reply per request", replies == sent);
    REQ(&t[0], XS_READ, 0, "/tool/xenstored");
    CHECK("barrage: daemon still serves", R.h.type == XS_READ);
    for (int i = 0; i < 3; i++)
        xs_conn_free(t[i].c);
}

int main(void)
{
    d = xs_daemon_new(NULL);
    CHECK("daemon created", d != NULL);
    if (!d)
        return 1;
    test_framing();
    test_bad_requests();
    test_barrage();
    xs_daemon_free(d);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
