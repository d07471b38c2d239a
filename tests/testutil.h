/*
 * testutil.h - helpers shared by the unit tests: cmocka, temporary
 * directories under $LWW_TEST_TMP (or /tmp), a seeded PRNG.
 */
#ifndef LWW_TESTUTIL_H
#define LWW_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "entry.h"

#define assert_err(expr, want)                                                 \
	do {                                                                   \
		int got_ = (int) (expr);                                       \
		if (got_ != (int) (want)) {                                    \
			fail_msg("%s: got %d (%s), want %d (%s)", #expr, got_, \
			         lww_strerror(got_), (int) (want),             \
			         lww_strerror((int) (want)));                  \
		}                                                              \
	} while (0)

#define assert_ok(expr) assert_err(expr, LWW_OK)

/* Makes a fresh empty directory; the caller frees the path. */
static inline char *
tu_tmpdir(void)
{
	const char *base = getenv("LWW_TEST_TMP");
	char *path;

	if (base == NULL || *base == '\0') {
		base = "/tmp";
	}
	mkdir(base, 0700);
	path = malloc(strlen(base) + 32);
	assert_non_null(path);
	sprintf(path, "%s/lwwtest.XXXXXX", base);
	assert_non_null(mkdtemp(path));
	return path;
}

/* Removes a directory and the files directly in it. */
static inline void
tu_rmdir(char *path)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0) {
		fprintf(stderr, "could not remove %s\n", path);
	}
	free(path);
}

/* xorshift64*: small, seeded, reproducible. */
static inline uint64_t
tu_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * UINT64_C(2685821657736338717);
}

static inline uint64_t
tu_below(uint64_t *s, uint64_t n)
{
	return tu_rand(s) % n;
}

/* An entry of C strings: key k, value v (NULL: a tombstone), stamped
 * (hlc, node). Points into k and v. */
static inline lww_entry
tu_entry(const char *k, const char *v, uint64_t hlc, uint64_t node)
{
	lww_entry e = {(const uint8_t *) k, strlen(k), NULL, 0, hlc, node, 0};
	if (v == NULL) {
		e.flags = LWW_ENTRY_TOMBSTONE;
	} else {
		e.val = (const uint8_t *) v;
		e.vlen = strlen(v);
	}
	return e;
}

#endif /* LWW_TESTUTIL_H */
