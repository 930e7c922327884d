/* Decompressors for bzImage payloads: gzip (zlib), xz (liblzma), zstd
 * (libzstd) and LZ4's legacy frame (the frame read here, its blocks by
 * liblz4).  Every decoder writes exactly into the caller's buffer and fails
 * on any output size other than expected. */
#include "builder_int.h"

#include <errno.h>
#include <limits.h>
#include <lz4.h>
#include <lzma.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define XZ_MEMLIMIT (256ULL << 20)

static int size_mismatch(char *err, size_t errlen, const char *fmt, size_t got,
                         size_t want)
{
    return builder_fail(err, errlen, -EINVAL,
                        "kernel: %s payload decompresses to %zu bytes, bzImage says %zu",
                        fmt, got, want);
}

int builder_gunzip(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                   char *err, size_t errlen)
{
    z_stream zs;
    int zrc, rc;

    if (in_len > UINT_MAX || out_len > UINT_MAX)
        return builder_fail(err, errlen, -EINVAL, "kernel: gzip payload too large");
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return builder_fail(err, errlen, -ENOMEM, "kernel: zlib initialisation failed");
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    zs.next_out = out;
    zs.avail_out = (uInt)out_len;
    zrc = inflate(&zs, Z_FINISH);
    if (zrc != Z_STREAM_END) {
        rc = builder_fail(err, errlen, -EINVAL, "kernel: corrupt gzip payload (%s)",
                          zrc == Z_BUF_ERROR && zs.avail_out == 0
                              ? "larger than recorded size"
                          : zs.msg ? zs.msg
                                   : "truncated");
        goto out;
    }
    rc = 0;
    if (zs.total_out != out_len)
        rc = size_mismatch(err, errlen, "gzip", zs.total_out, out_len);
out:
    inflateEnd(&zs);
    return rc;
}

static const char *lzma_reason(lzma_ret r)
{
    switch (r) {
    case LZMA_FORMAT_ERROR:
        return "not an xz stream";
    case LZMA_OPTIONS_ERROR:
        return "unsupported options";
    case LZMA_DATA_ERROR:
        return "corrupt data";
    case LZMA_BUF_ERROR:
        return "truncated, or larger than recorded size";
    case LZMA_MEMLIMIT_ERROR:
        return "needs too much memory";
    case LZMA_MEM_ERROR:
        return "out of memory";
    default:
        return "decoder error";
    }
}

int builder_unxz(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                 char *err, size_t errlen)
{
    uint64_t memlimit = XZ_MEMLIMIT;
    size_t in_pos = 0, out_pos = 0;
    lzma_ret r;

    r = lzma_stream_buffer_decode(&memlimit, 0, NULL, in, &in_pos, in_len, out, &out_pos,
                                  out_len);
    if (r != LZMA_OK)
        return builder_fail(err, errlen, -EINVAL, "kernel: corrupt xz payload (%s)",
                            lzma_reason(r));
    if (out_pos != out_len)
        return size_mismatch(err, errlen, "xz", out_pos, out_len);
    return 0;
}

int builder_unzstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                   char *err, size_t errlen)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    size_t n;
    int rc;

    if (!dctx)
        return builder_fail(err, errlen, -ENOMEM, "kernel: zstd initialisation failed");
    n = ZSTD_decompressDCtx(dctx, out, out_len, in, in_len);
    if (ZSTD_isError(n)) {
        rc = builder_fail(err, errlen, -EINVAL, "kernel: corrupt zstd payload (%s)",
                          ZSTD_getErrorName(n));
        goto out;
    }
    rc = 0;
    if (n != out_len)
        rc = size_mismatch(err, errlen, "zstd", n, out_len);
out:
    ZSTD_freeDCtx(dctx);
    return rc;
}

/* ---- LZ4 ---- */

#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_LEGACY_BLOCK (8u << 20) /* uncompressed size of a legacy block */

/* liblz4 decodes the blocks (its frame API does not read the legacy frame):
 * LZ4_decompress_safe never reads or writes outside the buffers given. */
static int lz4_block(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                     size_t *produced)
{
    int n;
    if (len > INT_MAX || cap > INT_MAX)
        return -EINVAL;
    n = LZ4_decompress_safe((const char *)in, (char *)out, (int)len, (int)cap);
    if (n < 0)
        return -EINVAL;
    *produced = (size_t)n;
    return 0;
}

int builder_unlz4_legacy(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                         char *err, size_t errlen)
{
    size_t ip = 4, op = 0;

    if (in_len < 4 || builder_le32(in) != LZ4_LEGACY_MAGIC)
        return builder_fail(err, errlen, -EINVAL,
                            "kernel: lz4 payload is not in the legacy frame format");
    while (in_len - ip >= 4) {
        uint32_t csize = builder_le32(in + ip);
        size_t cap, got;

        ip += 4;
        if (csize == LZ4_LEGACY_MAGIC)
            continue; /* concatenated frames */
        if (csize == 0)
            break;
        if (csize > in_len - ip)
            return builder_fail(
                err, errlen, -EINVAL,
                "kernel: corrupt lz4 payload (block of %u bytes at offset "
                "%zu runs past the end)",
                csize, ip - 4);
        cap = out_len - op < LZ4_LEGACY_BLOCK ? out_len - op : LZ4_LEGACY_BLOCK;
        if (lz4_block(in + ip, csize, out + op, cap, &got))
            return builder_fail(err, errlen, -EINVAL,
                                "kernel: corrupt lz4 payload (bad block at offset %zu)",
                                ip - 4);
        ip += csize;
        op += got;
    }
    if (op != out_len)
        return size_mismatch(err, errlen, "lz4", op, out_len);
    return 0;
}
