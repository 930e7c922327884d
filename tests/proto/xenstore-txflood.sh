#!/bin/bash
# domus-xenstored under a transaction flood: one connection rewrites one
# long-path node 60,000 times inside one transaction (a guest may do the
# same within its quotas).  The daemon's RSS must stay bounded while the
# transaction is open: it holds one pending watch event per node, not one
# per write.  Prints the RSS growth; PASS/FAIL lines; exits 1 on any FAIL.
set -u
cd "$(dirname "$0")/../.."

BIN=build/bin/domus-xenstored # not ASan: its RSS is the one measured
if [ ! -x "$BIN" ]; then
    echo "FAIL xenstore-txflood: no domus-xenstored binary (make all)"
    exit 1
fi
TMP=$(mktemp -d /tmp/domus-xs-flood.XXXXXX)
export XENSTORED_PATH=$TMP/sock
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN" --socket "$XENSTORED_PATH" 2>"$TMP/log" &
PID=$!
for _ in $(seq 100); do [ -S "$XENSTORED_PATH" ] && break; sleep 0.05; done
[ -S "$XENSTORED_PATH" ] || { echo "FAIL xenstore-txflood: daemon did not listen"; exit 1; }

XS_PID=$PID python3 - <<'EOF'
import os, socket, struct, sys

XS_TRANSACTION_START, XS_TRANSACTION_END, XS_WRITE, XS_ERROR = 6, 7, 11, 16
WRITES, BATCH, LIMIT_KB = 60000, 200, 32 * 1024

def rss_kb():
    with open(f"/proc/{os.environ['XS_PID']}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["XENSTORED_PATH"])
s.settimeout(10)
req = 0

def send(typ, payload, tx=0):
    global req
    req += 1
    return struct.pack("<IIII", typ, req, tx, len(payload)) + payload

def recv_one():
    head = b""
    while len(head) < 16:
        head += s.recv(16 - len(head))
    typ, _, _, n = struct.unpack("<IIII", head)
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body))
    return typ, body

s.sendall(send(XS_TRANSACTION_START, b"\0"))
typ, body = recv_one()
tx = int(body.rstrip(b"\0"))
path = b"/flood/" + b"n" * 1900
before = rss_kb()
errors = 0
for i in range(0, WRITES, BATCH):
    s.sendall(b"".join(send(XS_WRITE, path + b"\0" + str(i + j).encode(), tx)
                       for j in range(BATCH)))
    for _ in range(BATCH):
        errors += recv_one()[0] == XS_ERROR
during = rss_kb()
s.sendall(send(XS_TRANSACTION_END, b"F\0", tx))
recv_one()
grown = during - before
print(f"xenstored RSS: {before} kB before, {during} kB with {WRITES} writes of a "
      f"{len(path)}-byte path pending in one transaction (+{grown} kB)")
ok = errors == 0 and grown < LIMIT_KB
print(("PASS" if ok else "FAIL") + f" xenstore-txflood: RSS growth {grown} kB "
      f"(bound {LIMIT_KB} kB), {errors} errors")
sys.exit(0 if ok else 1)
EOF
rc=$?
kill -0 "$PID" 2>/dev/null || { echo "FAIL xenstore-txflood: the daemon died"; rc=1; }
exit $rc
