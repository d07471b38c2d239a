/*
 * wal.c - write-ahead log segments from arbitrary bytes (a file damaged on
 * disk, or cut short by a crash): replay never crashes and never reads out
 * of bounds. Without LWW_WAL_SKIP_DAMAGED, what it accepts is exactly a
 * prefix of the file: a whole header and records that sit back to back
 * after it, each as the file frames it (its length field, its payload);
 * then either the rest is a torn tail (the bytes it reports as ignored),
 * or it reports damage at the offset where that prefix ends with a whole
 * record after the damage, or the header is bad: dropped whole if nothing
 * follows it (a creation cut short), else damage at offset 0. With
 * LWW_WAL_SKIP_DAMAGED it accepts the same records first, and the header,
 * the records, the damaged stretches and the torn tail add up to the
 * file. A newer version (a whole header) is refused by both. Each
 * record's payload is then read as lwwd reads it at start-up (a batch
 * message and an origin).
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "codec.h"
#include "fuzz.h"
#include "wal.h"

#define MAX_RECORDS 4096

static char dir[64], in_path[96];

static void
cleanup(void)
{
	unlink(in_path);
	rmdir(dir);
}

static void
init(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	FUZZ_CHECK(sodium_init() >= 0);
	snprintf(dir, sizeof(dir), "%s/lwwfuzz.XXXXXX", base);
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	snprintf(in_path, sizeof(in_path), "%s/in", dir);
	atexit(cleanup);
}

typedef struct seen {
	const uint8_t *data; /* the file */
	size_t size;
	int strict;     /* records must sit back to back from off */
	uint64_t off;   /* where the next one must start (strict) */
	size_t rec_hdr; /* of the file's layout */
	uint64_t n;     /* records seen */
	uint64_t bytes; /* in them, headers too */
	uint64_t *hash; /* of each of the first MAX_RECORDS payloads */
} seen;

static lww_err
record(const uint8_t *p, size_t n, void *arg)
{
	seen *s = arg;
	uint8_t h[crypto_shorthash_BYTES];
	uint8_t key[crypto_shorthash_KEYBYTES] = {0};
	lww_batch b;

	FUZZ_CHECK(n > 0 && n <= LWW_WAL_RECORD_MAX);
	if (s->strict) {
		FUZZ_CHECK(s->off + s->rec_hdr + n <= s->size);
		FUZZ_CHECK(lww_get_u32le(s->data + s->off) == n);
		FUZZ_CHECK(memcmp(s->data + s->off + s->rec_hdr, p, n) == 0);
		s->off += s->rec_hdr + n;
	}
	crypto_shorthash(h, p, n, key);
	if (s->n < MAX_RECORDS) {
		s->hash[s->n] = lww_get_u64le(h);
	}
	s->n++;
	s->bytes += s->rec_hdr + n;
	/* What start-up does with it: must not crash either way. */
	if (n >= 8 && lww_batch_decode(p, n - 8, &b) == LWW_OK) {
		size_t off = 0;
		lww_entry e;
		uint32_t k = 0;
		while (lww_entries_next(&b.entries, &off, &e)) {
			FUZZ_CHECK(lww_entry_check(&e) == LWW_OK);
			k++;
		}
		FUZZ_CHECK(k == b.entries.count);
	}
	return LWW_OK;
}

/* Bytes of a whole header of the given version (0: none). */
static uint64_t
header_len(unsigned version)
{
	return version == 0   ? 0
	       : version == 1 ? LWW_WAL_V1_HEADER
	                      : LWW_WAL_HEADER;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static uint64_t strict_hash[MAX_RECORDS], skip_hash[MAX_RECORDS];
	lww_wal_info info, skip;
	seen s = {data, size, 1, 0, 0, 0, 0, strict_hash};
	seen k = {data, size, 0, 0, 0, 0, 0, skip_hash};
	lww_err rv, srv;
	int fd, v1;
	uint64_t hl;

	if (!ready) {
		init();
		ready = 1;
	}
	unlink(in_path);
	fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t) size);
	close(fd);
	/* The layout replay reads (a guess where the header is bad). */
	v1 = size >= LWW_WAL_V1_HEADER && data[7] == 1;
	s.rec_hdr = k.rec_hdr = v1 ? LWW_WAL_V1_RECORD_HDR : LWW_WAL_RECORD_HDR;
	s.off = v1 ? LWW_WAL_V1_HEADER : LWW_WAL_HEADER;

	rv = lww_wal_replay(in_path, 0, record, &s, &info);
	hl = header_len(info.version);
	FUZZ_CHECK(info.records == s.n && info.record_bytes == s.bytes);
	if (info.version != 0) {
		FUZZ_CHECK(memcmp(data, "LWWWAL\0", 7) == 0);
		FUZZ_CHECK(info.version == (v1 ? 1u : LWW_WAL_VERSION));
	}
	if (rv == LWW_OK) {
		/* The header, the whole records and the torn tail are the
		 * file; or a header cut short, and nothing after it. */
		FUZZ_CHECK(info.damaged == 0);
		FUZZ_CHECK(hl + info.record_bytes + info.ignored == size);
		if (info.version == 0) {
			FUZZ_CHECK(info.records == 0 && info.ignored == size);
			FUZZ_CHECK(size <= LWW_WAL_HEADER);
		}
	} else if (rv == LWW_ECORRUPT) {
		/* Damage where the prefix of whole records ends (the header
		 * is offset 0), and a whole record after it, or a header
		 * with bytes after it. */
		FUZZ_CHECK(info.damaged == 1 && info.ignored == 0);
		FUZZ_CHECK(info.damaged_bytes > 0);
		FUZZ_CHECK(info.damaged_at + info.damaged_bytes <= size);
		if (info.version != 0) {
			FUZZ_CHECK(info.damaged_at == hl + info.record_bytes);
			FUZZ_CHECK(info.damaged_at + info.damaged_bytes < size);
		} else {
			FUZZ_CHECK(info.damaged_at == 0 && info.records == 0);
			FUZZ_CHECK(size >
			           (v1 ? LWW_WAL_V1_HEADER : LWW_WAL_HEADER));
		}
	} else {
		FUZZ_CHECK(rv == LWW_EVERSION && info.records == 0);
		FUZZ_CHECK(size >= LWW_WAL_HEADER && data[7] > LWW_WAL_VERSION);
	}

	srv = lww_wal_replay(in_path, LWW_WAL_SKIP_DAMAGED, record, &k, &skip);
	FUZZ_CHECK(skip.records == k.n && skip.record_bytes == k.bytes);
	if (rv == LWW_EVERSION) {
		FUZZ_CHECK(srv == LWW_EVERSION);
	} else {
		/* The same records first, then more past each damaged
		 * stretch; every byte is a header, a record, damage or the
		 * torn tail. */
		uint64_t same =
		    info.records < MAX_RECORDS ? info.records : MAX_RECORDS;
		FUZZ_CHECK(srv == LWW_OK);
		FUZZ_CHECK(skip.version == info.version);
		FUZZ_CHECK(skip.records >= info.records);
		FUZZ_CHECK(memcmp(skip_hash, strict_hash,
		                  same * sizeof(strict_hash[0])) == 0);
		FUZZ_CHECK((rv == LWW_ECORRUPT) == (skip.damaged > 0));
		if (rv == LWW_ECORRUPT) {
			FUZZ_CHECK(skip.damaged_at == info.damaged_at);
			FUZZ_CHECK(skip.damaged_bytes >= info.damaged_bytes);
		}
		FUZZ_CHECK(hl + skip.record_bytes + skip.damaged_bytes +
		               skip.ignored ==
		           size);
	}
	return 0;
}
