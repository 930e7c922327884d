#!/bin/bash
# Protocol test of domus-xenstored: Debian's xenstore-utils (libxenstore)
# against the daemon on a temporary socket, then raw malformed messages
# (tests/proto/xs_raw.py).  Prints PASS/FAIL lines; exits 1 on any FAIL.
set -u
cd "$(dirname "$0")/../.."

BIN=build/asan-bin/domus-xenstored
[ -x "$BIN" ] || BIN=build/bin/domus-xenstored
if [ ! -x "$BIN" ]; then
    echo "FAIL xenstore-proto: no domus-xenstored binary (make all asan-bins)"
    exit 1
fi
for t in xenstore-write xenstore-read xenstore-ls xenstore-list xenstore-rm \
    xenstore-chmod xenstore-exists xenstore-watch python3; do
    if ! command -v "$t" >/dev/null; then
        echo "FAIL xenstore-proto: $t not installed (apt-get install xenstore-utils python3)"
        exit 1
    fi
done

TMP=$(mktemp -d /tmp/domus-xs.XXXXXX)
export XENSTORED_PATH=$TMP/sock
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
failed=0
PID=

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; failed=1; }
check() { # check NAME COMMAND...
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
eq() { [ "$1" = "$2" ] || { echo "  got '$1' want '$2'" >&2; return 1; }; }

cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

wait_socket() {
    for _ in $(seq 100); do
        [ -S "$XENSTORED_PATH" ] && return 0
        sleep 0.05
    done
    return 1
}

echo "# domus-xenstored protocol test ($BIN)"
"$BIN" --socket "$XENSTORED_PATH" --pid-file "$TMP/pid" 2>"$TMP/log" &
PID=$!
check "daemon listens" wait_socket
check "pid file written" eq "$(cat "$TMP/pid" 2>/dev/null)" "$PID"

# --- basic operations through libxenstore ---
check "xenstore-write" xenstore-write /vm/a 1 /vm/b "two words" /vm/c/d deep
check "xenstore-read" eq "$(xenstore-read /vm/a)" 1
check "xenstore-read value with spaces" eq "$(xenstore-read /vm/b)" "two words"
check "xenstore-read missing fails" bash -c '! xenstore-read /vm/nope 2>/dev/null'
check "xenstore-list" eq "$(xenstore-list /vm | tr '\n' ' ')" "a b c "
check "xenstore-ls" eq "$(xenstore-ls /vm | tr -s ' ')" "$(printf 'a = "1"\nb = "two words"\nc = ""\n d = "deep"')"
check "xenstore-exists present" xenstore-exists /vm/c/d
check "xenstore-exists absent" bash -c '! xenstore-exists /vm/zz'
check "xenstore-chmod" xenstore-chmod /vm/a n0 r1 b2
check "xenstore-ls -p shows perms" bash -c 'xenstore-ls -p /vm | grep -q "a = \"1\".*(n0,r1,b2)"'
check "xenstore-rm" xenstore-rm /vm/c
check "rm removed subtree" bash -c '! xenstore-exists /vm/c/d'
check "xenstore-write -s (no transaction)" xenstore-write -s /vm/s 5
check "xenstore-read -s" eq "$(xenstore-read -s /vm/s)" 5
check "relative path under /local/domain/0" bash -c 'xenstore-write rel x && [ "$(xenstore-read /local/domain/0/rel)" = x ]'
# /usr/bin/xenstore-control is xen-utils-common's wrapper, which wants a Xen
# hypervisor in sysfs to pick the xen-utils-X.Y directory: run the real client
# where xen-utils-X.Y is installed.
xsctl="$(ls /usr/lib/xen-*/bin/xenstore-control 2>/dev/null | head -n1)"
if [ -n "$xsctl" ]; then
    check "xenstore-control print" "$xsctl" print "hello from the protocol test"
fi

# --- watches ---
xenstore-watch -n 3 /vm/w >"$TMP/watch" 2>&1 &
WPID=$!
sleep 0.3
xenstore-write /vm/w/x 1
xenstore-write /vm/w/y 2
for _ in $(seq 50); do kill -0 $WPID 2>/dev/null || break; sleep 0.05; done
kill $WPID 2>/dev/null
wait $WPID 2>/dev/null
check "xenstore-watch sees initial event and two writes" \
    eq "$(tr '\n' ' ' <"$TMP/watch")" "/vm/w /vm/w/x /vm/w/y "

# --- big directory (DIRECTORY reply > 4096 bytes: libxenstore pages it) ---
args=()
for i in $(seq 1 200); do args+=("/big/child-with-a-rather-long-name-$i" "$i"); done
xenstore-write "${args[@]}"
check "xenstore-list of 200 long names (> XENSTORE_PAYLOAD_MAX)" eq "$(xenstore-list /big | wc -l)" 200

# --- concurrent writers, each in its own transactions ---
pids=()
for w in $(seq 1 8); do
    (for i in $(seq 1 25); do xenstore-write "/conc/w$w/k$i" "$w.$i"; done) &
    pids+=($!)
done
wait "${pids[@]}"
check "8 concurrent writers, 200 keys" eq "$(xenstore-ls /conc | grep -c k)" 200
check "concurrent values intact" eq "$(xenstore-read /conc/w7/k25)" 7.25

# --- raw malformed messages ---
python3 tests/proto/xs_raw.py || failed=1
check "xenstore-utils still work after the raw tests" eq "$(xenstore-read /vm/a)" 1

# --- clean shutdown ---
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
check "SIGTERM exits 0" eq "$rc" 0
check "socket removed on exit" bash -c "[ ! -e '$XENSTORED_PATH' ]"
check "pid file removed on exit" bash -c "[ ! -e '$TMP/pid' ]"
if grep -q "Sanitizer" "$TMP/log"; then
    fail "no sanitizer reports"
    sed -n '1,40p' "$TMP/log"
else
    pass "no sanitizer reports"
fi

# --- --daemon ---
"$BIN" --daemon --socket "$XENSTORED_PATH" --pid-file "$TMP/dpid" 2>"$TMP/dlog"
rc=$?
check "--daemon returns 0 once listening" bash -c "[ $rc = 0 ] && [ -S '$XENSTORED_PATH' ]"
DPID=$(cat "$TMP/dpid" 2>/dev/null)
check "--daemon pid file names a live process" kill -0 "${DPID:-0}"
check "--daemon serves" xenstore-write /d/x 1
"$BIN" --socket "$XENSTORED_PATH" 2>/dev/null
check "second daemon on a live socket refused" eq "$?" 1
kill -TERM "${DPID:-0}" 2>/dev/null
for _ in $(seq 100); do kill -0 "${DPID:-0}" 2>/dev/null || break; sleep 0.05; done
check "--daemon stops on SIGTERM and cleans up" bash -c "[ ! -e '$XENSTORED_PATH' ] && [ ! -e '$TMP/dpid' ]"

# --- restart after a crash: the stale socket file is replaced ---
"$BIN" --socket "$XENSTORED_PATH" 2>/dev/null &
KPID=$!
wait_socket
kill -KILL $KPID
wait $KPID 2>/dev/null
check "stale socket left by a killed daemon" test -S "$XENSTORED_PATH"
"$BIN" --socket "$XENSTORED_PATH" 2>/dev/null &
PID=$!
sleep 0.3
check "new daemon replaces a stale socket" xenstore-write /after/crash 1
kill -TERM $PID
wait $PID 2>/dev/null
PID=

if [ $failed = 0 ]; then echo "PASS xenstore-proto"; else echo "FAIL xenstore-proto"; fi
exit $failed
