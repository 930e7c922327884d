/* Unit tests of the domain builder (no /dev/kvm): image formats and
 * decompressors, the ELF loader against malformed input, the PVH layout
 * (start_info, memory map, module list, command line) and the ACPI tables.
 * DOMUS_GUEST_KERNEL names a real bzImage (default: Debian's cloud kernel);
 * DOMUS_ACPI_DUMP names a directory to dump the ACPI tables into (for iasl). */
#include "domus/builder.h"
#include "domus/gmem.h"
#include "../../src/builder/builder_int.h"

#include <elf.h>
#include <errno.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/elfnote.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"

#define DEFAULT_KERNEL "/tmp/kimg/boot/vmlinuz-6.1.0-56-cloud-amd64"
#define MIB (1ULL << 20)

static char err[1024];
static int verbose; /* DOMUS_TEST_VERBOSE: print each expected error message */
static char tmpdir[] = "/tmp/domus-test-builder-XXXXXX";

/* ---- helpers ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static char *tmp_path(const char *name)
{
    static char path[4][256];
    static int i;
    char *p = path[i++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static const char *write_tmp(const char *name, const void *data, size_t len)
{
    char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        perror(p);
        exit(2);
    }
    fclose(f);
    return p;
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* ---- a synthetic PVH ELF ----
 * 0x000 Ehdr, 0x040 phdr[0] PT_LOAD, 0x078 phdr[1] PT_NOTE, 0x100 notes
 * (a GNU note, then Xen PHYS32_ENTRY), 0x200 0x100 bytes of segment data;
 * the segment loads at 2 MiB with memsz 0x2000 (bss tail 0x1f00). */
#define SYN_LEN 0x300
#define SYN_PADDR 0x200000ULL
#define SYN_MEMSZ 0x2000ULL
#define SYN_ENTRY (SYN_PADDR + 0x10)
#define SYN_PH0 0x40
#define SYN_PH1 (0x40 + sizeof(Elf64_Phdr))
#define SYN_NOTES 0x100
#define SYN_XEN_NOTE (SYN_NOTES + 16) /* after the GNU note */

static size_t add_note(uint8_t *p, const char *name, uint32_t type, const void *desc,
                       uint32_t descsz)
{
    Elf64_Nhdr nh = {
        .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz, .n_type = type};
    size_t off = sizeof(nh);
    memcpy(p, &nh, sizeof(nh));
    memcpy(p + off, name, nh.n_namesz);
    off += (nh.n_namesz + 3) & ~3u;
    memcpy(p + off, desc, descsz);
    return off + ((descsz + 3) & ~3u);
}

static void make_elf(uint8_t *b)
{
    Elf64_Ehdr eh = {0};
    Elf64_Phdr load = {0}, note = {0};
    uint32_t entry = SYN_ENTRY, gnu = 0;
    size_t nlen;

    memset(b, 0, SYN_LEN);
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_entry = 0xffffffff81000000ULL;
    eh.e_phoff = SYN_PH0;
    eh.e_ehsize = sizeof(eh);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 2;
    memcpy(b, &eh, sizeof(eh));
    nlen = add_note(b + SYN_NOTES, "GNU", 3, &gnu, 0);
    nlen += add_note(b + SYN_NOTES + nlen, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &entry, 4);
    load = (Elf64_Phdr){.p_type = PT_LOAD,
                        .p_offset = 0x200,
                        .p_paddr = SYN_PADDR,
                        .p_vaddr = 0xffffffff80000000ULL + SYN_PADDR,
                        .p_filesz = 0x100,
                        .p_memsz = SYN_MEMSZ,
                        .p_align = 0x1000,
                        .p_flags = PF_R | PF_X};
    note = (Elf64_Phdr){.p_type = PT_NOTE,
                        .p_offset = SYN_NOTES,
                        .p_filesz = nlen,
                        .p_memsz = nlen,
                        .p_align = 4};
    memcpy(b + SYN_PH0, &load, sizeof(load));
    memcpy(b + SYN_PH1, &note, sizeof(note));
    for (int i = 0; i < 0x100; i++)
        b[0x200 + i] = (uint8_t)(i * 7 + 1);
}

static void set_phdr(uint8_t *b, size_t off, const Elf64_Phdr *ph)
{
    memcpy(b + off, ph, sizeof(*ph));
}

static Elf64_Phdr get_phdr(const uint8_t *b, size_t off)
{
    Elf64_Phdr ph;
    memcpy(&ph, b + off, sizeof(ph));
    return ph;
}

/* ---- fake bzImages ---- */
#define BZ_SETUP 1024 /* setup_sects = 1 */

/* Wraps data (+ le32 olen appended) as a bzImage payload; returns its size. */
static size_t make_bz(uint8_t *out, const uint8_t *data, size_t len, uint32_t olen)
{
    memset(out, 0, BZ_SETUP);
    out[0x1f1] = 1;
    out[0x1fe] = 0x55;
    out[0x1ff] = 0xAA;
    memcpy(out + 0x202, "HdrS", 4);
    out[0x206] = 0x0f;
    out[0x207] = 0x02;
    put32(out + 0x248, 0);
    put32(out + 0x24c, (uint32_t)len + 4);
    memcpy(out + BZ_SETUP, data, len);
    put32(out + BZ_SETUP + len, olen);
    return BZ_SETUP + len + 4;
}

static size_t gzip_buf(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream zs = {0};
    size_t n;
    deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        exit(2);
    n = zs.total_out;
    deflateEnd(&zs);
    return n;
}

static size_t xz_buf(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t pos = 0;
    if (lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in, len, out, &pos, cap) !=
        LZMA_OK)
        exit(2);
    return pos;
}

static size_t zstd_buf(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = ZSTD_compress(out, cap, in, len, 19);
    if (ZSTD_isError(n))
        exit(2);
    return n;
}

/* LZ4 legacy frame with one literals-only block (valid, if not small). */
static size_t lz4_literal_buf(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t o = 8, rest = len - 15;
    put32(out, 0x184C2102);
    out[o++] = 0xF0;
    for (; rest >= 255; rest -= 255)
        out[o++] = 255;
    out[o++] = (uint8_t)rest;
    memcpy(out + o, in, len);
    o += len;
    put32(out + 4, (uint32_t)(o - 8));
    return o;
}

/* ---- tests ---- */

static void test_synthetic_elf(void)
{
    struct gmem m;
    uint8_t elf[SYN_LEN];
    uint64_t entry = 0, end = 0;
    uint8_t *g;
    int rc, bss_zero = 1;

    make_elf(elf);
    if (gmem_init(&m, 32 * MIB)) {
        CHECK("elf_gmem_init", 0);
        return;
    }
    memset(m.host, 0xAA, m.ram_size);
    rc = builder_load_elf(&m, elf, sizeof(elf), &entry, &end, err, sizeof(err));
    CHECK("elf_load_synthetic", rc == 0);
    CHECK("elf_entry", entry == SYN_ENTRY);
    CHECK("elf_kernel_end", end == SYN_PADDR + SYN_MEMSZ);
    g = gmem_ptr(&m, SYN_PADDR, SYN_MEMSZ);
    CHECK("elf_segment_bytes", g && memcmp(g, elf + 0x200, 0x100) == 0);
    for (uint64_t i = 0x100; g && i < SYN_MEMSZ; i++)
        bss_zero &= g[i] == 0;
    CHECK("elf_bss_zeroed", g && bss_zero);
    CHECK("elf_no_write_outside", g && g[SYN_MEMSZ] == 0xAA && g[-1] == 0xAA);
    gmem_destroy(&m);
}

/* With DOMUS_FUZZ_SEEDS=dir, writes the test images there as fuzzer seeds. */
static void save_seed(const char *name, const uint8_t *data, size_t len)
{
    const char *dir = getenv("DOMUS_FUZZ_SEEDS");
    char path[512];
    FILE *f;

    if (!dir)
        return;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

static void round_trip(const char *name, const uint8_t *payload, size_t plen,
                       const uint8_t *want, size_t want_len)
{
    uint8_t *bz = malloc(BZ_SETUP + plen + 4), *elf = NULL;
    size_t bz_len = make_bz(bz, payload, plen, (uint32_t)want_len), elf_len = 0;
    int owned = 0;

    save_seed(name, bz, bz_len);
    int rc = builder_kernel_to_elf(bz, bz_len, &elf, &elf_len, &owned, err, sizeof(err));
    int ok = rc == 0 && owned && elf_len == want_len && memcmp(elf, want, want_len) == 0;
    if (!ok)
        fprintf(stderr, "  %s: rc=%d err='%s'\n", name, rc, err);
    CHECK(name, ok);
    if (owned)
        builder_buf_free(elf, elf_len);
    free(bz);
}

static void test_formats(void)
{
    uint8_t elf[SYN_LEN], comp[4096], bz[4096], *out = NULL;
    size_t n, out_len;
    int owned;

    make_elf(elf);
    save_seed("elf", elf, sizeof(elf));
    n = gzip_buf(elf, sizeof(elf), comp, sizeof(comp));
    round_trip("bz_gzip", comp, n, elf, sizeof(elf));
    n = xz_buf(elf, sizeof(elf), comp, sizeof(comp));
    round_trip("bz_xz", comp, n, elf, sizeof(elf));
    n = zstd_buf(elf, sizeof(elf), comp, sizeof(comp));
    round_trip("bz_zstd", comp, n, elf, sizeof(elf));
    n = lz4_literal_buf(elf, sizeof(elf), comp);
    round_trip("bz_lz4_literals", comp, n, elf, sizeof(elf));

    /* An uncompressed payload is used in place. */
    n = make_bz(bz, elf, sizeof(elf), sizeof(elf));
    CHECK("bz_uncompressed",
          builder_kernel_to_elf(bz, n, &out, &out_len, &owned, err, sizeof(err)) == 0 &&
              !owned && out == bz + BZ_SETUP && memcmp(out, elf, sizeof(elf)) == 0);
    /* A bare ELF is returned as is. */
    CHECK("plain_elf", builder_kernel_to_elf(elf, sizeof(elf), &out, &out_len, &owned,
                                             err, sizeof(err)) == 0 &&
                           !owned && out == elf && out_len == sizeof(elf));
}

/* The lz4 tool's own legacy output, when the tool is installed. */
static void test_lz4_tool(void)
{
    uint8_t elf[SYN_LEN], *comp;
    char cmd[1024];
    size_t n;

    if (system("command -v lz4 >/dev/null 2>&1") != 0) {
        printf("SKIP bz_lz4_tool (no lz4 command)\n");
        return;
    }
    make_elf(elf);
    write_tmp("syn.elf", elf, sizeof(elf));
    snprintf(cmd, sizeof(cmd), "lz4 -q -l -9 -f %s %s", tmp_path("syn.elf"),
             tmp_path("syn.lz4"));
    comp = system(cmd) == 0 ? read_whole(tmp_path("syn.lz4"), &n) : NULL;
    CHECK("lz4_tool_ran", comp != NULL);
    if (comp)
        round_trip("bz_lz4_tool", comp, n, elf, sizeof(elf));
    free(comp);
}

static int lz4_decode(const uint8_t *blk, size_t blen, uint8_t *out, size_t out_len)
{
    uint8_t in[256];
    put32(in, 0x184C2102);
    put32(in + 4, (uint32_t)blen);
    memcpy(in + 8, blk, blen);
    err[0] = 0;
    return builder_unlz4_legacy(in, blen + 8, out, out_len, err, sizeof(err));
}

static void test_lz4_blocks(void)
{
    /* "ab", then a match 2 back of length 4+6=10 (overlapping), then "xyzuvw"
     * (LZ4 ends a block with at least 5 literals, its last match starting at
     * least 12 bytes before the end: liblz4 rejects other blocks). */
    static const uint8_t good[] = {0x26, 'a', 'b', 2,   0,   0x60,
                                   'x',  'y', 'z', 'u', 'v', 'w'};
    static const uint8_t off0[] = {0x26, 'a', 'b', 0,   0,   0x60,
                                   'x',  'y', 'z', 'u', 'v', 'w'};
    static const uint8_t offfar[] = {0x26, 'a', 'b', 3,   0,   0x60,
                                     'x',  'y', 'z', 'u', 'v', 'w'};
    static const uint8_t litlong[] = {0x50, 'a', 'b'};
    static const uint8_t extrun[] = {0xF0, 255, 255};
    static const uint8_t halfoff[] = {0x26, 'a', 'b', 2};
    uint8_t out[64];

    CHECK("lz4_overlap_match", lz4_decode(good, sizeof(good), out, 18) == 0 &&
                                   memcmp(out, "ababababababxyzuvw", 18) == 0);
    /* Offset 0 is outside LZ4's format; liblz4 (1.9.4) decodes it without
     * leaving its buffers (ASan watches), the ELF checks reject the result. */
    int rc0 = lz4_decode(off0, sizeof(off0), out, 18);
    CHECK("lz4_offset_zero_contained", rc0 == 0 || (rc0 == -EINVAL && err[0]));
    CHECK("lz4_offset_before_start",
          lz4_decode(offfar, sizeof(offfar), out, 18) == -EINVAL && err[0]);
    CHECK("lz4_literals_past_end",
          lz4_decode(litlong, sizeof(litlong), out, 18) == -EINVAL && err[0]);
    CHECK("lz4_length_past_end",
          lz4_decode(extrun, sizeof(extrun), out, 18) == -EINVAL && err[0]);
    CHECK("lz4_truncated_offset",
          lz4_decode(halfoff, sizeof(halfoff), out, 18) == -EINVAL && err[0]);
    CHECK("lz4_output_larger",
          lz4_decode(good, sizeof(good), out, 17) == -EINVAL && err[0]);
    CHECK("lz4_output_smaller",
          lz4_decode(good, sizeof(good), out, 19) == -EINVAL && strstr(err, "18 bytes"));
}

/* Expects builder_kernel_to_elf to fail on buf with a message containing want. */
static void expect_image_error(const char *name, const uint8_t *buf, size_t len,
                               const char *want)
{
    uint8_t *elf = NULL;
    size_t elf_len = 0;
    int owned = 0;
    int rc;

    err[0] = 0;
    rc = builder_kernel_to_elf(buf, len, &elf, &elf_len, &owned, err, sizeof(err));
    if (owned)
        builder_buf_free(elf, elf_len);
    if (!(rc < 0 && strstr(err, want)))
        fprintf(stderr, "  %s: rc=%d err='%s' want '%s'\n", name, rc, err, want);
    CHECK(name, rc < 0 && strstr(err, want) != NULL);
    if (verbose)
        printf("     %s\n", err);
}

static void test_bad_images(void)
{
    uint8_t elf[SYN_LEN], comp[4096], bz[8192];
    size_t n, bn;

    make_elf(elf);
    expect_image_error("img_text", (const uint8_t *)"hello, world\n", 13,
                       "not an ELF or bzImage");
    expect_image_error("img_empty", (const uint8_t *)"", 0, "not an ELF or bzImage");

    n = gzip_buf(elf, sizeof(elf), comp, sizeof(comp));
    bn = make_bz(bz, comp, n, sizeof(elf));
    expect_image_error("bz_truncated_header", bz, 0x240, "truncated");
    expect_image_error("bz_truncated_payload", bz, bn - n / 2, "truncated");
    bz[0x1fe] = 0;
    expect_image_error("bz_no_boot_flag", bz, bn, "boot flag");
    bz[0x1fe] = 0x55;
    bz[0x206] = 0x04;
    expect_image_error("bz_old_protocol", bz, bn, "too old");
    bz[0x206] = 0x0f;
    put32(bz + 0x248, 0xFFFFFFF0);
    expect_image_error("bz_payload_offset_huge", bz, bn, "truncated");
    put32(bz + 0x248, 0);
    put32(bz + bn - 4, sizeof(elf) + 1);
    expect_image_error("bz_size_word_wrong", bz, bn, "decompresses to");
    put32(bz + bn - 4, 0xFFFFFFFF);
    expect_image_error("bz_size_word_huge", bz, bn, "implausible");
    put32(bz + bn - 4, sizeof(elf));
    for (size_t i = 20; i < 40; i++)
        bz[BZ_SETUP + i] ^= 0x5A;
    expect_image_error("bz_corrupt_gzip", bz, bn, "gzip");

    n = xz_buf(elf, sizeof(elf), comp, sizeof(comp));
    bn = make_bz(bz, comp, n, sizeof(elf));
    bz[BZ_SETUP + n / 2] ^= 0xFF;
    expect_image_error("bz_corrupt_xz", bz, bn, "xz");

    n = zstd_buf(elf, sizeof(elf), comp, sizeof(comp));
    bn = make_bz(bz, comp, n, sizeof(elf));
    bz[BZ_SETUP + n - 3] ^= 0xFF; /* checksum or last block */
    expect_image_error("bz_corrupt_zstd", bz, bn, "zstd");

    bn = make_bz(bz, (const uint8_t *)"BZh91AY&SY", 10, 4096);
    expect_image_error("bz_bzip2_rejected", bz, bn, "bzip2");
    bn = make_bz(bz, (const uint8_t *)"\x5d\x00\x00\x80\x00\xff\xff", 7, 4096);
    expect_image_error("bz_lzma_rejected", bz, bn, "lzma");
    bn = make_bz(bz, (const uint8_t *)"garbage!", 8, 4096);
    expect_image_error("bz_unknown_compression", bz, bn, "not recognised");
    memset(bz, 'T', 200); /* text, gzip-compressed: decompresses, is no ELF */
    n = gzip_buf(bz, 200, comp, sizeof(comp));
    bn = make_bz(bz, comp, n, 200);
    expect_image_error("bz_payload_not_elf", bz, bn, "payload is not an ELF");
    bn = make_bz(bz, (const uint8_t *)"\x1f\x8b\x08\x00", 4, 4096);
    expect_image_error("bz_gzip_truncated", bz, bn, "gzip");

    /* Every truncation of a gzip bzImage fails cleanly. */
    n = gzip_buf(elf, sizeof(elf), comp, sizeof(comp));
    bn = make_bz(bz, comp, n, sizeof(elf));
    int all = 1;
    for (size_t len = 0x202; len < bn; len++) {
        uint8_t *e = NULL;
        size_t el;
        int owned = 0;
        uint8_t *copy = malloc(len); /* exact size, so ASan sees overreads */
        memcpy(copy, bz, len);
        all &= builder_kernel_to_elf(copy, len, &e, &el, &owned, err, sizeof(err)) < 0;
        if (owned)
            builder_buf_free(e, el);
        free(copy);
    }
    CHECK("bz_every_truncation_fails", all);
}

/* Expects builder_load_elf to fail on the (modified) image with want in err. */
static void expect_elf_error(struct gmem *m, const char *name, const uint8_t *elf,
                             size_t len, const char *want)
{
    uint64_t entry = 0, end = 0;
    uint8_t *copy = malloc(len ? len : 1);
    int rc;

    memcpy(copy, elf, len);
    err[0] = 0;
    rc = builder_load_elf(m, copy, len, &entry, &end, err, sizeof(err));
    free(copy);
    if (!(rc == -EINVAL && strstr(err, want)))
        fprintf(stderr, "  %s: rc=%d err='%s' want '%s'\n", name, rc, err, want);
    CHECK(name, rc == -EINVAL && strstr(err, want) != NULL);
    if (verbose)
        printf("     %s\n", err);
}

static void test_bad_load(struct gmem *m, const char *name, uint64_t paddr,
                          uint64_t memsz, const char *want)
{
    uint8_t elf[SYN_LEN];
    Elf64_Phdr ph;

    make_elf(elf);
    ph = get_phdr(elf, SYN_PH0);
    ph.p_paddr = paddr;
    ph.p_memsz = memsz;
    set_phdr(elf, SYN_PH0, &ph);
    expect_elf_error(m, name, elf, sizeof(elf), want);
}

static void test_bad_elf_headers(struct gmem *m)
{
    uint8_t elf[SYN_LEN];
    Elf64_Ehdr eh;

    make_elf(elf);
    expect_elf_error(m, "elf_truncated_ehdr", elf, 40, "ELF header truncated");
    expect_elf_error(m, "elf_truncated_phdrs", elf, SYN_PH0 + 60, "outside the file");
    elf[EI_CLASS] = ELFCLASS32;
    expect_elf_error(m, "elf_class32", elf, sizeof(elf), "ELF64");
    make_elf(elf);
    memcpy(&eh, elf, sizeof(eh));
    eh.e_machine = EM_AARCH64;
    memcpy(elf, &eh, sizeof(eh));
    expect_elf_error(m, "elf_machine", elf, sizeof(elf), "x86-64");
    make_elf(elf);
    eh.e_machine = EM_X86_64;
    eh.e_phoff = 0xFFFFFFFFFFFFFFF0ULL;
    memcpy(elf, &eh, sizeof(eh));
    expect_elf_error(m, "elf_phoff_outside", elf, sizeof(elf), "outside the file");
    eh.e_phoff = SYN_PH0;
    eh.e_phnum = 0xFFFF;
    memcpy(elf, &eh, sizeof(eh));
    expect_elf_error(m, "elf_phnum_huge", elf, sizeof(elf), "program headers");
    eh.e_phnum = 0;
    memcpy(elf, &eh, sizeof(eh));
    expect_elf_error(m, "elf_phnum_zero", elf, sizeof(elf), "program headers");
    eh.e_phnum = 2;
    eh.e_phentsize = 32;
    memcpy(elf, &eh, sizeof(eh));
    expect_elf_error(m, "elf_phentsize", elf, sizeof(elf), "e_phentsize");
}

static void test_bad_elf_segments(struct gmem *m)
{
    uint8_t elf[SYN_LEN];
    Elf64_Phdr ph;

    make_elf(elf);
    ph = get_phdr(elf, SYN_PH0);
    ph.p_offset = 0x280; /* 0x280 + 0x100 > file size */
    set_phdr(elf, SYN_PH0, &ph);
    expect_elf_error(m, "elf_load_outside_file", elf, sizeof(elf), "outside the file");
    ph.p_offset = 0xFFFFFFFFFFFFFF00ULL; /* wraps */
    set_phdr(elf, SYN_PH0, &ph);
    expect_elf_error(m, "elf_load_offset_wraps", elf, sizeof(elf), "outside the file");
    make_elf(elf);
    ph = get_phdr(elf, SYN_PH0);
    ph.p_memsz = 0x80; /* < p_filesz */
    set_phdr(elf, SYN_PH0, &ph);
    expect_elf_error(m, "elf_filesz_gt_memsz", elf, sizeof(elf), "p_filesz");
    test_bad_load(m, "elf_segment_beyond_ram", 0x40000000ULL, SYN_MEMSZ,
                  "does not fit in guest RAM");
    test_bad_load(m, "elf_segment_crosses_ram_end", m->low_end - 0x1000, SYN_MEMSZ,
                  "does not fit in guest RAM");
    test_bad_load(m, "elf_segment_below_1mib", 0x1000, SYN_MEMSZ, "does not fit");
    test_bad_load(m, "elf_segment_paddr_wraps", 0xFFFFFFFFFFFFF000ULL, SYN_MEMSZ,
                  "does not fit");
    test_bad_load(m, "elf_segment_huge_memsz", SYN_PADDR, 0xFFFFFFFFFFFFFF00ULL,
                  "does not fit");
    test_bad_load(m, "elf_kernel_larger_than_ram", SYN_PADDR, m->ram_size,
                  "does not fit");
}

/* The synthetic ELF with a third program header: an empty PT_LOAD at paddr. */
#define SYN_PH2 (SYN_PH1 + sizeof(Elf64_Phdr))
static void make_elf_empty_load(uint8_t *b, uint64_t paddr)
{
    Elf64_Phdr ph = {.p_type = PT_LOAD, .p_paddr = paddr, .p_align = 0x1000};
    Elf64_Ehdr eh;

    make_elf(b);
    memcpy(&eh, b, sizeof(eh));
    eh.e_phnum = 3;
    memcpy(b, &eh, sizeof(eh));
    set_phdr(b, SYN_PH2, &ph);
}

/* An empty segment loads nothing, wherever it says: it is no part of the
 * kernel's end (where the ramdisk may start). */
static void test_empty_segments(struct gmem *m)
{
    static const uint64_t where[] = {64 * MIB, 0xFFFFFFFFFFFFF800ULL, 0};
    uint8_t elf[SYN_LEN];
    uint64_t entry, end;
    int all = 1;

    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        make_elf_empty_load(elf, where[i]);
        end = 0;
        all &=
            builder_load_elf(m, elf, sizeof(elf), &entry, &end, err, sizeof(err)) == 0 &&
            end == SYN_PADDR + SYN_MEMSZ;
        if (end != SYN_PADDR + SYN_MEMSZ)
            fprintf(stderr, "  empty segment at %#llx: kernel end %#llx\n",
                    (unsigned long long)where[i], (unsigned long long)end);
    }
    CHECK("elf_empty_segment_not_in_kernel_end", all);
}

static void set_note_word(uint8_t *elf, size_t off, uint32_t v)
{
    put32(elf + off, v);
}

static void test_bad_elf_notes(struct gmem *m)
{
    uint8_t elf[SYN_LEN];
    Elf64_Phdr ph;

    make_elf(elf);
    set_note_word(elf, SYN_XEN_NOTE, 0xFFFFFFFF); /* namesz */
    expect_elf_error(m, "note_huge_namesz", elf, sizeof(elf), "malformed ELF note");
    make_elf(elf);
    set_note_word(elf, SYN_XEN_NOTE + 4, 0xFFFFFFFF); /* descsz */
    expect_elf_error(m, "note_huge_descsz", elf, sizeof(elf), "malformed ELF note");
    make_elf(elf);
    set_note_word(elf, SYN_NOTES, 0xFFFFFFFD); /* first note's namesz, padding wraps */
    expect_elf_error(m, "note_namesz_pad_wraps", elf, sizeof(elf), "malformed ELF note");
    make_elf(elf);
    set_note_word(elf, SYN_XEN_NOTE + 4, 2); /* descsz neither 4 nor 8 */
    expect_elf_error(m, "note_bad_descsz", elf, sizeof(elf), "expected 4 or 8");
    make_elf(elf);
    set_note_word(elf, SYN_XEN_NOTE + 8, XEN_ELFNOTE_ENTRY); /* not PHYS32_ENTRY */
    expect_elf_error(m, "note_missing_pvh", elf, sizeof(elf),
                     "kernel: no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY); Domus boots "
                     "PVH kernels");
    make_elf(elf);
    memcpy(elf + SYN_XEN_NOTE + 12, "Xex", 4); /* wrong owner */
    expect_elf_error(m, "note_wrong_name", elf, sizeof(elf), "no PVH entry point");
    make_elf(elf);
    ph = get_phdr(elf, SYN_PH1);
    ph.p_offset = 0x2F0;
    set_phdr(elf, SYN_PH1, &ph);
    expect_elf_error(m, "note_segment_outside_file", elf, sizeof(elf),
                     "outside the file");
    make_elf(elf);
    set_note_word(elf, SYN_XEN_NOTE + 16, 0x5000); /* entry outside the segment */
    expect_elf_error(m, "note_entry_outside_segments", elf, sizeof(elf),
                     "outside the loaded segments");
}

/* Every prefix and many byte flips of the synthetic ELF: no crash. */
static void test_elf_mutations(struct gmem *m)
{
    uint8_t elf[SYN_LEN];
    uint64_t entry, end;
    uint32_t seed = 12345;
    int all = 1;

    make_elf(elf);
    for (size_t len = 0; len < sizeof(elf); len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, elf, len);
        all &= builder_load_elf(m, copy, len, &entry, &end, err, sizeof(err)) == -EINVAL;
        free(copy);
    }
    CHECK("elf_every_truncation_fails", all);
    for (int i = 0; i < 20000; i++) {
        make_elf(elf);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245 + 12345;
            elf[(seed >> 8) % sizeof(elf)] ^= (uint8_t)(seed >> 20);
        }
        builder_load_elf(m, elf, sizeof(elf), &entry, &end, err, sizeof(err));
    }
    CHECK("elf_random_mutations_survive", 1);
}

static void read_start_info(struct gmem *m, struct hvm_start_info *si,
                            struct hvm_memmap_table_entry *map, unsigned max)
{
    memset(si, 0, sizeof(*si));
    gmem_read(m, BUILDER_START_INFO_GPA, si, sizeof(*si));
    if (si->memmap_entries <= max)
        gmem_read(m, si->memmap_paddr, map, si->memmap_entries * sizeof(*map));
}

static int memmap_ok(const struct hvm_memmap_table_entry *e, unsigned n, uint64_t low_end,
                     uint64_t high)
{
    int ok = n == (high ? 5u : 4u);
    ok = ok && e[0].addr == 0 && e[0].size == 0xA0000 && e[0].type == 1;
    ok = ok && e[1].addr == 0xA0000 && e[1].size == 0x60000 && e[1].type == 2;
    ok = ok && e[2].addr == 0x100000 && e[2].size == low_end - 0x100000 && e[2].type == 1;
    ok = ok && e[3].addr == GMEM_SPECIAL_BASE &&
         e[3].size == GMEM_SPECIAL_PAGES * 4096ULL && e[3].type == 2;
    if (high)
        ok = ok && e[4].addr == GMEM_HIGH_BASE && e[4].size == high && e[4].type == 1;
    return ok;
}

static void test_memmap_high(void)
{
    struct gmem fake = {.low_end = GMEM_LOW_LIMIT, .high_size = 1ULL << 30};
    struct hvm_memmap_table_entry e[BUILDER_MEMMAP_MAX];
    unsigned n = builder_memmap(&fake, e);
    CHECK("memmap_high_ram", memmap_ok(e, n, GMEM_LOW_LIMIT, 1ULL << 30));
}

/* Builds with the given kernel file; checks start_info and everything it
 * points to.  The ramdisk is 1 MiB + 123 bytes of a pattern. */
static void check_build(const char *tag, const char *kernel, uint64_t ram)
{
    static const char cmdline[] = "console=hvc0 earlyprintk=xen root=/dev/xvda1 quiet";
    struct build_args a = {.kernel = kernel, .cmdline = cmdline, .vcpus = 4};
    struct build_result r = {0};
    struct hvm_start_info si;
    struct hvm_memmap_table_entry map[BUILDER_MEMMAP_MAX];
    struct hvm_modlist_entry mod = {0};
    size_t rd_len = MIB + 123;
    uint8_t *rd = malloc(rd_len), *g;
    char cl[BUILDER_CMDLINE_MAX], name[128];
    struct gmem m;
    int rc;

    for (size_t i = 0; i < rd_len; i++)
        rd[i] = (uint8_t)(i * 131 + (i >> 13));
    a.ramdisk = write_tmp("initrd", rd, rd_len);
    if (gmem_init(&m, ram)) {
        CHECK("build_gmem_init", 0);
        free(rd);
        return;
    }
    rc = builder_build_pvh(&m, &a, &r, err, sizeof(err));
    if (rc)
        fprintf(stderr, "  %s: rc=%d err='%s'\n", tag, rc, err);
#define NAMED(s) (snprintf(name, sizeof(name), "%s_%s", tag, s), name)
    CHECK(NAMED("build"), rc == 0);
    CHECK(NAMED("result"), r.start_info_gpa == BUILDER_START_INFO_GPA && r.entry != 0);
    read_start_info(&m, &si, map, BUILDER_MEMMAP_MAX);
    CHECK(NAMED("start_info_header"), si.magic == XEN_HVM_START_MAGIC_VALUE &&
                                          si.version == 1 && si.flags == 0 &&
                                          si.reserved == 0);
    CHECK(NAMED("rsdp"), si.rsdp_paddr == BUILDER_ACPI_GPA);
    CHECK(NAMED("memmap"), memmap_ok(map, si.memmap_entries, m.low_end, m.high_size));
    CHECK(NAMED("memmap_in_page"),
          si.memmap_paddr >= BUILDER_START_INFO_GPA + sizeof(si) &&
              si.memmap_paddr + si.memmap_entries * sizeof(map[0]) <=
                  BUILDER_CMDLINE_GPA);
    memset(cl, 0, sizeof(cl));
    gmem_read(&m, si.cmdline_paddr, cl, sizeof(cl));
    CHECK(NAMED("cmdline"),
          si.cmdline_paddr == BUILDER_CMDLINE_GPA && !strcmp(cl, cmdline));
    gmem_read(&m, si.modlist_paddr, &mod, sizeof(mod));
    CHECK(NAMED("modlist"), si.nr_modules == 1 && mod.size == rd_len &&
                                (mod.paddr & 0xFFF) == 0 && mod.cmdline_paddr == 0);
    CHECK(NAMED("initrd_high"),
          mod.paddr + rd_len <= m.low_end && m.low_end - (mod.paddr + rd_len) < 4096);
    g = gmem_ptr(&m, mod.paddr, rd_len);
    CHECK(NAMED("initrd_bytes"), g && memcmp(g, rd, rd_len) == 0);
    gmem_destroy(&m);
    free(rd);
#undef NAMED
}

static void test_build_synthetic(void)
{
    uint8_t elf[SYN_LEN];
    make_elf(elf);
    check_build("syn", write_tmp("syn-kernel", elf, sizeof(elf)), 32 * MIB);
    /* 3.5 GiB (a sparse memfd): RAM above 4 GiB, the initrd still below 3 GiB. */
    check_build("syn_high", tmp_path("syn-kernel"), 3584 * MIB);
}

/* Expects builder_build_pvh to fail with want in err. */
static void expect_build_error(const char *name, const struct build_args *a, uint64_t ram,
                               int want_rc, const char *want)
{
    struct build_result r;
    struct gmem m;
    int rc;

    if (gmem_init(&m, ram)) {
        CHECK(name, 0);
        return;
    }
    err[0] = 0;
    rc = builder_build_pvh(&m, a, &r, err, sizeof(err));
    if (!(rc < 0 && (!want_rc || rc == want_rc) && strstr(err, want)))
        fprintf(stderr, "  %s: rc=%d err='%s' want '%s'\n", name, rc, err, want);
    CHECK(name, rc < 0 && (!want_rc || rc == want_rc) && strstr(err, want) != NULL);
    if (verbose)
        printf("     %s\n", err);
    gmem_destroy(&m);
}

static void test_build_errors(void)
{
    uint8_t elf[SYN_LEN];
    const char *kern, *text, *bigrd;
    char longcl[BUILDER_CMDLINE_MAX + 1], want[256];
    struct build_args a = {.vcpus = 1};

    make_elf(elf);
    kern = write_tmp("k-ok", elf, sizeof(elf));
    text = write_tmp("k-text", "this is not a kernel\n", 21);
    a.kernel = "/nonexistent/vmlinuz";
    expect_build_error("build_missing_kernel", &a, 32 * MIB, -ENOENT,
                       "kernel /nonexistent/vmlinuz: No such file or directory");
    a.kernel = text;
    expect_build_error("build_text_kernel", &a, 32 * MIB, -EINVAL,
                       "kernel: not an ELF or bzImage");
    a.kernel = tmpdir;
    expect_build_error("build_kernel_is_dir", &a, 32 * MIB, -EINVAL,
                       "not a regular file");
    a.kernel = kern;
    a.ramdisk = "/nonexistent/initrd";
    expect_build_error("build_missing_ramdisk", &a, 32 * MIB, -ENOENT,
                       "ramdisk /nonexistent/initrd: No such file or directory");
    bigrd = tmp_path("big-initrd");
    FILE *f = fopen(bigrd, "w");
    fclose(f);
    if (truncate(bigrd, 40 * MIB) == 0) {
        a.ramdisk = bigrd;
        expect_build_error("build_ramdisk_too_big", &a, 32 * MIB, 0, "does not fit");
    }
    /* 30 MiB fit in a 32 MiB guest only over the kernel at 2 MiB; an empty
     * segment whose end wraps must not let the ramdisk go there. */
    make_elf_empty_load(elf, 0xFFFFFFFFFFFFF800ULL);
    a.kernel = write_tmp("k-empty-wraps", elf, sizeof(elf));
    f = fopen(bigrd, "w");
    fclose(f);
    if (truncate(bigrd, 30 * MIB) == 0) {
        a.ramdisk = bigrd;
        expect_build_error("build_ramdisk_never_over_kernel", &a, 32 * MIB, -ENOMEM,
                           "does not fit");
    }
    a.kernel = kern;
    a.ramdisk = NULL;
    memset(longcl, 'x', BUILDER_CMDLINE_MAX);
    longcl[BUILDER_CMDLINE_MAX] = 0;
    a.cmdline = longcl;
    snprintf(want, sizeof(want), "at most %d", BUILDER_CMDLINE_MAX - 1);
    expect_build_error("build_cmdline_too_long", &a, 32 * MIB, -EINVAL, want);
    longcl[BUILDER_CMDLINE_MAX - 1] = 0; /* exactly the maximum: fine */
    {
        struct gmem m;
        struct build_result r;
        char cl[BUILDER_CMDLINE_MAX];
        gmem_init(&m, 32 * MIB);
        CHECK("build_cmdline_max_ok",
              builder_build_pvh(&m, &a, &r, err, sizeof(err)) == 0 &&
                  gmem_read(&m, BUILDER_CMDLINE_GPA, cl, sizeof(cl)) == 0 &&
                  strlen(cl) == BUILDER_CMDLINE_MAX - 1);
        gmem_destroy(&m);
    }
    a.cmdline = NULL;
    {
        struct gmem m;
        struct build_result r;
        struct hvm_start_info si;
        a.ramdisk = ""; /* xl.cfg's "no ramdisk" */
        gmem_init(&m, 32 * MIB);
        CHECK("build_empty_ramdisk_is_none",
              builder_build_pvh(&m, &a, &r, err, sizeof(err)) == 0 &&
                  gmem_read(&m, BUILDER_START_INFO_GPA, &si, sizeof(si)) == 0 &&
                  si.nr_modules == 0 && si.modlist_paddr == 0);
        gmem_destroy(&m);
        a.ramdisk = NULL;
    }
    a.kernel = "";
    expect_build_error("build_empty_kernel", &a, 32 * MIB, -EINVAL, "no kernel");
    a.kernel = kern;
    a.vcpus = 0;
    expect_build_error("build_vcpus_zero", &a, 32 * MIB, -EINVAL, "vcpus");
    a.vcpus = BUILDER_MAX_VCPUS + 1;
    expect_build_error("build_vcpus_too_many", &a, 32 * MIB, -EINVAL, "vcpus");
}

/* ---- ACPI ---- */

struct sdt {
    uint64_t gpa;
    uint32_t len;
    uint8_t *p; /* host copy */
};

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    while (n--)
        s += *p++;
    return s;
}

static int get_sdt(struct gmem *m, uint64_t gpa, const char *sig, struct sdt *t)
{
    uint8_t hdr[36];
    t->p = NULL;
    if (gmem_read(m, gpa, hdr, sizeof(hdr)) || memcmp(hdr, sig, 4) != 0)
        return -1;
    memcpy(&t->len, hdr + 4, 4);
    if (t->len < 36 || t->len > 0x10000 || gpa + t->len > 0x100000)
        return -1;
    t->gpa = gpa;
    t->p = malloc(t->len);
    gmem_read(m, gpa, t->p, t->len);
    return sum(t->p, t->len) == 0 ? 0 : -1;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void dump_table(const char *dir, const char *name, const struct sdt *t)
{
    char path[512];
    FILE *f;
    if (!t->p)
        return;
    snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
    f = fopen(path, "wb");
    if (f) {
        fwrite(t->p, 1, t->len, f);
        fclose(f);
    }
}

static int gas_io8(const uint8_t *g, uint16_t port)
{
    return g[0] == 1 && g[1] == 8 && g[2] == 0 && g[3] == 1 && rd64(g + 4) == port;
}

static void check_fadt(const struct sdt *fadt, const struct sdt *dsdt, const char *n)
{
    const uint8_t *f = fadt->p;
    uint16_t iapc;
    uint32_t flags;
    char name[64];
    static const uint8_t s5[] = {0x08, '_',  'S', '5',  '_', 0x12, 0x08,
                                 0x04, 0x0A, 5,   0x0A, 5,   0,    0};

    memcpy(&iapc, f + 109, 2);
    flags = rd32(f + 112);
    snprintf(name, sizeof(name), "acpi_fadt_%s", n);
    CHECK(name,
          fadt->len == 276 && f[8] == 6 && f[46] == 9 && (flags & (1u << 20)) &&
              (flags & (1u << 10)) && (iapc & (1u << 5)) && (iapc & (1u << 2)) &&
              !(iapc & 3) && gas_io8(f + 116, ACPI_RESET_PORT) &&
              f[128] == ACPI_RESET_VALUE && gas_io8(f + 244, ACPI_SLEEP_CONTROL_PORT) &&
              gas_io8(f + 256, ACPI_SLEEP_STATUS_PORT) && rd64(f + 140) == dsdt->gpa);
    snprintf(name, sizeof(name), "acpi_dsdt_s5_%s", n);
    CHECK(name,
          dsdt->len == 36 + sizeof(s5) && memcmp(dsdt->p + 36, s5, sizeof(s5)) == 0);
}

static int madt_ok(const struct sdt *madt, unsigned vcpus)
{
    const uint8_t *p = madt->p;
    unsigned n = 0, off = 44;
    int ok = rd32(p + 36) == 0xFEE00000u;

    while (off + 2 <= madt->len && p[off + 1] >= 2) {
        ok = ok && p[off] == 0 && p[off + 1] == 8 && p[off + 2] == n && p[off + 3] == n &&
             rd32(p + off + 4) == 1;
        n++;
        off += p[off + 1];
    }
    return ok && off == madt->len && n == vcpus;
}

static void test_acpi_vcpus(unsigned vcpus)
{
    struct gmem m;
    struct sdt xsdt = {0}, rsdt = {0}, fadt = {0}, madt = {0}, dsdt = {0};
    uint8_t rsdp[36];
    uint64_t rsdp_gpa = 0;
    const char *dump = getenv("DOMUS_ACPI_DUMP");
    char n[16], name[64];
    int rc;

    snprintf(n, sizeof(n), "vcpus%u", vcpus);
    gmem_init(&m, 32 * MIB);
    rc = builder_write_acpi(&m, vcpus, &rsdp_gpa);
    snprintf(name, sizeof(name), "acpi_write_%s", n);
    CHECK(name, rc == 0 && rsdp_gpa == BUILDER_ACPI_GPA);
    gmem_read(&m, rsdp_gpa, rsdp, sizeof(rsdp));
    snprintf(name, sizeof(name), "acpi_rsdp_%s", n);
    CHECK(name, memcmp(rsdp, "RSD PTR ", 8) == 0 && sum(rsdp, 20) == 0 &&
                    sum(rsdp, 36) == 0 && rsdp[15] == 2 && rd32(rsdp + 20) == 36);
    /* Each table is read (and dumped) even when another one is broken. */
    int rx = get_sdt(&m, rd64(rsdp + 24), "XSDT", &xsdt);
    int rr = get_sdt(&m, rd32(rsdp + 16), "RSDT", &rsdt);
    int rf = xsdt.p ? get_sdt(&m, rd64(xsdt.p + 36), "FACP", &fadt) : -1;
    int ra = xsdt.p ? get_sdt(&m, rd64(xsdt.p + 44), "APIC", &madt) : -1;
    int rd = fadt.p ? get_sdt(&m, rd64(fadt.p + 140), "DSDT", &dsdt) : -1;
    snprintf(name, sizeof(name), "acpi_xsdt_rsdt_%s", n);
    CHECK(name, rx == 0 && rr == 0 && xsdt.len == 36 + 16 && rsdt.len == 36 + 8 &&
                    rd32(rsdt.p + 36) == rd64(xsdt.p + 36) &&
                    rd32(rsdt.p + 40) == rd64(xsdt.p + 44));
    snprintf(name, sizeof(name), "acpi_checksums_%s", n);
    CHECK(name, rx == 0 && rr == 0 && rf == 0 && ra == 0 && rd == 0);
    if (fadt.p && dsdt.p)
        check_fadt(&fadt, &dsdt, n);
    snprintf(name, sizeof(name), "acpi_madt_%s", n);
    CHECK(name, madt.p && madt_ok(&madt, vcpus));
    if (dump && vcpus == 8) {
        struct sdt r = {.len = 36, .p = rsdp};
        dump_table(dump, "xsdt", &xsdt);
        dump_table(dump, "rsdt", &rsdt);
        dump_table(dump, "facp", &fadt);
        dump_table(dump, "apic", &madt);
        dump_table(dump, "dsdt", &dsdt);
        dump_table(dump, "rsdp", &r);
    }
    free(xsdt.p);
    free(rsdt.p);
    free(fadt.p);
    free(madt.p);
    free(dsdt.p);
    gmem_destroy(&m);
}

/* Runs cmd; 1 when its output contains want and none of the bad words. */
static int tool_output_ok(const char *cmd, const char *want)
{
    static const char *bad[] = {"Incorrect", "Error", "Warning", "Invalid"};
    char line[512];
    int found = 0, clean = 1;
    FILE *p = popen(cmd, "r");

    if (!p)
        return 0;
    while (fgets(line, sizeof(line), p)) {
        found |= strstr(line, want) != NULL;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            if (strstr(line, bad[i])) {
                fprintf(stderr, "  %s", line);
                clean = 0;
            }
    }
    return pclose(p) == 0 && found && clean;
}

/* ACPICA's own tools (Debian acpica-tools), the code Linux runs, on the tables. */
static void test_acpi_tools(void)
{
    static const char *tables[] = {"xsdt", "rsdt", "facp", "apic", "dsdt"};
    char dir[300], cmd[1200], name[64];

    if (system(
            "command -v iasl >/dev/null 2>&1 && command -v acpiexec >/dev/null 2>&1")) {
        printf("SKIP acpi_iasl (no iasl/acpiexec: apt-get install acpica-tools)\n");
        return;
    }
    snprintf(dir, sizeof(dir), "%s/acpi", tmpdir);
    mkdir(dir, 0700);
    setenv("DOMUS_ACPI_DUMP", dir, 1);
    test_acpi_vcpus(8);
    unsetenv("DOMUS_ACPI_DUMP");
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat 2>&1", dir, tables[i]);
        snprintf(name, sizeof(name), "acpi_iasl_%s", tables[i]);
        CHECK(name,
              tool_output_ok(cmd, strcmp(tables[i], "dsdt") ? "decoded"
                                                            : "Disassembly completed"));
    }
    snprintf(cmd, sizeof(cmd),
             "cd %s && acpiexec -b 'evaluate \\_S5' facp.dat dsdt.dat apic.dat 2>&1",
             dir);
    CHECK("acpi_acpiexec_s5", tool_output_ok(cmd, "Contains 4 Elements"));
    snprintf(cmd, sizeof(cmd), "cd %s && acpiexec -b 'sleep 5' facp.dat dsdt.dat 2>&1",
             dir);
    CHECK("acpi_acpiexec_extended_sleep",
          tool_output_ok(cmd, "Sleep-A: 05, Sleep-B: 05") &&
              tool_output_ok(cmd, "HwExtendedSleep"));
}

static void test_acpi(void)
{
    uint64_t rsdp;
    struct gmem m;

    test_acpi_vcpus(1);
    test_acpi_vcpus(8);
    test_acpi_vcpus(BUILDER_MAX_VCPUS);
    gmem_init(&m, 32 * MIB);
    CHECK("acpi_vcpus_zero", builder_write_acpi(&m, 0, &rsdp) == -EINVAL);
    CHECK("acpi_vcpus_too_many",
          builder_write_acpi(&m, BUILDER_MAX_VCPUS + 1, &rsdp) == -EINVAL);
    gmem_destroy(&m);
}

/* ---- the real Debian kernel ---- */

/* pvh_start_xen (arch/x86/platform/pvh/head.S) begins with cld; lgdt disp32. */
static int is_pvh_start_xen(struct gmem *m, uint64_t entry)
{
    static const uint8_t code[] = {0xfc, 0x0f, 0x01, 0x15};
    const uint8_t *g = gmem_ptr(m, entry, sizeof(code));
    return g && memcmp(g, code, sizeof(code)) == 0;
}

static void test_debian_kernel(void)
{
    const char *kernel = getenv("DOMUS_GUEST_KERNEL");
    uint8_t *buf, *elf = NULL;
    size_t len, elf_len = 0;
    uint64_t entry = 0, end = 0;
    int owned = 0, rc;
    struct gmem m;
    double t0, t1;

    if (!kernel)
        kernel = DEFAULT_KERNEL;
    buf = read_whole(kernel, &len);
    if (!buf) {
        printf("SKIP debian_kernel (%s not found)\n", kernel);
        return;
    }
    t0 = now_ms();
    rc = builder_kernel_to_elf(buf, len, &elf, &elf_len, &owned, err, sizeof(err));
    t1 = now_ms();
    if (rc)
        fprintf(stderr, "  debian: %s\n", err);
    CHECK("debian_decompress", rc == 0 && owned && elf_len > len);
    printf("INFO debian_decompress %zu -> %zu bytes in %.0f ms (this build's flags)\n",
           len, elf_len, t1 - t0);
    gmem_init(&m, 256 * MIB);
    rc = rc ? rc : builder_load_elf(&m, elf, elf_len, &entry, &end, err, sizeof(err));
    if (rc)
        fprintf(stderr, "  debian: %s\n", err);
    CHECK("debian_load_pvh_entry", rc == 0 && entry > 0x100000 && entry < end);
    CHECK("debian_entry_is_pvh_start_xen", rc == 0 && is_pvh_start_xen(&m, entry));
    printf("INFO debian entry %#llx kernel end %#llx\n", (unsigned long long)entry,
           (unsigned long long)end);
    gmem_destroy(&m);
    if (owned)
        builder_buf_free(elf, elf_len);
    free(buf);
    check_build("debian", kernel, 256 * MIB);
}

int main(void)
{
    struct gmem m;
    char cmd[300];

    setvbuf(stdout, NULL, _IOLBF, 0);
    verbose = getenv("DOMUS_TEST_VERBOSE") != NULL;
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_synthetic_elf();
    test_formats();
    test_lz4_tool();
    test_lz4_blocks();
    test_bad_images();
    if (gmem_init(&m, 32 * MIB) == 0) {
        test_bad_elf_headers(&m);
        test_bad_elf_segments(&m);
        test_bad_elf_notes(&m);
        test_empty_segments(&m);
        test_elf_mutations(&m);
        gmem_destroy(&m);
    }
    test_memmap_high();
    test_build_synthetic();
    test_build_errors();
    test_acpi();
    test_acpi_tools();
    test_debian_kernel();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    if (failures)
        printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
