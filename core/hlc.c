/*
 * hlc.c - hybrid logical clock. See hlc.h for the contract.
 *
 * The standard HLC send rule is: l' = max(l, pt); c' = (l' == l) ? c+1 : 0.
 * Packing (l, c) into one integer turns it into: next = max(last + 1,
 * make(pt, 0)), with the carry from c into l taking care of counter
 * overflow (the stamp then runs a millisecond ahead of the wall clock,
 * as CockroachDB's HLC does).
 */
#include <stddef.h>

#include "hlc.h"

void
lww_hlc_init(lww_hlc *c, lww_wall_fn wall, void *wall_arg,
             uint64_t max_drift_ms)
{
	c->last = 0;
	c->max_drift = max_drift_ms;
	c->wall = wall;
	c->wall_arg = wall_arg;
}

void
lww_hlc_restore(lww_hlc *c, uint64_t stamp)
{
	if (stamp > c->last) {
		c->last = stamp;
	}
}

void
lww_hlc_rebase(lww_hlc *c, uint64_t stamp)
{
	if (stamp < c->last) {
		c->last = stamp;
	}
}

static uint64_t
hlc_wall_now(const lww_hlc *c)
{
	uint64_t ms = c->wall(c->wall_arg);
	return ms > LWW_HLC_WALL_MAX ? LWW_HLC_WALL_MAX : ms;
}

lww_err
lww_hlc_now(lww_hlc *c, uint64_t *out)
{
	uint64_t pt = lww_hlc_make(hlc_wall_now(c), 0);
	uint64_t next;

	if (c->last == UINT64_MAX) {
		return LWW_EOVERFLOW;
	}
	next = c->last + 1;
	if (pt > next) {
		next = pt;
	}
	c->last = next;
	*out = next;
	return LWW_OK;
}

lww_err
lww_hlc_check(const lww_hlc *c, uint64_t stamp)
{
	uint64_t wall = hlc_wall_now(c);
	uint64_t sw = lww_hlc_wall(stamp);

	/* Written as a subtraction of known-ordered values: no overflow. */
	if (sw > wall && sw - wall > c->max_drift) {
		return LWW_EDRIFT;
	}
	return LWW_OK;
}

lww_err
lww_hlc_observe(lww_hlc *c, uint64_t stamp)
{
	lww_err rv = lww_hlc_check(c, stamp);
	if (rv != LWW_OK) {
		return rv;
	}
	lww_hlc_restore(c, stamp);
	return LWW_OK;
}
