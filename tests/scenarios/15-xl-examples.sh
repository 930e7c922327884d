#!/bin/sh
# Configs from a Xen host: Debian's example configs (xen-utils-common's
# /etc/xen/xlexample.pvhlinux and xlexample.pvlinux, copied into the test
# host by run.sh) with only the kernel, ramdisk and disk paths changed boot
# as PVH guests.  `domus create` warns about pvlinux's missing type (PV:
# booted as PVH) and not about pvhlinux; a key xl ignores is a warning.  The
# domain's generated UUID agrees across `domus list -v`, `domus list -l` and
# xenstore's /vm/<uuid> and /local/domain/N/vm (as libxl writes them), which
# go with the domain and survive a domusd restart; `domus uptime` lists it.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib-toolstack.sh"
DOMUS_XENSTORE=1
XENSTORED_PATH="$DOMUS_RUN_DIR/xenstored/socket"
export DOMUS_XENSTORE XENSTORED_PATH
trap stop_domusd EXIT
BOOT=240

xs_read() { xenstore-read "$1" 2>/dev/null; }

# example KIND EXTRA-LINE: creates xlexample.KIND with its paths changed (and
# EXTRA-LINE appended when given), waits for the guest's shell prompt line.
example() {
    _src="/etc/xen/xlexample.$1" _cfg="$DOMUS_TMP/xlexample.$1"
    if [ ! -f "$_src" ]; then
        fail "$1: $_src is not in the test host (xen-utils-common missing on the machine?)"
        return 1
    fi
    dd if=/dev/zero of="$DOMUS_TMP/$1.img" bs=1M count=16 2>/dev/null
    sed -e "s|^kernel = .*|kernel = \"$DOMUS_GUEST_KERNEL\"|" \
        -e "s|'/dev/[^,]*guest-volume,|'$DOMUS_TMP/$1.img,|" "$_src" >"$_cfg"
    echo "ramdisk = \"$DOMUS_GUEST_INITRD\"" >>"$_cfg"
    [ -n "$2" ] && echo "$2" >>"$_cfg"
    echo "$1: changed from $_src: $(diff "$_src" "$_cfg" | grep '^[<>]' | tr '\n' '|')"
    if ! domus create "$_cfg" 2>"$DOMUS_TMP/$1.err"; then
        fail "$1: domus create: $(tr '\n' '|' <"$DOMUS_TMP/$1.err")"
        return 1
    fi
    pass "$1: domus create (stderr: $(grep -v '^Parsing' "$DOMUS_TMP/$1.err" | tr '\n' '|'))"
    check "$1: the guest booted (its init's shell line on hvc0)" \
        wait_log "example.$1" 'no domus.test=; shell on' "$BOOT"
}

uuid_of() { domus list -v "$1" | awk -v n="$1" '$1 == n { print $7 }'; }

# views NAME [restart]: list -v's UUID, list -l and xenstore agree; uptime
# lists NAME; with restart, domusd is killed first and the domain adopted by
# the next one keeps its generated UUID.
views() {
    _id="$(domus domid "$1")"
    _uuid="$(uuid_of "$1")"
    if [ "$2" = restart ]; then
        kill -KILL "$(domusd_pid)"
        sleep 1
        check "$1: adopted by a new domusd with the same UUID ($_uuid)" test "$(uuid_of "$1")" = "$_uuid"
    fi
    echo "$1: list -v: $(domus list -v "$1" | tail -n 1)"
    check "$1: list -v shows a v4 UUID ($_uuid)" \
        sh -c "echo '$_uuid' | grep -q '^[0-9a-f]\{8\}-[0-9a-f]\{4\}-4[0-9a-f]\{3\}-[89ab][0-9a-f]\{3\}-[0-9a-f]\{12\}$'"
    check "$1: /local/domain/$_id/vm is /vm/$_uuid" test "$(xs_read "/local/domain/$_id/vm")" = "/vm/$_uuid"
    check "$1: /vm/$_uuid/name and uuid" test "$(xs_read "/vm/$_uuid/name")/$(xs_read "/vm/$_uuid/uuid")" = "$1/$_uuid"
    check "$1: /vm/$_uuid/start_time is seconds.hundredths" \
        sh -c "xenstore-read /vm/$_uuid/start_time 2>/dev/null | grep -q '^[0-9]*\.[0-9][0-9]$'"
    domus list -l "$1" >"$DOMUS_TMP/$1.json"
    check "$1: list -l has its domid, uuid and disk" sh -c \
        "grep -q '\"domid\": *$_id' '$DOMUS_TMP/$1.json' && grep -q '\"uuid\": *\"$_uuid\"' '$DOMUS_TMP/$1.json' && grep -q '\"pdev_path\": *\"$DOMUS_TMP/' '$DOMUS_TMP/$1.json'"
    check "$1: uptime lists it" sh -c "domus uptime '$1' | grep -q '^$1 *$_id '"
    domus destroy "$1"
    check "$1: destroyed" wait_gone "$1" 10
    check "$1: /vm/$_uuid removed with it" test -z "$(xs_read "/vm/$_uuid/name")"
}

if example pvhlinux; then
    check "pvhlinux: no warning" test -z "$(grep '^warning' "$DOMUS_TMP/pvhlinux.err")"
    views example.pvhlinux
fi
if example pvlinux 'pool = "Pool-0"'; then
    check "pvlinux: warned that it boots as PVH" grep -q "^warning: .*no 'type' given: booting as PVH" "$DOMUS_TMP/pvlinux.err"
    check "pvlinux: warned about the ignored key pool" grep -q "^warning: .*:[0-9]*: ignoring key 'pool'" "$DOMUS_TMP/pvlinux.err"
    views example.pvlinux restart
fi
check "no domus-vm process left" [ "$(vm_count)" = 0 ]
check "no per-domain files left in the run dir" [ -z "$(run_leftovers)" ]
