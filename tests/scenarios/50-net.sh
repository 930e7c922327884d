#!/bin/sh
# Virtual networks: xen-netfront in guests against Domus's netback
# (tests/guest/net.sh).  Guest A's vif lands as tap vif<domid>.0 on bridge
# xenbr0, which Domus creates; Domain 0 takes 10.0.0.1 on the bridge; the
# guest pings it, then 64 MiB go each way over TCP (tests/guest/tcpstream.c:
# the receiver checks every byte against the pattern, both ends print FNV
# sums, compared here); guest B on the same bridge pings A and sends it
# 1 MiB with busybox nc.  Domain 0 then checks that the vifs left the bridge
# and xenstore.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap 'kill $srv_pids 2>/dev/null; stop_domusd' EXIT
MIB=${NET_MIB:-64}
XS="$DOMUS_RUN_DIR/xenstored/socket"
sum_of() { sed -n 's/.*sum=\([0-9a-f]*\).*/\1/p' | head -n 1; }

# tcpstream for Domain 0's ends, from the guest initramfs.
mkdir -p "$DOMUS_TMP/x"
(cd "$DOMUS_TMP/x" && cpio -id usr/bin/tcpstream <"$DOMUS_GUEST_INITRD" 2>/dev/null)
TCPSTREAM="$DOMUS_TMP/x/usr/bin/tcpstream"
check "net: tcpstream from the guest initramfs" [ -x "$TCPSTREAM" ]
ip link del xenbr0 2>/dev/null
"$TCPSTREAM" recv 5002 "$MIB" 400 >"$DOMUS_TMP/from-guest" 2>&1 &
srv_pids="$!"

# guest NAME IP MAC PEER ROLE: creates it with one vif on xenbr0.
guest() {
    EXTRA_CMDLINE="domus.ip=$2 domus.mac=$3 domus.peer=$4 domus.net=$5 domus.mib=$MIB" mkcfg "$1" net 1 \
        'on_poweroff = "destroy"' "vif = [ 'mac=$3, bridge=xenbr0' ]"
    check "net: domus create $1 with a vif" domus create "$DOMUS_TMP/$1.cfg"
}

# bad WHAT PATTERN VIF-LIST: create must fail with PATTERN on stderr.
bad() { refused net "$1" "$2" net "vif = [ $3 ]"; }
bad "malformed MAC" "mac" "'mac=00:16:3e:zz:00:01'"
bad "unknown key" "vif 0" "'mac=00:16:3e:00:00:01, colour=blue'"
check "net: nothing left by the refused creates" [ "$(vm_count)" = 0 ]

guest neta 10.0.0.2 00:16:3e:00:00:0a 10.0.0.1 dom0
ida="$(domus domid neta 2>/dev/null)"
check "net: Domus created bridge xenbr0" [ -d /sys/class/net/xenbr0/bridge ]
check "net: vif$ida.0 is a port of xenbr0" [ -e "/sys/class/net/xenbr0/brif/vif$ida.0" ]
ip addr add 10.0.0.1/24 dev xenbr0
check "net: guest A is listening" wait_log neta NET-LISTENING 120
sent="$("$TCPSTREAM" send 10.0.0.2 5001 "$MIB" 120 2>&1)"
check "net: Domain 0 sent $MIB MiB to guest A ($sent)" sh -c "echo '$sent' | grep -q sum="
check "net: guest A is waiting for guest B (both transfers done)" wait_log neta NET-WAITING 400
recv="$(tr -d '\r' <"$(console_log neta)" | grep '^NET-RECV' | sum_of)"
check "net: guest A's sum of what it got is Domain 0's of what it sent ($recv)" \
    [ -n "$recv" -a "$recv" = "$(echo "$sent" | sum_of)" ]
wait $srv_pids
got="$(cat "$DOMUS_TMP/from-guest")"
check "net: Domain 0 got $MIB MiB from guest A, every byte the pattern's ($got)" \
    sh -c "echo '$got' | grep -q '^mbs=.*sum='"
gsent="$(tr -d '\r' <"$(console_log neta)" | grep '^NET-SENT' | sum_of)"
check "net: Domain 0's sum of what it got is guest A's of what it sent ($gsent)" \
    [ -n "$gsent" -a "$gsent" = "$(echo "$got" | sum_of)" ]

guest netb 10.0.0.3 00:16:3e:00:00:0b 10.0.0.2 guest
check "net: guest B finished" wait_log netb NET-DONE 120
check "net: guest A finished" wait_log neta NET-DONE 60
check "net: guest A powered off" wait_gone neta 60
check "net: guest B powered off" wait_gone netb 60
relay neta || fail "net: guest A lines (console: $(tail -n 5 "$(console_log neta)" | tr -d '\r' | tr '\n' '|'))"
relay netb || fail "net: guest B lines (console: $(tail -n 5 "$(console_log netb)" | tr -d '\r' | tr '\n' '|'))"
check "net: guest A's console, xenstore ring and vif in seccomp sandboxes, nothing refused" \
    sandboxed neta 3
check "net: guest B's console, xenstore ring and vif in seccomp sandboxes, nothing refused" \
    sandboxed netb 3
check "net: the vifs left the bridge" [ -z "$(ls /sys/class/net/xenbr0/brif)" ]
check "net: no vif backend nodes left in xenstore" sh -c \
    "! XENSTORED_PATH='$XS' xenstore-ls /local/domain/0/backend/vif 2>/dev/null | grep -q ."
exit 0
