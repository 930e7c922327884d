/* The input format of the libFuzzer targets backend_fuzz and xenstore_fuzz
 * (rec() in their seed scripts, tests/proto/backend-fuzz.sh and
 * xenstore-fuzz.sh, writes it): a list of records, each byte 0: op;
 * bytes 1-2: length n (little endian);  n bytes: the payload, n capped by
 * what is left of the input. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The record at *off into op, p, n, *off moved past it; false when fewer
 * than 3 bytes are left. */
static inline bool fuzz_record(const uint8_t *data, size_t size, size_t *off, uint8_t *op,
                               const uint8_t **p, size_t *n)
{
    if (*off + 3 > size)
        return false;
    *op = data[*off];
    *n = data[*off + 1] | (size_t)data[*off + 2] << 8;
    *off += 3;
    if (*n > size - *off)
        *n = size - *off;
    *p = data + *off;
    *off += *n;
    return true;
}

#endif
