#!/bin/sh
# Debian's xenstore-utils inside a guest (tests/guest/xenstore.sh) against
# Domus's xenstored: the guest reads its name and domid, writes, reads back,
# removes, lists its subtree, and sees a watch fire when Domain 0 writes.  The guest's PASS/FAIL lines are relayed from its console log.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
EXTRA_CMDLINE="domus.name=gxs" mkcfg gxs xenstore 1 'on_poweroff = "destroy"'
XENSTORED_PATH="$DOMUS_RUN_DIR/xenstored/socket"
export XENSTORED_PATH
if domus create "$DOMUS_TMP/gxs.cfg"; then
    pass "guest xenstore: domus create"
    if wait_log gxs WATCH-READY 120; then
        id="$(domus domid gxs)"
        check "guest xenstore: Domain 0 writes data/ping" xenstore-write "/local/domain/$id/data/ping" pong
    else
        fail "guest xenstore: the guest never set its watch"
    fi
    check "guest xenstore: the guest powered off" wait_gone gxs 180
    relay gxs || fail "guest xenstore: guest lines (console: $(tail -n 5 "$(console_log gxs)" | tr -d '\r' | tr '\n' '|'))"
else
    fail "guest xenstore: domus create"
fi
exit 0
