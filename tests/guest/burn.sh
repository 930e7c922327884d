#!/bin/sh
# CPU-bound: one busy loop for domus.burn=S seconds (default 120), then
# powers off (the scheduling scenario measures the CPU time it gets).  Every
# 2 s a line "STEAL N": the guest's steal time so far (/proc/stat, 1/100 s),
# what the hypervisor's runstate area says its vCPU waited for a host CPU.
s=120
for arg in $(cat /proc/cmdline); do
    case "$arg" in domus.burn=*) s="${arg#domus.burn=}" ;; esac
done
echo "BOOTED burning for ${s}s"
(while :; do :; done) &
end=$(($(cut -d. -f1 /proc/uptime) + s))
while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
    echo "STEAL $(awk '$1 == "cpu" { print $9 }' /proc/stat)"
    sleep 2
done
kill $!
echo "PASS burn: spun for ${s}s"
poweroff -f
