#!/bin/sh
# The KVM the tests run on has the Xen acceleration Domus uses
# (KVM_CAP_XEN_HVM with INTERCEPT_HCALL and EVTCHN_SEND).
echo "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus"
if [ ! -e /dev/kvm ]; then
    echo "FAIL kvm-xen: no /dev/kvm (lsmod: $(lsmod | grep -c kvm) kvm modules)"
    exit 1
fi
kvm-xen-probe
