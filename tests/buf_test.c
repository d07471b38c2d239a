/* buf_test.c - the buffer grows, and the reader refuses every out-of-range
 * read, overlong or non-minimal varint, and trailing byte. */
#include "testutil.h"

#include "buf.h"
#include "err.h"

static void
test_varint_round_trip(void **state)
{
	const uint64_t vals[] = {0,         1,          127,
	                         128,       300,        16383,
	                         16384,     UINT32_MAX, UINT64_MAX - 1,
	                         UINT64_MAX};
	lww_buf b = LWW_BUF_INIT;
	lww_rd r;
	(void) state;

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		assert_ok(lww_buf_put_uvarint(&b, vals[i]));
	}
	lww_rd_init(&r, b.p, b.len);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint64_t v;
		assert_ok(lww_rd_uvarint(&r, UINT64_MAX, &v));
		assert_true(v == vals[i]);
	}
	assert_ok(lww_rd_end(&r));
	lww_buf_fini(&b);
}

static void
test_varint_rejects_bad_encodings(void **state)
{
	const uint8_t nonmin[] = {0x80, 0x00};
	const uint8_t trunc[] = {0x80};
	const uint8_t toolong[] = {0xff, 0xff, 0xff, 0xff, 0xff,
	                           0xff, 0xff, 0xff, 0xff, 0x02};
	const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	                          0x80, 0x80, 0x80, 0x80, 0x01};
	const uint8_t big[] = {0x80, 0x01}; /* 128 */
	uint64_t v = 42;
	lww_rd r;
	(void) state;

	lww_rd_init(&r, nonmin, sizeof(nonmin));
	assert_err(lww_rd_uvarint(&r, UINT64_MAX, &v), LWW_EPROTO);
	lww_rd_init(&r, trunc, sizeof(trunc));
	assert_err(lww_rd_uvarint(&r, UINT64_MAX, &v), LWW_EPROTO);
	lww_rd_init(&r, toolong, sizeof(toolong));
	assert_err(lww_rd_uvarint(&r, UINT64_MAX, &v), LWW_EPROTO);
	lww_rd_init(&r, eleven, sizeof(eleven));
	assert_err(lww_rd_uvarint(&r, UINT64_MAX, &v), LWW_EPROTO);
	lww_rd_init(&r, big, sizeof(big));
	assert_err(lww_rd_uvarint(&r, 127, &v), LWW_EPROTO);
	assert_int_equal(r.off, 0); /* a failed read consumes nothing */
	assert_int_equal(v, 42);    /* and writes nothing */
}

static void
test_fixed_and_bytes(void **state)
{
	lww_buf b = LWW_BUF_INIT;
	const uint8_t *p;
	uint64_t v64;
	uint32_t v32;
	uint8_t v8;
	size_t n;
	lww_rd r;
	(void) state;

	assert_ok(lww_buf_put_u8(&b, 0xab));
	assert_ok(lww_buf_put_u32(&b, 0x01020304));
	assert_ok(lww_buf_put_u64(&b, UINT64_C(0x0102030405060708)));
	assert_ok(lww_buf_put_lbytes(&b, "hello", 5));
	assert_int_equal(b.p[1], 0x04); /* little-endian */
	lww_rd_init(&r, b.p, b.len);
	assert_ok(lww_rd_u8(&r, &v8));
	assert_ok(lww_rd_u32(&r, &v32));
	assert_ok(lww_rd_u64(&r, &v64));
	assert_err(lww_rd_lbytes(&r, 4, &p, &n), LWW_EPROTO); /* over max */
	assert_ok(lww_rd_lbytes(&r, 5, &p, &n));
	assert_int_equal(n, 5);
	assert_memory_equal(p, "hello", 5);
	assert_ok(lww_rd_end(&r));
	assert_err(lww_rd_u8(&r, &v8), LWW_EPROTO);
	/* A length over its limit is told apart and leaves the reader. */
	lww_rd_init(&r, b.p + 13, b.len - 13);
	n = 99;
	assert_err(lww_rd_len(&r, 4, &n), LWW_ETOOBIG);
	assert_int_equal(n, 99);
	assert_int_equal(r.off, 0);
	assert_ok(lww_rd_len(&r, 5, &n));
	assert_int_equal(n, 5);
	assert_int_equal(r.off, 1);
	lww_rd_init(&r, (const uint8_t *) "\x80", 1);
	assert_err(lww_rd_len(&r, 5, &n), LWW_EPROTO);
	assert_int_equal(v8, 0xab);
	assert_true(v32 == 0x01020304 && v64 == UINT64_C(0x0102030405060708));

	/* Truncation at every length fails somewhere, never reads past. */
	for (size_t len = 0; len < b.len; len++) {
		lww_err rv;
		lww_rd_init(&r, b.p, len);
		rv = lww_rd_u8(&r, &v8);
		if (rv == LWW_OK)
			rv = lww_rd_u32(&r, &v32);
		if (rv == LWW_OK)
			rv = lww_rd_u64(&r, &v64);
		if (rv == LWW_OK)
			rv = lww_rd_lbytes(&r, 5, &p, &n);
		assert_err(rv, LWW_EPROTO);
	}
	lww_buf_fini(&b);
}

static void
test_grow_and_reset(void **state)
{
	lww_buf b = LWW_BUF_INIT;
	(void) state;

	for (int i = 0; i < 10000; i++) {
		assert_ok(lww_buf_put_u32(&b, (uint32_t) i));
	}
	assert_int_equal(b.len, 40000);
	assert_int_equal(lww_get_u32le(b.p + 4 * 9999), 9999);
	lww_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_true(b.cap >= 40000);
	assert_err(lww_buf_reserve(&b, SIZE_MAX), LWW_ENOMEM);
	lww_buf_fini(&b);
	lww_buf_fini(&b); /* twice is fine */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_varint_round_trip),
	    cmocka_unit_test(test_varint_rejects_bad_encodings),
	    cmocka_unit_test(test_fixed_and_bytes),
	    cmocka_unit_test(test_grow_and_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
