/* hlc_test.c - the hybrid logical clock never goes back, handles counter
 * overflow, and refuses stamps beyond max drift without changing state. */
#include "testutil.h"

#include "err.h"
#include "hlc.h"

static uint64_t
fake_wall(void *arg)
{
	return *(uint64_t *) arg;
}

static void
test_now_follows_wall_clock(void **state)
{
	uint64_t wall = 1000000, s1, s2;
	lww_hlc c;
	(void) state;

	lww_hlc_init(&c, fake_wall, &wall, 1000);
	assert_ok(lww_hlc_now(&c, &s1));
	assert_int_equal(lww_hlc_wall(s1), 1000000);
	assert_int_equal(lww_hlc_logical(s1), 0);
	assert_ok(lww_hlc_now(&c, &s2));
	assert_int_equal(lww_hlc_wall(s2), 1000000);
	assert_int_equal(lww_hlc_logical(s2), 1);
	wall += 5;
	assert_ok(lww_hlc_now(&c, &s2));
	assert_int_equal(lww_hlc_wall(s2), 1000005);
	assert_int_equal(lww_hlc_logical(s2), 0);
}

static void
test_monotonic_when_wall_steps_back(void **state)
{
	uint64_t wall = 5000000, prev = 0, s;
	lww_hlc c;
	(void) state;

	lww_hlc_init(&c, fake_wall, &wall, 1000);
	for (int i = 0; i < 1000; i++) {
		/* A wall clock that jumps around, back by up to an hour. */
		wall = (i % 7 == 0) ? wall - 3600000 : wall + (uint64_t) i;
		assert_ok(lww_hlc_now(&c, &s));
		assert_true(s > prev);
		prev = s;
	}
}

static void
test_logical_overflow_carries_into_wall(void **state)
{
	uint64_t wall = 777, s, prev = 0;
	lww_hlc c;
	(void) state;

	lww_hlc_init(&c, fake_wall, &wall, 1000);
	for (uint64_t i = 0; i <= LWW_HLC_LOGICAL_MASK + 10; i++) {
		assert_ok(lww_hlc_now(&c, &s));
		assert_true(s > prev);
		prev = s;
	}
	/* 65536 stamps fit in ms 777; the other 10 ran one ms ahead. */
	assert_int_equal(lww_hlc_wall(s), 778);
	assert_int_equal(lww_hlc_logical(s), 9);
}

static void
test_overflow_at_end_of_time(void **state)
{
	uint64_t wall = LWW_HLC_WALL_MAX, s;
	lww_hlc c;
	(void) state;

	lww_hlc_init(&c, fake_wall, &wall, 1000);
	lww_hlc_restore(&c, UINT64_MAX);
	assert_err(lww_hlc_now(&c, &s), LWW_EOVERFLOW);
	assert_int_equal(c.last, UINT64_MAX);
}

static void
test_restore_never_lowers(void **state)
{
	uint64_t wall = 1000, s;
	lww_hlc c;
	(void) state;

	lww_hlc_init(&c, fake_wall, &wall, 1000);
	lww_hlc_restore(&c, lww_hlc_make(5000, 3));
	lww_hlc_restore(&c, lww_hlc_make(10, 0));
	assert_ok(lww_hlc_now(&c, &s));
	assert_int_equal(s, lww_hlc_make(5000, 4));
}

static void
test_observe_within_drift_raises_clock(void **state)
{
	uint64_t wall = 100000, s;
	lww_hlc c;
	(void) state;

	lww_hlc_init(&c, fake_wall, &wall, 1000);
	assert_ok(lww_hlc_observe(&c, lww_hlc_make(101000, 7)));
	assert_ok(lww_hlc_now(&c, &s));
	assert_int_equal(s, lww_hlc_make(101000, 8));
	/* A stamp from the past is fine and changes nothing. */
	assert_ok(lww_hlc_observe(&c, lww_hlc_make(10, 0)));
	assert_ok(lww_hlc_now(&c, &s));
	assert_int_equal(s, lww_hlc_make(101000, 9));
}

static void
test_observe_beyond_drift_is_refused(void **state)
{
	uint64_t wall = 100000, s, before;
	lww_hlc c;
	(void) state;

	lww_hlc_init(&c, fake_wall, &wall, 1000);
	assert_ok(lww_hlc_now(&c, &s));
	before = c.last;
	assert_err(lww_hlc_observe(&c, lww_hlc_make(101001, 0)), LWW_EDRIFT);
	assert_err(lww_hlc_check(&c, lww_hlc_make(101001, 0)), LWW_EDRIFT);
	assert_err(lww_hlc_observe(&c, UINT64_MAX), LWW_EDRIFT);
	assert_int_equal(c.last, before);
	assert_ok(lww_hlc_now(&c, &s));
	assert_int_equal(lww_hlc_wall(s), 100000);
	/* Once our wall clock catches up, the same stamp is accepted. */
	wall = 100001;
	assert_ok(lww_hlc_observe(&c, lww_hlc_make(101001, 0)));
}

static void
test_rebase_lowers_only(void **state)
{
	uint64_t wall = 100000, s;
	lww_hlc c;
	(void) state;

	/* A high-water mark an hour ahead keeps stamping an hour ahead... */
	lww_hlc_init(&c, fake_wall, &wall, 1000);
	lww_hlc_restore(&c, lww_hlc_make(wall + 3600000, 0));
	assert_ok(lww_hlc_now(&c, &s));
	assert_int_equal(lww_hlc_wall(s), wall + 3600000);
	/* ...until it is rebased onto the confirmed wall clock. */
	lww_hlc_rebase(&c, lww_hlc_make(wall, 0));
	assert_ok(lww_hlc_now(&c, &s));
	assert_int_equal(s, lww_hlc_make(wall, 1));
	/* Never raises. */
	lww_hlc_rebase(&c, lww_hlc_make(wall + 5000, 0));
	assert_ok(lww_hlc_now(&c, &s));
	assert_int_equal(s, lww_hlc_make(wall, 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_now_follows_wall_clock),
	    cmocka_unit_test(test_monotonic_when_wall_steps_back),
	    cmocka_unit_test(test_logical_overflow_carries_into_wall),
	    cmocka_unit_test(test_overflow_at_end_of_time),
	    cmocka_unit_test(test_restore_never_lowers),
	    cmocka_unit_test(test_observe_within_drift_raises_clock),
	    cmocka_unit_test(test_observe_beyond_drift_is_refused),
	    cmocka_unit_test(test_rebase_lowers_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
