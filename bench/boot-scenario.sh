#!/bin/sh
# Runs inside the test host (tests/testhost/run.sh --with-qemu): boots the same
# Debian kernel N times on Domus (`domus create`) and on QEMU (`-M microvm
# -accel kvm -kernel`, at its best: no RTC, so the guest does not spend
# seconds probing one), interleaved D Q Q D ..., with two initramfs images:
#   minimal: busybox and an /init that prints one line and powers off, made
#            here from the test host's own busybox (the headline: what the
#            VMM costs, not what a test initramfs costs to unpack and run);
#   test:    the tests' guest initramfs (tests/guest, 6-7 MB, its /init loads
#            the front-end modules), running tests/guest/hello.sh.
# For each boot:
#   total:  from the launch command to BOOTED on the console (test host's
#           clock, /proc/uptime)
#   vmm:    from the launch to the guest's first instruction: the first
#           kvm:kvm_entry event in the test host's trace (clock "boot", the
#           clock of /proc/uptime), the same probe for both sides; Domus's
#           split by `domus -v create`'s phases (domus_split)
#   kernel: the guest kernel's printk time at "Run /init as init process"
#   rest:   total - vmm - kernel: what happens in neither (firmware and
#           decompression for QEMU's bzImage boot, the kernel's clock
#           starting late, the /init line reaching the console, polling)
#   memory: the VMM process's RSS minus guest RAM (RssAnon + RssFile: guest
#           RAM is a memfd, i.e. shmem, for both), sampled at BOOTED
# Prints medians, the ratio Domus/QEMU of the medians, and the spread of the
# per-pair ratios (min..max).  Targets are printed, not asserted.
# (bench/lib-trace.sh comes first: now, median, setup_trace, arm_trace, first_entry.)
: "${DOMUS_TMP:?}" "${DOMUS_GUEST_KERNEL:?}" "${DOMUS_GUEST_INITRD:?}"
N=${BENCH_RUNS:-5}
MEM=256
DOMUS_RUN_DIR="$DOMUS_TMP/run" DOMUS_LOG_DIR="$DOMUS_TMP/log"
export DOMUS_RUN_DIR DOMUS_LOG_DIR

# RSS not backed by shmem (guest RAM), in KiB.
overhead_kib() { awk '/^RssAnon|^RssFile/ {s += $2} END {print s}' "/proc/$1/status"; }

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

# The minimal initramfs: busybox and an /init printing its times.
make_minimal() {
    m="$DOMUS_TMP/minimal"
    rm -rf "$m" && mkdir -p "$m/bin" "$m/dev" "$m/proc"
    cp /bin/busybox "$m/bin/busybox"
    cat >"$m/init" <<'INIT'
#!/bin/busybox sh
B=/bin/busybox
$B mount -t devtmpfs dev /dev
$B mount -t proc proc /proc
u=$($B cut -d' ' -f1 /proc/uptime)
k=$($B dmesg | $B sed -n 's/^\[ *\([0-9.]*\)\] Run \/init as init process.*/\1/p')
echo "BOOTED uptime=$u printk=$k" >/dev/console
$B sleep 2 # the VMM's memory is sampled at BOOTED
$B poweroff -f
INIT
    chmod 0755 "$m/init"
    (cd "$m" && find . | cpio -o -H newc 2>/dev/null) >"$DOMUS_TMP/minimal.cpio" ||
        { echo "FAIL bench: cannot make the minimal initramfs"; exit 1; }
    echo "$DOMUS_TMP/minimal.cpio"
}

write_cfg() { # write_cfg INITRD CMDLINE
    cat >"$DOMUS_TMP/bench.cfg" <<CFG
name = "bench"
kernel = "$DOMUS_GUEST_KERNEL"
ramdisk = "$1"
memory = $MEM
vcpus = 1
cmdline = "console=hvc0 quiet $2"
on_poweroff = "destroy"
CFG
}

# Domus's time before the first guest instruction, split (ms), from `domus -v
# create`'s phases (its stderr in $1): the CLI's own start (launch to its
# main), then its phases up to the vCPU threads' start, then the threads'
# start to the first guest entry ($3, the trace's); $2 is the launch.
# Appended to $DOMUS_TMP/$CASE.split.
VMM_SPLIT="cli-exec request domusd exec memory build kvm-vm back-ends vcpus to-entry"
domus_split() {
    st=$(sed -n 's/^create: started at \([0-9.]*\) s.*/\1/p' "$1")
    sed -n 's/^create phases (ms): //p' "$1" | awk -F', ' -v st="$st" -v t0="$2" -v fe="$3" '{
        printf "%.1f", (st - t0) * 1000; s = 0
        for (i = 1; i <= 8; i++) { n = split($i, w, " "); s += w[n]; printf " %.1f", w[n] }
        printf " %.1f\n", (fe - st) * 1000 - s }' >>"$DOMUS_TMP/$CASE.split"
}

# Each prints "t0 t_booted t_first_entry kib printk" on success.
domus_once() {
    arm_trace
    t0=$(now)
    domus -v create "$DOMUS_TMP/bench.cfg" >/dev/null 2>"$DOMUS_TMP/create.err" || return 1
    pid=$(pidof domus-vm)
    log="$DOMUS_LOG_DIR/bench.log"
    t1=$(wait_for "$log" BOOTED) || { domus destroy bench >/dev/null 2>&1; return 1; }
    kib=$(overhead_kib "$pid" 2>/dev/null)
    k=$(sed -n 's/.*BOOTED.*printk=\([0-9.]*\).*/\1/p' "$log" | head -n1)
    fe=$(first_entry)
    domus_split "$DOMUS_TMP/create.err" "$t0" "$fe"
    echo "$t0 $t1 $fe ${kib:-0} ${k:-0}"
    i=0; while domus list 2>/dev/null | grep -q '^bench ' && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
    rm -f "$log"
}

qemu_once() {
    out="$DOMUS_TMP/qemu.out"
    : >"$out"
    arm_trace
    t0=$(now)
    qemu-system-x86_64 -M microvm,rtc=off -accel kvm -cpu host -m $MEM -smp 1 \
        -object memory-backend-memfd,id=ram,size=${MEM}M -machine memory-backend=ram \
        -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
        -kernel "$DOMUS_GUEST_KERNEL" -initrd "$Q_INITRD" \
        -append "console=ttyS0 quiet $Q_CMDLINE initcall_blacklist=cmos_init" </dev/null >"$out" 2>&1 &
    qpid=$!
    t1=$(wait_for "$out" BOOTED) || { kill $qpid 2>/dev/null; tail -5 "$out" >&2; return 1; }
    kib=$(overhead_kib "$qpid" 2>/dev/null)
    k=$(tr -d '\r' <"$out" | sed -n 's/.*BOOTED.*printk=\([0-9.]*\).*/\1/p' | head -n1)
    echo "$t0 $t1 $(first_entry) ${kib:-0} ${k:-0}"
    # Measured: stop it (microvm without RTC does not always exit on poweroff).
    kill $qpid 2>/dev/null
    wait $qpid 2>/dev/null
}

# sample CASE SIDE FN J: one sample "total vmm kernel rest kib" into CASE.SIDE.
sample() {
    r=$($3) || { echo "FAIL bench: $1 $2 run $4 did not reach /init"; return 1; }
    case "$r" in *" 0") echo "FAIL bench: $1 $2 run $4: no printk time of /init on the console"; return 1 ;; esac
    echo "$r" | awk '{tot = $2 - $1; vmm = $3 - $1; printf "%.3f %.3f %.3f %.3f %d\n", tot, vmm, $5, tot - vmm - $5, $4}' \
        >>"$DOMUS_TMP/$1.$2"
    echo "sample $1 $2: $(tail -1 "$DOMUS_TMP/$1.$2") (total vmm kernel rest KiB)"
}

col() { cut -d' ' -f"$2" "$DOMUS_TMP/$1" | median; }

# run_case CASE: N boots of each side, interleaved, then the table.
run_case() {
    CASE=$1
    : >"$DOMUS_TMP/$1.domus"
    : >"$DOMUS_TMP/$1.qemu"
    : >"$DOMUS_TMP/$1.split"
    j=0
    while [ $j -lt "$N" ]; do
        if [ $((j % 2)) = 0 ]; then
            sample "$1" domus domus_once $j && sample "$1" qemu qemu_once $j || exit 1
        else
            sample "$1" qemu qemu_once $j && sample "$1" domus domus_once $j || exit 1
        fi
        j=$((j + 1))
    done
    echo "boot ($1 initramfs), medians of $N boots each, seconds:"
    printf '  %-6s %7s %7s %7s %7s\n' side total vmm kernel rest
    for s in domus qemu; do
        printf '  %-6s %7s %7s %7s %7s\n' "$s" "$(col "$1.$s" 1)" "$(col "$1.$s" 2)" "$(col "$1.$s" 3)" "$(col "$1.$s" 4)"
    done
    for c in 1:total 2:vmm 3:kernel; do
        i=${c%%:*}
        paste -d' ' "$DOMUS_TMP/$1.domus" "$DOMUS_TMP/$1.qemu" | awk -v i="$i" -v n="${c#*:}" -v dm="$(col "$1.domus" "$i")" \
            -v qm="$(col "$1.qemu" "$i")" '{r = (q = $(i + 5)) > 0 ? $i / q : 0; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r}
            END {printf "  ratio %s domus/qemu %.2f (per pair %.2f..%.2f)\n", n, (qm > 0 ? dm / qm : 0), lo, hi}'
    done
    printf '  domus vmm split, medians (ms):'
    i=1
    for w in $VMM_SPLIT; do
        printf ' %s %s' "$w" "$(col "$1.split" $i)"
        i=$((i + 1))
    done
    echo
    echo "PASS bench: $1 initramfs: $N boots of each side measured"
}

setup_trace
MINI=$(make_minimal) || exit 1
write_cfg "$MINI" ""
Q_INITRD="$MINI" Q_CMDLINE=""
run_case minimal
dt=$(col minimal.domus 1) qt=$(col minimal.qemu 1)
dm=$(col minimal.domus 5) qm=$(col minimal.qemu 5)
awk -v d="$dt" -v q="$qt" 'BEGIN {r = d / q; printf "target: boot time domus/qemu <= 0.30 (minimal initramfs): %.2f, %s\n", r, (r <= 0.30 ? "met" : "not met")}'
write_cfg "$DOMUS_GUEST_INITRD" "domus.test=hello"
Q_INITRD="$DOMUS_GUEST_INITRD" Q_CMDLINE="domus.test=hello"
run_case test
echo "mem: VMM RSS minus guest RAM, sampled at BOOTED (minimal initramfs): domus ${dm} KiB, qemu ${qm} KiB"
awk -v d="$dm" -v q="$qm" 'BEGIN {r = d / q; printf "target: overhead domus/qemu <= 0.25 and <= 5 MiB: %.2f, %d KiB, %s\n", r, d, ((r <= 0.25 && d <= 5120) ? "met" : "not met")}'
