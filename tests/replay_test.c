/* replay_test.c - the nonce cache refuses stale requests and replays, and
 * stays bounded. */
#include "testutil.h"

#include "err.h"
#include "replay.h"

static void
nonce_of(uint64_t i, uint8_t n[16])
{
	uint64_t s = i * 0x9E3779B97F4A7C15u + 1;
	for (int k = 0; k < 16; k++) {
		n[k] = (uint8_t) tu_rand(&s);
	}
}

static void
test_fresh_stale_replay(void **state)
{
	lww_replay *r = lww_replay_alloc(100, 30000);
	uint8_t a[16], b[16];
	(void) state;

	assert_non_null(r);
	nonce_of(1, a);
	nonce_of(2, b);
	assert_ok(lww_replay_check(r, a, 1000000, 1000000));
	assert_err(lww_replay_check(r, a, 1000000, 1000500), LWW_EREPLAY);
	/* Within the window either way, by clock difference. */
	assert_ok(lww_replay_check(r, b, 1029000, 1000000));
	assert_err(lww_replay_check(r, b, 1029000, 1000000), LWW_EREPLAY);
	/* Outside: stale, even for a nonce never seen. */
	nonce_of(3, a);
	assert_err(lww_replay_check(r, a, 1000000, 1030001), LWW_ESTALE);
	assert_err(lww_replay_check(r, a, 1030001, 1000000), LWW_ESTALE);
	/* A refused check did not remember the nonce. */
	assert_ok(lww_replay_check(r, a, 1000000, 1000000));
	lww_replay_free(r);
	lww_replay_free(NULL);
}

static void
test_bounded_and_expiring(void **state)
{
	lww_replay *r = lww_replay_alloc(64, 1000);
	uint8_t n[16];
	uint64_t now = 5000000;
	int ok = 0, busy = 0;
	(void) state;

	for (uint64_t i = 0; i < 1000; i++) {
		nonce_of(i, n);
		lww_err rv = lww_replay_check(r, n, now, now);
		if (rv == LWW_OK) {
			ok++;
		} else {
			assert_err(rv, LWW_EBUSY);
			busy++;
		}
	}
	assert_true(ok >= 64 && busy > 0);
	/* Once those have expired, room comes back; every nonce admitted is
	 * still refused as a replay while live. */
	now += 1002;
	nonce_of(5000, n);
	assert_ok(lww_replay_check(r, n, now, now));
	assert_err(lww_replay_check(r, n, now, now), LWW_EREPLAY);
	for (uint64_t i = 0; i < 5000; i++) {
		nonce_of(10000 + i, n);
		assert_ok(lww_replay_check(r, n, now + i * 20, now + i * 20));
	}
	lww_replay_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fresh_stale_replay),
	    cmocka_unit_test(test_bounded_and_expiring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
