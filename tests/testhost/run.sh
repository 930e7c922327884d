#!/usr/bin/env bash
# Runs one test scenario on a host with hardware virtualization and KVM_XEN.
#
#   tests/testhost/run.sh SCENARIO [--timeout SEC] [--with-qemu] [--testhost|--native] [--shell]
#                         [--guest 6.1|6.12]
#
# SCENARIO is a POSIX sh script (a path, or a name looked up in tests/scenarios/
# and tests/testhost/).  It prints `PASS what` / `FAIL what` lines.  It gets:
#   DOMUS_GUEST_KERNEL  Debian's cloud kernel (boots as a Xen PVH guest)
#   DOMUS_GUEST_INITRD  the guest initramfs (tests/guest/*.sh in /tests/)
#   DOMUS_BIN           directory holding Domus's binaries (also on PATH,
#                       with kvm-xen-probe and, with --with-qemu, QEMU)
#   DOMUS_TMP           a writable directory
#   DOMUS_GUEST_TESTS   the repo's tests/guest scripts
#   DOMUS_TESTHOST      1 inside the (disposable) test host: a scenario may
#                       load modules there (brd's RAM disks) it would not
#                       load on a developer's own machine
#
# Where /proc/cpuinfo has neither vmx nor svm (the development machines), the
# scenario runs inside the *test host*: QEMU's TCG emulator with an emulated
# AMD SVM CPU booting Debian's 6.12 cloud kernel with its stock kvm modules
# (CONFIG_KVM_XEN=y; DOMUS_TESTHOST_KERNEL=6.1: Debian 12's 6.1 kernel with the
# kvm modules setup builds with KVM_XEN), from an initramfs built here into
# build/testhost/.  The serial log goes to tests/out/<scenario>.log, QEMU's
# own log of the test host's CPU resets to tests/out/<scenario>.qemu.log.  Elsewhere the scenario runs natively (as root,
# with the KVM_XEN modules loaded: `make setup-kvm`).
#
# Prints every PASS/FAIL line of the scenario, and a FAIL line of its own when
# the scenario times out (default 300 s), exits non-zero, does not finish, or
# prints no PASS.  Exits non-zero on any FAIL.  A test host whose heartbeat
# (a line every 10 s on its second serial port) stops for
# DOMUS_TESTHOST_STALL_S seconds (default 180) is stopped at once and said
# to have stopped: the nested hang, where one vCPU halts for good (its timer
# lost: "timer wakeup didn't happen") and the other either halts too or
# spins in the kernel ("soft lockup ... [domus-vm]").
#
# DOMUS_TESTHOST_LOCK=FILE  wait for FILE's flock before booting the test
#              host, so that runs sharing a machine take turns.
# DOMUS_TESTHOST_KEYHOLD=1|0  hold kvm.ko's static keys (kvm-keys-hold.c) or
#              not; the default holds them on the 6.12 test host only.
# DOMUS_TESTHOST_TCG=thread=single  both test-host CPUs on one QEMU thread.
# DOMUS_TESTHOST_APPEND="..."  test-host kernel parameters for every run
#              (make check's too), before --append's; unset: kvm_amd.npt=0,
#              KVM shadowing the guests' page tables instead of using the
#              emulated CPU's nested paging, under which guests crashed
#              (docs/migration.md, "What the crash is"); set empty for
#              nested paging.
# DOMUS_TESTHOST_TOOLS="strace perf"  this machine's tools (with their
#              libraries) in the test host's /usr/bin, to look into a run.
#
# --timeout SEC  the scenario's limit: by default its own "# testhost-timeout:
#              SEC" line, else 300.
# --with-qemu  also put qemu-system-x86_64 (with its libraries and firmware)
#              into the test host, for comparisons against QEMU.
# --shell      (test host) no scenario: a shell on the serial console.
# --show       print all of the scenario's output, not only PASS/FAIL lines.
# --append STR (test host) more kernel parameters, e.g. --append loglevel=7
# --guest S    the guest kernel scenarios boot: 6.1 (Debian 12's cloud kernel,
#              the default) or 6.12; also DOMUS_GUEST_SERIES.
# --env NAME=VALUE  set NAME in the scenario's environment (repeatable), e.g.
#              --env MIG_CYCLES=10 for 76-migrate-net.
# --asan       Domus's ASan/UBSan binaries (build/asan-bin, `make asan-bins`)
#              instead of build/bin; also DOMUS_TESTHOST_ASAN=1.
set -euo pipefail

DOMUS_PROG=testhost
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2; }
GUEST_SERIES="${DOMUS_GUEST_SERIES:-6.1}"
SCEN_ENV=()
SCEN="" TIMEOUT="" WITH_QEMU=0 MODE="" SHELL_MODE=0 SHOW=0 EXTRA_APPEND="${DOMUS_TESTHOST_APPEND-kvm_amd.npt=0}" ASAN="${DOMUS_TESTHOST_ASAN:-0}"
while [ $# -gt 0 ]; do
    case "$1" in
    --timeout) TIMEOUT="${2:?}"; shift 2 ;;
    --with-qemu) WITH_QEMU=1; shift ;;
    --testhost) MODE=testhost; shift ;;
    --native) MODE=native; shift ;;
    --shell) SHELL_MODE=1; shift ;;
    --show) SHOW=1; shift ;;
    --asan) ASAN=1; shift ;;
    --guest) GUEST_SERIES="${2?}"; shift 2 ;;
    --append) EXTRA_APPEND="${EXTRA_APPEND:+$EXTRA_APPEND }${2?}"; shift 2 ;;
    --env)
        [[ "${2:-}" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "run.sh: --env wants NAME=VALUE" >&2; exit 2; }
        SCEN_ENV+=("$2"); shift 2 ;;
    -h|--help) usage ;;
    -*) echo "run.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$SCEN" ] || usage; SCEN="$1"; shift ;;
    esac
done
[ -n "$SCEN" ] || [ "$SHELL_MODE" = 1 ] || usage

if [ "$SHELL_MODE" = 1 ] && [ -z "$SCEN" ]; then
    SCEN_PATH="" NAME=shell
else
    SCEN_PATH=""
    for c in "$SCEN" "$ROOT/tests/scenarios/$SCEN" "$ROOT/tests/scenarios/$SCEN.sh" \
        "$ROOT/tests/testhost/$SCEN" "$ROOT/tests/testhost/$SCEN.sh"; do
        if [ -f "$c" ]; then SCEN_PATH="$(readlink -f "$c")"; break; fi
    done
    [ -n "$SCEN_PATH" ] || die "no scenario '$SCEN'"
    NAME="$(basename "$SCEN_PATH" .sh)"
fi
# Without --timeout: the scenario's own line "# testhost-timeout: SEC"
# (a long one, e.g. 76-migrate-net), else 300 s.
if [ -z "$TIMEOUT" ] && [ -n "$SCEN_PATH" ]; then
    TIMEOUT="$(sed -n 's/^# testhost-timeout: \([0-9]*\)$/\1/p' "$SCEN_PATH" | head -n 1)"
fi
TIMEOUT="${TIMEOUT:-300}"
case "$TIMEOUT" in ''|*[!0-9]*) die "--timeout wants seconds" ;; esac
NAME_SUFFIX=""

# Machine set-up (cached; quiet when done).  check.sh runs it once for all.
if [ -z "${DOMUS_SETUP_DONE:-}" ]; then
    "$ROOT/scripts/setup.sh" --no-packages || die "scripts/setup.sh failed (run it without --no-packages?)"
fi
# shellcheck disable=SC1091
. "$DOMUS_CACHE/env.sh"
case "$GUEST_SERIES" in
6.1) GUEST_KERNEL="$DOMUS_KERNEL" ;;
6.12) GUEST_KERNEL="$DOMUS_KERNEL_612" ;;
*) die "--guest takes 6.1 or 6.12, not '$GUEST_SERIES'" ;;
esac
[ "$GUEST_SERIES" = 6.1 ] || [ -z "$SCEN" ] || [ "$SHELL_MODE" = 1 ] || NAME_SUFFIX="@$GUEST_SERIES"

OUTDIR="$ROOT/tests/out"
BUILDTH="$ROOT/build/testhost"
mkdir -p "$OUTDIR" "$BUILDTH/bin"
NAME="$NAME$NAME_SUFFIX"
LOG="$OUTDIR/$NAME.log"

# The KVM_XEN probe: static, so it runs in any initramfs.
PROBE="$BUILDTH/bin/kvm-xen-probe"
if [ ! -x "$PROBE" ] || [ "$HERE/kvm-xen-probe.c" -nt "$PROBE" ]; then
    ${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -static -o "$PROBE" "$HERE/kvm-xen-probe.c" ||
        die "cannot build kvm-xen-probe"
fi
KEYHOLD="$BUILDTH/bin/kvm-keys-hold"
if [ ! -x "$KEYHOLD" ] || [ "$HERE/kvm-keys-hold.c" -nt "$KEYHOLD" ]; then
    ${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -static -o "$KEYHOLD" "$HERE/kvm-keys-hold.c" ||
        die "cannot build kvm-keys-hold"
fi

BINDIR="$ROOT/build/bin"
[ "$ASAN" = 0 ] || BINDIR="$ROOT/build/asan-bin"
[ -d "$BINDIR" ] || echo "testhost: warning: $BINDIR does not exist (make all / make asan-bins)" >&2

if [ -z "$MODE" ]; then
    if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -z "${DOMUS_FORCE_TESTHOST:-}" ]; then MODE=native; else MODE=testhost; fi
fi

# ---- result filter: reads the scenario's output, writes the log, prints
# PASS/FAIL lines; sets NPASS, NFAIL, BOOT_S, END_RC.
T0=0
filter() {
    local line now in=0
    NPASS=0 NFAIL=0 BOOT_S="" END_RC=""
    : >"$LOG"
    while IFS= read -r line || [ -n "$line" ]; do
        line="${line%$'\r'}"
        printf '%s\n' "$line" >>"$LOG"
        case "$line" in
        PASS\ *) NPASS=$((NPASS + 1)); printf '%s\n' "$line" ;;
        FAIL\ *) NFAIL=$((NFAIL + 1)); printf '%s\n' "$line" ;;
        *DOMUS-SCENARIO-START*)
            in=1
            now="$(date +%s.%N)"
            BOOT_S="$(awk -v a="$T0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')" ;;
        DOMUS-SCENARIO-END\ rc=*) in=0; END_RC="${line#DOMUS-SCENARIO-END rc=}" ;;
        *) [ "$SHOW" = 0 ] || [ "$in" = 0 ] || printf '%s\n' "$line" ;;
        esac
    done
}

# ---- native --------------------------------------------------------------------
run_native() {
    local tmp out bgpid
    [ "$SHELL_MODE" = 0 ] || die "--shell is for the test host"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/domus-$NAME.XXXXXX")"
    out="$tmp/.output"
    mkdir -p "$tmp/work"
    T0="$(date +%s.%N)"
    # Output goes through a file, read with tail --pid: daemons a scenario
    # leaves behind may hold its stdout open, which must not hang the runner.
    (
        rc=0
        cd "$tmp/work"
        echo "DOMUS-SCENARIO-START"
        env DOMUS_GUEST_KERNEL="$GUEST_KERNEL" DOMUS_GUEST_INITRD="$DOMUS_GUEST_INITRD" \
            DOMUS_BIN="$BINDIR" DOMUS_TMP="$tmp/work" DOMUS_GUEST_TESTS="$ROOT/tests/guest" \
            PATH="$BINDIR:$BUILDTH/bin:$PATH" ${SCEN_ENV[@]+"${SCEN_ENV[@]}"} \
            timeout -k 10 "$TIMEOUT" sh "$SCEN_PATH" </dev/null 2>&1 || rc=$?
        [ "$rc" != 124 ] || echo "DOMUS-TIMEOUT"
        echo "DOMUS-SCENARIO-END rc=$rc"
    ) >"$out" 2>&1 </dev/null &
    bgpid=$!
    filter < <(tail -n +1 -s 0.2 -f --pid="$bgpid" "$out")
    wait "$bgpid" || true
    rm -rf "$tmp"
}

# ---- test host -------------------------------------------------------------------
# The test host's /init (busybox sh).
write_testhost_init() {
    cat >"$1" <<'EOF'
#!/bin/sh
export PATH=/domus/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo "testhost: cannot mount cgroup2"
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /tmp/domus /var/log
ip link set lo up 2>/dev/null
echo "testhost: kernel $(uname -r); $(cat /domus/kvm-from)"
if grep -qw svm /proc/cpuinfo; then modprobe kvm_amd || echo "FAIL testhost: modprobe kvm_amd"
else modprobe kvm_intel || echo "FAIL testhost: modprobe kvm_intel"; fi
for m in tun bridge veth; do modprobe "$m" || echo "FAIL testhost: modprobe $m"; done
# The MMU's parameters (--append kvm.tdp_mmu=0 and the like reach modprobe).
kp=/sys/module/kvm/parameters
echo "testhost: kvm npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null) tdp_mmu=$(cat $kp/tdp_mmu 2>/dev/null) eager_page_split=$(cat $kp/eager_page_split 2>/dev/null) nx_huge_pages=$(cat $kp/nx_huge_pages 2>/dev/null)"
# kvm.ko's run-time static branches, patched once here and never again
# (tests/testhost/kvm-keys-hold.c); domus.keyhold=0 on the command line
# (DOMUS_TESTHOST_KEYHOLD=0) leaves them to flip as domains come and go.
if grep -qw 'domus.keyhold=0' /proc/cmdline; then echo "testhost: kvm static keys not held"
else
    kvm-keys-hold >/tmp/keyhold.out 2>&1 &
    i=0; while [ ! -s /tmp/keyhold.out ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    cat /tmp/keyhold.out
fi
# The core kernel's keys that domains' cgroups switch (domusd's cpu and
# cpuset controllers), held on either kernel by an empty cgroup: a cpuset
# child (cpusets_enabled_key) and a CFS quota (__cfs_bandwidth_used; a
# domain's cap switched it, and a test-host CPU then hit the stale int3 in
# can_migrate_task: "Oops: int3", 60-sched, 4 Dec 2026).
c=/sys/fs/cgroup
if echo "+cpu +cpuset" >$c/cgroup.subtree_control && mkdir -p $c/keyhold &&
    echo "100000 100000" >$c/keyhold/cpu.max; then
    echo "keyhold: cpuset and cfs bandwidth keys held (cgroup keyhold)"
else echo "testhost: cpuset and cfs bandwidth keys not held"; fi
# The CPUs left offline by maxcpus=1 (run.sh), now that the boot and the
# holds above have switched their keys on one CPU (the cgroup hold's own
# switch, made with both CPUs up, oopsed in put_prev_entity at once).
on=""
for c in /sys/devices/system/cpu/cpu[0-9]*; do
    [ ! -e "$c/online" ] || [ "$(cat "$c/online")" = 1 ] || { echo 1 >"$c/online" && on="$on ${c##*/}"; } ||
        echo "FAIL testhost: cannot bring ${c##*/} online"
done
echo "testhost: CPUs online after the boot:${on:- none} ($(grep -c ^processor /proc/cpuinfo) in all)"
export DOMUS_GUEST_KERNEL=/domus/guest/vmlinuz DOMUS_GUEST_INITRD=/domus/guest/initrd.cpio
export DOMUS_BIN=/domus/bin DOMUS_TMP=/tmp/domus DOMUS_GUEST_TESTS=/domus/tests/guest
export HOME=/root DOMUS_TESTHOST=1
cd /tmp/domus
# A heartbeat on the second serial port: run.sh stops a test host whose
# heartbeat stops (the nested hang: see the header).
[ -c /dev/ttyS1 ] && (while :; do echo beat; sleep 10; done >/dev/ttyS1 2>/dev/null) &
[ -f /domus/scenario.env ] && . /domus/scenario.env # run.sh --env
if [ -f /domus/scenario.path ]; then
    echo "DOMUS-SCENARIO-START uptime=$(cut -d' ' -f1 /proc/uptime)"
    sh "$(cat /domus/scenario.path)" </dev/null 2>&1
    echo "DOMUS-SCENARIO-END rc=$?"
else
    echo "DOMUS-SCENARIO-START uptime=$(cut -d' ' -f1 /proc/uptime)"
    setsid cttyhack sh
fi
poweroff -f
EOF
    chmod 0755 "$1"
}

# Builds build/testhost/base-<hash>.cpio (everything but the scenario).
build_base() {
    local bins=() f hash mods rel r
    for f in "$BINDIR"/*; do [ -f "$f" ] && [ -x "$f" ] && bins+=("$f"); done
    local inputs=("$0" "$ROOT/scripts/lib.sh" "$GUEST_KERNEL" "$DOMUS_GUEST_INITRD"
        "$(cat "$DOMUS_TESTHOST_KDIR/.stamp")" "kvm=$DOMUS_KVM_MODULES" "$PROBE" "$KEYHOLD"
        "qemu=$WITH_QEMU" "asan=$ASAN" "${bins[@]}" "$ROOT"/tests/guest/* /etc/xen/xlexample.*
        "$ROOT"/tests/hostile/* "hostile=$(cat "$ROOT"/build/hostile/*.ko 2>/dev/null | sha256sum)"
        "xs=$(dpkg-query -W -f='${Version}' xenstore-utils 2>/dev/null || echo none)"
        "bb=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo none)")
    local t
    for t in ${DOMUS_TESTHOST_TOOLS:-}; do
        command -v "$t" >/dev/null || die "DOMUS_TESTHOST_TOOLS: no $t on this machine"
        inputs+=("$(command -v "$t")")
    done
    [ "$WITH_QEMU" = 0 ] || inputs+=("$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || echo none)")
    hash="$(inputs_hash "${inputs[@]}")"
    BASE="$BUILDTH/base-$hash.cpio"
    [ -f "$BASE" ] && return 0
    note "building $BASE"
    r="$(mktemp -d "$BUILDTH/.root.XXXXXX")"
    busybox_into "$r"
    xenstore_utils_into "$r"
    mkdir -p "$r"/{proc,sys,dev,tmp,run,root,etc,mnt,var/run} "$r/domus/bin" "$r/domus/guest" "$r/domus/tests"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
    echo 'root:x:0:' >"$r/etc/group"
    write_testhost_init "$r/init"
    # Modules: Debian's, with kvm's replaced by ours where setup built them
    # (a 6.1 test host); the test host says which it loaded.
    local kv="$DOMUS_TESTHOST_KVER" mroot="$r/lib/modules/$DOMUS_TESTHOST_KVER"
    modules_into "$r" "$DOMUS_TESTHOST_KDIR" "$kv" irqbypass tun bridge stp llc veth brd kvm kvm-amd kvm-intel
    if [ -n "$DOMUS_KVM_MODULES" ]; then
        cp "$DOMUS_KVM_MODULES"/kvm.ko "$DOMUS_KVM_MODULES"/kvm-amd.ko "$DOMUS_KVM_MODULES"/kvm-intel.ko "$mroot/kernel/arch/x86/kvm/"
        depmod -b "$r" "$kv"
        echo "kvm modules: built with CONFIG_KVM_XEN from linux-source-6.1 ($(basename "$DOMUS_KVM_MODULES"))" >"$r/domus/kvm-from"
    else
        echo "kvm modules: stock, from $(cat "$DOMUS_TESTHOST_KDIR/.stamp") (CONFIG_KVM_XEN=y)" >"$r/domus/kvm-from"
    fi
    # Domus's binaries with their libraries; the probe.
    for f in "${bins[@]}"; do copy_with_libs "$r" "$f" "/domus/bin/$(basename "$f")"; done
    cp "$PROBE" "$KEYHOLD" "$r/domus/bin/"
    # The guest.
    cp "$GUEST_KERNEL" "$r/domus/guest/vmlinuz"
    cp "$DOMUS_GUEST_INITRD" "$r/domus/guest/initrd.cpio"
    cp -r "$ROOT/tests/guest" "$r/domus/tests/guest"
    # Debian's example xl configs (xen-utils-common), for 15-xl-examples.
    mkdir -p "$r/etc/xen"
    cp /etc/xen/xlexample.* "$r/etc/xen/" 2>/dev/null || true
    # The hostile guests' additions (60-hostile.sh, 61-rogue.sh), when `make
    # hostile` built them.
    mkdir -p "$r/domus/hostile"
    cp "$ROOT"/tests/hostile/*.sh "$r/domus/hostile/"
    for f in "$ROOT"/build/hostile/*.ko; do [ ! -f "$f" ] || cp "$f" "$r/domus/hostile/"; done
    if [ "$WITH_QEMU" = 1 ]; then
        # In /usr/bin: QEMU finds its firmware relative to its own location,
        # where we put what Debian's build finds along its firmware path.
        copy_with_libs "$r" "$(command -v qemu-system-x86_64)" /usr/bin/qemu-system-x86_64
        mkdir -p "$r/usr/share/qemu"
        for f in bios-microvm.bin qboot.rom linuxboot.bin linuxboot_dma.bin kvmvapic.bin bios-256k.bin \
            pvh.bin multiboot.bin multiboot_dma.bin efi-virtio.rom vgabios-stdvga.bin; do
            for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
                [ -e "$d/$f" ] && { cp -L "$d/$f" "$r/usr/share/qemu/"; break; }
            done
        done
    fi
    for t in ${DOMUS_TESTHOST_TOOLS:-}; do copy_with_libs "$r" "$(command -v "$t")" "/usr/bin/$t"; done
    cpio_from "$r" "$BASE"
    rm -rf "$r"
    # Older bases are of no use (but a concurrent run may still be reading one).
    find "$BUILDTH" -maxdepth 1 -name 'base-*.cpio' ! -path "$BASE" -mmin +30 -delete 2>/dev/null || true
}

run_testhost() {
    local r rc=0 append
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (scripts/setup.sh)"
    build_base
    # DOMUS_TESTHOST_LOCK=FILE: one test host at a time among the runs that
    # name the same FILE (flock; held until this script exits).
    if [ -n "${DOMUS_TESTHOST_LOCK:-}" ]; then
        exec 8>>"$DOMUS_TESTHOST_LOCK" && flock 8 || die "cannot lock $DOMUS_TESTHOST_LOCK"
    fi
    # The scenario goes into a second, tiny cpio appended to the base.
    r="$(mktemp -d "$BUILDTH/.scen.XXXXXX")"
    mkdir -p "$r/domus/scenario"
    if [ -n "$SCEN_PATH" ]; then
        # The scenario and its siblings (helpers it sources via dirname "$0").
        for f in "$(dirname "$SCEN_PATH")"/*.sh; do install -m 0755 "$f" "$r/domus/scenario/"; done
        install -m 0755 "$SCEN_PATH" "$r/domus/scenario/"
        echo "/domus/scenario/$(basename "$SCEN_PATH")" >"$r/domus/scenario.path"
    fi
    local kv
    for kv in ${SCEN_ENV[@]+"${SCEN_ENV[@]}"}; do # export NAME='VALUE', quotes escaped
        printf "export %s='%s'\n" "${kv%%=*}" "$(printf '%s' "${kv#*=}" | sed "s/'/'\\\\''/g")"
    done >"$r/domus/scenario.env"
    initrd="$(mktemp "$BUILDTH/.initrd-$NAME.XXXXXX")"
    scen_cpio="$initrd.scen"
    trap 'rm -f "$initrd" "$scen_cpio"' EXIT
    cpio_from "$r" "$scen_cpio"
    rm -rf "$r"
    cat "$BASE" "$scen_cpio" >"$initrd"
    # maxcpus=1: the kernel boots on one CPU and /init brings the other
    # online, so that the boot's own static-key switches (sched_clock's
    # "Marking stable" at late_initcall) rewrite code no other test-host
    # CPU runs: under QEMU's multi-threaded TCG the other CPU has executed
    # that switch's stale int3 (an "Oops: int3" in sched_clock_cpu while
    # booting, the key __sched_clock_stable; 4 Dec 2026). tsc=reliable: no
    # clocksource watchdog on the TSC, which switched that key off again
    # under load ("Marking TSC unstable", the same int3 from
    # clocksource_watchdog_work, 70-save-restore); TCG's TSC is the host's
    # clock, one for both CPUs.
    append="console=ttyS0 quiet panic=-1 oops=panic maxcpus=1 tsc=reliable${EXTRA_APPEND:+ $EXTRA_APPEND}"
    # 6.12: the keys held (its int3 oopses); 6.1: not (it hung three times
    # in one make check with them held, once before any domain existed).
    local keyhold=0
    [ "${DOMUS_TESTHOST_SERIES:-}" != 6.12 ] || keyhold=1
    [ "${DOMUS_TESTHOST_KEYHOLD:-$keyhold}" != 0 ] || append="$append domus.keyhold=0"
    # DOMUS_TESTHOST_TCG=thread=single: one host thread for both test-host
    # CPUs (no cross-thread code modification; slower).
    local qemu=("${DOMUS_TESTHOST_QEMU_BIN:-qemu-system-x86_64}" -accel "tcg${DOMUS_TESTHOST_TCG:+,$DOMUS_TESTHOST_TCG}" -cpu EPYC,+svm,+npt -smp 2 -m 3G
        -nographic -nic none -no-reboot -kernel "$DOMUS_TESTHOST_KDIR/vmlinuz" -initrd "$initrd" -append "$append")
    local dir # the backports QEMU's firmware (scripts/setup.sh)
    for dir in $(echo "${DOMUS_TESTHOST_QEMU_DATA:-}" | tr ':' ' '); do qemu+=(-L "$dir"); done
    if [ "$SHELL_MODE" = 1 ]; then
        exec "${qemu[@]}"
    fi
    HEARTBEAT="$initrd.beat"
    # QEMU logs the test host's CPU resets (a triple fault ends it silently
    # under -no-reboot): kept as tests/out/NAME.qemu.log.
    QEMU_LOG="$OUTDIR/$NAME.qemu.log"
    rm -f "$QEMU_LOG"
    qemu+=(-serial mon:stdio -serial "file:$HEARTBEAT" -d cpu_reset,guest_errors -D "$QEMU_LOG")
    trap 'rm -f "$initrd" "$scen_cpio" "$HEARTBEAT" "$HEARTBEAT.stopped"' EXIT
    echo "testhost: emulator $("${qemu[0]}" --version | head -n 1) (-accel ${qemu[2]})"
    T0="$(date +%s.%N)"
    watch_heartbeat "$initrd" &
    local watcher=$!
    filter < <(
        timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null 2>&1 || rc=$?
        [ "$rc" != 124 ] || echo "DOMUS-TIMEOUT"
        echo "DOMUS-QEMU-EXIT rc=$rc"
    )
    kill "$watcher" 2>/dev/null || true
}

# watch_heartbeat INITRD: stops the test host booted from INITRD when its
# heartbeat file has not grown for STALL_S seconds (it beats every 10 s from
# early in its /init; boot takes seconds), leaving $HEARTBEAT.stopped.
STALL_S="${DOMUS_TESTHOST_STALL_S:-180}"
watch_heartbeat() {
    local size=-1 now quiet=0
    while sleep 10; do
        now="$(stat -c %s "$HEARTBEAT" 2>/dev/null || echo 0)"
        if [ "$now" != "$size" ]; then size=$now quiet=0; else quiet=$((quiet + 10)); fi
        if [ "$quiet" -ge "$STALL_S" ]; then
            echo "$quiet" >"$HEARTBEAT.stopped"
            pkill -f -- "-initrd $1" || true
            return
        fi
    done
}

# qemu_end: how the test host ended, for a scenario that did not finish.
qemu_end() {
    local rc
    [ "$MODE" = testhost ] || { echo "native"; return; }
    rc="$(sed -n 's/^DOMUS-QEMU-EXIT rc=//p' "$LOG" | tail -n 1)"
    if grep -qi 'triple fault' "$QEMU_LOG" 2>/dev/null; then
        echo "the test host's CPU triple-faulted (QEMU exit $rc; $QEMU_LOG)"
    elif grep -q 'Kernel panic' "$LOG"; then
        echo "the test host's kernel panicked: $(grep -m1 -o 'Kernel panic.*' "$LOG" | cut -c1-100)$(
            grep -q 'Oops: int3' "$LOG" && echo "; a stale int3: tests/testhost/name-int3.sh $LOG names its key")"
    else
        echo "QEMU exited with status ${rc:-?} and no message"
    fi
}

START="$(date +%s.%N)"
if [ "$MODE" = native ]; then run_native; else run_testhost; fi
TOTAL="$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"

if [ -n "${HEARTBEAT:-}" ] && [ -e "$HEARTBEAT.stopped" ]; then
    why="$(grep -o 'soft lockup - CPU#[0-9]* stuck for [0-9]*s! \[[^]]*\]' "$LOG" | tail -n 1 || true)"
    echo "FAIL $NAME: the test host stopped: no heartbeat for $STALL_S s (the nested-virtualization hang: ${why:-no lockup reported, its vCPUs idle}; stopped it; log: $LOG)"
    NFAIL=$((NFAIL + 1))
elif grep -q '^DOMUS-TIMEOUT' "$LOG"; then
    echo "FAIL $NAME: timed out after $TIMEOUT s (log: $LOG)"; NFAIL=$((NFAIL + 1))
elif [ -z "$END_RC" ]; then
    echo "FAIL $NAME: the scenario did not finish ($(qemu_end); log: $LOG)"; NFAIL=$((NFAIL + 1))
elif [ "$END_RC" != 0 ]; then
    echo "FAIL $NAME: scenario exited with status $END_RC (log: $LOG)"; NFAIL=$((NFAIL + 1))
fi
if [ "$NPASS" = 0 ] && [ "$NFAIL" = 0 ]; then
    echo "FAIL $NAME: no PASS line (log: $LOG)"; NFAIL=1
fi
[ "$MODE" = native ] || grep -m1 -o 'testhost: kernel.*' "$LOG" >&2 || true
echo "testhost: $NAME: passes $NPASS, failures $NFAIL ($MODE; scenario started after ${BOOT_S:-?} s; total $TOTAL s)" >&2
[ "$NFAIL" = 0 ]
