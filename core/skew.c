/*
 * skew.c - clock offset estimation and the fence decision. See skew.h for
 * the contract. Wall-clock values are at most 48 bits (hlc.h), so their
 * differences fit an int64_t; every subtraction of two unsigned values is
 * of known-ordered ones or done in int64_t.
 */
#include <string.h>

#include "skew.h"

lww_err
lww_skew_sample_make(uint64_t t1, uint64_t t2, uint64_t t3, uint64_t t4,
                     uint64_t rtt_ms, uint64_t now_ms, lww_skew_sample *out)
{
	const uint64_t lim = UINT64_C(1) << 48;
	int64_t wall_rtt, step;
	uint64_t busy;

	if (t1 >= lim || t2 >= lim || t3 >= lim || t4 >= lim || t3 < t2 ||
	    rtt_ms >= lim) {
		return LWW_EINVAL;
	}
	busy = t3 - t2;
	if (busy > rtt_ms) {
		return LWW_EINVAL;
	}
	/* Our wall clock must have run like the monotonic one meanwhile. */
	wall_rtt = (int64_t) t4 - (int64_t) t1;
	step = wall_rtt - (int64_t) rtt_ms;
	if (step > LWW_SKEW_STEP_SLACK_MS || step < -LWW_SKEW_STEP_SLACK_MS) {
		return LWW_EINVAL;
	}
	out->offset_ms =
	    (((int64_t) t2 - (int64_t) t1) + ((int64_t) t3 - (int64_t) t4)) / 2;
	out->delay_ms = rtt_ms - busy;
	out->at_ms = now_ms;
	return LWW_OK;
}

static uint64_t
absdiff(int64_t a, int64_t b)
{
	return a > b ? (uint64_t) (a - b) : (uint64_t) (b - a);
}

/* Two samples agree if their intervals (offset +- delay/2) meet, with a
 * millisecond of slack for the rounding of whole milliseconds. */
static int
agree(const lww_skew_sample *a, const lww_skew_sample *b)
{
	return absdiff(a->offset_ms, b->offset_ms) <=
	       a->delay_ms / 2 + b->delay_ms / 2 + 2;
}

void
lww_skew_add(lww_skew_peer *p, const lww_skew_sample *s)
{
	if (p->n == LWW_SKEW_SAMPLES) {
		memmove(&p->s[0], &p->s[1], (p->n - 1) * sizeof(p->s[0]));
		p->n--;
	}
	p->s[p->n++] = *s;
	/* A step: the two newest agree with each other, with none before. */
	if (p->n >= 3 && agree(&p->s[p->n - 1], &p->s[p->n - 2])) {
		for (size_t i = 0; i + 2 < p->n; i++) {
			if (agree(&p->s[i], &p->s[p->n - 1]) ||
			    agree(&p->s[i], &p->s[p->n - 2])) {
				return;
			}
		}
		p->s[0] = p->s[p->n - 2];
		p->s[1] = p->s[p->n - 1];
		p->n = 2;
	}
}

int
lww_skew_best(const lww_skew_peer *p, uint64_t now_ms, lww_skew_sample *out)
{
	const lww_skew_sample *best = NULL;

	for (size_t i = 0; i < p->n; i++) {
		const lww_skew_sample *s = &p->s[i];
		if (s->at_ms > now_ms ||
		    now_ms - s->at_ms > LWW_SKEW_FRESH_MS) {
			continue;
		}
		if (best == NULL || s->delay_ms <= best->delay_ms) {
			best = s; /* ties: the newer */
		}
	}
	if (best == NULL) {
		return 0;
	}
	*out = *best;
	return 1;
}

/* The median of m values, sorted in place (m small, m > 0): the mean of
 * the middle two for an even m. */
static int64_t
median(int64_t *v, size_t m)
{
	for (size_t i = 1; i < m; i++) {
		for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			int64_t t = v[j - 1];
			v[j - 1] = v[j];
			v[j] = t;
		}
	}
	if (m % 2 == 1) {
		return v[m / 2];
	}
	return v[m / 2 - 1] + (v[m / 2] - v[m / 2 - 1]) / 2;
}

int
lww_skew_fleet(const lww_skew_sample *best, size_t n, int64_t *offset_ms,
               uint64_t *unc_ms)
{
	/* Fleets are small: at most the first 64 peers, no allocation. */
	int64_t mid[64], lo[64], hi[64], m, l, h;
	size_t k = n < 64 ? n : 64;

	if (n == 0) {
		return 0;
	}
	for (size_t i = 0; i < k; i++) {
		int64_t u = (int64_t) (best[i].delay_ms / 2);
		mid[i] = best[i].offset_ms;
		lo[i] = best[i].offset_ms - u;
		hi[i] = best[i].offset_ms + u;
	}
	/* Every true offset lies in its interval, so the true median lies
	 * between the median of the low ends and that of the high ends: the
	 * uncertainty bounds the median, not only the middle sample. */
	m = median(mid, k);
	l = median(lo, k);
	h = median(hi, k);
	*offset_ms = -m;
	*unc_ms = (uint64_t) (m - l > h - m ? m - l : h - m);
	return 1;
}

lww_skew_state
lww_skew_judge(lww_skew_state prev, const lww_skew_sample *best, size_t n,
               uint64_t threshold_ms)
{
	int64_t thr = (int64_t) (threshold_ms > INT64_MAX / 4 ? INT64_MAX / 4
	                                                      : threshold_ms);
	int was_ahead = prev == LWW_SKEW_AHEAD || prev == LWW_SKEW_AHEAD_UNSURE;
	int was_behind = prev == LWW_SKEW_BEHIND;
	size_t ahead = 0, behind = 0;

	if (n == 0) {
		return LWW_SKEW_UNKNOWN;
	}
	/* Per peer: entered only when even the near end of the peer's
	 * interval is beyond the threshold; left only once its middle is
	 * back within half of it (hysteresis). A strict majority of the
	 * answering peers must agree, so that one wrong peer never fences a
	 * healthy node (with two peers: both). */
	for (size_t i = 0; i < n; i++) {
		int64_t ours = -best[i].offset_ms; /* our clock minus its */
		int64_t u = (int64_t) (best[i].delay_ms / 2 > (uint64_t) thr
		                           ? (uint64_t) thr
		                           : best[i].delay_ms / 2);
		if (was_ahead ? ours > thr / 2 : ours - u > thr) {
			ahead++;
		}
		if (was_behind ? ours < -thr / 2 : ours + u < -thr) {
			behind++;
		}
	}
	if (ahead * 2 > n) {
		return n >= LWW_SKEW_QUORUM ? LWW_SKEW_AHEAD
		                            : LWW_SKEW_AHEAD_UNSURE;
	}
	return behind * 2 > n ? LWW_SKEW_BEHIND : LWW_SKEW_OK;
}

int
lww_skew_agrees(const lww_skew_sample *best, size_t n, uint64_t threshold_ms)
{
	size_t agree = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t o = best[i].offset_ms;
		uint64_t far = (o < 0 ? (uint64_t) -o : (uint64_t) o) +
		               best[i].delay_ms / 2;
		if (far <= threshold_ms) {
			agree++;
		}
	}
	/* This node's own clock is a vote too (it agrees with itself): with
	 * two peers, one of them wrong, a correct clock agrees with the
	 * other and so with a strict majority of the three clocks. A clock
	 * far off agrees with no peer, and one vote of n + 1 is never a
	 * majority for n >= 1. */
	return n > 0 && (agree + 1) * 2 > n + 1;
}

int
lww_skew_fence_ahead(int fenced, lww_skew_state st)
{
	/* Losing peers is no evidence that the clock came back: an hour
	 * ahead with one peer left is still an hour ahead. */
	return st == LWW_SKEW_AHEAD ||
	       (fenced &&
	        (st == LWW_SKEW_AHEAD_UNSURE || st == LWW_SKEW_UNKNOWN));
}

const char *
lww_skew_state_name(lww_skew_state s)
{
	switch (s) {
	case LWW_SKEW_OK:
		return "ok";
	case LWW_SKEW_AHEAD:
		return "ahead";
	case LWW_SKEW_AHEAD_UNSURE:
		return "ahead_unsure";
	case LWW_SKEW_BEHIND:
		return "behind";
	default:
		return "unknown";
	}
}
