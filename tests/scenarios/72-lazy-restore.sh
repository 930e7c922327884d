#!/bin/sh
# Lazy restore (domus restore --lazy): the guest runs before its memory is
# read; pages come from the image when first touched (userfaultfd) and a
# background fill brings in the rest, checking the image's checksum.
# A 2-vCPU guest with a disk and a vif runs tests/guest/saverest.sh (a
# checksummed pattern written to xvdb every round, the clock checked
# monotonic, Domain 0 pinged); it is saved and restored lazily twice (the
# second save is of a lazily restored guest), and the workload must go on:
# every round reads its pattern back, reaches Domain 0, the clock never goes
# back, no I/O error.  domus-vm must report the fill complete.  Then an
# image with one byte of page data flipped: the lazy restore starts it (the
# pages are not read before), the fill finds the checksum mismatch and the
# domain is destroyed with that error in domus-vm's log.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap 'stop_domusd' EXIT
IMG="$DOMUS_TMP/disk.img"
dd if=/dev/zero of="$IMG" bs=1048576 count=16 2>/dev/null

rounds() { count_in_log "$1" '^ROUND '; }
more_rounds() {
    _want=$(($(rounds "$1") + $2))
    wait_log "$1" '^ROUND ' "$3" "$_want"
}
log_lines() { tr -d '\r' <"$(console_log "$1")" | wc -l; }
rounds_after() { tr -d '\r' <"$(console_log "$1")" | tail -n "+$(($2 + 1))" | grep '^ROUND '; }
last_round() { tr -d '\r' <"$(console_log "$1")" | grep '^ROUND ' | tail -n 1; }
vmlog() { echo "$DOMUS_LOG_DIR/domus-vm-$1.log"; }
diag() {
    tail -n 15 "$(vmlog "$1")" 2>/dev/null | sed 's/^/DIAG vm: /'
    tr -d '\r' <"$(console_log "$1")" 2>/dev/null | tail -n 25 | sed 's/^/DIAG console: /'
}
# wait_file_grep FILE PATTERN SECONDS
wait_file_grep() {
    _i=0
    while [ "$_i" -lt "$3" ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 1
        _i=$((_i + 1))
    done
    return 1
}

# lazy_cycle NAME LABEL: save, restore --lazy; 3 more rounds within 60 s.
lazy_cycle() {
    _img="$DOMUS_TMP/$1.img" _t0="$(date +%s)"
    if ! domus save "$1" "$_img" 2>"$DOMUS_TMP/err"; then
        fail "lazy $2: domus save: $(tr '\n' '|' <"$DOMUS_TMP/err")"
        diag "$1"
        return 1
    fi
    _t1="$(date +%s)"
    pass "lazy $2: saved ($(($(stat -c %s "$_img") >> 20)) MiB, $((_t1 - _t0)) s)"
    _mark="$(log_lines "$1")"
    _vmmark="$(wc -l <"$(vmlog "$1")" 2>/dev/null || echo 0)"
    if ! domus restore --lazy "$_img" 2>"$DOMUS_TMP/err"; then
        fail "lazy $2: domus restore --lazy: $(tr '\n' '|' <"$DOMUS_TMP/err")"
        return 1
    fi
    if more_rounds "$1" 3 60; then
        pass "lazy $2: restored lazily ($(($(date +%s) - _t1)) s), the workload goes on"
    else
        fail "lazy $2: restored lazily, but the workload does not go on"
        diag "$1"
    fi
    _after="$(rounds_after "$1" "$_mark")"
    check "lazy $2: every round since read its pattern back" \
        sh -c "[ -n '$_after' ] && ! echo '$_after' | grep -qv 'disk=ok'"
    check "lazy $2: the guest reaches Domain 0 again" \
        sh -c "echo '$_after' | tail -n 1 | grep -q 'net=ok'"
    if wait_file_grep "$(vmlog "$1")" 'lazy restore: every page in' 60; then
        pass "lazy $2: the fill completed ($(grep 'lazy restore: every page in' "$(vmlog "$1")" | tail -n 1 | sed 's/.*every page in //'))"
    else
        fail "lazy $2: domus-vm does not report the fill complete"
        diag "$1"
    fi
    check "lazy $2: the log of this restore says it was lazy" \
        sh -c "tail -n +$((_vmmark + 1)) '$(vmlog "$1")' | grep -q 'lazy restore'"
}

clean() {
    check "lazy $1: the clock never went back" [ "$(count_in_log "$1" '^FAIL ')" = 0 ]
    check "lazy $1: no round read a bad pattern" [ "$(count_in_log "$1" 'disk=bad')" = 0 ]
    check "lazy $1: no I/O error in the guest's kernel log ($(last_round "$1"))" \
        sh -c "echo '$(last_round "$1")' | grep -q 'ioerr=0\$'"
}

ip link del xenbr0 2>/dev/null
EXTRA_CMDLINE="domus.ip=10.0.0.2 domus.peer=10.0.0.1" \
    mkcfg lz saverest 2 'on_poweroff = "destroy"' "disk = [ '$IMG,raw,xvdb,rw' ]" \
    "vif = [ 'mac=00:16:3e:00:00:2b, bridge=xenbr0' ]"
check "lazy: domus create lz (2 vCPUs, a disk, a vif)" domus create "$DOMUS_TMP/lz.cfg"
ip addr add 10.0.0.1/24 dev xenbr0 2>/dev/null
check "lazy: lz runs its workload" wait_log lz '^ROUND 2 ' 120
check "lazy: the guest reaches Domain 0" wait_log lz 'net=ok' 60
lazy_cycle lz "cycle 1"
lazy_cycle lz "cycle 2"
clean lz

# ---- a byte of page data flipped: found by the fill, the domain destroyed ----
if domus save lz "$DOMUS_TMP/bad.img" 2>"$DOMUS_TMP/err"; then
    pass "lazy corrupt: saved"
else
    fail "lazy corrupt: domus save: $(tr '\n' '|' <"$DOMUS_TMP/err")"
fi
size="$(stat -c %s "$DOMUS_TMP/bad.img")"
off=$((size / 2))
b="$(dd if="$DOMUS_TMP/bad.img" bs=1 skip="$off" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')"
printf "$(printf '\\%03o' $(((b + 1) % 256)))" |
    dd of="$DOMUS_TMP/bad.img" bs=1 seek="$off" conv=notrunc 2>/dev/null
check "lazy corrupt: eager restore refuses the image (checksum)" \
    sh -c "! domus restore '$DOMUS_TMP/bad.img' 2>'$DOMUS_TMP/err' && grep -q 'checksum mismatch' '$DOMUS_TMP/err'"
_vmmark="$(wc -l <"$(vmlog lz)" 2>/dev/null || echo 0)"
domus restore --lazy "$DOMUS_TMP/bad.img" >/dev/null 2>"$DOMUS_TMP/err"
_i=0
while [ "$_i" -lt 60 ] && domus list | awk '{print $1}' | grep -qx lz; do
    sleep 1
    _i=$((_i + 1))
done
check "lazy corrupt: the lazily restored domain is destroyed ($_i s)" \
    sh -c "! domus list | awk '{print \$1}' | grep -qx lz"
check "lazy corrupt: domus-vm says why ($(tail -n +$((_vmmark + 1)) "$(vmlog lz)" | grep -m 1 'lazy restore' | cut -c 1-200))" \
    sh -c "tail -n +$((_vmmark + 1)) '$(vmlog lz)' | grep -q 'lazy restore.*checksum mismatch.*destroyed'"
check "lazy: no domus-vm left" [ "$(vm_count)" = 0 ]
exit 0
