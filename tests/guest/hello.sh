#!/bin/sh
# Boot-time probe: prints the kernel's uptime at the moment the test runs and
# its printk time at "Run /init as init process", then powers off at once
# (for boot-time benchmarks, Domus and QEMU alike).
k=$(dmesg | sed -n 's/^\[ *\([0-9.]*\)\] Run \/init as init process.*/\1/p')
echo "BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) printk=$k"
poweroff -f
