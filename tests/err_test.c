/* err_test.c - every error code has its own string; unknown codes don't
 * crash. */
#include "testutil.h"

#include "err.h"

static void
test_every_code_has_a_distinct_string(void **state)
{
	(void) state;
	for (int i = 0; i <= LWW_ERR_LAST; i++) {
		const char *a = lww_strerror(i);
		assert_non_null(a);
		assert_string_not_equal(a, "unknown error");
		for (int j = 0; j < i; j++) {
			assert_string_not_equal(a, lww_strerror(j));
		}
	}
}

static void
test_out_of_range(void **state)
{
	(void) state;
	assert_string_equal(lww_strerror(-1), "unknown error");
	assert_string_equal(lww_strerror(LWW_ERR_LAST + 1), "unknown error");
	assert_string_equal(lww_strerror(LWW_OK), "ok");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_code_has_a_distinct_string),
	    cmocka_unit_test(test_out_of_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
