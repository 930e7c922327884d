#!/bin/sh
# Runs inside the test host (tests/testhost/run.sh --with-qemu): boots the same
# Debian kernel and initramfs N times on Domus (`domus create`) and on QEMU
# (`-M microvm -accel kvm -kernel`, at its best: no RTC, so the guest does not
# spend seconds probing one), each guest running tests/guest/hello.sh,
# which prints BOOTED as /init's first act and powers off.
#   time:   from the launch command to BOOTED on the console (host clock)
#   memory: the VMM process's RSS minus guest RAM (RssAnon + RssFile: guest
#           RAM is a memfd, i.e. shmem, for both), sampled at BOOTED
# Prints medians and the ratios Domus/QEMU, and PASS/FAIL against the targets.
: "${DOMUS_TMP:?}" "${DOMUS_GUEST_KERNEL:?}" "${DOMUS_GUEST_INITRD:?}"
N=${BENCH_RUNS:-5}
MEM=256
DOMUS_RUN_DIR="$DOMUS_TMP/run" DOMUS_LOG_DIR="$DOMUS_TMP/log"
export DOMUS_RUN_DIR DOMUS_LOG_DIR

now() { cut -d' ' -f1 /proc/uptime; }
# RSS not backed by shmem (guest RAM), in KiB.
overhead_kib() { awk '/^RssAnon|^RssFile/ {s += $2} END {print s}' "/proc/$1/status"; }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# wait_for FILE PATTERN: polls every 25 ms, 60 s at most; prints the time.
# (Every poll forks a grep; at 10 ms they took a share of the test host's CPU
# from the guest being timed.)
wait_for() {
    _i=0
    while [ $_i -lt 2400 ]; do
        if grep -q "$2" "$1" 2>/dev/null; then now; return 0; fi
        usleep 25000; _i=$((_i + 1))
    done
    return 1
}

cat >"$DOMUS_TMP/bench.cfg" <<CFG
name = "bench"
kernel = "$DOMUS_GUEST_KERNEL"
ramdisk = "$DOMUS_GUEST_INITRD"
memory = $MEM
vcpus = 1
cmdline = "console=hvc0 quiet domus.test=hello"
on_poweroff = "destroy"
CFG

domus_once() {
    t0=$(now)
    domus create "$DOMUS_TMP/bench.cfg" >/dev/null 2>&1 || return 1
    log="$DOMUS_LOG_DIR/bench.log"
    t1=$(wait_for "$log" BOOTED) || { domus destroy bench >/dev/null 2>&1; return 1; }
    pid=$(pidof domus-vm)
    kib=$(overhead_kib "$pid")
    echo "$t0 $t1 $kib"
    i=0; while domus list 2>/dev/null | grep -q '^bench ' && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
    rm -f "$log"
}

qemu_once() {
    out="$DOMUS_TMP/qemu.out"
    : >"$out"
    t0=$(now)
    qemu-system-x86_64 -M microvm,rtc=off -accel kvm -cpu host -m $MEM -smp 1 \
        -object memory-backend-memfd,id=ram,size=${MEM}M -machine memory-backend=ram \
        -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
        -kernel "$DOMUS_GUEST_KERNEL" -initrd "$DOMUS_GUEST_INITRD" \
        -append "console=ttyS0 quiet domus.test=hello initcall_blacklist=cmos_init" </dev/null >"$out" 2>&1 &
    qpid=$!
    t1=$(wait_for "$out" BOOTED) || { kill $qpid 2>/dev/null; tail -5 "$out" >&2; return 1; }
    kib=$(overhead_kib "$qpid")
    echo "$t0 $t1 $kib"
    # Measured: stop it (microvm without RTC does not always exit on poweroff).
    kill $qpid 2>/dev/null
    wait $qpid 2>/dev/null
}

sample() { # sample NAME FN J: one sample "seconds kib" into NAME.samples
    r=$($2) || { echo "FAIL bench: $1 run $3 did not reach /init"; return 1; }
    echo "$r" | awk '{printf "%.2f %d\n", $2 - $1, $3}' >>"$DOMUS_TMP/$1.samples"
    echo "sample $1: $(tail -1 "$DOMUS_TMP/$1.samples")"
}

# Interleaved (Domus, QEMU, QEMU, Domus, ...): a nested test host's speed
# drifts over a run, and neither side should have all the early boots.
: >"$DOMUS_TMP/domus.samples"
: >"$DOMUS_TMP/qemu.samples"
j=0
while [ $j -lt "$N" ]; do
    if [ $((j % 2)) = 0 ]; then
        sample domus domus_once $j && sample qemu qemu_once $j || exit 1
    else
        sample qemu qemu_once $j && sample domus domus_once $j || exit 1
    fi
    j=$((j + 1))
done
dt=$(cut -d' ' -f1 "$DOMUS_TMP/domus.samples" | median)
qt=$(cut -d' ' -f1 "$DOMUS_TMP/qemu.samples" | median)
dm=$(cut -d' ' -f2 "$DOMUS_TMP/domus.samples" | median)
qm=$(cut -d' ' -f2 "$DOMUS_TMP/qemu.samples" | median)
echo "boot: domus create->/init: $(tr '\n' ' ' <"$DOMUS_TMP/domus.samples" | awk '{for (i = 1; i <= NF; i += 2) printf "%s ", $i}') median ${dt} s"
echo "boot: qemu microvm ->/init: $(tr '\n' ' ' <"$DOMUS_TMP/qemu.samples" | awk '{for (i = 1; i <= NF; i += 2) printf "%s ", $i}') median ${qt} s"
echo "mem: VMM RSS minus guest RAM: domus ${dm} KiB, qemu ${qm} KiB"
awk -v d="$dt" -v q="$qt" 'BEGIN {r = d / q; printf "ratio: boot time domus/qemu %.2f (target <= 0.30)\n", r;
    print (r <= 0.30 ? "PASS" : "FAIL") " bench: boot time ratio " sprintf("%.2f", r) " <= 0.30"}'
awk -v d="$dm" -v q="$qm" 'BEGIN {r = d / q; printf "ratio: overhead domus/qemu %.2f (target <= 0.25, <= 5 MiB)\n", r;
    print ((r <= 0.25 && d <= 5120) ? "PASS" : "FAIL") " bench: memory overhead " d " KiB, ratio " sprintf("%.2f", r)}'
