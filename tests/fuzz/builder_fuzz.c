/* libFuzzer target: kernel image parsing (bzImage + decompressors) and the
 * ELF loader, on arbitrary bytes, into a 32 MiB guest memory.  Each call
 * must succeed or fail with a negative errno and a reason in err (the
 * target aborts otherwise).
 *
 * Build: make build/fuzz/builder_fuzz   (also `make fuzz`)
 * Run:   build/fuzz/builder_fuzz -max_total_time=30 -max_len=65536 \
 *            build/fuzz/corpus-builder
 *        (tests/proto/builder-fuzz.sh seeds the corpus with small PVH ELF
 *        images, bare and in bzImages, uncompressed and gzip, xz, zstd and
 *        lz4 compressed, and runs it so; a bzImage's setup alone is 512
 *        bytes per setup_sects, up to 128 KiB, hence the larger max_len) */
#include "domus/builder.h"
#include "domus/gmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* builder_buf_alloc has the kernel populate a scratch buffer of 1 MiB or
 * more up front (MADV_POPULATE_WRITE, a hint whose failure it ignores).
 * The decompression buffer is the size a bzImage records, up to 512 MiB,
 * and a fuzzed image fails long before its decoder fills it: zeroing those
 * pages was 80-95% of the run (~800 inputs/s).  The hint is dropped here;
 * the pages come as the decoder writes them.  Every other madvise passes. */
int madvise(void *addr, size_t len, int advice)
{
    if (advice == MADV_POPULATE_WRITE)
        return 0;
    return (int)syscall(SYS_madvise, addr, len, advice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gmem m;
    static int ready;
    uint8_t *elf = NULL;
    size_t elf_len = 0;
    uint64_t entry, end;
    int owned = 0, rc;
    char err[256];

    if (!ready) {
        if (gmem_init(&m, GMEM_MIN_RAM))
            abort();
        ready = 1;
    }
    err[0] = '\0';
    rc = builder_kernel_to_elf(data, size, &elf, &elf_len, &owned, err, sizeof(err));
    if (rc == 0) {
        rc = builder_load_elf(&m, elf, elf_len, &entry, &end, err, sizeof(err));
        if (rc == 0 && (entry >= end || end > m.low_end))
            abort(); /* the entry lies in a segment, every segment in RAM */
    }
    if (rc > 0 || (rc < 0 && !err[0]))
        abort(); /* 0, or -errno with a reason */
    if (owned)
        builder_buf_free(elf, elf_len);
    return 0;
}
