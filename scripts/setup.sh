#!/usr/bin/env bash
# Sets up a machine for building and testing Domus, from nothing; idempotent.
#
#   scripts/setup.sh [--no-packages]
#
#  1. apt packages (only the missing ones; apt-get update only if needed),
#  2. Debian's cloud kernel (the guest kernel and the test host's kernel),
#     fetched with `apt-get download` and extracted into the cache,
#  3. kvm modules with CONFIG_KVM_XEN for that kernel (scripts/build-kvm-xen.sh),
#  4. the guest initramfs (busybox, tests/guest/*, xenstore-utils, the front-end
#     modules, tests/guest/*.c built static),
#  5. ${DOMUS_CACHE}/env.sh, for tests to source.
#
# Everything lands in ${DOMUS_CACHE:-$HOME/.cache/domus}, outside the work
# tree, keyed by kernel version and a hash of the inputs.  Quiet when there is
# nothing to do; DOMUS_VERBOSE=1 says what it does.
set -euo pipefail

DOMUS_PROG=setup
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$HERE/lib.sh"

NO_PACKAGES=0
case "${1:-}" in
--no-packages) NO_PACKAGES=1 ;;
"") ;;
*) die "usage: scripts/setup.sh [--no-packages]" ;;
esac

export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
progress() { echo "setup: $*" >&2; } # only for steps that do real work

PACKAGES="build-essential clang llvm qemu-system-x86 busybox-static cpio kmod libxen-dev
zlib1g-dev liblzma-dev libzstd-dev liblz4-dev lz4 libjson-c-dev liburing-dev libseccomp-dev
linux-source-6.1 xenstore-utils bc flex bison libelf-dev libssl-dev iproute2
xen-utils-common"

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

APT_UPDATED=0
apt_update_once() {
    [ "$APT_UPDATED" = 1 ] && return 0
    progress "apt-get update"
    $SUDO apt-get update -qq >/dev/null || die "apt-get update failed"
    APT_UPDATED=1
}

# One set-up at a time per cache (tests started in parallel all call us).
mkdir -p "$DOMUS_CACHE"
exec 9>"$DOMUS_CACHE/.setup.lock"
flock 9 || die "cannot lock $DOMUS_CACHE/.setup.lock"

# --- 1. packages ------------------------------------------------------------
command -v apt-get >/dev/null || die "this set-up needs a Debian-like system with apt-get"
KVER="$(resolve_cloud_kver)"
if [ -z "$KVER" ]; then
    # Fresh machine without package lists.
    [ "$NO_PACKAGES" = 1 ] && die "cannot resolve linux-image-cloud-amd64 (no apt lists?)"
    apt_update_once
    KVER="$(resolve_cloud_kver)"
    [ -n "$KVER" ] || die "apt knows no linux-image-cloud-amd64 (is this Debian 12 amd64?)"
fi

if [ "$NO_PACKAGES" = 0 ]; then
    missing=""
    for p in $PACKAGES "linux-headers-$KVER"; do
        is_installed "$p" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        apt_update_once
        # The cloud kernel version may have moved on with the update.
        KVER="$(resolve_cloud_kver)"
        missing=""
        for p in $PACKAGES "linux-headers-$KVER"; do
            is_installed "$p" || missing="$missing $p"
        done
        progress "installing:$missing"
        aptlog="$(mktemp)"
        # shellcheck disable=SC2086
        if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >"$aptlog" 2>&1; then
            tail -n 30 "$aptlog" >&2
            die "apt-get install failed for:$missing"
        fi
        rm -f "$aptlog"
    fi
    # The kvm sources must be the same upload as the kernel's headers (a new
    # kernel ABI comes with a new linux-source-6.1 that "installed" misses).
    pkgv() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
    if [ "$(pkgv linux-source-6.1)" != "$(pkgv "linux-headers-$KVER")" ]; then
        apt_update_once
        progress "upgrading linux-source-6.1 to the version of linux-headers-$KVER"
        $SUDO apt-get install -y -qq --no-install-recommends linux-source-6.1 "linux-headers-$KVER" >/dev/null 2>&1 || true
        [ "$(pkgv linux-source-6.1)" = "$(pkgv "linux-headers-$KVER")" ] ||
            echo "setup: warning: linux-source-6.1 $(pkgv linux-source-6.1) is not the version of linux-headers-$KVER ($(pkgv "linux-headers-$KVER"))" >&2
    fi
fi

# --- 2. the kernel -----------------------------------------------------------
# ${DOMUS_CACHE}/kernel/KVER/{vmlinuz,config,System.map,lib/modules/KVER/...}
KPKG="linux-image-$KVER"
KVERSION="$(apt-cache policy "$KPKG" 2>/dev/null | sed -n 's/^ *Candidate: //p')"
[ -n "$KVERSION" ] && [ "$KVERSION" != "(none)" ] || die "apt has no candidate for $KPKG"
KDIR="$DOMUS_CACHE/kernel/$KVER"
if [ "$(cat "$KDIR/.stamp" 2>/dev/null || true)" != "$KPKG=$KVERSION" ] || [ ! -f "$KDIR/vmlinuz" ]; then
    progress "fetching $KPKG $KVERSION"
    mkdir -p "$DOMUS_CACHE/kernel"
    tmp="$(mktemp -d "$DOMUS_CACHE/kernel/.fetch.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    chmod 0755 "$tmp" # apt's _apt user downloads into it
    (cd "$tmp" && apt-get download -qq "$KPKG=$KVERSION" >/dev/null 2>"$tmp/download.log") ||
        { cat "$tmp/download.log" >&2; die "apt-get download $KPKG=$KVERSION failed"; }
    deb="$(ls "$tmp"/*.deb 2>/dev/null | head -n1)"
    [ -n "$deb" ] || die "apt-get download produced no .deb"
    dpkg-deb -x "$deb" "$tmp/x" || die "dpkg-deb -x $deb failed"
    [ -f "$tmp/x/boot/vmlinuz-$KVER" ] || die "$deb has no boot/vmlinuz-$KVER"
    rm -rf "$KDIR"
    mkdir -p "$KDIR/lib/modules"
    mv "$tmp/x/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
    mv "$tmp/x/boot/config-$KVER" "$KDIR/config"
    mv "$tmp/x/boot/System.map-$KVER" "$KDIR/System.map"
    mv "$tmp/x/lib/modules/$KVER" "$KDIR/lib/modules/$KVER"
    depmod -b "$KDIR" "$KVER" || die "depmod for $KDIR failed"
    printf '%s' "$KPKG=$KVERSION" >"$KDIR/.stamp"
    rm -rf "$tmp"
    trap - EXIT
fi
grep -q '^CONFIG_XEN_PVH=y' "$KDIR/config" || die "$KPKG is not built with CONFIG_XEN_PVH"

# --- 3. kvm modules with CONFIG_KVM_XEN ----------------------------------------
KVM_MODULES="$("$HERE/build-kvm-xen.sh" --kver "$KVER")" || die "building the KVM_XEN modules failed"

# --- 4. guest initramfs --------------------------------------------------------
# Xen's front ends, and virtio's for the same initramfs under QEMU (bench/io).
GUEST_MODULES="xen-blkfront xen-netfront virtio_pci virtio_blk virtio_net"
guest_inputs=("$ROOT"/tests/guest/* "$HERE/setup.sh" "$HERE/lib.sh" "$KVER" "$(cat "$KDIR/.stamp")"
    "busybox=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || sha256sum </bin/busybox)"
    "xenstore-utils=$(dpkg-query -W -f='${Version}' xenstore-utils 2>/dev/null || echo none)"
    "gcc=$(gcc -dumpfullversion 2>/dev/null || echo none)"
    "libc=$(dpkg-query -W -f='${Version}' libc6-dev 2>/dev/null || echo none)")
GHASH="$(inputs_hash "${guest_inputs[@]}")"
GUEST_INITRD="$DOMUS_CACHE/initrd/guest-$KVER-$GHASH.cpio"
if [ ! -f "$GUEST_INITRD" ]; then
    progress "building the guest initramfs"
    mkdir -p "$DOMUS_CACHE/initrd"
    groot="$(mktemp -d "$DOMUS_CACHE/initrd/.root.XXXXXX")"
    trap 'rm -rf "$groot"' EXIT
    busybox_into "$groot"
    xenstore_utils_into "$groot"
    mkdir -p "$groot"/{proc,sys,dev,tmp,run,root,etc,tests,mnt}
    [ -f "$ROOT/tests/guest/init" ] || die "tests/guest/init missing"
    install -m 0755 "$ROOT/tests/guest/init" "$groot/init"
    for f in "$ROOT"/tests/guest/*.sh; do
        [ -e "$f" ] && install -m 0755 "$f" "$groot/tests/"
    done
    # Static C helpers (gcc, glibc's libc.a) in /usr/bin, for iobench.sh:
    # iorand (random-read IOPS), tcpstream (a bulk TCP transfer).
    for f in "$ROOT"/tests/guest/*.c; do
        gcc -std=gnu11 -O2 -Wall -Wextra -Werror -static -o "$groot/usr/bin/$(basename "$f" .c)" "$f" ||
            die "cannot build $f (gcc, libc6-dev)"
    done
    # Front ends built as modules in Debian's kernel, for block/net tests.
    for rel in $(mod_closure "$KDIR" "$KVER" $GUEST_MODULES); do
        mkdir -p "$groot/lib/modules/$KVER/$(dirname "$rel")"
        cp "$KDIR/lib/modules/$KVER/$rel" "$groot/lib/modules/$KVER/$rel"
    done
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        cp "$KDIR/lib/modules/$KVER/$f" "$groot/lib/modules/$KVER/"
    done
    depmod -b "$groot" "$KVER"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$groot/etc/passwd"
    echo 'root:x:0:' >"$groot/etc/group"
    cpio_from "$groot" "$GUEST_INITRD"
    rm -rf "$groot"
    trap - EXIT
    # Initramfs images of this kernel built from older inputs are not needed.
    find "$DOMUS_CACHE/initrd" -maxdepth 1 -name "guest-$KVER-*.cpio" ! -newer "$GUEST_INITRD" \
        ! -path "$GUEST_INITRD" -mmin +1440 -delete 2>/dev/null || true
fi

# --- 5. env.sh -----------------------------------------------------------------
ENV="$DOMUS_CACHE/env.sh"
new_env="$(cat <<EOF
# Written by scripts/setup.sh; source it.
export DOMUS_CACHE='$DOMUS_CACHE'
export DOMUS_KVER='$KVER'
export DOMUS_KERNEL='$KDIR/vmlinuz'
export DOMUS_KERNEL_MODULES_ROOT='$KDIR'
export DOMUS_GUEST_INITRD='$GUEST_INITRD'
export DOMUS_KVM_MODULES='$KVM_MODULES'
EOF
)"
if [ "$(cat "$ENV" 2>/dev/null || true)" != "$new_env" ]; then
    printf '%s\n' "$new_env" >"$ENV.tmp" && mv "$ENV.tmp" "$ENV"
fi
