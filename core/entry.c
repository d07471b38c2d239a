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
lww_entry_key_cmp(const lww_entry *a, const lww_entry *b)
{
	size_t m = a->klen < b->klen ? a->klen : b->klen;
	int c = m ? memcmp(a->key, b->key, m) : 0;

	if (c != 0) {
		return (c > 0) - (c < 0);
	}
	return (a->klen > b->klen) - (a->klen < b->klen);
}
