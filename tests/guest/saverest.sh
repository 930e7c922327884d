#!/bin/sh
# A workload that must survive save and restore (tests/scenarios/70-save-
# restore.sh).  Every round (about a second apart): a 1 MiB pattern of that
# round is written to xvdb at a slot of its own (a write through the page
# cache, then sync), the cache is dropped and the slot read back and checked
# by md5; the clock is read (/proc/uptime, never to go back) and, when
# domus.peer=ADDR is given (eth0 at domus.ip=ADDR/24), Domain 0 is pinged
# once.  Each round prints one line:
#   ROUND n up=SECONDS disk=ok|bad net=ok|bad|- ioerr=N
# where ioerr counts "I/O error" lines in the kernel log so far.  A clock
# that went back prints "FAIL clock went back".  With domus.flow=PORT too,
# a TCP stream with sequence checks runs beside the rounds against Domain
# 0's `tcpstream echo PORT` (`tcpstream flow`: its "FLOW n=N stall=S",
# "FLOW done ..." and "FAIL flow: ..." lines go to the console).  With
# domus.dirty=MIB:RATE, memdirty (tests/guest/memdirty.c) rewrites MIB MiB
# of its memory at RATE MiB/s beside them, checking each page still holds
# what it last wrote ("DIRTY ... bad=N" every 5 s, "FAIL memdirty: ...").
. /tests/lib.sh
ip="$(cmdline_get domus.ip)" peer="$(cmdline_get domus.peer)"
if [ -n "$ip" ]; then
    _i=0
    while [ ! -e /sys/class/net/eth0 ] && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
    ip link set lo up
    ip link set eth0 up
    ip addr add "$ip/24" dev eth0
fi
_i=0
while [ ! -b /dev/xvdb ] && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
check "saverest: xvdb appeared" [ -b /dev/xvdb ]
echo BOOTED
flow="$(cmdline_get domus.flow)"
[ -z "$flow" ] || [ -z "$peer" ] || tcpstream flow "$peer" "$flow" 60 &
dirty="$(cmdline_get domus.dirty)"
[ -z "$dirty" ] || memdirty "${dirty%:*}" "${dirty#*:}" &
pattern() { yes "domus-save-round-$1-" | head -c 1048576; }
n=0 last=0
while :; do
    n=$((n + 1))
    slot=$((n % 8))
    pattern "$n" >/tmp/pattern # (dd from a pipe may write a short block)
    want="$(md5sum </tmp/pattern | cut -d' ' -f1)"
    dd if=/tmp/pattern of=/dev/xvdb bs=1048576 seek="$slot" count=1 conv=notrunc 2>/dev/null
    sync
    echo 3 >/proc/sys/vm/drop_caches
    got="$(dd if=/dev/xvdb bs=1048576 skip="$slot" count=1 2>/dev/null | md5sum | cut -d' ' -f1)"
    disk=bad
    [ "$got" = "$want" ] && disk=ok
    up="$(cut -d' ' -f1 /proc/uptime)"
    if awk -v a="$up" -v b="$last" 'BEGIN { exit !(a + 0 < b + 0) }'; then
        echo "FAIL clock went back: $last then $up"
    fi
    last="$up"
    net=-
    if [ -n "$peer" ]; then
        net=bad
        ping -c 1 -W 2 "$peer" >/dev/null 2>&1 && net=ok
    fi
    ioerr="$(dmesg | grep -c 'I/O error')"
    echo "ROUND $n up=$up disk=$disk net=$net ioerr=$ioerr"
    sleep 1
done
