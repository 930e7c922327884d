# Shared helpers for scripts/setup.sh and tests/testhost/run.sh (bash; sourced).

export DOMUS_CACHE="${DOMUS_CACHE:-${HOME:-/root}/.cache/domus}"

die() { echo "${DOMUS_PROG:-domus}: error: $*" >&2; exit 1; }
note() { [ -n "${DOMUS_VERBOSE:-}" ] && echo "${DOMUS_PROG:-domus}: $*" >&2; return 0; }
warn() { echo "${DOMUS_PROG:-domus}: warning: $*" >&2; }

# Version of the kernel linux-image-cloud-amd64 depends on, e.g. 6.1.0-56-cloud-amd64.
resolve_cloud_kver() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\(.*\)$/\1/p' | head -n1
}

# Newest Debian 6.12 cloud kernel apt knows: "PKG KVER", e.g.
# "linux-image-6.12.117+deb12-cloud-amd64-unsigned 6.12.117+deb12-cloud-amd64";
# empty when apt knows none.  Its stock kvm.ko has CONFIG_KVM_XEN=y.
resolve_612_kernel() {
    apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb[0-9]+-cloud-amd64-unsigned$' 2>/dev/null |
        awk '{print $1}' | sort -V | tail -n1 |
        sed -n 's/^\(linux-image-\(.*\)-unsigned\)$/\1 \2/p'
}

# Short hash of the arguments (strings) and of the contents of the files named
# by the arguments that are existing paths.
inputs_hash() {
    local a
    for a in "$@"; do
        if [ -f "$a" ]; then printf 'file %s %s\n' "$a" "$(sha256sum <"$a" | cut -c1-64)"
        else printf 'str %s\n' "$a"; fi
    done | sha256sum | cut -c1-12
}

# copy_with_libs ROOT SRC [DEST]: copies the executable SRC to ROOT/DEST
# (default: the same path) and every shared library ldd names for it to the
# same path under ROOT (following symlinks), including the dynamic loader.
copy_with_libs() {
    local root="$1" src="$2" dest="${3:-$2}" lib out
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$src" "$root/$dest"
    out="$(ldd "$src" 2>/dev/null)" || return 0 # static: nothing more to copy
    for lib in $(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out"); do
        [ -e "$root/$lib" ] && continue
        mkdir -p "$root/$(dirname "$lib")"
        cp -L "$lib" "$root/$lib"
    done
}

# busybox_into ROOT: /bin/busybox (static) and a symlink for every applet.
busybox_into() {
    local root="$1" bb=/bin/busybox p
    [ -x "$bb" ] || die "$bb missing (apt-get install busybox-static)"
    ldd "$bb" >/dev/null 2>&1 && die "$bb is dynamically linked; need busybox-static"
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
    cp "$bb" "$root/bin/busybox"
    for p in $("$bb" --list-full); do
        [ -e "$root/$p" ] || [ -L "$root/$p" ] || ln -s /bin/busybox "$root/$p"
    done
}

# xenstore_utils_into ROOT: Debian's xenstore clients (one multi-call binary
# dispatching on argv[0]) with their libraries, in /usr/bin.
XS_TOOLS="xenstore-read xenstore-write xenstore-ls xenstore-list xenstore-rm xenstore-exists xenstore-watch xenstore-chmod"
xenstore_utils_into() {
    local root="$1" t
    [ -x /usr/bin/xenstore-read ] || die "/usr/bin/xenstore-read missing (apt-get install xenstore-utils)"
    copy_with_libs "$root" /usr/bin/xenstore-read /usr/bin/xenstore
    for t in $XS_TOOLS; do ln -sf xenstore "$root/usr/bin/$t"; done
    # glibc loads libgcc_s at run time for pthread_cancel (xenstore-watch).
    local gcc_s
    gcc_s="$(ldconfig -p | awk '/libgcc_s\.so\.1 .*x86-64/ && !p {p = $NF} END {print p}')"
    if [ -n "$gcc_s" ]; then
        mkdir -p "$root/$(dirname "$gcc_s")"
        cp -L "$gcc_s" "$root/$gcc_s"
    fi
}

# mod_closure MODDIR KVER NAME...: relative paths (under MODDIR/lib/modules/KVER)
# of the named modules and everything they depend on, dependencies first;
# modules built into the kernel are left out.
mod_closure() {
    local base="$1/lib/modules/$2" seen="" todo name line rel deps d out=""
    [ -f "$base/modules.dep" ] || die "$base/modules.dep missing (run scripts/setup.sh)"
    _mc_visit() {
        local n="${1//-/_}" line rel d
        case " $seen " in *" $n "*) return 0 ;; esac
        seen="$seen $n"
        line="$(awk -v n="$n" -F: '{ f=$1; sub(/.*\//, "", f); sub(/\.ko.*$/, "", f); gsub(/-/, "_", f); if (f == n) { print; exit } }' "$base/modules.dep")"
        if [ -z "$line" ]; then
            # Built into this kernel (6.12 builds virtio_pci in): nothing to load.
            grep -q "/${n}\.ko\(\.[a-z]*\)\?\$" <(tr - _ <"$base/modules.builtin") && return 0
            die "module $1 not found in $base/modules.dep"
        fi
        rel="${line%%:*}"
        for d in ${line#*:}; do
            d="${d##*/}"; d="${d%%.ko*}"
            _mc_visit "$d"
        done
        out="$out $rel"
    }
    for name in "${@:3}"; do _mc_visit "$name"; done
    echo "$out"
}

# modules_into ROOT MODDIR KVER NAME...: the named modules of the kernel tree
# MODDIR/lib/modules/KVER and their dependencies into ROOT/lib/modules/KVER,
# unpacked (Debian's 6.12 packages ship them .ko.xz, which busybox's insmod
# cannot read), with modules.dep made for what was copied.
modules_into() {
    local root="$1" mdir="$2" kver="$3" rel f dst
    local src="$mdir/lib/modules/$kver" mroot="$root/lib/modules/$kver" mods
    mods="$(mod_closure "$mdir" "$kver" "${@:4}")" || exit 1
    mkdir -p "$mroot"
    for rel in $mods; do
        dst="$mroot/${rel%.xz}"
        mkdir -p "$(dirname "$dst")"
        case "$rel" in
        *.ko.xz) xz -dc "$src/$rel" >"$dst" || die "cannot unpack $src/$rel" ;;
        *) cp "$src/$rel" "$dst" ;;
        esac
    done
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [ -f "$src/$f" ] && cp "$src/$f" "$mroot/"
    done
    depmod -b "$root" "$kver" || die "depmod for $kver in $root failed"
}

# cpio_from ROOT OUT: newc archive of ROOT (owned by root), uncompressed:
# unpacking is the slow part under TCG, not reading.
cpio_from() {
    local root="$1" out="$2" tmp
    tmp="$(mktemp "$out.XXXXXX")" # concurrent builders each write their own
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$out"
}
