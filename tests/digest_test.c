/* digest_test.c - entry hashes cover every field; folding per-leaf deltas
 * gives, at every stored level, the XOR of the deltas below each node. */
#include <sodium.h>

#include "testutil.h"

#include "digest.h"
#include "err.h"

static int
setup(void **state)
{
	(void) state;
	return sodium_init() < 0 ? -1 : 0;
}

static void
test_entry_hash_covers_every_field(void **state)
{
	lww_entry base = {
	    (const uint8_t *) "key", 3, (const uint8_t *) "v", 1, 100, 7, 0};
	lww_entry v[6];
	lww_digest h[7];
	(void) state;

	for (int i = 0; i < 6; i++) {
		v[i] = base;
	}
	v[0].key = (const uint8_t *) "kez";
	v[1].val = (const uint8_t *) "w";
	v[2].hlc = 101;
	v[3].node = 8;
	v[4].flags = LWW_ENTRY_TOMBSTONE;
	v[4].vlen = 0;
	v[5].vlen = 0; /* same key, empty value */
	lww_digest_entry(&base, &h[0]);
	for (int i = 0; i < 6; i++) {
		lww_digest_entry(&v[i], &h[i + 1]);
	}
	for (int i = 0; i < 7; i++) {
		for (int j = 0; j < i; j++) {
			assert_memory_not_equal(h[i].h, h[j].h,
			                        LWW_DIGEST_BYTES);
		}
	}
	lww_digest_entry(&base, &h[1]);
	assert_memory_equal(h[0].h, h[1].h, LWW_DIGEST_BYTES);
}

static void
test_bucket_and_addressing(void **state)
{
	uint32_t b = lww_digest_bucket((const uint8_t *) "hello", 5);
	unsigned counts[16] = {0};
	(void) state;

	assert_int_equal(b, lww_digest_bucket((const uint8_t *) "hello", 5));
	assert_int_equal(lww_digest_index(b, 0), 0);
	assert_int_equal(lww_digest_index(b, 1), b >> 28);
	assert_int_equal(lww_digest_index(b, 8), b);
	assert_int_equal(lww_digest_first(1, 3), UINT32_C(3) << 28);
	assert_int_equal(lww_digest_span(1), (UINT32_C(1) << 28) - 1);
	assert_int_equal(lww_digest_span(8), 0);
	/* Keys spread over the top-level children. */
	for (int i = 0; i < 1600; i++) {
		char k[16];
		int n = snprintf(k, sizeof(k), "key%d", i);
		counts[lww_digest_index(
		    lww_digest_bucket((const uint8_t *) k, (size_t) n), 1)]++;
	}
	for (int i = 0; i < 16; i++) {
		assert_true(counts[i] > 50 && counts[i] < 150);
	}
}

typedef struct fold_check {
	lww_digest expect[LWW_DIGEST_STORED + 1][1 << 8];
	int seen[LWW_DIGEST_STORED + 1][1 << 8];
} fold_check;

static lww_err
fold_cb(unsigned level, uint32_t index, const lww_digest *delta, void *arg)
{
	fold_check *c = arg;
	/* Buckets below are drawn from the low 2^8 leaves only. */
	assert_true(index < (1u << 8));
	assert_false(c->seen[level][index]);
	c->seen[level][index] = 1;
	assert_memory_equal(delta->h, c->expect[level][index].h,
	                    LWW_DIGEST_BYTES);
	return LWW_OK;
}

static void
test_fold_matches_brute_force(void **state)
{
	static fold_check c;
	lww_digest_delta d = LWW_DIGEST_DELTA_INIT;
	uint64_t seed = 12345;
	(void) state;

	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 500; i++) {
		/* Leaf indexes 0..255, so bucket's top 16 bits < 256. */
		uint32_t leaf = (uint32_t) tu_below(&seed, 256);
		uint32_t bucket =
		    (leaf << 16) | (uint32_t) tu_below(&seed, 65536);
		lww_digest h;
		for (int j = 0; j < LWW_DIGEST_BYTES; j++) {
			h.h[j] = (uint8_t) tu_rand(&seed);
		}
		assert_ok(lww_digest_delta_add(&d, bucket, &h));
		for (int level = 0; level <= LWW_DIGEST_STORED; level++) {
			uint32_t idx =
			    lww_digest_index(bucket, (unsigned) level);
			lww_digest_xor(&c.expect[level][idx], &h);
		}
	}
	assert_ok(lww_digest_delta_fold(&d, fold_cb, &c));
	for (int level = 0; level <= LWW_DIGEST_STORED; level++) {
		for (int i = 0; i < 256; i++) {
			int nz = !lww_digest_is_zero(&c.expect[level][i]);
			assert_int_equal(c.seen[level][i], nz);
		}
	}
	lww_digest_delta_fini(&d);
}

static void
test_xor_cancels(void **state)
{
	lww_digest a = {{1, 2, 3}}, b = a;
	(void) state;
	assert_false(lww_digest_is_zero(&a));
	lww_digest_xor(&a, &b);
	assert_true(lww_digest_is_zero(&a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_entry_hash_covers_every_field),
	    cmocka_unit_test(test_bucket_and_addressing),
	    cmocka_unit_test(test_fold_matches_brute_force),
	    cmocka_unit_test(test_xor_cancels),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
