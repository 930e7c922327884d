/* libFuzzer target: kernel image parsing (bzImage + decompressors) and the
 * ELF loader, on arbitrary bytes, into a 32 MiB guest memory.
 *
 * Build and run by hand (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/include -D_GNU_SOURCE \
 *     -D__XEN_INTERFACE_VERSION__=0x00040e00 -o build/builder_fuzz \
 *     tests/fuzz/builder_fuzz.c src/builder/[a-z]?*.c src/hv/gmem.c src/hv/util.c \
 *     -lz -llzma -lzstd
 *   build/builder_fuzz -max_len=65536 -rss_limit_mb=4096 build/fuzz-corpus/builder
 * Seed the corpus with small ELF and bzImage files (tests/unit/test_builder.c
 * builds such images; any vmlinux cut short also works). */
#include "domus/builder.h"
#include "domus/gmem.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gmem m;
    static int ready;
    uint8_t *elf = NULL;
    size_t elf_len = 0;
    uint64_t entry, end;
    int owned = 0;
    char err[256];

    if (!ready) {
        if (gmem_init(&m, GMEM_MIN_RAM))
            abort();
        ready = 1;
    }
    if (builder_kernel_to_elf(data, size, &elf, &elf_len, &owned, err, sizeof(err)) == 0)
        builder_load_elf(&m, elf, elf_len, &entry, &end, err, sizeof(err));
    if (owned)
        builder_buf_free(elf, elf_len);
    return 0;
}
