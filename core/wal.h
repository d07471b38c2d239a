/*
 * wal.h - write-ahead log segments: what makes a write durable before the
 * store has it.
 *
 * A segment is one file: a header and then records. Version 2 (what
 * lww_wal_create writes), 32 bytes of header: "LWWWAL", 0, 2, a random
 * key of 16 bytes made for this segment, and hcheck:u64le, SipHash (a
 * fixed all-zero key) of the 24 bytes before it. Then records, each
 * len:u32le lencheck:u32le check:u64le payload[len]: lencheck is the
 * first 4 bytes of SipHash (the segment's key) of len:u32le and the
 * record's file offset:u64le, check is SipHash (the segment's key) of
 * the payload. The key is secret from clients, so no bytes a client
 * puts in a value can form a whole record of the segment they land in.
 * Version 1 (what earlier releases wrote; still read, so an upgrade
 * loses nothing): 8 bytes of header ("LWWWAL", 0, 1), records len:u32le
 * check:u64le payload, check by SipHash with the fixed all-zero key.
 * Appending is write(2) only; lww_wal_sync makes everything appended so
 * far durable with one fdatasync, so many records share one sync.
 *
 * Replay tells a torn tail from damage. A crash can leave the records
 * appended since the last sync cut short or unwritten, and only at the
 * end: a record that is short or fails its check with no whole record
 * after it is such a torn tail, never acknowledged, and is dropped (and
 * counted). A bad record that a whole record follows cannot come from a
 * crash (one fdatasync covers everything written before it): the file
 * was damaged after it was synced, so records after it may have been
 * acknowledged. Replay then stops and says where, unless the caller asks
 * to skip damaged stretches (LWW_WAL_SKIP_DAMAGED), in which case it
 * resumes at the next whole record and counts what it skipped. A whole
 * record is found by its length and checks alone, at any byte offset,
 * so a damaged length costs a scan, not the rest of the segment. In
 * version 2 the scan is linear: at each offset it checks the 8 bytes of
 * len and lencheck (one short hash), and hashes a payload only where
 * they match, which at a wrong offset happens once in 2^32. (Version 1
 * has no lencheck: its scan hashes up to a payload per offset.)
 *
 * The header is synced when the segment is made, before any record: a
 * segment no longer than a header whose header is bad or missing is one
 * whose creation was cut short, holds nothing and is dropped as a torn
 * tail; a bad header with anything after it is damage at offset 0.
 *
 * The payload is the caller's. lwwd writes one record per group's local
 * writes and one per remote batch or repair reply with the entries of it
 * that won (none won: no record): a codec batch message, then the origin
 * node id, u64le, as the last 8 bytes. Records are applied by merging,
 * which is idempotent, so replaying a segment whose records the store
 * already holds changes nothing.
 */
#ifndef LWW_WAL_H
#define LWW_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "limits.h"

#define LWW_WAL_VERSION       2
#define LWW_WAL_HEADER        32 /* version 2 */
#define LWW_WAL_RECORD_HDR    16 /* version 2 */
#define LWW_WAL_V1_HEADER     8
#define LWW_WAL_V1_RECORD_HDR 12

typedef struct lww_wal lww_wal;

/* Creates segment `path` (which must not exist, mode 0600) of version
 * LWW_WAL_VERSION with a new random key, writes its header and makes the
 * file and its directory entry durable. */
lww_err lww_wal_create(const char *path, lww_wal **out);

/* Appends one record (1..LWW_WAL_RECORD_MAX bytes of payload). On an
 * error the segment is cut back to its last whole record; if even that
 * fails, every later append fails too (LWW_EIO). */
lww_err lww_wal_append(lww_wal *w, const uint8_t *p, size_t n);

/* Makes every record appended so far durable (fdatasync). */
lww_err lww_wal_sync(lww_wal *w);

/* Bytes in the segment, header included. */
uint64_t lww_wal_size(const lww_wal *w);

/* Closes the segment (no sync); accepts NULL. */
void lww_wal_close(lww_wal *w);

/* Flags of lww_wal_replay. */
#define LWW_WAL_SKIP_DAMAGED 1u /* skip damaged stretches, go on after */

typedef struct lww_wal_info {
	uint64_t records; /* whole records passed to fn */
	uint64_t ignored; /* bytes of the torn tail (no whole record after) */
	uint64_t damaged; /* damaged stretches found: each is one record whose
	                   * length survived, or a run up to the next whole
	                   * record (offset 0: the segment header) */
	uint64_t damaged_at;    /* file offset of the first one */
	uint64_t damaged_bytes; /* bytes in them: without SKIP_DAMAGED the
	                         * first one's, which a whole record follows */
	uint64_t record_bytes;  /* in the whole records, their headers too */
	uint64_t hashed;        /* payload bytes hashed: the scan's work */
	unsigned version;       /* of the segment; 0 if its header was bad */
} lww_wal_info;

/* Calls fn for each whole record of segment `path`, in order; fn returns
 * LWW_OK to go on, anything else stops the replay and is returned, but
 * for LWW_ECORRUPT: fn says the payload is not what the caller wrote
 * (damage no check can see). That record is then damage like any other:
 * without LWW_WAL_SKIP_DAMAGED replay returns LWW_ECORRUPT naming it,
 * with it the record is counted as a damaged stretch and skipped.
 * A torn tail is dropped (info->ignored). Damage (see above) returns
 * LWW_ECORRUPT with info->damaged = 1 and info->damaged_at set, after fn
 * saw the records before it; with LWW_WAL_SKIP_DAMAGED replay skips each
 * damaged stretch and returns LWW_OK, counting them in info. Also
 * LWW_EVERSION for a segment of a newer version (its header whole: a
 * bad version byte is damage), LWW_ENOENT/LWW_EIO from the file system.
 * A segment no longer than a header whose header is bad (its creation
 * never finished) holds nothing (info->ignored). *info (may be NULL) is written on every
 * return, so that errors can name the offset. */
typedef lww_err (*lww_wal_fn)(const uint8_t *p, size_t n, void *arg);
lww_err lww_wal_replay(const char *path, unsigned flags, lww_wal_fn fn,
                       void *arg, lww_wal_info *info);

#endif /* LWW_WAL_H */
