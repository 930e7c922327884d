#!/bin/sh
# The well-behaved guest of tests/scenarios/61-rogue.sh: for domus.steady_s
# seconds or until Domain 0 writes its data/steady-stop, rounds of disk and network I/O: each writes 4 MiB to xvdb
# (O_DIRECT), reads it back and compares, and pings Domain 0 (domus.peer).
# One line per round, `STEADY <n> <centiseconds> ok|bad`, then PASS/FAIL
# and STEADY DONE; it powers off.
. /tests/lib.sh
secs="$(cmdline_get domus.steady_s || echo 60)"
ip="$(cmdline_get domus.ip)" peer="$(cmdline_get domus.peer)"
cs() { cut -d' ' -f1 /proc/uptime | tr -d .; }
_i=0
while { [ ! -b /dev/xvdb ] || [ ! -e /sys/class/net/eth0 ]; } && [ $_i -lt 300 ]; do
    sleep 0.1; _i=$((_i + 1))
done
ip link set lo up
ip link set eth0 up
ip addr add "$ip/24" dev eth0
_i=0
until ping -c 1 -W 1 "$peer" >/dev/null 2>&1 || [ $_i -ge 30 ]; do _i=$((_i + 1)); done
dd if=/dev/urandom of=/tmp/pat bs=65536 count=64 2>/dev/null
want="$(md5sum </tmp/pat | cut -d' ' -f1)"
echo "STEADY START"
end=$(($(cut -d. -f1 /proc/uptime) + secs))
n=0 bad=0
# Until domus.steady_s have passed or Domain 0 writes data/steady-stop.
while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ] && ! xenstore-read data/steady-stop >/dev/null 2>&1; do
    t0="$(cs)"
    ok=ok
    dd if=/tmp/pat of=/dev/xvdb bs=65536 oflag=direct 2>/dev/null || ok=bad
    got="$(dd if=/dev/xvdb bs=65536 count=64 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
    [ "$got" = "$want" ] || ok=bad
    ping -c 1 -W 5 "$peer" >/dev/null 2>&1 || ok=bad
    n=$((n + 1))
    [ "$ok" = ok ] || bad=$((bad + 1))
    echo "STEADY $n $(($(cs) - t0)) $ok"
done
check "steady: $n rounds of 8 MiB disk I/O and a ping, $bad bad" [ "$n" -gt 0 -a "$bad" = 0 ]
echo "STEADY DONE"
sync
poweroff -f
