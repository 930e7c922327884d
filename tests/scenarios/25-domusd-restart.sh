#!/bin/sh
# Guests outlive the toolstack, as on Xen: domusd is killed (SIGKILL) while
# two guests run; the next domus command starts a new domusd, which adopts
# them: same ids in `domus list`, pause/unpause, shutdown through xenstore,
# destroy; new domains get fresh ids.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
BOOT=180

mkcfg r1 idle 1
mkcfg r2 idle 1
domus create "$DOMUS_TMP/r1.cfg" || fail "restart: create r1"
domus create "$DOMUS_TMP/r2.cfg" || fail "restart: create r2"
id1="$(domus domid r1)" id2="$(domus domid r2)"
check "restart: two domus-vm processes" [ "$(all_vm_count)" = 2 ]
wait_log r1 '^BOOTED' "$BOOT" && wait_log r2 '^BOOTED' "$BOOT" || fail "restart: guests did not boot"
old="$(domusd_pid)"
kill -KILL "$old"
sleep 1
domus list
check "restart: a new domusd runs" test -n "$(domusd_pid)" -a "$(domusd_pid)" != "$old"
check "restart: r1 adopted with its id $id1" test "$(list_row r1 | awk '{ print $2 }')" = "$id1"
check "restart: r2 adopted with its id $id2" test "$(list_row r2 | awk '{ print $2 }')" = "$id2"
domus pause r1 && wait_state r1 p 5
check "restart: pause an adopted domain ($(state_of r1))" wait_state r1 p 1
domus unpause r1
mkcfg r3 idle 1
domus create "$DOMUS_TMP/r3.cfg" || fail "restart: create r3"
id3="$(domus domid r3)"
check "restart: a new domain gets a fresh id ($id3)" test -n "$id3" -a "$id3" != "$id1" -a "$id3" != "$id2"
if timeout 120 domus shutdown -w r2 2>"$DOMUS_TMP/err"; then
    check "restart: shutdown -w of an adopted domain" wait_gone r2 5
else
    fail "restart: shutdown -w r2: $(tr '\n' ' ' <"$DOMUS_TMP/err")"
    domus destroy r2
fi
domus destroy r1 || fail "restart: destroy r1"
domus destroy r3 || fail "restart: destroy r3"
check "restart: all gone" test -z "$(list_row r1)$(list_row r2)$(list_row r3)"
sleep 1
check "restart: no domus-vm process left" [ "$(all_vm_count)" = 0 ]
check "restart: no per-domain files left in the run dir" [ -z "$(run_leftovers)" ]
