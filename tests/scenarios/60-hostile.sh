#!/bin/sh
# A hostile guest beside a well-behaved one.  The hostile guest loads
# tests/hostile/hostile.ko (built by `make hostile` against the guest
# kernel's headers), which floods Domain 0 with 200,000 unsupported
# hypercalls, 50,000 with wild addresses, foreign domids, bad ports and
# grant refs, and 20,000 4 KiB console writes; then it writes hvc0 flat out
# for 20 s.  Meanwhile a well-behaved guest boots and checks itself.
# Measured every 2 s while the hostile guest runs: `domus list` latency,
# domusd's and xenstored's RSS, the size of the log directory; all must stay
# bounded, both daemons must live, every hostile call must fail as Xen
# would fail it, and the well-behaved guest must pass its own checks.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
WAIT=200        # seconds for the hostile guest to boot, run and power off
LOG_MAX_KB=24576 # the caps: console logs 4 MiB (+ .1), domus-vm logs 4 MiB (+ .1)
RSS_MAX_KB=262144
LIST_MAX_MS=5000

KO=/domus/hostile/hostile.ko
if [ ! -f "$KO" ]; then
    fail "hostile: no $KO in the test host (make hostile, then run again)"
    exit 0
fi

# The guest initramfs with the hostile additions appended (a cpio's later
# entries are added to the earlier ones).
x="$DOMUS_TMP/hostile-root"
mkdir -p "$x/tests"
cp "$KO" "$x/hostile.ko"
cp /domus/hostile/hostile.sh "$x/tests/hostile.sh"
(cd "$x" && find . | cpio -o -H newc 2>/dev/null) >"$DOMUS_TMP/extra.cpio"
cat "$DOMUS_GUEST_INITRD" "$DOMUS_TMP/extra.cpio" >"$DOMUS_TMP/hostile.cpio"
good_initrd="$DOMUS_GUEST_INITRD"
DOMUS_GUEST_INITRD="$DOMUS_TMP/hostile.cpio"
mkcfg hg hostile 2 'on_poweroff = "destroy"'
DOMUS_GUEST_INITRD="$good_initrd"
mkcfg good basic 1 'on_poweroff = "destroy"'

domus create "$DOMUS_TMP/hg.cfg" || { fail "hostile: domus create"; exit 0; }
pass "hostile: domus create"
domus create "$DOMUS_TMP/good.cfg" || fail "hostile: domus create of the well-behaved guest"

dom0_sample_init
t=0
while [ "$t" -lt "$WAIT" ]; do
    dom0_sample hostile "$t"
    listed hg || listed good || break
    sleep 2
    t=$((t + 2))
done
dom0_sample_report hostile "$t"
result="$(tr -d '\r' <"$(console_log hg)" | grep -m1 'hostile: unknown')"
echo "hostile: guest said: ${result:-nothing}"

check "hostile: the guest's module ran to its end" test -n "$result"
case "$result" in
*"unknown 200000 (enosys 200000) wild 50000 (refused 50000) console 20000 (eperm 20000)"*)
    pass "hostile: every unsupported call -ENOSYS, every wild call refused, every console write -EPERM" ;;
*) fail "hostile: some hostile call did not fail as Xen fails it" ;;
esac
check "hostile: the guest flooded its console and powered off (HOSTILE DONE, gone)" \
    sh -c "[ \"\$(tr -d '\r' <'$(console_log hg)' | grep -c '^HOSTILE DONE')\" -ge 1 ] && ! domus list 2>/dev/null | awk '\$1 == \"hg\"' | grep -q ."
check "hostile: the log directory stayed under ${LOG_MAX_KB} kB (max ${max_log} kB)" \
    [ "$max_log" -gt 0 -a "$max_log" -le "$LOG_MAX_KB" ]
check "hostile: domus list answered within ${LIST_MAX_MS} ms (max ${max_list} ms)" \
    [ "$max_list" -le "$LIST_MAX_MS" ]
check "hostile: domusd's RSS stayed under ${RSS_MAX_KB} kB (max ${max_dsd} kB)" \
    [ "$max_dsd" -gt 0 -a "$max_dsd" -le "$RSS_MAX_KB" ]
check "hostile: xenstored's RSS stayed under ${RSS_MAX_KB} kB (max ${max_xs} kB)" \
    [ "$max_xs" -gt 0 -a "$max_xs" -le "$RSS_MAX_KB" ]
check "hostile: domusd lives" [ -d "/proc/$dsd" ]
check "hostile: xenstored lives" [ -n "$xs" -a -d "/proc/$xs" ]
wait_gone good 60 || fail "hostile: the well-behaved guest did not power off"
relay good || fail "hostile: the well-behaved guest's own checks (log: $(tail -n 3 "$(console_log good)" | tr -d '\r' | tr '\n' '|'))"
domus destroy hg >/dev/null 2>&1
domus destroy good >/dev/null 2>&1
vms_gone() {
    _i=0
    while [ "$(vm_count)" != 0 ] && [ "$_i" -lt 10 ]; do sleep 1; _i=$((_i + 1)); done
    [ "$(vm_count)" = 0 ]
}
check "hostile: no domus-vm process left" vms_gone
