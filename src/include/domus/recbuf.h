/* Little-endian record bodies for the save image (docs/save-image.md).
 *
 * A struct recbuf grows as values are appended; an allocation failure is
 * sticky (rb->err = -ENOMEM) and later puts do nothing, so a writer checks
 * once at the end.  A struct recrd reads a body it does not own; reading
 * past its end is sticky too (rd->err = -EINVAL) and yields zeros, so a
 * loader checks rd_done() once before it changes anything. */
#ifndef DOMUS_RECBUF_H
#define DOMUS_RECBUF_H

#include <stddef.h>
#include <stdint.h>

struct recbuf {
    uint8_t *data;
    size_t len, cap;
    int err; /* 0 or -ENOMEM */
};

void rb_init(struct recbuf *rb);
void rb_free(struct recbuf *rb);
void rb_put_u32(struct recbuf *rb, uint32_t v);
void rb_put_u64(struct recbuf *rb, uint64_t v);
void rb_put_bytes(struct recbuf *rb, const void *p, size_t len);

struct recrd {
    const uint8_t *p;
    size_t len, off;
    int err; /* 0 or -EINVAL once a read went past the end */
};

void rd_init(struct recrd *rd, const void *p, size_t len);
uint32_t rd_u32(struct recrd *rd);
uint64_t rd_u64(struct recrd *rd);
/* Pointer to the next len bytes (and skips them), or NULL past the end. */
const void *rd_bytes(struct recrd *rd, size_t len);
/* 0 when every read was in bounds and the whole body was consumed;
 * -EINVAL otherwise (short or trailing bytes). */
int rd_done(const struct recrd *rd);

#endif
