#!/bin/sh
# Save and restore (xl save / xl restore) of a running guest whose workload
# goes on across them (tests/guest/saverest.sh: a checksummed pattern
# written to xvdb every round, the clock read and checked monotonic, Domain
# 0 pinged over a vif, and a TCP stream with sequence checks at both ends
# between the guest's `tcpstream flow` and Domain 0's `tcpstream echo`,
# see tests/guest/tcpstream.c).  First a 1-vCPU guest with a disk: saved (it is
# gone), restored (it goes on).  Then a 2-vCPU guest with a disk and a vif
# through SR_CYCLES save/restore cycles back to back; then `save -c` leaves
# it running, it is destroyed, and the checkpoint restores.  No round may
# read back a bad pattern, see the clock go back, or count an I/O error in
# the kernel log; rounds after each restore must reach Domain 0, and the
# TCP stream must move on at both ends after each restore (TCP retransmits
# across the pause) and, after the cycles, end cleanly at a record boundary
# with no gap, duplicate, damaged record or reset reported by either end.
# SR_STAGE=1 stops after the first guest, SR_CYCLES sets the cycles (both
# only where the environment reaches the scenario: natively, or through a
# wrapper such as save-restore-20.sh in the test host).
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap 'kill $echo_pid 2>/dev/null; stop_domusd' EXIT
CYCLES="${SR_CYCLES:-3}"
IMG="$DOMUS_TMP/disk.img"
dd if=/dev/zero of="$IMG" bs=1048576 count=16 2>/dev/null

rounds() { count_in_log "$1" '^ROUND '; }
# more_rounds NAME N SECONDS: until NAME has logged N rounds more than now.
more_rounds() {
    _want=$(($(rounds "$1") + $2))
    wait_log "$1" '^ROUND ' "$3" "$_want"
}
# The rounds logged after line LINE of NAME's console log.
rounds_after() { tr -d '\r' <"$(console_log "$1")" | tail -n "+$(($2 + 1))" | grep '^ROUND '; }
log_lines() { tr -d '\r' <"$(console_log "$1")" | wc -l; }
last_round() { tr -d '\r' <"$(console_log "$1")" | grep '^ROUND ' | tail -n 1; }

# diag NAME: the tails of its domus-vm log and console, as DIAG lines.
diag() {
    tail -n 15 "$DOMUS_LOG_DIR/domus-vm-$1.log" 2>/dev/null | sed 's/^/DIAG vm: /'
    tr -d '\r' <"$(console_log "$1")" 2>/dev/null | tail -n 25 | sed 's/^/DIAG console: /'
}

guest() { # guest NAME VCPUS [CFG-LINE...]
    _n="$1" _v="$2"
    shift 2
    mkcfg "$_n" saverest "$_v" 'on_poweroff = "destroy"' "disk = [ '$IMG,raw,xvdb,rw' ]" "$@"
    check "sr: domus create $_n ($_v vCPU(s))" domus create "$DOMUS_TMP/$_n.cfg"
    check "sr: $_n runs its workload" wait_log "$_n" '^ROUND 2 ' 120
}

# cycle NAME LABEL: save to $DOMUS_TMP/NAME.img (the domain goes), restore
# it; the workload must go on for 3 more rounds within 60 s.
cycle() {
    _img="$DOMUS_TMP/$1.img" _t0="$(date +%s)"
    [ -z "$3" ] || { _fb="$(flow_n "$1")" _eb="$(echo_n)"; }
    if ! domus save "$1" "$_img" 2>"$DOMUS_TMP/err"; then
        fail "sr $2: domus save: $(tr '\n' '|' <"$DOMUS_TMP/err")"
        diag "$1"
        return 1
    fi
    _t1="$(date +%s)"
    check "sr $2: saved ($(($(stat -c %s "$_img") >> 20)) MiB, $((_t1 - _t0)) s), the domain is gone" \
        sh -c "! domus list | awk '{print \$1}' | grep -qx '$1'"
    _mark="$(log_lines "$1")"
    if ! domus restore "$_img" 2>"$DOMUS_TMP/err"; then
        fail "sr $2: domus restore: $(tr '\n' '|' <"$DOMUS_TMP/err")"
        return 1
    fi
    if more_rounds "$1" 3 60; then
        pass "sr $2: restored ($(($(date +%s) - _t1)) s), the workload goes on"
    else
        fail "sr $2: restored, but the workload does not go on"
        diag "$1"
    fi
    _after="$(rounds_after "$1" "$_mark")"
    check "sr $2: every round since read its pattern back" \
        sh -c "[ -n '$_after' ] && ! echo '$_after' | grep -qv 'disk=ok'"
    [ -z "$3" ] || check "sr $2: the guest reaches Domain 0 again" \
        sh -c "echo '$_after' | tail -n 1 | grep -q 'net=ok'"
    [ -z "$3" ] || flow_moves "$1" "$2" "$_fb" "$_eb"
}

# The TCP stream's progress: records echoed as the guest last reported
# them, and as Domain 0's end last did.
flow_n() {
    _v="$(tr -d '\r' <"$(console_log "$1")" | sed -n 's/^FLOW n=\([0-9]*\).*/\1/p' | tail -n 1)"
    echo "${_v:-0}"
}
echo_n() {
    _v="$(sed -n 's/^ECHO n=\([0-9]*\).*/\1/p' "$DOMUS_TMP/echo.log" | tail -n 1)"
    echo "${_v:-0}"
}
# flow_moves NAME LABEL F0 E0: both ends report more records than F0 (the
# guest) and E0 (Domain 0), within 60 s.
flow_moves() {
    _f0="$3" _e0="$4" _i=0
    while [ "$_i" -lt 60 ]; do
        [ "$(flow_n "$1")" -gt "$_f0" ] && [ "$(echo_n)" -gt "$_e0" ] && break
        sleep 1
        _i=$((_i + 1))
    done
    check "sr $2: the TCP stream moves on at both ends (guest $_f0 -> $(flow_n "$1"), Domain 0 $_e0 -> $(echo_n) records, $_i s; longest pause so far on Domain 0's clock $(sed -n 's/^ECHO n=.* gap=//p' "$DOMUS_TMP/echo.log" | tail -n 1) s)" \
        [ "$_i" -lt 60 ]
}

# clean NAME: no FAIL line (clock), no bad pattern, no I/O error so far.
clean() {
    check "sr $1: the clock never went back" [ "$(count_in_log "$1" '^FAIL ')" = 0 ]
    check "sr $1: no round read a bad pattern" [ "$(count_in_log "$1" 'disk=bad')" = 0 ]
    check "sr $1: no I/O error in the guest's kernel log ($(last_round "$1"))" \
        sh -c "echo '$(last_round "$1")' | grep -q 'ioerr=0\$'"
    check "sr $1: no I/O error on its console" [ "$(count_in_log "$1" 'I/O error')" = 0 ]
}

# ---- 1 vCPU, a disk ----
guest sv1 1
cycle sv1 "1 vCPU"
clean sv1
domus destroy sv1 >/dev/null 2>&1
[ "${SR_STAGE:-}" != 1 ] || exit 0

# ---- 2 vCPUs, a disk and a vif, a TCP stream to Domain 0 ----
# tcpstream for Domain 0's end, from the guest initramfs (as 50-net).
mkdir -p "$DOMUS_TMP/x"
(cd "$DOMUS_TMP/x" && cpio -id usr/bin/tcpstream <"$DOMUS_GUEST_INITRD" 2>/dev/null)
check "sr: tcpstream from the guest initramfs" [ -x "$DOMUS_TMP/x/usr/bin/tcpstream" ]
"$DOMUS_TMP/x/usr/bin/tcpstream" echo 5010 600 >"$DOMUS_TMP/echo.log" 2>&1 &
echo_pid=$!
ip link del xenbr0 2>/dev/null
EXTRA_CMDLINE="domus.ip=10.0.0.2 domus.peer=10.0.0.1 domus.flow=5010" guest sv2 2 \
    "vif = [ 'mac=00:16:3e:00:00:2a, bridge=xenbr0' ]"
ip addr add 10.0.0.1/24 dev xenbr0 2>/dev/null
check "sr 2 vCPUs: the guest reaches Domain 0" wait_log sv2 'net=ok' 60
check "sr 2 vCPUs: the TCP stream to Domain 0 runs" wait_log sv2 '^FLOW n=' 90
i=1
while [ "$i" -le "$CYCLES" ]; do
    cycle sv2 "2 vCPUs, cycle $i" net
    i=$((i + 1))
done
# Domain 0 ends the stream (SIGTERM: at a record boundary); both ends must
# see a clean end, and neither may have reported an error on the way.
kill -TERM "$echo_pid" 2>/dev/null
for i in $(seq 10); do grep -q '^ECHO done' "$DOMUS_TMP/echo.log" && break; sleep 1; done
check "sr TCP stream: Domain 0's end ends it cleanly ($(tail -n 1 "$DOMUS_TMP/echo.log"))" \
    grep -q '^ECHO done' "$DOMUS_TMP/echo.log"
check "sr TCP stream: the guest's end sees the clean end" wait_log sv2 '^FLOW done ' 10
check "sr TCP stream: no gap, duplicate, damage or reset at Domain 0's end" \
    sh -c "! grep -q ERROR '$DOMUS_TMP/echo.log'"
check "sr TCP stream: none at the guest's end ($(tr -d '\r' <"$(console_log sv2)" | grep -m 1 '^FLOW done\|^FAIL flow'))" \
    [ "$(count_in_log sv2 '^FAIL flow')" = 0 ]
clean sv2

# ---- save -c: a checkpoint; the guest runs on ----
if domus save -c sv2 "$DOMUS_TMP/ck.img" 2>"$DOMUS_TMP/err"; then
    pass "sr checkpoint: domus save -c"
else
    fail "sr checkpoint: domus save -c: $(tr '\n' '|' <"$DOMUS_TMP/err")"
fi
check "sr checkpoint: the domain is still running" wait_state sv2 r 5
check "sr checkpoint: its workload goes on" more_rounds sv2 3 60
check "sr checkpoint: destroy the original" domus destroy sv2
_mark="$(log_lines sv2)"
check "sr checkpoint: the checkpoint restores after the destroy" domus restore "$DOMUS_TMP/ck.img"
check "sr checkpoint: the workload goes on from the checkpoint" more_rounds sv2 3 60
clean sv2
domus destroy sv2 >/dev/null 2>&1
check "sr: no domus-vm left" [ "$(vm_count)" = 0 ]
exit 0
