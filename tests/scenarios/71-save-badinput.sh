#!/bin/sh
# Save and restore refusing bad input (issue 10): a guest running
# tests/guest/saverest.sh is saved to a checkpoint (save -c); then restoring
# a truncated image, one with a wrong magic, another version, an unknown
# mandatory record or a corrupted byte, the checkpoint while its domain
# still runs or while the host lacks the memory must each fail with a clear
# error and create nothing; saving to a destination that cannot be created
# and to one that fills up mid-way must fail, leave no file, and the guest
# must carry on (its suspend cancelled: the hypercall returned 1).
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap 'umount "$DOMUS_TMP/small" 2>/dev/null; umount "$DOMUS_TMP/hog" 2>/dev/null; stop_domusd' EXIT
IMG="$DOMUS_TMP/disk.img" CK="$DOMUS_TMP/ck.img"
dd if=/dev/zero of="$IMG" bs=1048576 count=16 2>/dev/null

more_rounds() { # NAME N SECONDS: N more workload rounds
    _want=$(($(count_in_log "$1" '^ROUND ') + $2))
    wait_log "$1" '^ROUND ' "$3" "$_want"
}
mkcfg sb saverest 1 'on_poweroff = "destroy"' "disk = [ '$IMG,raw,xvdb,rw' ]"
check "sr bad: domus create sb" domus create "$DOMUS_TMP/sb.cfg"
check "sr bad: sb runs its workload" wait_log sb '^ROUND 2 ' 120
check "sr bad: a checkpoint to start from (save -c)" domus save -c sb "$CK"
check "sr bad: sb carries on after the checkpoint" more_rounds sb 2 60

# restore_refused WHAT IMAGE PATTERN [CONFIG]: fails with PATTERN, creates
# nothing.  With CONFIG (sb renamed sb2, so that the running sb does not
# refuse it first) the image's body is what gets checked.
restore_refused() {
    _before="$(vm_count)"
    if domus restore $4 "$2" >/dev/null 2>"$DOMUS_TMP/err"; then
        fail "sr bad: $1: domus restore succeeded"
        [ -z "$4" ] || domus destroy sb2 >/dev/null 2>&1 # the next cases' count
        return
    fi
    if grep -q -- "$3" "$DOMUS_TMP/err"; then
        pass "sr bad: $1 refused: '$(head -n 1 "$DOMUS_TMP/err")'"
    else
        fail "sr bad: $1: message '$(tr '\n' '|' <"$DOMUS_TMP/err")' does not match '$3'"
    fi
    check "sr bad: $1: nothing created" \
        sh -c "[ '$(vm_count)' = '$_before' ] && [ \"\$(domus list | wc -l)\" = 3 ]"
}
sed 's/^name = .*/name = "sb2"/' "$DOMUS_TMP/sb.cfg" >"$DOMUS_TMP/sb2.cfg"
O="$DOMUS_TMP/sb2.cfg"
size="$(stat -c %s "$CK")"
head -c $((size / 2)) "$CK" >"$DOMUS_TMP/trunc.img"
restore_refused "a truncated image" "$DOMUS_TMP/trunc.img" "truncated image" "$O"
head -c 20 "$CK" >"$DOMUS_TMP/short.img"
restore_refused "an image cut inside its header" "$DOMUS_TMP/short.img" "truncated image" "$O"
{ printf 'NOTDOMUS'; tail -c +9 "$CK"; } >"$DOMUS_TMP/magic.img"
restore_refused "a wrong magic" "$DOMUS_TMP/magic.img" "not a Domus save image" "$O"
cp "$CK" "$DOMUS_TMP/corrupt.img"
# The byte's bits flipped: writing a fixed value left the image whole when
# the byte already had it (a CI run restored such an image and failed).
_b="$(od -An -tu1 -j $((size / 2)) -N1 "$CK" | tr -d ' ')"
printf "\\$(printf %o $((255 - _b)))" |
    dd of="$DOMUS_TMP/corrupt.img" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
check "sr bad: the corrupted image differs from the checkpoint" sh -c "! cmp -s '$CK' '$DOMUS_TMP/corrupt.img'"
restore_refused "a corrupted byte" "$DOMUS_TMP/corrupt.img" "checksum mismatch\\|pfn" "$O"
{ head -c 8 "$CK"; printf '\002\000\000\000'; tail -c +13 "$CK"; } >"$DOMUS_TMP/version.img"
restore_refused "another version" "$DOMUS_TMP/version.img" "save image version 2, this Domus reads version 1" "$O"
# The first record follows the header: 24 bytes, then the config (length at
# byte 16) padded to 8.  Its type becomes 0x7f7f, mandatory and unknown.
cfg_len="$(od -An -tu4 -j16 -N4 "$CK" | tr -d ' ')"
cp "$CK" "$DOMUS_TMP/unknown.img"
printf '\177\177\000\000' |
    dd of="$DOMUS_TMP/unknown.img" bs=1 seek=$((24 + (cfg_len + 7) / 8 * 8)) conv=notrunc 2>/dev/null
restore_refused "an unknown mandatory record" "$DOMUS_TMP/unknown.img" "unknown mandatory record type 32639" "$O"
# Too little host memory: a tmpfs file takes all but 160 MiB of what the
# host has available, less than the image's 256 MiB plus domusd's 64 MiB
# reserve (and enough for the running guest meanwhile).
mkdir -p "$DOMUS_TMP/hog"
avail_mib=$(($(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo) / 1024))
if mount -t tmpfs -o size=${avail_mib}m tmpfs "$DOMUS_TMP/hog"; then
    dd if=/dev/zero of="$DOMUS_TMP/hog/x" bs=1M count=$((avail_mib - 160)) 2>/dev/null
    restore_refused "too little host memory" "$CK" "memory: 256 MiB requested, host has [0-9]* MiB available" "$O"
    umount "$DOMUS_TMP/hog"
else
    fail "sr bad: cannot mount a tmpfs to take the host's memory"
fi
restore_refused "the image of a domain that runs" "$CK" "domain 'sb' already exists"
restore_refused "a missing image" "$DOMUS_TMP/none.img" "No such file"

# save_refused WHAT DEST PATTERN: fails with PATTERN, no file, guest runs on.
save_refused() {
    if domus save sb "$2" >/dev/null 2>"$DOMUS_TMP/err"; then
        fail "sr bad: $1: domus save succeeded"
        return
    fi
    if grep -q -- "$3" "$DOMUS_TMP/err"; then
        pass "sr bad: $1 refused: '$(head -n 1 "$DOMUS_TMP/err")'"
    else
        fail "sr bad: $1: message '$(tr '\n' '|' <"$DOMUS_TMP/err")' does not match '$3'"
    fi
    check "sr bad: $1: no file left" [ ! -e "$2" ]
    check "sr bad: $1: the guest carries on" more_rounds sb 2 60
}
save_refused "a destination in a missing directory" "$DOMUS_TMP/none/x.img" \
    "cannot create '.*': No such file"
mkdir -p "$DOMUS_TMP/small"
if mount -t tmpfs -o size=1m tmpfs "$DOMUS_TMP/small"; then
    save_refused "a destination that fills up" "$DOMUS_TMP/small/x.img" \
        "No space left on device"
    umount "$DOMUS_TMP/small"
else
    fail "sr bad: cannot mount a 1 MiB tmpfs"
fi
check "sr bad: the checkpoint still restores after the original is destroyed" \
    sh -c "domus destroy sb && domus restore '$CK'"
check "sr bad: the restored guest goes on" more_rounds sb 2 60
check "sr bad: no round read a bad pattern" [ "$(count_in_log sb 'disk=bad')" = 0 ]
check "sr bad: the clock never went back" [ "$(count_in_log sb '^FAIL ')" = 0 ]
domus destroy sb >/dev/null 2>&1
exit 0
