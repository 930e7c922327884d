#!/usr/bin/env bash
# Does this host's KVM have the Xen support Domus needs (KVM_CAP_XEN_HVM with
# KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL)?
#
#   scripts/kvm-xen.sh check    exit 0 if /dev/kvm has it (quiet)
#   scripts/kvm-xen.sh setup    `make setup-kvm`: says which case applies; where
#                               the running kernel's KVM lacks it, builds kvm
#                               modules with it (scripts/build-kvm-xen.sh --load)
#
# The answer comes from /dev/kvm itself (tests/testhost/kvm-xen-probe.c):
# Debian's 6.12 kernels (Debian 13's series, in Debian 12 as
# linux-image-6.12.*+deb12-*) have CONFIG_KVM_XEN=y and need nothing built;
# Debian 12's 6.1 has not.
set -euo pipefail
DOMUS_PROG=kvm-xen
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$HERE/lib.sh"

probe() {
    local bin="$DOMUS_CACHE/bin/kvm-xen-probe"
    if [ ! -x "$bin" ] || [ "$ROOT/tests/testhost/kvm-xen-probe.c" -nt "$bin" ]; then
        mkdir -p "$DOMUS_CACHE/bin"
        ${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -o "$bin.tmp" "$ROOT/tests/testhost/kvm-xen-probe.c" &&
            mv "$bin.tmp" "$bin" || die "cannot build kvm-xen-probe"
    fi
    [ -e /dev/kvm ] && "$bin"
}

case "${1:-}" in
check) probe >/dev/null 2>&1 ;;
setup)
    grep -qwE 'vmx|svm' /proc/cpuinfo ||
        die "this CPU shows neither vmx nor svm: the tests run in the test host (make check), nothing to load here"
    if probe >/dev/null 2>&1; then
        echo "kvm-xen: the running kernel's KVM ($(uname -r)) has Xen support (KVM_CAP_XEN_HVM): using it, nothing built"
        exit 0
    fi
    echo "kvm-xen: the running kernel's KVM ($(uname -r)) lacks Xen support; building kvm modules with CONFIG_KVM_XEN"
    echo "kvm-xen: note: Debian's 6.12 kernels (apt-get install linux-image-cloud-amd64 from bookworm's 6.12 series," \
        "or linux-image-6.12.*+deb12-*) need no build; see README on KVM's Xen code in 6.1"
    exec "$HERE/build-kvm-xen.sh" --load
    ;;
*) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
