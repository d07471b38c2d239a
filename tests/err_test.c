/* err_test.c - every error code has its own string; unknown codes don't
 * crash. */
#include <errno.h>

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

/* One mapping from errno for every file the core touches (key files,
 * log segments, LMDB): a full disk says so, permissions say so. */
static void
test_errno_mapping(void **state)
{
	(void) state;
	assert_int_equal(lww_err_from_errno(0), LWW_OK);
	assert_int_equal(lww_err_from_errno(ENOENT), LWW_ENOENT);
	assert_int_equal(lww_err_from_errno(EEXIST), LWW_EEXIST);
	assert_int_equal(lww_err_from_errno(EACCES), LWW_EPERM);
	assert_int_equal(lww_err_from_errno(EPERM), LWW_EPERM);
	assert_int_equal(lww_err_from_errno(EROFS), LWW_EPERM);
	assert_int_equal(lww_err_from_errno(ENOSPC), LWW_ENOSPC);
	assert_int_equal(lww_err_from_errno(EDQUOT), LWW_ENOSPC);
	assert_int_equal(lww_err_from_errno(ENOMEM), LWW_ENOMEM);
	assert_int_equal(lww_err_from_errno(EIO), LWW_EIO);
	assert_int_equal(lww_err_from_errno(EBADF), LWW_EIO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_code_has_a_distinct_string),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_errno_mapping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
