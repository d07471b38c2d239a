/*
 * wal.c - write-ahead log segments from arbitrary bytes (a file damaged on
 * disk, or cut short by a crash): replay never crashes and never reads out
 * of bounds. Without LWW_WAL_SKIP_DAMAGED, what it accepts is exactly a
 * prefix of the file, every record in it re-appends to the same bytes
 * (framing has one encoding), and then either the rest is a torn tail
 * (the bytes it reports as ignored) or it reports damage at the offset
 * where that prefix ends, with a whole record after the damage. With
 * LWW_WAL_SKIP_DAMAGED it accepts the same records first, and the header,
 * the records, the damaged stretches and the torn tail add up to the
 * file. Each record's payload is then read as lwwd reads it at start-up
 * (a batch message and an origin).
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "codec.h"
#include "fuzz.h"
#include "wal.h"

static char dir[64], in_path[96], out_path[96];

static void
cleanup(void)
{
	unlink(in_path);
	unlink(out_path);
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
	snprintf(out_path, sizeof(out_path), "%s/out", dir);
	atexit(cleanup);
}

typedef struct copy {
	lww_wal *out;
	uint64_t bytes; /* of whole records */
} copy;

static lww_err
record(const uint8_t *p, size_t n, void *arg)
{
	copy *c = arg;
	lww_batch b;

	FUZZ_CHECK(n > 0 && n <= LWW_WAL_RECORD_MAX);
	FUZZ_CHECK(lww_wal_append(c->out, p, n) == LWW_OK);
	c->bytes += LWW_WAL_RECORD_HDR + n;
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

/* Replays in_path with flags; out_path gets the records re-appended, and
 * *out (malloc'd, caller frees) its bytes, *outlen their count. */
static lww_err
replay(unsigned flags, lww_wal_info *info, copy *c, uint8_t **out,
       size_t *outlen)
{
	lww_err rv;
	ssize_t r;
	int fd;

	unlink(out_path);
	c->bytes = 0;
	FUZZ_CHECK(lww_wal_create(out_path, &c->out) == LWW_OK);
	rv = lww_wal_replay(in_path, flags, record, c, info);
	lww_wal_close(c->out);
	FUZZ_CHECK(info->records * LWW_WAL_RECORD_HDR <= c->bytes);
	*outlen = LWW_WAL_HEADER + c->bytes;
	*out = malloc(*outlen + 1);
	FUZZ_CHECK(*out != NULL);
	fd = open(out_path, O_RDONLY);
	FUZZ_CHECK(fd >= 0);
	r = read(fd, *out, *outlen + 1);
	FUZZ_CHECK(r == (ssize_t) *outlen);
	close(fd);
	return rv;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	lww_wal_info info, skip;
	copy c = {NULL, 0};
	uint8_t *strict_out, *skip_out;
	size_t strict_len, skip_len;
	lww_err rv, srv;
	int fd, header_ok;

	if (!ready) {
		init();
		ready = 1;
	}
	unlink(in_path);
	fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t) size);
	close(fd);
	header_ok = size >= LWW_WAL_HEADER && memcmp(data, "LWWWAL\0", 7) == 0;

	rv = replay(0, &info, &c, &strict_out, &strict_len);
	if (size < LWW_WAL_HEADER) {
		/* Shorter than a header: a segment never finished. */
		FUZZ_CHECK(rv == LWW_OK && info.records == 0);
		FUZZ_CHECK(info.ignored == size);
	} else if (rv == LWW_OK) {
		/* The whole records and the torn tail are the file, and
		 * re-appending the records gives its prefix back. */
		FUZZ_CHECK(header_ok && info.damaged == 0);
		FUZZ_CHECK(strict_len + info.ignored == size);
		FUZZ_CHECK(memcmp(strict_out, data, strict_len) == 0);
	} else if (rv == LWW_ECORRUPT) {
		/* Damage where the prefix of whole records ends (the header
		 * is offset 0), and a whole record after it. */
		FUZZ_CHECK(info.damaged == 1 && info.ignored == 0);
		FUZZ_CHECK(info.damaged_bytes > 0);
		FUZZ_CHECK(info.damaged_at + info.damaged_bytes <= size);
		if (header_ok) {
			FUZZ_CHECK(info.damaged_at == strict_len);
			FUZZ_CHECK(info.damaged_at + info.damaged_bytes < size);
			FUZZ_CHECK(memcmp(strict_out, data, strict_len) == 0);
		} else {
			FUZZ_CHECK(info.damaged_at == 0 && info.records == 0);
		}
	} else {
		FUZZ_CHECK(rv == LWW_EVERSION && info.records == 0);
	}

	srv = replay(LWW_WAL_SKIP_DAMAGED, &skip, &c, &skip_out, &skip_len);
	if (rv == LWW_EVERSION) {
		FUZZ_CHECK(srv == LWW_EVERSION);
	} else {
		/* The same records first, then more past each damaged
		 * stretch; every byte is a header, a record, damage or the
		 * torn tail. */
		FUZZ_CHECK(srv == LWW_OK);
		FUZZ_CHECK(skip.records >= info.records);
		FUZZ_CHECK(skip_len >= strict_len);
		FUZZ_CHECK(memcmp(skip_out, strict_out, strict_len) == 0);
		FUZZ_CHECK((rv == LWW_ECORRUPT) == (skip.damaged > 0));
		if (rv == LWW_ECORRUPT) {
			FUZZ_CHECK(skip.damaged_at == info.damaged_at);
			FUZZ_CHECK(skip.damaged_bytes >= info.damaged_bytes);
		}
		if (size >= LWW_WAL_HEADER) {
			FUZZ_CHECK(skip_len - (header_ok ? 0 : LWW_WAL_HEADER) +
			               skip.damaged_bytes + skip.ignored ==
			           size);
		}
	}
	free(strict_out);
	free(skip_out);
	return 0;
}
