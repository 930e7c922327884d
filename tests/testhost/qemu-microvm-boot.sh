#!/bin/sh
# QEMU as the peer for boot-time comparisons: boots the same guest kernel and
# initramfs with `qemu-system-x86_64 -M microvm -accel kvm` and reports the
# time from starting QEMU until the guest's /init ran tests/guest/hello.sh
# (BOOTED on the console) and until QEMU exited after the guest's poweroff.
# Run with: tests/testhost/run.sh --with-qemu qemu-microvm-boot
#
# QEMU's best case: microvm without RTC, and initcall_blacklist=cmos_init
# because microvm's FADT does not say "no CMOS RTC" and the kernel otherwise
# spends ~5 s probing a CMOS that is not there.
command -v qemu-system-x86_64 >/dev/null || { echo "FAIL qemu: not in the test host (use run.sh --with-qemu)"; exit 1; }
out="$DOMUS_TMP/qemu-microvm.log"
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; } # busybox date has no %N
t0="$(now_ms)"
timeout 120 qemu-system-x86_64 -M microvm,rtc=off -accel kvm -cpu host -smp 1 -m 256 \
    -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
    -kernel "$DOMUS_GUEST_KERNEL" -initrd "$DOMUS_GUEST_INITRD" \
    -append "console=ttyS0 quiet domus.test=hello initcall_blacklist=cmos_init" </dev/null >"$out" 2>&1 &
qpid=$!
booted=""
while kill -0 "$qpid" 2>/dev/null; do
    if [ -z "$booted" ] && grep -q '^BOOTED' "$out" 2>/dev/null; then booted=$(( $(now_ms) - t0 )); fi
    sleep 0.05
done
wait "$qpid"
rc=$?
ms=$(( $(now_ms) - t0 ))
[ -n "$booted" ] || ! grep -q '^BOOTED' "$out" || booted="<$ms"
tr -d '\r' <"$out" | grep -v '^\s*$' | tail -n 5
if grep -q '^BOOTED' "$out"; then
    echo "PASS qemu microvm: BOOTED after $booted ms, QEMU exited after $ms ms (exit $rc; guest $(tr -d '\r' <"$out" | grep -o 'uptime=[0-9.]*'))"
else
    echo "FAIL qemu microvm: no BOOTED after $ms ms (qemu exit $rc)"
fi
