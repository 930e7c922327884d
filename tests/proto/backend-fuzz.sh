#!/bin/bash
# Bounded libFuzzer run over blkback's and netback's request paths
# (tests/fuzz/backend_fuzz.c): builds build/fuzz/backend_fuzz, seeds a
# corpus with valid block and network traffic, runs BE_FUZZ_SECONDS
# (default 60) seconds.  Prints PASS/FAIL lines; exits 1 if the fuzzer
# finds a crash or a sanitizer report.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/fuzz/lib-fuzz.sh
. tests/fuzz/lib-fuzz.sh
SECS=${BE_FUZZ_SECONDS:-60}

fuzz_main backend "$SECS" <<'EOF'
def rec(op, data=b""):
    return bytes([op]) + struct.pack("<H", len(data)) + data
def grants(*g):  # (ref, flags, frame): flags 0 = writable, to Domain 0
    return rec(0, b"".join(bytes(x) for x in g))
def page(i, off, data):
    return rec(1, bytes([i]) + struct.pack("<H", off) + data)
def blk(op, sector, segs, id=1):
    r = struct.pack("<BBH4xQQ", op, len(segs), 0, id, sector)
    r += b"".join(struct.pack("<IBB2x", g, f, l) for g, f, l in segs)
    return r.ljust(112, b"\0")
def blk_indirect(op, sector, nseg, grefs, id=2):
    r = struct.pack("<BBH4xQQHH", 6, op, nseg, id, sector, 0, 0)
    return (r + b"".join(struct.pack("<I", g) for g in grefs)).ljust(112, b"\0")
def blk_discard(sector, n, id=3):
    return struct.pack("<BBH4xQQQ", 5, 0, 0, id, sector, n).ljust(112, b"\0")
def tx(gref, off, flags, id, size):
    return struct.pack("<IHHHH", gref, off, flags, id, size)
def gso(size, t=1, flags=0):
    return struct.pack("<BBHBBH", 1, flags, size, t, 0, 0) + b"\0" * 4
def rxreq(id, gref):
    return struct.pack("<HHI", id, 0, gref)
def vh(flags=0, gso_type=0, hdr_len=0, gso_size=0, start=0, off=0):
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, start, off)
def frame(n, v6=False, proto=6):
    eth = bytes([0, 0x16, 0x3e, 1, 2, 3, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff])
    if v6:
        hdr = eth + b"\x86\xdd" + bytes([0x60, 0, 0, 0, 0, 0, proto, 64]) + b"\0" * 32
    else:
        hdr = eth + b"\x08\x00" + bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto]) + b"\0" * 10
    l4 = bytes(12) + b"\x50" + bytes(7) if proto == 6 else bytes(8)
    f = hdr + l4
    return (f + bytes((i * 7) & 255 for i in range(n))) [:max(n, 14)]
CSUM, VALID, MORE, EXTRA = 1, 2, 4, 8
RUN_BLK, RUN_TX, RX = rec(6), rec(7), 8
g4 = grants((1, 0, 0), (2, 0, 1), (3, 0, 2), (4, 0, 3), (5, 4, 4), (6, 8, 5), (7, 0, 16))
seeds = {
    "blk-rw": g4 + page(0, 0, b"A" * 512) + rec(2, blk(1, 8, [(1, 0, 7), (2, 0, 7)])
              + blk(0, 9, [(3, 2, 3)]) + blk(3, 0, []) + blk_discard(8, 8)) + RUN_BLK,
    "blk-indirect": g4 + page(3, 0, b"".join(struct.pack("<IBB2x", 1 + i % 3, 0, 7)
                                             for i in range(16)))
                    + rec(2, blk_indirect(1, 0, 16, [4]) + blk_indirect(0, 8, 3, [4]))
                    + RUN_BLK + rec(10, b"\0") + rec(2, blk(1, 0, [(1, 0, 7)])) + RUN_BLK,
    "blk-hostile": g4 + rec(2, blk(0, 0, [(5, 0, 7)]) + blk(0, 0, [(6, 0, 7)])
                            + blk(0, 255, [(7, 0, 7)]) + blk(0, 0, [(1, 7, 0)]))
                   + RUN_BLK + rec(5, bytes([0]) + struct.pack("<I", 1000)) + RUN_BLK,
    "tx-single": g4 + page(0, 0, frame(60)) + rec(3, tx(1, 0, CSUM, 1, 60)) + RUN_TX
                 + page(1, 100, frame(80, v6=True)) + rec(3, tx(2, 100, CSUM, 2, 80)) + RUN_TX,
    "tx-multi": g4 + page(0, 0, frame(1000)) + page(1, 0, bytes(1000)) + page(2, 0, bytes(1000))
                + rec(3, tx(1, 0, MORE, 1, 3000) + tx(2, 0, MORE, 2, 1000) + tx(3, 0, 0, 3, 1000))
                + RUN_TX,
    "tx-gso": g4 + page(0, 0, frame(2000)) + page(1, 0, bytes(1000))
              + rec(3, tx(1, 0, CSUM | EXTRA | MORE, 1, 3000) + gso(1448) + tx(2, 0, 0, 3, 1000))
              + RUN_TX,
    "tx-partial": g4 + page(0, 0, frame(1000, proto=17)) + rec(3, tx(1, 0, MORE | CSUM, 1, 1500))
                  + RUN_TX + rec(3, tx(2, 0, 0, 2, 500)) + RUN_TX,
    "rx": g4 + rec(4, rxreq(1, 1) + rxreq(2, 2) + rxreq(3, 3))
          + rec(RX, vh(1, 1, 54, 1448, 34, 16) + struct.pack("<HB", 6000, 0) + frame(200))
          + rec(4, rxreq(4, 5) + rxreq(5, 4))
          + rec(RX, vh(2) + struct.pack("<HB", 100, 0) + frame(100))
          + rec(RX, vh() + struct.pack("<HB", 9000, 0) + frame(100)),
    "ring-index": g4 + rec(5, bytes([1]) + struct.pack("<I", 300)) + RUN_TX
                  + rec(5, bytes([2]) + struct.pack("<I", 0xffffffff)) + rec(RX)
                  + rec(9, b"\7") + rec(5, bytes([3]) + struct.pack("<I", 5)) + RUN_BLK,
}
EOF
