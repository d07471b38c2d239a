/*
 * ref_order.h - an independent statement of the order of writes, for tests.
 *
 * The property tests (merge_test.c) and the convergence fuzz harness
 * (fuzz/converge.c) must not take their expected winner from the code they
 * test: a bug in lww_entry_cmp would then agree with itself. This is the
 * rule of DESIGN.md ("the greatest under ONE total order: hlc, then node
 * id, then tombstone over value, then value bytes, shorter first, then
 * memcmp") written again from the text, in a different shape: the entry
 * becomes a list of fields compared one at a time, and value bytes are
 * compared by a plain loop. entry_test.c checks that it agrees with
 * lww_entry_cmp on random pairs.
 */
#ifndef LWW_REF_ORDER_H
#define LWW_REF_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "entry.h"

/* <0, 0 or >0 as a is below, equal to or above b in DESIGN.md's order. */
static inline int
ref_order_cmp(const lww_entry *a, const lww_entry *b)
{
	/* The fields in the order DESIGN.md names them; a tombstone counts
	 * as 1, a value as 0, so the tombstone is greater. */
	const uint64_t fa[4] = {
	    a->hlc, a->node,
	    (uint64_t) ((a->flags & LWW_ENTRY_TOMBSTONE) ? 1 : 0),
	    (uint64_t) a->vlen};
	const uint64_t fb[4] = {
	    b->hlc, b->node,
	    (uint64_t) ((b->flags & LWW_ENTRY_TOMBSTONE) ? 1 : 0),
	    (uint64_t) b->vlen};

	for (int i = 0; i < 4; i++) {
		if (fa[i] != fb[i]) {
			return fa[i] < fb[i] ? -1 : 1;
		}
	}
	/* Same length: the first differing byte decides, as unsigned. */
	for (size_t i = 0; i < a->vlen; i++) {
		if (a->val[i] != b->val[i]) {
			return a->val[i] < b->val[i] ? -1 : 1;
		}
	}
	return 0;
}

/* Non-zero if `incoming` should replace `current`: strictly greater. */
static inline int
ref_order_wins(const lww_entry *incoming, const lww_entry *current)
{
	return ref_order_cmp(incoming, current) > 0;
}

#endif
