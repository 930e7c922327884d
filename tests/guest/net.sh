#!/bin/sh
# xen-netfront against Domus's netback.  Kernel parameters: domus.ip=ADDR
# (eth0's address, /24), domus.mac=MAC (what the vif was given),
# domus.peer=ADDR (pinged), domus.net=ROLE:
#   dom0  - TCP with Domain 0 (at domus.peer): it serves 8 MiB of the
#           pattern on port 5001 and takes 64 MiB of the guest's on 5002;
#           both ends checksum what they got (Domain 0's sum is checked by
#           the scenario); then waits (up to 150 s) for a second guest to
#           send 1 MiB on port 5003.
#   guest - sends 1 MiB to the guest at domus.peer, port 5003.
# Pattern: `yes domus-net-0123456789abcdef | head -c SIZE`.
. /tests/lib.sh
echo BOOTED
ip="$(cmdline_get domus.ip)" peer="$(cmdline_get domus.peer)"
mac="$(cmdline_get domus.mac)" role="$(cmdline_get domus.net || echo dom0)"
MIB64=67108864 MIB8=8388608
pattern() { yes domus-net-0123456789abcdef | head -c "$1"; }
md5() { md5sum | cut -d' ' -f1; }
seconds() { cut -d' ' -f1 /proc/uptime; }

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
    want="$(pattern $MIB8 | md5)"
    t0="$(seconds)"
    got="$(nc "$peer" 5001 | head -c $MIB8 | md5)"
    t1="$(seconds)"
    check "net: 8 MiB from Domain 0 arrive intact ($(echo "$t0 $t1" | awk '{ printf "%.1f MB/s", 8.388608 / ($2 - $1) }'))" \
        [ "$got" = "$want" ]
    want="$(pattern $MIB64 | md5)"
    t0="$(seconds)"
    pattern $MIB64 | nc "$peer" 5002
    t1="$(seconds)"
    echo "NET-SENT $want $(echo "$t0 $t1" | awk '{ printf "%.1f MB/s", 67.108864 / ($2 - $1) }')"
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
