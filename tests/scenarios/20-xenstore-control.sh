#!/bin/sh
# domusd with xenstore (DOMUS_XENSTORE=1: required): it starts domus-xenstored, writes
# each domain's nodes and introduces it; the guest's xenbus connects; `domus
# shutdown -w` and `domus reboot -w` reach the guest through control/shutdown,
# as with xl (the guest acknowledges by clearing it); the domain's nodes go
# when the domain goes.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
DOMUS_XENSTORE=1
XENSTORED_PATH="$DOMUS_RUN_DIR/xenstored/socket"
export DOMUS_XENSTORE XENSTORED_PATH
trap stop_domusd EXIT
BOOT=180

xs_read() { xenstore-read "$1" 2>/dev/null; }
# wait_xs PATH VALUE SECONDS
wait_xs() {
    _i=0
    while [ "$_i" -lt "$3" ]; do
        [ "$(xs_read "$1")" = "$2" ] && return 0
        sleep 1; _i=$((_i + 1))
    done
    return 1
}

mkcfg xs1 idle 1
if ! domus create "$DOMUS_TMP/xs1.cfg"; then
    fail "xenstore: domus create xs1"
    exit 1
fi
id="$(domus domid xs1)"
check "xenstore: /local/domain/$id/name is xs1" test "$(xs_read "/local/domain/$id/name")" = xs1
check "xenstore: memory/target written" test -n "$(xs_read "/local/domain/$id/memory/target")"
check "xenstore: guest booted" wait_log xs1 '^BOOTED' "$BOOT"
# Linux's xenbus writes control/feature-poweroff once it talks to xenstored.
check "xenstore: the guest's xenbus connected (control/feature-poweroff=1)" \
    wait_xs "/local/domain/$id/control/feature-poweroff" 1 60
# The guest's manage.c clears control/shutdown when it takes the request,
# then runs /sbin/poweroff (busybox signals init, which must act on it).
check "xenstore: domus shutdown xs1 accepted" domus shutdown xs1
check "xenstore: the guest took the request (control/shutdown cleared)" \
    wait_xs "/local/domain/$id/control/shutdown" "" 30
if wait_gone xs1 60; then
    pass "xenstore: xs1 powered off and is gone"
else
    fail "xenstore: xs1 took the shutdown request but did not power off (its /init must act on busybox poweroff's SIGUSR2)"
    domus destroy xs1
fi
check "xenstore: /local/domain/$id removed" test -z "$(xenstore-ls "/local/domain/$id" 2>/dev/null)"

mkcfg xs2 idle 1 'on_reboot = "restart"'
domus create "$DOMUS_TMP/xs2.cfg" || fail "xenstore: domus create xs2"
id="$(domus domid xs2)"
wait_log xs2 '^BOOTED' "$BOOT" && wait_xs "/local/domain/$id/control/feature-reboot" 1 60
# xl reboot -w: returns once the domain runs again (same domid, restarted).
if timeout 240 domus reboot -w xs2 2>"$DOMUS_TMP/err"; then
    pass "xenstore: reboot -w xs2 returned"
    check "xenstore: reboot: xs2 booted again" wait_log xs2 '^BOOTED' 60 2
    check "xenstore: reboot: same domid" test "$(domus domid xs2)" = "$id"
    check "xenstore: reboot: introduced again" wait_xs "/local/domain/$id/name" xs2 10
else
    fail "xenstore: reboot -w xs2: $(tr '\n' ' ' <"$DOMUS_TMP/err") (BOOTED $(count_in_log xs2 '^BOOTED') times)"
fi
domus destroy xs2
check "xenstore: destroy removes /local/domain/$id" test -z "$(xenstore-ls "/local/domain/$id" 2>/dev/null)"
check "xenstore: no domus-vm process left" [ "$(vm_count)" = 0 ]
