/*
 * skew.h - clock offset estimation against peers, and the fence decision.
 *
 * A node probes each peer NTP-style: t1 (our wall clock at send), t2 and t3
 * (the peer's wall clock when it received and when it answered), t4 (our
 * wall clock at receipt), and the round trip measured on our monotonic
 * clock. A sample is the peer's offset (its clock minus ours,
 * ((t2 - t1) + (t3 - t4)) / 2) with an uncertainty of half the network
 * delay (round trip minus the peer's time between t2 and t3). Each peer
 * keeps its LWW_SKEW_SAMPLES most recent samples; its estimate is the one
 * with the lowest delay (the least queueing, as NTP's clock filter), and
 * once two newest samples agree with each other but with none before them
 * (a clock step), the older ones are dropped, so a step shows within two
 * probes while one delayed outlier changes nothing.
 *
 * The node's own offset from the fleet (reported) is minus the median of
 * its peers' offsets. lww_skew_judge decides per peer, with hysteresis:
 * AHEAD (fence local writes) needs at least LWW_SKEW_QUORUM answering
 * peers and this clock ahead of a strict majority of them beyond the
 * threshold even at the near end of each one's uncertainty (a median of
 * two is their mean: one peer far behind would fence a healthy node); it
 * ends only once no majority is beyond half the threshold. Fewer
 * answering peers give AHEAD_UNSURE (warn only).
 *
 * Pure: no clock is read here, every time is passed in (milliseconds);
 * no threads, I/O or allocation. A lww_skew_peer is a plain value; its
 * owner serialises calls.
 */
#ifndef LWW_SKEW_H
#define LWW_SKEW_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define LWW_SKEW_SAMPLES 8
/* A peer answers while its newest sample is at most this old. */
#define LWW_SKEW_FRESH_MS 10000
/* A probe whose wall-clock round trip differs from the monotonic one by
 * more than this saw our clock step: its sample is refused. */
#define LWW_SKEW_STEP_SLACK_MS 50
/* Answering peers needed to fence (fewer: warn only). */
#define LWW_SKEW_QUORUM 2

typedef struct lww_skew_sample {
	int64_t offset_ms; /* the peer's clock minus ours */
	uint64_t delay_ms; /* network round trip; uncertainty = delay / 2 */
	uint64_t at_ms;    /* monotonic time it was taken */
} lww_skew_sample;

typedef struct lww_skew_peer {
	lww_skew_sample s[LWW_SKEW_SAMPLES]; /* oldest first */
	size_t n;
} lww_skew_peer;

/* Makes a sample from one probe: t1, t4 our wall clock, t2, t3 the
 * peer's, rtt_ms the round trip on our monotonic clock, now_ms our
 * monotonic clock. LWW_EINVAL (out unchanged) if t3 < t2, the peer's
 * processing exceeds the round trip, or our wall clock stepped during
 * the probe. */
lww_err lww_skew_sample_make(uint64_t t1, uint64_t t2, uint64_t t3, uint64_t t4,
                             uint64_t rtt_ms, uint64_t now_ms,
                             lww_skew_sample *out);

/* Adds a sample (its at_ms not older than the peer's newest). */
void lww_skew_add(lww_skew_peer *p, const lww_skew_sample *s);

/* The peer's best estimate: the lowest-delay sample of those at most
 * LWW_SKEW_FRESH_MS old at now_ms. 0 if there is none (out unchanged). */
int lww_skew_best(const lww_skew_peer *p, uint64_t now_ms,
                  lww_skew_sample *out);

/* Our own offset from the fleet: minus the median of the n peers' best
 * offsets (the mean of the middle two for an even n; for reports only,
 * the fence is judged per peer), and an uncertainty that bounds that
 * median (from the medians of the intervals' ends). 0 peers: 0 (out
 * unchanged). */
int lww_skew_fleet(const lww_skew_sample *best, size_t n, int64_t *offset_ms,
                   uint64_t *unc_ms);

typedef enum lww_skew_state {
	LWW_SKEW_UNKNOWN = 0,      /* no peer answers */
	LWW_SKEW_OK = 1,           /* within the threshold */
	LWW_SKEW_AHEAD = 2,        /* ahead of the fleet: fence writes */
	LWW_SKEW_AHEAD_UNSURE = 3, /* ahead, too few peers to fence */
	LWW_SKEW_BEHIND = 4,       /* behind the fleet: reported only */
} lww_skew_state;

/* The next state from the previous one and the n answering peers' best
 * samples: AHEAD when this clock is ahead of a strict majority of them by
 * more than the threshold at the near end of each peer's interval (n = 2:
 * of both), AHEAD_UNSURE for that with fewer than LWW_SKEW_QUORUM peers;
 * BEHIND likewise; it ends once a majority is no longer beyond half the
 * threshold. */
lww_skew_state lww_skew_judge(lww_skew_state prev, const lww_skew_sample *best,
                              size_t n, uint64_t threshold_ms);

/* Whether this clock agrees with a strict majority of the n + 1 clocks
 * (the n peers and its own, which agrees with itself): a peer agrees when
 * its whole interval (offset +- uncertainty) is within the threshold.
 * What a recovery from a future mark needs (a clock that is behind
 * agrees with no peer, and its own vote alone is no majority; n = 0:
 * never). */
int lww_skew_agrees(const lww_skew_sample *best, size_t n,
                    uint64_t threshold_ms);

/* Whether local writes are fenced for a clock ahead, given state st and
 * whether they were (fenced): AHEAD fences; a fence once set stays while
 * the node cannot tell (AHEAD_UNSURE, UNKNOWN: peers were lost, not the
 * clock fixed) and lifts only at OK or BEHIND. */
int lww_skew_fence_ahead(int fenced, lww_skew_state st);

/* A short lower-case name of a state ("ok", "ahead", ...). */
const char *lww_skew_state_name(lww_skew_state s);

#endif /* LWW_SKEW_H */
