/*
 * buf.h - a growable byte buffer for encoding, and a bounds-checked reader
 * for decoding untrusted bytes.
 *
 * Integers on the wire are little-endian, fixed width (u8, u32, u64), or
 * unsigned LEB128 varints for lengths. The reader keeps off <= len, checks
 * every read against what is left before touching memory, caps every varint
 * at a limit the caller names, and refuses non-minimal varints so that every
 * value has exactly one encoding. It never allocates.
 */
#ifndef LWW_BUF_H
#define LWW_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct lww_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
} lww_buf;

#define LWW_BUF_INIT                                                           \
	{                                                                      \
		NULL, 0, 0                                                     \
	}

/* Frees the buffer's memory; the buffer is then empty and reusable.
 * Accepts a zeroed buffer. */
void lww_buf_fini(lww_buf *b);

/* Empties the buffer, keeping its memory for reuse. */
static inline void
lww_buf_reset(lww_buf *b)
{
	b->len = 0;
}

/* Makes room for n more bytes. LWW_ENOMEM leaves the buffer as it was. */
lww_err lww_buf_reserve(lww_buf *b, size_t n);

/* Appenders. Each returns LWW_ENOMEM (buffer unchanged) or LWW_OK. */
lww_err lww_buf_put(lww_buf *b, const void *p, size_t n);
lww_err lww_buf_put_u8(lww_buf *b, uint8_t v);
lww_err lww_buf_put_u32(lww_buf *b, uint32_t v);
lww_err lww_buf_put_u64(lww_buf *b, uint64_t v);
lww_err lww_buf_put_uvarint(lww_buf *b, uint64_t v);
/* A uvarint length followed by the bytes. */
lww_err lww_buf_put_lbytes(lww_buf *b, const void *p, size_t n);

/* Little-endian helpers on raw memory. */
void lww_put_u32le(uint8_t *p, uint32_t v);
void lww_put_u64le(uint8_t *p, uint64_t v);
uint32_t lww_get_u32le(const uint8_t *p);
uint64_t lww_get_u64le(const uint8_t *p);

/* Bounds-checked reader over borrowed bytes. */
typedef struct lww_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
} lww_rd;

static inline void
lww_rd_init(lww_rd *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
}

static inline size_t
lww_rd_left(const lww_rd *r)
{
	return r->len - r->off;
}

/* Each reader returns LWW_EPROTO if the bytes run out or the value is out
 * of range; the out-parameter is then untouched. */
lww_err lww_rd_u8(lww_rd *r, uint8_t *out);
lww_err lww_rd_u32(lww_rd *r, uint32_t *out);
lww_err lww_rd_u64(lww_rd *r, uint64_t *out);
/* A varint no greater than max. */
lww_err lww_rd_uvarint(lww_rd *r, uint64_t max, uint64_t *out);
/* A varint length no greater than max (a limit of limits.h): LWW_ETOOBIG
 * if it is greater (the reader then stays where it was, so the caller can
 * say which limit), LWW_EPROTO if it is malformed or cut short. There is
 * no way to read a length without its limit. */
lww_err lww_rd_len(lww_rd *r, size_t max, size_t *out);
/* n bytes, returned as a pointer into the input. */
lww_err lww_rd_bytes(lww_rd *r, size_t n, const uint8_t **out);
/* A varint length no greater than max, then that many bytes. */
lww_err lww_rd_lbytes(lww_rd *r, size_t max, const uint8_t **out, size_t *n);
/* LWW_EPROTO if any bytes are left: trailing bytes are refused. */
lww_err lww_rd_end(const lww_rd *r);

#endif /* LWW_BUF_H */
