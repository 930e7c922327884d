# Two Domus hosts, A and B, in one test host (sourced by the migration
# scenarios 75-77 after lib-toolstack.sh): each its own domusd, run and log
# directories; onA/onB run a command as a client of one of them.  Where
# lib-hosts.sh made namespaces A and B (NS_A, NS_B), receivers start in
# them.  Also the probes of the guest's workload (tests/guest/saverest.sh)
# and a 16 MiB disk image, $IMG.
A_RUN="$DOMUS_TMP/a/run" A_LOG="$DOMUS_TMP/a/log"
B_RUN="$DOMUS_TMP/b/run" B_LOG="$DOMUS_TMP/b/log"
DOMUS_CGROUP=0 # the two domusds would both make domus/dom1
export DOMUS_CGROUP
onA() { DOMUS_RUN_DIR="$A_RUN" DOMUS_LOG_DIR="$A_LOG" "$@"; }
onB() { DOMUS_RUN_DIR="$B_RUN" DOMUS_LOG_DIR="$B_LOG" "$@"; }
mkdir -p "$A_RUN" "$A_LOG" "$B_RUN" "$B_LOG"
IMG="$DOMUS_TMP/disk.img"
dd if=/dev/zero of="$IMG" bs=1048576 count=16 2>/dev/null
recv_pid='' mig_pid=''

# mig_stop: the receiver and migration in flight killed, both domusds stopped.
mig_stop() {
    kill $recv_pid $mig_pid 2>/dev/null
    onA stop_domusd
    onB stop_domusd
}

rounds() { count_in_log "$1" '^ROUND '; }
# more_rounds NAME N SECONDS (on the host of the environment)
more_rounds() { wait_log "$1" '^ROUND ' "$3" "$(($(rounds "$1") + $2))"; }
last_round() { tr -d '\r' <"$(console_log "$1")" | grep '^ROUND ' | tail -n 1; }
vms() { [ "$(vm_count)" = "$1" ]; }
# nothing_here: no domain, no domus-vm, no file left (on the environment's host)
nothing_here() {
    [ -z "$(domus list 2>/dev/null | awk 'NR > 1 && $1 != "Domain-0"')" ] &&
        [ "$(vm_count)" = 0 ] && [ -z "$(run_leftovers)" ]
}
# With MIG_TRACE=1 (a debugging run), KVM's trace events in the test host's
# trace buffer: kvm_trace_on starts them, and a vCPU's shutdown exit (SVM's
# 0x7f: a triple fault) stops the trace there; mig_diag then prints the
# events before it (the exit's rip is the guest's, before KVM resets the
# vCPU) and starts the trace again.
KT=/sys/kernel/tracing
kvm_trace_on() {
    [ "${MIG_TRACE:-}" = 1 ] || return 0
    [ -d $KT/events/kvm ] || mount -t tracefs nodev $KT 2>/dev/null
    echo 2048 >$KT/buffer_size_kb
    for _e in kvm_exit kvm_inj_exception kvm_emulate_insn kvm_page_fault kvm_xen_hypercall; do
        echo 1 >$KT/events/kvm/$_e/enable
    done
    echo 'traceoff if exit_reason == 127' >$KT/events/kvm/kvm_exit/trigger
    echo 1 >$KT/tracing_on
}
kvm_trace_diag() {
    [ "${MIG_TRACE:-}" = 1 ] && [ "$(cat $KT/tracing_on 2>/dev/null)" = 0 ] || return 0
    grep -i -B 60 'reason shutdown' $KT/trace | tail -n 150 | sed 's/^/DIAG trace: /'
    grep 'kvm_inj_exception' $KT/trace | tail -n 10 | sed 's/^/DIAG trace exc: /'
    echo >$KT/trace
    echo 1 >$KT/tracing_on
}
# mig_diag NAME LINES: the tails of NAME's logs, its console's last LINES.
mig_diag() {
    kvm_trace_diag
    tail -n 12 "$DOMUS_LOG_DIR/domus-vm-$1.log" 2>/dev/null | sed 's/^/DIAG vm: /'
    tail -n 8 "$DOMUS_LOG_DIR/domusd.log" 2>/dev/null | sed 's/^/DIAG domusd: /'
    tr -d '\r' <"$(console_log "$1")" 2>/dev/null | tail -n "$2" | sed 's/^/DIAG console: /'
}
diag() { mig_diag "$1" 15; }
# mig_checked SIDE NAME: with DOMUS_MIG_CHECK set (src/vm/vm_migcheck.c),
# the last migration check of NAME's domus-vm on SIDE (the destination):
# the pages that differ from the source's, and their count.
mig_checked() {
    [ -n "${DOMUS_MIG_CHECK:-}" ] || return 0
    _log="$A_LOG"
    [ "$1" = A ] || _log="$B_LOG"
    grep 'migration check:' "$_log/domus-vm-$2.log" 2>/dev/null |
        awk '/check: page / { cur = cur $0 "\n"; next }
             / pages differ / { last = cur $0 "\n"; cur = "" }
             END { printf "%s", last }' | sed 's/^/MIGCHECK /'
}

# listen_on A|B PORT: a receiver on that side (in its namespace where there
# is one), its pid in recv_pid.
listen_on() {
    _run="$A_RUN" _log="$A_LOG" _ns="${NS_A:-}"
    [ "$1" = A ] || _run="$B_RUN" _log="$B_LOG" _ns="${NS_B:-}"
    rm -f "$DOMUS_TMP/recv.err"
    # env and nsenter exec: $! is the receiver itself (a function would fork)
    if [ -n "$_ns" ]; then
        env DOMUS_RUN_DIR="$_run" DOMUS_LOG_DIR="$_log" nsenter -t "$_ns" -n \
            domus migrate-receive --listen "$2" >/dev/null 2>"$DOMUS_TMP/recv.err" &
    else
        env DOMUS_RUN_DIR="$_run" DOMUS_LOG_DIR="$_log" \
            domus migrate-receive --listen "$2" >/dev/null 2>"$DOMUS_TMP/recv.err" &
    fi
    recv_pid=$!
    wait_listening "$DOMUS_TMP/recv.err"
}

# clean SIDE: in g's console log on SIDE no FAIL line (its clock, memdirty's
# pages, its stream), no bad disk pattern, no I/O error; memdirty's last
# report found every page as it left it.
clean() {
    check "mig $1: no FAIL line from g (clock, memdirty's pages, stream)" \
        [ "$(on$1 count_in_log g '^FAIL ')" = 0 ]
    check "mig $1: no round read a bad disk pattern" [ "$(on$1 count_in_log g 'disk=bad')" = 0 ]
    _lr="$(on$1 last_round g)"
    check "mig $1: no I/O error in the guest's kernel log ($_lr)" \
        sh -c "echo '$_lr' | grep -q 'ioerr=0\$'"
    _d="$(tr -d '\r' <"$(on$1 console_log g)" | grep '^DIRTY ' | tail -n 1)"
    check "mig $1: memdirty goes on, every page as it left it ($_d)" \
        sh -c "echo '$_d' | grep -q 'bad=0\$'"
}
