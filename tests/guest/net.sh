#!/bin/sh
# xen-netfront against Domus's netback.  Kernel parameters: domus.ip=ADDR
# (eth0's address, /24), domus.mac=MAC (what the vif was given),
# domus.peer=ADDR (pinged), domus.net=ROLE, domus.mib=N:
#   dom0  - bulk TCP with Domain 0 (at domus.peer) through tcpstream (the
#           pattern of tests/guest/tcpstream.c, checked byte by byte by the
#           receiver, FNV sums printed by both ends and compared by the
#           scenario): takes N MiB on port 5001, sends N MiB to port 5002;
#           then waits (up to 150 s) for a second guest to send 1 MiB with
#           busybox nc on port 5003.
#   guest - sends 1 MiB to the guest at domus.peer, port 5003.
. /tests/lib.sh
echo BOOTED
ip="$(cmdline_get domus.ip)" peer="$(cmdline_get domus.peer)"
mac="$(cmdline_get domus.mac)" role="$(cmdline_get domus.net || echo dom0)"
mib="$(cmdline_get domus.mib || echo 64)"
pattern() { yes domus-net-0123456789abcdef | head -c "$1"; }
md5() { md5sum | cut -d' ' -f1; }

_i=0
while [ ! -e /sys/class/net/eth0 ] && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
check "net: eth0 appeared" [ -e /sys/class/net/eth0 ]
got="$(cat /sys/class/net/eth0/address 2>/dev/null)"
check "net: eth0 has the vif's MAC $mac (got $got)" [ "$got" = "$mac" ]
ip link set lo up
ip link set eth0 up
ip addr add "$ip/24" dev eth0
check "net: eth0 has address $ip" sh -c "ip addr show eth0 | grep -q 'inet $ip/'"
check "net: ping $peer" ping -c 3 -W 10 "$peer"

if [ "$role" = dom0 ]; then
    echo NET-LISTENING
    out="$(tcpstream recv 5001 "$mib" 300 2>&1)"
    check "net: $mib MiB from Domain 0 arrive, every byte the pattern's ($out)" \
        sh -c "echo '$out' | grep -q '^mbs=.*sum='"
    echo "NET-RECV $out"
    out="$(tcpstream send "$peer" 5002 "$mib" 60 2>&1)"
    check "net: sent $mib MiB to Domain 0 ($out)" sh -c "echo '$out' | grep -q '^mbs=.*sum='"
    echo "NET-SENT $out"
    echo NET-WAITING
    got="$(timeout 150 nc -l -p 5003 | head -c 1048576 | md5)"
    check "net: 1 MiB from the other guest arrive intact" [ "$got" = "$(pattern 1048576 | md5)" ]
else
    _i=0
    until pattern 1048576 | nc -w 5 "$peer" 5003 || [ $_i -ge 10 ]; do sleep 1; _i=$((_i + 1)); done
    check "net: sent 1 MiB to the guest at $peer" [ $_i -lt 10 ]
fi
echo NET-DONE
poweroff -f
