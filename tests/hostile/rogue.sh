#!/bin/sh
# The rogue guest of tests/scenarios/61-rogue.sh (appended to the guest
# initramfs as /tests/rogue.sh, with /rogue.ko).  It boots with
# module_blacklist=xen_blkfront,xen_netfront, so that its vbd and vif are
# left to rogue.ko, which attacks blkback and netback and says PASS/FAIL
# for each expectation in the kernel log; those lines are printed here as
# the guest's own, then ROGUE DONE, and it powers off.
echo "ROGUE START"
. /tests/lib.sh
args="$(cmdline_get domus.rogue | tr , " ")"
echo "ROGUE ARGS $args"
# shellcheck disable=SC2086
insmod /rogue.ko $args
echo "ROGUE MODULE rc=$?"
dmesg | sed -n 's/.*rogue: \(PASS\|FAIL\) /\1 /p; s/.*rogue: \(.* finished: .*\)/ROGUE \1/p'
echo "ROGUE DONE"
poweroff -f
