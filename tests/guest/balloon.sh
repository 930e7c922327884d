#!/bin/sh
# Ballooning (scenario 65-balloon): prints "MEMTOTAL <kB>" whenever the
# guest's MemTotal changes (the xen-balloon driver moves it to
# memory/target).  At boot it touches all its free memory (memtouch) so that
# Domain 0 backs it (unless domus.balloon_touch_boot=0), then says TOUCHED;
# once MemTotal has fallen below
# domus.balloon_low MiB and come back above domus.balloon_high MiB, it
# touches all its free memory again and powers off.
low=256 high=450 touch_boot=1
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    domus.balloon_touch_boot=*) touch_boot="${arg#domus.balloon_touch_boot=}" ;;
    domus.balloon_low=*) low="${arg#domus.balloon_low=}" ;;
    domus.balloon_high=*) high="${arg#domus.balloon_high=}" ;;
    esac
done
kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
# touch_all: memtouch of what MemAvailable offers, less a margin.
touch_all() {
    mib=$(( $(kb MemAvailable) / 1024 - 32 ))
    if memtouch "$mib"; then echo "PASS balloon: $1: touched $mib MiB"
    else echo "FAIL balloon: $1: memtouch $mib MiB"; fi
    echo "TOUCHED $1 $mib"
}
echo "BOOTED MemTotal $(kb MemTotal) kB"
# (not while the balloon is still giving back what lies above memory=)
[ "$touch_boot" = 1 ] && touch_all boot
last="" seen_low=""
i=0
while [ "$i" -lt 600 ]; do
    t="$(kb MemTotal)"
    [ "$t" != "$last" ] && echo "MEMTOTAL $t" && last="$t"
    [ "$t" -lt $((low * 1024)) ] && seen_low=1
    if [ -n "$seen_low" ] && [ "$t" -gt $((high * 1024)) ]; then
        touch_all back
        echo "PASS balloon: MemTotal fell below $low MiB and came back to $((t / 1024)) MiB"
        sleep 5 # Domain 0 looks at the domain once more
        poweroff -f
    fi
    sleep 1; i=$((i + 1))
done
echo "FAIL balloon: MemTotal did not go below $low MiB and back above $high MiB in 600 s"
poweroff -f
