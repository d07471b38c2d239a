/* entry_test.c - the total order of writes and the entry limits. */
#include "testutil.h"

#include "entry.h"
#include "err.h"
#include "limits.h"
#include "ref_order.h"

static lww_entry
mk(uint64_t hlc, uint64_t node, int tomb, const char *val)
{
	lww_entry e = {(const uint8_t *) "k", 1, NULL, 0, hlc, node, 0};
	if (tomb) {
		e.flags = LWW_ENTRY_TOMBSTONE;
	} else {
		e.val = (const uint8_t *) val;
		e.vlen = strlen(val);
	}
	return e;
}

static void
test_order_hlc_first(void **state)
{
	lww_entry a = mk(2, 1, 0, "a"), b = mk(1, 9, 1, "");
	(void) state;
	assert_true(lww_entry_cmp(&a, &b) > 0);
	assert_true(lww_entry_cmp(&b, &a) < 0);
	assert_true(lww_entry_wins(&a, &b));
	assert_false(lww_entry_wins(&b, &a));
}

static void
test_order_node_second(void **state)
{
	lww_entry a = mk(5, 2, 0, "a"), b = mk(5, 1, 1, "");
	(void) state;
	assert_true(lww_entry_cmp(&a, &b) > 0);
	assert_true(lww_entry_cmp(&b, &a) < 0);
}

static void
test_order_tombstone_over_value(void **state)
{
	lww_entry a = mk(5, 1, 1, ""), b = mk(5, 1, 0, "zzzz");
	(void) state;
	assert_true(lww_entry_cmp(&a, &b) > 0);
	assert_true(lww_entry_cmp(&b, &a) < 0);
}

static void
test_order_value_shorter_first_then_bytes(void **state)
{
	lww_entry a = mk(5, 1, 0, "zz"), b = mk(5, 1, 0, "aaa");
	lww_entry c = mk(5, 1, 0, "aab"), empty = mk(5, 1, 0, "");
	(void) state;
	assert_true(lww_entry_cmp(&b, &a) > 0);
	assert_true(lww_entry_cmp(&c, &b) > 0);
	assert_true(lww_entry_cmp(&a, &empty) > 0);
	assert_int_equal(lww_entry_cmp(&c, &c), 0);
	assert_false(lww_entry_wins(&c, &c)); /* a duplicate never wins */
}

static void
test_order_is_total_and_antisymmetric(void **state)
{
	const char *vals[] = {"", "a", "b", "ab", "ba"};
	lww_entry es[2 * 2 * 2 * 5];
	size_t n = 0;
	(void) state;

	for (uint64_t h = 1; h <= 2; h++)
		for (uint64_t nd = 1; nd <= 2; nd++) {
			es[n++] = mk(h, nd, 1, "");
			for (size_t v = 0; v < 5; v++) {
				es[n++] = mk(h, nd, 0, vals[v]);
			}
		}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			int c1 = lww_entry_cmp(&es[i], &es[j]);
			int c2 = lww_entry_cmp(&es[j], &es[i]);
			assert_int_equal(c1, -c2);
			assert_int_equal(c1 == 0, i == j);
			for (size_t k = 0; k < n; k++) {
				if (c1 < 0 &&
				    lww_entry_cmp(&es[j], &es[k]) < 0) {
					assert_true(
					    lww_entry_cmp(&es[i], &es[k]) < 0);
				}
			}
		}
}

/* The tests' independent statement of the order (ref_order.h) and the
 * code agree on random pairs, drawn from small ranges so that equal
 * stamps, equal lengths and equal bytes are common. */
static void
test_reference_order_agrees(void **state)
{
	uint64_t rng = 0x5eed0f0dull;
	uint8_t va[4], vb[4];
	(void) state;

	for (int i = 0; i < 200000; i++) {
		lww_entry a = {(const uint8_t *) "k", 1, va, 0, 0, 0, 0};
		lww_entry b = {(const uint8_t *) "k", 1, vb, 0, 0, 0, 0};
		a.hlc = tu_below(&rng, 3) << (tu_below(&rng, 2) * 40);
		b.hlc = tu_below(&rng, 3) << (tu_below(&rng, 2) * 40);
		a.node = tu_below(&rng, 2) ? UINT64_MAX - tu_below(&rng, 2)
		                           : tu_below(&rng, 2);
		b.node = tu_below(&rng, 2) ? UINT64_MAX - tu_below(&rng, 2)
		                           : tu_below(&rng, 2);
		a.vlen = (size_t) tu_below(&rng, 4);
		b.vlen = (size_t) tu_below(&rng, 4);
		for (size_t j = 0; j < 4; j++) {
			/* 0x00, 0x7f, 0x80 and 0xff: signedness shows. */
			static const uint8_t bytes[] = {0x00, 0x7f, 0x80, 0xff};
			va[j] = bytes[tu_below(&rng, 4)];
			vb[j] = bytes[tu_below(&rng, 4)];
		}
		if (tu_below(&rng, 3) == 0) {
			a.flags = LWW_ENTRY_TOMBSTONE;
			a.vlen = 0;
		}
		if (tu_below(&rng, 3) == 0) {
			b.flags = LWW_ENTRY_TOMBSTONE;
			b.vlen = 0;
		}
		int want = ref_order_cmp(&a, &b);
		int got = lww_entry_cmp(&a, &b);
		if ((want > 0) != (got > 0) || (want < 0) != (got < 0)) {
			fail_msg("pair %d: reference says %d, lww_entry_cmp %d "
			         "(hlc %llu/%llu node %llx/%llx len %zu/%zu)",
			         i, want, got, (unsigned long long) a.hlc,
			         (unsigned long long) b.hlc,
			         (unsigned long long) a.node,
			         (unsigned long long) b.node, a.vlen, b.vlen);
		}
		assert_int_equal(ref_order_wins(&a, &b),
		                 lww_entry_wins(&a, &b));
	}
}

static void
test_check_limits(void **state)
{
	static uint8_t big[LWW_VAL_MAX + 1];
	static uint8_t key[LWW_KEY_MAX + 1];
	lww_entry e = {key, 1, big, 0, 1, 1, 0};
	(void) state;

	assert_ok(lww_entry_check(&e));
	e.klen = 0;
	assert_err(lww_entry_check(&e), LWW_EKEYSIZE);
	e.klen = LWW_KEY_MAX;
	assert_ok(lww_entry_check(&e));
	e.klen = LWW_KEY_MAX + 1;
	assert_err(lww_entry_check(&e), LWW_EKEYSIZE);
	e.klen = 1;
	e.vlen = LWW_VAL_MAX;
	assert_ok(lww_entry_check(&e));
	e.vlen = LWW_VAL_MAX + 1;
	assert_err(lww_entry_check(&e), LWW_EVALSIZE);
	e.vlen = 1;
	e.flags = LWW_ENTRY_TOMBSTONE;
	assert_err(lww_entry_check(&e), LWW_EPROTO);
	e.vlen = 0;
	assert_ok(lww_entry_check(&e));
	e.flags = 0x80;
	assert_err(lww_entry_check(&e), LWW_EPROTO);
}

/* Keys in byte order, shorter first, and the range of a list page. */
static void
test_key_order_and_range(void **state)
{
	lww_entry a = {(const uint8_t *) "ab", 2, NULL, 0, 1, 1, 0};
	lww_entry b = {(const uint8_t *) "abc", 3, NULL, 0, 1, 1, 0};
	lww_entry c = {(const uint8_t *) "b", 1, NULL, 0, 1, 1, 0};
	(void) state;

	assert_true(lww_entry_key_cmp(&a, &b) < 0); /* a prefix first */
	assert_true(lww_entry_key_cmp(&b, &c) < 0);
	assert_int_equal(lww_entry_key_cmp(&b, &b), 0);
	assert_true(lww_bytes_cmp((const uint8_t *) "\xff", 1,
	                          (const uint8_t *) "\x01", 1) > 0);
	assert_true(lww_entry_key_in(&b, (const uint8_t *) "ab", 2, NULL, 0));
	assert_false(lww_entry_key_in(&c, (const uint8_t *) "ab", 2, NULL, 0));
	/* Strictly after the continuation. */
	assert_true(lww_entry_key_in(&b, NULL, 0, (const uint8_t *) "ab", 2));
	assert_false(lww_entry_key_in(&a, NULL, 0, (const uint8_t *) "ab", 2));
	assert_false(lww_entry_key_in(&a, NULL, 0, (const uint8_t *) "b", 1));
	assert_true(lww_entry_key_in(&a, NULL, 0, NULL, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_hlc_first),
	    cmocka_unit_test(test_order_node_second),
	    cmocka_unit_test(test_order_tombstone_over_value),
	    cmocka_unit_test(test_order_value_shorter_first_then_bytes),
	    cmocka_unit_test(test_order_is_total_and_antisymmetric),
	    cmocka_unit_test(test_reference_order_agrees),
	    cmocka_unit_test(test_check_limits),
	    cmocka_unit_test(test_key_order_and_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
