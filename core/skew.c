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

int
lww_skew_fleet(const lww_skew_sample *best, size_t n, int64_t *offset_ms,
               uint64_t *unc_ms)
{
	/* Fleets are small: an insertion sort of pointers (no allocation)
	 * over at most the first 64 peers. */
	const lww_skew_sample *v[64];
	size_t m = n < 64 ? n : 64;
	int64_t off;
	uint64_t unc;

	if (n == 0) {
		return 0;
	}
	for (size_t i = 0; i < m; i++) {
		size_t j = i;
		v[i] = &best[i];
		while (j > 0 && v[j - 1]->offset_ms > v[j]->offset_ms) {
			const lww_skew_sample *t = v[j - 1];
			v[j - 1] = v[j];
			v[j] = t;
			j--;
		}
	}
	if (m % 2 == 1) {
		off = v[m / 2]->offset_ms;
		unc = v[m / 2]->delay_ms / 2;
	} else {
		const lww_skew_sample *a = v[m / 2 - 1], *b = v[m / 2];
		off = a->offset_ms + (b->offset_ms - a->offset_ms) / 2;
		unc =
		    (a->delay_ms > b->delay_ms ? a->delay_ms : b->delay_ms) / 2;
	}
	*offset_ms = -off;
	*unc_ms = unc;
	return 1;
}

lww_skew_state
lww_skew_judge(lww_skew_state prev, size_t answering, int64_t offset_ms,
               uint64_t unc_ms, uint64_t threshold_ms)
{
	int64_t thr = (int64_t) (threshold_ms > INT64_MAX / 4 ? INT64_MAX / 4
	                                                      : threshold_ms);
	int64_t unc =
	    (int64_t) (unc_ms > INT64_MAX / 4 ? INT64_MAX / 4 : unc_ms);
	int was_ahead = prev == LWW_SKEW_AHEAD || prev == LWW_SKEW_AHEAD_UNSURE;
	int ahead, behind;

	if (answering == 0) {
		return LWW_SKEW_UNKNOWN;
	}
	/* Enter only beyond the threshold also at the near end of the
	 * uncertainty; leave only once well within it (hysteresis). */
	ahead = was_ahead ? offset_ms > thr / 2
	                  : offset_ms > 0 && offset_ms - unc > thr;
	if (ahead) {
		return answering >= LWW_SKEW_QUORUM ? LWW_SKEW_AHEAD
		                                    : LWW_SKEW_AHEAD_UNSURE;
	}
	behind = prev == LWW_SKEW_BEHIND
	             ? offset_ms < -thr / 2
	             : offset_ms < 0 && offset_ms + unc < -thr;
	return behind ? LWW_SKEW_BEHIND : LWW_SKEW_OK;
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
