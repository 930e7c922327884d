#!/bin/sh
# xen-blkfront against Domus's blkback.  domus.blk=write: /dev/xvdb (16 MiB,
# rw) gets a pattern written with O_DIRECT, read back, flushed, a range
# discarded; /dev/xvdc (ro) must be read-only (info VDISK_READONLY) and refuse
# writes.  (That the back end itself refuses writes to a read-only disk is
# checked by tests/unit/test_blkback.c: the guest's block layer never sends
# them.)  domus.blk=read: the pattern must be on xvdb; the first such boot
# marks the disk and reboots, the next one (the restarted domain) powers off.
# Pattern: `yes domus-blk-0123456789abcdef | head -c 4194304` at offset 0.
. /tests/lib.sh
echo BOOTED
mode="$(cmdline_get domus.blk || echo write)"
pattern() { yes domus-blk-0123456789abcdef | head -c 4194304; }

wait_dev() {
    _i=0
    while [ ! -b "/dev/$1" ] && [ $_i -lt 200 ]; do sleep 0.1; _i=$((_i + 1)); done
    [ -b "/dev/$1" ]
}

check "blk: /dev/xvdb appeared" wait_dev xvdb
check "blk: xvdb has 32768 sectors (got $(cat /sys/block/xvdb/size 2>&1))" \
    [ "$(cat /sys/block/xvdb/size 2>/dev/null)" = 32768 ]
want="$(pattern | md5sum | cut -d' ' -f1)"
readback() { dd if=/dev/xvdb bs=65536 count=64 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1; }

if [ "$mode" = read ]; then
    got="$(readback)"
    check "blk: a later boot reads the pattern back (got $got)" [ "$got" = "$want" ]
    # The first read boot marks the disk (sector 30720) and reboots; the
    # domain restarts (on_reboot = restart) and its next boot powers off.
    mark="$(dd if=/dev/xvdb bs=512 skip=30720 count=1 iflag=direct 2>/dev/null | head -c 8)"
    if [ "$mark" != REBOOTED ]; then
        printf 'REBOOTED' | dd of=/dev/xvdb bs=512 seek=30720 conv=sync oflag=direct 2>/dev/null
        check "blk: marked the disk before rebooting" sync
        echo BLK-DONE
        reboot -f
    fi
    pass "blk: the restarted domain sees the mark written before the reboot"
    echo BLK-DONE
    poweroff -f
fi

check "blk: xvdb is writable (ro=$(cat /sys/block/xvdb/ro 2>&1))" [ "$(cat /sys/block/xvdb/ro)" = 0 ]
segs="$(cat /sys/block/xvdb/queue/max_segments 2>/dev/null)"
check "blk: indirect descriptors in use (max_segments=$segs)" [ "${segs:-0}" -gt 11 ]
feat="$(dmesg | grep 'blkfront: xvdb:' | tail -n 1)"
check "blk: persistent grants in use ($feat)" \
    sh -c 'dmesg | grep "blkfront: xvdb:" | tail -n 1 | grep -q "persistent grants: enabled"'
pattern >/tmp/pat
# Speeds from /proc/uptime (centiseconds) around the dd of 4 MiB.
now() { cut -d' ' -f1 /proc/uptime; }
speed() { awk -v a="$t0" -v b="$(now)" 'BEGIN { d = b - a; if (d < 0.01) d = 0.01; printf "%.2f s, %.1f MB/s", d, 4.194304 / d }'; }
t0="$(now)"
dd if=/tmp/pat of=/dev/xvdb bs=65536 oflag=direct 2>/tmp/dd.err
rc=$?
check "blk: dd oflag=direct writes 4 MiB ($(speed))" [ "$rc" = 0 ]
check "blk: sync" sync
check "blk: flush (blockdev --flushbufs)" blockdev --flushbufs /dev/xvdb
t0="$(now)"
got="$(dd if=/dev/xvdb bs=65536 count=64 iflag=direct 2>/tmp/dd.err | md5sum | cut -d' ' -f1)"
check "blk: O_DIRECT read back matches (got $got; $(speed))" [ "$got" = "$want" ]
# A write of the very last sector.
check "blk: write the last sector" dd if=/tmp/pat of=/dev/xvdb bs=512 count=1 seek=32767 oflag=direct
head -c 512 /tmp/pat >/tmp/s0
check "blk: read the last sector back" \
    sh -c 'dd if=/dev/xvdb bs=512 skip=32767 count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/s0'
if [ "$(cat /sys/block/xvdb/queue/discard_max_bytes 2>/dev/null)" != 0 ]; then
    check "blk: blkdiscard 1 MiB at 8 MiB" blkdiscard -o 8388608 -l 1048576 /dev/xvdb
    z="$(dd if=/dev/zero bs=65536 count=16 2>/dev/null | md5sum | cut -d' ' -f1)"
    d="$(dd if=/dev/xvdb bs=65536 skip=128 count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
    check "blk: the discarded range reads as zeros" [ "$d" = "$z" ]
else
    fail "blk: xvdb offers no discard"
fi

check "blk: /dev/xvdc (access=ro) appeared" wait_dev xvdc
check "blk: xvdc is read-only (ro=$(cat /sys/block/xvdc/ro 2>&1))" [ "$(cat /sys/block/xvdc/ro)" = 1 ]
rosum="$(cmdline_get domus.rosum)"
got="$(dd if=/dev/xvdc bs=65536 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
check "blk: xvdc reads its image (got $got)" [ "$got" = "$rosum" ]
check "blk: writing xvdc is refused" sh -c '! dd if=/tmp/pat of=/dev/xvdc bs=4096 count=1 oflag=direct 2>/dev/null'
sync
echo BLK-DONE
poweroff -f
