#!/usr/bin/env bash
# Builds kvm.ko, kvm-amd.ko and kvm-intel.ko with CONFIG_KVM_XEN out of tree,
# from Debian's linux-source-X.Y (X.Y of KVER; 6.1 on Debian 12) against
# linux-headers-KVER.
#
#   scripts/build-kvm-xen.sh [--kver KVER] [--out DIR] [--load] [--force]
#
# KVER defaults to the version linux-image-cloud-amd64 depends on (the test
# host's kernel); with --load, to the running kernel.  DIR defaults to
# ${DOMUS_CACHE:-$HOME/.cache/domus}/kvm-xen/KVER-<hash of the inputs>; the
# modules land in DIR/ and DIR/.stamp records the inputs, so a second run with
# the same inputs does nothing.  Prints the module directory on stdout.
#
# --load: unloads kvm_amd/kvm_intel/kvm and inserts the new modules (irqbypass
# first).  For a real host whose kernel lacks KVM_XEN (`make setup-kvm`).
set -euo pipefail

die() { echo "build-kvm-xen: error: $*" >&2; exit 1; }
log() { [ -n "${DOMUS_VERBOSE:-}" ] && echo "build-kvm-xen: $*" >&2; return 0; }

KVER="" OUT="" LOAD=0 FORCE=0
while [ $# -gt 0 ]; do
    case "$1" in
    --kver) KVER="${2:?--kver needs a value}"; shift 2 ;;
    --out) OUT="${2:?--out needs a value}"; shift 2 ;;
    --load) LOAD=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

SELF="$(readlink -f "$0")"
CACHE="${DOMUS_CACHE:-$HOME/.cache/domus}"

resolve_cloud_kver() {
    local dep
    dep="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\(.*\)$/\1/p' | head -n1)"
    [ -n "$dep" ] || die "cannot resolve the cloud kernel version (apt-cache depends linux-image-cloud-amd64)"
    echo "$dep"
}

if [ -z "$KVER" ]; then
    if [ "$LOAD" = 1 ]; then KVER="$(uname -r)"; else KVER="$(resolve_cloud_kver)"; fi
fi
HDR="/usr/src/linux-headers-$KVER"
# Sources of the same major.minor as the kernel (Debian: linux-source-6.1 for
# bookworm's 6.1.0-N kernels).
MM="$(echo "$KVER" | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')"
SRCPKG="linux-source-$MM"
SRC_TAR="/usr/src/$SRCPKG.tar.xz"
if { [ ! -f "$SRC_TAR" ] || [ ! -d "$HDR" ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # A real host's kernel (make setup-kvm): fetch its headers and sources.
    echo "build-kvm-xen: installing linux-headers-$KVER and $SRCPKG" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "linux-headers-$KVER" "$SRCPKG" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "linux-headers-$KVER" "$SRCPKG" >/dev/null 2>&1; } || true
fi
[ -f "$SRC_TAR" ] || die "$SRC_TAR missing (apt-get install $SRCPKG)"
[ -d "$HDR" ] || die "$HDR missing (apt-get install linux-headers-$KVER)"

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
INPUTS="kver=$KVER src=$(pkgver "$SRCPKG") hdr=$(pkgver "linux-headers-$KVER") script=$(sha256sum "$SELF" | cut -c1-16)"
HASH="$(printf '%s' "$INPUTS" | sha256sum | cut -c1-12)"
[ -n "$OUT" ] || OUT="$CACHE/kvm-xen/$KVER-$HASH"
MODS="kvm.ko kvm-amd.ko kvm-intel.ko"

have_all() {
    local m
    [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$INPUTS" ] || return 1
    for m in $MODS; do [ -f "$OUT/$m" ] || return 1; done
}

build() {
    local work top kdir t0
    t0=$(date +%s)
    echo "build-kvm-xen: building kvm modules with CONFIG_KVM_XEN for $KVER (about a minute)" >&2
    mkdir -p "$OUT"
    work="$(mktemp -d "$OUT/.work.XXXXXX")"
    # The build log is kept on failure only.
    trap 'echo "build-kvm-xen: build failed; log: $work/build.log" >&2' ERR
    tar -xJf "$SRC_TAR" -C "$work" --strip-components=1 \
        "$SRCPKG/arch/x86/kvm" "$SRCPKG/virt/kvm" ||
        die "cannot extract arch/x86/kvm and virt/kvm from $SRC_TAR"
    top="$work"
    kdir="$top/arch/x86/kvm"
    # Our copy of the kvm sources, with Xen support switched on:
    #  - include Makefile.kvm from our virt/kvm (the headers package has none),
    #  - -I for the kvm headers and for the trace header path below,
    #  - CONFIG_KVM_XEN defined for all three modules (struct kvm_arch layout
    #    must agree between them) and xen.o linked into kvm.ko.
    sed -i \
        -e "s|^include \$(srctree)/virt/kvm/Makefile.kvm|include $top/virt/kvm/Makefile.kvm|" \
        -e "s|^ccflags-y += -I \$(srctree)/arch/x86/kvm|ccflags-y += -I $kdir -I $top -DCONFIG_KVM_XEN=1|" \
        -e 's|^kvm-$(CONFIG_KVM_XEN)[[:space:]]*+= xen.o|kvm-y += xen.o|' \
        "$kdir/Makefile"
    grep -q -- "-DCONFIG_KVM_XEN=1" "$kdir/Makefile" && grep -q '^kvm-y += xen.o' "$kdir/Makefile" &&
        grep -q "^include $top/virt/kvm/Makefile.kvm" "$kdir/Makefile" ||
        die "arch/x86/kvm/Makefile did not have the expected shape; cannot enable KVM_XEN"
    # trace.h names itself relative to include/trace/; make it relative to
    # "-I $top" instead (a relative path: no macro-expansion surprises from
    # tokens such as "linux" in an absolute path).
    sed -i 's|^#define TRACE_INCLUDE_PATH \.\./\.\./arch/x86/kvm$|#define TRACE_INCLUDE_PATH arch/x86/kvm|' "$kdir/trace.h"
    grep -q '^#define TRACE_INCLUDE_PATH arch/x86/kvm$' "$kdir/trace.h" || die "cannot retarget TRACE_INCLUDE_PATH in trace.h"
    log "building in $kdir"
    if ! make -C "$HDR" M="$kdir" CONFIG_KVM=m CONFIG_KVM_AMD=m CONFIG_KVM_INTEL=m \
        -j"$(nproc)" modules >"$work/build.log" 2>&1; then
        tail -n 30 "$work/build.log" >&2
        die "module build failed; full log: $work/build.log"
    fi
    for m in $MODS; do
        [ -f "$kdir/$m" ] || die "$m was not built; log: $work/build.log"
    done
    check_modules "$kdir"
    # Debug info is 80% of the size; the test-host initramfs wants them small.
    for m in $MODS; do strip --strip-debug -o "$OUT/$m" "$kdir/$m"; chmod 0644 "$OUT/$m"; done
    trap - ERR
    rm -rf "$work"
    printf '%s' "$INPUTS" >"$OUT/.stamp"
    log "built in $(( $(date +%s) - t0 )) s: $OUT"
}

# A module built this way must be for KVER and must contain the Xen code.
check_modules() {
    local d="$1" vm syms
    vm="$(modinfo -F vermagic "$d/kvm.ko")"
    syms="$(nm "$d/kvm.ko")" # (not piped into grep -q: SIGPIPE + pipefail)
    case "$vm" in "$KVER "*) ;; *) die "kvm.ko has vermagic '$vm', expected $KVER" ;; esac
    grep -q ' T kvm_xen_hypercall$' <<<"$syms" || die "kvm.ko lacks kvm_xen_hypercall: CONFIG_KVM_XEN did not take"
    grep -q ' T kvm_xen_hvm_config$' <<<"$syms" || die "kvm.ko lacks kvm_xen_hvm_config"
    [[ ",$(modinfo -F depends "$d/kvm-amd.ko")," == *,kvm,* ]] || die "kvm-amd.ko does not depend on kvm"
}

if [ "$FORCE" = 1 ] || ! have_all; then
    command -v make >/dev/null || die "make missing (apt-get install build-essential)"
    mkdir -p "$(dirname "$OUT")"
    exec 8>"$OUT.lock"
    flock 8 || die "cannot lock $OUT.lock"
    # Another build may have finished while we waited.
    if [ "$FORCE" = 1 ] || ! have_all; then build; fi
    exec 8>&-
fi

if [ "$LOAD" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "--load needs root"
    [ "$KVER" = "$(uname -r)" ] || die "--load: modules are for $KVER but the running kernel is $(uname -r)"
    if grep -qw svm /proc/cpuinfo; then vendor=kvm_amd vko=kvm-amd.ko
    elif grep -qw vmx /proc/cpuinfo; then vendor=kvm_intel vko=kvm-intel.ko
    else die "--load: this CPU has neither vmx nor svm"; fi
    for m in kvm_amd kvm_intel kvm; do
        if grep -q "^$m " /proc/modules; then
            rmmod "$m" || die "cannot unload $m (is a VM running? see lsmod)"
        fi
    done
    grep -q '^irqbypass ' /proc/modules || modprobe irqbypass || die "cannot load irqbypass"
    insmod "$OUT/kvm.ko" || die "insmod kvm.ko failed (see dmesg)"
    insmod "$OUT/$vko" || die "insmod $vko failed (see dmesg)"
    echo "build-kvm-xen: loaded kvm.ko and $vko with CONFIG_KVM_XEN from $OUT (check: tests/testhost/run.sh 00-kvm-xen)" >&2
fi

echo "$OUT"
