#!/bin/sh
# vCPU hot-plug (issue 13): a guest with vcpus=2, maxvcpus=4 (tests/guest/
# vcpu.sh) boots with 2 of its 4 vCPUs online; domus vcpu-set 4 -> 2 -> 4
# (and -> 1 -> 4) and the guest's nproc follows (its own Xen CPU hot-plug, through
# cpu/N/availability); vcpu-list shows offline vCPUs as xl does ("-" for the
# CPU, state "--p"), and an offline vCPU's thread takes no CPU time.  xl's
# refusals: above maxvcpus, 0, more than the host's CPUs without -i.
# domus top -b: xentop's columns for it, with its disk's and vif's counters.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
BOOT=240 # seconds to boot 4 vCPUs in the TCG test host
WAIT=90  # seconds for the guest to follow a vcpu-set

# vrow N: vcpu-list's row of v4's vCPU N.
vrow() { domus vcpu-list v4 | awk -v n="$1" '$1 == "v4" && $3 == n'; }
# vtime N: vcpu-list's Time(s) of vCPU N.
vtime() { vrow "$1" | awk '{ print $6 }'; }
nproc_is() { wait_log v4 "^NPROC $1 " "$WAIT" "$2"; }
# dump: what the guest, its domus-vm and domusd said last (after a FAIL).
dump() {
    echo "--- console of v4"; tr -d '\r' <"$(console_log v4)" | tail -n 40
    echo "--- domus-vm-v4.log"; tail -n 40 "$DOMUS_LOG_DIR/domus-vm-v4.log"
    echo "--- domusd.log"; tail -n 20 "$DOMUS_LOG_DIR/domusd.log"
}
# expect_nproc N COUNT LABEL: the COUNTth "NPROC N" line comes, or FAIL and dump.
expect_nproc() {
    if nproc_is "$1" "$2"; then pass "$3 ($(last_nproc))"; else fail "$3 ($(last_nproc))"; dump; fi
}
last_nproc() { tr -d '\r' <"$(console_log v4)" | grep '^NPROC' | tail -n 1; }

IMG="$DOMUS_TMP/v4.img"
dd if=/dev/zero of="$IMG" bs=1048576 count=4 2>/dev/null
mkcfg v4 vcpu 2 'maxvcpus = 4' "disk = [ '$IMG,raw,xvdb,rw' ]" "vif = [ 'bridge=xenbr0' ]"
domus create "$DOMUS_TMP/v4.cfg" || { fail "create v4 (vcpus 2, maxvcpus 4)"; exit 1; }
pass "create v4 (vcpus 2, maxvcpus 4)"
wait_log v4 '^BOOTED' "$BOOT" || { fail "v4 did not boot ($(tail -n 3 "$(console_log v4)" | tr '\n' '|'))"; exit 1; }
check "boot: the guest has 2 CPUs online ($(last_nproc))" nproc_is 2 1
check "list: VCPUs 2" test "$(list_row v4 | awk '{ print $4 }')" = 2
# xentop's batch table: the header, then Domain-0's and v4's rows, twice.
domus top -b -i 2 -d 2 -n -x >"$DOMUS_TMP/top.out" 2>&1
cat "$DOMUS_TMP/top.out"
r="$(awk '$1 == "v4"' "$DOMUS_TMP/top.out" | tail -n 1)"
# f N: field N of v4's last row
f() { echo "$r" | awk -v n="$1" '{ print $n }'; }
check "top: header twice, as xentop's" test "$(grep -c '^      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS' "$DOMUS_TMP/top.out")" = 2
check "top: v4 -----r, MEM(k) and MAXMEM(k) 262144, VCPUS 4, NETS 1, VBDS 1: $r" \
    test "$(f 2) $(f 5) $(f 7) $(f 9) $(f 10) $(f 13)" = "-----r 262144 262144 4 1 1"
check "top: CPU(%) of the second sample is a percentage ($(f 4))" sh -c "echo '$(f 4)' | grep -Eq '^[0-9]+[.][0-9]\$'"
check "top: VBD_RD >= 8 and VBD_RSECT >= 2048 (the guest read 1 MiB): $(f 15) $(f 17)" \
    sh -c "[ '$(f 15)' -ge 8 ] && [ '$(f 17)' -ge 2048 ]"
check "top: VBD_WR >= 1 and VBD_WSECT >= 64 (it wrote 32 KiB): $(f 16) $(f 18)" \
    sh -c "[ '$(f 16)' -ge 1 ] && [ '$(f 18)' -ge 64 ]"
tx="$(grep '^Net0 ' "$DOMUS_TMP/top.out" | tail -n 1 | sed 's/.*TX: *\([0-9]*\)bytes.*/\1/')"
check "top -n: v4's vif sent bytes (ARP for its pings): TX $tx" sh -c "[ '${tx:-0}' -gt 0 ]"
check "top -x: v4's VBD line (xvdb = 51728, [ca:10])" grep -q '^VBD BlkBack 51728 \[ca:10\]  OO: ' "$DOMUS_TMP/top.out"

domus vcpu-list v4
check "vcpu-list: 4 rows" test "$(domus vcpu-list v4 | grep -c '^v4 ')" = 4
check "vcpu-list: vCPU 2 offline as xl shows it ('-' CPU, '--p')" sh -c "domus vcpu-list v4 | grep -q '^v4 .* 2     -   --p '"
check "vcpu-list: vCPU 0 online" sh -c "! domus vcpu-list v4 | grep -q '^v4 .* 0     -   --p '"
t2="$(vtime 2)" t3="$(vtime 3)"
sleep 10
d="$(awk -v a="$t2" -v b="$(vtime 2)" -v c="$t3" -v e="$(vtime 3)" 'BEGIN { printf "%.1f", (b - a) + (e - c) }')"
echo "MEASURED offline vCPUs 2 and 3 over 10 s: $d s of CPU"
check "offline vCPUs burn no host CPU (vCPUs 2+3: $d s in 10 s)" awk -v d="$d" 'BEGIN { exit !(d <= 0.3) }'

# xl's refusals.
err="$(domus vcpu-set v4 5 2>&1)"
check "vcpu-set 5 refused: $err" sh -c "! domus vcpu-set v4 5 2>/dev/null && echo '$err' | grep -q 'maxcpus is 4'"
err="$(domus vcpu-set v4 0 2>&1)"
check "vcpu-set 0 refused: $err" sh -c "! domus vcpu-set v4 0 2>/dev/null"
err="$(domus vcpu-set v4 x 2>&1)"
check "vcpu-set x refused: $err" sh -c "! domus vcpu-set v4 x 2>/dev/null"
err="$(domus vcpu-set nosuch 2 2>&1)"
check "vcpu-set of a missing domain refused: $err" sh -c "! domus vcpu-set nosuch 2 2>/dev/null"
if [ "$(nproc)" -lt 4 ]; then
    err="$(domus vcpu-set v4 4 2>&1)"
    check "vcpu-set 4 on a $(nproc)-CPU host refused without -i: $err" sh -c "! domus vcpu-set v4 4 2>/dev/null && echo '$err' | grep -q overcommmitting"
fi

domus vcpu-set -i v4 4 || fail "vcpu-set -i v4 4"
expect_nproc 4 1 "vcpu-set 4: the guest's nproc goes to 4"
check "vcpu-set 4: list VCPUs 4" test "$(list_row v4 | awk '{ print $4 }')" = 4
check "vcpu-set 4: no vCPU offline in vcpu-list" sh -c "! domus vcpu-list v4 | grep -q -- ' --p '"
domus vcpu-set v4 2 || fail "vcpu-set v4 2"
expect_nproc 2 2 "vcpu-set 2: the guest's nproc goes to 2"
check "vcpu-set 2: vCPU 3 offline in vcpu-list" sh -c "domus vcpu-list v4 | grep -q '^v4 .* 3     -   --p '"
check "vcpu-set 2: the state file says 2 online" grep -q '"online": *2' "$DOMUS_RUN_DIR/dom$(domus domid v4).json"
# A new domusd (the old one killed) adopts v4 with 2 of its 4 vCPUs online.
old="$(domusd_pid)"
kill -KILL "$old"
sleep 1
check "restarted domusd ($(domus list >/dev/null; domusd_pid), was $old): list VCPUs still 2" test "$(list_row v4 | awk '{ print $4 }')" = 2
check "restarted domusd: vCPU 3 still offline in vcpu-list" sh -c "domus vcpu-list v4 | grep -q '^v4 .* 3     -   --p '"
vl="$(domus top -b -i 1 -v | grep -A1 '^ *v4 ' | tail -n 1)"
check "top -v: the 2 online vCPUs' seconds ($vl)" sh -c "echo '$vl' | grep -Eq '^VCPUs\(sec\):  +0: +[0-9]+s +1: +[0-9]+s\$'"
domus vcpu-set --ignore-host v4 4 || fail "vcpu-set --ignore-host v4 4"
expect_nproc 4 2 "vcpu-set 4 again: the guest's nproc goes back to 4"
domus vcpu-set v4 1 || fail "vcpu-set v4 1"
expect_nproc 1 1 "vcpu-set 1: the guest's nproc goes to 1"
domus vcpu-set -i v4 4 || fail "vcpu-set -i v4 4 (third time)"
expect_nproc 4 3 "vcpu-set 4 a third time: the guest's nproc goes back to 4"
tr -d '\r' <"$(console_log v4)" | grep -E '^(NPROC|ONLINED)'
domus vcpu-list v4
domus destroy v4
check "destroy v4" wait_gone v4 30
exit 0
