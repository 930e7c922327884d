#!/bin/sh
# bench/density: an idle guest that keeps saying it is alive.  Under QEMU it
# loads virtio's balloon driver (a virtio-pci device) and says when no device
# bound to it;
# under Xen the kernel's own xen-balloon is built in.  With
# domus.density_touch=MIB it first writes and frees MIB MiB (memtouch: a
# guest that has used its memory before going idle).  Then "DENSITY-BOOTED
# <MemTotal kB>", and every domus.density_beat seconds (default 5)
# "ALIVE <n> <MemTotal kB>": Domain 0 sees from these that it runs and how
# far its balloon has gone.
touch=0 beat=5
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    domus.density_touch=*) touch="${arg#domus.density_touch=}" ;;
    domus.density_beat=*) beat="${arg#domus.density_beat=}" ;;
    esac
done
kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
# QEMU's virtio devices are PCI ones here (vendor 0x1af4; /init loaded
# virtio_pci).  Not "no /sys/bus/xen": Debian's kernel registers that bus under
# KVM too, and the balloon driver was then never loaded.
if grep -qs 0x1af4 /sys/bus/pci/devices/*/vendor; then
    modprobe -q virtio_pci 2>/dev/null
    modprobe -q virtio_balloon || echo "FAIL density: cannot load virtio_balloon"
    ls -d /sys/bus/virtio/drivers/virtio_balloon/virtio* >/dev/null 2>&1 ||
        echo "FAIL density: no virtio balloon device bound"
fi
if [ "$touch" -gt 0 ] 2>/dev/null; then
    memtouch "$touch" >/dev/null || echo "FAIL density: memtouch $touch MiB"
fi
echo "DENSITY-BOOTED $(kb MemTotal)"
n=0
while :; do
    n=$((n + 1))
    echo "ALIVE $n $(kb MemTotal)"
    sleep "$beat"
done
