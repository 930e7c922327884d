#!/usr/bin/env bash
# Sets up a machine for building and testing Domus, from nothing; idempotent.
#
#   scripts/setup.sh [--no-packages]
#
#  1. apt packages (only the missing ones; apt-get update only if needed),
#  2. Debian's kernels, fetched with `apt-get download` and extracted into the
#     cache: 6.1 cloud (Debian 12's; the main guest kernel, and the test
#     host's with DOMUS_TESTHOST_KERNEL=6.1) and the newest 6.12 cloud
#     (Debian 13's series; a second guest kernel, and the default test host's),
#  3. KVM's Xen support: the default 6.12 test host has it in its stock
#     kvm.ko (CONFIG_KVM_XEN=y) and nothing is built; for a 6.1 test host
#     (DOMUS_TESTHOST_KERNEL=6.1), kvm modules built with it from
#     linux-source-6.1 (scripts/build-kvm-xen.sh).  On a host with vmx/svm, /dev/kvm
#     is asked for KVM_CAP_XEN_HVM and `make setup-kvm` is suggested where
#     it lacks it,
#  3b. the test host's emulator: the installed QEMU, or with
#     DOMUS_TESTHOST_QEMU=backports bookworm-backports' QEMU, fetched and
#     unpacked into the cache,
#  4. the guest initramfs (busybox, tests/guest/*, xenstore-utils, the front-end
#     modules of both guest kernels, tests/guest/*.c built static),
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

PACKAGES="build-essential clang llvm qemu-system-x86 busybox-static cpio kmod xz-utils libxen-dev
zlib1g-dev liblzma-dev libzstd-dev liblz4-dev lz4 libjson-c-dev liburing-dev libseccomp-dev
xenstore-utils iproute2 xen-utils-common"
# Which kernel the test host boots: 6.12 (stock KVM_XEN, nothing built; the
# default) or 6.1 (kvm modules built with KVM_XEN from linux-source-6.1).
TH_SERIES="${DOMUS_TESTHOST_KERNEL:-6.12}"
case "$TH_SERIES" in 6.12|6.1) ;; *) die "DOMUS_TESTHOST_KERNEL must be 6.12 or 6.1, not '$TH_SERIES'" ;; esac
# Building kvm modules for a 6.1 test host needs the sources and a kernel
# build's tools.
[ "$TH_SERIES" = 6.12 ] || PACKAGES="$PACKAGES linux-source-6.1 bc flex bison libelf-dev libssl-dev"

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
K612="$(resolve_612_kernel)"
if [ -z "$K612" ] && [ "$NO_PACKAGES" = 0 ]; then
    apt_update_once
    K612="$(resolve_612_kernel)"
fi
[ -n "$K612" ] || die "apt knows no linux-image-6.12.*+deb12-cloud-amd64-unsigned (apt-get update?)"
KPKG612="${K612%% *}" KVER612="${K612#* }"

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
    if [ "$TH_SERIES" = 6.1 ] && [ "$(pkgv linux-source-6.1)" != "$(pkgv "linux-headers-$KVER")" ]; then
        apt_update_once
        progress "upgrading linux-source-6.1 to the version of linux-headers-$KVER"
        $SUDO apt-get install -y -qq --no-install-recommends linux-source-6.1 "linux-headers-$KVER" >/dev/null 2>&1 || true
        [ "$(pkgv linux-source-6.1)" = "$(pkgv "linux-headers-$KVER")" ] ||
            echo "setup: warning: linux-source-6.1 $(pkgv linux-source-6.1) is not the version of linux-headers-$KVER ($(pkgv "linux-headers-$KVER"))" >&2
    fi
fi

# --- 2. the kernels -------------------------------------------------------------
# fetch_kernel PKG KVER: ${DOMUS_CACHE}/kernel/KVER/{vmlinuz,config,System.map,
# lib/modules/KVER/...} from Debian's package PKG (modules as shipped: .ko or
# .ko.xz; modules_into unpacks what it copies).  Prints the directory.
fetch_kernel() {
    local pkg="$1" kver="$2" version kdir tmp deb
    version="$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')"
    [ -n "$version" ] && [ "$version" != "(none)" ] || die "apt has no candidate for $pkg"
    kdir="$DOMUS_CACHE/kernel/$kver"
    if [ "$(cat "$kdir/.stamp" 2>/dev/null || true)" != "$pkg=$version" ] || [ ! -f "$kdir/vmlinuz" ]; then
        progress "fetching $pkg $version"
        mkdir -p "$DOMUS_CACHE/kernel"
        tmp="$(mktemp -d "$DOMUS_CACHE/kernel/.fetch.XXXXXX")"
        chmod 0755 "$tmp" # apt's _apt user downloads into it
        (cd "$tmp" && apt-get download -qq "$pkg=$version" >/dev/null 2>"$tmp/download.log") ||
            { cat "$tmp/download.log" >&2; rm -rf "$tmp"; die "apt-get download $pkg=$version failed"; }
        deb="$(ls "$tmp"/*.deb 2>/dev/null | head -n1)"
        [ -n "$deb" ] || die "apt-get download produced no .deb"
        dpkg-deb -x "$deb" "$tmp/x" || die "dpkg-deb -x $deb failed"
        [ -f "$tmp/x/boot/vmlinuz-$kver" ] || die "$deb has no boot/vmlinuz-$kver"
        rm -rf "$kdir"
        mkdir -p "$kdir/lib/modules"
        mv "$tmp/x/boot/vmlinuz-$kver" "$kdir/vmlinuz"
        mv "$tmp/x/boot/config-$kver" "$kdir/config"
        mv "$tmp/x/boot/System.map-$kver" "$kdir/System.map"
        mv "$tmp/x/lib/modules/$kver" "$kdir/lib/modules/$kver"
        depmod -b "$kdir" "$kver" || die "depmod for $kdir failed"
        printf '%s' "$pkg=$version" >"$kdir/.stamp"
        rm -rf "$tmp"
    fi
    grep -q '^CONFIG_XEN_PVH=y' "$kdir/config" || die "$pkg is not built with CONFIG_XEN_PVH"
    echo "$kdir"
}
KDIR="$(fetch_kernel "linux-image-$KVER" "$KVER")"
KDIR612="$(fetch_kernel "$KPKG612" "$KVER612")"

# --- 3. KVM's Xen support --------------------------------------------------------
# The test host's kvm modules: the 6.12 package's own (its config says
# CONFIG_KVM_XEN=y), or for a 6.1 test host ours, built with it.
KVM_MODULES=""
if [ "$TH_SERIES" = 6.12 ]; then
    TH_KVER="$KVER612" TH_KDIR="$KDIR612"
    grep -q '^CONFIG_KVM_XEN=y' "$TH_KDIR/config" ||
        die "$KPKG612 is not built with CONFIG_KVM_XEN=y; try DOMUS_TESTHOST_KERNEL=6.1"
else
    TH_KVER="$KVER" TH_KDIR="$KDIR"
    KVM_MODULES="$("$HERE/build-kvm-xen.sh" --kver "$KVER")" || die "building the KVM_XEN modules failed"
fi
# A host with hardware virtualization runs the tests natively: its own KVM
# must have the Xen support (said once per change, not fatal: unit and
# protocol tests need no KVM).
if grep -qwE 'vmx|svm' /proc/cpuinfo; then
    kvm_state="$DOMUS_CACHE/native-kvm.txt"
    kvm_now="$(uname -r) $("$HERE/kvm-xen.sh" check >/dev/null 2>&1 && echo xen || echo no-xen)"
    if [ "$(cat "$kvm_state" 2>/dev/null || true)" != "$kvm_now" ]; then
        echo "$kvm_now" >"$kvm_state"
        case "$kvm_now" in
        *" xen") progress "this host's KVM has Xen support (KVM_CAP_XEN_HVM): nothing to build" ;;
        *) progress "warning: this host's KVM lacks Xen support (KVM_CAP_XEN_HVM); scenarios need 'make setup-kvm'" ;;
        esac
    fi
fi

# --- 3b. the test host's emulator ----------------------------------------------
# The test host is QEMU's TCG emulating an AMD CPU with SVM and NPT: by
# default the installed QEMU (bookworm's 7.2).  DOMUS_TESTHOST_QEMU=backports
# runs the QEMU of bookworm-backports (10.0) instead, fetched with `apt-get
# download` through a source list and package lists of its own in the cache
# (the machine's apt configuration is not touched) and unpacked there;
# nothing is installed.  It is not the default: its test host triple faulted
# in 61-rogue three runs of three (7.2's has not) and once in 76-migrate-net
# (README, "How the tests run").  The QEMU inside the test host (the
# benchmarks' peer) is always the installed one.
QEMU_MODE="${DOMUS_TESTHOST_QEMU:-system}"
case "$QEMU_MODE" in system|backports) ;; *) die "DOMUS_TESTHOST_QEMU must be backports or system, not '$QEMU_MODE'" ;; esac
BPO_MIRROR="${DOMUS_BACKPORTS_MIRROR:-http://deb.debian.org/debian}"
QEMU_PKGS="qemu-system-x86 qemu-system-data seabios"
# bpo_apt ARGS...: apt-get with the backports source list and lists in the cache.
bpo_apt() {
    local a="$DOMUS_CACHE/qemu/apt" tool="$1"
    shift
    "$tool" -o Dir::Etc::sourcelist="$a/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" -o APT::Get::List-Cleanup=0 "$@"
}
# fetch_qemu: ${DOMUS_CACHE}/qemu/VERSION/usr/... from the backports packages
# (once; remove the directory to fetch anew).  Prints the directory; says
# why and fails where backports cannot be had (the caller falls back to the
# installed QEMU).
fetch_qemu() {
    local q="$DOMUS_CACHE/qemu" cur p v qv="" specs="" tmp deb
    cur="$(cat "$q/current" 2>/dev/null || true)"
    if [ -n "$cur" ] && [ -x "$q/$cur/usr/bin/qemu-system-x86_64" ]; then
        echo "$q/$cur"
        return 0
    fi
    progress "fetching QEMU from bookworm-backports (the test host's emulator)"
    mkdir -p "$q/apt/lists/partial" "$q/apt/cache/archives/partial"
    echo "deb $BPO_MIRROR bookworm-backports main" >"$q/apt/sources.list"
    bpo_apt apt-get update -qq >/dev/null 2>&1 || { warn "apt-get update of bookworm-backports failed ($BPO_MIRROR)"; return 1; }
    for p in $QEMU_PKGS; do
        v="$(bpo_apt apt-cache madison "$p" | awk -F' [|] ' '/backports/ {print $2; exit}')"
        [ -n "$v" ] || { warn "bookworm-backports has no $p"; return 1; }
        specs="$specs $p=$v"
        [ "$p" != qemu-system-x86 ] || qv="$(echo "$v" | tr ':~+' '___')" # the directory's name
    done
    tmp="$(mktemp -d "$q/.fetch.XXXXXX")"
    chmod 0755 "$tmp" # apt's _apt user downloads into it
    # shellcheck disable=SC2086
    (cd "$tmp" && bpo_apt apt-get download -qq $specs >/dev/null 2>"$tmp/download.log") ||
        { cat "$tmp/download.log" >&2; rm -rf "$tmp"; warn "apt-get download$specs failed"; return 1; }
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x" || { rm -rf "$tmp"; return 1; }; done
    "$tmp/x/usr/bin/qemu-system-x86_64" --version >/dev/null 2>&1 ||
        { warn "the backports QEMU does not run here"; rm -rf "$tmp"; return 1; }
    rm -rf "${q:?}/$qv"
    mv "$tmp/x" "$q/$qv"
    rm -rf "$tmp"
    echo "$qv" >"$q/current"
    echo "$q/$qv"
}
TH_QEMU="" TH_QEMU_DATA=""
if [ "$QEMU_MODE" = backports ]; then
    if qroot="$(fetch_qemu)"; then
        TH_QEMU="$qroot/usr/bin/qemu-system-x86_64"
        TH_QEMU_DATA="$qroot/usr/share/qemu:$qroot/usr/share/seabios"
    else
        warn "the test host runs under the installed QEMU ($(qemu-system-x86_64 --version 2>/dev/null | head -n 1))"
    fi
fi

# --- 4. guest initramfs --------------------------------------------------------
# Xen's front ends, and virtio's for the same initramfs under QEMU (bench/io;
# bench/density: its balloon, on virtio-mmio or virtio-pci).
GUEST_MODULES="xen-blkfront xen-netfront virtio_pci virtio_blk virtio_net virtio_mmio virtio_balloon"
guest_inputs=("$ROOT"/tests/guest/* "$HERE/setup.sh" "$HERE/lib.sh" "$KVER" "$(cat "$KDIR/.stamp")"
    "$KVER612" "$(cat "$KDIR612/.stamp")"
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
    # Front ends built as modules in Debian's kernels, for block/net tests:
    # /init's modprobe takes the tree of the kernel it runs under.
    modules_into "$groot" "$KDIR" "$KVER" $GUEST_MODULES
    modules_into "$groot" "$KDIR612" "$KVER612" $GUEST_MODULES
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
# Written by scripts/setup.sh; source it.  DOMUS_KERNEL is the main guest
# kernel (6.1), DOMUS_KERNEL_612 the second; the test host boots
# DOMUS_TESTHOST_KDIR/vmlinuz with DOMUS_KVM_MODULES' kvm modules, or its own
# where that is empty, under DOMUS_TESTHOST_QEMU_BIN (firmware from the
# DOMUS_TESTHOST_QEMU_DATA directories), or the installed QEMU where empty.
export DOMUS_CACHE='$DOMUS_CACHE'
export DOMUS_KVER='$KVER'
export DOMUS_KERNEL='$KDIR/vmlinuz'
export DOMUS_KERNEL_MODULES_ROOT='$KDIR'
export DOMUS_GUEST_INITRD='$GUEST_INITRD'
export DOMUS_KERNEL_612='$KDIR612/vmlinuz'
export DOMUS_KVER_612='$KVER612'
export DOMUS_TESTHOST_SERIES='$TH_SERIES'
export DOMUS_TESTHOST_KVER='$TH_KVER'
export DOMUS_TESTHOST_KDIR='$TH_KDIR'
export DOMUS_KVM_MODULES='$KVM_MODULES'
export DOMUS_TESTHOST_QEMU_BIN='$TH_QEMU'
export DOMUS_TESTHOST_QEMU_DATA='$TH_QEMU_DATA'
EOF
)"
if [ "$(cat "$ENV" 2>/dev/null || true)" != "$new_env" ]; then
    printf '%s\n' "$new_env" >"$ENV.tmp" && mv "$ENV.tmp" "$ENV"
fi
