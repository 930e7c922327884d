#!/bin/bash
# Bounded libFuzzer run over xenstored's message parsing and handling
# (tests/fuzz/xenstore_fuzz.c): builds build/fuzz/xenstore_fuzz, seeds a corpus
# with valid request sequences, runs XS_FUZZ_SECONDS (default 30) seconds.
# Prints PASS/FAIL lines; exits 1 if the fuzzer finds a crash.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/fuzz/lib-fuzz.sh
. tests/fuzz/lib-fuzz.sh
SECS=${XS_FUZZ_SECONDS:-30}

fuzz_main xenstore "$SECS" <<'EOF'
def msg(t, *a, tx=0, raw=None):
    p = raw if raw is not None else b"".join(x.encode() + b"\0" for x in a)
    return struct.pack("<IIII", t, 1, tx, len(p)) + p
def rec(op, data):
    return bytes([op]) + struct.pack("<H", len(data)) + data
seeds = {
    "dom0-basic": rec(0, msg(11, raw=b"/a/b\0v") + msg(2, "/a/b") + msg(1, "/a") + msg(13, "/a")),
    "dom0-watch": rec(0, msg(4, "/w", "t") + msg(11, raw=b"/w/x\01") + msg(5, "/w", "t")),
    "dom0-tx": rec(0, msg(6, "")) + rec(0, msg(11, raw=b"/t\0x", tx=1) + msg(7, "T", tx=1)),
    "dom0-perms": rec(0, msg(12, "/local/domain/5") + msg(14, "/local/domain/5", "n5", "r6")),
    "dom5-home": rec(0, msg(12, "/local/domain/5") + msg(14, "/local/domain/5", "n5"))
                 + rec(2, msg(11, raw=b"x/y\0z") + msg(3, "x/y") + msg(4, "x", "tok")),
    "dom0-domains": rec(0, msg(8, "8", "1", "1") + msg(17, "8") + msg(19, "7", "8")
                        + msg(18, "8") + msg(9, "8") + msg(10, "8")),
    "ring": rec(4, msg(10, "7") + msg(11, raw=b"name\0g")) + rec(6, b"") + rec(4, msg(2, "name")),
    "ring-index": rec(5, b"\x01" + struct.pack("<I", 5000)) + rec(5, b"\x05\0\0\0\0"),
    "dirpart": rec(0, msg(22, "/", "0") + msg(0, "print", "x")),
}
EOF
