/*
 * digest.c - hashing and delta folding for the hash tree. See digest.h.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "digest.h"

struct lww_digest_leaf {
	uint32_t index; /* at level LWW_DIGEST_STORED */
	lww_digest h;
};

uint32_t
lww_digest_bucket(const uint8_t *key, size_t klen)
{
	uint8_t h[LWW_DIGEST_BYTES];

	crypto_generichash(h, sizeof(h), key, klen, NULL, 0);
	return ((uint32_t) h[0] << 24) | ((uint32_t) h[1] << 16) |
	       ((uint32_t) h[2] << 8) | h[3];
}

void
lww_digest_entry(const lww_entry *e, lww_digest *out)
{
	crypto_generichash_state st;
	uint8_t hdr[8 + 1 + 8 + 8 + 8];

	/* Fixed-width lengths make the hashed encoding unambiguous. */
	lww_put_u64le(hdr, e->klen);
	hdr[8] = e->flags;
	lww_put_u64le(hdr + 9, e->hlc);
	lww_put_u64le(hdr + 17, e->node);
	lww_put_u64le(hdr + 25, e->vlen);
	crypto_generichash_init(&st, NULL, 0, LWW_DIGEST_BYTES);
	crypto_generichash_update(&st, hdr, sizeof(hdr));
	crypto_generichash_update(&st, e->key, e->klen);
	if (e->vlen > 0) {
		crypto_generichash_update(&st, e->val, e->vlen);
	}
	crypto_generichash_final(&st, out->h, LWW_DIGEST_BYTES);
}

void
lww_digest_xor(lww_digest *dst, const lww_digest *src)
{
	for (size_t i = 0; i < LWW_DIGEST_BYTES; i++) {
		dst->h[i] ^= src->h[i];
	}
}

int
lww_digest_is_zero(const lww_digest *d)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < LWW_DIGEST_BYTES; i++) {
		acc |= d->h[i];
	}
	return acc == 0;
}

lww_err
lww_digest_delta_add(lww_digest_delta *d, uint32_t bucket, const lww_digest *h)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct lww_digest_leaf *v = realloc(d->v, cap * sizeof(*v));
		if (v == NULL) {
			return LWW_ENOMEM;
		}
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n].index = lww_digest_index(bucket, LWW_DIGEST_STORED);
	d->v[d->n].h = *h;
	d->n++;
	return LWW_OK;
}

static int
leaf_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct lww_digest_leaf *) a)->index;
	uint32_t y = ((const struct lww_digest_leaf *) b)->index;
	return (x > y) - (x < y);
}

lww_err
lww_digest_delta_fold(lww_digest_delta *d, lww_digest_fold_fn fn, void *arg)
{
	if (d->n == 0) {
		return LWW_OK;
	}
	qsort(d->v, d->n, sizeof(d->v[0]), leaf_cmp);
	/* Sorted by leaf, the leaves under any node are contiguous: one pass
	 * per level groups them by the index's top bits. */
	for (int level = LWW_DIGEST_STORED; level >= 0; level--) {
		unsigned shift = 4 * (LWW_DIGEST_STORED - (unsigned) level);
		size_t i = 0;
		while (i < d->n) {
			uint32_t idx = d->v[i].index >> shift;
			lww_digest acc = d->v[i].h;
			lww_err rv;
			for (i++; i < d->n && (d->v[i].index >> shift) == idx;
			     i++) {
				lww_digest_xor(&acc, &d->v[i].h);
			}
			if (lww_digest_is_zero(&acc)) {
				continue;
			}
			if ((rv = fn((unsigned) level, idx, &acc, arg)) !=
			    LWW_OK) {
				return rv;
			}
		}
	}
	return LWW_OK;
}

void
lww_digest_delta_reset(lww_digest_delta *d)
{
	d->n = 0;
}

void
lww_digest_delta_fini(lww_digest_delta *d)
{
	free(d->v);
	d->v = NULL;
	d->n = 0;
	d->cap = 0;
}
