/*
 * hlc.h - hybrid logical clock (Kulkarni et al. 2014).
 *
 * A stamp is 64 bits: the high 48 are wall-clock milliseconds since the Unix
 * epoch, the low 16 a logical counter. Stamps issued by one clock strictly
 * increase, also when the wall clock steps back and, given the persisted
 * high-water mark (lww_hlc_restore), across restarts. A remote stamp more
 * than max_drift ms ahead of our wall clock is refused by lww_hlc_observe and
 * changes nothing, so one node with a clock in the future cannot drag the
 * others along.
 *
 * The clock reads wall time only through the callback it is given, so tests
 * drive time. An lww_hlc is a plain value; it is not thread-safe: its owner
 * serialises calls.
 */
#ifndef LWW_HLC_H
#define LWW_HLC_H

#include <stdint.h>

#include "err.h"

#define LWW_HLC_LOGICAL_BITS 16
#define LWW_HLC_LOGICAL_MASK ((UINT64_C(1) << LWW_HLC_LOGICAL_BITS) - 1)
#define LWW_HLC_WALL_MAX     ((UINT64_C(1) << 48) - 1)

/* Returns wall-clock milliseconds since the Unix epoch. */
typedef uint64_t (*lww_wall_fn)(void *arg);

typedef struct lww_hlc {
	uint64_t last;      /* greatest stamp issued or observed */
	uint64_t max_drift; /* ms a remote stamp may be ahead of wall time */
	lww_wall_fn wall;
	void *wall_arg;
} lww_hlc;

/* Builds a stamp from its parts; wall is truncated to 48 bits. */
static inline uint64_t
lww_hlc_make(uint64_t wall_ms, uint64_t logical)
{
	return ((wall_ms & LWW_HLC_WALL_MAX) << LWW_HLC_LOGICAL_BITS) |
	       (logical & LWW_HLC_LOGICAL_MASK);
}

static inline uint64_t
lww_hlc_wall(uint64_t stamp)
{
	return stamp >> LWW_HLC_LOGICAL_BITS;
}

static inline uint64_t
lww_hlc_logical(uint64_t stamp)
{
	return stamp & LWW_HLC_LOGICAL_MASK;
}

/* Initialises a clock that has issued nothing yet. */
void lww_hlc_init(lww_hlc *c, lww_wall_fn wall, void *wall_arg,
                  uint64_t max_drift_ms);

/* Raises the clock to at least `stamp` (a persisted high-water mark), so
 * later stamps are greater. Never lowers it. */
void lww_hlc_restore(lww_hlc *c, uint64_t stamp);

/* Lowers the clock to `stamp` if it is above it (never raises it): for a
 * node whose persisted high-water mark came from a clock in the future,
 * once its peers confirm the wall clock (node/clock.c). Later stamps are
 * then greater than `stamp` only; the caller has dealt with the stamps
 * above it. */
void lww_hlc_rebase(lww_hlc *c, uint64_t stamp);

/* Issues a new stamp, greater than every stamp issued, observed or
 * restored before, into *out: max(last + 1, the wall clock). When the
 * logical counter is exhausted within one millisecond the wall part
 * carries one ms ahead of real time. Nothing bounds how far ahead of the
 * wall clock a local stamp runs: it follows the greatest stamp observed
 * (at most max_drift ahead when it was observed), restored (any mark, a
 * persisted one from a clock that ran ahead included) or issued, plus
 * such carries; the caller bounds it (lwwd's writer refuses to stamp while
 * node/clock.c fences this node). LWW_EOVERFLOW once
 * the last stamp is the greatest (wall and counter full, the year
 * 10889); the clock is then unchanged. */
lww_err lww_hlc_now(lww_hlc *c, uint64_t *out);

/* Observes a stamp from another node. LWW_EDRIFT (clock unchanged) if its
 * wall part is more than max_drift ms ahead of our wall clock; else the
 * clock is raised to it and LWW_OK returned. */
lww_err lww_hlc_observe(lww_hlc *c, uint64_t stamp);

/* LWW_EDRIFT if `stamp` is beyond the drift horizon now, else LWW_OK.
 * Changes nothing; for checking a whole batch before merging any of it. */
lww_err lww_hlc_check(const lww_hlc *c, uint64_t stamp);

#endif /* LWW_HLC_H */
