#!/bin/sh
# The demo guest: says who and where it is, then stays up.
echo "Hello from $(uname -sr) running as a $(cat /sys/hypervisor/type 2>/dev/null || echo '?') guest"
echo "vcpus: $(nproc)   memory: $(awk '/MemTotal/ {print int($2/1024) " MiB"}' /proc/meminfo)   uptime: $(cut -d' ' -f1 /proc/uptime) s"
echo "console: $(cat /sys/class/tty/console/active 2>/dev/null)"
echo BOOTED
while :; do sleep 3600; done
