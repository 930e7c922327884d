#!/bin/sh
# Debian's xenstore-utils inside a guest, through /dev/xen/xenbus: the guest
# reads its own name and domid, writes and reads back under data/, lists its
# home, and sees a watch fire when Domain 0 writes under its tree.
# domus.name=NAME on the cmdline gives the expected name.
. /tests/lib.sh
echo BOOTED
i=0
while [ ! -e /dev/xen/xenbus ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "xenstore: /dev/xen/xenbus exists" [ -e /dev/xen/xenbus ]
want="$(cmdline_get domus.name || echo)"
name="$(xenstore-read name 2>&1)"
if [ -n "$want" ]; then
    check "xenstore: xenstore-read name = $want (got '$name')" [ "$name" = "$want" ]
else
    check "xenstore: xenstore-read name (got '$name')" [ -n "$name" ]
fi
domid="$(xenstore-read domid 2>&1)"
check "xenstore: xenstore-read domid (got '$domid')" sh -c "[ '$domid' -gt 0 ] 2>/dev/null"
check "xenstore: xenstore-write data/probe" xenstore-write data/probe hello-from-guest
got="$(xenstore-read data/probe 2>&1)"
check "xenstore: read back data/probe (got '$got')" [ "$got" = hello-from-guest ]
check "xenstore: xenstore-exists data/probe" xenstore-exists data/probe
check "xenstore: xenstore-rm data/probe" xenstore-rm data/probe
check "xenstore: data/probe gone" sh -c '! xenstore-exists data/probe'
home="/local/domain/$domid"
check "xenstore: xenstore-ls of its own subtree shows name" sh -c "xenstore-ls '$home' | grep -q '^name = \"$name\"'"
# A watch that Domain 0 fires: the scenario waits for WATCH-READY, then
# writes data/ping from Domain 0.  xenstore-watch prints the initial event on
# registration and one per change.
xenstore-watch -n 2 "$home/data/ping" >/tmp/watch.out 2>&1 &
wpid=$!
sleep 1
echo "WATCH-READY"
i=0
while kill -0 "$wpid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
check "xenstore: watch fired on Domain 0's write ($(tr '\n' ' ' </tmp/watch.out))" \
    sh -c "[ \$(grep -c 'data/ping' /tmp/watch.out) -ge 2 ]"
check "xenstore: Domain 0's value visible (got '$(xenstore-read data/ping 2>&1)')" \
    sh -c "[ \"\$(xenstore-read data/ping)\" = pong ]"
poweroff -f
