#!/bin/sh
# Runs inside the test host (tests/testhost/run.sh --with-qemu; bench/save
# builds it): Domus saving and restoring a guest beside QEMU saving and
# restoring the same kernel and initramfs (the tests' guest initramfs, its
# /init giving a shell on the console) as a plain KVM guest (-M pc) with a
# virtio-blk disk, same RAM, 1 vCPU.  Domus's guest has the same disk as
# xvdb.  Per run, interleaved D Q Q D ...:
#   save:     Domus: `domus save` (the guest's own suspend, the image
#             written, the domain destroyed), its wall time; QEMU:
#             `migrate "exec:cat > FILE"` of the running guest on its
#             monitor (max-bandwidth unlimited), until `info status` says
#             postmigrate (the monitor holds it until the migration ends).
#             A guest stopped first (virsh save's way) would come back
#             stopped and need a `cont` after the load, which the monitor
#             cannot be told to wait for: its restore time would be the
#             polling's, not QEMU's.
#   size:     the image's bytes
#   restore:  from the restore command (`domus restore [--lazy]`; QEMU
#             started with `-incoming "exec:cat<FILE"`) to
#               first: the first guest instruction, the first
#                      kvm:kvm_entry event in the test host's trace (clock
#                      boot, as /proc/uptime: the same probe for both)
#               console: the guest answering on its console: `echo P""ONG`
#                      sent to its shell (Domus: `domus console`; QEMU: its
#                      serial pipe), resent every 0.5 s, until PONG is there
# Domus restores alternately eager and lazy (each after its own save).
# Then lazy restore's first instruction at 256 MiB, 1 GiB and 2 GiB of
# guest RAM (and eager's beside it), BENCH_RUNS each, the sizes taken in
# turn within each run.  Prints medians, the
# ratio of the medians and the spread of the per-pair ratios (min..max),
# and the targets (save and eager restore <= 1.0x QEMU; lazy at 2 GiB <=
# 1.2x lazy at 256 MiB), which are printed, not asserted.
# (bench/lib-trace.sh comes first: now, median, setup_trace, arm_trace, first_entry.)
: "${DOMUS_TMP:?}" "${DOMUS_GUEST_KERNEL:?}" "${DOMUS_GUEST_INITRD:?}"
N=${BENCH_RUNS:-3}
MEM=256
DOMUS_RUN_DIR="$DOMUS_TMP/run" DOMUS_LOG_DIR="$DOMUS_TMP/log"
export DOMUS_RUN_DIR DOMUS_LOG_DIR
DISK="$DOMUS_TMP/disk.img"
QDISK="$DOMUS_TMP/qdisk.img"

count() { tr -d '\r' <"$1" 2>/dev/null | grep -c "$2"; }
# wait_count FILE PATTERN N [SECONDS]: until FILE has N lines matching;
# prints the time.  Polls every 25 ms (each poll forks: bounded by the clock).
wait_count() {
    _end=$(awk -v t="$(now)" -v s="${4:-120}" 'BEGIN {print t + s}')
    while :; do
        _t=$(now)
        [ "$(count "$1" "$2")" -ge "$3" ] && { echo "$_t"; return 0; }
        awk -v t="$_t" -v e="$_end" 'BEGIN {exit !(t > e)}' && return 1
        usleep 25000
    done
}


# ---- Domus ----

write_cfg() { # write_cfg MEM
    cat >"$DOMUS_TMP/bench.cfg" <<CFG
name = "bench"
kernel = "$DOMUS_GUEST_KERNEL"
ramdisk = "$DOMUS_GUEST_INITRD"
memory = $1
vcpus = 1
cmdline = "console=hvc0 quiet"
disk = [ '$DISK,raw,xvdb,rw' ]
on_poweroff = "destroy"
CFG
}
DLOG="$DOMUS_LOG_DIR/bench.log"

# wait_half FILE PATTERN N: wait_count for half a second.
wait_half() {
    _j=0
    while [ $_j -lt 20 ]; do
        [ "$(count "$1" "$2")" -ge "$3" ] && { now; return 0; }
        usleep 25000
        _j=$((_j + 1))
    done
    return 1
}
# d_ping: PONG from the Domus guest's shell; prints the time it is seen.
d_ping() {
    _want=$(($(count "$DLOG" '^PONG') + 1)) _i=0
    while [ $_i -lt 240 ]; do
        (printf 'echo P""ONG\n' | timeout 2 domus console bench >/dev/null 2>&1 &)
        if t=$(wait_half "$DLOG" '^PONG' "$_want"); then echo "$t"; return 0; fi
        _i=$((_i + 1))
    done
    return 1
}

d_boot() { # d_boot MEM
    write_cfg "$1"
    domus create "$DOMUS_TMP/bench.cfg" >/dev/null 2>"$DOMUS_TMP/err" ||
        { echo "FAIL bench: domus create ($1 MiB): $(cat "$DOMUS_TMP/err")"; return 1; }
    wait_count "$DLOG" 'shell on' 1 180 >/dev/null || {
        echo "FAIL bench: the Domus guest ($1 MiB) gives no shell in 180 s; its console's last lines:"
        tail -n 8 "$DLOG" | sed 's/^/  /'
        domus list 2>&1 | sed 's/^/  /'
        return 1
    }
    d_ping >/dev/null || { echo "FAIL bench: the Domus guest does not answer"; return 1; }
}

# The stateful steps (QEMU's pid and pipes) run in this shell, never in $(...):
# each writes its result to $DOMUS_TMP/out.
# d_save: "seconds bytes".
d_save() {
    rm -f "$DOMUS_TMP/d.img"
    t0=$(now)
    domus save bench "$DOMUS_TMP/d.img" >/dev/null 2>"$DOMUS_TMP/err" ||
        { echo "FAIL bench: domus save: $(cat "$DOMUS_TMP/err")"; return 1; }
    t1=$(now)
    echo "$t0 $t1 $(stat -c %s "$DOMUS_TMP/d.img")" | awk '{printf "%.3f %d\n", $2 - $1, $3}' >"$DOMUS_TMP/out"
}

# d_restore [--lazy]: "first console" (seconds from the command).
d_restore() {
    arm_trace
    t0=$(now)
    domus restore $1 "$DOMUS_TMP/d.img" >/dev/null 2>"$DOMUS_TMP/err" ||
        { echo "FAIL bench: domus restore $1: $(cat "$DOMUS_TMP/err")"; return 1; }
    t2=$(d_ping) || { echo "FAIL bench: the restored Domus guest does not answer"; return 1; }
    t1=$(first_entry)
    echo "$t0 ${t1:-0} $t2" | awk '{printf "%.3f %.3f\n", ($2 > 0 ? $2 - $1 : -1), $3 - $1}' >"$DOMUS_TMP/out"
}

# ---- QEMU ----

# q_start [INCOMING]: QEMU with its monitor and serial on pipes.
q_start() {
    q=$((q + 1))
    QMON="$DOMUS_TMP/qmon$q" QCON="$DOMUS_TMP/qcon$q"
    mkfifo "$QMON.in" "$QMON.out" "$QCON.in" "$QCON.out"
    QMONLOG="$QMON.log" QCONLOG="$QCON.log" QINCOMING=""
    [ -z "$1" ] || QINCOMING="-incoming exec:cat<$1"
    : >"$QMONLOG"
    : >"$QCONLOG"
    cat "$QMON.out" >"$QMONLOG" &
    cat "$QCON.out" >"$QCONLOG" &
    qemu-system-x86_64 -M pc -accel kvm -cpu host -m $QMEM -smp 1 \
        -nodefaults -no-user-config -display none -no-reboot \
        -chardev pipe,id=mon,path="$QMON" -mon chardev=mon,mode=readline \
        -chardev pipe,id=con,path="$QCON" -serial chardev:con \
        -kernel "$DOMUS_GUEST_KERNEL" -initrd "$DOMUS_GUEST_INITRD" \
        -append "console=ttyS0 quiet" \
        -drive "file=$QDISK,if=none,id=d0,format=raw" -device virtio-blk-pci,drive=d0 \
        $QINCOMING </dev/null >"$DOMUS_TMP/qemu$q.out" 2>&1 &
    qpid=$!
    exec 7>"$QMON.in" 8>"$QCON.in"
}
q_stop() {
    exec 7>&- 8>&-
    kill $qpid 2>/dev/null
    wait $qpid 2>/dev/null
    rm -f "$QMON.in" "$QMON.out" "$QCON.in" "$QCON.out"
}
q_ping() {
    _want=$(($(count "$QCONLOG" '^PONG') + 1)) _i=0
    while [ $_i -lt 240 ]; do
        printf 'echo P""ONG\n' >&8
        if t=$(wait_half "$QCONLOG" '^PONG' "$_want"); then echo "$t"; return 0; fi
        _i=$((_i + 1))
    done
    return 1
}
q_boot() {
    q_start ""
    wait_count "$QCONLOG" 'shell on' 1 180 >/dev/null || { echo "FAIL bench: the QEMU guest gives no shell ($(tail -n 3 "$DOMUS_TMP/qemu$q.out"))"; return 1; }
    q_ping >/dev/null || { echo "FAIL bench: the QEMU guest does not answer"; return 1; }
}
q_save() {
    rm -f "$DOMUS_TMP/q.img"
    printf 'migrate_set_parameter max-bandwidth 100G\n' >&7 # QEMU at its best
    t0=$(now)
    printf 'migrate "exec:cat > %s"\ninfo status\n' "$DOMUS_TMP/q.img" >&7
    wait_count "$QMONLOG" 'postmigrate' 1 120 >/dev/null ||
        { echo "FAIL bench: QEMU's migrate to a file does not end (monitor: $(tr -d '\r' <"$QMONLOG" | tail -c 300 | tr '\n\033' '| '); qemu: $(tail -n 3 "$DOMUS_TMP/qemu$q.out" | tr '\n' '|'); alive: $(kill -0 "$qpid" 2>/dev/null && echo yes || echo no); image: $(ls -l "$DOMUS_TMP/q.img" 2>&1))"; return 1; }
    t1=$(now)
    q_stop
    echo "$t0 $t1 $(stat -c %s "$DOMUS_TMP/q.img")" | awk '{printf "%.3f %d\n", $2 - $1, $3}' >"$DOMUS_TMP/out"
}
q_restore() {
    arm_trace
    t0=$(now)
    q_start "$DOMUS_TMP/q.img"
    t2=$(q_ping) || { echo "FAIL bench: the restored QEMU guest does not answer ($(tail -n 3 "$DOMUS_TMP/qemu$q.out" | tr '\n' '|'))"; return 1; }
    t1=$(first_entry)
    echo "$t0 ${t1:-0} $t2" | awk '{printf "%.3f %.3f\n", ($2 > 0 ? $2 - $1 : -1), $3 - $1}' >"$DOMUS_TMP/out"
}

# ---- the runs ----

# One VM runs at a time (the trace sees every VM's entries): the other
# side's guest is paused (QEMU: `stop`, Domus: `domus pause`) during a round.
q_hold() { [ -z "$qpid" ] || ! kill -0 "$qpid" 2>/dev/null || printf 'stop\n' >&7; }
q_go() { [ -z "$qpid" ] || ! kill -0 "$qpid" 2>/dev/null || printf 'cont\n' >&7; }
d_hold() { domus pause bench >/dev/null 2>&1 || true; }
d_go() { domus unpause bench >/dev/null 2>&1 || true; }

# One round of a side: save, then restore; appends "save size first console".
d_round() { # d_round eager|lazy
    q_hold
    d_go
    d_save || return 1
    s=$(cat "$DOMUS_TMP/out")
    d_restore "$([ "$1" = lazy ] && echo --lazy)" || return 1
    r=$(cat "$DOMUS_TMP/out")
    echo "$s $r" >>"$DOMUS_TMP/res.domus-$1"
    echo "sample domus $1: $s $r (save s, bytes, first s, console s)"
}
q_round() {
    d_hold
    q_go
    q_save || return 1
    s=$(cat "$DOMUS_TMP/out")
    q_restore || return 1
    r=$(cat "$DOMUS_TMP/out")
    echo "$s $r" >>"$DOMUS_TMP/res.qemu"
    echo "sample qemu: $s $r (save s, bytes, first s, console s)"
}

col() { cut -d' ' -f"$2" "$DOMUS_TMP/$1" | median; }
# ratio A B COL NAME: medians' ratio and the per-pair spread.
ratio() {
    paste -d' ' "$DOMUS_TMP/$1" "$DOMUS_TMP/$2" | awk -v i="$3" -v n="$4" -v a="$(col "$1" "$3")" -v b="$(col "$2" "$3")" '
        {r = $(i + 4) > 0 ? $i / $(i + 4) : 0; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r}
        END {printf "  %-22s %s/%s %.2f (per pair %.2f..%.2f)\n", n, "'"${1#res.}"'", "'"${2#res.}"'", (b > 0 ? a / b : 0), lo, hi}'
}

setup_trace
dd if=/dev/zero of="$DISK" bs=1048576 count=16 2>/dev/null
cp "$DISK" "$QDISK"
QMEM=$MEM q=0 qpid=""
: >"$DOMUS_TMP/res.domus-eager"
: >"$DOMUS_TMP/res.domus-lazy"
: >"$DOMUS_TMP/res.qemu"
d_boot $MEM || exit 1
q_boot || exit 1
j=0
while [ $j -lt "$N" ]; do
    if [ $((j % 2)) = 0 ]; then
        d_round eager && d_round lazy && q_round || exit 1
    else
        q_round && d_round lazy && d_round eager || exit 1
    fi
    j=$((j + 1))
done
q_stop
qpid=""
domus destroy bench >/dev/null 2>&1

echo "save/restore, $MEM MiB, 1 vCPU, a disk; medians of $N runs each:"
printf '  %-13s %8s %11s %9s %10s\n' side save_s image_MiB first_s console_s
for s in domus-eager domus-lazy qemu; do
    printf '  %-13s %8s %11s %9s %10s\n' "$s" "$(col "res.$s" 1)" \
        "$(col "res.$s" 2 | awk '{printf "%.1f", $1 / 1048576}')" "$(col "res.$s" 3)" "$(col "res.$s" 4)"
done
for s in domus-eager domus-lazy; do
    ratio "res.$s" res.qemu 1 "save time"
    ratio "res.$s" res.qemu 2 "image size"
    ratio "res.$s" res.qemu 3 "restore to first insn"
    ratio "res.$s" res.qemu 4 "restore to console"
done
echo "PASS bench: save/restore at $MEM MiB: $N runs of each side measured"
for s in domus-eager domus-lazy qemu; do cp "$DOMUS_TMP/res.$s" "$DOMUS_TMP/main.$s"; done

# ---- lazy restore's first instruction as RAM grows ----
# Interleaved: each run boots and measures every size in turn (256, 1024,
# 2048 MiB), so that the test host's drift falls on all sizes alike and the
# per-run ratios compare samples taken minutes apart, not a quarter hour.
for m in 256 1024 2048; do : >"$DOMUS_TMP/lazy.$m"; : >"$DOMUS_TMP/eager.$m"; done
j=0
while [ $j -lt "$N" ]; do
    for m in 256 1024 2048; do
        : >"$DOMUS_TMP/res.domus-eager"
        : >"$DOMUS_TMP/res.domus-lazy"
        d_boot $m || exit 1
        if [ $((j % 2)) = 0 ]; then d_round lazy && d_round eager || exit 1
        else d_round eager && d_round lazy || exit 1; fi
        domus destroy bench >/dev/null 2>&1
        cat "$DOMUS_TMP/res.domus-lazy" >>"$DOMUS_TMP/lazy.$m"
        cat "$DOMUS_TMP/res.domus-eager" >>"$DOMUS_TMP/eager.$m"
    done
    j=$((j + 1))
done
for m in 256 1024 2048; do
    echo "ram $m MiB: first instruction after restore, median of $N: lazy $(col "lazy.$m" 3) s, eager $(col "eager.$m" 3) s; console: lazy $(col "lazy.$m" 4) s, eager $(col "eager.$m" 4) s; image $(col "lazy.$m" 2 | awk '{printf "%.1f", $1 / 1048576}') MiB"
done
for m in 1024 2048; do
    paste -d' ' "$DOMUS_TMP/lazy.$m" "$DOMUS_TMP/lazy.256" | awk -v m="$m" -v a="$(col "lazy.$m" 3)" -v b="$(col lazy.256 3)" '
        {r = $7 > 0 ? $3 / $7 : 0; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r}
        END {printf "  lazy first insn %4d MiB / 256 MiB: %.2f (per run %.2f..%.2f)\n", m, (b > 0 ? a / b : 0), lo, hi}'
done
echo "PASS bench: lazy restore at 256, 1024, 2048 MiB measured"

target() { # target NAME VALUE LIMIT
    awk -v n="$1" -v v="$2" -v l="$3" 'BEGIN {printf "target: %s <= %.2f: %.2f, %s\n", n, l, v, (v <= l ? "met" : "not met")}'
}
q1=$(col main.qemu 1) q3=$(col main.qemu 3) q4=$(col main.qemu 4)
target "save time domus/qemu" "$(echo "$(col main.domus-eager 1) $q1" | awk '{print $1 / $2}')" 1.0
target "eager restore to first insn domus/qemu" "$(echo "$(col main.domus-eager 3) $q3" | awk '{print $1 / $2}')" 1.0
target "eager restore to console domus/qemu" "$(echo "$(col main.domus-eager 4) $q4" | awk '{print $1 / $2}')" 1.0
target "lazy restore to first insn 2 GiB / 256 MiB" "$(echo "$(col lazy.2048 3) $(col lazy.256 3)" | awk '{print $1 / $2}')" 1.2
