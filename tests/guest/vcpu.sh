#!/bin/sh
# vCPU hot-plug (tests/scenarios/62-vcpu.sh).  Xen's cpu_hotplug.c takes a
# CPU down itself when cpu/N/availability says "offline", but for "online"
# it only makes the CPU present again and leaves bringing it up to user
# space (a udev rule on a distribution): this loop plays that rule.  It
# prints "NPROC n (online list)" at start and whenever the count changes.
# For domus top's counters (xentop's VBD_* and NET* columns): a disk read
# and written, a vif that sends.
if [ -b /dev/xvdb ]; then
    dd if=/dev/xvdb of=/dev/null bs=65536 count=16 2>/dev/null
    dd if=/dev/zero of=/dev/xvdb bs=4096 count=8 conv=fsync 2>/dev/null
    echo "DISK read 1 MiB, wrote 32 KiB"
fi
if ip link set eth0 up 2>/dev/null; then
    ip addr add 10.0.62.2/24 dev eth0
    ping -c 3 -W 1 10.0.62.1 >/dev/null 2>&1
    echo "NET pinged"
fi
echo BOOTED
last=""
while :; do
    for c in /sys/devices/system/cpu/cpu[0-9]*; do
        [ -f "$c/online" ] && [ "$(cat "$c/online")" = 0 ] &&
            echo 1 >"$c/online" 2>/dev/null && echo "ONLINED ${c##*/}"
    done
    n="$(nproc)"
    if [ "$n" != "$last" ]; then
        echo "NPROC $n ($(cat /sys/devices/system/cpu/online))"
        last="$n"
    fi
    sleep 1
done
