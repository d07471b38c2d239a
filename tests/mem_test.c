/* mem_test.c - the table of logged writes (node/mem.h), alone.
 *
 * Winners are checked against an order written here from the rule in
 * core/entry.h (hlc, node, tombstone over value, shorter value, bytes),
 * not against lww_entry_cmp, so a fault in either shows. Key order is
 * also spelled here (bytes, then shorter first). */
#include <inttypes.h>
#include <sodium.h>

#include "testutil.h"

#include "err.h"
#include "limits.h"
#include "mem.h"

/* The merge rule, written independently of lww_entry_cmp: >0 if a wins. */
static int
ref_cmp(const lww_entry *a, const lww_entry *b)
{
	int at = (a->flags & LWW_ENTRY_TOMBSTONE) != 0;
	int bt = (b->flags & LWW_ENTRY_TOMBSTONE) != 0;

	if (a->hlc != b->hlc) {
		return a->hlc > b->hlc ? 1 : -1;
	}
	if (a->node != b->node) {
		return a->node > b->node ? 1 : -1;
	}
	if (at != bt) {
		return at ? 1 : -1;
	}
	if (a->vlen != b->vlen) {
		return a->vlen > b->vlen ? 1 : -1;
	}
	for (size_t i = 0; i < a->vlen; i++) {
		if (a->val[i] != b->val[i]) {
			return a->val[i] > b->val[i] ? 1 : -1;
		}
	}
	return 0;
}

/* Key order, written independently: first differing byte, else shorter. */
static int
ref_key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	for (size_t i = 0; i < an && i < bn; i++) {
		if (a[i] != b[i]) {
			return a[i] < b[i] ? -1 : 1;
		}
	}
	return an == bn ? 0 : (an < bn ? -1 : 1);
}

/* Asserts that m's winner for want's key is want (stamp, kind, value). */
static void
expect_get(lwwd_mem *m, const lww_entry *want)
{
	lww_buf vb = LWW_BUF_INIT;
	lww_entry got;

	assert_int_equal(lwwd_mem_get(m, want->key, want->klen, &vb, &got), 1);
	assert_int_equal(got.klen, want->klen);
	assert_memory_equal(got.key, want->key, want->klen);
	assert_int_equal(got.hlc, want->hlc);
	assert_int_equal(got.node, want->node);
	assert_int_equal(got.flags, want->flags);
	assert_int_equal(got.vlen, want->vlen);
	if (want->vlen > 0) {
		assert_memory_equal(got.val, want->val, want->vlen);
	}
	lww_buf_fini(&vb);
}

static void
expect_none(lwwd_mem *m, const char *k)
{
	lww_buf vb = LWW_BUF_INIT;
	lww_entry got;

	assert_int_equal(
	    lwwd_mem_get(m, (const uint8_t *) k, strlen(k), &vb, &got), 0);
	lww_buf_fini(&vb);
}

static int
setup(void **state)
{
	(void) state;
	return sodium_init() < 0 ? -1 : 0;
}

#define NKEYS 3
#define NOPS  12

/* Random writes to a few keys with small stamp ranges (so equal stamps
 * with different contents happen), in random order, some twice: the
 * table holds the reference maximum of each key. */
static void
test_put_get_winner(void **state)
{
	static const char *const vals[] = {"", "a", "b", "ab", "ba", NULL};
	static const char *const keys[NKEYS] = {"k0", "k1", "k2"};
	uint64_t rng = 0x5eed;
	(void) state;

	for (int round = 0; round < 2000; round++) {
		lwwd_mem *m = lwwd_mem_alloc();
		lww_entry ops[NOPS];
		const lww_entry *model[NKEYS] = {NULL};
		int ko[NOPS];

		assert_non_null(m);
		for (int i = 0; i < NOPS; i++) {
			ko[i] = (int) tu_below(&rng, NKEYS);
			ops[i] = tu_entry(keys[ko[i]], vals[tu_below(&rng, 6)],
			                  1 + tu_below(&rng, 3),
			                  1 + tu_below(&rng, 2));
			if (model[ko[i]] == NULL ||
			    ref_cmp(&ops[i], model[ko[i]]) > 0) {
				model[ko[i]] = &ops[i];
			}
		}
		for (int i = 0; i < NOPS; i++) {
			int j = (int) tu_below(&rng, NOPS);
			assert_ok(lwwd_mem_put(m, &ops[j]));
			assert_ok(lwwd_mem_put(m, &ops[i]));
		}
		for (int k = 0; k < NKEYS; k++) {
			if (model[k] == NULL) {
				expect_none(m, keys[k]);
			} else {
				expect_get(m, model[k]);
			}
		}
		lwwd_mem_free(m);
	}
}

static void
test_tombstones(void **state)
{
	lwwd_mem *m = lwwd_mem_alloc();
	lww_entry v1 = tu_entry("k", "v1", 10, 1);
	lww_entry del = tu_entry("k", NULL, 11, 1);
	lww_entry tie = tu_entry("k", "zz", 11, 1);
	lww_entry v2 = tu_entry("k", "v2", 12, 1);
	size_t bytes;
	(void) state;

	assert_non_null(m);
	assert_ok(lwwd_mem_put(m, &v1));
	assert_ok(lwwd_mem_put(m, &del));
	expect_get(m, &del);
	/* At an equal stamp the tombstone wins over any value. */
	assert_ok(lwwd_mem_put(m, &tie));
	expect_get(m, &del);
	/* An older value does not bring the key back. */
	assert_ok(lwwd_mem_put(m, &v1));
	expect_get(m, &del);
	assert_int_equal(lwwd_mem_active(m, &bytes), 1);
	assert_int_equal(bytes, 1); /* the key, no value */
	/* A later write does. */
	assert_ok(lwwd_mem_put(m, &v2));
	expect_get(m, &v2);
	assert_int_equal(lwwd_mem_active(m, &bytes), 1);
	assert_int_equal(bytes, 3);
	lwwd_mem_free(m);
}

typedef struct seen {
	lww_entry e[64];
	char keys[64][16];
	int n;
	uint64_t seq_node[8], seq[8];
	int nseq;
	int fail_at; /* entry callback index that fails, -1: none */
} seen;

static lww_err
seen_entry(const lww_entry *e, void *arg)
{
	seen *s = arg;

	if (s->n == s->fail_at) {
		return LWW_EIO;
	}
	assert_true(s->n < 64 && e->klen < sizeof(s->keys[0]));
	memcpy(s->keys[s->n], e->key, e->klen);
	s->e[s->n] = *e;
	s->e[s->n].key = (const uint8_t *) s->keys[s->n];
	s->e[s->n].val = NULL; /* not kept past the callback */
	s->n++;
	return LWW_OK;
}

static lww_err
seen_seq(uint64_t node, uint64_t seq, void *arg)
{
	seen *s = arg;

	assert_true(s->nseq < 8);
	s->seq_node[s->nseq] = node;
	s->seq[s->nseq++] = seq;
	return LWW_OK;
}

static void
test_freeze_each_in_key_order(void **state)
{
	/* Inserted out of order; "a" < "a\0" < "ab" < "b" < "ba". */
	static const char *const ks[] = {"ba", "a", "b", "ab", "zz", "m"};
	lwwd_mem *m = lwwd_mem_alloc();
	seen s = {.fail_at = -1};
	lww_entry e[6];
	(void) state;

	assert_non_null(m);
	for (int i = 0; i < 6; i++) {
		e[i] = tu_entry(ks[i], "v", 5, 1);
		assert_ok(lwwd_mem_put(m, &e[i]));
	}
	assert_ok(lwwd_mem_note_seq(m, 7, 3));
	assert_ok(lwwd_mem_note_seq(m, 7, 5));
	assert_ok(lwwd_mem_note_seq(m, 7, 4)); /* lower: kept at 5 */
	assert_ok(lwwd_mem_note_seq(m, 9, 1));
	assert_int_equal(lwwd_mem_active(m, NULL), 6 + 2);
	/* Nothing frozen yet: nothing to walk. */
	assert_ok(lwwd_mem_frozen_each(m, seen_entry, seen_seq, &s));
	assert_int_equal(s.n, 0);

	assert_int_equal(lwwd_mem_freeze(m), 0);
	assert_int_equal(lwwd_mem_freeze(m), -1); /* one frozen at a time */
	assert_int_equal(lwwd_mem_active(m, NULL), 0);
	for (int i = 0; i < 6; i++) {
		expect_get(m, &e[i]); /* still readable while frozen */
	}
	assert_ok(lwwd_mem_frozen_each(m, seen_entry, seen_seq, &s));
	assert_int_equal(s.n, 6);
	for (int i = 1; i < s.n; i++) {
		assert_true(ref_key_cmp(s.e[i - 1].key, s.e[i - 1].klen,
		                        s.e[i].key, s.e[i].klen) < 0);
	}
	assert_int_equal(s.nseq, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(s.seq[i], s.seq_node[i] == 7 ? 5 : 1);
		assert_true(s.seq_node[i] == 7 || s.seq_node[i] == 9);
	}
	assert_true(s.seq_node[0] != s.seq_node[1]);

	/* A failing callback stops the walk with its error. */
	seen f = {.fail_at = 2};
	assert_err(lwwd_mem_frozen_each(m, seen_entry, seen_seq, &f), LWW_EIO);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.nseq, 0);
	lwwd_mem_free(m);
}

static void
test_drop_frozen(void **state)
{
	lwwd_mem *m = lwwd_mem_alloc();
	lww_entry old = tu_entry("old", "1", 1, 1);
	lww_entry both_f = tu_entry("both", "f", 2, 1);
	lww_entry both_a = tu_entry("both", "a", 3, 1);
	lww_entry fresh = tu_entry("new", "2", 4, 1);
	seen s = {.fail_at = -1};
	(void) state;

	assert_non_null(m);
	lwwd_mem_drop_frozen(m); /* none: a no-op */
	assert_ok(lwwd_mem_put(m, &old));
	assert_ok(lwwd_mem_put(m, &both_f));
	assert_int_equal(lwwd_mem_freeze(m), 0);
	assert_ok(lwwd_mem_put(m, &both_a));
	assert_ok(lwwd_mem_put(m, &fresh));
	lwwd_mem_drop_frozen(m);
	expect_none(m, "old");
	expect_get(m, &both_a);
	expect_get(m, &fresh);
	assert_ok(lwwd_mem_frozen_each(m, seen_entry, seen_seq, &s));
	assert_int_equal(s.n, 0);
	/* The active generation can be frozen again once dropped. */
	assert_int_equal(lwwd_mem_freeze(m), 0);
	assert_ok(lwwd_mem_frozen_each(m, seen_entry, seen_seq, &s));
	assert_int_equal(s.n, 2);
	lwwd_mem_free(m);
}

/* Expects r to hold exactly want[0..n) in this order. */
static void
expect_range(const lwwd_mem_range *r, const lww_entry *const *want, size_t n)
{
	assert_int_equal(r->n, n);
	for (size_t i = 0; i < n; i++) {
		const lww_entry *g = &r->v[i], *w = want[i];
		assert_int_equal(g->klen, w->klen);
		assert_memory_equal(g->key, w->key, w->klen);
		assert_int_equal(ref_cmp(g, w), 0);
		assert_int_equal(g->flags, w->flags);
	}
}

static void
test_range_across_generations(void **state)
{
	lwwd_mem *m = lwwd_mem_alloc();
	lww_entry f1 = tu_entry("a/1", "f1", 10, 1);
	lww_entry f2 = tu_entry("a/2", "old", 5, 1);
	lww_entry fb = tu_entry("b/1", "x", 5, 1);
	lww_entry a2 = tu_entry("a/2", "new", 7, 1);
	lww_entry a3 = tu_entry("a/3", "v", 7, 1);
	lww_entry a10 =
	    tu_entry("a/10", NULL, 8, 2);         /* tombstones are listed */
	lww_entry ab = tu_entry("ab", "v", 8, 2); /* not under "a/" */
	lww_entry az = tu_entry("a", "v", 8, 2);  /* the prefix is not in it */
	lwwd_mem_range r;
	(void) state;

	assert_non_null(m);
	assert_ok(lwwd_mem_put(m, &f1));
	assert_ok(lwwd_mem_put(m, &f2));
	assert_ok(lwwd_mem_put(m, &fb));
	assert_int_equal(lwwd_mem_freeze(m), 0);
	assert_ok(lwwd_mem_put(m, &a2));
	assert_ok(lwwd_mem_put(m, &a3));
	assert_ok(lwwd_mem_put(m, &a10));
	assert_ok(lwwd_mem_put(m, &ab));
	assert_ok(lwwd_mem_put(m, &az));

	const lww_entry *all[] = {&f1, &a10, &a2, &a3};
	assert_ok(
	    lwwd_mem_range_get(m, (const uint8_t *) "a/", 2, NULL, 0, &r));
	expect_range(&r, all, 4);
	lwwd_mem_range_free(&r);
	assert_null(r.v);

	const lww_entry *after[] = {&a2, &a3};
	assert_ok(lwwd_mem_range_get(m, (const uint8_t *) "a/", 2,
	                             (const uint8_t *) "a/10", 4, &r));
	expect_range(&r, after, 2);
	lwwd_mem_range_free(&r);

	const lww_entry *none[] = {NULL};
	assert_ok(lwwd_mem_range_get(m, (const uint8_t *) "c", 1, NULL, 0, &r));
	expect_range(&r, none, 0);
	lwwd_mem_range_free(&r);

	/* No prefix: every key, once. */
	const lww_entry *every[] = {&az, &f1, &a10, &a2, &a3, &ab, &fb};
	assert_ok(lwwd_mem_range_get(m, NULL, 0, NULL, 0, &r));
	expect_range(&r, every, 7);
	lwwd_mem_range_free(&r);

	/* Once the frozen generation is dropped only the active one lists. */
	lwwd_mem_drop_frozen(m);
	const lww_entry *left[] = {&a10, &a2, &a3};
	assert_ok(
	    lwwd_mem_range_get(m, (const uint8_t *) "a/", 2, NULL, 0, &r));
	expect_range(&r, left, 3);
	lwwd_mem_range_free(&r);
	lwwd_mem_free(m);
}

/* The active generation may hold an older write to a key than the frozen
 * one (a table fed by anything but the writer's check): both a lookup and
 * a listing must return the newer. */
static void
test_newer_frozen_older_active(void **state)
{
	lwwd_mem *m = lwwd_mem_alloc();
	lww_entry newer = tu_entry("k", "newer", 20, 1);
	lww_entry older = tu_entry("k", "older", 10, 2);
	lww_entry gone = tu_entry("t", NULL, 20, 1);
	lww_entry back = tu_entry("t", "back", 19, 1);
	lwwd_mem_range r;
	(void) state;

	assert_non_null(m);
	assert_ok(lwwd_mem_put(m, &newer));
	assert_ok(lwwd_mem_put(m, &gone));
	assert_int_equal(lwwd_mem_freeze(m), 0);
	assert_ok(lwwd_mem_put(m, &older));
	assert_ok(lwwd_mem_put(m, &back));
	expect_get(m, &newer);
	expect_get(m, &gone);
	const lww_entry *want[] = {&newer, &gone};
	assert_ok(lwwd_mem_range_get(m, NULL, 0, NULL, 0, &r));
	expect_range(&r, want, 2);
	lwwd_mem_range_free(&r);
	lwwd_mem_free(m);
}

/* Far past the first table size (1024 buckets), with overwrites. */
static void
test_growth(void **state)
{
	enum { N = 20000 };
	lwwd_mem *m = lwwd_mem_alloc();
	char(*keys)[16] = calloc(N, sizeof(*keys));
	lww_buf vb = LWW_BUF_INIT;
	lwwd_mem_range r;
	size_t bytes, want_bytes = 0;
	(void) state;

	assert_non_null(m);
	assert_non_null(keys);
	for (int i = 0; i < N; i++) {
		lww_entry e;
		snprintf(keys[i], sizeof(keys[i]), "key%08d", i);
		e = tu_entry(keys[i], keys[i], 1, 1);
		assert_ok(lwwd_mem_put(m, &e));
		want_bytes += 2 * e.klen;
	}
	/* Every tenth key overwritten with a newer, shorter value. */
	for (int i = 0; i < N; i += 10) {
		lww_entry e = tu_entry(keys[i], "n", 2, 1);
		assert_ok(lwwd_mem_put(m, &e));
		want_bytes -= strlen(keys[i]) - 1;
	}
	assert_int_equal(lwwd_mem_active(m, &bytes), N);
	assert_int_equal(bytes, want_bytes);
	for (int i = 0; i < N; i++) {
		lww_entry want = tu_entry(keys[i], i % 10 ? keys[i] : "n",
		                          i % 10 ? 1 : 2, 1);
		expect_get(m, &want);
	}
	expect_none(m, "key");
	assert_ok(lwwd_mem_range_get(m, NULL, 0, NULL, 0, &r));
	assert_int_equal(r.n, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r.v[i].klen, strlen(keys[i]));
		assert_memory_equal(r.v[i].key, keys[i], r.v[i].klen);
	}
	lwwd_mem_range_free(&r);
	lww_buf_fini(&vb);
	free(keys);
	lwwd_mem_free(m);
}

/* Keys of the largest size that differ only in their last byte, and a
 * value of the largest size. */
static void
test_long_keys(void **state)
{
	uint8_t *k1 = malloc(LWW_KEY_MAX), *k2 = malloc(LWW_KEY_MAX);
	uint8_t *big = malloc(LWW_VAL_MAX);
	lwwd_mem *m = lwwd_mem_alloc();
	lww_buf vb = LWW_BUF_INIT;
	lww_entry e1, e2, got;
	lwwd_mem_range r;
	size_t bytes;
	(void) state;

	assert_non_null(k1);
	assert_non_null(k2);
	assert_non_null(big);
	assert_non_null(m);
	memset(k1, 'x', LWW_KEY_MAX);
	memcpy(k2, k1, LWW_KEY_MAX);
	k2[LWW_KEY_MAX - 1] = 'y';
	for (size_t i = 0; i < LWW_VAL_MAX; i++) {
		big[i] = (uint8_t) (i * 7);
	}
	e1 = (lww_entry){k1, LWW_KEY_MAX, big, LWW_VAL_MAX, 1, 1, 0};
	e2 = (lww_entry){k2, LWW_KEY_MAX, (const uint8_t *) "s", 1, 1, 1, 0};
	assert_ok(lwwd_mem_put(m, &e2));
	assert_ok(lwwd_mem_put(m, &e1));
	expect_get(m, &e1);
	expect_get(m, &e2);
	/* A key one byte shorter is another key. */
	assert_int_equal(lwwd_mem_get(m, k1, LWW_KEY_MAX - 1, &vb, &got), 0);
	assert_int_equal(lwwd_mem_active(m, &bytes), 2);
	assert_int_equal(bytes, 2 * LWW_KEY_MAX + LWW_VAL_MAX + 1);
	/* Listed by a prefix of all but the last byte, in key order. */
	assert_ok(lwwd_mem_range_get(m, k1, LWW_KEY_MAX - 1, NULL, 0, &r));
	const lww_entry *want[] = {&e1, &e2};
	expect_range(&r, want, 2);
	assert_memory_equal(r.v[0].val, big, LWW_VAL_MAX);
	lwwd_mem_range_free(&r);
	lww_buf_fini(&vb);
	lwwd_mem_free(m);
	free(k1);
	free(k2);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_get_winner),
	    cmocka_unit_test(test_tombstones),
	    cmocka_unit_test(test_freeze_each_in_key_order),
	    cmocka_unit_test(test_drop_frozen),
	    cmocka_unit_test(test_range_across_generations),
	    cmocka_unit_test(test_newer_frozen_older_active),
	    cmocka_unit_test(test_growth),
	    cmocka_unit_test(test_long_keys),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
