#!/usr/bin/env bash
# Protocol test of domusd (the ASan build when there is one) on this machine:
# hostile and malformed requests on its socket, failing creates (through the
# real domus-vm), many clients at once.  The daemon must answer every request,
# never exit, leave no per-domain file behind, and stop cleanly on SIGTERM.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${DOMUS_ASAN_BIN:-$ROOT/build/asan-bin}"
[ -x "$BIN/domusd" ] || BIN="${DOMUS_BIN:-$ROOT/build/bin}"
TMP="${DOMUS_TMP:-$(mktemp -d)}"
export DOMUS_RUN_DIR="$TMP/run" DOMUS_LOG_DIR="$TMP/log"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

pass() { echo "PASS domusd: $*"; }
fail() { echo "FAIL domusd: $*"; }

"$BIN/domusd" -F 2>"$TMP/domusd.err" &
DPID=$!
trap 'kill $DPID 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S "$DOMUS_RUN_DIR/domusd.sock" ] && break; sleep 0.1; done
[ -S "$DOMUS_RUN_DIR/domusd.sock" ] && pass "listening" || { fail "no socket"; exit 1; }

printf 'not a kernel\n' >"$TMP/text-kernel"
SOCK="$DOMUS_RUN_DIR/domusd.sock" TMP="$TMP" python3 - <<'EOF'
import json, os, socket, time

SOCK, TMP = os.environ["SOCK"], os.environ["TMP"]

def out(ok, what):
    print(("PASS" if ok else "FAIL") + " domusd: " + what, flush=True)

def conn():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(SOCK)
    return s

def readline(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf

def ask(s, raw):
    s.sendall(raw + b"\n")
    line = readline(s)
    try:
        return json.loads(line)
    except ValueError:
        return {"unparsable": line[:200]}

def err_of(r):
    return r.get("error", "") if r.get("ok") is False else None

s = conn()
out(ask(s, b'{"cmd":"ping"}').get("ok") is True, "ping")
for raw in [b"{", b"[]", b"null", b'"x"', b"42", b'{"cmd":5}', b'{"cmd":"nope"}',
            b'{"cmd":"destroy"}', b'{"cmd":"destroy","dom":7}', b'{"cmd":"pause","dom":"ghost"}',
            b'{"cmd":"console-path","dom":"0"}', b'{"cmd":"create"}',
            b'{"cmd":"create","text":5}', b"\x00\x01\x02\xff{", b"", b"{}" * 1000,
            b"[" * 100000, b'{"cmd":"list","x":' + b"[" * 5000 + b"]" * 5000 + b"}"]:
    r = ask(s, raw)
    out(err_of(r) not in (None, ""), "malformed %r -> error %r" % (raw[:24], err_of(r)))
out(ask(s, b'{"cmd":"ping"}').get("ok") is True, "same connection still served after errors")

def create(text, path="t.cfg"):
    c = conn()
    r = ask(c, json.dumps({"cmd": "create", "path": path, "text": text, "cwd": TMP}).encode())
    c.close()
    return r

r = create('name="a"\nkernel="/k"\n\u0000\n')
out("NUL byte" in (err_of(r) or ""), "create with a NUL byte -> %r" % err_of(r))
r = create("x" * (1 << 20))
out("t.cfg:1:" in (err_of(r) or ""), "create with 1 MiB of junk -> %r" % (err_of(r) or "")[:60])
r = create('name="a"\nkernel="/nonexistent"\n')
out("No such file" in (err_of(r) or ""), "create with a missing kernel -> %r" % err_of(r))
r = create('name="a"\nkernel="text-kernel"\nmemory=64\n')
out("failed to start" in (err_of(r) or ""), "create with a text kernel -> %r" % err_of(r))
r = create('name="Domain-0"\nkernel="/nonexistent"\n')
out("already exists" in (err_of(r) or ""), "create Domain-0 -> %r" % err_of(r))
r = create('name="a"\nkernel="text-kernel"\nmemory=%d\n' % (4 << 20))
out("MiB requested, host has" in (err_of(r) or ""), "create too big -> %r" % err_of(r))

# A request longer than the limit: an error, then the connection is closed.
c = conn()
try:
    c.sendall(b"{" + b" " * (5 << 20))
except OSError:
    pass
r = readline(c)
out(b"too long" in r, "5 MiB line without newline -> %r" % r[:60])
c.close()

# Half a request, then gone; then many clients at once.
c = conn(); c.sendall(b'{"cmd":"li'); c.close()
many = [conn() for _ in range(200)]
for c in many:
    c.sendall(b'{"cmd":"list"}\n')
oks = sum(1 for c in many if json.loads(readline(c)).get("ok") is True)
for c in many:
    c.close()
out(oks == 200, "200 simultaneous clients answered (%d)" % oks)

r = ask(s, b'{"cmd":"list"}')
names = [d["name"] for d in r.get("domains", [])]
out(names == ["Domain-0"], "list after all that: %r" % names)
d0 = r["domains"][0]
out(d0["domid"] == 0 and d0["mem_mib"] > 0 and d0["vcpus"] >= 1 and d0["state"] == "r-----",
    "Domain-0 row %r" % d0)
s.close()
EOF

left="$(ls -A "$DOMUS_RUN_DIR" | grep -v '^domusd\.\(sock\|pid\|lock\)$' | grep -v '^xenstored\(\.pid\)\?$')"
[ -z "$left" ] && pass "no per-domain files left in the run dir" || fail "left in the run dir: $left"
kill -0 $DPID 2>/dev/null && pass "still running" || fail "domusd died"
kill -TERM $DPID
rc=0; wait $DPID || rc=$?
[ "$rc" = 0 ] && pass "exits 0 on SIGTERM" || fail "exit status $rc on SIGTERM"
[ ! -e "$DOMUS_RUN_DIR/domusd.sock" ] && pass "socket removed at exit" || fail "socket left behind"
[ ! -e "$DOMUS_RUN_DIR/xenstored.pid" ] && [ ! -e "$DOMUS_RUN_DIR/xenstored" ] &&
    pass "the xenstored it started is stopped" || fail "xenstored left running: $(ls "$DOMUS_RUN_DIR")"
if grep -q 'ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer' "$TMP/domusd.err"; then
    fail "sanitizer report: $(grep -m1 'ERROR\|runtime error' "$TMP/domusd.err")"
else
    pass "no sanitizer report ($(basename "$(dirname "$BIN/domusd")")/domusd)"
fi
