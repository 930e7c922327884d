/* Little-endian record bodies (recbuf.h). */
#include "domus/recbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void rb_init(struct recbuf *rb)
{
    memset(rb, 0, sizeof(*rb));
}

void rb_free(struct recbuf *rb)
{
    free(rb->data);
    rb_init(rb);
}

void rb_put_bytes(struct recbuf *rb, const void *p, size_t len)
{
    if (rb->err || len == 0)
        return;
    if (len > rb->cap - rb->len) {
        size_t cap = rb->cap ? rb->cap : 256;
        while (cap - rb->len < len) {
            if (cap > SIZE_MAX / 2) {
                rb->err = -ENOMEM;
                return;
            }
            cap *= 2;
        }
        uint8_t *n = realloc(rb->data, cap);
        if (!n) {
            rb->err = -ENOMEM;
            return;
        }
        rb->data = n;
        rb->cap = cap;
    }
    memcpy(rb->data + rb->len, p, len);
    rb->len += len;
}

void rb_put_u32(struct recbuf *rb, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    rb_put_bytes(rb, b, sizeof(b));
}

void rb_put_u64(struct recbuf *rb, uint64_t v)
{
    rb_put_u32(rb, (uint32_t)v);
    rb_put_u32(rb, (uint32_t)(v >> 32));
}

void rd_init(struct recrd *rd, const void *p, size_t len)
{
    rd->p = p;
    rd->len = len;
    rd->off = 0;
    rd->err = 0;
}

const void *rd_bytes(struct recrd *rd, size_t len)
{
    if (rd->err || len > rd->len - rd->off) {
        rd->err = -EINVAL;
        return NULL;
    }
    const void *p = rd->p + rd->off;
    rd->off += len;
    return p;
}

uint32_t rd_u32(struct recrd *rd)
{
    const uint8_t *b = rd_bytes(rd, 4);
    if (!b)
        return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

uint64_t rd_u64(struct recrd *rd)
{
    uint64_t lo = rd_u32(rd);
    return lo | (uint64_t)rd_u32(rd) << 32;
}

int rd_done(const struct recrd *rd)
{
    return rd->err || rd->off != rd->len ? -EINVAL : 0;
}
