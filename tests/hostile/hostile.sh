#!/bin/sh
# The hostile guest of tests/scenarios/60-hostile.sh (appended to the guest
# initramfs as /tests/hostile.sh, with /hostile.ko): loads the module that
# floods Domain 0 with hostile hypercalls, then writes hvc0 flat out for
# 20 s, then powers off.  Its lines go to the console log.
echo "HOSTILE START"
insmod /hostile.ko
echo "HOSTILE MODULE rc=$?"
dmesg | grep 'hostile: unknown' | tail -n 1
# The console flood: lines as fast as the shell makes them.
end=$(($(cut -d. -f1 /proc/uptime) + 20))
while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
    i=0
    while [ $i -lt 200 ]; do
        echo "flood flood flood flood flood flood flood flood flood flood flood flood $i"
        i=$((i + 1))
    done
done
echo "HOSTILE DONE"
poweroff -f
