/* libFuzzer target: xenstored message parsing and handling.
 *
 * A fresh daemon per input, with three memory connections (domids 0, 5, 6:
 * privileged and not), and one ring domain (7) whose page the input also
 * writes, indexes included.  The input is a list of records (fuzz_util.h):
 *   byte 0: op (low 3 bits) and connection
 *   byte 1-2: length n (little endian, capped by what is left)
 *   n bytes: the data
 * ops: 0-3 feed bytes to a connection; 4 copy bytes into domain 7's request
 * ring and advance req_prod; 5 set a ring index to a raw value; 6 read the
 * guest's response ring; 7 drain every connection's output.
 *
 * Build: make fuzz   (build/fuzz/xenstore_fuzz)
 * Run:   build/fuzz/xenstore_fuzz -max_total_time=30 build/fuzz/corpus-xenstore */
#include "domus/xenstore.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/xs_wire.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct xenstore_domain_interface *page;

static int fake_map(void *opaque, unsigned domid, uint64_t gfn, unsigned evtchn, void **p,
                    int *nfd, int *kfd)
{
    (void)opaque, (void)gfn, (void)evtchn;
    if (domid != 7 && domid != 8)
        return -ENOENT;
    *p = page;
    *nfd = *kfd = -1;
    return 0;
}

static void ring_put(const uint8_t *d, size_t n)
{
    XENSTORE_RING_IDX prod = page->req_prod;
    for (size_t i = 0; i < n; i++)
        page->req[MASK_XENSTORE_IDX(prod + i)] = (char)d[i];
    page->req_prod = prod + (uint32_t)n;
}

static void set_index(const uint8_t *d, size_t n)
{
    uint32_t v = 0;
    if (n < 5)
        return;
    memcpy(&v, d + 1, 4);
    switch (d[0] & 3) {
    case 0:
        page->req_cons = v;
        break;
    case 1:
        page->req_prod = v;
        break;
    case 2:
        page->rsp_cons = v;
        break;
    default:
        page->rsp_prod = v;
        break;
    }
    if (d[0] & 4)
        page->connection = XENSTORE_RECONNECT;
}

static void drain(struct xs_conn **c, int n)
{
    char buf[8192];
    for (int i = 0; i < n; i++)
        while (c[i] && xs_conn_output(c[i], buf, sizeof(buf)))
            ;
    page->rsp_cons = page->rsp_prod;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned domids[4] = {0, 0, 5, 6};
    if (!page)
        page = aligned_alloc(4096, 4096);
    memset(page, 0, 4096);
    struct xs_daemon *d = xs_daemon_new(NULL);
    if (!d)
        return 0;
    struct xs_ring_hooks h = {.map = fake_map};
    xs_daemon_set_ring_hooks(d, &h);
    struct xs_conn *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = xs_conn_new(d, domids[i]);
    /* Domain 7 on the ring, with a home it owns. */
    static const char intro[] = "7\0"
                                "1\0"
                                "1\0";
    struct xsd_sockmsg hm = {XS_INTRODUCE, 1, 0, sizeof(intro) - 1};
    char msg[64];
    memcpy(msg, &hm, sizeof(hm));
    memcpy(msg + sizeof(hm), intro, sizeof(intro) - 1);
    xs_conn_input(c[0], msg, sizeof(hm) + sizeof(intro) - 1);

    uint8_t op;
    const uint8_t *p;
    size_t n;
    for (size_t off = 0; fuzz_record(data, size, &off, &op, &p, &n);) {
        switch (op & 7) {
        case 0:
        case 1:
        case 2:
        case 3:
            if (c[op & 3] && xs_conn_input(c[op & 3], p, n) < 0) {
                xs_conn_free(c[op & 3]);
                c[op & 3] = NULL;
            }
            break;
        case 4:
            ring_put(p, n > XENSTORE_RING_SIZE ? XENSTORE_RING_SIZE : n);
            xs_ring_kick(d, 7);
            break;
        case 5:
            set_index(p, n);
            xs_ring_kick(d, 7);
            break;
        case 6:
            page->rsp_cons = page->rsp_prod;
            xs_ring_kick(d, 7);
            break;
        default:
            drain(c, 4);
            break;
        }
        if ((op & 0x80) && c[op & 3]) {
            xs_conn_free(c[op & 3]);
            c[op & 3] = xs_conn_new(d, domids[op & 3]);
        }
    }
    for (int i = 0; i < 4; i++)
        xs_conn_free(c[i]);
    xs_daemon_free(d);
    return 0;
}
