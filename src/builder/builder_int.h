/* Internal interfaces of the domain builder (src/builder/ only). */
#ifndef DOMUS_BUILDER_INT_H
#define DOMUS_BUILDER_INT_H

#include <stddef.h>
#include <stdint.h>

/* Largest kernel file read, and largest decompressed kernel accepted. */
#define BUILDER_KERNEL_FILE_MAX (256ULL << 20)
#define BUILDER_ELF_MAX (512ULL << 20)

/* Lowest guest-physical address a kernel segment or the ramdisk may use:
 * everything below holds start_info, the command line and ACPI. */
#define BUILDER_LOAD_MIN 0x100000ULL

/* A scratch buffer (the kernel file, the decompressed ELF).  A large one is
 * mapped with its pages populated in one call (MADV_POPULATE_WRITE): a
 * fault per 4 KiB page is what filling it would otherwise cost, much of the
 * builder's time in a nested test host.  (Huge pages were tried: direct
 * compaction made later builds in one test host slower, not faster.)  Small
 * ones (unit tests, fuzzing) come from malloc, where ASan sees overruns.
 * NULL when out of memory; freed with builder_buf_free(p, len)
 * (domus/builder.h). */
void *builder_buf_alloc(size_t len);

/* Formats a reason into err (always NUL-terminated) and returns rc. */
int builder_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Little-endian loads from an (unaligned) byte buffer; the caller has checked
 * the bounds. */
uint16_t builder_le16(const uint8_t *p);
uint32_t builder_le32(const uint8_t *p);
uint64_t builder_le64(const uint8_t *p);

/* Decompressors for bzImage payloads.  Each decodes the compressed stream
 * in[0, in_len) (without the size word Linux appends) into out and succeeds
 * only when it produces exactly out_len bytes.  0 or -EINVAL with a reason
 * (prefixed "kernel: ") in err; never reads or writes out of bounds. */
int builder_gunzip(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                   char *err, size_t errlen);
int builder_unxz(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                 char *err, size_t errlen);
int builder_unzstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                   char *err, size_t errlen);
/* LZ4 "legacy" frame format (magic 0x184C2102), as `lz4 -l` writes it and as
 * Linux's CONFIG_KERNEL_LZ4 uses. */
int builder_unlz4_legacy(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                         char *err, size_t errlen);

#endif
