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
# Without cgroups, whatever this machine has: the refusals are checked below.
export DOMUS_CGROUP=0

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

# The CLI's views of this domusd (no guest needed): info, list -v/-l, uptime;
# create -n of Debian's example configs with only their paths changed.
D="$BIN/domus"
info="$("$D" info 2>&1)"; rc=$?
ival() { printf '%s\n' "$info" | sed -n "s/^$1 *: //p"; }
n=$(printf '%s\n' "$info" | grep -c '^[a-z_]\{1,22\} *: ')
[ "$rc" = 0 ] && [ "$n" = 31 ] && pass "domus info: 31 'key : value' lines" || fail "domus info: rc $rc, $n key lines: $info"
[ "$(ival host)" = "$(uname -n)" ] && [ "$(ival release)" = "$(uname -r)" ] &&
    [ "$(ival nr_cpus)" = "$(getconf _NPROCESSORS_ONLN)" ] &&
    [ "$(ival total_memory)" = "$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)" ] &&
    [ "$(ival xen_pagesize)" = "$(getconf PAGESIZE)" ] &&
    pass "domus info: host, release, nr_cpus, total_memory, xen_pagesize are the host's ($(ival host), $(ival release), $(ival nr_cpus), $(ival total_memory))" ||
    fail "domus info: $(printf '%s\n' "$info" | head -n 16 | tr '\n' '|')"
fm="$(ival free_memory)"
[ -n "$fm" ] && [ "$fm" -gt 0 ] && [ "$fm" -le "$(ival total_memory)" ] &&
    pass "domus info: 0 < free_memory ($fm) <= total_memory" || fail "domus info: free_memory '$fm'"
out="$("$D" list -v 2>&1)"
printf '%s\n' "$out" | head -n 1 | grep -q 'Time(s)   UUID  *Reason-Code.Security Label$' &&
    printf '%s\n' "$out" | grep -q '^Domain-0  *0 .* 00000000-0000-0000-0000-000000000000  *-  *-$' &&
    pass "domus list -v: xl's header, Domain-0's row" || fail "domus list -v: $out"
"$D" list -l >"$TMP/list-l.json" 2>&1 && python3 -c 'import json,sys; assert json.load(open(sys.argv[1])) == []' "$TMP/list-l.json" &&
    pass "domus list -l without guests: valid JSON, []" || fail "domus list -l: $(cat "$TMP/list-l.json")"
"$D" list -l nosuchdomain >/dev/null 2>&1 && fail "domus list -l nosuchdomain succeeded" || pass "domus list -l nosuchdomain fails"
out="$("$D" uptime 2>&1)"
printf '%s\n' "$out" | head -n 1 | grep -q '^Name  *ID Uptime$' &&
    printf '%s\n' "$out" | grep -q '^Domain-0  *0 \([0-9]* days\?, \)\? *[0-9]*:[0-9][0-9]:[0-9][0-9]$' &&
    pass "domus uptime: $(printf '%s\n' "$out" | tail -n 1)" || fail "domus uptime: $out"
out="$("$D" uptime -s 2>&1)"
printf '%s\n' "$out" | grep -q '^ [0-9][0-9]:[0-9][0-9]:[0-9][0-9] up \([0-9]* days\?, \)\? *[0-9]*:[0-9][0-9], Domain-0 (0)$' &&
    pass "domus uptime -s: $out" || fail "domus uptime -s: $out"
for ex in pvhlinux pvlinux; do
    src=/etc/xen/xlexample.$ex
    [ -f "$src" ] || { fail "$src missing (xen-utils-common)"; continue; }
    sed -e 's|^kernel = .*|kernel = "/var/lib/domus/vmlinuz"|' -e "s|'/dev/[^,]*guest-volume,|'/srv/$ex.img,|" \
        "$src" >"$TMP/$ex.cfg"
    echo 'pool = "Pool-0"' >>"$TMP/$ex.cfg"
    "$D" create -n "$TMP/$ex.cfg" >"$TMP/$ex.json" 2>"$TMP/$ex.err"; rc=$?
    want=1; [ $ex = pvlinux ] && want=2
    [ "$rc" = 0 ] && [ "$(grep -c '^warning: ' "$TMP/$ex.err")" = $want ] &&
        grep -q "^warning: $TMP/$ex.cfg:[0-9]*: ignoring key 'pool'" "$TMP/$ex.err" &&
        python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["name"]=="example."+sys.argv[2] and c["type"]=="pvh" and c["cmdline"]=="root=/dev/xvda1"' "$TMP/$ex.json" $ex &&
        pass "create -n xlexample.$ex (paths changed, + pool): $want warning(s), PVH: $(grep '^warning' "$TMP/$ex.err" | tr '\n' '|')" ||
        fail "create -n xlexample.$ex: rc $rc, $(tr '\n' '|' <"$TMP/$ex.err")"
done
# A create that fails still shows its config's warnings (before the error):
# refused by domusd's checks, and failed in domus-vm.
for k in /nonexistent "$TMP/text-kernel"; do
    printf 'name = "w"\nkernel = "%s"\nmemory = 64\ncolour = "blue"\n' "$k" >"$TMP/w.cfg"
    "$D" create "$TMP/w.cfg" >/dev/null 2>"$TMP/w.err" && fail "create of a bad kernel $k succeeded"
    sed -n 2p "$TMP/w.err" | grep -q "^warning: $TMP/w.cfg:4: ignoring key 'colour'" &&
        grep -q "^warning: .*no 'type' given" "$TMP/w.err" &&
        tail -n 1 "$TMP/w.err" | grep -q 'No such file\|failed to start' &&
        pass "failed create (kernel $k) prints the warnings, then: $(tail -n 1 "$TMP/w.err")" ||
        fail "failed create (kernel $k): $(tr '\n' '|' <"$TMP/w.err")"
done

# Scheduling without cgroups (DOMUS_CGROUP=0): said once in the log; the
# views work; a weight or cap is refused, with nothing left behind.
[ "$(grep -c 'cgroups: turned off (DOMUS_CGROUP=0)' "$TMP/domusd.err")" = 1 ] &&
    pass "log says once that domains run without a cgroup" || fail "cgroup log line: $(grep cgroup "$TMP/domusd.err")"
want="$(printf '%-33s %4s %6s %4s\n%-33s %4d %6d %4d' Name ID Weight Cap Domain-0 0 256 0)"
[ "$("$D" sched-credit2)" = "$want" ] && [ "$("$D" sched-credit -d Domain-0)" = "$want" ] &&
    pass "sched-credit2 and sched-credit -d Domain-0: xl's header and Domain-0 256 0" ||
    fail "sched-credit2: $("$D" sched-credit2 | tr '\n' '|')"
want="$(printf '%-32s %5s %5s %5s %5s %9s %s' Name ID VCPU CPU State 'Time(s)' 'Affinity (Hard / Soft)')"
[ "$("$D" vcpu-list)" = "$want" ] && pass "vcpu-list: xl's header, no guest vCPU" || fail "vcpu-list: $("$D" vcpu-list | tr '\n' '|')"
# sched_refused WHAT STATUS PATTERN CMD...: CMD exits STATUS with PATTERN on stderr.
sched_refused() {
    local what="$1" want="$2" pat="$3" rc=0; shift 3
    "$@" >/dev/null 2>"$TMP/s.err" || rc=$?
    [ "$rc" = "$want" ] && grep -q -- "$pat" "$TMP/s.err" &&
        pass "$what refused ($rc): $(grep -v "^Parsing" "$TMP/s.err" | tail -n 1)" || fail "$what: rc $rc, $(tr '\n' '|' <"$TMP/s.err")"
}
sched_refused "sched-credit -d ghost" 1 "domain 'ghost' does not exist" "$D" sched-credit -d ghost
sched_refused "sched-credit -d Domain-0 -w 512" 1 "Domain-0 is the host" "$D" sched-credit -d Domain-0 -w 512
sched_refused "sched-credit -d x -w 0" 2 "Usage: domus sched-credit" "$D" sched-credit -d x -w 0
sched_refused "sched-credit -c 200 (no -d)" 2 "Usage: domus sched-credit" "$D" sched-credit -c 200
sched_refused "sched-credit2 -d x -w 65536" 2 "Usage: domus sched-credit2" "$D" sched-credit2 -d x -w 65536
sched_refused "vcpu-list ghost" 1 "domain 'ghost' does not exist" "$D" vcpu-list ghost
sched_refused "vcpu-pin ghost 0 1" 1 "domain 'ghost' does not exist" "$D" vcpu-pin ghost 0 1
sched_refused "vcpu-pin with 2 arguments" 2 "Usage: domus vcpu-pin" "$D" vcpu-pin ghost 0
sched_refused "mem-set ghost 256" 1 "domain 'ghost' does not exist" "$D" mem-set ghost 256
sched_refused "mem-max ghost 1g" 1 "domain 'ghost' does not exist" "$D" mem-max ghost 1g
sched_refused "mem-set ghost 12q" 1 "Invalid memory size: 12q" "$D" mem-set ghost 12q
sched_refused "mem-set ghost 5mb" 1 "Invalid memory size: 5mb" "$D" mem-set ghost 5mb
sched_refused "mem-set with 1 argument" 2 "Usage: domus mem-set" "$D" mem-set ghost
sched_refused "vcpu-set ghost 2" 1 "domain 'ghost' does not exist" "$D" vcpu-set ghost 2
sched_refused "vcpu-set Domain-0 1" 1 "Domain-0 is the host" "$D" vcpu-set Domain-0 1
sched_refused "vcpu-set ghost -1" 1 "Invalid argument" "$D" vcpu-set ghost -1
sched_refused "vcpu-set ghost 2x" 1 "Invalid argument" "$D" vcpu-set ghost 2x
sched_refused "vcpu-set with 1 argument" 2 "Usage: domus vcpu-set" "$D" vcpu-set ghost
sched_refused "vcpu-set -q" 2 "Usage: domus vcpu-set" "$D" vcpu-set -q ghost 1
# top: xentop's batch table, Domain-0 only; two iterations, the header each time.
want="$(printf '%10s %6s %10s %6s %10s %6s %10s %9s %5s %4s %8s %8s %4s %8s %8s %8s %10s %10s %4s' \
    NAME STATE 'CPU(sec)' 'CPU(%)' 'MEM(k)' 'MEM(%)' 'MAXMEM(k)' 'MAXMEM(%)' VCPUS NETS 'NETTX(k)' \
    'NETRX(k)' VBDS VBD_OO VBD_RD VBD_WR VBD_RSECT VBD_WSECT SSID)"
"$D" top -b -i 2 -d 0.2 >"$TMP/top.out" 2>"$TMP/top.err"
[ "$(grep -c . "$TMP/top.out")" = 4 ] && [ "$(head -n 1 "$TMP/top.out")" = "$want" ] &&
    [ "$(sed -n 3p "$TMP/top.out")" = "$want" ] &&
    sed -n 2p "$TMP/top.out" | grep -Eq '^  Domain-0 -----r +[0-9]+ +0\.0 +[0-9]+ +[0-9.]+ +no limit +n/a +[0-9]+ +0 +0 +0 +0 +0 +0 +0 +0 +0 +0$' &&
    sed -n 4p "$TMP/top.out" | grep -Eq '^  Domain-0 -----r +[0-9]+ +[0-9]+\.[0-9] ' &&
    pass "top -b -i 2: xentop's header and a Domain-0 row, twice" || fail "top -b -i 2: $(tr '\n' '|' <"$TMP/top.out") $(cat "$TMP/top.err")"
sched_refused "top -i 0" 2 "Usage: domus top" "$D" top -b -i 0
sched_refused "top -d -1" 2 "Usage: domus top" "$D" top -b -d -1
sched_refused "top -y" 2 "Usage: domus top" "$D" top -y
[ "$("$D" top -b -i 1 -v | sed -n 3p)" = "VCPUs(sec): " ] && pass "top -v: Domain-0's VCPUs(sec) line (no guest vCPU)" ||
    fail "top -v: $("$D" top -b -i 1 -v | tr '\n' '|')"
for line in 'cpu_weight = 512' 'cap = 50'; do
    printf 'name = "s"\ntype = "pvh"\nkernel = "%s"\n%s\n' "$TMP/text-kernel" "$line" >"$TMP/s.cfg"
    sched_refused "create with $line without cgroups" 1 "need a cgroup v2 group, which domusd cannot use: turned off" "$D" create "$TMP/s.cfg"
done
printf 'name = "s"\ntype = "pvh"\nkernel = "%s"\ncpus = "0,999"\n' "$TMP/text-kernel" >"$TMP/s.cfg"
sched_refused "create with cpus = \"0,999\"" 1 "cpus: CPU 999 is not on this host" "$D" create "$TMP/s.cfg"
printf 'name = "s"\ntype = "pvh"\nkernel = "/k"\ncpu_weight = 512\ncap = 50\ncpus = "0"\ncpus_soft = "all,^0"\n' >"$TMP/s.cfg"
"$D" create -n "$TMP/s.cfg" >"$TMP/s.json" 2>"$TMP/s.err" &&
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert (c["cpu_weight"], c["cap"], c["cpus"], c["cpus_soft"]) == (512, 50, "0", "all,^0")' "$TMP/s.json" &&
    ! grep -q warning "$TMP/s.err" && pass "create -n: cpu_weight, cap, cpus, cpus_soft kept, no warning" ||
    fail "create -n with scheduling keys: $(tr '\n' '|' <"$TMP/s.err")"
SOCK="$DOMUS_RUN_DIR/domusd.sock" python3 - <<'PY'
import json, os, socket
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(os.environ["SOCK"])
f = s.makefile("rb")
for req, want in [({"cmd": "sched-credit", "dom": "ghost", "weight": "512"}, "does not exist"),
                  ({"cmd": "sched-credit", "dom": 5}, "ok"),
                  ({"cmd": "vcpu-pin"}, "is missing"),
                  ({"cmd": "vcpu-pin", "dom": "0", "vcpu": "all", "hard": "0"}, "Domain-0 is the host"),
                  ({"cmd": "vcpu-list", "dom": ["x"]}, "ok")]:
    s.sendall(json.dumps(req).encode() + b"\n")
    r = json.loads(f.readline())
    ok = (r.get("ok") is True) if want == "ok" else want in r.get("error", "")
    print(("PASS" if ok else "FAIL") + " domusd: raw %s -> %s" % (json.dumps(req), json.dumps(r)[:100]), flush=True)
PY

# Save and restore without a guest: refusals, nothing created.
sched_refused "save of a missing domain" 1 "domain 'ghost' does not exist" "$D" save ghost "$TMP/ghost.img"
[ ! -e "$TMP/ghost.img" ] && pass "save of a missing domain leaves no file" || fail "save of a missing domain left $TMP/ghost.img"
sched_refused "save with one argument" 2 "Usage: domus save" "$D" save ghost
sched_refused "save -x" 2 "Usage: domus save" "$D" save -x ghost "$TMP/g.img"
sched_refused "restore with no argument" 2 "Usage: domus restore" "$D" restore
sched_refused "restore of a missing file" 1 "none.img: No such file" "$D" restore "$TMP/none.img"
sched_refused "restore of a text file" 1 "not a Domus save image\\|truncated image" "$D" restore "$TMP/text-kernel"
# img VERSION CONFIG-JSON: a header, then garbage where the records go.
img() {
    python3 -c '
import struct, sys
cfg = sys.argv[2].encode()
pad = b"\0" * (-len(cfg) % 8)
sys.stdout.buffer.write(b"DOMUSIMG" + struct.pack("<IIII", int(sys.argv[1]), 0, len(cfg), 0) + cfg + pad + b"\x07" * 64)
' "$1" "$2"
}
img 2 '{"path":"x.cfg","text":"name=\"r\""}' >"$TMP/v2.img"
sched_refused "restore of a version 2 image" 1 "save image version 2, this Domus reads version 1" "$D" restore "$TMP/v2.img"
img 1 '{"no":"config"}' >"$TMP/nocfg.img"
sched_refused "restore of an image without a domain config" 1 "has no domain configuration" "$D" restore "$TMP/nocfg.img"
img 1 "{\"path\":\"r.cfg\",\"text\":\"name = \\\"r\\\"\\ntype = \\\"pvh\\\"\\nkernel = \\\"$TMP/text-kernel\\\"\\nmemory = 64\\n\"}" >"$TMP/body.img"
sched_refused "restore of an image whose records are garbage" 1 "failed to start\\|unknown mandatory record\\|/dev/kvm" "$D" restore "$TMP/body.img"
# The memory check of a restore is the image's (memory_mib), not the config's.
RCFG="\"path\":\"r.cfg\",\"text\":\"name = \\\"r\\\"\\ntype = \\\"pvh\\\"\\nkernel = \\\"$TMP/text-kernel\\\"\\nmemory = 64\\n\""
img 1 "{$RCFG,\"memory_mib\":4194304,\"maxmem_mib\":4194304}" >"$TMP/bigmem.img"
sched_refused "restore of an image holding more memory than the host has (config: 64 MiB)" 1 "memory: 4194304 MiB requested" "$D" restore "$TMP/bigmem.img"
img 1 "{$RCFG,\"memory_mib\":8,\"maxmem_mib\":8}" >"$TMP/tinymem.img"
sched_refused "restore of an image with 8 MiB of memory" 1 "the image's memory (memory_mib, maxmem_mib) is not valid" "$D" restore "$TMP/tinymem.img"
img 1 "{$RCFG,\"memory_mib\":64}" >"$TMP/halfmem.img"
sched_refused "restore of an image with memory_mib but no maxmem_mib" 1 "is not valid" "$D" restore "$TMP/halfmem.img"
[ "$("$D" list | wc -l)" = 2 ] && pass "restores refused: only Domain-0 listed" || fail "after the refused restores: $("$D" list | tr '\n' '|')"

# Live migration without a guest: refusals, nothing created (docs/migration.md).
SOCK="$DOMUS_RUN_DIR/domusd.sock" python3 - <<'PY'
import json, os, socket
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(os.environ["SOCK"])
f = s.makefile("rb")
r0, w0 = os.pipe()
for req, want in [({"cmd": "migrate", "dom": "ghost"}, "connection must come"),
                  ({"cmd": "migrate", "dom": "ghost", "fd": 1}, "does not exist"),
                  ({"cmd": "restore", "fd": True, "paused": True}, "descriptor is missing")]:
    line = json.dumps(req).encode() + b"\n"
    if "fd" in req and req["cmd"] == "migrate":  # the connection: a pipe stands in
        socket.send_fds(s, [line], [w0])
    else:
        s.sendall(line)
    r = json.loads(f.readline())
    ok = want in r.get("error", "")
    print(("PASS" if ok else "FAIL") + " domusd: raw %s -> %s" % (json.dumps(req), json.dumps(r)[:100]), flush=True)
PY
sched_refused "migrate with one argument" 2 "Usage: domus migrate" "$D" migrate ghost
sched_refused "migrate through a command that fails" 1 "the receiver did not start" "$D" migrate -s false ghost nowhere
sched_refused "migrate over TCP to nobody" 1 "Connection refused" "$D" migrate --transport tcp:127.0.0.1:1 ghost h
sched_refused "migrate --bandwidth 0" 2 "Usage: domus migrate" "$D" migrate --bandwidth 0 ghost h
sched_refused "migrate --postcopy to nobody" 1 "Connection refused" "$D" migrate --postcopy --bandwidth 8 --transport tcp:127.0.0.1:1 ghost h
recv_refused() { # recv_refused WHAT PATTERN IMAGE: fed to migrate-receive
    local rc=0
    "$D" migrate-receive <"$3" >"$TMP/r.out" 2>"$TMP/s.err" || rc=$?
    [ "$rc" = 1 ] && grep -q -- "^error: .*$2" "$TMP/r.out" &&
        pass "migrate-receive of $1 refused, the source told: $(tail -n 1 "$TMP/r.out")" ||
        fail "migrate-receive of $1: rc $rc, $(tr '\n' '|' <"$TMP/r.out")"
}
recv_refused "a text file" "not a Domus migration stream" "$TMP/text-kernel"
head -c 30 "$TMP/body.img" >"$TMP/cut.img"
recv_refused "a stream cut in its header" "truncated stream" "$TMP/cut.img"
recv_refused "a stream whose config has no domain" "has no domain configuration" "$TMP/nocfg.img"
recv_refused "a stream holding more memory than the host has" "memory: 4194304 MiB requested" "$TMP/bigmem.img"
recv_refused "a stream of garbage records" "failed to start\\|unknown mandatory record\\|/dev/kvm\\|malformed\\|truncated" "$TMP/body.img"
# A post-copy stream (its config says so): domus-vm gets a socket pair as
# its stdin and --postcopy; a header and an end record, then the machine's
# lack of /dev/kvm (or the stream's lack of a post-copy record) refuses it.
python3 -c '
import struct, sys, zlib
cfg = sys.argv[1].encode()
h = b"DOMUSIMG" + struct.pack("<IIII", 1, 0, len(cfg), 0) + cfg + b"\0" * (-len(cfg) % 8)
end = struct.pack("<II", 0, 8)
sys.stdout.buffer.write(h + end + struct.pack("<II", zlib.crc32(h + end), 0))
' "{\"postcopy\":true,\"path\":\"r.cfg\",\"text\":\"name = \\\"r\\\"\\ntype = \\\"pvh\\\"\\nkernel = \\\"$TMP/text-kernel\\\"\\nmemory = 64\\n\"}" >"$TMP/pc.img"
recv_refused "a post-copy stream with no pages" "failed to start\\|/dev/kvm\\|no clock record\\|no post-copy record" "$TMP/pc.img"
[ "$("$D" list | wc -l)" = 2 ] && pass "migrations refused: only Domain-0 listed" || fail "after the refused migrations: $("$D" list | tr '\n' '|')"

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
