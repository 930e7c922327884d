#!/bin/sh
# Boot-time probe: prints the kernel's uptime at the moment the test runs,
# then powers off at once (for boot-time benchmarks, Domus and QEMU alike).
echo "BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
