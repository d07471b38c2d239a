/* wal_test.c - write-ahead log segments: records come back in order; a
 * torn tail (short, or bad with nothing whole after it) is dropped and
 * counted, never what precedes it; a damaged record that whole records
 * follow is reported as damage with its offset, or skipped on request;
 * a failed append leaves no torn record behind; bad headers are damage,
 * a cut-short creation is not, a newer version is refused; bytes a
 * client chose cannot pass for a record (per-segment key); the resync
 * scan is linear; version 1 segments are still read. */
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "err.h"
#include "wal.h"

static int
setup(void **state)
{
	(void) state;
	return sodium_init() < 0 ? -1 : 0;
}

typedef struct got {
	size_t n;
	size_t len[16];
	uint8_t first[16];
	int stop_at;    /* > 0: return LWW_EIO on that record */
	uint8_t reject; /* > 0: LWW_ECORRUPT for payloads starting so */
} got;

static lww_err
collect(const uint8_t *p, size_t n, void *arg)
{
	got *g = arg;

	if (g->stop_at > 0 && (int) g->n + 1 == g->stop_at) {
		return LWW_EIO;
	}
	if (g->reject > 0 && p[0] == g->reject) {
		return LWW_ECORRUPT;
	}
	assert_true(g->n < 16);
	g->len[g->n] = n;
	g->first[g->n] = p[0];
	g->n++;
	return LWW_OK;
}

static char *
seg_path(const char *dir)
{
	char *p = malloc(strlen(dir) + 16);
	assert_non_null(p);
	sprintf(p, "%s/wal-1", dir);
	return p;
}

/* Writes records of sizes lens[i] whose bytes are all i + 1. */
static void
write_segment(const char *path, const size_t *lens, size_t n)
{
	static uint8_t buf[70000];
	lww_wal *w;

	assert_ok(lww_wal_create(path, &w));
	for (size_t i = 0; i < n; i++) {
		memset(buf, (int) i + 1, lens[i]);
		assert_ok(lww_wal_append(w, buf, lens[i]));
	}
	assert_ok(lww_wal_sync(w));
	lww_wal_close(w);
}

static off_t
file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static void
test_records_come_back_in_order(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	size_t lens[] = {1, 300, 65536, 17};
	lww_wal_info info;
	got g = {0};
	lww_wal *w;
	(void) state;

	write_segment(path, lens, 4);
	assert_int_equal(file_size(path), LWW_WAL_HEADER +
	                                      4 * LWW_WAL_RECORD_HDR + 1 + 300 +
	                                      65536 + 17);
	assert_ok(lww_wal_replay(path, 0, collect, &g, &info));
	assert_int_equal(g.n, 4);
	assert_int_equal(info.records, 4);
	assert_int_equal(info.ignored, 0);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(g.len[i], lens[i]);
		assert_int_equal(g.first[i], i + 1);
	}
	/* A segment is created once: an existing one is not overwritten. */
	assert_int_not_equal(lww_wal_create(path, &w), LWW_OK);
	assert_int_equal(file_size(path),
	                 LWW_WAL_HEADER + 4 * LWW_WAL_RECORD_HDR + 65854);
	/* The callback's error stops the replay and is returned. */
	memset(&g, 0, sizeof(g));
	g.stop_at = 2;
	assert_err(lww_wal_replay(path, 0, collect, &g, &info), LWW_EIO);
	assert_int_equal(g.n, 1);
	/* Nothing else: no segment, no records. */
	unlink(path);
	assert_err(lww_wal_replay(path, 0, collect, &g, NULL), LWW_ENOENT);
	free(path);
	tu_rmdir(dir);
}

/* Flips one bit of the byte at offset at. */
static void
flip(const char *path, off_t at)
{
	uint8_t b;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

/* File offset of record i of a segment of records of sizes lens. */
static off_t
rec_off(const size_t *lens, size_t i)
{
	off_t off = LWW_WAL_HEADER;

	for (size_t k = 0; k < i; k++) {
		off += (off_t) (LWW_WAL_RECORD_HDR + lens[k]);
	}
	return off;
}

static void
test_torn_tail_is_dropped(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	size_t lens[] = {100, 200, 300};
	off_t full, last = rec_off(lens, 2);
	lww_wal_info info;
	got g;
	(void) state;

	write_segment(path, lens, 3);
	full = file_size(path);
	/* Cut anywhere inside the last record: two records survive. */
	for (off_t cut = 1; cut < 300 + LWW_WAL_RECORD_HDR; cut += 37) {
		unlink(path);
		write_segment(path, lens, 3);
		assert_int_equal(truncate(path, full - cut), 0);
		memset(&g, 0, sizeof(g));
		assert_ok(lww_wal_replay(path, 0, collect, &g, &info));
		assert_int_equal(g.n, 2);
		assert_int_equal(info.ignored,
		                 (uint64_t) (300 + LWW_WAL_RECORD_HDR - cut));
		assert_int_equal(info.damaged, 0);
	}
	/* A whole-length last record that fails its check (its bytes never
	 * reached the disk), in its length, check or payload: a torn tail
	 * too, since nothing whole follows it. */
	for (off_t at = 0; at < LWW_WAL_RECORD_HDR + 300; at += 5) {
		unlink(path);
		write_segment(path, lens, 3);
		flip(path, last + at);
		for (unsigned fl = 0; fl <= LWW_WAL_SKIP_DAMAGED; fl++) {
			memset(&g, 0, sizeof(g));
			assert_ok(lww_wal_replay(path, fl, collect, &g, &info));
			assert_int_equal(g.n, 2);
			assert_int_equal(info.records, 2);
			assert_int_equal(info.ignored,
			                 (uint64_t) (full - last));
			assert_int_equal(info.damaged, 0);
		}
	}
	/* Zeros where the last record should be (the file grew, its data
	 * never came), and garbage after a whole last record. */
	unlink(path);
	write_segment(path, lens, 2);
	assert_int_equal(truncate(path, full), 0);
	memset(&g, 0, sizeof(g));
	assert_ok(lww_wal_replay(path, 0, collect, &g, &info));
	assert_int_equal(g.n, 2);
	assert_int_equal(info.ignored, (uint64_t) (full - last));
	free(path);
	tu_rmdir(dir);
}

static void
test_damage_before_whole_records_is_reported(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	size_t lens[] = {100, 200, 300, 40};
	off_t second = rec_off(lens, 1);
	/* In the length, the check, the payload's first and last byte. */
	off_t where[] = {0,
	                 1,
	                 3,
	                 4,
	                 11,
	                 LWW_WAL_RECORD_HDR,
	                 LWW_WAL_RECORD_HDR + 150,
	                 LWW_WAL_RECORD_HDR + 199};
	lww_wal_info info;
	got g;
	(void) state;

	for (size_t k = 0; k < sizeof(where) / sizeof(where[0]); k++) {
		unlink(path);
		write_segment(path, lens, 4);
		flip(path, second + where[k]);
		/* Not a torn tail: a distinct error naming the offset, after
		 * the records before it (and nothing after it). */
		memset(&g, 0, sizeof(g));
		assert_err(lww_wal_replay(path, 0, collect, &g, &info),
		           LWW_ECORRUPT);
		assert_int_equal(g.n, 1);
		assert_int_equal(info.records, 1);
		assert_int_equal(info.damaged, 1);
		assert_int_equal(info.damaged_at, (uint64_t) second);
		assert_int_equal(info.damaged_bytes, LWW_WAL_RECORD_HDR + 200);
		assert_int_equal(info.ignored, 0);
		/* Skipping resumes at the next whole record. */
		memset(&g, 0, sizeof(g));
		assert_ok(lww_wal_replay(path, LWW_WAL_SKIP_DAMAGED, collect,
		                         &g, &info));
		assert_int_equal(g.n, 3);
		assert_int_equal(info.records, 3);
		assert_int_equal(g.first[0], 1);
		assert_int_equal(g.first[1], 3);
		assert_int_equal(g.first[2], 4);
		assert_int_equal(g.len[1], 300);
		assert_int_equal(info.damaged, 1);
		assert_int_equal(info.damaged_at, (uint64_t) second);
		assert_int_equal(info.damaged_bytes, LWW_WAL_RECORD_HDR + 200);
		assert_int_equal(info.ignored, 0);
	}
	free(path);
	tu_rmdir(dir);
}

static void
test_skip_counts_each_damaged_stretch(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	size_t lens[] = {10, 20, 30, 40, 50, 60, 70};
	off_t full;
	lww_wal_info info;
	got g = {0};
	(void) state;

	write_segment(path, lens, 7);
	full = file_size(path);
	/* Records 2 and 3 (one stretch: no whole record between them),
	 * record 5, and a torn tail in the last. */
	flip(path, rec_off(lens, 1) + 2);
	flip(path, rec_off(lens, 2) + LWW_WAL_RECORD_HDR);
	flip(path, rec_off(lens, 4) + 8);
	assert_int_equal(truncate(path, full - 5), 0);
	assert_err(lww_wal_replay(path, 0, collect, &g, &info), LWW_ECORRUPT);
	assert_int_equal(g.n, 1);
	assert_int_equal(info.damaged_at, (uint64_t) rec_off(lens, 1));
	assert_int_equal(info.damaged_bytes, 2 * LWW_WAL_RECORD_HDR + 20 + 30);
	memset(&g, 0, sizeof(g));
	assert_ok(
	    lww_wal_replay(path, LWW_WAL_SKIP_DAMAGED, collect, &g, &info));
	assert_int_equal(g.n, 3);
	assert_int_equal(g.first[0], 1);
	assert_int_equal(g.first[1], 4);
	assert_int_equal(g.first[2], 6);
	assert_int_equal(info.records, 3);
	assert_int_equal(info.damaged, 2);
	assert_int_equal(info.damaged_at, (uint64_t) rec_off(lens, 1));
	assert_int_equal(info.damaged_bytes,
	                 3 * LWW_WAL_RECORD_HDR + 20 + 30 + 50);
	assert_int_equal(info.ignored, LWW_WAL_RECORD_HDR + 70 - 5);
	/* Every byte is accounted for. */
	assert_int_equal(LWW_WAL_HEADER + 3 * LWW_WAL_RECORD_HDR + 10 + 40 +
	                     60 + info.damaged_bytes + info.ignored,
	                 full - 5);
	free(path);
	tu_rmdir(dir);
}

/* Rewrites the version byte and the header's check (a whole header of
 * that version). */
static void
set_version(int fd, uint8_t v)
{
	uint8_t h[LWW_WAL_HEADER];
	uint8_t zero[crypto_shorthash_KEYBYTES] = {0};

	assert_int_equal(pread(fd, h, sizeof(h), 0), sizeof(h));
	h[7] = v;
	crypto_shorthash(h + 24, h, 24, zero);
	assert_int_equal(pwrite(fd, h, sizeof(h), 0), sizeof(h));
}

static void
test_bad_headers_are_refused(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	size_t lens[] = {10};
	lww_wal_info info;
	got g = {0};
	uint8_t b;
	int fd;
	(void) state;

	write_segment(path, lens, 1);
	fd = open(path, O_RDWR);
	/* A whole header of a newer version: not ours to read. */
	set_version(fd, LWW_WAL_VERSION + 1);
	assert_err(lww_wal_replay(path, 0, collect, &g, &info), LWW_EVERSION);
	assert_err(
	    lww_wal_replay(path, LWW_WAL_SKIP_DAMAGED, collect, &g, &info),
	    LWW_EVERSION);
	set_version(fd, LWW_WAL_VERSION);
	/* Any flipped header byte, the version's too: damage at offset 0;
	 * skipping it finds the record after it (unless the key itself is
	 * what was damaged). */
	for (off_t at = 0; at < LWW_WAL_HEADER; at++) {
		flip(path, at);
		memset(&g, 0, sizeof(g));
		assert_err(lww_wal_replay(path, 0, collect, &g, &info),
		           LWW_ECORRUPT);
		assert_int_equal(g.n, 0);
		assert_int_equal(info.damaged, 1);
		assert_int_equal(info.damaged_at, 0);
		assert_int_equal(info.version, 0);
		assert_ok(lww_wal_replay(path, LWW_WAL_SKIP_DAMAGED, collect,
		                         &g, &info));
		if (at >= 8 && at < 24) {
			assert_int_equal(g.n, 0); /* the key */
			assert_int_equal(info.damaged_bytes,
			                 LWW_WAL_HEADER + LWW_WAL_RECORD_HDR +
			                     10);
		} else {
			assert_int_equal(g.n, 1);
			assert_int_equal(g.len[0], 10);
			assert_int_equal(info.damaged_bytes, LWW_WAL_HEADER);
		}
		flip(path, at);
	}
	/* A segment whose creation was cut short (its header short, zero,
	 * or half written, nothing after it) holds nothing: not damage. */
	for (off_t len = 0; len <= LWW_WAL_HEADER; len += 3) {
		assert_int_equal(ftruncate(fd, len), 0);
		for (unsigned fl = 0; fl <= LWW_WAL_SKIP_DAMAGED; fl++) {
			memset(&g, 0, sizeof(g));
			assert_ok(lww_wal_replay(path, fl, collect, &g, &info));
			assert_int_equal(g.n, 0);
			assert_int_equal(info.damaged, 0);
			assert_int_equal(info.ignored, (uint64_t) len);
		}
	}
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(ftruncate(fd, LWW_WAL_HEADER), 0); /* zeros */
	assert_ok(lww_wal_replay(path, 0, collect, &g, &info));
	assert_int_equal(info.ignored, LWW_WAL_HEADER);
	/* A zero header with bytes after it was synced, then damaged. */
	b = 1;
	assert_int_equal(pwrite(fd, &b, 1, LWW_WAL_HEADER), 1);
	assert_err(lww_wal_replay(path, 0, collect, &g, &info), LWW_ECORRUPT);
	assert_int_equal(info.damaged_at, 0);
	close(fd);
	free(path);
	tu_rmdir(dir);
}

static void
test_failed_append_leaves_no_torn_record(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	static uint8_t buf[4096];
	struct rlimit old, lim;
	lww_wal_info info;
	got g = {0};
	lww_wal *w;
	(void) state;

	memset(buf, 7, sizeof(buf));
	assert_ok(lww_wal_create(path, &w));
	assert_ok(lww_wal_append(w, buf, 100));
	assert_err(lww_wal_append(w, buf, 0), LWW_EINVAL);
	assert_err(lww_wal_append(w, buf, LWW_WAL_RECORD_MAX + 1), LWW_EINVAL);
	/* The file may grow to 1000 bytes: a 4096-byte record is written
	 * in part, fails, and is cut back off. */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1000;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_not_equal(lww_wal_append(w, buf, sizeof(buf)), LWW_OK);
	assert_int_equal(lww_wal_size(w),
	                 LWW_WAL_HEADER + LWW_WAL_RECORD_HDR + 100);
	/* Later records follow the last whole one. */
	assert_ok(lww_wal_append(w, buf, 200));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_ok(lww_wal_sync(w));
	lww_wal_close(w);
	assert_ok(lww_wal_replay(path, 0, collect, &g, &info));
	assert_int_equal(g.n, 2);
	assert_int_equal(g.len[0], 100);
	assert_int_equal(g.len[1], 200);
	assert_int_equal(info.ignored, 0);
	free(path);
	tu_rmdir(dir);
}

/* Appends bytes to a file. */
static void
append_raw(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t) n);
	close(fd);
}

/* A version 1 record (len, check by the fixed zero key, payload) at p;
 * returns its size. */
static size_t
v1_record(uint8_t *p, const uint8_t *payload, uint32_t n)
{
	uint8_t zero[crypto_shorthash_KEYBYTES] = {0};

	p[0] = (uint8_t) n;
	p[1] = (uint8_t) (n >> 8);
	p[2] = (uint8_t) (n >> 16);
	p[3] = (uint8_t) (n >> 24);
	crypto_shorthash(p + 4, payload, n, zero);
	memmove(p + LWW_WAL_V1_RECORD_HDR, payload, n);
	return LWW_WAL_V1_RECORD_HDR + n;
}

/* What a client can put in a value: a record framed as version 1 frames
 * them, and one framed as version 2 would be under a key it guesses
 * (zero), at the offset it would land at. Neither may turn a crash's
 * torn tail into damage (lwwd would refuse to start after a kill -9) or,
 * skipping, into a record. */
static void
test_client_bytes_cannot_form_a_record(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	static uint8_t val[400];
	uint8_t inner[40], zero[crypto_shorthash_KEYBYTES] = {0}, in[12], h[8];
	size_t at = 50, n;
	uint64_t last, v2_at;
	lww_wal_info info;
	got g = {0};
	lww_wal *w;
	(void) state;

	memset(inner, 'i', sizeof(inner));
	memset(val, 'v', sizeof(val));
	assert_ok(lww_wal_create(path, &w));
	assert_ok(lww_wal_append(w, val, 100));
	last = lww_wal_size(w);
	/* The value: 'v's, a version 1 record, a version 2 one. */
	n = v1_record(val + at, inner, sizeof(inner));
	v2_at = at + n + 10;
	val[v2_at] = sizeof(inner);
	memset(val + v2_at + 1, 0, 3);
	memcpy(in, val + v2_at, 4);
	for (int i = 0; i < 8; i++) {
		in[4 + i] =
		    (uint8_t) ((last + LWW_WAL_RECORD_HDR + v2_at) >> (8 * i));
	}
	crypto_shorthash(h, in, sizeof(in), zero);
	memcpy(val + v2_at + 4, h, 4);
	crypto_shorthash(val + v2_at + 8, inner, sizeof(inner), zero);
	memcpy(val + v2_at + 16, inner, sizeof(inner));
	assert_ok(lww_wal_append(w, val, sizeof(val)));
	assert_ok(lww_wal_sync(w));
	lww_wal_close(w);
	/* The crash cut the last record after the embedded ones. */
	assert_int_equal(truncate(path, (off_t) (last + LWW_WAL_RECORD_HDR +
	                                         sizeof(val) - 20)),
	                 0);
	for (unsigned fl = 0; fl <= LWW_WAL_SKIP_DAMAGED; fl++) {
		memset(&g, 0, sizeof(g));
		assert_ok(lww_wal_replay(path, fl, collect, &g, &info));
		assert_int_equal(g.n, 1);
		assert_int_equal(g.len[0], 100);
		assert_int_equal(info.damaged, 0);
		assert_int_equal(info.ignored,
		                 LWW_WAL_RECORD_HDR + sizeof(val) - 20);
	}
	free(path);
	tu_rmdir(dir);
}

/* A stretch of 00 00 02 00 reads, at every offset, as the length of a
 * record that fits: version 1 hashed one payload per offset (quadratic:
 * seconds for 512 KiB); version 2 checks the length's own check first
 * and hashes almost nothing. Also: version 1 segments are still read. */
static void
test_resync_scan_is_linear(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	size_t lens[] = {10, 20}, stretch = (size_t) 2 << 20, n;
	uint8_t *junk = malloc(stretch), rec[64], payload[30];
	lww_wal_info info;
	got g = {0};
	(void) state;

	assert_non_null(junk);
	for (size_t i = 0; i < stretch; i += 4) {
		junk[i] = 0;
		junk[i + 1] = 0;
		junk[i + 2] = 2;
		junk[i + 3] = 0;
	}
	write_segment(path, lens, 2);
	append_raw(path, junk, stretch);
	assert_ok(lww_wal_replay(path, 0, collect, &g, &info));
	assert_int_equal(g.n, 2);
	assert_int_equal(info.version, 2);
	assert_int_equal(info.ignored, stretch);
	/* The two records' payloads, and at most a few more by chance:
	 * version 1 hashed 128 KiB at each of 2 M offsets. */
	assert_true(info.hashed < 30 + 4 * 0x20000);

	/* Version 1, as earlier releases wrote it: read, scan and all
	 * (a smaller stretch: its scan is quadratic). */
	unlink(path);
	{
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "LWWWAL\0\1", 8), 8);
		close(fd);
	}
	memset(payload, 'a', sizeof(payload));
	n = v1_record(rec, payload, 10);
	append_raw(path, rec, n);
	memset(payload, 'b', sizeof(payload));
	n = v1_record(rec, payload, 30);
	rec[LWW_WAL_V1_RECORD_HDR + 3] ^= 1; /* damaged */
	append_raw(path, rec, n);
	rec[LWW_WAL_V1_RECORD_HDR + 3] ^= 1;
	append_raw(path, rec, n);
	append_raw(path, junk, 4096);
	memset(&g, 0, sizeof(g));
	assert_err(lww_wal_replay(path, 0, collect, &g, &info), LWW_ECORRUPT);
	assert_int_equal(g.n, 1);
	assert_int_equal(info.version, 1);
	assert_int_equal(info.damaged_at,
	                 LWW_WAL_V1_HEADER + LWW_WAL_V1_RECORD_HDR + 10);
	memset(&g, 0, sizeof(g));
	assert_ok(
	    lww_wal_replay(path, LWW_WAL_SKIP_DAMAGED, collect, &g, &info));
	assert_int_equal(g.n, 2);
	assert_int_equal(g.first[0], 'a');
	assert_int_equal(g.first[1], 'b');
	assert_int_equal(g.len[1], 30);
	assert_int_equal(info.ignored, 4096);
	/* The counter measures what the linear scan saves. */
	assert_true(info.hashed > 4 * 4096);
	free(junk);
	free(path);
	tu_rmdir(dir);
}

/* A whole record the caller cannot read (not a batch) is damage too:
 * named without skip, skipped with it. */
static void
test_record_the_caller_rejects_is_damage(void **state)
{
	char *dir = tu_tmpdir(), *path = seg_path(dir);
	size_t lens[] = {10, 20, 30};
	lww_wal_info info;
	got g = {0};
	(void) state;

	write_segment(path, lens, 3);
	g.reject = 2;
	assert_err(lww_wal_replay(path, 0, collect, &g, &info), LWW_ECORRUPT);
	assert_int_equal(g.n, 1);
	assert_int_equal(info.damaged, 1);
	assert_int_equal(info.damaged_at, (uint64_t) rec_off(lens, 1));
	assert_int_equal(info.damaged_bytes, LWW_WAL_RECORD_HDR + 20);
	memset(&g, 0, sizeof(g));
	g.reject = 2;
	assert_ok(
	    lww_wal_replay(path, LWW_WAL_SKIP_DAMAGED, collect, &g, &info));
	assert_int_equal(g.n, 2);
	assert_int_equal(g.first[1], 3);
	assert_int_equal(info.records, 2);
	assert_int_equal(info.damaged, 1);
	free(path);
	tu_rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_records_come_back_in_order),
	    cmocka_unit_test(test_torn_tail_is_dropped),
	    cmocka_unit_test(test_damage_before_whole_records_is_reported),
	    cmocka_unit_test(test_skip_counts_each_damaged_stretch),
	    cmocka_unit_test(test_bad_headers_are_refused),
	    cmocka_unit_test(test_failed_append_leaves_no_torn_record),
	    cmocka_unit_test(test_client_bytes_cannot_form_a_record),
	    cmocka_unit_test(test_resync_scan_is_linear),
	    cmocka_unit_test(test_record_the_caller_rejects_is_damage),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
