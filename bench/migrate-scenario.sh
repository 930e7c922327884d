#!/bin/sh
# Runs inside the test host (tests/testhost/run.sh --with-qemu; bench/migrate
# builds it: BENCH_* settings, bench/lib-trace.sh, tests/scenarios/
# lib-toolstack.sh, lib-hosts.sh and lib-mig.sh, then this).  Live migration's downtime
# on Domus and on QEMU, in one test host, on one LAN:
#   hosts    A and B, network namespaces with a bridge xenbr0 each (10.0.0.11,
#            10.0.0.12), joined by the veth ab-ba; the client C (10.0.0.1) on
#            A's bridge by the veth ac-ca (lib-hosts.sh, as 76-migrate-net)
#   Domus    a 2-vCPU 256 MiB guest g with a vif on xenbr0 (10.0.0.2);
#            `domus migrate --transport tcp:<other bridge>:PORT` to a
#            `domus migrate-receive --listen PORT` in the other namespace,
#            A->B and B->A alternately (--downtime: its default, 300 ms)
#   QEMU     the same kernel and initramfs as a plain KVM guest (-M pc -accel
#            kvm -cpu host, 2 vCPUs, 256 MiB), virtio-net on a tap qtap0 in
#            the host's namespace, a port of its xenbr0 (10.0.0.3); the
#            destination started in the other namespace with `-incoming
#            tcp:<its bridge>:PORT`, the source told on its monitor
#            max-bandwidth 100G (unlimited: QEMU's default is 32 MiB/s),
#            downtime-limit 300 (ms, Domus's default), `migrate -d tcp:...`;
#            its `info migrate` polled until completed
#   guest    tests/guest/migbench.sh: `heartbeat send` (tests/guest/
#            heartbeat.c), a UDP datagram to the client every millisecond,
#            and, but in the idle case, memdirty MIB RATE
#   downtime the longest gap between two heartbeats arriving at the client
#            (`heartbeat recv` in C, the kernel's receive stamps), in a window
#            from 0.1 s before the migrate command to 1 s after the
#            heartbeats came back; the same probe for both sides.
# Per case (BENCH_CASES: idle, low, medium, high, or NAME=MIB:RATE), both
# guests boot on A; then BENCH_RUNS pairs, each one migration of each side
# (Q D, then D Q, ...; A->B, then B->A, ...), the other side's guest paused
# meanwhile (QEMU `stop`, `domus pause`: two test-host CPUs).  Before each
# migration 3 s of settling and a 2 s window of steady heartbeats (its
# longest gap is printed as base_gap: the test host's own jitter).
# Also printed: total time and bytes sent (Domus: its summary line; QEMU:
# info migrate's total time and transferred ram), each side's own downtime
# figure, Domus's --debug phases, and the link's own TCP rate A->B.  Prints
# medians, Domus/QEMU ratios of the medians with the spread of the per-pair
# ratios (min..max), and the targets (heartbeat gap <= 0.5x QEMU's, total
# time <= 1.0x QEMU's) as information, not asserted.
# testhost-timeout: 5400
: "${DOMUS_TMP:?}" "${DOMUS_GUEST_KERNEL:?}" "${DOMUS_GUEST_INITRD:?}"
N=${BENCH_RUNS:-5}
CASES=${BENCH_CASES:-idle low medium high}
MEM=256 VCPUS=${BENCH_VCPUS:-2}
QEMU_MIG_TIMEOUT=${BENCH_QEMU_TIMEOUT:-300} # s; then migrate_cancel (no convergence)
addr_of() { [ "$1" = A ] && echo 10.0.0.11 || echo 10.0.0.12; }
other() { [ "$1" = A ] && echo B || echo A; }
CMAC=02:00:00:00:00:0c
R="$DOMUS_TMP/res"
mkdir -p "$R"

# case_spec NAME: MIB:RATE of memdirty ("" idle).
case_spec() {
    case "$1" in
    idle) echo "" ;;
    low) echo "64:4" ;;
    medium) echo "64:8" ;;
    high) echo "64:16" ;;
    *=*:*) echo "${1#*=}" ;;
    *) return 1 ;;
    esac
}
case_name() { echo "${1%%=*}"; }

hb_pids=''
cleanup() {
    kill $hb_pids 2>/dev/null
    q_quit A
    q_quit B
    mig_stop
    ns_stop
}
trap cleanup EXIT

# ---- the LAN ----
mkdir -p "$DOMUS_TMP/x"
(cd "$DOMUS_TMP/x" && cpio -id usr/bin/heartbeat usr/bin/tcpstream <"$DOMUS_GUEST_INITRD" 2>/dev/null)
HB="$DOMUS_TMP/x/usr/bin/heartbeat" TCPSTREAM="$DOMUS_TMP/x/usr/bin/tcpstream"
[ -x "$HB" ] && [ -x "$TCPSTREAM" ] || { fail "bench migrate: no heartbeat, tcpstream in the guest initramfs"; exit 1; }
ns_new A
ns_new B
ns_new C
if host_bridge A 10.0.0.11/24 02:00:00:00:00:0a && host_bridge B 10.0.0.12/24 02:00:00:00:00:0b &&
    ns_link A ab xenbr0 B ba xenbr0 && ns_link A ac xenbr0 C ca "" &&
    inns C ip link set ca address $CMAC && inns C ip addr add 10.0.0.1/24 dev ca; then
    :
else
    fail "bench migrate: cannot build the namespaces' LAN"
    exit 1
fi
inns C ping -c 1 -W 5 10.0.0.12 >/dev/null 2>&1 || { fail "bench migrate: the client does not reach B"; exit 1; }

# The link's own rate: Domain 0's TCP, A -> B across the veth, 64 MiB.
inns B "$TCPSTREAM" recv 5020 64 120 >"$DOMUS_TMP/link.out" 2>&1 &
_lp=$!
sleep 0.5
inns A "$TCPSTREAM" send 10.0.0.12 5020 64 30 >/dev/null 2>&1
wait $_lp
LINK_MBS="$(sed -n 's/^mbs=\([0-9.]*\) .*/\1/p' "$DOMUS_TMP/link.out")"
echo "bench migrate: link A->B (veth, Domain 0's TCP, 64 MiB): ${LINK_MBS:-?} MB/s"

# The heartbeats' receivers in C: Domus's guest sends to 6001, QEMU's to 6002.
for s in domus qemu; do
    _port=6001
    [ $s = qemu ] && _port=6002
    nsenter -t "$NS_C" -n "$HB" recv $_port 7200 >"$R/hb-$s.log" 2>&1 &
    eval "hb_$s=\$!"
    hb_pids="$hb_pids $!"
done

# hb_ask SIDE SIGNAL WHAT: signals SIDE's receiver, prints its next WHAT line.
hb_ask() {
    _f="$R/hb-$1.log"
    _c=$(grep -c "^HB $3" "$_f")
    kill -"$2" "$(eval echo "\$hb_$1")" || return 1
    for _i in $(seq 100); do
        [ "$(grep -c "^HB $3" "$_f")" -gt "$_c" ] && { grep "^HB $3" "$_f" | tail -n 1; return 0; }
        usleep 20000
    done
    return 1
}
field() { echo "$1" | sed -n "s/.* $2=\([-0-9.]*\).*/\1/p"; } # field LINE KEY
# hb_back SIDE SECONDS: until SIDE's heartbeats arrive again (the last one
# within 100 ms; called once the migration has stopped them).
hb_back() {
    _end=$(($(cut -d. -f1 /proc/uptime) + $2))
    while [ "$(cut -d. -f1 /proc/uptime)" -lt "$_end" ]; do
        _l="$(hb_ask "$1" USR2 alive)"
        awk -v a="$(field "$_l" age_ms)" 'BEGIN {exit !(a >= 0 && a < 100)}' && return 0
        usleep 100000
    done
    return 1
}

# ---- Domus ----
start_host() { on$1 inns $1 domus list >/dev/null; }
start_host A && start_host B || { fail "bench migrate: domusd in A or B"; exit 1; }
d_at=A
dlog() { echo "$(eval echo "\$${d_at}_LOG")/g.log"; }
d_hold() { on$d_at domus pause g >/dev/null 2>&1 || true; }
d_go() { on$d_at domus unpause g >/dev/null 2>&1 || true; }
d_boot() { # d_boot SPEC
    EXTRA_CMDLINE="quiet domus.ip=10.0.0.2 domus.peer=10.0.0.1 domus.peermac=$CMAC domus.hbport=6001${1:+ domus.dirty=$1}" \
        MEMORY=$MEM mkcfg g migbench $VCPUS 'on_poweroff = "destroy"' \
        "vif = [ 'mac=00:16:3e:00:00:77, bridge=xenbr0' ]"
    d_at=A
    onA domus create "$DOMUS_TMP/g.cfg" >/dev/null 2>"$DOMUS_TMP/err" ||
        { fail "bench migrate: domus create: $(cat "$DOMUS_TMP/err")"; return 1; }
    onA wait_log g '^MIGBENCH up' 180 || { fail "bench migrate: the Domus guest does not start migbench"; return 1; }
}
# d_mig PORT: g from d_at to the other host; "rounds MiB own_downtime_ms
# total_s" in $DOMUS_TMP/out.
d_mig() {
    _to=$(other $d_at)
    listen_on "$_to" "$1" || { fail "bench migrate: migrate-receive --listen on $_to"; return 1; }
    if ! on$d_at inns $d_at domus migrate --debug --transport "tcp:$(addr_of "$_to"):$1" g "$_to" \
        >"$DOMUS_TMP/mig.out" 2>"$DOMUS_TMP/err"; then
        fail "bench migrate: domus migrate $d_at->$_to: $(tr '\n' '|' <"$DOMUS_TMP/err")"
        kill "$recv_pid" 2>/dev/null
        return 1
    fi
    wait "$recv_pid"
    recv_pid=''
    d_at=$_to
    _s="$(grep '^migration:' "$DOMUS_TMP/mig.out" | tail -n 1)"
    echo "$_s" | sed -n 's/^migration: \([0-9]*\) rounds, \([0-9.]*\) MiB sent, .* downtime \([0-9.]*\) ms, total \([0-9.]*\) s.*/\1 \2 \3 \4/p' \
        >"$DOMUS_TMP/out"
    [ -s "$DOMUS_TMP/out" ] || { fail "bench migrate: no summary from domus migrate ($_s)"; return 1; }
    grep '^downtime phases' "$DOMUS_TMP/mig.out" | tail -n 1 >"$DOMUS_TMP/phases"
    # --debug's progress, a line per round: round 0's rate, the dirty counts
    tr '\r' '\n' <"$DOMUS_TMP/err" | grep '^round' | sed 's/ *$//' | paste -sd';' >"$DOMUS_TMP/rounds"
}

# ---- QEMU ----
# One QEMU per host at most: its monitor on fd 5 (A) or 6 (B), pipes
# $DOMUS_TMP/qmon<q>.{in,out}, serial to qcon<q>.log.
q=0 q_at=A QPID_A='' QPID_B='' QCON_A='' QCON_B='' QMON_A='' QMON_B=''
qv() { eval echo "\$Q$1_$2"; } # qv WHAT SIDE
qmon() { # qmon SIDE CMD
    case "$1" in A) printf '%s\n' "$2" >&5 ;; B) printf '%s\n' "$2" >&6 ;; esac
}
qmonlog() { tail -c 6000 "$(qv MON "$1").log" | tr -d '\r' | tr '\033' '~'; }
# q_start SIDE [INCOMING-PORT]: QEMU in SIDE's namespace, its tap on xenbr0.
q_start() {
    q=$((q + 1))
    _m="$DOMUS_TMP/qmon$q" _c="$DOMUS_TMP/qcon$q.log" _in=""
    mkfifo "$_m.in" "$_m.out"
    : >"$_m.log"
    : >"$_c"
    cat "$_m.out" >"$_m.log" &
    [ -z "$2" ] || _in="-incoming tcp:$(addr_of "$1"):$2"
    nsenter -t "$(eval echo "\$NS_$1")" -n qemu-system-x86_64 -M pc -accel kvm -cpu host \
        -m $MEM -smp $VCPUS -nodefaults -no-user-config -display none -no-reboot \
        -chardev pipe,id=mon,path="$_m" -mon chardev=mon,mode=readline -serial "file:$_c" \
        -kernel "$DOMUS_GUEST_KERNEL" -initrd "$DOMUS_GUEST_INITRD" \
        -append "console=ttyS0 quiet domus.test=migbench domus.ip=10.0.0.3 domus.peer=10.0.0.1 domus.peermac=$CMAC domus.hbport=6002${QSPEC:+ domus.dirty=$QSPEC}" \
        -netdev tap,id=n0,ifname=qtap0,script=no,downscript=no,vhost=off \
        -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile= \
        $_in </dev/null >"$DOMUS_TMP/qemu$q.out" 2>&1 &
    eval "QPID_$1=\$! QMON_$1=\$_m QCON_$1=\$_c QOUT_$1=\$DOMUS_TMP/qemu\$q.out"
    case "$1" in A) exec 5<>"$_m.in" ;; B) exec 6<>"$_m.in" ;; esac
    _i=0
    until inns "$1" ip link show qtap0 >/dev/null 2>&1; do
        _i=$((_i + 1))
        kill -0 "$(qv PID "$1")" 2>/dev/null && [ $_i -lt 300 ] ||
            { fail "bench migrate: QEMU on $1 has no tap ($(tail -n 3 "$DOMUS_TMP/qemu$q.out" | tr '\n' '|'))"; return 1; }
        usleep 100000
    done
    inns "$1" ip link set qtap0 master xenbr0 && inns "$1" ip link set qtap0 up ||
        { fail "bench migrate: qtap0 onto $1's bridge"; return 1; }
}
# q_quit SIDE: that QEMU ends (quit on its monitor, then a signal).
q_quit() {
    _p="$(qv PID "$1")"
    [ -n "$_p" ] || return 0
    qmon "$1" quit 2>/dev/null
    for _i in $(seq 50); do kill -0 "$_p" 2>/dev/null || break; usleep 100000; done
    kill "$_p" 2>/dev/null
    wait "$_p" 2>/dev/null
    case "$1" in A) exec 5>&- ;; B) exec 6>&- ;; esac
    rm -f "$(qv MON "$1").in" "$(qv MON "$1").out"
    eval "QPID_$1=''"
}
q_hold() { [ -z "$(qv PID $q_at)" ] || qmon $q_at stop; }
q_go() { [ -z "$(qv PID $q_at)" ] || qmon $q_at cont; }
q_boot() { # q_boot SPEC
    QSPEC="$1" q_at=A
    q_start A || return 1
    wait_file "$(qv CON A)" '^MIGBENCH up' 180 || { fail "bench migrate: the QEMU guest does not start migbench ($(tail -n 3 "$DOMUS_TMP/qemu$q.out" | tr '\n' '|'))"; return 1; }
}
# wait_file FILE PATTERN SECONDS
wait_file() {
    for _i in $(seq $(($3 * 5))); do
        tr -d '\r' <"$1" 2>/dev/null | grep -q "$2" && return 0
        usleep 200000
    done
    return 1
}
# q_incoming PORT: the destination QEMU, waiting (its monitor says inmigrate).
q_incoming() {
    _to=$(other $q_at)
    q_start "$_to" "$1" || return 1
    qmon "$_to" 'info status'
    for _i in $(seq 300); do
        qmonlog "$_to" | grep -q 'inmigrate' && return 0
        usleep 100000
    done
    fail "bench migrate: the incoming QEMU on $_to does not wait ($(tail -n 3 "$DOMUS_TMP/qemu$q.out" | tr '\n' '|'))"
    return 1
}
# q_mig PORT: the guest from q_at to the waiting QEMU; "iterations MiB
# own_downtime_ms total_s" in $DOMUS_TMP/out.
q_mig() {
    _from=$q_at _to=$(other $q_at)
    qmon $_from 'migrate_set_parameter max-bandwidth 100G'
    qmon $_from 'migrate_set_parameter downtime-limit 300'
    qmon $_from "migrate -d tcp:$(addr_of "$_to"):$1"
    _st=''
    for _i in $(seq $((QEMU_MIG_TIMEOUT * 2))); do
        usleep 500000
        qmon $_from 'info migrate'
        _st="$(qmonlog $_from | sed -n 's/^Migration status: //p' | tail -n 1)"
        case "$_st" in completed | failed | cancelled) break ;; esac
    done
    if [ "$_st" != completed ]; then
        qmon $_from migrate_cancel
        fail "bench migrate: QEMU's migration $_from->$_to: status '${_st:-none}' after $_i polls (cancelled)"
        diag qemu
        q_quit "$_to"
        return 1
    fi
    # the monitor answers in order: once this is there, so is info migrate's
    qmon $_from 'info status'
    wait_file "$(qv MON $_from).log" 'VM status: postmigrate' 10
    qmonlog $_from | awk '
        /^Migration status:/ {t = d = x = s = ""}
        /^total time:/ {t = $3} /^downtime:/ {d = $2} /^transferred ram:/ {x = $3} /^dirty sync count:/ {s = $4}
        END {printf "%s %.1f %s %.3f\n", s, x / 1024, d, t / 1000}' >"$DOMUS_TMP/out"
    q_quit "$_from"
    q_at=$_to
}

# send_stall FILE SIZE0: the guest's first HBSEND line in FILE (the
# destination's console) past byte SIZE0 (its size before the migration;
# from the start if the file has since shrunk), waited for 7 s: its
# stall_ms, the longest time between two sends on the guest's clock, is the
# guest's own pause (tasks frozen, not running) in the migration's window.
send_stall() {
    for _i in $(seq 35); do
        _o0=$2
        [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$_o0" ] || _o0=0
        _l="$(tail -c +$((_o0 + 1)) "$1" 2>/dev/null | tr -d '\r' | grep '^HBSEND ' | head -n 1)"
        [ -z "$_l" ] || { echo "$_l"; return 0; }
        usleep 200000
    done
}

# diag SIDE: where SIDE's guest is, what it last said, the packet counters
# of both hosts' interfaces.
diag() {
    if [ $1 = domus ]; then
        on$d_at domus list 2>&1 | sed "s/^/DIAG $d_at list: /"
        tr -d '\r' <"$(dlog)" | tail -n 6 | sed 's/^/DIAG console: /'
    else
        for _h in A B; do
            [ -n "$(qv PID $_h)" ] || continue
            qmon $_h 'info status'
            sleep 1
            echo "DIAG QEMU on $_h: pid $(qv PID $_h) $(kill -0 "$(qv PID $_h)" 2>/dev/null && echo alive || echo gone)"
            qmonlog $_h | tail -n 4 | sed "s/^/DIAG $_h monitor: /"
            tr -d '\r' <"$(qv CON $_h)" | tail -n 6 | sed "s/^/DIAG $_h console: /"
            tail -n 4 "$(qv OUT $_h)" | sed "s/^/DIAG $_h qemu: /"
        done
    fi
    for _h in A B C; do inns $_h cat /proc/net/dev | sed -n "s/^ *\([a-z0-9.]*\):/DIAG $_h \1:/p"; done
}

# ---- one measurement ----
# dirty_rate LOG: memdirty's rate from its last two DIRTY lines (5 s apart
# on the guest's clock), MiB/s; "-" without them.
dirty_rate() {
    tr -d '\r' <"$1" | sed -n 's/^DIRTY .* pages=\([0-9]*\) .*/\1/p' | tail -n 2 |
        awk '{v[NR] = $1} END {if (NR == 2) printf "%.1f", (v[2] - v[1]) * 4096 / 1048576 / 5; else print "-"}'
}
# measure SIDE CASE RUN PORT: settle, a steady window, the migration, the
# window around it; appends "gap_ms total_s MiB own_down_ms base_gap_ms
# rounds dir" to $R/SIDE.CASE.
measure() {
    _side=$1
    if [ $_side = domus ]; then
        q_hold; d_go; _dir="$d_at->$(other $d_at)"
    else
        d_hold
        q_incoming "$4" || return 1
        q_go; _dir="$q_at->$(other $q_at)"
    fi
    sleep 3
    hb_ask $_side USR1 window >/dev/null
    sleep 2
    _base="$(hb_ask $_side USR1 window)"
    if [ $_side = domus ]; then _dc="$(eval echo "\$$(other $d_at)_LOG")/g.log"; else _dc="$(qv CON "$(other $q_at)")"; fi
    _ds0=$(stat -c %s "$_dc" 2>/dev/null || echo 0)
    usleep 100000
    hb_ask $_side USR1 window >/dev/null # the migration's window starts
    if [ $_side = domus ]; then d_mig "$4"; else q_mig "$4"; fi || {
        # a failed migration: the guest goes on on the source (both sides
        # leave it there); the pair is left out of the ratios
        echo "NA" >>"$R/$_side.$2"
        if [ $_side = domus ]; then d_hold; else q_hold; fi
        return 0
    }
    _o="$(cat "$DOMUS_TMP/out")"
    if ! hb_back $_side 30; then
        # the migration ended but the guest does not get its heartbeats
        # out: a failed migration as far as its users are concerned
        fail "bench migrate: $_side $2 run $3: no heartbeat 30 s after the migration ($(cat "$DOMUS_TMP/out"))"
        diag $_side
        echo "NA" >>"$R/$_side.$2"
        if [ $_side = domus ]; then d_hold; else q_hold; fi
        return 0
    fi
    sleep 1
    _w="$(hb_ask $_side USR1 window)"
    _hs="$(send_stall "$_dc" "$_ds0")"
    if [ $_side = domus ]; then d_hold; else q_hold; fi
    set -- $_side "$2" "$3" "$(field "$_w" gap_ms)" $_o "$(field "$_base" gap_ms)"
    # $4 gap, $5 rounds, $6 MiB, $7 own downtime, $8 total, $9 base gap
    _st="$(field "$_hs" stall_ms)"
    echo "$4 $8 $6 $7 $9 $5 ${_st:--1} $_dir" >>"$R/$1.$2"
    echo "sample $1 $2 run $3 $_dir: heartbeat gap $4 ms ($(echo "$_w" | cut -d' ' -f3-)); own downtime $7 ms; total $8 s; $6 MiB; rounds $5; steady window's longest gap $9 ms; the sender after it: ${_hs:-?}"
    [ $1 = qemu ] || echo "sample domus $2 run $3 $(cat "$DOMUS_TMP/phases")"
    [ $1 = qemu ] || echo "sample domus $2 run $3 progress: $(cat "$DOMUS_TMP/rounds")"
}

# report CASE: its table and ratios (printed after each case, and all again
# at the end).
report() {
    c=$1
    cn="$(case_name "$c")"
    [ -s "$R/domus.$cn" ] && [ -s "$R/qemu.$cn" ] || return 0
    echo "case $cn (memdirty $(case_spec "$c" | sed 's/^$/none/')): medians of $(grep -vc '^NA' "$R/domus.$cn") (domus), $(grep -vc '^NA' "$R/qemu.$cn") (qemu) migrations; failed migrations: domus $(nfail "$R/domus.$cn"), qemu $(nfail "$R/qemu.$cn")"
    printf '  %-6s %9s %8s %9s %12s %12s %7s %15s\n' side gap_ms total_s MiB_sent own_down_ms base_gap_ms rounds guest_stall_ms
    for s in domus qemu; do
        printf '  %-6s %9s %8s %9s %12s %12s %7s %15s\n' $s "$(col "$R/$s.$cn" 1)" "$(col "$R/$s.$cn" 2)" \
            "$(col "$R/$s.$cn" 3)" "$(col "$R/$s.$cn" 4)" "$(col "$R/$s.$cn" 5)" "$(col "$R/$s.$cn" 6)" "$(col "$R/$s.$cn" 7)"
    done
    ratio "$cn" 1 "heartbeat gap"
    ratio "$cn" 2 "total time"
    ratio "$cn" 3 "bytes sent"
    ratio "$cn" 4 "own downtime"
}

# ---- the runs ----
col() { grep -v '^NA' "$1" | cut -d' ' -f"$2" | median; }
nfail() { grep -c '^NA' "$1"; }
# ratio CASE COL NAME: the medians' ratio and the per-pair spread.
ratio() {
    paste -d' ' "$R/domus.$1" "$R/qemu.$1" | awk -v i="$2" -v n="$3" -v a="$(col "$R/domus.$1" "$2")" -v b="$(col "$R/qemu.$1" "$2")" '
        $1 == "NA" || $9 == "NA" {next}
        {r = $(i + 8) > 0 ? $i / $(i + 8) : 0; if (k++ == 0 || r < lo) lo = r; if (k == 1 || r > hi) hi = r}
        END {if (!k || b <= 0) printf "  %-16s domus/qemu: no pair with both migrations finished\n", n
             else printf "  %-16s domus/qemu %.2f (per pair %.2f..%.2f, %d pairs)\n", n, a / b, lo, hi, k}'
}
port=7100
failed=0
for c in $CASES; do
    spec="$(case_spec "$c")" || { fail "bench migrate: unknown case '$c'"; continue; }
    cn="$(case_name "$c")"
    : >"$R/domus.$cn"
    : >"$R/qemu.$cn"
    d_boot "$spec" && q_boot "$spec" || { failed=1; break; }
    d_hold
    # each guest alone for 12 s: memdirty's rate as it runs (two DIRTY lines)
    sleep 12
    q_hold
    d_go
    sleep 12
    echo "bench migrate: case $cn: memdirty ${spec:-none} (MiB:MiB/s); achieved MiB/s: domus $(dirty_rate "$(dlog)"), qemu $(dirty_rate "$(qv CON A)")"
    for _f in "$(dlog)" "$(qv CON A)"; do tr -d '\r' <"$_f" | grep '^DIRTY\|^HBSEND\|^FAIL' | tail -n 3 | sed "s|^|bench migrate: ${_f##*/}: |"; done
    j=1 ok=1
    while [ $j -le "$N" ]; do
        port=$((port + 1))
        if [ $((j % 2)) = 1 ]; then
            measure qemu "$cn" $j $((port + 100)) && measure domus "$cn" $j $port
        else
            measure domus "$cn" $j $port && measure qemu "$cn" $j $((port + 100))
        fi || { ok=0; failed=1; break; }
        j=$((j + 1))
    done
    on$d_at domus destroy g >/dev/null 2>&1
    onA wait_gone g 20
    onB wait_gone g 20
    rm -f "$A_LOG/g.log" "$B_LOG/g.log" # the next case's guest starts its own
    q_quit A
    q_quit B
    [ $ok = 1 ] && [ "$(nfail "$R/domus.$cn")" = 0 ] && [ "$(nfail "$R/qemu.$cn")" = 0 ] &&
        pass "bench migrate: case $cn: $N migrations of each side measured"
    report "$c"
done

echo "bench migrate: downtime = the longest gap in the guest's 1 ms UDP heartbeats at the client; $MEM MiB, $VCPUS vCPUs; link A->B ${LINK_MBS:-?} MB/s"
echo "  (own_down: each side's own downtime figure; base_gap: the longest gap in 2 s of steady heartbeats before each migration;"
echo "   rounds: Domus's rounds, QEMU's dirty sync count; guest_stall: the longest time between two sends on the guest's clock, the migration's included)"
for c in $CASES; do report "$c"; done
echo "targets (information, not asserted): heartbeat gap domus/qemu <= 0.50, total time domus/qemu <= 1.00"
for c in $CASES; do
    cn="$(case_name "$c")"
    [ -s "$R/domus.$cn" ] && [ -s "$R/qemu.$cn" ] || continue
    awk -v c="$cn" -v g="$(col "$R/domus.$cn" 1)" -v G="$(col "$R/qemu.$cn" 1)" \
        -v t="$(col "$R/domus.$cn" 2)" -v T="$(col "$R/qemu.$cn" 2)" 'BEGIN {
        if (g <= 0 || G <= 0 || t <= 0 || T <= 0) { printf "  %-8s no ratio: a side has no migration that finished\n", c; exit }
        a = g / G; b = t / T
        printf "  %-8s gap %.2f (%s), total time %.2f (%s)\n", c, a, a <= 0.5 ? "met" : "not met", b, b <= 1.0 ? "met" : "not met"}'
done
# bench/migrate --xenstore-trace: A's and B's xenstored requests and events
# (one file for both; times on the wall clock).
[ -z "${DOMUS_XENSTORED_TRACE:-}" ] || sed 's/^/TRACE /' "$DOMUS_XENSTORED_TRACE"
exit $failed
