#!/bin/sh
# I/O benchmark for bench/io, run alike by a Domus guest (xen-blkfront,
# xen-netfront) and by QEMU (virtio-blk, virtio-net).  Kernel parameters:
#   domus.iodev=DEV    the disk to measure, overwritten (xvdb; vda under QEMU)
#   domus.iomib=MIB    MiB per sequential pass (default 64)
#   domus.ioruns=N     passes of each sequential test, TCP transfers (default 3)
#   domus.iosecs=S     seconds of random reads (default 5)
#   domus.ip=ADDR      eth0's address (/24)
#   domus.peer=ADDR    Domain 0: a connection to its port domus.ioport gets
#                      its clock (tcpstream clock); it takes TCP transfer i on port
#                      domus.tcpport + i (tcpstream recv) and times it itself
#   domus.tcpmib=MIB   MiB per TCP transfer (default 64)
# Prints `IOBENCH NAME VALUE` lines (medians) and `IOBENCH-SAMPLE ...` lines
# per pass, FAIL lines on errors, then IOBENCH-DONE, and powers off:
#   seq_write_mbs, seq_read_mbs   dd bs=1M oflag/iflag=direct of MIB MiB
#   rand_read_iops                iorand: 4 KiB O_DIRECT preads at random
#                                 offsets, one at a time, for S seconds
#   clock_rate                    Domain 0's seconds per guest second over
#                                 the disk tests (its clock read at both ends)
# The disk passes are timed on the guest's clock and their rates divided by
# clock_rate, i.e. given on Domain 0's clock (a nested test host need not keep
# the guest's clock at Domain 0's rate).
. /tests/lib.sh
echo BOOTED
dev="$(cmdline_get domus.iodev || echo xvdb)"
mib="$(cmdline_get domus.iomib || echo 64)"
runs="$(cmdline_get domus.ioruns || echo 3)"
secs="$(cmdline_get domus.iosecs || echo 5)"
ip="$(cmdline_get domus.ip)" peer="$(cmdline_get domus.peer)"
port="$(cmdline_get domus.ioport || echo 5100)"
tport="$(cmdline_get domus.tcpport || echo $((port + 100)))"
tcpmib="$(cmdline_get domus.tcpmib || echo 64)"

gnow() { cut -d' ' -f1 /proc/uptime; }
dnow() { nc "$peer" "$port" </dev/null 2>/dev/null; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
done_() { echo IOBENCH-DONE; sync; poweroff -f; }

# The network first: Domain 0's clock is read through it.
_i=0
while [ ! -e /sys/class/net/eth0 ] && [ $_i -lt 200 ]; do sleep 0.1; _i=$((_i + 1)); done
[ -e /sys/class/net/eth0 ] || { fail "iobench: no eth0"; done_; }
ip link set lo up
ip link set eth0 up
ip addr add "$ip/24" dev eth0
_i=0
until ping -c 1 -W 1 "$peer" >/dev/null 2>&1; do
    _i=$((_i + 1))
    [ $_i -lt 60 ] || { fail "iobench: $peer does not answer pings"; done_; }
done

_i=0
while [ ! -b "/dev/$dev" ] && [ $_i -lt 200 ]; do sleep 0.1; _i=$((_i + 1)); done
[ -b "/dev/$dev" ] || { fail "iobench: no /dev/$dev"; done_; }
size=$(($(cat "/sys/block/$dev/size") / 2048))
[ "$mib" -le "$size" ] || mib=$size
# What the guest kernel chose from the CPU it was shown (each costs per
# system call, interrupt or context switch, alike in both guests or not).
for f in /sys/devices/system/cpu/vulnerabilities/*; do
    echo "IOBENCH-INFO cpu ${f##*/}: $(cat "$f")"
done
echo "IOBENCH-INFO clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
echo "IOBENCH-INFO $dev $size MiB, max_segments $(cat "/sys/block/$dev/queue/max_segments"); $mib MiB per pass, $runs passes"

g0="$(gnow)" d0="$(dnow)"
[ -n "$d0" ] || { fail "iobench: no clock from $peer:$port"; done_; }

# irqs: "NAME COUNT" per interrupt source (counts summed over the vCPUs).
irqs() {
    awk 'NR > 1 { n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i;
        name = $NF; sub(":", "", $1); print $1 "/" name, n }' /proc/interrupts
}
# irq_delta NAME BEFORE-FILE: the sources that fired since BEFORE-FILE, as
# an IOBENCH-SAMPLE line (how many interrupts a test cost the guest).
irq_delta() {
    irqs | awk -v n="$1" 'NR == FNR { b[$1] = $2; next } $2 > b[$1] { s = s " " $1 "=" $2 - b[$1] }
        END { print "IOBENCH-SAMPLE irqs " n ":" s }' "$2" -
}

# series NAME CMD...: CMD timed RUNS times (MB/s of MIB MiB on the guest's
# clock, one per line in /tmp/NAME).
series() {
    _n="$1"
    shift
    : >"/tmp/$_n"
    irqs >/tmp/irqs.before
    _k=0
    while [ $_k -lt "$runs" ]; do
        _t0="$(gnow)"
        "$@" || { fail "iobench: $_n pass $_k"; return 1; }
        _t1="$(gnow)"
        awk -v a="$_t0" -v b="$_t1" -v m="$mib" 'BEGIN { d = b - a; if (d < 0.01) d = 0.01;
            printf "%.2f\n", m * 1.048576 / d }' >>"/tmp/$_n"
        _k=$((_k + 1))
    done
    irq_delta "$_n" /tmp/irqs.before
}
wr() { dd if=/dev/zero of="/dev/$dev" bs=1048576 count="$mib" oflag=direct 2>/dev/null; }
rd() { dd if="/dev/$dev" of=/dev/null bs=1048576 count="$mib" iflag=direct 2>/dev/null; }
series seq_write_mbs wr
series seq_read_mbs rd
irqs >/tmp/irqs.before
out="$(iorand -t "$secs" "/dev/$dev")" || fail "iobench: iorand on /dev/$dev"
irq_delta rand_read_iops /tmp/irqs.before
echo "IOBENCH-SAMPLE rand_read_iops iorand: $out"
echo "$out" | sed -n 's/^iops=\([0-9.]*\) .*/\1/p' >/tmp/rand_read_iops

g1="$(gnow)" d1="$(dnow)"
if [ -n "$d1" ]; then
    rate="$(awk -v g0="$g0" -v g1="$g1" -v d0="$d0" -v d1="$d1" 'BEGIN { printf "%.4f", (d1 - d0) / (g1 - g0) }')"
    echo "IOBENCH-SAMPLE clock_rate guest $g0..$g1 dom0 $d0..$d1"
else
    fail "iobench: no clock from $peer:$port after the disk tests"
    rate=1
fi
echo "IOBENCH clock_rate $rate"
for n in seq_write_mbs seq_read_mbs rand_read_iops; do
    [ -s "/tmp/$n" ] || continue
    echo "IOBENCH-SAMPLE $n guest clock: $(tr '\n' ' ' <"/tmp/$n")"
    echo "IOBENCH $n $(median <"/tmp/$n" | awk -v r="$rate" '{ printf "%.1f", $1 / r }')"
done

# TCP to Domain 0, which times it (tcpstream recv); our view in SAMPLE lines.
irqs >/tmp/irqs.before
_k=1
while [ $_k -le "$runs" ]; do
    out="$(tcpstream send "$peer" $((tport + _k)) "$tcpmib" 60)" ||
        fail "iobench: tcpstream send $peer $((tport + _k)) $tcpmib"
    echo "IOBENCH-SAMPLE tcp_tx $_k guest clock: $out"
    _k=$((_k + 1))
done
irq_delta tcp_tx /tmp/irqs.before
done_
