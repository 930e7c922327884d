# bench/lib-trace.sh: the first guest instruction, timed by the test host's
# kvm:kvm_entry tracepoint (clock boot, as /proc/uptime).  bench/boot and
# bench/save put it in front of their scenario (build/bench/*-scenario.sh).
TR=/sys/kernel/tracing
now() { cut -d' ' -f1 /proc/uptime; }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# The event stays enabled from setup_trace on: enabling or disabling any
# event switches the sched_switch tracepoint (ftrace's comm recording) and
# so rewrites __schedule on the live test host (text_poke_bp's int3), and
# under QEMU's multi-threaded TCG a test-host CPU has executed that int3
# after the patch was done ("Oops: int3" in __schedule, the key
# __tracepoint_sched_switch; 4 Dec 2026). A trigger on an event the user
# enabled patches nothing.
setup_trace() {
    [ -d "$TR/events" ] || mount -t tracefs nodev "$TR" 2>/dev/null
    [ -d "$TR/events/kvm/kvm_entry" ] || { echo "FAIL bench: no kvm:kvm_entry tracepoint in $TR"; exit 1; }
    echo boot >"$TR/trace_clock"
    echo 0 >"$TR/tracing_on"
    echo 1 >"$TR/events/kvm/kvm_entry/enable"
}
# arm_trace: the trace stops itself at the next guest entry, by any VM (one
# is started at a time).
arm_trace() {
    echo 0 >"$TR/tracing_on"
    echo '!traceoff:1' >"$TR/events/kvm/kvm_entry/trigger" 2>/dev/null
    : >"$TR/trace"
    echo 'traceoff:1' >"$TR/events/kvm/kvm_entry/trigger"
    echo 1 >"$TR/tracing_on"
}
# first_entry: that entry's time.
first_entry() {
    awk '{for (i = 2; i <= NF; i++) if ($i == "kvm_entry:") {t = $(i - 1); sub(":", "", t); print t; exit}}' "$TR/trace"
}
