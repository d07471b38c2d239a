/*
 * store.h - the dictionary in LMDB.
 *
 * A store is a directory holding one LMDB environment with four databases:
 *   kv    key -> record (flags, stamp, value): the winning write per key
 *   idx   bucket:u32be + key -> the first LWW_STORE_SUMMARY_HASH bytes of
 *         the entry's hash: the keys under each hash-tree bucket, and
 *         enough to summarise them for repair without reading kv
 *   tree  level:u8 + index:u32be -> 16-byte hash: the stored digest levels
 *   meta  clock high-water mark, per-origin sequence numbers, counters
 *
 * LMDB keys are at most 511 bytes, lww keys up to 1024. A key longer than
 * LWW_STORE_INLINE_KEY is stored under its first LWW_STORE_INLINE_KEY bytes
 * followed by 16 bytes of its BLAKE2b hash, with the full key kept in the
 * record; scans re-sort such keys so callers always see byte order.
 *
 * Every record carries a check: the first 8 bytes of its entry hash
 * (lww_digest_entry), so any changed byte of its key, flags, stamp or
 * value is found when it is read. A record that fails its check is never
 * returned (LWW_ECORRUPT, or skipped and reported by scans), counts as
 * missing for repair, and lww_store_check_* and lww_store_heal drop it
 * and correct the hash tree, so that repair fetches a sound copy.
 *
 * Writes go through a transaction: every entry applied keeps only the
 * winner under the total order (entry.h), and the digest, counters and
 * sequence numbers change in the same LMDB transaction. A failed apply or
 * commit (store full, I/O error) changes nothing: LMDB aborts the whole
 * transaction. Durability follows opts.nosync: by default a commit returns
 * only after fsync.
 *
 * Thread-safety: one transaction at a time (the caller's single writer);
 * reads (get, scan, digest) may run from any thread concurrently with it.
 */
#ifndef LWW_STORE_H
#define LWW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "digest.h"
#include "entry.h"
#include "err.h"

#define LWW_STORE_INLINE_KEY       480
#define LWW_STORE_KEY_MAX          (LWW_STORE_INLINE_KEY + 16)
#define LWW_STORE_MAP_SIZE_DEFAULT ((size_t) 1 << 30)
/* The stored leaves of the hash tree (level LWW_DIGEST_STORED). */
#define LWW_STORE_LEAVES ((uint32_t) 1 << (4 * LWW_DIGEST_STORED))

typedef struct lww_store lww_store;
typedef struct lww_txn lww_txn;

typedef struct lww_store_opts {
	size_t map_size; /* bytes; 0 means LWW_STORE_MAP_SIZE_DEFAULT */
	int nosync;      /* non-zero: commits do not fsync (opt-out) */
	/* Non-zero: a commit fsyncs its data but writes the new root (LMDB's
	 * meta page) without syncing it; the next commit's fsync, or
	 * lww_store_sync(), makes it durable. The store stays consistent
	 * after a crash (LMDB MDB_NOMETASYNC: at most the last commit is
	 * undone), and a writer that acknowledges a commit only once a later
	 * one or a sync has returned pays one fsync per commit instead of
	 * two. */
	int defer_meta;
} lww_store_opts;

/* Opens (creating if needed) the store in directory `dir`, which must
 * exist. opts may be NULL. LWW_EIO / LWW_EPERM / LWW_ENOENT with details
 * from errno; LWW_ECORRUPT if the files are not an lww store. */
lww_err lww_store_open(const char *dir, const lww_store_opts *opts,
                       lww_store **out);

/* Forces every commit so far to disk (fsync of data and metadata). */
lww_err lww_store_sync(lww_store *s);

/* Closes the store; accepts NULL. No transaction may be open. */
void lww_store_close(lww_store *s);

/* Removes every entry, the digest, sequence numbers and the clock mark, in
 * one transaction (the store's format record stays). For tests and fuzz
 * harnesses that reuse one store. */
lww_err lww_store_clear(lww_store *s);

/* Begins the write transaction. */
lww_err lww_store_begin(lww_store *s, lww_txn **out);

/* The key under which key is stored (itself, or a prefix and a hash when
 * longer than LWW_STORE_INLINE_KEY), into out; returns its length. Scans
 * report damaged records by their stored key. */
size_t lww_store_key(const uint8_t *key, size_t klen,
                     uint8_t out[LWW_STORE_KEY_MAX]);

/* Merges one entry: stores it if it beats the current write for its key.
 * A damaged current record loses to any entry (and its tree leaf is
 * recomputed at commit).
 * *won (may be NULL) is set to 1 if stored, 0 if it lost or was a
 * duplicate. Errors: the lww_entry_check codes (transaction still usable),
 * LWW_EFULL, LWW_EIO, LWW_ECORRUPT, LWW_ENOMEM (transaction failed: only
 * abort is left). */
lww_err lww_txn_apply(lww_txn *t, const lww_entry *e, int *won);

/* Records the highest batch sequence number seen from `node`. Keeps the
 * greater of the stored and the given value. */
lww_err lww_txn_set_seq(lww_txn *t, uint64_t node, uint64_t seq);

/* Raises the persisted clock high-water mark to at least hlc. */
void lww_txn_note_hlc(lww_txn *t, uint64_t hlc);

/* Replaces key's current write by e (same key as old; LWW_EINVAL else)
 * whatever their order, if that write is still `old` (same stamp and
 * node); otherwise e is merged by the usual rule. *done (may be NULL) is
 * 1 if e is now the key's write. For a node re-issuing its own writes
 * that a clock in the future stamped (node/clock.c): nothing else may
 * make a write lose to a lower stamp. */
lww_err lww_txn_replace(lww_txn *t, const lww_entry *e, const lww_entry *old,
                        int *done);

/* At commit, sets the persisted clock high-water mark to hlc (or to the
 * greatest stamp this transaction applied, if greater), also lower than
 * it was: after re-issuing a clock's future stamps. held is the greatest
 * stamp the store keeps above that mark (0 if none), persisted in the same
 * commit (lww_store_held): a node stamps below it only after checking the
 * key (node/writer.c), so lowering the mark always says it. */
void lww_txn_reset_hlc(lww_txn *t, uint64_t hlc, uint64_t held);

/* Commits and frees the transaction. On error nothing of it is stored. */
lww_err lww_txn_commit(lww_txn *t);

/* Aborts and frees the transaction; accepts NULL. */
void lww_txn_abort(lww_txn *t);

/* Applies n entries in one transaction; *won (may be NULL) counts winners.
 * All or nothing. */
lww_err lww_store_apply(lww_store *s, const lww_entry *e, size_t n,
                        size_t *won);

/* Reads the current write for key, tombstones included. The value is
 * copied into vbuf (reset first); out->key points to `key`, out->val into
 * vbuf. LWW_ENOTFOUND if the key was never written; LWW_ECORRUPT if its
 * record fails its check or is missing while the bucket index names it
 * (lww_store_heal then drops it). */
lww_err lww_store_get(lww_store *s, const uint8_t *key, size_t klen,
                      lww_buf *vbuf, lww_entry *out);

/* Called for each entry of a scan; the entry is valid only during the
 * call. Return non-zero to stop the scan. */
typedef int (*lww_scan_fn)(const lww_entry *e, void *arg);

typedef struct lww_scan {
	const uint8_t *prefix; /* keys starting with these bytes */
	size_t plen;
	const uint8_t *after; /* keys strictly greater (continuation) */
	size_t alen;
	size_t limit;   /* at most this many calls; 0 means no limit */
	int tombstones; /* non-zero: include removed keys */
	/* May be NULL: called with the stored key (lww_store_key) of each
	 * record on the way that fails its check; the scan skips it and
	 * goes on. arg is the scan's. */
	void (*damaged)(const uint8_t *skey, size_t n, void *arg);
} lww_scan;

/* Calls fn for matching entries in key byte order. *more (may be NULL) is
 * set to 1 if the scan stopped at the limit with matching entries left.
 * Damaged records are skipped (see damaged above); LWW_ECORRUPT only when
 * LMDB finds a damaged page, which ends the scan. */
lww_err lww_store_scan(lww_store *s, const lww_scan *q, lww_scan_fn fn,
                       void *arg, int *more);

/* Calls fn for every entry (tombstones included) whose bucket lies under
 * digest node (level, index), in no particular order. */
lww_err lww_store_scan_bucket(lww_store *s, unsigned level, uint32_t index,
                              lww_scan_fn fn, void *arg);

/* The bytes of an entry's hash (lww_digest_entry) that the bucket index
 * keeps for each key: what a repair summary carries. */
#define LWW_STORE_SUMMARY_HASH 8

/* Called with the bucket and summary hash of each key under a node.
 * Returns 0 to go on, > 0 to have the entry itself passed on, < 0 to stop
 * the walk. */
typedef int (*lww_summary_fn)(uint32_t bucket, const uint8_t *hash, void *arg);

/* Walks the keys under digest node (level, index) from the bucket index
 * alone, in no particular order, and reads the entry (tombstones
 * included) only for those want asks for, passing it to fn (non-zero
 * stops; fn may be NULL when only the summaries matter). So summarising a node, or finding what a peer's summaries do
 * not cover, costs one sequential index walk, not a lookup per key. */
lww_err lww_store_scan_summaries(lww_store *s, unsigned level, uint32_t index,
                                 lww_summary_fn want, lww_scan_fn fn,
                                 void *arg);

/* What a check of the store found (and, where it wrote, fixed). */
typedef struct lww_store_check {
	uint64_t records;     /* records looked at */
	uint64_t damaged;     /* failed their check, or index records
	                          naming no sound record: dropped */
	uint64_t index_fixed; /* index records rewritten from their record */
	uint64_t tree_fixed;  /* tree nodes recomputed from the records */
} lww_store_check;

/* Checks stored leaf `leaf` (0..LWW_STORE_LEAVES-1): every bucket index
 * record under it against its record, the leaf's hash against the
 * records, and the tree nodes whose last leaf it is against their
 * children (so a walk over every leaf checks the whole tree). Reads only, unless something is off: then, in one write
 * transaction, drops damaged records and the index records of lost ones,
 * rewrites index records from their record and recomputes the leaf's
 * hash and its ancestors' from the records. *out (may be NULL) says what it found. */
lww_err lww_store_check_leaf(lww_store *s, uint32_t leaf, lww_store_check *out);

/* Checks up to `limit` records in key order after stored key `after`
 * (alen 0: from the first): each must pass its check and have its bucket
 * index record; fixes as lww_store_check_leaf does. next/nlen get the
 * stored key to continue after; nlen 0 when the walk reached the end. */
lww_err lww_store_check_keys(lww_store *s, const uint8_t *after, size_t alen,
                             size_t limit, uint8_t next[LWW_STORE_KEY_MAX],
                             size_t *nlen, lww_store_check *out);

/* Checks the record stored under skey (a stored key, as scans report
 * them) and, for a short key, its tree leaf, dropping what is damaged.
 * Call it after a scan found skey damaged. A long key whose record is too
 * damaged to name its key is left to lww_store_check_leaf. */
lww_err lww_store_heal(lww_store *s, const uint8_t *skey, size_t n,
                       lww_store_check *out);

/* The same for key itself (after lww_store_get found it damaged): checks
 * its record and its tree leaf, for long keys too. */
lww_err lww_store_heal_key(lww_store *s, const uint8_t *key, size_t klen,
                           lww_store_check *out);

/* The hash of digest node (level 0..LWW_DIGEST_LEVELS, index). */
lww_err lww_store_digest(lww_store *s, unsigned level, uint32_t index,
                         lww_digest *out);

/* The hashes of the 16 children of node (level < LWW_DIGEST_LEVELS,
 * index), at level + 1. */
lww_err lww_store_digest_children(lww_store *s, unsigned level, uint32_t index,
                                  lww_digest out[LWW_DIGEST_FANOUT]);

/* The persisted clock high-water mark (0 for a new store). */
lww_err lww_store_hlc(lww_store *s, uint64_t *out);

/* The held mark the last lww_txn_reset_hlc persisted (0 if none, also for a
 * store written before it existed): no entry is stored above
 * max(lww_store_hlc, this). */
lww_err lww_store_held(lww_store *s, uint64_t *out);

/* The highest sequence number recorded for node (0 if none). */
lww_err lww_store_seq(lww_store *s, uint64_t node, uint64_t *out);

typedef struct lww_store_stats {
	uint64_t entries;    /* keys with a write, tombstones included */
	uint64_t tombstones; /* keys whose winner is a remove */
	uint64_t bytes;      /* size of the data file in use */
	uint64_t map_size;   /* LMDB map size (store capacity) */
} lww_store_stats;

lww_err lww_store_stats_get(lww_store *s, lww_store_stats *out);

#endif /* LWW_STORE_H */
