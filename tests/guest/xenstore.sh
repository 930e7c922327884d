#!/bin/sh
# Debian's xenstore-utils inside a guest, through /dev/xen/xenbus: the guest
# reads its own name and domid, writes and reads back under data/, lists its
# home.  domus.name=NAME on the cmdline gives the expected name.
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
echo "xenstore-ls of the home:"
xenstore-ls "/local/domain/$domid" 2>&1 | head -n 20
poweroff -f
