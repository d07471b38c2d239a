/*
 * entry.h - one write to one key, and the total order that picks a winner.
 *
 * An entry is an add (key, value) or a remove (key, tombstone), stamped with
 * (hlc, node). Among writes to one key the winner is the greatest under ONE
 * total order: hlc, then node id, then tombstone over value, then value
 * bytes (shorter first, then memcmp). Merge keeps the greater, so it is
 * commutative, associative and idempotent, and replicas that saw the same
 * writes hold the same winner whatever the order of delivery.
 *
 * lww_entry is a plain value that borrows its key and value bytes; it owns
 * nothing.
 */
#ifndef LWW_ENTRY_H
#define LWW_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Entry flags. Unknown bits are refused by decoders so that a later flag
 * (say, a TTL) is never silently dropped by an old node. */
#define LWW_ENTRY_TOMBSTONE   0x01u
#define LWW_ENTRY_FLAGS_KNOWN (LWW_ENTRY_TOMBSTONE)

typedef struct lww_entry {
	const uint8_t *key;
	size_t klen;
	const uint8_t *val; /* NULL or empty for a tombstone */
	size_t vlen;
	uint64_t hlc;
	uint64_t node;
	uint8_t flags;
} lww_entry;

static inline int
lww_entry_is_tombstone(const lww_entry *e)
{
	return (e->flags & LWW_ENTRY_TOMBSTONE) != 0;
}

/* Checks the entry against the named limits: LWW_EKEYSIZE, LWW_EVALSIZE,
 * LWW_EPROTO (unknown flags, or a tombstone with a value). */
lww_err lww_entry_check(const lww_entry *e);

/* Compares two writes to the same key under the total order: <0, 0, >0.
 * Returns 0 only for writes identical in stamp, kind and value. */
int lww_entry_cmp(const lww_entry *a, const lww_entry *b);

/* Byte order of keys (memcmp, then shorter first), the order of scans and
 * listings: <0, 0, >0. */
int lww_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

/* lww_bytes_cmp of two entries' keys. */
int lww_entry_key_cmp(const lww_entry *a, const lww_entry *b);

/* Non-zero if e's key starts with prefix (plen 0: any) and sorts strictly
 * after `after` (alen 0: any): the range of a list page. */
int lww_entry_key_in(const lww_entry *e, const uint8_t *prefix, size_t plen,
                     const uint8_t *after, size_t alen);

/* Non-zero if `incoming` replaces `current` under the merge rule (it is
 * strictly greater). An equal write is a duplicate and does not win. */
static inline int
lww_entry_wins(const lww_entry *incoming, const lww_entry *current)
{
	return lww_entry_cmp(incoming, current) > 0;
}

#endif /* LWW_ENTRY_H */
