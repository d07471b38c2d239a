/*
 * replay.h - a bounded cache of recently seen request nonces, so a signed
 * client request cannot be replayed within the freshness window.
 *
 * A request is fresh if its timestamp is within window_ms of now (either
 * side, for clock differences). A fresh nonce is remembered until its
 * timestamp is window_ms behind now; after that the timestamp alone makes
 * a replay stale. The table is bounded: when it holds `cap` live nonces,
 * new requests are refused (LWW_EBUSY) rather than admitted unchecked.
 *
 * Not thread-safe: the owner serialises calls.
 */
#ifndef LWW_REPLAY_H
#define LWW_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct lww_replay lww_replay;

/* cap: live nonces to hold (rounded up to a power of two, at least 64).
 * Returns NULL when out of memory. The caller frees with
 * lww_replay_free. */
lww_replay *lww_replay_alloc(size_t cap, uint64_t window_ms);
void lww_replay_free(lww_replay *r);

/* Admits a request: LWW_OK (and remembers the nonce), LWW_ESTALE (outside
 * the window), LWW_EREPLAY (nonce seen within the window) or LWW_EBUSY
 * (table full of live nonces). Only LWW_OK changes the cache. */
lww_err lww_replay_check(lww_replay *r, const uint8_t nonce[16], uint64_t ts_ms,
                         uint64_t now_ms);

#endif /* LWW_REPLAY_H */
