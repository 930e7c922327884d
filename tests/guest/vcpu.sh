#!/bin/sh
# vCPU hot-plug (tests/scenarios/62-vcpu.sh).  Xen's cpu_hotplug.c takes a
# CPU down itself when cpu/N/availability says "offline", but for "online"
# it only makes the CPU present again and leaves bringing it up to user
# space (a udev rule on a distribution): this loop plays that rule.  It
# prints "NPROC n (online list)" at start and whenever the count changes.
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
