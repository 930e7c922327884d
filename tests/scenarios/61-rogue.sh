#!/bin/sh
# A rogue front end beside a well-behaved guest.  The rogue guest boots
# with module_blacklist=xen_blkfront,xen_netfront and loads
# tests/hostile/rogue.ko (built by `make hostile`), which drives its vbd
# and vif itself and attacks blkback and netback (bad, foreign and revoked
# grants, bad segments and indirect pages, garbage rings, event floods,
# rsp_event games, producer indexes far ahead, requests after close, bad
# rings and ports at connect, connect/close cycles); it says PASS/FAIL for
# each expectation (tests/hostile/rogue_*.c).  Meanwhile the well-behaved
# guest does rounds of disk and network I/O (tests/hostile/steady.sh),
# alone first, then beside the rogue one.  Measured every 2 s: `domus
# list` latency, domusd's and xenstored's RSS, the log directory's size.
# Fails when a daemon or the well-behaved guest's domus-vm dies, when any
# measure passes its bound, when a well-behaved round fails, or when the
# rogue module's expectations fail.  Prints the well-behaved guest's round
# time alone and beside the rogue one (ROGUE-RATIO line, for bench/).
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap 'ip link del xenbr0 2>/dev/null; stop_domusd' EXIT
XENSTORED_PATH="$DOMUS_RUN_DIR/xenstored/socket"
export XENSTORED_PATH
ALONE=${ROGUE_ALONE_S:-20} # seconds of well-behaved rounds before the rogue guest
WAIT=150                    # seconds (wall clock) for the rogue guest to boot, attack and power off
STEADY=$((ALONE + WAIT + 20)) # at most; told to stop once the rogue guest is gone
ARGS=${ROGUE_ARGS:-cycles=10,flood=10000,revokes=60} # rogue.ko's parameters
LOG_MAX_KB=24576
RSS_MAX_KB=262144
XS_GROWTH_KB=16384
LIST_MAX_MS=5000

KO=/domus/hostile/rogue.ko
if [ ! -f "$KO" ]; then
    fail "rogue: no $KO in the test host (make hostile, then run again)"
    exit 0
fi

x="$DOMUS_TMP/rogue-root"
mkdir -p "$x/tests"
cp "$KO" "$x/rogue.ko"
cp /domus/hostile/rogue.sh /domus/hostile/steady.sh "$x/tests/"
(cd "$x" && find . | cpio -o -H newc 2>/dev/null) >"$DOMUS_TMP/extra.cpio"
cat "$DOMUS_GUEST_INITRD" "$DOMUS_TMP/extra.cpio" >"$DOMUS_TMP/rogue.cpio"
DOMUS_GUEST_INITRD="$DOMUS_TMP/rogue.cpio"
dd if=/dev/zero of="$DOMUS_TMP/good.img" bs=1048576 count=16 2>/dev/null
dd if=/dev/zero of="$DOMUS_TMP/rogue.img" bs=1048576 count=16 2>/dev/null
ip link del xenbr0 2>/dev/null
EXTRA_CMDLINE="domus.ip=10.0.0.2 domus.peer=10.0.0.1 domus.steady_s=$STEADY" \
    mkcfg good steady 1 'on_poweroff = "destroy"' \
    "disk = [ '$DOMUS_TMP/good.img,raw,xvdb,rw' ]" "vif = [ 'mac=00:16:3e:00:00:21, bridge=xenbr0' ]"
EXTRA_CMDLINE="module_blacklist=xen_blkfront,xen_netfront domus.rogue=$ARGS" \
    mkcfg rg rogue 1 'on_poweroff = "destroy"' 'on_crash = "destroy"' \
    "disk = [ '$DOMUS_TMP/rogue.img,raw,xvdb,rw' ]" "vif = [ 'mac=00:16:3e:00:00:66, bridge=xenbr0' ]"

# The one domus-vm there is (the well-behaved guest's, before the rogue's).
only_vm() {
    for _p in /proc/[0-9]*; do
        [ "$(cat "$_p/comm" 2>/dev/null)" = domus-vm ] && { echo "${_p#/proc/}"; return; }
    done
}

domus create "$DOMUS_TMP/good.cfg" || { fail "rogue: domus create of the well-behaved guest"; exit 0; }
ip addr add 10.0.0.1/24 dev xenbr0
check "rogue: the well-behaved guest started its rounds" wait_log good 'STEADY START' 120
sleep "$ALONE"
alone_n="$(count_in_log good '^STEADY [0-9]')"
gvm="$(only_vm)"
xs_before="$(rss_kb "$(xs_pid)")"
domus create "$DOMUS_TMP/rg.cfg" || fail "rogue: domus create of the rogue guest"

dom0_sample_init
gvm_died=0
up_s() { cut -d. -f1 /proc/uptime; }
t0_s="$(up_s)"
# A wall-clock bound: on a loaded test host each sample takes longer than 2 s.
while [ "$(($(up_s) - t0_s))" -lt "$WAIT" ]; do
    dom0_sample rogue "$(($(up_s) - t0_s))"
    [ -d "/proc/$gvm" ] || ! listed good || gvm_died=1
    listed rg || break
    sleep 2
done
t=$(($(up_s) - t0_s))
rogue_n="$(count_in_log good '^STEADY [0-9]')"
xenstore-write "/local/domain/$(domus domid good)/data/steady-stop" 1 ||
    fail "rogue: telling the well-behaved guest to stop"
dom0_sample_report rogue "$t"
echo "rogue: the rogue guest's domus-vm log: $(wc -l <"$DOMUS_LOG_DIR/domus-vm-rg.log" 2>/dev/null) lines"
tr -d '\r' <"$DOMUS_LOG_DIR/domus-vm-rg.log" 2>/dev/null | head -n 30 | sed 's/^/rogue: dom0 said: /'

check "rogue: the rogue guest ran to its end and powered off" \
    sh -c "[ \"\$(tr -d '\r' <'$(console_log rg)' | grep -c '^ROGUE DONE')\" -ge 1 ] && ! domus list 2>/dev/null | awk '\$1 == \"rg\"' | grep -q ."
if ! relay rg; then
    fail "rogue: the rogue module's expectations"
    tr -d '\r' <"$(console_log rg)" | grep -v '^PASS \|^FAIL ' | tail -n 40 | sed 's/^/rogue: rg console: /'
fi
check "rogue: the log directory stayed under ${LOG_MAX_KB} kB (max ${max_log} kB)" \
    [ "$max_log" -gt 0 -a "$max_log" -le "$LOG_MAX_KB" ]
check "rogue: domus list answered within ${LIST_MAX_MS} ms (max ${max_list} ms)" \
    [ "$max_list" -le "$LIST_MAX_MS" ]
check "rogue: domusd's RSS stayed under ${RSS_MAX_KB} kB (max ${max_dsd} kB)" \
    [ "$max_dsd" -gt 0 -a "$max_dsd" -le "$RSS_MAX_KB" ]
check "rogue: xenstored's RSS stayed under ${RSS_MAX_KB} kB (max ${max_xs} kB)" \
    [ "$max_xs" -gt 0 -a "$max_xs" -le "$RSS_MAX_KB" ]
check "rogue: domusd lives" [ -d "/proc/$dsd" ]
check "rogue: xenstored lives" [ -n "$xs" -a -d "/proc/$xs" ]
xs_after="$(rss_kb "$xs")"
check "rogue: xenstored's RSS grew by at most ${XS_GROWTH_KB} kB (${xs_before} kB before the rogue guest, ${xs_after} kB after)" \
    [ "$((xs_after - xs_before))" -le "$XS_GROWTH_KB" ]
boots="$(count_in_log good '^STEADY START')"
# A restart's cause in the check's own line (a test host that hangs right
# after has lost the lines below before): domus-vm's triple-fault lines.
why="$(tr -d '\r' <"$DOMUS_LOG_DIR/domus-vm-good.log" 2>/dev/null |
    grep 'triple fault\|: rip \|: exception \|no memory' | sed 's/.*domus-vm: //' | head -n 4 | tr '\n' '|')"
if ! check "rogue: the well-behaved guest's domus-vm lived through it, one boot ($boots${why:+; $why})" \
    [ -n "$gvm" -a "$gvm_died" = 0 -a "$boots" = 1 ]; then
    grep -i 'good\|domain 1 ' "$DOMUS_LOG_DIR/domusd.log" | tail -n 8 | sed 's/^/rogue: domusd.log: /'
    tr -d '\r' <"$DOMUS_LOG_DIR/domus-vm-good.log" | tail -n 15 | sed 's/^/rogue: domus-vm-good.log: /'
    tr -d '\r' <"$(console_log good)" |
        grep -B3 -A12 -i 'panic\|BUG\|Oops\|general protection\|Call Trace\|reboot\|STEADY START' |
        grep -v '^STEADY [0-9]' | head -n 60 | sed 's/^/rogue: good console: /'
fi

wait_log good 'STEADY DONE' "$STEADY" || fail "rogue: the well-behaved guest did not finish its rounds"
wait_gone good 60 || fail "rogue: the well-behaved guest did not power off"
relay good || fail "rogue: the well-behaved guest's rounds (log: $(tail -n 3 "$(console_log good)" | tr -d '\r' | tr '\n' '|'))"
# Round times (centiseconds) alone and beside the rogue guest.
tr -d '\r' <"$(console_log good)" | awk -v a="$alone_n" -v r="$rogue_n" '
    $1 == "STEADY" && $2 ~ /^[0-9]+$/ {
        if ($2 <= a) { sa += $3; na++ } else if ($2 <= r) { sr += $3; nr++ } }
    END { if (na && nr) printf "ROGUE-RATIO alone %d rounds %.2f s, beside the rogue %d rounds %.2f s, ratio %.2f\n",
        na, sa / na / 100, nr, sr / nr / 100, (sr / nr) / (sa / na) }'
domus destroy rg >/dev/null 2>&1
domus destroy good >/dev/null 2>&1
exit 0 # the verdict is in the PASS/FAIL lines
