/*
 * digest.h - the hash tree (Merkle tree) that lets two replicas find where
 * they differ by comparing a few hashes.
 *
 * Every key falls in a 32-bit bucket: the first four bytes (big-endian) of
 * BLAKE2b-128 of the key. The tree has fan-out 16: a node at level L
 * (0 = root) covers the buckets whose top 4*L bits are its index, so level
 * 8 is a single bucket. A node's hash is the XOR of the BLAKE2b-128 hashes
 * of the entries (key, flags, stamp, value) below it, as in Cassandra's
 * Merkle trees. XOR makes updates incremental: replacing an entry XORs the
 * old and the new entry hash into each node on its path. Two honest stores
 * with different contents have different hashes but with probability 2^-128.
 *
 * The store persists levels 0..LWW_DIGEST_STORED (65,536 leaves) and
 * computes deeper levels on demand from its bucket index. This module is
 * pure: hashing, addressing and folding per-transaction deltas.
 */
#ifndef LWW_DIGEST_H
#define LWW_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "entry.h"
#include "err.h"

#define LWW_DIGEST_BYTES  16
#define LWW_DIGEST_FANOUT 16
#define LWW_DIGEST_STORED 4 /* deepest level kept in the store */
#define LWW_DIGEST_LEVELS 8 /* deepest level: one bucket */

typedef struct lww_digest {
	uint8_t h[LWW_DIGEST_BYTES];
} lww_digest;

/* The 32-bit bucket of a key. */
uint32_t lww_digest_bucket(const uint8_t *key, size_t klen);

/* The hash of one entry, over its key, flags, stamp and value. */
void lww_digest_entry(const lww_entry *e, lww_digest *out);

/* dst ^= src */
void lww_digest_xor(lww_digest *dst, const lww_digest *src);

int lww_digest_is_zero(const lww_digest *d);

/* Index at `level` (0..8) of the node that covers `bucket`. */
static inline uint32_t
lww_digest_index(uint32_t bucket, unsigned level)
{
	return level == 0 ? 0 : (uint32_t) (bucket >> (32 - 4 * level));
}

/* First bucket under node (level, index), and the number of buckets it
 * covers minus one (so the range [first, first + span] never overflows). */
static inline uint32_t
lww_digest_first(unsigned level, uint32_t index)
{
	return level == 0 ? 0 : index << (32 - 4 * level);
}

static inline uint32_t
lww_digest_span(unsigned level)
{
	return level == 0 ? UINT32_MAX : (UINT32_C(1) << (32 - 4 * level)) - 1;
}

/* Deltas collected during one store transaction, folded at commit. */
typedef struct lww_digest_delta {
	struct lww_digest_leaf *v;
	size_t n;
	size_t cap;
} lww_digest_delta;

#define LWW_DIGEST_DELTA_INIT                                                  \
	{                                                                      \
		NULL, 0, 0                                                     \
	}

/* Records that the entry hash h was added to or removed from bucket (XOR
 * is its own inverse, so both are one call). LWW_ENOMEM changes nothing. */
lww_err lww_digest_delta_add(lww_digest_delta *d, uint32_t bucket,
                             const lww_digest *h);

/* Calls fn once for each stored-level node (levels LWW_DIGEST_STORED down
 * to 0) whose hash changes, with the XOR to apply to it. Stops at, and
 * returns, the first error fn returns. Sorts the deltas in place. */
typedef lww_err (*lww_digest_fold_fn)(unsigned level, uint32_t index,
                                      const lww_digest *delta, void *arg);
lww_err lww_digest_delta_fold(lww_digest_delta *d, lww_digest_fold_fn fn,
                              void *arg);

void lww_digest_delta_reset(lww_digest_delta *d);
void lww_digest_delta_fini(lww_digest_delta *d);

#endif /* LWW_DIGEST_H */
