#!/bin/sh
# The demo: create a guest with the domus CLI, show its console and `domus list`,
# then destroy it.  (POSIX sh: runs under busybox in the test host.)
cfg="$DOMUS_TMP/demo.cfg"
con="$DOMUS_TMP/demo-console.txt"
cat >"$cfg" <<CFG
# An xl.cfg, as for Xen's xl.
name = "demo"
type = "pvh"
kernel = "$DOMUS_GUEST_KERNEL"
ramdisk = "$DOMUS_GUEST_INITRD"
cmdline = "console=hvc0 quiet domus.test=demo"
memory = 256
vcpus = 2
CFG
echo "== $cfg"
cat "$cfg"
echo "== domus create -c $cfg"
# -c attaches the console; its stdin (a fifo we hold open) keeps it attached
# until the domain is gone.
mkfifo "$DOMUS_TMP/demo-in"
domus create -c "$cfg" <"$DOMUS_TMP/demo-in" >"$con" 2>&1 &
cpid=$!
exec 3>"$DOMUS_TMP/demo-in"
i=0
while ! grep -q '^BOOTED' "$con" 2>/dev/null && [ $i -lt 120 ]; do
    sleep 1; i=$((i + 1))
done
echo "== console of demo (first lines)"
tr -d '\r' <"$con" | sed -n '1,40p'
if grep -q '^BOOTED' "$con"; then
    echo "PASS demo: guest booted and wrote to its console (after ${i} s)"
else
    echo "FAIL demo: no BOOTED on the console after ${i} s"
fi
echo "== domus list"
if domus list >"$DOMUS_TMP/list.txt" 2>&1; then :; fi
cat "$DOMUS_TMP/list.txt"
if grep -q '^demo ' "$DOMUS_TMP/list.txt"; then
    echo "PASS demo: domus list shows the guest"
else
    echo "FAIL demo: domus list does not show the guest"
fi
echo "== domus destroy demo"
if domus destroy demo; then echo "PASS demo: destroyed"; else echo "FAIL demo: destroy failed"; fi
domus list
exec 3>&-
i=0
while kill -0 "$cpid" 2>/dev/null && [ $i -lt 10 ]; do sleep 1; i=$((i + 1)); done
kill "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
exit 0
