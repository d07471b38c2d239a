/*
 * wal.h - write-ahead log segments: what makes a write durable before the
 * store has it.
 *
 * A segment is one file: an 8-byte header ("LWWWAL", 0, version) and then
 * records, each len:u32le check:u64le payload[len], where check is SipHash
 * (libsodium's crypto_shorthash, fixed key) of the payload; a damaged
 * length makes the check fail too. Appending
 * is write(2) only; lww_wal_sync makes everything appended so far durable
 * with one fdatasync, so many records share one sync. A crash can leave a
 * torn record at the end, never one that a sync covered: replay stops at
 * the first record that is short or fails its check, and says how many
 * bytes it ignored.
 *
 * The payload is the caller's (lwwd writes one per applied batch: the
 * origin node id, u64le, then a codec batch message). Records are applied
 * by merging, which is idempotent, so replaying a segment whose records
 * the store already holds changes nothing.
 */
#ifndef LWW_WAL_H
#define LWW_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "limits.h"

#define LWW_WAL_VERSION    1
#define LWW_WAL_HEADER     8
#define LWW_WAL_RECORD_HDR 12
/* The largest payload: a batch of one group, with room to spare. */
#define LWW_WAL_RECORD_MAX (2 * LWW_MSG_MAX + 64)

typedef struct lww_wal lww_wal;

/* Creates segment `path` (which must not exist, mode 0600), writes its
 * header and makes the file and its directory entry durable. */
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

typedef struct lww_wal_info {
	uint64_t records; /* whole records passed to fn */
	uint64_t ignored; /* bytes after the last whole record */
} lww_wal_info;

/* Calls fn for each whole record of segment `path`, in order; fn returns
 * LWW_OK to go on, anything else stops the replay and is returned.
 * LWW_EVERSION for a segment of an unknown version, LWW_ECORRUPT if the
 * header is not a segment's, LWW_ENOENT/LWW_EIO from the file system. */
typedef lww_err (*lww_wal_fn)(const uint8_t *p, size_t n, void *arg);
lww_err lww_wal_replay(const char *path, lww_wal_fn fn, void *arg,
                       lww_wal_info *info);

#endif /* LWW_WAL_H */
