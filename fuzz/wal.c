/*
 * wal.c - write-ahead log segments from arbitrary bytes (a file damaged on
 * disk, or cut short by a crash): replay never crashes and never reads out
 * of bounds; what it accepts is exactly a prefix of the file, every record
 * in it re-appends to the same bytes (framing has one encoding), and the
 * bytes it reports as ignored are the rest. Each record's payload is then
 * read as lwwd reads it at start-up (a batch message and an origin).
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	lww_wal_info info;
	copy c = {NULL, 0};
	lww_err rv;
	int fd;

	if (!ready) {
		init();
		ready = 1;
	}
	unlink(in_path);
	unlink(out_path);
	fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t) size);
	close(fd);
	FUZZ_CHECK(lww_wal_create(out_path, &c.out) == LWW_OK);

	rv = lww_wal_replay(in_path, record, &c, &info);
	lww_wal_close(c.out);
	FUZZ_CHECK(info.records * LWW_WAL_RECORD_HDR <= c.bytes);
	if (rv == LWW_OK && size >= LWW_WAL_HEADER) {
		/* A valid header: the whole records and the ignored rest are
		 * the file, and re-appending them gives its prefix back. */
		uint8_t *again = malloc(c.bytes + LWW_WAL_HEADER + 1);
		FUZZ_CHECK(again != NULL);
		FUZZ_CHECK(LWW_WAL_HEADER + c.bytes + info.ignored == size);
		fd = open(out_path, O_RDONLY);
		FUZZ_CHECK(fd >= 0);
		FUZZ_CHECK(read(fd, again, c.bytes + LWW_WAL_HEADER + 1) ==
		           (ssize_t) (c.bytes + LWW_WAL_HEADER));
		close(fd);
		FUZZ_CHECK(memcmp(again, data, c.bytes + LWW_WAL_HEADER) == 0);
		free(again);
	} else if (rv == LWW_OK) {
		/* Shorter than a header: a segment never finished. */
		FUZZ_CHECK(info.records == 0);
	} else {
		FUZZ_CHECK(rv == LWW_ECORRUPT || rv == LWW_EVERSION);
		FUZZ_CHECK(info.records == 0);
	}
	return 0;
}
