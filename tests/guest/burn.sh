#!/bin/sh
# CPU-bound: one busy loop for domus.burn=S seconds (default 120), then
# powers off (the scheduling scenario measures the CPU time it gets).
s=120
for arg in $(cat /proc/cmdline); do
    case "$arg" in domus.burn=*) s="${arg#domus.burn=}" ;; esac
done
echo "BOOTED burning for ${s}s"
(while :; do :; done) &
sleep "$s"
kill $!
echo "PASS burn: spun for ${s}s"
poweroff -f
