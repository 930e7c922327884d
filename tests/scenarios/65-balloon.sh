#!/bin/sh
# Ballooning (issue 13): a 512 MiB guest (tests/guest/balloon.sh) touches
# all its memory, then `domus mem-set` takes it to 192 MiB: within 30 s its
# MemTotal falls by the difference and the test host's MemAvailable rises by
# at least 90% of it (the pages are punched out of the guest's memfd).  Back
# to 512 MiB, the guest gets them back and memtouch writes and reads all of
# its free memory.  mem-set above maxmem is refused; a create (and a
# mem-set) the host cannot back is refused, and nothing is created.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
DOMUS_XENSTORE=1
XENSTORED_PATH="$DOMUS_RUN_DIR/xenstored/socket"
export DOMUS_XENSTORE XENSTORED_PATH
BOOT=240 # seconds to boot and touch 512 MiB (TCG test host)
FULL=512 LOW=192

avail_mib() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
# memtotal NAME: the guest's last MEMTOTAL line, in MiB.
memtotal() {
    tr -d '\r' <"$(console_log "$1")" | awk '$1 == "MEMTOTAL" { t = $2 } END { print int(t / 1024) }'
}
list_mem() { list_row "$1" | awk '{ print $3 }'; }

MEMORY=$FULL EXTRA_CMDLINE="domus.balloon_low=$((LOW + 64)) domus.balloon_high=$((FULL - 64))" \
    mkcfg bal balloon 1
domus create "$DOMUS_TMP/bal.cfg" || { fail "create bal (memory=$FULL)"; exit 1; }
pass "create bal (memory=$FULL)"
if ! wait_log bal '^TOUCHED boot' "$BOOT"; then
    fail "bal did not boot and touch its memory: $(tail -n 5 "$(console_log bal)" | tr '\n' '|')"
    exit 1
fi
sleep 2
t0="$(memtotal bal)" a0="$(avail_mib)"
check "xenstore: memory/target is ${FULL} MiB in KiB, static-max too" \
    test "$(xenstore-read /local/domain/"$(domus domid bal)"/memory/target)" = $((FULL * 1024))
echo "MEASURED before: guest MemTotal $t0 MiB, test host MemAvailable $a0 MiB, list Mem $(list_mem bal)"

domus mem-set bal ${LOW}m || fail "mem-set bal ${LOW}m"
want=$((FULL - LOW)) i=0
while [ "$i" -lt 30 ]; do
    sleep 1; i=$((i + 1))
    dt=$((t0 - $(memtotal bal))) da=$(($(avail_mib) - a0))
    [ "$dt" -ge $((want * 9 / 10)) ] && [ "$da" -ge $((want * 9 / 10)) ] && break
done
echo "MEASURED after mem-set $LOW in ${i}s: guest MemTotal $(memtotal bal) MiB (-$dt), test host MemAvailable $(avail_mib) MiB (+$da), list Mem $(list_mem bal)"
check "mem-set $LOW: guest MemTotal fell by $dt MiB (>= 90% of $want, at most $want + 8) within 30 s" \
    sh -c "[ $dt -ge $((want * 9 / 10)) ] && [ $dt -le $((want + 8)) ]"
check "mem-set $LOW: test host MemAvailable rose by $da MiB (>= 90% of $want) within 30 s" \
    [ "$da" -ge $((want * 9 / 10)) ]
check "list shows Mem $LOW (+-8)" sh -c "m=\$(domus list bal | awk '\$1 == \"bal\" { print \$3 }'); [ \$m -ge $((LOW - 8)) ] && [ \$m -le $((LOW + 8)) ]"

# Above maxmem (= memory here): refused, target unchanged.
if domus mem-set bal $((FULL + 1))m 2>"$DOMUS_TMP/err"; then
    fail "mem-set above maxmem succeeded"
else
    check "mem-set above maxmem refused: '$(head -n 1 "$DOMUS_TMP/err")'" \
        grep -q "memory_static_max" "$DOMUS_TMP/err"
fi
check "... memory/target unchanged" \
    test "$(xenstore-read /local/domain/"$(domus domid bal)"/memory/target)" = $((LOW * 1024))

# A create the host cannot back: refused, nothing created.
free="$(domus info | awk '$1 == "free_memory" { print $3 }')"
n0="$(vm_count)"
big=$((free + 128)) # MemAvailable moves a little between the two
MEMORY=$big mkcfg big idle 1
if domus create "$DOMUS_TMP/big.cfg" 2>"$DOMUS_TMP/err"; then
    fail "create of $big MiB (info's free_memory $free) succeeded"
    domus destroy big
else
    check "create of $big MiB (info's free_memory $free) refused: '$(grep -v '^Parsing' "$DOMUS_TMP/err" | head -n 1)'" \
        grep -q "memory: $big MiB requested, host has [0-9]* MiB available" "$DOMUS_TMP/err"
fi
check "... no domus-vm started" [ "$(vm_count)" = "$n0" ]
check "... not in domus list" [ -z "$(list_row big)" ]

# Back to full: the guest takes its memory again and touches all of it.
domus mem-set bal $FULL || fail "mem-set bal $FULL"
if wait_log bal '^TOUCHED back' 120; then
    m="$(list_mem bal)"
    pass "mem-set $FULL: guest MemTotal back to $(memtotal bal) MiB"
    check "mem-set $FULL: list shows Mem $m (pages held, $FULL -8)" sh -c "[ 0$m -ge $((FULL - 8)) ]"
else
    fail "mem-set $FULL: guest did not get its memory back: $(tail -n 4 "$(console_log bal)" | tr '\n' '|')"
fi
wait_gone bal 60 || { fail "bal did not power off"; domus destroy bal; }
relay bal
check "domus-vm log: no error" sh -c "! grep -q 'error' '$DOMUS_LOG_DIR/domus-vm-bal.log'"

# memory=192, maxmem=512: its e820 says 512 MiB, its balloon gives the rest
# back while it boots (as Xen's guests do with populate-on-demand), and
# mem-set takes it to 512.
MEMORY=$LOW EXTRA_CMDLINE="domus.balloon_touch_boot=0 domus.balloon_low=$((LOW + 16)) domus.balloon_high=$((FULL - 64))" \
    mkcfg grow balloon 1 "maxmem = $FULL"
domus create "$DOMUS_TMP/grow.cfg" || { fail "create grow (memory=$LOW, maxmem=$FULL)"; exit 1; }
check "grow: memory/static-max is $FULL MiB in KiB" \
    test "$(xenstore-read /local/domain/"$(domus domid grow)"/memory/static-max)" = $((FULL * 1024))
i=0
while [ "$i" -lt "$BOOT" ] && ! [ "$(memtotal grow)" -gt 0 -a "$(memtotal grow)" -le $((LOW + 16)) ]; do
    sleep 1; i=$((i + 1))
done
check "grow: booted and ballooned to MemTotal $(memtotal grow) MiB (<= $((LOW + 16))) by itself" \
    [ "$(memtotal grow)" -gt 0 -a "$(memtotal grow)" -le $((LOW + 16)) ]
m="$(list_mem grow)"
check "grow: list shows Mem $m (pages held, $LOW +-16)" sh -c "[ $m -ge $((LOW - 16)) ] && [ $m -le $((LOW + 16)) ]"
domus mem-set grow $FULL || fail "mem-set grow $FULL"
if wait_log grow '^TOUCHED back' 120; then
    m="$(list_mem grow)"
    pass "grow: mem-set $FULL: MemTotal $(memtotal grow) MiB"
    check "grow: list shows Mem $m (pages held, $FULL -8)" sh -c "[ 0$m -ge $((FULL - 8)) ]"
else
    fail "grow: mem-set $FULL: no more memory: $(tail -n 4 "$(console_log grow)" | tr '\n' '|')"
fi
wait_gone grow 60 || { fail "grow did not power off"; domus destroy grow; }
relay grow
