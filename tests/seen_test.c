/* seen_test.c - the per-origin window of seen batches: duplicates, gaps,
 * jumps past the window, give-ups, against a plain set as the model. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "seen.h"

static void
test_in_order_and_duplicates(void **state)
{
	lww_seen s;
	(void) state;

	memset(&s, 0, sizeof(s));
	assert_false(lww_seen_has(&s, 5));
	assert_true(lww_seen_add(&s, 5) == 0); /* the first starts it */
	assert_true(lww_seen_has(&s, 5));
	assert_true(lww_seen_has(&s, 4)); /* before the start: the store's */
	assert_false(lww_seen_has(&s, 6));
	assert_true(lww_seen_add(&s, 6) == 0);
	assert_true(s.base == 6);
	assert_true(lww_seen_has(&s, 6));
	assert_true(lww_seen_first_missing(&s, 6) == 0);
	assert_true(lww_seen_has(&s, 0)); /* never a batch's */
}

static void
test_gap_is_found_and_filled(void **state)
{
	lww_seen s;
	(void) state;

	memset(&s, 0, sizeof(s));
	lww_seen_add(&s, 1);
	lww_seen_add(&s, 3);
	lww_seen_add(&s, 5);
	assert_true(s.base == 1);
	assert_true(s.top == 5);
	assert_true(lww_seen_first_missing(&s, 5) == 2);
	assert_true(lww_seen_first_missing(&s, 9) == 2);
	lww_seen_add(&s, 2);
	assert_true(s.base == 3);
	assert_true(lww_seen_first_missing(&s, 5) == 4);
	lww_seen_add(&s, 4);
	assert_true(s.base == 5);
	assert_true(lww_seen_first_missing(&s, 5) == 0);
	assert_true(lww_seen_first_missing(&s, 7) == 6);
}

static void
test_jump_past_window_gives_up(void **state)
{
	lww_seen s;
	uint64_t far = 1 + LWW_SEEN_WINDOW + 10;
	(void) state;

	memset(&s, 0, sizeof(s));
	lww_seen_add(&s, 1);
	lww_seen_add(&s, 3);
	/* 2 and 4..far-1 never came: all given up by the jump, counted (at
	 * most the window and one). */
	uint64_t lost = lww_seen_add(&s, far);
	assert_true(lost >= 1 && lost <= LWW_SEEN_WINDOW + 1);
	assert_true(s.base == far);
	assert_true(lww_seen_has(&s, far - 1));
	assert_true(lww_seen_first_missing(&s, far + 5) == far + 1);
	/* A gap inside the window stays a gap. */
	lww_seen_add(&s, far + 3);
	assert_true(lww_seen_first_missing(&s, far + 3) == far + 1);
	assert_true(lww_seen_skip(&s, far + 3) == 2);
	assert_true(s.base == far + 3);
	/* An origin that restarted far ahead: one loss, not billions. */
	lost = lww_seen_add(&s, far + UINT64_C(1000000000000));
	assert_true(lost >= 1 && lost <= LWW_SEEN_WINDOW + 1);
	assert_true(lww_seen_has(&s, far + UINT64_C(1000000000000)));
}

/* Random arrivals (duplicates, reordering within and beyond the window)
 * against a model: a sequence is seen iff it was added, or it is below
 * one that jumped more than the window (given up). */
static void
test_model(void **state)
{
	enum { N = 6000 };
	static unsigned char added[N];
	lww_seen s;
	uint64_t max_added = 1, g = 0;
	(void) state;

	srand(7);
	memset(&s, 0, sizeof(s));
	memset(added, 0, sizeof(added));
	lww_seen_add(&s, 1);
	added[1] = 1;
	for (int i = 0; i < 20000; i++) {
		uint64_t seq = max_added + 1 - (uint64_t) (rand() % 40);
		if (rand() % 50 == 0) {
			seq = max_added + 1 + (uint64_t) (rand() % 400);
		}
		if (seq == 0 || seq >= N) {
			continue;
		}
		assert_int_equal(lww_seen_has(&s, seq), added[seq] || seq <= g);
		if (seq > s.base + LWW_SEEN_WINDOW && seq - 1 > g) {
			g = seq - 1; /* a jump: all below it given up */
		}
		lww_seen_add(&s, seq);
		added[seq] = 1;
		if (seq > max_added) {
			max_added = seq;
		}
		assert_true(lww_seen_has(&s, seq));
		assert_true(s.top == max_added);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_in_order_and_duplicates),
	    cmocka_unit_test(test_gap_is_found_and_filled),
	    cmocka_unit_test(test_jump_past_window_gives_up),
	    cmocka_unit_test(test_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
