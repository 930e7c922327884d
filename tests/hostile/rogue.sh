#!/bin/sh
# The rogue guest of tests/scenarios/61-rogue.sh (appended to the guest
# initramfs as /tests/rogue.sh, with /rogue.ko).  It boots with
# module_blacklist=xen_blkfront,xen_netfront, so that its vbd and vif are
# left to rogue.ko, which attacks blkback and netback and says PASS/FAIL
# for each expectation in the kernel log; those lines are printed here as
# the guest's own; then permission games with xenstore-utils, ROGUE DONE,
# and it powers off.
echo "ROGUE START"
. /tests/lib.sh
args="$(cmdline_get domus.rogue | tr , " ")"
echo "ROGUE ARGS $args"
# shellcheck disable=SC2086
insmod /rogue.ko $args
echo "ROGUE MODULE rc=$?"
dmesg | sed -n 's/.*rogue: \(PASS\|FAIL\) /\1 /p; s/.*rogue: \(.* finished: .*\)/ROGUE \1/p'
# Permission games from userspace (xenstore-utils on /dev/xen/xenbus):
# each must be refused.
me="$(xenstore-read domid)"
refused() {
    _w="$1"
    shift
    if "$@" >/dev/null 2>&1; then echo "FAIL xs: $_w: allowed"; else echo "PASS xs: $_w: refused"; fi
}
xenstore-write data/p x
refused "seven permission entries on one node" xenstore-chmod data/p "n$me" r0 r1 r2 r3 r4 r5
refused "a write into Domain 0's directory" xenstore-write /local/domain/0/rogue x
refused "a chmod of Domain 0's directory" xenstore-chmod /local/domain/0 "n$me"
refused "removing Domain 0's directory" xenstore-rm /local/domain/0
refused "a write under /tool" xenstore-write /tool/rogue x
if dmesg | grep -q 'xen store gave: unknown error'; then
    echo "FAIL xs: xenstored sent an error string that is not Xen's: $(dmesg | grep -m1 'unknown error')"
else
    echo "PASS xs: every error string was one of Xen's"
fi
echo "ROGUE DONE"
poweroff -f
