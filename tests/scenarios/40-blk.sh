#!/bin/sh
# Virtual disks: xen-blkfront in a guest against Domus's blkback
# (tests/guest/blk.sh).  Boot 1 writes a pattern to xvdb (a 16 MiB raw
# image), discards a range, and checks that xvdc (access=ro) refuses
# writes; Domain 0 then checks the image; a second domain reads the pattern
# back, marks the disk and reboots; restarted, it sees the mark.  The
# first guest asks for 16-page rings (xen_blkfront.max_ring_page_order=4),
# the second keeps blkfront's default single page.  Persistent grants are
# offered here (DOMUS_BLK_PERSISTENT=1, in domusd's and so domus-vm's
# environment): the first guest takes them, the second declines
# (xen_blkfront.feature_persistent=0).
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
export DOMUS_BLK_PERSISTENT=1
trap stop_domusd EXIT
IMG="$DOMUS_TMP/disk.img" RO="$DOMUS_TMP/ro.img"
dd if=/dev/zero of="$IMG" bs=1048576 count=16 2>/dev/null
yes domus-read-only-image | head -c 1048576 >"$RO"
rosum="$(md5sum <"$RO" | cut -d' ' -f1)"
want="$(yes domus-blk-0123456789abcdef | head -c 4194304 | md5sum | cut -d' ' -f1)"
zero="$(dd if=/dev/zero bs=1048576 count=1 2>/dev/null | md5sum | cut -d' ' -f1)"

boot() { # boot NAME MODE [BOOTS [CMDLINE]]: BOOTS incarnations (reboots restart it)
    EXTRA_CMDLINE="domus.blk=$2 domus.rosum=$rosum${4:+ $4}" mkcfg "$1" blk 1 'on_poweroff = "destroy"' \
        'on_reboot = "restart"' \
        "disk = [ '$IMG,raw,xvdb,rw', 'format=raw, vdev=xvdc, access=ro, target=$RO' ]"
    if ! domus create "$DOMUS_TMP/$1.cfg"; then
        fail "blk $2: domus create"
        return 1
    fi
    pass "blk $2: domus create with two disks"
    # (the waits stay inside run.sh's 300 s, so that a stuck guest's
    # console still gets relayed)
    if wait_log "$1" BLK-DONE 150 "${3:-1}"; then
        pass "blk $2: the guest finished (${3:-1} boot(s))"
    else # where it stopped: its console, and its domus-vm's threads
        fail "blk $2: the guest finished (${3:-1} boot(s))"
        tr -d '\r' <"$(console_log "$1")" | tail -n 25 | sed 's/^/DIAG console: /'
        diag_vm_threads
        tail -n 10 "$DOMUS_LOG_DIR/domus-vm-$1.log" 2>/dev/null | sed 's/^/DIAG vm: /'
    fi
    check "blk $2: the guest powered off" wait_gone "$1" 30
    relay "$1" || fail "blk $2: guest lines (console: $(tail -n 5 "$(console_log "$1")" | tr -d '\r' | tr '\n' '|'))"
}

# baddisk WHAT PATTERN DISK-LIST: create must fail with PATTERN on stderr.
baddisk() { refused blk "$1" "$2" blk "disk = [ $3 ]"; }
baddisk "missing image" "disk 0: .*missing.img: No such file" "'$DOMUS_TMP/missing.img,raw,xvdb,rw'"
baddisk "qcow2 image" "disk 0 '.*': format 'qcow2' is not supported (raw only)" "'$IMG,qcow2,xvdb'"
baddisk "bad vdev" "disk 0 '.*': invalid vdev 'vda'" "'$IMG,raw,vda'"
baddisk "vdev used twice" "disk 1: vdev xvdb is already used by disk 0" "'$IMG,raw,xvdb', '$RO,,xvdb,ro'"
check "blk: nothing left by the refused creates" [ "$(vm_count)" = 0 ]

# ring_is NAME PAGES: the guest's disks connected with PAGES-page rings.
ring_is() {
    [ "$(grep -c "vbd \(51728\|51744\): ring of $2 page(s), .* io_uring I/O" "$DOMUS_LOG_DIR/domus-vm-$1.log")" -ge 2 ]
}
boot blkw write 1 xen_blkfront.max_ring_page_order=4
check "blk write: both disks on 16-page rings, io_uring I/O" ring_is blkw 16
check "blk write: both disks with persistent grants" \
    [ "$(grep -c 'vbd \(51728\|51744\): .*persistent grants on' "$DOMUS_LOG_DIR/domus-vm-blkw.log")" -ge 2 ]
check "blk write: console, xenstore ring and both disks in seccomp sandboxes, nothing refused" \
    sandboxed blkw 4
got="$(head -c 4194304 "$IMG" | md5sum | cut -d' ' -f1)"
check "blk: Domain 0 finds the guest's pattern in the image" [ "$got" = "$want" ]
got="$(dd if="$IMG" bs=1048576 skip=8 count=1 2>/dev/null | md5sum | cut -d' ' -f1)"
check "blk: the discarded MiB is zeros in the image" [ "$got" = "$zero" ]
check "blk: the read-only image is unchanged" [ "$(md5sum <"$RO" | cut -d' ' -f1)" = "$rosum" ]
boot blkr read 2 xen_blkfront.feature_persistent=0
check "blk read: both disks on single-page rings, io_uring I/O" ring_is blkr 1
check "blk read: persistent grants offered, declined by the guest" \
    [ "$(grep -c 'vbd \(51728\|51744\): .*persistent grants off' "$DOMUS_LOG_DIR/domus-vm-blkr.log")" -ge 2 ]
check "blk: Domain 0 finds the mark the guest wrote before its reboot" \
    [ "$(dd if="$IMG" bs=512 skip=30720 count=1 2>/dev/null | head -c 8)" = REBOOTED ]
check "blk: no backend nodes left in xenstore" sh -c \
    "! XENSTORED_PATH='$DOMUS_RUN_DIR/xenstored/socket' xenstore-ls /local/domain/0/backend/vbd 2>/dev/null | grep -q ."
exit 0
