/*
 * decoder/bytes.h - bounds-checked little-endian reading for the decoder.
 *
 * Every byte of a dump is hostile input. All field decoding in the decoder goes
 * through a cursor over a (pointer, length) pair; each getter checks that the
 * bytes exist before touching them and returns -EBADMSG otherwise, leaving the
 * cursor where it was so that the caller can report the exact offset.
 */
#ifndef FRD_BYTES_H
#define FRD_BYTES_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

struct frd_cur {
    const uint8_t *p; /* the buffer; bytes [0, len) are readable */
    size_t len;
    size_t pos; /* next byte to read; pos <= len always */
};

static inline struct frd_cur frd_cur_make(const void *p, size_t len)
{
    struct frd_cur c = {(const uint8_t *)p, len, 0};
    return c;
}

static inline size_t frd_cur_left(const struct frd_cur *c)
{
    return c->len - c->pos;
}

static inline int frd_get_u8(struct frd_cur *c, uint8_t *v)
{
    if (frd_cur_left(c) < 1)
        return -EBADMSG;
    *v = c->p[c->pos++];
    return 0;
}

static inline int frd_get_u16(struct frd_cur *c, uint16_t *v)
{
    if (frd_cur_left(c) < 2)
        return -EBADMSG;
    const uint8_t *b = c->p + c->pos;
    *v = (uint16_t)(b[0] | (b[1] << 8));
    c->pos += 2;
    return 0;
}

static inline int frd_get_u32(struct frd_cur *c, uint32_t *v)
{
    if (frd_cur_left(c) < 4)
        return -EBADMSG;
    const uint8_t *b = c->p + c->pos;
    *v = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
         ((uint32_t)b[3] << 24);
    c->pos += 4;
    return 0;
}

static inline int frd_get_u64(struct frd_cur *c, uint64_t *v)
{
    if (frd_cur_left(c) < 8)
        return -EBADMSG;
    const uint8_t *b = c->p + c->pos;
    uint64_t r = 0;
    for (int i = 7; i >= 0; i--)
        r = (r << 8) | b[i];
    *v = r;
    c->pos += 8;
    return 0;
}

/* Returns a pointer to the next n bytes and skips them, or NULL if short. */
static inline const uint8_t *frd_get_bytes(struct frd_cur *c, size_t n)
{
    if (frd_cur_left(c) < n)
        return NULL;
    const uint8_t *r = c->p + c->pos;
    c->pos += n;
    return r;
}

/*
 * ULEB128, at most 10 bytes, and the 10th may only carry the top bit of a
 * uint64_t: anything longer or wider is corrupt rather than silently wrapped.
 */
static inline int frd_get_uleb(struct frd_cur *c, uint64_t *v)
{
    if (c->pos < c->len && c->p[c->pos] < 0x80) {
        *v = c->p[c->pos++]; /* one byte, the common case */
        return 0;
    }
    uint64_t r = 0;
    size_t start = c->pos;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (c->pos >= c->len) {
            c->pos = start;
            return -EBADMSG;
        }
        uint8_t b = c->p[c->pos++];
        if (shift == 63 && (b & 0x7e)) {
            c->pos = start;
            return -EBADMSG;
        }
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    c->pos = start;
    return -EBADMSG;
}

static inline int64_t frd_unzigzag(uint64_t z)
{
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

#endif /* FRD_BYTES_H */
