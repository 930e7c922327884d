# Helpers for the toolstack scenarios (POSIX sh; sourced, not run).
# Needs DOMUS_TMP, DOMUS_GUEST_KERNEL, DOMUS_GUEST_INITRD; domus on PATH.
# Each scenario gets its own domusd: run dir and log dir under $DOMUS_TMP.

: "${DOMUS_TMP:?}" "${DOMUS_GUEST_KERNEL:?}" "${DOMUS_GUEST_INITRD:?}"
DOMUS_RUN_DIR="$DOMUS_TMP/run"
DOMUS_LOG_DIR="$DOMUS_TMP/log"
export DOMUS_RUN_DIR DOMUS_LOG_DIR

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }
# check WHAT CMD...: PASS WHAT when CMD succeeds, FAIL WHAT otherwise.
check() {
    _w="$1"; shift
    if "$@"; then pass "$_w"; else fail "$_w"; fi
}

# mkcfg NAME TEST VCPUS [CFG-LINE...]: writes $DOMUS_TMP/NAME.cfg for a guest
# running tests/guest/TEST.sh.  Extra kernel parameters: $EXTRA_CMDLINE.
mkcfg() {
    _n="$1" _t="$2" _v="$3"; shift 3
    {
        echo "# $_n: tests/guest/$_t.sh"
        echo "name = \"$_n\""
        echo "type = \"pvh\""
        echo "kernel = \"$DOMUS_GUEST_KERNEL\""
        echo "ramdisk = \"$DOMUS_GUEST_INITRD\""
        echo "memory = ${MEMORY:-256}"
        echo "vcpus = $_v"
        echo "cmdline = \"console=hvc0 domus.test=$_t domus.vcpus=$_v${EXTRA_CMDLINE:+ $EXTRA_CMDLINE}\""
        for _l in "$@"; do echo "$_l"; done
    } >"$DOMUS_TMP/$_n.cfg"
}

# refused LABEL WHAT PATTERN TEST CFG-LINE: creating a guest of TEST with
# CFG-LINE must fail with PATTERN on stderr (what it leaves behind, the
# caller checks once for all).
refused() {
    mkcfg bad "$4" 1 "$5"
    if domus create "$DOMUS_TMP/bad.cfg" >/dev/null 2>"$DOMUS_TMP/err"; then
        fail "$1: $2: domus create succeeded"
        domus destroy bad >/dev/null 2>&1
    elif grep -q -- "$3" "$DOMUS_TMP/err"; then
        pass "$1: $2 refused: '$(grep -v '^Parsing' "$DOMUS_TMP/err" | head -n 1)'"
    else
        fail "$1: $2: message '$(head -n 2 "$DOMUS_TMP/err" | tr '\n' '|')' does not match '$3'"
    fi
}

console_log() { echo "$DOMUS_LOG_DIR/$1.log"; }

# count_in_log NAME PATTERN: lines of NAME's console log matching PATTERN.
count_in_log() {
    _c="$(tr -d '\r' <"$(console_log "$1")" 2>/dev/null | grep -c -- "$2")"
    echo "${_c:-0}"
}

# wait_log NAME PATTERN SECONDS [COUNT]: until COUNT (default 1) lines match.
wait_log() {
    _i=0
    while [ "$_i" -lt "$3" ]; do
        [ "$(count_in_log "$1" "$2")" -ge "${4:-1}" ] && return 0
        sleep 1; _i=$((_i + 1))
    done
    return 1
}

# relay NAME: the guest's PASS/FAIL lines, as "PASS NAME: ..." (the console log
# is the only way they reach the runner).  Fails when there is no PASS line or
# any FAIL line.
relay() {
    _f="$(console_log "$1")"
    [ -f "$_f" ] || { fail "$1: no console log $_f"; return 1; }
    tr -d '\r' <"$_f" | sed -n "s/^\(PASS\|FAIL\) \(.*\)/\1 $1: \2/p"
    [ "$(count_in_log "$1" '^PASS ')" -ge 1 ] && [ "$(count_in_log "$1" '^FAIL ')" -eq 0 ]
}

# Row of `domus list` for NAME (empty when not listed).
list_row() { domus list 2>/dev/null | awk -v n="$1" '$1 == n'; }
listed() { [ -n "$(list_row "$1")" ]; }
state_of() { list_row "$1" | awk '{ print $5 }'; }

# wait_gone NAME SECONDS
wait_gone() {
    _i=0
    while [ "$_i" -lt "$2" ]; do
        listed "$1" || return 0
        sleep 1; _i=$((_i + 1))
    done
    return 1
}

# wait_state NAME LETTER SECONDS: until the state column contains LETTER.
wait_state() {
    _i=0
    while [ "$_i" -lt "$3" ]; do
        case "$(state_of "$1")" in *"$2"*) return 0 ;; esac
        sleep 1; _i=$((_i + 1))
    done
    return 1
}

domusd_pid() { cat "$DOMUS_RUN_DIR/domusd.pid" 2>/dev/null; }

# wait_listening ERRFILE: until a `migrate-receive --listen` writing its
# stderr to ERRFILE says it listens, 5 s.
wait_listening() {
    for _i in $(seq 50); do
        grep -q listening "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# vm_of_domusd PID: the domus-vm whose parent is domusd PID (nothing if none).
vm_of_domusd() {
    for _p in /proc/[0-9]*; do
        [ "$(cat "$_p/comm" 2>/dev/null)" = domus-vm ] || continue
        [ "$(awk '{ print $4 }' "$_p/stat" 2>/dev/null)" = "$1" ] && { echo "${_p#/proc/}"; return; }
    done
}
# diag_vm_threads: each thread of this domusd's domus-vms, as DIAG lines:
# state, wait channel, kernel stack (where a stuck guest's process waits).
diag_vm_threads() {
    _d="$(domusd_pid)"
    for _p in /proc/[0-9]*; do
        [ "$(cat "$_p/comm" 2>/dev/null)" = domus-vm ] || continue
        [ "$(awk '{ print $4 }' "$_p/stat" 2>/dev/null)" = "$_d" ] || continue
        for _t in "$_p"/task/*; do
            echo "DIAG thread ${_t#/proc/}: $(cat "$_t/comm") $(awk '{ print $3 }' "$_t/stat")" \
                "$(cat "$_t/wchan" 2>/dev/null) | $(tr '\n' ' ' <"$_t/stack" 2>/dev/null | cut -c1-300)"
        done
    done
}
# wait_vm_read DOMUSD-PID BYTES: until that domusd's domus-vm has read more
# than BYTES (its /proc/PID/io: a migration receiver splices the stream to
# it, and spliced bytes are not in the receiver's own rchar), 30 s, one
# read a poll; $got holds the last count.
wait_vm_read() {
    got=0 _vm=""
    for _i in $(seq 1500); do
        [ -n "$_vm" ] || _vm="$(vm_of_domusd "$1")"
        [ -n "$_vm" ] && got="$(sed -n 's/^rchar: //p' "/proc/$_vm/io" 2>/dev/null)"
        [ "${got:-0}" -gt "$2" ] && return 0
        usleep 20000
    done
    return 1
}
# clash_cfg FILE: a small idle guest named g (a name clash on a destination).
clash_cfg() {
    {
        echo 'name = "g"'
        echo 'type = "pvh"'
        echo "kernel = \"$DOMUS_GUEST_KERNEL\""
        echo "ramdisk = \"$DOMUS_GUEST_INITRD\""
        echo 'memory = 128'
        echo 'cmdline = "console=hvc0 domus.test=idle"'
    } >"$1"
}

# Number of domus-vm processes whose parent is our domusd.
vm_count() {
    _d="$(domusd_pid)" _n=0
    for _p in /proc/[0-9]*; do
        [ "$(cat "$_p/comm" 2>/dev/null)" = domus-vm ] || continue
        _pp="$(awk '{ print $4 }' "$_p/stat" 2>/dev/null)"
        [ "$_pp" = "$_d" ] && _n=$((_n + 1))
    done
    echo "$_n"
}

# Number of domus-vm processes on the machine, whoever their parent.
all_vm_count() {
    _n=0
    for _p in /proc/[0-9]*; do
        [ "$(cat "$_p/comm" 2>/dev/null)" = domus-vm ] && _n=$((_n + 1))
    done
    echo "$_n"
}

# Files in the run dir other than domusd's own (and its xenstored's).
run_leftovers() {
    ls -A "$DOMUS_RUN_DIR" 2>/dev/null | grep -v '^domusd\.\(sock\|pid\|lock\)$' |
        grep -v '^xenstored\(\.pid\)\?$'
}

# sandboxed NAME N: NAME's domus-vm log says N or more back-end threads
# sandboxed themselves (sandbox.h), none failed to, and no call was refused
# ("Operation not permitted": the filter's EPERM).
sandboxed() {
    _l="$DOMUS_LOG_DIR/domus-vm-$1.log"
    [ "$(grep -c ': sandboxed (seccomp' "$_l")" -ge "$2" ] &&
        ! grep -q 'not sandboxed\|Operation not permitted' "$_l"
}

# sanitizer_reports: FAIL for each daemon log with an ASan/UBSan report (the
# daemons' stderr goes to $DOMUS_LOG_DIR, which the runner does not see).
sanitizer_reports() {
    for _l in "$DOMUS_LOG_DIR"/*.log; do
        [ -f "$_l" ] || continue
        if grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' "$_l"; then
            fail "sanitizer report in $(basename "$_l"): $(grep -m1 'ERROR\|runtime error' "$_l")"
        fi
    done
}

# stop_domusd: SIGTERM (it destroys what is left), wait for it, then look
# for sanitizer reports in the logs.
stop_domusd() {
    _d="$(domusd_pid)"
    if [ -n "$_d" ]; then
        kill "$_d" 2>/dev/null
        _i=0
        while [ -d "/proc/$_d" ] && [ "$_i" -lt 20 ]; do sleep 1; _i=$((_i + 1)); done
    fi
    sanitizer_reports
}

# Domain 0 under load, sampled: dom0_sample_init, then dom0_sample LABEL ELAPSED
# each round (a `domus list` timed; the log directory's size; domusd's and
# xenstored's RSS), then dom0_sample_report LABEL.  The maxima are in
# max_list (ms), max_log, max_dsd, max_xs (kB); samples counts the rounds.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; } # 10 ms steps (busybox date has no %N)
xs_pid() { cat "$DOMUS_RUN_DIR/xenstored.pid" 2>/dev/null; }
dom0_sample_init() {
    max_list=0 max_log=0 max_dsd=0 max_xs=0 samples=0
    dsd="$(domusd_pid)" xs="$(xs_pid)"
}
dom0_sample() {
    _t0="$(now_ms)"
    domus list >/dev/null 2>&1 || fail "$1: domus list failed at ${2}s"
    _ms=$(($(now_ms) - _t0))
    _log="$(du -sk "$DOMUS_LOG_DIR" | awk '{ print $1 }')"
    _r1="$(rss_kb "$dsd")" _r2="$(rss_kb "$xs")"
    [ "$_ms" -gt "$max_list" ] && max_list=$_ms
    [ "$_log" -gt "$max_log" ] && max_log=$_log
    [ "${_r1:-0}" -gt "$max_dsd" ] && max_dsd=$_r1
    [ "${_r2:-0}" -gt "$max_xs" ] && max_xs=$_r2
    samples=$((samples + 1))
}
dom0_sample_report() {
    echo "$1: $samples samples over ${2}s: domus list max ${max_list} ms, log dir max ${max_log} kB," \
        "domusd RSS max ${max_dsd} kB, xenstored RSS max ${max_xs} kB"
}
