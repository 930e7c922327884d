#!/bin/bash
# Bounded libFuzzer run over the save image reader and the hypervisor
# modules' loads (tests/fuzz/saveimg_fuzz.c): builds build/fuzz/saveimg_fuzz,
# seeds a corpus with valid images (docs/save-image.md) written here in
# Python, runs SAVEIMG_FUZZ_SECONDS (default 30) seconds.  Prints PASS/FAIL
# lines; exits 1 if the fuzzer finds a crash, a sanitizer report or a read
# that fails without saying why.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/fuzz/lib-fuzz.sh
. tests/fuzz/lib-fuzz.sh
SECS=${SAVEIMG_FUZZ_SECONDS:-30}

fuzz_main saveimg "$SECS" 65536 <<'EOF'
import zlib

def pad8(b):
    return b + bytes(-len(b) % 8)

def rec(t, body):
    return pad8(struct.pack("<II", t, len(body)) + body)

def image(records, config=b'{"name":"g","memory":32,"vcpus":2}'):
    img = b"DOMUSIMG" + struct.pack("<IIII", 1, 0, len(config), 0) + pad8(config)
    img += b"".join(records)
    img += struct.pack("<II", 0, 8)
    return img + struct.pack("<II", zlib.crc32(img) & 0xffffffff, 0)

def vcpu(t, i, size, fill):
    return rec(t, struct.pack("<II", i, 0) + bytes([fill]) * size)

# KVM's struct sizes on x86-64: regs, sregs, xsave, xcrs, lapic, events, mp_state, tsc
kvm = [(2, 144), (3, 312), (4, 4096), (5, 392), (7, 1024), (8, 64), (9, 4), (16, 8)]
vcpus = []
for i in range(2):
    vcpus += [vcpu(t, i, n, 0) for t, n in kvm]
    vcpus.append(rec(6, struct.pack("<II", i, 2) + struct.pack("<IIQ", 0xc0000080, 0, 0xd01)
                     + struct.pack("<IIQ", 0x10, 0, 12345)))
clock = rec(10, struct.pack("<QII", 10**12, 2, 2994000))
pages = rec(1, struct.pack("<II", 2, 0) + struct.pack("<QQ", 0x100, 0xfeff0) + b"\x5a" * 8192)
params = rec(11, struct.pack("<II", 2, 0) + struct.pack("<IIQ", 1, 0, (2 << 56) | 0xf3)
             + struct.pack("<IIQ", 1, 0, 0)[:0] + struct.pack("<IIQ", 17, 0, 0xfeff1))
ports = [(1, 2, 0, 0, 0, 0), (2, 4, 1, 0, 0, 0), (3, 5, 1, 0, 0, 0),
         (5, 3, 0, 3, 6, 0), (6, 3, 1, 3, 5, 0), (7, 3, 0, 0, 0, 0)]
evtchn = rec(12, struct.pack("<II", len(ports), 0)
             + b"".join(struct.pack("<6I", *p) for p in ports))
gnttab = rec(13, struct.pack("<IIQQ", 1, 2, 0xf0000000, 0xf0001000) + bytes(8192))
areas = rec(14, struct.pack("<QII", 0x20000, 2, 0)
            + struct.pack("<QQQII", 0x21000, 0x22000, 0x23000, 0xf3, 0)
            + struct.pack("<QQQII", 0x21040, 0, 0, 0, 0))
timers = rec(15, struct.pack("<II", 2, 0) + struct.pack("<IIQQ", 2, 0, 0, 10**12 + 5)
             + struct.pack("<IIQQ", 0, 0, 0, 0))
# The post-copy record: the pages the source still holds, as a bitmap over
# the 32 MiB guest's memfd pages (its RAM and the 16 special pages).
npages = (32 << 20) // 4096 + 16
bits = bytearray((npages + 63) // 64 * 8)
for p in (0x100, 0x101, 0x1fff, npages - 1):
    bits[p // 8] |= 1 << (p % 8)
postcopy = rec(18, struct.pack("<QQ", npages, 0) + bytes(bits))
seeds = {
    "empty": image([]),
    "pages": image([pages]),
    "vcpus": image([clock] + vcpus),
    "modules": image([params, gnttab, evtchn, areas, timers]),
    "full": image([pages, clock] + vcpus + [params, gnttab, evtchn, areas, timers]),
    "optional": image([rec(0x80000063, b"skip me"), pages]),
    "mandatory": image([rec(0x63, b"refuse me")]),
    "postcopy": image([pages, postcopy, clock] + vcpus),
}
EOF
