/* Domain builder: loads a PVH kernel and writes everything it needs at entry.
 *
 * Guest-physical layout written by the builder (see also gmem.h):
 *   0x1000              struct hvm_start_info (v1), then the module list and
 *                       the memory map (struct hvm_memmap_table_entry[])
 *   0x2000..0x3000      kernel command line (NUL-terminated, at most 2047 bytes)
 *   0xE0000..0x100000   ACPI tables: RSDP, RSDT/XSDT, FADT (hardware-reduced, no
 *                       VGA, no CMOS RTC), DSDT (with \_S5), MADT (one LAPIC
 *                       per vCPU, APIC id = vCPU index); e820 reserved
 *   kernel              at its ELF physical load addresses
 *   initrd              page-aligned, as high in low RAM as it fits
 * Memory map: RAM [0, 0xA0000), reserved [0xA0000, 0x100000), RAM
 * [0x100000, low_end), reserved for the special pages, RAM above 4 GiB. */
#ifndef DOMUS_BUILDER_H
#define DOMUS_BUILDER_H

#include "domus/acpi_ports.h"
#include "domus/gmem.h"

#include <stddef.h>
#include <stdint.h>

#define BUILDER_START_INFO_GPA 0x1000ULL
#define BUILDER_CMDLINE_GPA 0x2000ULL
#define BUILDER_CMDLINE_MAX 2048
#define BUILDER_ACPI_GPA 0xE0000ULL

/* ACPI fixed hardware that the hypervisor core traps: acpi_ports.h. */

struct build_args {
    const char *kernel;  /* path: bzImage or ELF vmlinux with a PVH entry note */
    const char *ramdisk; /* path, or NULL or "" for none */
    const char *cmdline; /* or NULL */
    unsigned vcpus;      /* 1..BUILDER_MAX_VCPUS */
};
#define BUILDER_MAX_VCPUS 128

struct build_result {
    uint64_t entry;          /* XEN_ELFNOTE_PHYS32_ENTRY: 32-bit protected mode entry */
    uint64_t start_info_gpa; /* goes in %ebx at entry */
};

/* Builds a PVH domain's memory.  On failure returns -errno and writes a
 * human-readable reason into err, e.g. "kernel PATH: No such file or
 * directory" (-ENOENT), "kernel: not an ELF or bzImage", "kernel: no PVH
 * entry point (XEN_ELFNOTE_PHYS32_ENTRY); Domus boots PVH kernels",
 * "kernel: ELF segment N [...) does not fit in guest RAM [...)" (all -EINVAL),
 * "ramdisk PATH (N bytes) does not fit in guest memory ..." (-ENOMEM).
 * bzImage payloads may be gzip, xz, zstd or lz4 (legacy frame, as Debian's
 * kernels use); bzip2, lzma and lzo are rejected with a message. */
int builder_build_pvh(struct gmem *m, const struct build_args *a,
                      struct build_result *out, char *err, size_t errlen);

/* Lower-level pieces, exposed for unit tests. */

/* Decompresses/loads the kernel image in buf.  On success *elf points to an
 * ELF image (allocated when decompressed, *elf_owned = 1: free it with
 * builder_buf_free(*elf, *elf_len)) and *elf_len its size. */
void builder_buf_free(void *p, size_t len);
int builder_kernel_to_elf(const uint8_t *buf, size_t len, uint8_t **elf, size_t *elf_len,
                          int *elf_owned, char *err, size_t errlen);

/* Loads the PT_LOAD segments of an ELF64 image into guest memory and finds
 * the PVH entry note; -EINVAL with a reason for anything malformed.  Segments
 * must lie in low RAM at or above 1 MiB (below it are start_info, the command
 * line and ACPI); the entry must be a 32-bit address inside a segment.  Nothing
 * is written unless every check passes.  *kernel_end: end of the highest
 * segment that is not empty (p_paddr + p_memsz). */
int builder_load_elf(struct gmem *m, const uint8_t *elf, size_t len, uint64_t *entry,
                     uint64_t *kernel_end, char *err, size_t errlen);

/* Writes the ACPI tables at BUILDER_ACPI_GPA; returns the RSDP gpa in *rsdp. */
int builder_write_acpi(struct gmem *m, unsigned vcpus, uint64_t *rsdp);

/* Writes the guest's memory map (the one start_info points to) into e, at
 * most BUILDER_MEMMAP_MAX entries, and returns their number.  The hypervisor
 * core may use it to answer XENMEM_memory_map. */
#define BUILDER_MEMMAP_MAX 8
struct hvm_memmap_table_entry; /* xen/arch-x86/hvm/start_info.h */
unsigned builder_memmap(const struct gmem *m, struct hvm_memmap_table_entry *e);

#endif
