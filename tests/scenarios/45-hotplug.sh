#!/bin/sh
# Hot-plug, as xl's block-attach/-detach/-list and network-attach/-detach/
# -list (tests/guest/hotplug.sh).  A guest boots with no devices; Domain 0
# block-attaches an image as xvdb (a relative path, from the client's cwd)
# and the guest reads the pattern Domain 0 wrote; network-attach gives it
# a vif with a given MAC, which it sees; block-list and network-list show
# them (connected, state 4) and the state file keeps them; bad attaches and
# detaches are refused with nothing created; block-detach and
# network-detach make them disappear in the guest, and the lists, xenstore
# and the state file are empty of them again.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
trap stop_domusd EXIT
XS="$DOMUS_RUN_DIR/xenstored/socket"
MAC=00:16:3e:00:45:01
IMG="$DOMUS_TMP/hp.img"
{ yes domus-hotplug-0123456789 | head -c 1048576; dd if=/dev/zero bs=1048576 count=7 2>/dev/null; } >"$IMG"

ip link del xenbr0 2>/dev/null
EXTRA_CMDLINE="domus.mac=$MAC" mkcfg hp hotplug 1 'on_poweroff = "destroy"'
check "hotplug: domus create with no devices" domus create "$DOMUS_TMP/hp.cfg"
domid="$(domus domid hp 2>/dev/null)"
state_file="$DOMUS_RUN_DIR/dom$domid.json"
if ! wait_log hp HP-READY 240; then
    fail "hotplug: the guest did not start (console: $(tail -n 5 "$(console_log hp)" | tr -d '\r' | tr '\n' '|'))"
    exit 0
fi
check "hotplug: block-list of a domain without disks is empty" \
    [ "$(domus block-list hp | wc -l)" = 1 ]

# refused WHAT PATTERN CMD...: CMD must fail with PATTERN on stderr.
refused() {
    _w="$1" _p="$2"; shift 2
    if "$@" >/dev/null 2>"$DOMUS_TMP/err"; then
        fail "hotplug: $_w: succeeded"
    elif grep -q -- "$_p" "$DOMUS_TMP/err"; then
        pass "hotplug: $_w refused: '$(head -n 1 "$DOMUS_TMP/err")'"
    else
        fail "hotplug: $_w: message '$(head -n 2 "$DOMUS_TMP/err" | tr '\n' '|')' does not match '$_p'"
    fi
}

# -- disk
check "hotplug: block-attach hp.img,raw,xvdb,rw (relative to the cwd)" \
    sh -c "cd '$DOMUS_TMP' && domus block-attach hp hp.img,raw,xvdb,rw"
check "hotplug: the guest saw xvdb and read the pattern" wait_log hp HP-DISK 120
row="$(domus block-list hp | awk '$1 == 51728')"
check "hotplug: block-list shows xvdb connected ($row)" sh -c \
    "echo '$row' | awk '{ exit !(\$2 == 0 && \$4 == 4 && \$5 > 0 && \$7 == \"/local/domain/0/backend/vbd/$domid/51728\") }'"
check "hotplug: the state file keeps the disk" grep -q "vdev=xvdb,access=rw,.*target=.*hp.img" "$state_file"

# -- vif
check "hotplug: network-attach mac=$MAC bridge=xenbr0" domus network-attach hp "mac=$MAC" bridge=xenbr0
check "hotplug: the guest saw eth0 with its MAC" wait_log hp HP-NET 120
row="$(domus network-list hp | awk '$1 == 0')"
check "hotplug: network-list shows vif 0 connected with $MAC ($row)" sh -c \
    "echo '$row' | awk '{ exit !(\$3 == \"$MAC\" && \$5 == 4 && \$6 > 0 && \$8 == \"/local/domain/0/backend/vif/$domid/0\") }'"
check "hotplug: tap vif$domid.0 is on xenbr0" [ -e "/sys/class/net/xenbr0/brif/vif$domid.0" ]
check "hotplug: the state file keeps the vif" grep -q "$MAC" "$state_file"
check "hotplug: the attached disk and vif in seccomp sandboxes, nothing refused" sandboxed hp 4

# -- what is refused
refused "a missing image" "missing.img: No such file" domus block-attach hp "$DOMUS_TMP/missing.img,raw,xvdc"
refused "vdev xvdb again" "vdev xvdb is already used" domus block-attach hp "$IMG,raw,xvdb,ro"
refused "a qcow2 image" "format 'qcow2' is not supported" domus block-attach hp "$IMG,qcow2,xvdc"
refused "an unknown domain" "domain 'nosuch' does not exist" domus block-attach nosuch "$IMG,raw,xvdc"
refused "the same mac again" "mac $MAC is already used" domus network-attach hp "mac=$MAC"
refused "a bad vif spec" "" domus network-attach hp "mtu=1"
refused "detaching a disk it has not" "has no disk 'xvdz'" domus block-detach hp xvdz
refused "detaching a vif it has not" "has no vif '7'" domus network-detach hp 7
refused "block-list of an unknown domain" "does not exist" domus block-list nosuch
check "hotplug: nothing created by the refusals" sh -c \
    "[ \$(domus block-list hp | wc -l) = 2 ] && [ \$(domus network-list hp | wc -l) = 2 ]"

# -- detach
t0="$(date +%s)"
check "hotplug: block-detach hp xvdb" sh -c "domus block-detach hp xvdb 2>'$DOMUS_TMP/warn'"
check "hotplug: the guest closed xvdb itself (no force: '$(cat "$DOMUS_TMP/warn")')" \
    [ ! -s "$DOMUS_TMP/warn" ]
check "hotplug: network-detach hp $MAC" sh -c "domus network-detach hp $MAC 2>'$DOMUS_TMP/warn'"
check "hotplug: the guest closed the vif itself (no force: '$(cat "$DOMUS_TMP/warn")')" \
    [ ! -s "$DOMUS_TMP/warn" ]
pass "hotplug: both detached in $(($(date +%s) - t0)) s"
check "hotplug: the guest saw xvdb and eth0 go" wait_log hp HP-GONE 120
check "hotplug: block-list is empty" [ "$(domus block-list hp | wc -l)" = 1 ]
check "hotplug: network-list is empty" [ "$(domus network-list hp | wc -l)" = 1 ]
gone() { ! XENSTORED_PATH="$XS" xenstore-read "$1" >/dev/null 2>&1; }
check "hotplug: no device nodes left in xenstore" eval \
    "gone /local/domain/0/backend/vbd/$domid && gone /local/domain/0/backend/vif/$domid &&
     gone /local/domain/$domid/device/vbd/51728 && gone /local/domain/$domid/device/vif/0"
check "hotplug: tap vif$domid.0 is gone" [ ! -e "/sys/class/net/vif$domid.0" ]
check "hotplug: the state file dropped both" sh -c \
    "grep -q '\"disks\":\[\]' '$state_file' && grep -q '\"vifs\":\[\]' '$state_file'"
check "hotplug: detaching xvdb again is refused" sh -c "! domus block-detach hp xvdb 2>/dev/null"

# -- attach again, then the domain goes with its devices
# ... in the test host a block device this time (brd's RAM disk holding the
# same bytes), which blkback opens O_DIRECT.
if [ "${DOMUS_TESTHOST:-}" = 1 ] && modprobe brd rd_nr=1 rd_size=8192 2>/dev/null && [ -b /dev/ram0 ]; then
    dd if="$IMG" of=/dev/ram0 bs=1048576 2>/dev/null
    DISK2=/dev/ram0
else
    echo "hotplug: no RAM disk (not in the test host, or no brd); the file again"
    DISK2="$IMG"
fi
check "hotplug: block-attach $DISK2 again after the detach" domus block-attach hp "$DISK2,raw,xvdb,ro"
check "hotplug: the guest read the pattern from it" wait_log hp HP-DISK2 120
check "hotplug: no persistent grants offered by default" \
    sh -c "! grep -q 'persistent grants on' '$DOMUS_LOG_DIR/domus-vm-hp.log'"
[ "$DISK2" = "$IMG" ] || check "hotplug: blkback serves /dev/ram0 with direct I/O" \
    grep -q 'vbd 51728: ring of .* io_uring direct I/O' "$DOMUS_LOG_DIR/domus-vm-hp.log"
check "hotplug: domus shutdown" domus shutdown hp
check "hotplug: the guest powered off" wait_gone hp 120
relay hp || fail "hotplug: guest lines (console: $(tail -n 5 "$(console_log hp)" | tr -d '\r' | tr '\n' '|'))"
check "hotplug: no backend nodes left in xenstore" sh -c \
    "! XENSTORED_PATH='$XS' xenstore-ls /local/domain/0/backend 2>/dev/null | grep -q '^ '"
exit 0
