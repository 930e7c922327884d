#!/bin/sh
# Domain lifecycle through the domus CLI, as a user drives xl: create, list,
# guest poweroff, on_reboot=restart, on_crash=preserve, two guests at once,
# console input.  The guests run tests/guest/*.sh; their PASS/FAIL lines come
# back through their console logs.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
BOOT=180 # seconds for a guest to boot and run its test (TCG test host)

# -v create's phases line, each phase a time of 0 ms or more (none '?').
phases_timed() {
    grep '^create phases (ms): request [0-9]' "$1" | grep -q -v -e '?' -e ' -[0-9]' &&
        grep -q '^create: started at [0-9]' "$1"
}

# basic NAME VCPUS: boots, the guest checks itself and powers off.
basic() {
    mkcfg "$1" basic "$2" 'on_poweroff = "destroy"'
    if ! domus -v create "$DOMUS_TMP/$1.cfg" 2>"$DOMUS_TMP/$1.create"; then
        fail "$1: domus create ($(tr '\n' ' ' <"$DOMUS_TMP/$1.create"))"
        return
    fi
    pass "$1: domus create"
    check "$1: domus -v create times every phase ($(grep '^create phases' "$DOMUS_TMP/$1.create"))" \
        phases_timed "$DOMUS_TMP/$1.create"
    check "$1: domus list shows it" listed "$1"
    check "$1: guest poweroff ends the domain (gone from domus list)" wait_gone "$1" "$BOOT"
    relay "$1" || fail "$1: guest test lines (log: $(tail -n 5 "$(console_log "$1")" | tr -d '\r' | tr '\n' '|'))"
}

reboot_restart() {
    mkcfg rb reboot 1 'on_reboot = "restart"'
    domus create "$DOMUS_TMP/rb.cfg" || { fail "reboot: domus create"; return; }
    id1="$(domus domid rb)"
    if wait_log rb '^BOOTED' $((BOOT * 2)) 2; then
        pass "reboot: on_reboot=restart boots again (BOOTED twice in the console log)"
    else
        fail "reboot: BOOTED $(count_in_log rb '^BOOTED') times"
    fi
    id2="$(domus domid rb)"
    check "reboot: same domid after restart ($id1, $id2)" test "x$id1" != x -a "x$id1" = "x$id2"
    domus destroy rb
    check "reboot: domus destroy removes it" wait_gone rb 5
}

crash_preserve() {
    mkcfg cr crash 1 'on_crash = "preserve"'
    domus create "$DOMUS_TMP/cr.cfg" || { fail "crash: domus create"; return; }
    check "crash: on_crash=preserve lists it as crashed ('c')" wait_state cr c "$BOOT"
    sleep 2
    check "crash: still listed as crashed ($(state_of cr))" wait_state cr c 1
    domus destroy cr
    check "crash: domus destroy removes it" wait_gone cr 5
}

not_paused() { case "$(state_of "$1")" in *p*) return 1 ;; esac; }

pause_unpause() {
    domus pause "$1" || fail "pause: domus pause $1"
    check "pause: $1 listed as paused ($(state_of "$1"))" wait_state "$1" p 5
    domus unpause "$1" || fail "unpause: domus unpause $1"
    check "unpause: $1 no longer paused ($(state_of "$1"))" not_paused "$1"
}

# xl shutdown -w: the guest is asked to power off (xenstore control/shutdown)
# and the command returns once the domain is gone.  Without xenstore domusd
# refuses with a message and leaves the domain alone.
shutdown_request() {
    if timeout 120 domus shutdown -w "$1" 2>"$DOMUS_TMP/err"; then
        check "shutdown -w: $1 powered off and is gone" wait_gone "$1" 5
    elif grep -q "xenstore\|control interface" "$DOMUS_TMP/err" && listed "$1"; then
        pass "shutdown: refused with a message, $1 untouched: $(cat "$DOMUS_TMP/err")"
    else
        fail "shutdown -w: $1: '$(tr '\n' ' ' <"$DOMUS_TMP/err")'"
    fi
}

two_guests() {
    mkcfg idle1 idle 1
    mkcfg idle2 idle 1
    domus create "$DOMUS_TMP/idle1.cfg" || fail "two guests: create idle1"
    domus create "$DOMUS_TMP/idle2.cfg" || fail "two guests: create idle2"
    domus list
    a="$(list_row idle1 | awk '{ print $2 }')"
    b="$(list_row idle2 | awk '{ print $2 }')"
    check "two guests listed with distinct ids ($a, $b)" test "x$a" != x -a "x$b" != x -a "$a" != "$b"
    check "two guests: both have a domus-vm process" [ "$(vm_count)" = 2 ]
    if wait_log idle1 '^BOOTED' "$BOOT" && wait_log idle2 '^BOOTED' "$BOOT"; then
        pass "two guests: both booted"
    else
        fail "two guests: not both booted (idle1: $(tail -n 3 "$(console_log idle1)" | tr -d '\r' | tr '\n' '|'); idle2: $(tail -n 3 "$(console_log idle2)" | tr -d '\r' | tr '\n' '|'))"
    fi
    pause_unpause idle1
    shutdown_request idle2
    domus destroy idle1
    listed idle2 && domus destroy idle2
    check "two guests: destroyed" [ "$(vm_count)" = 0 ]
}

console_input() {
    EXTRA_CMDLINE="domus.expect=hello42" mkcfg con console 1
    domus create "$DOMUS_TMP/con.cfg" || { fail "console: domus create"; return; }
    if ! wait_log con READY-FOR-INPUT "$BOOT"; then
        fail "console: guest never printed READY-FOR-INPUT"
        domus destroy con
        return
    fi
    echo hello42 | domus console con >"$DOMUS_TMP/con.out"
    check "console: domus console exits 0 at stdin's EOF" [ $? = 0 ]
    check "console: guest read the input (PASS console input)" wait_log con '^PASS console input' 60
    echo "console: domus console printed: $(tr -d '\r' <"$DOMUS_TMP/con.out" | tr '\n' '|')"
    relay con || fail "console: guest test lines"
    wait_gone con "$BOOT" || domus destroy con
}

basic b1 1
basic b4 4
reboot_restart
crash_preserve
two_guests
console_input
check "no domus-vm process left" [ "$(vm_count)" = 0 ]
check "no per-domain files left in the run dir" [ -z "$(run_leftovers)" ]
