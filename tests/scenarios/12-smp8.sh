#!/bin/sh
# SMP: a guest with vcpus=8 brings 8 CPUs online (nproc inside equals
# domus.vcpus), and its clock keeps time across them (tests/guest/basic.sh).
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
mkcfg s8 basic 8 'on_poweroff = "destroy"'
if domus create "$DOMUS_TMP/s8.cfg"; then
    pass "smp8: domus create"
    check "smp8: domus list shows 8 vCPUs" sh -c "domus list | awk '\$1 == \"s8\" {print \$4}' | grep -qx 8"
    check "smp8: guest powered off" wait_gone s8 240
    relay s8 || fail "smp8: guest lines (log: $(tail -n 5 "$(console_log s8)" | tr -d '\r' | tr '\n' '|'))"
else
    fail "smp8: domus create"
fi
exit 0
