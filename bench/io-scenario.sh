#!/bin/sh
# Runs inside the test host (tests/testhost/run.sh --with-qemu; bench/io
# prepends the BENCH_* settings): Domus's PV back ends beside QEMU's virtio
# devices on the same raw image and bridge, and Domain 0's own numbers as the
# ceiling.  Each guest (256 MiB, 1 vCPU, the same kernel and initramfs) runs
# tests/guest/iobench.sh:
#   Domus: domus create, disk '$IMG,raw,xvdb,rw' (blkback), vif bridge=xenbr0
#          (netback)
#   QEMU:  -M pc -accel kvm -cpu host, virtio-blk-pci on $IMG (cache=none,
#          aio=native where the image takes O_DIRECT, else cache=writeback with
#          aio=io_uring or threads), virtio-net-pci on tap qtap0 (vhost=off)
#          added to xenbr0
#   ceiling: Domain 0's dd on $IMG (oflag/iflag=direct, or conv=fsync and
#          buffered reads where O_DIRECT is refused: tmpfs before Linux 6.6),
#   $IMG:  in the test host brd's RAM disk /dev/ram0 (O_DIRECT for all
#          three: blkback opens such a device O_DIRECT), else a file,
#          iorand on $IMG, TCP to itself over loopback (tcpstream both ends)
# Metrics: sequential write and read MB/s (dd bs=1M), 4 KiB random-read IOPS
# (queue depth 1), TCP guest->Domain 0 MB/s with tests/guest/tcpstream.c
# (Domain 0 -> guest is not measured: bulk receive into a Domus guest
# destabilises the nested test host).  All on Domain 0's clock: it times TCP
# itself (tcpstream recv), and the guests read its clock (tcpstream clock on
# PORT) before and after their disk tests to put their timings on it
# (clock_rate: Domain 0's seconds per guest second).  Domus and QEMU boot
# twice each, D Q Q D (the test host's speed drifts over a run), each boot
# making BENCH_RUNS passes (BENCH_BOOTS boots each: D Q Q D D Q ...); prints
# the median of the boots' medians,
# ratios Domus/QEMU, Domus/ceiling and QEMU/ceiling beside the targets
# (>= 1.0x QEMU, >= 0.8x the ceiling) as information, not as PASS/FAIL; one
# PASS line when every measurement was taken, FAIL lines for those missing.
# BENCH_DOMUS_APPEND: more kernel parameters for the Domus guests only (a
# tuning of their front ends, e.g. xen_blkfront.max_indirect_segments=256),
# said in the notes.
: "${DOMUS_TMP:?}" "${DOMUS_GUEST_KERNEL:?}" "${DOMUS_GUEST_INITRD:?}"
DOMUS_APPEND=${BENCH_DOMUS_APPEND:-}
BOOTS=${BENCH_BOOTS:-2} RUNS=${BENCH_RUNS:-3} MIB=${BENCH_MIB:-64} SECS=${BENCH_SECS:-5} TCPMIB=${BENCH_TCPMIB:-64}
MEM=256 PORT=5100 DOM0=10.0.0.1
DOMUS_RUN_DIR="$DOMUS_TMP/run" DOMUS_LOG_DIR="$DOMUS_TMP/log"
export DOMUS_RUN_DIR DOMUS_LOG_DIR
IMG="$DOMUS_TMP/io.img" RES="$DOMUS_TMP/results" NOTES="$DOMUS_TMP/notes"
: >"$RES"
: >"$NOTES"
bg_pids=""
trap 'kill $bg_pids 2>/dev/null; ip link del xenbr0 2>/dev/null' EXIT

now() { cut -d' ' -f1 /proc/uptime; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
record() { echo "$1 $2 $3" >>"$RES"; echo "io: $1 $2 $3"; } # WHO METRIC VALUE
note() { echo "$*" >>"$NOTES"; echo "io: note: $*"; }
# result WHO METRIC: the median of what was recorded (the mean of the middle two
# of an even count), empty when nothing was.
result() {
    awk -v w="$1" -v m="$2" '$1 == w && $2 == m { print $3 }' "$RES" | sort -n |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
            else if (NR) printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# wait_for FILE PATTERN SECONDS
wait_for() {
    _i=0
    while [ "$_i" -lt "$3" ]; do
        tr -d '\r' <"$1" 2>/dev/null | grep -q "$2" && return 0
        sleep 1
        _i=$((_i + 1))
    done
    return 1
}

# The guest initramfs's static helpers, for Domain 0's side.
mkdir -p "$DOMUS_TMP/x"
(cd "$DOMUS_TMP/x" && cpio -id usr/bin/iorand usr/bin/tcpstream <"$DOMUS_GUEST_INITRD" 2>/dev/null)
IORAND="$DOMUS_TMP/x/usr/bin/iorand" TCPSTREAM="$DOMUS_TMP/x/usr/bin/tcpstream"
[ -x "$IORAND" ] && [ -x "$TCPSTREAM" ] || { echo "FAIL io: no iorand, tcpstream in the guest initramfs"; exit 1; }

# sink PORT OUT: Domain 0 takes one transfer of TCPMIB MiB on PORT in the
# background (tcpstream recv: timed on its clock from the end of the first
# MiB to the end of the stream); its MB/s, or its complaint, go to OUT.
sink() {
    ( "$TCPSTREAM" recv "$1" "$TCPMIB" 900 >"$2.out" 2>&1
        sed -n 's/^mbs=\([0-9.]*\) .*/\1/p' "$2.out" | grep . >"$2" || { tr '\n' ' ' <"$2.out"; echo; } >"$2" ) &
    bg_pids="$bg_pids $!"
}

# Ports of WHO's TCP transfers: tport WHO K.
tport() { case "$1" in ceiling) echo $((5200 + $2)) ;; domus) echo $((5300 + $2)) ;; *) echo $((5400 + $2)) ;; esac; }

# tcp_results WHO: median of the sinks' results for WHO.
tcp_results() {
    : >"$DOMUS_TMP/tcp.$1"
    _k=1
    while [ $_k -le "$RUNS" ]; do
        _f="$DOMUS_TMP/sink.$1.$_k"
        _i=0
        while [ ! -s "$_f" ] && [ $_i -lt 30 ]; do sleep 1; _i=$((_i + 1)); done
        _v="$(cat "$_f" 2>/dev/null)"
        echo "io: sample $1 tcp_tx_mbs: ${_v:-none}"
        case "$_v" in [0-9]*) echo "$_v" >>"$DOMUS_TMP/tcp.$1" ;; esac
        _k=$((_k + 1))
    done
    [ -s "$DOMUS_TMP/tcp.$1" ] && record "$1" tcp_tx_mbs "$(median <"$DOMUS_TMP/tcp.$1")"
}

# Domain 0's clock for the guests: a connection on PORT gets it.
"$TCPSTREAM" clock $PORT 3600 &
bg_pids="$bg_pids $!"

# ---- the image and the bridge ---------------------------------------------------
# In the test host the image is a block device taking O_DIRECT, brd's RAM
# disk, for all three (tmpfs, where files live there, refuses O_DIRECT before
# Linux 6.6, which would leave only page-cache numbers).
if [ "${DOMUS_TESTHOST:-}" = 1 ] && modprobe brd rd_nr=1 rd_size=$((MIB * 1024)) 2>/dev/null &&
    [ -b /dev/ram0 ]; then
    IMG=/dev/ram0
    note "image: brd RAM disk /dev/ram0 ($MIB MiB)"
fi
dd if=/dev/zero of="$IMG" bs=1048576 count="$MIB" 2>/dev/null || { echo "FAIL io: cannot make $IMG"; exit 1; }
ip link del xenbr0 2>/dev/null
ip link add xenbr0 type bridge
ip link set xenbr0 up
ip addr add $DOM0/24 dev xenbr0

# ---- Domain 0: the ceiling ----------------------------------------------------
echo "io: image $IMG ($([ -b "$IMG" ] && echo block device || stat -f -c %T "$IMG"), $MIB MiB); $RUNS passes; random reads $SECS s; TCP $TCPMIB MiB"
if dd if=/dev/zero of="$IMG" bs=1048576 count=1 conv=notrunc oflag=direct 2>/dev/null; then
    wflag="conv=notrunc oflag=direct" rflag="iflag=direct"
else
    wflag="conv=notrunc,fsync" rflag=""
    note "ceiling: O_DIRECT refused on the image's file system; dd conv=fsync (busybox dd has no fdatasync) and buffered reads"
fi
# ceil_dd NAME DD-ARGS...: RUNS timed passes of dd, median MB/s.
ceil_dd() {
    _n="$1"
    shift
    : >"$DOMUS_TMP/ceil"
    _k=0
    while [ $_k -lt "$RUNS" ]; do
        _t0="$(now)"
        dd bs=1048576 count="$MIB" "$@" 2>/dev/null || { echo "FAIL io: ceiling dd $*"; return 1; }
        _t1="$(now)"
        awk -v a="$_t0" -v b="$_t1" -v m="$MIB" 'BEGIN { d = b - a; if (d < 0.01) d = 0.01;
            printf "%.1f\n", m * 1.048576 / d }' >>"$DOMUS_TMP/ceil"
        _k=$((_k + 1))
    done
    echo "io: samples ceiling $_n: $(tr '\n' ' ' <"$DOMUS_TMP/ceil")"
    record ceiling "$_n" "$(median <"$DOMUS_TMP/ceil")"
}
# shellcheck disable=SC2086
ceil_dd seq_write_mbs if=/dev/zero of="$IMG" $wflag
# shellcheck disable=SC2086
ceil_dd seq_read_mbs if="$IMG" of=/dev/null $rflag
out="$("$IORAND" -t "$SECS" "$IMG" 2>/dev/null)"
echo "io: sample ceiling rand_read_iops: iorand: $out"
case "$out" in *mode=buffered*) note "ceiling: iorand's reads are buffered (O_DIRECT refused)" ;; esac
v="$(echo "$out" | sed -n 's/^iops=\([0-9.]*\) .*/\1/p')"
[ -n "$v" ] && record ceiling rand_read_iops "$v"
_k=1
while [ $_k -le "$RUNS" ]; do
    sink "$(tport ceiling $_k)" "$DOMUS_TMP/sink.ceiling.$_k"
    "$TCPSTREAM" send 127.0.0.1 "$(tport ceiling $_k)" "$TCPMIB" 60 >/dev/null
    _k=$((_k + 1))
done
tcp_results ceiling
note "ceiling: TCP is Domain 0 to itself over loopback (the same tcpstream at both ends)"

# ---- a guest: sinks, then wait for its results ----------------------------------
# guest_results WHO CONSOLE-LOG: its IOBENCH lines recorded, its other lines shown.
guest_results() {
    tr -d '\r' <"$2" | grep -E '^(IOBENCH |IOBENCH-INFO|IOBENCH-SAMPLE irqs|FAIL)' | sed "s/^/io: $1: /"
    for m in seq_write_mbs seq_read_mbs rand_read_iops clock_rate; do
        v="$(tr -d '\r' <"$2" | sed -n "s/^IOBENCH $m \([0-9.]*\)$/\1/p" | tail -n 1)"
        [ -n "$v" ] && record "$1" "$m" "$v"
    done
    tcp_results "$1"
}
cmdline() { # cmdline WHO IP DEV
    echo "quiet domus.test=iobench domus.iodev=$3 domus.ip=$2 domus.peer=$DOM0 domus.ioport=$PORT" \
        "domus.tcpport=$(tport "$1" 0) domus.iomib=$MIB domus.ioruns=$RUNS domus.iosecs=$SECS domus.tcpmib=$TCPMIB"
}
start_sinks() {
    _k=1
    while [ $_k -le "$RUNS" ]; do
        rm -f "$DOMUS_TMP/sink.$1.$_k" # a previous round's
        sink "$(tport "$1" $_k)" "$DOMUS_TMP/sink.$1.$_k"
        _k=$((_k + 1))
    done
}

# ---- Domus --------------------------------------------------------------------
domus_round() {
    start_sinks domus
    cat >"$DOMUS_TMP/io.cfg" <<CFG
name = "io"
type = "pvh"
kernel = "$DOMUS_GUEST_KERNEL"
ramdisk = "$DOMUS_GUEST_INITRD"
memory = $MEM
vcpus = 1
cmdline = "console=hvc0 $(cmdline domus 10.0.0.2 xvdb)${DOMUS_APPEND:+ $DOMUS_APPEND}"
on_poweroff = "destroy"
disk = [ '$IMG,raw,xvdb,rw' ]
vif = [ 'bridge=xenbr0' ]
CFG
    if domus create "$DOMUS_TMP/io.cfg"; then
        log="$DOMUS_LOG_DIR/io.log"
        if ! wait_for "$log" '^IOBENCH-DONE' 300; then
            echo "io: domus guest: no IOBENCH-DONE (console: $(tail -n 5 "$log" | tr -d '\r' | tr '\n' '|'))"
            echo "io: domus guest: domus-vm's log: $(tail -n 8 "$DOMUS_LOG_DIR/domus-vm-io.log" | tr '\n' '|')"
        fi
        guest_results domus "$log"
        _i=0
        while domus list 2>/dev/null | grep -q '^io ' && [ $_i -lt 60 ]; do sleep 1; _i=$((_i + 1)); done
        domus destroy io >/dev/null 2>&1
        # the back ends' own counters (logged as they disconnect)
        grep -E 'vbd [0-9]+: [0-9]+ requests|: to the guest ' "$DOMUS_LOG_DIR/domus-vm-io.log" 2>/dev/null |
            sed 's/^/io: domus back end: /'
        : >"$DOMUS_LOG_DIR/domus-vm-io.log" 2>/dev/null
    else
        echo "io: domus create failed"
    fi
}

# ---- QEMU ---------------------------------------------------------------------
# qemu_drive_ok OPTS: QEMU takes -drive file=$IMG,OPTS (else notes why not).
qemu_drive_ok() {
    echo quit | qemu-system-x86_64 -M none -accel kvm -nodefaults -display none -monitor stdio \
        -drive "file=$IMG,if=none,id=d0,format=raw,$1" >"$DOMUS_TMP/probe" 2>&1 && return 0
    note "qemu: no $1: $(grep -v '^(qemu)\|^QEMU .* monitor' "$DOMUS_TMP/probe" | tr -d '\r' | tail -n 1)"
    return 1
}
if [ -n "$rflag" ] && qemu_drive_ok cache=none,aio=native; then
    drive=cache=none,aio=native
elif qemu_drive_ok cache=writeback,aio=io_uring; then
    drive=cache=writeback,aio=io_uring
else
    drive=cache=writeback,aio=threads
fi
note "qemu: virtio-blk-pci with $drive"
qemu_round() {
    start_sinks qemu
    qout="$DOMUS_TMP/qemu-io.out"
    : >"$qout"
    qemu-system-x86_64 -M pc -accel kvm -cpu host -m $MEM -smp 1 \
        -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
        -kernel "$DOMUS_GUEST_KERNEL" -initrd "$DOMUS_GUEST_INITRD" \
        -append "console=ttyS0 $(cmdline qemu 10.0.0.3 vda)" \
        -drive "file=$IMG,if=none,id=d0,format=raw,$drive" -device virtio-blk-pci,drive=d0 \
        -netdev tap,id=n0,ifname=qtap0,script=no,downscript=no,vhost=off \
        -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile= </dev/null >"$qout" 2>&1 &
    qpid=$!
    bg_pids="$bg_pids $qpid"
    _i=0
    while [ ! -e /sys/class/net/qtap0 ] && kill -0 $qpid 2>/dev/null && [ $_i -lt 300 ]; do sleep 0.1; _i=$((_i + 1)); done
    if ip link set qtap0 master xenbr0 2>/dev/null && ip link set qtap0 up; then
        _i=0
        while kill -0 $qpid 2>/dev/null && [ $_i -lt 300 ]; do
            tr -d '\r' <"$qout" | grep -q '^IOBENCH-DONE' && break
            sleep 1
            _i=$((_i + 1))
        done
        tr -d '\r' <"$qout" | grep -q '^IOBENCH-DONE' || echo "io: qemu guest: no IOBENCH-DONE (output: $(tail -n 5 "$qout" | tr -d '\r' | tr '\n' '|'))"
        guest_results qemu "$qout"
    else
        echo "io: qemu: no tap qtap0 on xenbr0 (output: $(tail -n 5 "$qout" | tr -d '\r' | tr '\n' '|'))"
    fi
    _i=0
    while kill -0 $qpid 2>/dev/null && [ $_i -lt 30 ]; do sleep 1; _i=$((_i + 1)); done
    kill $qpid 2>/dev/null
}

# Domus, QEMU, QEMU, Domus: a nested test host's speed drifts over a run (it
# tends to slow down), and neither side should have all the early boots.
_b=1
while [ $_b -le "$BOOTS" ]; do
    if [ $((_b % 2)) = 1 ]; then domus_round; qemu_round; else qemu_round; domus_round; fi
    _b=$((_b + 1))
done

# ---- the table ----------------------------------------------------------------
missing=""
echo
[ -z "$DOMUS_APPEND" ] || note "domus guests' extra kernel parameters: $DOMUS_APPEND (QEMU's guests: none)"
echo "bench io: Domus PV back ends vs QEMU virtio vs Domain 0 (Domus and QEMU: $BOOTS boots each, D Q Q D ..., of $RUNS passes; medians; $MIB MiB image, bs=1M; 4 KiB random reads at QD1 for $SECS s; TCP $TCPMIB MiB guest->Domain 0)"
printf '%-26s %10s %10s %10s %11s %14s %13s\n' metric ceiling domus qemu domus/qemu domus/ceiling qemu/ceiling
for m in seq_write_mbs seq_read_mbs rand_read_iops tcp_tx_mbs; do
    c="$(result ceiling $m)" d="$(result domus $m)" q="$(result qemu $m)"
    for w in ceiling domus qemu; do
        [ -n "$(result $w $m)" ] || missing="$missing $m:$w"
    done
    awk -v m="$m" -v c="$c" -v d="$d" -v q="$q" 'function r(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf(a / b < 0.1 ? "%.4fx" : "%.2fx", a / b) }
        BEGIN { printf "%-26s %10s %10s %10s %11s %14s %13s\n", m, (c == "" ? "-" : c), (d == "" ? "-" : d), (q == "" ? "-" : q), r(d, q), r(d, c), r(q, c) }'
done
echo
echo "targets (information, not a test): domus >= 1.0x qemu, domus >= 0.8x the ceiling"
echo "(qemu/ceiling: how near the peer itself comes to the ceiling on this host)"
for m in seq_write_mbs seq_read_mbs rand_read_iops tcp_tx_mbs; do
    awk -v m="$m" -v c="$(result ceiling $m)" -v d="$(result domus $m)" -v q="$(result qemu $m)" '
        function t(a, b, want) { if (a == "" || b == "" || b == 0) return "not measured";
            return sprintf(a / b < 0.1 ? "%.4fx, %s" : "%.2fx, %s", a / b, (a / b >= want ? "target met" : "below target")) }
        BEGIN { printf "  %-16s vs qemu: %-22s vs ceiling: %s\n", m, t(d, q, 1.0), t(d, c, 0.8) }'
done
echo "guests' clock_rate (Domain 0 s per guest s; their disk timings are scaled by it): domus $(result domus clock_rate), qemu $(result qemu clock_rate)"
sed 's/^/note: /' "$NOTES"
if [ -n "$missing" ]; then
    for x in $missing; do echo "FAIL io: no ${x%%:*} for ${x#*:}"; done
    exit 1
fi
echo "PASS io: every measurement taken (ceiling, domus, qemu: 4 metrics each)"
exit 0
