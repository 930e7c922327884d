/* ELF64 loader: validates every header field against the image and guest
 * RAM, finds the Xen PVH entry note, then copies PT_LOAD segments to their
 * physical addresses.  Headers are copied out with memcpy (the image may be
 * unaligned); nothing is written to guest memory until all checks pass. */
#include "domus/builder.h"
#include "builder_int.h"

#include <elf.h>
#include <errno.h>
#include <string.h>
#include <xen/elfnote.h>

#define ELF_MAX_PHNUM 256

struct elf_img {
    const uint8_t *buf;
    size_t len;
    Elf64_Ehdr eh;
};

static int check_ehdr(struct elf_img *e, char *err, size_t errlen)
{
    if (e->len < sizeof(Elf64_Ehdr))
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: ELF header truncated (%zu bytes)", e->len);
    memcpy(&e->eh, e->buf, sizeof(e->eh));
    if (memcmp(e->eh.e_ident, ELFMAG, SELFMAG) != 0)
        return builder_fail(err, errlen, -EINVAL, "kernel: not an ELF or bzImage");
    if (e->eh.e_ident[EI_CLASS] != ELFCLASS64 || e->eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: not a little-endian ELF64 image (Domus loads x86-64 "
                            "kernels)");
    if (e->eh.e_machine != EM_X86_64)
        return builder_fail(err, errlen, -EINVAL, "kernel: ELF machine %u is not x86-64",
                            e->eh.e_machine);
    if (e->eh.e_phentsize != sizeof(Elf64_Phdr))
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: ELF e_phentsize %u, expected %zu", e->eh.e_phentsize,
                            sizeof(Elf64_Phdr));
    if (e->eh.e_phnum == 0 || e->eh.e_phnum > ELF_MAX_PHNUM)
        return builder_fail(err, errlen, -EINVAL, "kernel: ELF has %u program headers",
                            e->eh.e_phnum);
    if (e->eh.e_phoff > e->len ||
        (uint64_t)e->eh.e_phnum * sizeof(Elf64_Phdr) > e->len - e->eh.e_phoff)
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: ELF program headers at %#llx lie outside the file "
                            "(%zu bytes)",
                            (unsigned long long)e->eh.e_phoff, e->len);
    return 0;
}

static void get_phdr(const struct elf_img *e, unsigned i, Elf64_Phdr *ph)
{
    memcpy(ph, e->buf + e->eh.e_phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
}

/* The file bytes [p_offset, p_offset + p_filesz) exist. */
static int check_file_range(const struct elf_img *e, unsigned i, const Elf64_Phdr *ph,
                            char *err, size_t errlen)
{
    if (ph->p_offset > e->len || ph->p_filesz > e->len - ph->p_offset)
        return builder_fail(
            err, errlen, -EINVAL,
            "kernel: ELF segment %u [%#llx, +%#llx) lies outside the file "
            "(%zu bytes)",
            i, (unsigned long long)ph->p_offset, (unsigned long long)ph->p_filesz,
            e->len);
    return 0;
}

static int check_load(const struct gmem *m, const struct elf_img *e, unsigned i,
                      const Elf64_Phdr *ph, char *err, size_t errlen)
{
    int rc = check_file_range(e, i, ph, err, errlen);
    if (rc)
        return rc;
    if (ph->p_filesz > ph->p_memsz)
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: ELF segment %u has p_filesz %#llx > p_memsz %#llx",
                            i, (unsigned long long)ph->p_filesz,
                            (unsigned long long)ph->p_memsz);
    if (ph->p_memsz == 0)
        return 0;
    if (ph->p_paddr < BUILDER_LOAD_MIN || ph->p_paddr > m->low_end ||
        ph->p_memsz > m->low_end - ph->p_paddr || !gmem_ptr(m, ph->p_paddr, ph->p_memsz))
        return builder_fail(
            err, errlen, -EINVAL,
            "kernel: ELF segment %u [%#llx, +%#llx) does not fit in guest "
            "RAM [%#llx, %#llx)",
            i, (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz,
            BUILDER_LOAD_MIN, (unsigned long long)m->low_end);
    return 0;
}

/* Reads the PVH entry from one note's descriptor, if it is that note. */
static int note_entry(const uint8_t *name, uint32_t namesz, uint32_t type,
                      const uint8_t *desc, uint32_t descsz, uint64_t *entry)
{
    if (type != XEN_ELFNOTE_PHYS32_ENTRY || namesz != 4 || memcmp(name, "Xen", 4) != 0)
        return 0;
    if (descsz == 4)
        *entry = builder_le32(desc);
    else if (descsz == 8)
        *entry = builder_le64(desc);
    else
        return -EINVAL;
    return 1;
}

/* Walks the notes of PT_NOTE segment i; 1 and *entry when the PVH note is
 * found, 0 when not, -EINVAL with a reason when a note overruns the segment. */
static int scan_notes(const struct elf_img *e, unsigned i, const Elf64_Phdr *ph,
                      uint64_t *entry, char *err, size_t errlen)
{
    const uint8_t *n = e->buf + ph->p_offset;
    uint64_t len = ph->p_filesz, align = ph->p_align == 8 ? 8 : 4, pos = 0;

    while (len - pos >= sizeof(Elf64_Nhdr)) {
        Elf64_Nhdr nh;
        uint64_t name_off, desc_off, next;
        int found;

        memcpy(&nh, n + pos, sizeof(nh));
        name_off = pos + sizeof(nh);
        desc_off = name_off + ((nh.n_namesz + align - 1) & ~(align - 1));
        next = desc_off + ((nh.n_descsz + align - 1) & ~(align - 1));
        if (nh.n_namesz > len - name_off || desc_off > len ||
            nh.n_descsz > len - desc_off)
            return builder_fail(err, errlen, -EINVAL,
                                "kernel: malformed ELF note at file offset %#llx (namesz "
                                "%u, descsz %u overrun segment %u)",
                                (unsigned long long)(ph->p_offset + pos), nh.n_namesz,
                                nh.n_descsz, i);
        found = note_entry(n + name_off, nh.n_namesz, nh.n_type, n + desc_off,
                           nh.n_descsz, entry);
        if (found < 0)
            return builder_fail(err, errlen, -EINVAL,
                                "kernel: PVH entry note has a %u-byte value (expected 4 "
                                "or 8)",
                                nh.n_descsz);
        if (found)
            return found;
        if (next >= len)
            break;
        pos = next;
    }
    return 0;
}

static int find_entry(const struct elf_img *e, uint64_t *entry, char *err, size_t errlen)
{
    for (unsigned i = 0; i < e->eh.e_phnum; i++) {
        Elf64_Phdr ph;
        int rc;

        get_phdr(e, i, &ph);
        if (ph.p_type != PT_NOTE)
            continue;
        rc = check_file_range(e, i, &ph, err, errlen);
        if (rc)
            return rc;
        rc = scan_notes(e, i, &ph, entry, err, errlen);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 0;
    }
    return builder_fail(
        err, errlen, -EINVAL,
        "kernel: no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY); Domus boots "
        "PVH kernels");
}

/* Validates the PT_LOAD segments; the entry must lie inside one of them. */
static int check_loads(const struct gmem *m, const struct elf_img *e, uint64_t entry,
                       uint64_t *end, char *err, size_t errlen)
{
    int entry_ok = 0, nload = 0;

    *end = 0;
    for (unsigned i = 0; i < e->eh.e_phnum; i++) {
        Elf64_Phdr ph;
        int rc;

        get_phdr(e, i, &ph);
        if (ph.p_type != PT_LOAD)
            continue;
        rc = check_load(m, e, i, &ph, err, errlen);
        if (rc)
            return rc;
        nload++;
        /* An empty segment loads nothing (its paddr is unchecked): not the end. */
        if (ph.p_memsz && ph.p_paddr + ph.p_memsz > *end)
            *end = ph.p_paddr + ph.p_memsz;
        if (entry >= ph.p_paddr && entry - ph.p_paddr < ph.p_memsz)
            entry_ok = 1;
    }
    if (!nload)
        return builder_fail(err, errlen, -EINVAL, "kernel: ELF has no PT_LOAD segment");
    if (!entry_ok)
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: PVH entry %#llx is outside the loaded segments",
                            (unsigned long long)entry);
    return 0;
}

static int copy_loads(struct gmem *m, const struct elf_img *e)
{
    for (unsigned i = 0; i < e->eh.e_phnum; i++) {
        Elf64_Phdr ph;
        uint8_t *dst;

        get_phdr(e, i, &ph);
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
            continue;
        dst = gmem_ptr(m, ph.p_paddr, ph.p_memsz);
        if (!dst)
            return -EFAULT; /* checked before; cannot happen */
        if (ph.p_filesz && gmem_store(m, ph.p_paddr, e->buf + ph.p_offset, ph.p_filesz))
            return -EFAULT;
        memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    }
    return 0;
}

int builder_load_elf(struct gmem *m, const uint8_t *elf, size_t len, uint64_t *entry,
                     uint64_t *kernel_end, char *err, size_t errlen)
{
    struct elf_img e = {.buf = elf, .len = len};
    int rc;

    rc = check_ehdr(&e, err, errlen);
    if (rc)
        return rc;
    rc = find_entry(&e, entry, err, errlen);
    if (rc)
        return rc;
    if (*entry >= (1ULL << 32))
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: PVH entry %#llx is not a 32-bit address",
                            (unsigned long long)*entry);
    rc = check_loads(m, &e, *entry, kernel_end, err, errlen);
    if (rc)
        return rc;
    rc = copy_loads(m, &e);
    if (rc)
        return builder_fail(err, errlen, rc,
                            "kernel: copying segments to guest memory failed");
    return 0;
}
