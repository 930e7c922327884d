/* libFuzzer target: the xl.cfg parser on arbitrary text.
 *
 * Build and run by hand (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/include -D_GNU_SOURCE \
 *     -o build/xlcfg_fuzz tests/fuzz/xlcfg_fuzz.c src/toolstack/xlcfg.c src/hv/util.c
 *   build/xlcfg_fuzz -max_len=8192 build/fuzz-corpus/xlcfg
 * Seed the corpus with a few xl.cfg files. */
#include "domus/xlcfg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xlcfg cfg;
    char err[512];
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (xlcfg_check_text(text, size, "fuzz.cfg", err, sizeof(err)) == 0)
        xlcfg_parse_string(text, "fuzz.cfg", &cfg, err, sizeof(err));
    free(text);
    return 0;
}
