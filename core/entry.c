/*
 * entry.c - limits and the total order of writes. See entry.h.
 */
#include <string.h>

#include "entry.h"
#include "limits.h"

lww_err
lww_entry_check(const lww_entry *e)
{
	if (e->klen < LWW_KEY_MIN || e->klen > LWW_KEY_MAX || e->key == NULL) {
		return LWW_EKEYSIZE;
	}
	if (e->vlen > LWW_VAL_MAX) {
		return LWW_EVALSIZE;
	}
	if ((e->flags & ~LWW_ENTRY_FLAGS_KNOWN) != 0) {
		return LWW_EPROTO;
	}
	if (lww_entry_is_tombstone(e) && e->vlen != 0) {
		return LWW_EPROTO;
	}
	if (e->vlen != 0 && e->val == NULL) {
		return LWW_EINVAL;
	}
	return LWW_OK;
}

static int
cmp_u64(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

int
lww_entry_cmp(const lww_entry *a, const lww_entry *b)
{
	int c;

	if ((c = cmp_u64(a->hlc, b->hlc)) != 0) {
		return c;
	}
	if ((c = cmp_u64(a->node, b->node)) != 0) {
		return c;
	}
	/* A tombstone beats a value with the same stamp. */
	c = lww_entry_is_tombstone(a) - lww_entry_is_tombstone(b);
	if (c != 0) {
		return c;
	}
	if ((c = cmp_u64(a->vlen, b->vlen)) != 0) {
		return c;
	}
	if (a->vlen == 0) {
		return 0;
	}
	c = memcmp(a->val, b->val, a->vlen);
	return (c > 0) - (c < 0);
}

int
lww_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t m = an < bn ? an : bn;
	int c = m ? memcmp(a, b, m) : 0;

	if (c != 0) {
		return (c > 0) - (c < 0);
	}
	return (an > bn) - (an < bn);
}

int
lww_entry_key_cmp(const lww_entry *a, const lww_entry *b)
{
	return lww_bytes_cmp(a->key, a->klen, b->key, b->klen);
}

int
lww_entry_key_in(const lww_entry *e, const uint8_t *prefix, size_t plen,
                 const uint8_t *after, size_t alen)
{
	if (e->klen < plen || (plen && memcmp(e->key, prefix, plen) != 0)) {
		return 0;
	}
	return alen == 0 || lww_bytes_cmp(e->key, e->klen, after, alen) > 0;
}
