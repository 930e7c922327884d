#!/bin/sh
# End-to-end check of the domain builder: boots Debian's kernel and the guest
# initramfs with domus-vm and checks what the guest kernel reports about what
# the builder gave it (memory map, command line, initramfs, ACPI tables, vCPUs,
# ACPI power-off).  Run it in the test host:
#   tests/testhost/run.sh tests/builder/boot.sh --show
t=$DOMUS_TMP

check() { # name pattern what
    if grep -q "$2" "$t/$1.txt"; then echo "PASS $1: $3"; else echo "FAIL $1: $3"; fi
}

boot() { # name memory_mib vcpus
    domus-vm --domid 1 --name "b$1" --kernel "$DOMUS_GUEST_KERNEL" \
        --ramdisk "$DOMUS_GUEST_INITRD" \
        --cmdline "console=hvc0 ignore_loglevel domus.test=basic domus.vcpus=$3 builder.marker=xyzzy" \
        --memory "$2" --vcpus "$3" --console-log "$t/$1.log" --console-sock "$t/$1.sock" \
        --control-sock "$t/$1.ctl" >"$t/$1.out" 2>&1
    echo "domus-vm $1 exit $?"
    tr -d '\r' <"$t/$1.log" >"$t/$1.txt" 2>/dev/null
    grep -E "BIOS-e820|Command line|RAMDISK|ACPI: (RSDP|XSDT|FACP|DSDT|APIC)|smpboot: Allowing|Power down" "$t/$1.txt"
    tail -3 "$t/$1.out"
    top=$(printf '%016x' $(($2 * 1048576 - 1)))
    check "$1" "BIOS-e820: \[mem 0x0000000000100000-0x$top\] usable" "e820 RAM [1 MiB, $2 MiB)"
    check "$1" "BIOS-e820: \[mem 0x00000000feff0000-0x00000000feffffff\] reserved" "e820 special pages"
    check "$1" "builder.marker=xyzzy" "command line reached the kernel"
    check "$1" "RAMDISK: \[mem 0x[0-9a-f]*-0x$(printf '%08x' $(($2 * 1048576 - 1)))\]" "initrd at the top of RAM"
    check "$1" "Trying to unpack rootfs image as initramfs\|Freeing initrd memory" "initramfs unpacked"
    check "$1" "ACPI: RSDP 0x00000000000E0000" "RSDP from start_info"
    check "$1" "ACPI: FACP" "FADT"
    check "$1" "ACPI: DSDT" "DSDT"
    check "$1" "ACPI: APIC" "MADT"
    check "$1" "smpboot: Allowing $3 CPUs" "MADT gives $3 CPUs"
    check "$1" "PASS vcpus" "guest sees its vCPUs"
    check "$1" "ACPI: PM: (supports S0 S5)" "\\_S5 found"
    check "$1" "reboot: Power down" "ACPI power-off"
    bad="$(grep -i "ACPI.*\(error\|warning\|firmware bug\)" "$t/$1.txt")"
    if [ -n "$bad" ]; then
        echo "FAIL $1: ACPI complaints"
        echo "$bad"
    else
        echo "PASS $1: no ACPI errors or warnings"
    fi
}

boot small 256 2
boot one 1024 1
