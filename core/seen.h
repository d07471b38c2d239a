/*
 * seen.h - which batches of one origin a node has seen, in bounded space.
 *
 * A relay forwards the first copy of each batch (origin, sequence) and
 * drops the others. Batches of one origin carry consecutive sequence
 * numbers, so what has been seen is "every sequence up to base, and these
 * of the next LWW_SEEN_WINDOW": 40 bytes per origin, however long the node
 * runs, instead of a cache of message ids that grows with traffic.
 *
 * The first sequence heard from an origin starts its window (what came
 * before it is the store's business: repair). A sequence more than the
 * window beyond base is a jump (the origin renumbered at a restart, or
 * more was lost than the window tracks): everything below it is given
 * up, counted, for repair to fetch.
 * Pure: no locking (the owner's lock guards it).
 */
#ifndef LWW_SEEN_H
#define LWW_SEEN_H

#include <stdint.h>

#include "limits.h"

typedef struct lww_seen {
	uint64_t base; /* every sequence <= base has been seen */
	uint64_t top;  /* the highest sequence seen (>= base) */
	uint64_t bits[LWW_SEEN_WINDOW / 64]; /* base+1+i seen: bit i */
	int started;
} lww_seen;

/* Starts the window with everything up to base seen (what the store
 * records of the origin). */
void lww_seen_start(lww_seen *s, uint64_t base);
/* Whether seq has been seen (everything at or below base counts). */
int lww_seen_has(const lww_seen *s, uint64_t seq);
/* Marks seq seen. Returns the sequences given up: never seen and now
 * below the window (0 for an ordinary arrival; at most LWW_SEEN_WINDOW:
 * past that, a jump says only that batches were lost, not how many). */
uint64_t lww_seen_add(lww_seen *s, uint64_t seq);
/* The lowest sequence not seen in base+1..upto, or 0 if none is missing. */
uint64_t lww_seen_first_missing(const lww_seen *s, uint64_t upto);
/* Gives up on everything up to seq: marks it seen; returns how many
 * sequences were never seen (at most LWW_SEEN_WINDOW, as above). */
uint64_t lww_seen_skip(lww_seen *s, uint64_t seq);

#endif /* LWW_SEEN_H */
