#!/bin/sh
# The KVM the tests run on has the Xen acceleration Domus uses
# (KVM_CAP_XEN_HVM with INTERCEPT_HCALL and EVTCHN_SEND).  Failures are
# reported as FAIL lines; the exit status stays 0.
echo "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus"
if [ ! -e /dev/kvm ]; then
    echo "FAIL kvm-xen: no /dev/kvm ($(lsmod | grep -c '^kvm') kvm modules loaded)"
    exit 0
fi
kvm-xen-probe
exit 0
