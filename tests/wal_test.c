/* wal_test.c - write-ahead log segments: records come back in order; a
 * torn tail (short, or bad with nothing whole after it) is dropped and
 * counted, never what precedes it; a damaged record that whole records
 * follow is reported as damage with its offset, or skipped on request;
 * a failed append leaves no torn record behind; bad headers are refused. */
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
	int stop_at; /* > 0: return LWW_EIO on that record */
} got;

static lww_err
collect(const uint8_t *p, size_t n, void *arg)
{
	got *g = arg;

	if (g->stop_at > 0 && (int) g->n + 1 == g->stop_at) {
		return LWW_EIO;
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
	b = LWW_WAL_VERSION + 1;
	assert_int_equal(pwrite(fd, &b, 1, 7), 1);
	assert_err(lww_wal_replay(path, 0, collect, &g, &info), LWW_EVERSION);
	assert_err(
	    lww_wal_replay(path, LWW_WAL_SKIP_DAMAGED, collect, &g, &info),
	    LWW_EVERSION);
	b = LWW_WAL_VERSION;
	assert_int_equal(pwrite(fd, &b, 1, 7), 1);
	b = 'X';
	assert_int_equal(pwrite(fd, &b, 1, 0), 1);
	/* Damage at offset 0; skipping it finds the record after it. */
	assert_err(lww_wal_replay(path, 0, collect, &g, &info), LWW_ECORRUPT);
	assert_int_equal(g.n, 0);
	assert_int_equal(info.damaged, 1);
	assert_int_equal(info.damaged_at, 0);
	assert_int_equal(info.damaged_bytes, LWW_WAL_HEADER);
	assert_ok(
	    lww_wal_replay(path, LWW_WAL_SKIP_DAMAGED, collect, &g, &info));
	assert_int_equal(g.n, 1);
	assert_int_equal(g.len[0], 10);
	assert_int_equal(info.damaged_bytes, LWW_WAL_HEADER);
	g.n = 0;
	/* A segment whose header never made it to disk holds nothing. */
	assert_int_equal(ftruncate(fd, 3), 0);
	assert_ok(lww_wal_replay(path, 0, collect, &g, &info));
	assert_int_equal(g.n, 0);
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
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
