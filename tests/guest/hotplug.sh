#!/bin/sh
# Hot-plug (tests/scenarios/45-hotplug.sh): the guest boots without
# devices; Domain 0 block-attaches xvdb (its first MiB holds the pattern
# `yes domus-hotplug-0123456789 | head -c 1048576`), network-attaches a vif
# with the MAC domus.mac, then detaches both.  The guest reports each step
# on its console (HP-* lines Domain 0 waits for) and stays up until Domain 0
# shuts it down.
. /tests/lib.sh
mac="$(cmdline_get domus.mac)"
# wait_for SECONDS TEST-ARGS...: until [ TEST-ARGS ] holds (polled every 0.2 s).
wait_for() {
    _n=$(($1 * 5)); shift
    while [ "$_n" -gt 0 ]; do
        [ "$@" ] && return 0
        sleep 0.2; _n=$((_n - 1))
    done
    return 1
}
check "hotplug: no disk at boot" [ ! -e /sys/block/xvdb ]
check "hotplug: no network interface at boot" [ ! -e /sys/class/net/eth0 ]
echo HP-READY

check "hotplug: xvdb appeared" wait_for 120 -b /dev/xvdb
want="$(yes domus-hotplug-0123456789 | head -c 1048576 | md5sum | cut -d' ' -f1)"
got="$(head -c 1048576 /dev/xvdb 2>/dev/null | md5sum | cut -d' ' -f1)"
check "hotplug: xvdb holds the pattern Domain 0 wrote" [ "$got" = "$want" ]
echo HP-DISK

check "hotplug: eth0 appeared" wait_for 120 -e /sys/class/net/eth0
got="$(cat /sys/class/net/eth0/address 2>/dev/null)"
check "hotplug: eth0 has the vif's MAC $mac (got $got)" [ "$got" = "$mac" ]
echo HP-NET

check "hotplug: xvdb went away" wait_for 120 ! -e /sys/block/xvdb
check "hotplug: eth0 went away" wait_for 120 ! -e /sys/class/net/eth0
echo HP-GONE

# Domain 0 attaches xvdb once more (read-only, the same first MiB).
check "hotplug: xvdb appeared again" wait_for 120 -b /dev/xvdb
got="$(head -c 1048576 /dev/xvdb 2>/dev/null | md5sum | cut -d' ' -f1)"
check "hotplug: the second xvdb holds the pattern" [ "$got" = "$want" ]
echo HP-DISK2
# Domain 0 shuts us down (xenstore control/shutdown reaches /init).
sleep 600
