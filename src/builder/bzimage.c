/* Kernel image formats: an ELF vmlinux as is, or a bzImage whose payload
 * (Documentation/x86/boot.rst: payload_offset/payload_length, protocol 2.08+)
 * is a compressed vmlinux followed by its little-endian 32-bit length. */
#include "domus/builder.h"
#include "domus/util.h"
#include "builder_int.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Offsets in the real-mode setup header. */
#define BZ_SETUP_SECTS 0x1f1
#define BZ_BOOT_FLAG 0x1fe
#define BZ_HEADER_MAGIC 0x202
#define BZ_VERSION 0x206
#define BZ_PAYLOAD_OFFSET 0x248
#define BZ_PAYLOAD_LENGTH 0x24c
#define BZ_HEADER_END 0x250
#define BZ_MIN_VERSION 0x208 /* first protocol with payload_offset/length */

typedef int (*decomp_fn)(const uint8_t *, size_t, uint8_t *, size_t, char *, size_t);

struct payload_format {
    const char *name;
    uint8_t magic[6];
    size_t magic_len;
    decomp_fn fn; /* NULL: recognised but not supported */
};

static const struct payload_format formats[] = {
    {"gzip", {0x1f, 0x8b}, 2, builder_gunzip},
    {"xz", {0xfd, '7', 'z', 'X', 'Z', 0x00}, 6, builder_unxz},
    {"zstd", {0x28, 0xb5, 0x2f, 0xfd}, 4, builder_unzstd},
    {"lz4", {0x02, 0x21, 0x4c, 0x18}, 4, builder_unlz4_legacy},
    {"bzip2", {'B', 'Z', 'h'}, 3, NULL},
    {"lzma", {0x5d, 0x00, 0x00}, 3, NULL},
    {"lzo", {0x89, 'L', 'Z', 'O'}, 4, NULL},
};

static int is_elf(const uint8_t *buf, size_t len)
{
    return len >= SELFMAG && memcmp(buf, ELFMAG, SELFMAG) == 0;
}

static int is_bzimage(const uint8_t *buf, size_t len)
{
    return len >= BZ_HEADER_MAGIC + 4 && memcmp(buf + BZ_HEADER_MAGIC, "HdrS", 4) == 0;
}

static const struct payload_format *find_format(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++)
        if (len >= formats[i].magic_len &&
            memcmp(p, formats[i].magic, formats[i].magic_len) == 0)
            return &formats[i];
    return NULL;
}

/* Finds the payload [*off, *off + *plen) from the setup header. */
static int bz_payload(const uint8_t *buf, size_t len, uint64_t *off, uint64_t *plen,
                      char *err, size_t errlen)
{
    unsigned version, sects;

    if (len < BZ_HEADER_END)
        return builder_fail(
            err, errlen, -EINVAL,
            "kernel: bzImage truncated (%zu bytes, setup header needs %d)", len,
            BZ_HEADER_END);
    if (builder_le16(buf + BZ_BOOT_FLAG) != 0xAA55)
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: bzImage without boot flag 0xAA55");
    version = builder_le16(buf + BZ_VERSION);
    if (version < BZ_MIN_VERSION)
        return builder_fail(
            err, errlen, -EINVAL,
            "kernel: bzImage boot protocol %u.%02u is too old (need 2.08)", version >> 8,
            version & 0xff);
    sects = buf[BZ_SETUP_SECTS] ? buf[BZ_SETUP_SECTS] : 4;
    *off = (uint64_t)(sects + 1) * 512 + builder_le32(buf + BZ_PAYLOAD_OFFSET);
    *plen = builder_le32(buf + BZ_PAYLOAD_LENGTH);
    if (*off > len || *plen > len - *off)
        return builder_fail(
            err, errlen, -EINVAL,
            "kernel: bzImage truncated (payload [%#llx, %#llx) beyond end "
            "of file at %#zx)",
            (unsigned long long)*off, (unsigned long long)(*off + *plen), len);
    if (*plen < 8)
        return builder_fail(err, errlen, -EINVAL, "kernel: bzImage payload too short");
    return 0;
}

/* Decompresses payload p[0, plen) (compressed data + le32 size) into *out. */
static int bz_decompress(const uint8_t *p, size_t plen, uint8_t **out, size_t *out_len,
                         char *err, size_t errlen)
{
    const struct payload_format *f = find_format(p, plen);
    uint8_t *buf = NULL;
    uint32_t olen;
    int rc;

    if (!f)
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: bzImage payload compression not recognised "
                            "(magic %02x %02x %02x %02x)",
                            p[0], p[1], p[2], p[3]);
    if (!f->fn)
        return builder_fail(
            err, errlen, -EINVAL,
            "kernel: bzImage payload is %s-compressed; Domus supports gzip, "
            "xz, zstd and lz4",
            f->name);
    olen = builder_le32(p + plen - 4);
    if (olen < sizeof(Elf64_Ehdr) || olen > BUILDER_ELF_MAX)
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: bzImage records an implausible decompressed size %u",
                            olen);
    buf = builder_buf_alloc(olen);
    if (!buf)
        return builder_fail(err, errlen, -ENOMEM, "kernel: out of memory for %u bytes",
                            olen);
    rc = f->fn(p, plen - 4, buf, olen, err, errlen);
    if (rc)
        goto out;
    if (!is_elf(buf, olen)) {
        rc = builder_fail(err, errlen, -EINVAL,
                          "kernel: decompressed bzImage payload is not an ELF");
        goto out;
    }
    *out = buf;
    *out_len = olen;
    buf = NULL;
out:
    builder_buf_free(buf, olen);
    return rc;
}

int builder_kernel_to_elf(const uint8_t *buf, size_t len, uint8_t **elf, size_t *elf_len,
                          int *elf_owned, char *err, size_t errlen)
{
    uint64_t off = 0, plen = 0;
    int rc;

    *elf = NULL;
    *elf_len = 0;
    *elf_owned = 0;
    if (is_elf(buf, len)) {
        *elf = (uint8_t *)buf;
        *elf_len = len;
        return 0;
    }
    if (!is_bzimage(buf, len))
        return builder_fail(err, errlen, -EINVAL, "kernel: not an ELF or bzImage");
    rc = bz_payload(buf, len, &off, &plen, err, errlen);
    if (rc)
        return rc;
    if (is_elf(buf + off, plen)) { /* CONFIG_KERNEL_UNCOMPRESSED */
        *elf = (uint8_t *)buf + off;
        *elf_len = plen;
        return 0;
    }
    rc = bz_decompress(buf + off, plen, elf, elf_len, err, errlen);
    if (rc)
        return rc;
    *elf_owned = 1;
    return 0;
}
