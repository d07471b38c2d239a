/*
 * buf.c - growable buffer and bounds-checked reader. See buf.h.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
lww_buf_fini(lww_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}

lww_err
lww_buf_reserve(lww_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (n <= b->cap - b->len) {
		return LWW_OK;
	}
	if (n > SIZE_MAX / 2 - b->len) {
		return LWW_ENOMEM;
	}
	cap = b->cap ? b->cap : 64;
	while (cap - b->len < n) {
		cap *= 2;
	}
	if ((p = realloc(b->p, cap)) == NULL) {
		return LWW_ENOMEM;
	}
	b->p = p;
	b->cap = cap;
	return LWW_OK;
}

lww_err
lww_buf_put(lww_buf *b, const void *p, size_t n)
{
	lww_err rv;

	if (n == 0) {
		return LWW_OK;
	}
	if ((rv = lww_buf_reserve(b, n)) != LWW_OK) {
		return rv;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return LWW_OK;
}

lww_err
lww_buf_put_u8(lww_buf *b, uint8_t v)
{
	return lww_buf_put(b, &v, 1);
}

void
lww_put_u32le(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t) (v >> (8 * i));
	}
}

void
lww_put_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t) (v >> (8 * i));
	}
}

uint32_t
lww_get_u32le(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--) {
		v = (v << 8) | p[i];
	}
	return v;
}

uint64_t
lww_get_u64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--) {
		v = (v << 8) | p[i];
	}
	return v;
}

lww_err
lww_buf_put_u32(lww_buf *b, uint32_t v)
{
	uint8_t tmp[4];
	lww_put_u32le(tmp, v);
	return lww_buf_put(b, tmp, sizeof(tmp));
}

lww_err
lww_buf_put_u64(lww_buf *b, uint64_t v)
{
	uint8_t tmp[8];
	lww_put_u64le(tmp, v);
	return lww_buf_put(b, tmp, sizeof(tmp));
}

lww_err
lww_buf_put_uvarint(lww_buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	while (v >= 0x80) {
		tmp[n++] = (uint8_t) (v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (uint8_t) v;
	return lww_buf_put(b, tmp, n);
}

lww_err
lww_buf_put_lbytes(lww_buf *b, const void *p, size_t n)
{
	size_t mark = b->len;
	lww_err rv;

	if ((rv = lww_buf_put_uvarint(b, n)) != LWW_OK) {
		return rv;
	}
	if ((rv = lww_buf_put(b, p, n)) != LWW_OK) {
		b->len = mark; /* a failed append leaves nothing behind */
	}
	return rv;
}

lww_err
lww_rd_bytes(lww_rd *r, size_t n, const uint8_t **out)
{
	if (n > lww_rd_left(r)) {
		return LWW_EPROTO;
	}
	*out = r->p + r->off;
	r->off += n;
	return LWW_OK;
}

lww_err
lww_rd_u8(lww_rd *r, uint8_t *out)
{
	const uint8_t *p;
	if (lww_rd_bytes(r, 1, &p) != LWW_OK) {
		return LWW_EPROTO;
	}
	*out = p[0];
	return LWW_OK;
}

lww_err
lww_rd_u32(lww_rd *r, uint32_t *out)
{
	const uint8_t *p;
	if (lww_rd_bytes(r, 4, &p) != LWW_OK) {
		return LWW_EPROTO;
	}
	*out = lww_get_u32le(p);
	return LWW_OK;
}

lww_err
lww_rd_u64(lww_rd *r, uint64_t *out)
{
	const uint8_t *p;
	if (lww_rd_bytes(r, 8, &p) != LWW_OK) {
		return LWW_EPROTO;
	}
	*out = lww_get_u64le(p);
	return LWW_OK;
}

lww_err
lww_rd_uvarint(lww_rd *r, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t off = r->off;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;
		if (off >= r->len) {
			return LWW_EPROTO;
		}
		b = r->p[off++];
		if (shift == 63 && b > 1) {
			return LWW_EPROTO; /* more than 64 bits */
		}
		v |= (uint64_t) (b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			if (b == 0 && shift != 0) {
				return LWW_EPROTO; /* non-minimal encoding */
			}
			if (v > max) {
				return LWW_EPROTO;
			}
			r->off = off;
			*out = v;
			return LWW_OK;
		}
	}
	return LWW_EPROTO;
}

lww_err
lww_rd_len(lww_rd *r, size_t max, size_t *out)
{
	lww_rd save = *r;
	uint64_t v;

	if (lww_rd_uvarint(r, UINT64_MAX, &v) != LWW_OK) {
		return LWW_EPROTO;
	}
	if (v > max) {
		*r = save;
		return LWW_ETOOBIG;
	}
	*out = (size_t) v;
	return LWW_OK;
}

lww_err
lww_rd_lbytes(lww_rd *r, size_t max, const uint8_t **out, size_t *n)
{
	size_t save = r->off;
	uint64_t len;

	if (lww_rd_uvarint(r, max, &len) != LWW_OK ||
	    lww_rd_bytes(r, (size_t) len, out) != LWW_OK) {
		r->off = save;
		return LWW_EPROTO;
	}
	*n = (size_t) len;
	return LWW_OK;
}

lww_err
lww_rd_end(const lww_rd *r)
{
	return r->off == r->len ? LWW_OK : LWW_EPROTO;
}
