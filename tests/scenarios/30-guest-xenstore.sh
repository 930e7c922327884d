#!/bin/sh
# Debian's xenstore-utils inside a guest (tests/guest/xenstore.sh) against
# Domus's xenstored: the guest reads its name and domid, writes, reads back,
# removes.  The guest's PASS/FAIL lines are relayed from its console log.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
EXTRA_CMDLINE="domus.name=gxs" mkcfg gxs xenstore 1 'on_poweroff = "destroy"'
if domus create "$DOMUS_TMP/gxs.cfg"; then
    pass "guest xenstore: domus create"
    check "guest xenstore: the guest powered off" wait_gone gxs 180
    relay gxs || fail "guest xenstore: guest lines (console: $(tail -n 5 "$(console_log gxs)" | tr -d '\r' | tr '\n' '|'))"
else
    fail "guest xenstore: domus create"
fi
exit 0
