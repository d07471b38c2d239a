/* skew_test.c - clock offset samples, the per-peer filter (lowest delay,
 * step detection, expiry), the fleet median and the fence decision with
 * its hysteresis and quorum. Time is passed in: no clock is read. */
#include "testutil.h"

#include "err.h"
#include "skew.h"

#define T0 UINT64_C(1764600000000)

/* A probe of a peer whose clock is `off` ms from ours, with `up` and
 * `down` ms of network each way and `busy` ms at the peer. */
static lww_err
probe(int64_t off, uint64_t up, uint64_t down, uint64_t busy, uint64_t now,
      lww_skew_sample *s)
{
	uint64_t t1 = T0 + now, t2 = (uint64_t) ((int64_t) (t1 + up) + off);
	uint64_t t3 = t2 + busy, t4 = t1 + up + busy + down;
	return lww_skew_sample_make(t1, t2, t3, t4, up + busy + down, now, s);
}

static void
test_sample(void **state)
{
	lww_skew_sample s;
	(void) state;

	assert_ok(probe(250, 3, 3, 1, 100, &s));
	assert_true(s.offset_ms == 250);
	assert_int_equal(s.delay_ms, 6);
	assert_int_equal(s.at_ms, 100);
	assert_ok(probe(-3600000, 2, 2, 0, 100, &s));
	assert_true(s.offset_ms == -3600000);
	/* Asymmetric paths: the error is within half the delay. */
	assert_ok(probe(0, 10, 0, 0, 100, &s));
	assert_true(s.offset_ms == 5 && s.delay_ms / 2 >= 5);
	/* A peer answering before it received, or busy longer than the
	 * round trip, or our clock stepping during the probe: refused. */
	assert_err(
	    lww_skew_sample_make(T0, T0 + 10, T0 + 9, T0 + 20, 20, 0, &s),
	    LWW_EINVAL);
	assert_err(lww_skew_sample_make(T0, T0, T0 + 30, T0 + 20, 20, 0, &s),
	           LWW_EINVAL);
	assert_err(
	    lww_skew_sample_make(T0, T0, T0 + 1, T0 + 3600020, 20, 0, &s),
	    LWW_EINVAL);
	assert_err(lww_skew_sample_make(UINT64_MAX, T0, T0, T0, 1, 0, &s),
	           LWW_EINVAL);
}

static void
test_best_is_lowest_delay(void **state)
{
	lww_skew_peer p = {0};
	lww_skew_sample s, best;
	(void) state;

	assert_int_equal(lww_skew_best(&p, 0, &best), 0);
	assert_ok(probe(10, 1, 1, 0, 1000, &s));
	lww_skew_add(&p, &s);
	/* A queued probe: long delay, skewed estimate, still agreeing. */
	assert_ok(probe(10, 150, 1, 0, 2000, &s));
	lww_skew_add(&p, &s);
	assert_int_equal(lww_skew_best(&p, 2000, &best), 1);
	assert_true(best.offset_ms == 10 && best.delay_ms == 2);
	/* Samples older than LWW_SKEW_FRESH_MS no longer count. */
	assert_int_equal(lww_skew_best(&p, 1000 + LWW_SKEW_FRESH_MS + 1, &best),
	                 1);
	assert_int_equal(best.at_ms, 2000);
	assert_int_equal(lww_skew_best(&p, 2000 + LWW_SKEW_FRESH_MS + 1, &best),
	                 0);
	/* Only the last LWW_SKEW_SAMPLES are kept. */
	for (uint64_t i = 0; i < 3 * LWW_SKEW_SAMPLES; i++) {
		assert_ok(probe(10, 5, 5, 0, 3000 + i * 1000, &s));
		lww_skew_add(&p, &s);
	}
	assert_int_equal(p.n, LWW_SKEW_SAMPLES);
}

static void
test_step_is_seen_in_two_probes(void **state)
{
	lww_skew_peer p = {0};
	lww_skew_sample s, best;
	uint64_t now = 0;
	(void) state;

	for (int i = 0; i < LWW_SKEW_SAMPLES; i++) {
		assert_ok(probe(0, 1, 1, 0, now += 1000, &s));
		lww_skew_add(&p, &s);
	}
	/* One outlier (a delayed reply) changes nothing... */
	assert_ok(probe(-3600000, 40, 40, 0, now += 1000, &s));
	lww_skew_add(&p, &s);
	assert_int_equal(lww_skew_best(&p, now, &best), 1);
	assert_true(best.offset_ms == 0);
	/* ...alternating jitter of +-100 ms neither... */
	for (int i = 0; i < 20; i++) {
		assert_ok(probe(i % 2 ? 100 : -100, 1, 1, 0, now += 1000, &s));
		lww_skew_add(&p, &s);
		assert_int_equal(lww_skew_best(&p, now, &best), 1);
		assert_true(best.offset_ms == 100 || best.offset_ms == -100);
	}
	/* ...but a step, seen twice, replaces the history, even though the
	 * older samples had lower delays. */
	assert_ok(probe(-3600000, 3, 3, 0, now += 1000, &s));
	lww_skew_add(&p, &s);
	assert_ok(lww_skew_best(&p, now, &best) == 1 ? LWW_OK : LWW_EINVAL);
	assert_true(best.offset_ms != -3600000);
	assert_ok(probe(-3600000, 2, 4, 0, now += 1000, &s));
	lww_skew_add(&p, &s);
	assert_int_equal(p.n, 2);
	assert_int_equal(lww_skew_best(&p, now, &best), 1);
	assert_true(best.offset_ms < -3599990);
}

static void
test_fleet_median(void **state)
{
	lww_skew_sample v[4] = {
	    {-3600000, 4, 0}, {-3600010, 2, 0}, {-3599990, 6, 0}, {5, 10, 0}};
	int64_t off = 0;
	uint64_t unc = 0;
	(void) state;

	assert_int_equal(lww_skew_fleet(v, 0, &off, &unc), 0);
	assert_int_equal(lww_skew_fleet(v, 3, &off, &unc), 1);
	assert_true(off == 3600000);
	assert_int_equal(unc, 2);
	/* One peer that agrees with us does not hide the others. */
	assert_int_equal(lww_skew_fleet(v, 4, &off, &unc), 1);
	assert_true(off > 3599990 && off <= 3600000);
	assert_int_equal(lww_skew_fleet(v + 3, 1, &off, &unc), 1);
	assert_true(off == -5);
	assert_int_equal(unc, 5);
}

/* Judges n peers that all see this clock `ahead` ms ahead of theirs,
 * each with an uncertainty of unc ms. */
static lww_skew_state
judge_all(lww_skew_state prev, size_t n, int64_t ahead, uint64_t unc)
{
	lww_skew_sample v[8] = {{0, 0, 0}};
	for (size_t i = 0; i < n && i < 8; i++) {
		v[i].offset_ms = -ahead;
		v[i].delay_ms = 2 * unc;
		v[i].at_ms = 0;
	}
	return lww_skew_judge(prev, v, n, 500);
}

static void
test_judge(void **state)
{
	lww_skew_state st = LWW_SKEW_UNKNOWN;
	(void) state;

	assert_int_equal(judge_all(st, 0, 3600000, 1), LWW_SKEW_UNKNOWN);
	/* Fencing needs a quorum; one peer only warns. */
	assert_int_equal(judge_all(st, 1, 3600000, 1), LWW_SKEW_AHEAD_UNSURE);
	st = judge_all(st, 2, 3600000, 1);
	assert_int_equal(st, LWW_SKEW_AHEAD);
	/* Hysteresis: stays fenced until within half the threshold. */
	assert_int_equal(judge_all(st, 3, 400, 1), LWW_SKEW_AHEAD);
	st = judge_all(st, 3, 240, 1);
	assert_int_equal(st, LWW_SKEW_OK);
	/* Entering counts the uncertainty in our favour. */
	assert_int_equal(judge_all(st, 3, 600, 150), LWW_SKEW_OK);
	assert_int_equal(judge_all(st, 3, 600, 50), LWW_SKEW_AHEAD);
	/* Jitter of +-100 ms never leaves OK. */
	for (int i = 0; i < 1000; i++) {
		st = judge_all(st, 1 + (size_t) (i % 3), i % 2 ? 100 : -100, 3);
		assert_int_equal(st, LWW_SKEW_OK);
	}
	/* Behind is reported, with the same hysteresis. */
	st = judge_all(st, 3, -600, 1);
	assert_int_equal(st, LWW_SKEW_BEHIND);
	assert_int_equal(judge_all(st, 3, -300, 1), LWW_SKEW_BEHIND);
	assert_int_equal(judge_all(st, 3, -200, 1), LWW_SKEW_OK);
	assert_string_equal(lww_skew_state_name(LWW_SKEW_AHEAD), "ahead");
	assert_string_equal(lww_skew_state_name((lww_skew_state) 99),
	                    "unknown");
}

/* One peer with a wrong clock never fences a healthy node: with two
 * peers the median would be their mean (1100 ms behind and 0: 550 ahead,
 * beyond a 500 ms threshold). A strict majority must see us ahead. */
static void
test_one_wrong_peer(void **state)
{
	/* offset: the peer's clock minus ours */
	lww_skew_sample two[2] = {{-1100, 2, 0}, {0, 2, 0}};
	lww_skew_sample four[4] = {
	    {-1100, 2, 0}, {0, 2, 0}, {3, 2, 0}, {-2, 2, 0}};
	lww_skew_sample most[3] = {{-1100, 2, 0}, {-900, 2, 0}, {0, 2, 0}};
	lww_skew_sample wrong[2] = {{1100, 2, 0}, {1100, 2, 0}};
	(void) state;

	assert_int_equal(lww_skew_judge(LWW_SKEW_OK, two, 2, 500), LWW_SKEW_OK);
	assert_int_equal(lww_skew_judge(LWW_SKEW_OK, four, 4, 500),
	                 LWW_SKEW_OK);
	/* Ahead of two of three: fenced. */
	assert_int_equal(lww_skew_judge(LWW_SKEW_OK, most, 3, 500),
	                 LWW_SKEW_AHEAD);
	/* The wrong node itself is behind both: reported, not fenced. */
	assert_int_equal(lww_skew_judge(LWW_SKEW_OK, wrong, 2, 500),
	                 LWW_SKEW_BEHIND);
	/* Agreement (what a recovery needs): a majority within the
	 * threshold, uncertainty included; behind does not agree. */
	assert_true(lww_skew_agrees(four, 4, 500));
	assert_false(lww_skew_agrees(wrong, 2, 500));
	assert_false(lww_skew_agrees(two, 0, 500));
}

/* Agreement counts this node's own clock as a vote: with two peers, one
 * of them wrong, a correct clock agreed with one of two (no strict
 * majority) and never recovered from its future mark. A clock far off
 * (a dead RTC) still agrees with nobody, its own vote alone is never a
 * majority. */
static void
test_agrees_counts_own_vote(void **state)
{
	lww_skew_sample two[2] = {{-1100, 2, 0}, {0, 2, 0}};
	lww_skew_sample one_ok[1] = {{3, 2, 0}};
	lww_skew_sample one_off[1] = {{-1100, 2, 0}};
	lww_skew_sample rtc[2] = {{2592000000, 2, 0}, {2592000003, 2, 0}};
	lww_skew_sample three[3] = {{-1100, 2, 0}, {900, 2, 0}, {0, 2, 0}};
	lww_skew_sample four[4] = {
	    {-1100, 2, 0}, {1100, 2, 0}, {0, 2, 0}, {4, 2, 0}};
	lww_skew_sample wide[2] = {{-1100, 2, 0}, {300, 600, 0}};
	(void) state;

	assert_true(lww_skew_agrees(two, 2, 500));
	assert_true(lww_skew_agrees(one_ok, 1, 500));
	assert_false(lww_skew_agrees(one_off, 1, 500));
	assert_false(lww_skew_agrees(rtc, 2, 500));
	/* One of three peers: 2 votes of 4, not a strict majority. */
	assert_false(lww_skew_agrees(three, 3, 500));
	/* Two of four: 3 votes of 5. */
	assert_true(lww_skew_agrees(four, 4, 500));
	/* The whole interval must be within: 300 +- 300 is not. */
	assert_false(lww_skew_agrees(wide, 2, 500));
}

/* An ahead fence is kept while peers are lost: with one of two peers
 * dead the state is only AHEAD_UNSURE, and an hour-ahead node lifted
 * its fence and accepted writes. */
static void
test_fence_ahead_kept_without_peers(void **state)
{
	(void) state;

	assert_true(lww_skew_fence_ahead(0, LWW_SKEW_AHEAD));
	assert_true(lww_skew_fence_ahead(1, LWW_SKEW_AHEAD));
	assert_true(lww_skew_fence_ahead(1, LWW_SKEW_AHEAD_UNSURE));
	assert_true(lww_skew_fence_ahead(1, LWW_SKEW_UNKNOWN));
	assert_false(lww_skew_fence_ahead(1, LWW_SKEW_OK));
	assert_false(lww_skew_fence_ahead(1, LWW_SKEW_BEHIND));
	/* Never fenced: one peer alone does not fence (warn only). */
	assert_false(lww_skew_fence_ahead(0, LWW_SKEW_AHEAD_UNSURE));
	assert_false(lww_skew_fence_ahead(0, LWW_SKEW_UNKNOWN));
}

/* For an odd count the uncertainty bounds the median itself: the middle
 * sample may be precise while a wide neighbour could be the median. */
static void
test_fleet_uncertainty_bounds_median(void **state)
{
	lww_skew_sample v[3] = {{-1000, 2, 0}, {0, 2, 0}, {1000, 4000, 0}};
	int64_t off = 0;
	uint64_t unc = 0;
	(void) state;

	assert_int_equal(lww_skew_fleet(v, 3, &off, &unc), 1);
	assert_true(off == 0);
	/* The third peer may really be at -1000: the median then is. */
	assert_true(unc >= 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sample),
	    cmocka_unit_test(test_best_is_lowest_delay),
	    cmocka_unit_test(test_step_is_seen_in_two_probes),
	    cmocka_unit_test(test_fleet_median),
	    cmocka_unit_test(test_judge),
	    cmocka_unit_test(test_one_wrong_peer),
	    cmocka_unit_test(test_agrees_counts_own_vote),
	    cmocka_unit_test(test_fence_ahead_kept_without_peers),
	    cmocka_unit_test(test_fleet_uncertainty_bounds_median),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
