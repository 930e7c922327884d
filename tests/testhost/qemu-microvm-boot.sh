#!/bin/sh
# QEMU as the peer for boot-time comparisons: boots the same guest kernel and
# initramfs with `qemu-system-x86_64 -M microvm -accel kvm` and reports the
# time until the guest's /init ran tests/guest/hello.sh and powered off.
# Run with: tests/testhost/run.sh --with-qemu qemu-microvm-boot
command -v qemu-system-x86_64 >/dev/null || { echo "FAIL qemu: not in the test host (use run.sh --with-qemu)"; exit 1; }
out="$DOMUS_TMP/qemu-microvm.log"
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; } # busybox date has no %N
t0="$(now_ms)"
timeout 120 qemu-system-x86_64 -M microvm -accel kvm -cpu host -smp 1 -m 256 \
    -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
    -kernel "$DOMUS_GUEST_KERNEL" -initrd "$DOMUS_GUEST_INITRD" \
    -append "console=ttyS0 quiet domus.test=hello" </dev/null >"$out" 2>&1
rc=$?
ms=$(( $(now_ms) - t0 ))
tr -d '\r' <"$out" | grep -v '^\s*$' | tail -n 5
if grep -q '^BOOTED' "$out"; then
    echo "PASS qemu microvm: guest booted to /init and powered off in $ms ms (qemu exit $rc; $(grep -o 'uptime=[0-9.]*' "$out"))"
else
    echo "FAIL qemu microvm: no BOOTED after $ms ms (qemu exit $rc)"
fi
