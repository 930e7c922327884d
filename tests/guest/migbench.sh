#!/bin/sh
# The guest of bench/migrate, run alike by a Domus guest (xen-netfront) and
# by QEMU's (virtio-net).  Kernel parameters:
#   domus.ip=ADDR        eth0's address (/24)
#   domus.peer=ADDR      the client that times the heartbeats
#   domus.peermac=MAC    its MAC, entered as a permanent ARP entry (no ARP
#                        exchange can fall in a migration's window)
#   domus.hbport=PORT    the client's UDP port
#   domus.dirty=MIB:RATE memdirty (tests/guest/memdirty.c) rewriting MIB MiB
#                        at RATE MiB/s beside the heartbeat; none: idle
# Sends `heartbeat send PEER PORT` (a UDP datagram every millisecond,
# tests/guest/heartbeat.c: "HBSEND n=N err=E" every 5 s) and memdirty's
# "DIRTY ..." lines to the console; runs until it is destroyed.
. /tests/lib.sh
ip="$(cmdline_get domus.ip)" peer="$(cmdline_get domus.peer)"
mac="$(cmdline_get domus.peermac)" port="$(cmdline_get domus.hbport)"
dirty="$(cmdline_get domus.dirty)"
_i=0
while [ ! -e /sys/class/net/eth0 ] && [ $_i -lt 200 ]; do sleep 0.1; _i=$((_i + 1)); done
[ -e /sys/class/net/eth0 ] || fail "migbench: no eth0"
ip link set lo up
ip link set eth0 up
ip addr add "$ip/24" dev eth0
[ -z "$mac" ] || arp -i eth0 -s "$peer" "$mac" || fail "migbench: arp -s $peer $mac"
[ -z "$dirty" ] || memdirty "${dirty%:*}" "${dirty#*:}" &
heartbeat send "$peer" "$port" 1000 &
echo "MIGBENCH up ip=$ip peer=$peer port=$port dirty=${dirty:-none}"
while :; do sleep 3600; done
