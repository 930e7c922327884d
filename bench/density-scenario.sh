#!/bin/sh
# Runs inside the test host (tests/testhost/run.sh --with-qemu; bench/density
# prepends the BENCH_* settings): how many idle guests of 256 MiB, ballooned
# to 96 MiB, fit in the same memory budget on Domus and on QEMU.
#
# Each side fills a cgroup v2 group of its own whose memory.max is the
# budget (BENCH_BUDGET MiB, no swap): everything the side runs is charged
# there, guest RAM (Domus: the domains' memfds; QEMU: its anonymous RAM),
# the VMMs' own memory, the kernel memory KVM accounts to them (page tables,
# vCPU state) and, for Domus, domusd and domus-xenstored.
#   Domus: domusd in <group>/daemons, DOMUS_CGROUP_ROOT=<group> (each domain
#          in <group>/domus/dom<N>, as domusd places them); guests
#          `domus create` (memory=256, tests/guest/density.sh), then
#          `domus mem-set NAME 96m` (the guest's xen-balloon gives the pages
#          back, Domus punches them out of the memfd);
#   QEMU:  -M pc -accel kvm -cpu host -m 256, -device virtio-balloon-pci,
#          each in the group; `balloon 96` on its HMP monitor (a pipe
#          chardev): the guest's virtio_balloon inflates and QEMU discards
#          the pages.  (A first version ran microvm's virtio-balloon-device:
#          its guests never ballooned, because tests/guest/density.sh took
#          /sys/bus/xen for a sign of Xen and never loaded virtio_balloon;
#          Debian's kernel registers that bus under KVM as well.  pc's
#          virtio-pci is the path bench/io and bench/save already use.)
# The same kernel and initramfs on both sides (BENCH_TOUCH MiB written and
# freed by each guest first, when not 0).  A side starts guests one at a time:
# each must print DENSITY-BOOTED, and after the balloon its MemTotal must
# fall by 90% of the 160 MiB, before the next; it stops when the group's
# headroom (memory.max - memory.current) is below BENCH_FLOOR MiB, the test
# host's MemAvailable below 256 MiB, or a guest fails to start or to balloon
# (OOM-killed, refused, timed out); the guests held are out of the OOM
# killer's reach (oom_score_adj -1000), so that a start at the edge fails
# rather than costing one already counted.  The count is the guests then all still
# alive and answering: each prints a new ALIVE line within 3 heartbeats.
# BENCH_RUNS runs, each of both sides, interleaved D Q, Q D, ...; prints each
# run's counts and MiB per guest (memory.current / count), the median count
# and the ratio Domus/QEMU with its spread (per-run ratios min..max) beside
# the target (>= 1.5x), as information, not PASS/FAIL.  PASS when every run
# measured both sides with at least one guest each.
: "${DOMUS_TMP:?}" "${DOMUS_GUEST_KERNEL:?}" "${DOMUS_GUEST_INITRD:?}"
RUNS=${BENCH_RUNS:-3} BUDGET=${BENCH_BUDGET:-768} FLOOR=${BENCH_FLOOR:-32} TOUCH=${BENCH_TOUCH:-0}
MAXG=${BENCH_MAXG:-64}
MEM=256 TARGET=96 BEAT=5 HOSTFLOOR=256
DOMUS_RUN_DIR="$DOMUS_TMP/run" DOMUS_LOG_DIR="$DOMUS_TMP/log"
export DOMUS_RUN_DIR DOMUS_LOG_DIR
CG=/sys/fs/cgroup
RES="$DOMUS_TMP/results"
: >"$RES"
qpids=""
trap 'kill $qpids 2>/dev/null' EXIT

say() { echo "density: $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
host_avail_mib() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
cg_mib() { awk '{ print int($1 / 1048576) }' "$1/memory.current"; }
oom_kills() { awk '$1 == "oom_kill" { print $2 }' "$1/memory.events"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
    else if (NR) printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# last_alive LOG: the number of the guest's last ALIVE line (0: none).
last_alive() { tr -d '\r' <"$1" 2>/dev/null | awk '$1 == "ALIVE" { n = $2 } END { print n + 0 }'; }
# memtotal LOG: its last MemTotal (KiB) from DENSITY-BOOTED or ALIVE lines.
memtotal() {
    tr -d '\r' <"$1" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "DENSITY-BOOTED") t = $(i + 1) }
        $1 == "ALIVE" { t = $3 } END { print t + 0 }'
}
# boot_memtotal LOG: MemTotal (KiB) at boot: DENSITY-BOOTED's, else the first
# heartbeat's (a serial console may run the kernel's messages into that line).
boot_memtotal() {
    tr -d '\r' <"$1" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "DENSITY-BOOTED") { print $(i + 1) + 0; exit } }
        $1 == "ALIVE" { print $3 + 0; exit }'
}

# cg_make DIR: a fresh group with the budget and no swap.
cg_make() {
    cg_remove "$1"
    mkdir "$1" || return 1
    echo $((BUDGET * 1048576)) >"$1/memory.max" || return 1
    echo 0 >"$1/memory.swap.max" 2>/dev/null
    return 0
}
# cg_remove DIR: the group and its children, deepest first (once empty).
cg_remove() {
    [ -d "$1" ] || return 0
    find "$1" -depth -type d 2>/dev/null | while read -r d; do rmdir "$d" 2>/dev/null; done
}

# wait_guest LOG ALIVE-CHECK SECONDS: until DENSITY-BOOTED and then a MemTotal
# 90% of the way down; ALIVE-CHECK is a command saying the guest's process
# still runs.  Returns 1 (not booted), 2 (not ballooned) or 3 (process gone).
wait_boot() {
    _w=0
    while [ $_w -lt "$3" ]; do
        $2 || return 3
        tr -d '\r' <"$1" 2>/dev/null | grep -q 'DENSITY-BOOTED\|^ALIVE ' && return 0
        sleep 1; _w=$((_w + 1))
    done
    return 1
}
wait_balloon() {
    _b0="$(boot_memtotal "$1")" _want=$(((MEM - TARGET) * 1024 * 9 / 10)) _w=0
    while [ $_w -lt "$3" ]; do
        $2 || return 3
        [ $((_b0 - $(memtotal "$1"))) -ge "$_want" ] && return 0
        sleep 1; _w=$((_w + 1))
    done
    return 2
}

# ---- Domus ----------------------------------------------------------------------
d_alive() { domus list 2>/dev/null | awk -v n="$D_NAME" '$1 == n { f = 1 } END { exit !f }'; }
d_start() { # d_start I: create dI in the group; 0 when started
    D_NAME="d$1"
    cat >"$DOMUS_TMP/$D_NAME.cfg" <<CFG
name = "$D_NAME"
type = "pvh"
kernel = "$DOMUS_GUEST_KERNEL"
ramdisk = "$DOMUS_GUEST_INITRD"
memory = $MEM
vcpus = 1
cmdline = "console=hvc0 quiet domus.test=density domus.density_touch=$TOUCH domus.density_beat=$BEAT"
on_poweroff = "destroy"
CFG
    domus create "$DOMUS_TMP/$D_NAME.cfg" >"$DOMUS_TMP/create.out" 2>&1 ||
        { say "domus: create $D_NAME failed: $(grep -v '^Parsing' "$DOMUS_TMP/create.out" | head -n 2 | tr '\n' ' ')"; return 1; }
}
d_log() { echo "$DOMUS_LOG_DIR/d$1.log"; }
d_balloon() { domus mem-set "d$1" ${TARGET}m; }
d_stop_one() { domus destroy "d$1" >/dev/null 2>&1; }
d_pids() { cat "$D_CG/domus/dom$(domus domid "d$1" 2>/dev/null)/cgroup.procs" 2>/dev/null; }
d_begin() {
    D_CG="$CG/density-domus"
    cg_make "$D_CG" && mkdir "$D_CG/daemons" || return 1
    rm -rf "$DOMUS_RUN_DIR" "$DOMUS_LOG_DIR"
    # domusd (started by the CLI) and its xenstored in the group's leaf;
    # the domains in <group>/domus/dom<N>.
    DOMUS_CGROUP_ROOT="$D_CG" sh -c "echo \$\$ >'$D_CG/daemons/cgroup.procs' && exec domus info" >/dev/null ||
        { say "domus: domusd did not start in $D_CG"; return 1; }
    grep -q . "$D_CG/daemons/cgroup.procs" || { say "domus: domusd is not in $D_CG/daemons"; return 1; }
    say "domus: domusd $(cat "$DOMUS_RUN_DIR/domusd.pid") in $D_CG; $(grep -h 'cgroups:' "$DOMUS_LOG_DIR"/domusd*.log 2>/dev/null | tail -n 1)"
    SIDE_CG="$D_CG"
}
d_end() {
    _p="$(cat "$DOMUS_RUN_DIR/domusd.pid" 2>/dev/null)"
    domus list 2>/dev/null | awk 'NR > 1 && $1 != "Domain-0" { print $1 }' | while read -r n; do
        domus destroy "$n" >/dev/null 2>&1
    done
    [ -n "$_p" ] && kill "$_p" 2>/dev/null
    _i=0
    while [ -n "$_p" ] && [ -d "/proc/$_p" ] && [ $_i -lt 30 ]; do sleep 1; _i=$((_i + 1)); done
    sleep 1
    cg_remove "$D_CG"
}

# ---- QEMU -----------------------------------------------------------------------
q_alive() { kill -0 "$Q_PID" 2>/dev/null; }
q_start() { # q_start I
    _m="$DOMUS_TMP/q$1.mon"
    rm -f "$_m.in" "$_m.out"
    mkfifo "$_m.in" "$_m.out"
    cat "$_m.out" >"$DOMUS_TMP/q$1.monlog" 2>/dev/null &
    qpids="$qpids $!"
    : >"$DOMUS_TMP/q$1.log"
    sh -c "echo \$\$ >'$Q_CG/cgroup.procs' && exec qemu-system-x86_64 -M pc -accel kvm -cpu host \
        -m $MEM -smp 1 -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
        -device virtio-balloon-pci -chardev pipe,id=mon0,path=$_m -mon chardev=mon0,mode=readline \
        -kernel '$DOMUS_GUEST_KERNEL' -initrd '$DOMUS_GUEST_INITRD' \
        -append 'console=ttyS0 quiet domus.test=density domus.density_touch=$TOUCH domus.density_beat=$BEAT'" \
        </dev/null >"$DOMUS_TMP/q$1.log" 2>&1 &
    Q_PID=$!
    eval "Q_PID_$1=$Q_PID"
    qpids="$qpids $Q_PID"
    sleep 1
    q_alive || { say "qemu: q$1 exited at once: $(tail -n 3 "$DOMUS_TMP/q$1.log" | tr '\n' ' ')"; return 1; }
}
q_log() { echo "$DOMUS_TMP/q$1.log"; }
q_balloon() { echo "balloon $TARGET" >"$DOMUS_TMP/q$1.mon.in"; }
q_stop_one() { eval "kill \$Q_PID_$1" 2>/dev/null; }
q_pids() { eval "echo \$Q_PID_$1"; }
q_begin() {
    Q_CG="$CG/density-qemu"
    cg_make "$Q_CG" || return 1
    SIDE_CG="$Q_CG"
}
q_end() {
    _j=1
    while [ $_j -le "$MAXG" ]; do
        eval "_p=\${Q_PID_$_j:-}"
        [ -n "$_p" ] && kill "$_p" 2>/dev/null
        eval "Q_PID_$_j="
        _j=$((_j + 1))
    done
    kill $qpids 2>/dev/null
    qpids=""
    sleep 2
    cg_remove "$Q_CG"
}

# protect PID...: a guest held out of the OOM killer's reach: at the
# budget's edge it takes the guest being started, not one counted (not the
# daemons: domusd's children would inherit it; they are small, never chosen).
protect() { for _q in "$@"; do echo -1000 >"/proc/$_q/oom_score_adj" 2>/dev/null; done; }

# fill SIDE RUN: starts guests until one of the stops; records
# "SIDE RUN count MiB-per-guest group-MiB" and says why it stopped.
fill() {
    _s="$1" _r="$2"
    case "$_s" in domus) P_=d ;; *) P_=q ;; esac
    ${P_}_begin || { say "$_s: cannot set up its group"; return 1; }
    _oom0="$(oom_kills "$SIDE_CG")" _t0="$(now)" _n=0 why=""
    while :; do
        _head=$((BUDGET - $(cg_mib "$SIDE_CG")))
        [ "$_head" -lt "$FLOOR" ] && { why="headroom ${_head} MiB < floor $FLOOR MiB"; break; }
        [ "$(host_avail_mib)" -lt $HOSTFLOOR ] && { why="test host MemAvailable < $HOSTFLOOR MiB"; break; }
        [ $_n -ge "$MAXG" ] && { why="$MAXG guests (the cap)"; break; }
        _i=$((_n + 1))
        ${P_}_start $_i || { why="guest $_i did not start"; break; }
        _log="$(${P_}_log $_i)"
        if ! wait_boot "$_log" ${P_}_alive 180; then
            why="guest $_i: no DENSITY-BOOTED ($(tr -d '\r' <"$_log" | grep -v '^ALIVE' | tail -n 3 | tr '\n' '|'))"
            ${P_}_stop_one $_i; break
        fi
        ${P_}_balloon $_i
        wait_balloon "$_log" ${P_}_alive 120
        case $? in
        0) ;;
        2) why="guest $_i: MemTotal $(($(memtotal "$_log") / 1024)) MiB, not ballooned to $TARGET"
            say "$_s: guest $_i's console: $(tr -d '\r' <"$_log" | grep -v '^ALIVE' | tail -n 4 | tr '\n' '|')"
            [ "$_s" = qemu ] && say "qemu: its monitor: $(tr -d '\r' <"$DOMUS_TMP/q$_i.monlog" 2>/dev/null | tail -n 3 | tr '\n' '|')"
            ${P_}_stop_one $_i; break ;;
        *) why="guest $_i: gone while ballooning"; ${P_}_stop_one $_i; break ;;
        esac
        _n=$_i
        protect $(${P_}_pids $_i)
        say "$_s run $_r: guest $_i up and ballooned (MemTotal $(($(memtotal "$_log") / 1024)) MiB); group $(cg_mib "$SIDE_CG") MiB of $BUDGET"
    done
    _t1="$(now)"
    # All of them still alive and answering: a new ALIVE line within 3 beats.
    _j=1
    while [ $_j -le $_n ]; do eval "_a0_$_j=$(last_alive "$(${P_}_log $_j)")"; _j=$((_j + 1)); done
    sleep $((3 * BEAT))
    _alive=0 _j=1 _dead=""
    while [ $_j -le $_n ]; do
        eval "_a0=\$_a0_$_j"
        if [ "$(last_alive "$(${P_}_log $_j)")" -gt "$_a0" ]; then _alive=$((_alive + 1)); else _dead="$_dead $_j"; fi
        _j=$((_j + 1))
    done
    _mib="$(cg_mib "$SIDE_CG")" _oom=$(($(oom_kills "$SIDE_CG") - _oom0))
    _peak="$(awk '{ print int($1 / 1048576) }' "$SIDE_CG/memory.peak" 2>/dev/null)"
    say "$_s run $_r: stopped: $why; started $_n, alive and answering $_alive${_dead:+ (silent:$_dead)};" \
        "group $_mib MiB (peak ${_peak:-?}), oom kills $_oom, $(awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.0f", b - a }') s"
    if [ "$_s" = domus ]; then
        domus list 2>/dev/null | sed 's/^/density: domus list: /' | head -n 4
    fi
    echo "$_s $_r $_alive $(awk -v m="$_mib" -v n="$_alive" 'BEGIN { printf "%.1f", n ? m / n : 0 }') $_mib" >>"$RES"
    ${P_}_end
}

[ -f "$CG/cgroup.controllers" ] || { echo "FAIL density: no cgroup v2 at $CG"; exit 1; }
grep -qw memory "$CG/cgroup.controllers" || { echo "FAIL density: no memory controller"; exit 1; }
echo "+memory +cpu" >"$CG/cgroup.subtree_control" || { echo "FAIL density: cannot enable memory, cpu"; exit 1; }
say "budget $BUDGET MiB per side (memory.max, no swap), floor $FLOOR MiB; guests $MEM MiB ballooned to $TARGET;" \
    "touch $TOUCH MiB; test host MemAvailable $(host_avail_mib) MiB; $RUNS runs"
r=1
while [ $r -le "$RUNS" ]; do
    if [ $((r % 2)) = 1 ]; then fill domus $r; fill qemu $r; else fill qemu $r; fill domus $r; fi
    r=$((r + 1))
done

# ---- the table ------------------------------------------------------------------
echo
echo "bench density: idle guests of $MEM MiB ballooned to $TARGET MiB in a $BUDGET MiB budget (cgroup memory.max), $RUNS runs, D Q, Q D, ..."
printf '  %-4s %12s %12s %12s %12s %8s\n' run domus qemu "domus MiB/g" "qemu MiB/g" ratio
r=1 missing=""
while [ $r -le "$RUNS" ]; do
    d="$(awk -v r=$r '$1 == "domus" && $2 == r { print $3, $4 }' "$RES")"
    q="$(awk -v r=$r '$1 == "qemu" && $2 == r { print $3, $4 }' "$RES")"
    [ -n "${d%% *}" ] && [ "${d%% *}" -gt 0 ] || missing="$missing domus:$r"
    [ -n "${q%% *}" ] && [ "${q%% *}" -gt 0 ] || missing="$missing qemu:$r"
    echo "$r ${d:-0 0} ${q:-0 0}" | awk '{ printf "  %-4s %12s %12s %12s %12s %8s\n", $1, $2, $4, $3, $5,
        ($4 > 0 ? sprintf("%.2fx", $2 / $4) : "-") }'
    r=$((r + 1))
done
dm="$(awk '$1 == "domus" { print $3 }' "$RES" | median)" qm="$(awk '$1 == "qemu" { print $3 }' "$RES" | median)"
dg="$(awk '$1 == "domus" { print $4 }' "$RES" | median)" qg="$(awk '$1 == "qemu" { print $4 }' "$RES" | median)"
spread="$(awk '{ c[$1 " " $2] = $3 } END { for (k in c) { split(k, a, " "); if (a[1] == "domus" && c["qemu " a[2]] > 0) {
    x = c[k] / c["qemu " a[2]]; if (!n++ || x < lo) lo = x; if (n == 1 || x > hi) hi = x } }
    if (n) printf "%.2f..%.2f", lo, hi; else printf "-" }' "$RES")"
awk -v d="${dm:-0}" -v q="${qm:-0}" -v s="$spread" -v dg="${dg:-0}" -v qg="${qg:-0}" 'BEGIN {
    printf "guests held (median): domus %s, qemu %s; ratio domus/qemu %s (per run %s)\n", d, q, (q > 0 ? sprintf("%.2fx", d / q) : "-"), s
    printf "MiB per guest (median, group memory / guests): domus %s, qemu %s; qemu/domus %s\n", dg, qg, (dg > 0 ? sprintf("%.2fx", qg / dg) : "-")
    printf "target (information, not a test): domus/qemu >= 1.5x: %s\n", (q > 0 ? (d / q >= 1.5 ? "met" : "not met") : "not measured") }'
if [ -n "$missing" ]; then
    for x in $missing; do echo "FAIL density: run ${x#*:}: no guest held on ${x%%:*}"; done
    exit 1
fi
echo "PASS density: $RUNS runs, both sides measured"
exit 0
