#!/bin/sh
# Acceptance of the hypervisor core: the guest sees Xen, the vCPUs it was
# given, and a clock that runs at the right speed.
. /tests/lib.sh
echo BOOTED

# CONFIG_XEN_SYS_HYPERVISOR=y in Debian's kernels: /sys/hypervisor/type.
if [ -r /sys/hypervisor/type ]; then
    t="$(cat /sys/hypervisor/type)"
    check "hypervisor type is xen (got '$t')" [ "$t" = xen ]
else
    # Kernels without that node: the boot log says which hypervisor it found.
    check "hypervisor detected: Xen (dmesg)" sh -c "dmesg | grep -qi 'Hypervisor detected: Xen\|Booting.*on Xen'"
fi

# CPUID.1:ECX[31], which Xen sets for its guests: without it Linux takes
# itself for bare metal (it then reports host-only bugs such as VMSCAPE).
check "cpu flag 'hypervisor' in /proc/cpuinfo" grep -qw hypervisor /proc/cpuinfo

want="$(cmdline_get domus.vcpus || echo 1)"
got="$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
check "vcpus: nproc $got = domus.vcpus $want" [ "$got" = "$want" ]

d0="$(date +%s)"; u0="$(cut -d. -f1 /proc/uptime)"
sleep 2
d1="$(date +%s)"; u1="$(cut -d. -f1 /proc/uptime)"
dd=$((d1 - d0)); du=$((u1 - u0))
if [ "$dd" -ge 1 ] && [ "$dd" -le 4 ] && [ "$du" -ge 1 ] && [ "$du" -le 4 ]; then
    pass "clock: date advanced ${dd}s, uptime ${du}s over sleep 2"
else
    fail "clock: date advanced ${dd}s, uptime ${du}s over sleep 2 (want 1..4 each)"
fi
poweroff -f
