/* codec_test.c - every wire message round-trips, and every decoder refuses
 * truncation at every length, trailing bytes, unknown versions and types,
 * oversized lengths, and survives every single-bit flip. Inputs are copied
 * to exact-size heap buffers so ASan sees any read past the end. */
#include "testutil.h"

#include "codec.h"
#include "envelope.h"
#include "err.h"
#include "limits.h"
#include "reencode.h"

typedef lww_err (*decode_fn)(const uint8_t *p, size_t n);

static lww_err
dec_batch(const uint8_t *p, size_t n)
{
	lww_batch b;
	return lww_batch_decode(p, n, &b);
}

static lww_err
dec_hb(const uint8_t *p, size_t n)
{
	lww_heartbeat h;
	return lww_heartbeat_decode(p, n, &h);
}

static lww_err
dec_clock_req(const uint8_t *p, size_t n)
{
	uint64_t t1;
	return lww_clock_req_decode(p, n, &t1);
}

static lww_err
dec_clock_rep(const uint8_t *p, size_t n)
{
	lww_clock_probe c;
	return lww_clock_rep_decode(p, n, &c);
}

static lww_err
dec_req(const uint8_t *p, size_t n)
{
	lww_req r;
	return lww_req_decode(p, n, &r);
}

static lww_err
dec_rep(const uint8_t *p, size_t n)
{
	lww_rep r;
	return lww_rep_decode(p, n, &r);
}

static lww_err
dec_exact(decode_fn fn, const uint8_t *p, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	lww_err rv;
	assert_non_null(copy);
	memcpy(copy, p, n);
	rv = fn(copy, n);
	free(copy);
	return rv;
}

/* The negative checks every decoder gets. */
static void
check_hostile(decode_fn fn, reenc_fn re, const lww_buf *b)
{
	uint8_t *m = malloc(b->len + 1);
	assert_non_null(m);

	assert_ok(dec_exact(fn, b->p, b->len));
	for (size_t len = 0; len < b->len; len++) {
		lww_err rv = dec_exact(fn, b->p, len);
		if (rv == LWW_OK) {
			fail_msg("truncated to %zu of %zu bytes: accepted", len,
			         b->len);
		}
	}
	memcpy(m, b->p, b->len);
	m[b->len] = 0;
	assert_err(dec_exact(fn, m, b->len + 1), LWW_EPROTO);
	m[0] = LWW_WIRE_VERSION + 1;
	assert_err(dec_exact(fn, m, b->len), LWW_EVERSION);
	m[0] = LWW_WIRE_VERSION;
	m[1] = 0x7f;
	assert_err(dec_exact(fn, m, b->len), LWW_EUNKNOWN);
	/* Any single bit flip is refused with an error, or decodes to a
	 * message that re-encodes to exactly the flipped bytes (a different
	 * but well-formed message); never a silent misreading. A flip of
	 * the version byte is always refused. */
	lww_buf rb = LWW_BUF_INIT;
	size_t refused = 0;
	for (size_t i = 0; i < b->len * 8; i++) {
		uint8_t *copy = malloc(b->len);
		reenc_result r;
		assert_non_null(copy);
		memcpy(copy, b->p, b->len);
		copy[i / 8] ^= (uint8_t) (1u << (i % 8));
		r = re(copy, b->len, &rb);
		if (r == REENC_DIFFERS) {
			fail_msg(
			    "bit %zu of %zu flipped: decoded, but re-encodes "
			    "to other bytes",
			    i, b->len * 8);
		}
		if (i < 8 && r != REENC_REFUSED) {
			fail_msg(
			    "bit %zu of the version byte flipped: accepted", i);
		}
		refused += r == REENC_REFUSED;
		free(copy);
	}
	assert_true(refused >= 8);
	lww_buf_fini(&rb);
	free(m);
}

static void
assert_entry_eq(const lww_entry *a, const lww_entry *b)
{
	assert_int_equal(a->klen, b->klen);
	assert_memory_equal(a->key, b->key, a->klen);
	assert_int_equal(a->vlen, b->vlen);
	if (a->vlen) {
		assert_memory_equal(a->val, b->val, a->vlen);
	}
	assert_true(a->hlc == b->hlc && a->node == b->node);
	assert_int_equal(a->flags, b->flags);
}

static void
test_batch_round_trip(void **state)
{
	lww_entry in[3] = {tu_entry("alpha", "1", 10, 7),
	                   tu_entry("beta", NULL, 11, 7),
	                   tu_entry("gamma", "", UINT64_MAX, UINT64_MAX)};
	lww_buf b = LWW_BUF_INIT;
	lww_batch out;
	lww_entry e;
	size_t off = 0, i = 0;
	(void) state;

	assert_ok(lww_batch_begin(&b, 42));
	for (size_t j = 0; j < 3; j++) {
		assert_ok(lww_batch_add(&b, &in[j]));
	}
	assert_int_equal(lww_batch_count(&b), 3);
	assert_ok(lww_batch_decode(b.p, b.len, &out));
	assert_int_equal(out.seq, 42);
	assert_int_equal(out.entries.count, 3);
	while (lww_entries_next(&out.entries, &off, &e)) {
		assert_entry_eq(&e, &in[i++]);
	}
	assert_int_equal(i, 3);
	check_hostile(dec_batch, reenc_batch, &b);
	lww_buf_fini(&b);
}

static void
test_batch_limits(void **state)
{
	lww_buf b = LWW_BUF_INIT;
	lww_entry e = tu_entry("k", "v", 1, 1);
	lww_batch out;
	(void) state;

	assert_ok(lww_batch_begin(&b, 1));
	for (int i = 0; i < LWW_BATCH_ENTRIES_MAX; i++) {
		assert_ok(lww_batch_add(&b, &e));
	}
	assert_err(lww_batch_add(&b, &e), LWW_ETOOBIG);
	assert_ok(lww_batch_decode(b.p, b.len, &out));
	/* A count over the limit is refused before reading entries. */
	lww_put_u32le(b.p + 10, LWW_BATCH_ENTRIES_MAX + 1);
	assert_err(lww_batch_decode(b.p, b.len, &out), LWW_ETOOBIG);
	/* A count larger than the entries present is truncation. */
	lww_put_u32le(b.p + 10, 5);
	assert_err(lww_batch_decode(b.p, 10 + 4 + 3, &out), LWW_EPROTO);
	/* An entry with unknown flags is refused. */
	assert_ok(lww_batch_begin(&b, 1));
	assert_ok(lww_batch_add(&b, &e));
	b.p[14] = 0x02;
	assert_err(lww_batch_decode(b.p, b.len, &out), LWW_EPROTO);
	/* An entry that fails its check is not encoded. */
	e.klen = 0;
	assert_ok(lww_batch_begin(&b, 1));
	assert_err(lww_batch_add(&b, &e), LWW_EINVAL);
	assert_int_equal(lww_batch_count(&b), 0);
	lww_buf_fini(&b);
}

static void
test_oversized_lengths(void **state)
{
	lww_buf b = LWW_BUF_INIT;
	lww_req r;
	(void) state;

	/* An ADD whose key length field says 1025. */
	assert_ok(lww_buf_put_u8(&b, LWW_WIRE_VERSION));
	assert_ok(lww_buf_put_u8(&b, LWW_MSG_REQUEST));
	assert_ok(lww_buf_put_u8(&b, LWW_OP_ADD));
	assert_ok(lww_buf_put_uvarint(&b, LWW_KEY_MAX + 1));
	assert_err(lww_req_decode(b.p, b.len, &r), LWW_EKEYSIZE);
	/* A value length of 1 MiB + 1, with no bytes behind it. */
	lww_buf_reset(&b);
	assert_ok(lww_buf_put_u8(&b, LWW_WIRE_VERSION));
	assert_ok(lww_buf_put_u8(&b, LWW_MSG_REQUEST));
	assert_ok(lww_buf_put_u8(&b, LWW_OP_ADD));
	assert_ok(lww_buf_put_lbytes(&b, "k", 1));
	assert_ok(lww_buf_put_uvarint(&b, LWW_VAL_MAX + 1));
	assert_err(lww_req_decode(b.p, b.len, &r), LWW_EVALSIZE);
	/* A huge length: no overflow, just refused. */
	lww_buf_reset(&b);
	assert_ok(lww_buf_put_u8(&b, LWW_WIRE_VERSION));
	assert_ok(lww_buf_put_u8(&b, LWW_MSG_REQUEST));
	assert_ok(lww_buf_put_u8(&b, LWW_OP_LOOKUP));
	assert_ok(lww_buf_put_uvarint(&b, UINT64_MAX));
	assert_err(lww_req_decode(b.p, b.len, &r), LWW_EKEYSIZE);
	/* Unknown op. */
	lww_buf_reset(&b);
	assert_ok(lww_buf_put_u8(&b, LWW_WIRE_VERSION));
	assert_ok(lww_buf_put_u8(&b, LWW_MSG_REQUEST));
	assert_ok(lww_buf_put_u8(&b, 99));
	assert_err(lww_req_decode(b.p, b.len, &r), LWW_EUNKNOWN);
	/* Encoders refuse what decoders would. */
	{
		lww_req bad = {
		    .op = LWW_OP_ADD, .key = (const uint8_t *) "k", .klen = 0};
		assert_err(lww_req_encode(&b, &bad), LWW_EKEYSIZE);
		bad.klen = 1;
		bad.vlen = LWW_VAL_MAX + 1;
		assert_err(lww_req_encode(&b, &bad), LWW_EVALSIZE);
		bad.op = LWW_OP_LIST;
		bad.vlen = 0;
		bad.limit = 0;
		assert_err(lww_req_encode(&b, &bad), LWW_EINVAL);
	}
	lww_buf_fini(&b);
}

static void
test_heartbeat(void **state)
{
	lww_heartbeat in = {.seq = 77, .hlc = UINT64_C(0x123456789)}, out;
	lww_buf b = LWW_BUF_INIT;
	(void) state;

	assert_ok(lww_heartbeat_encode(&b, &in));
	assert_ok(lww_heartbeat_decode(b.p, b.len, &out));
	assert_true(out.seq == 77 && out.hlc == in.hlc);
	assert_false(out.proof);
	check_hostile(dec_hb, reenc_heartbeat, &b);
	/* A heartbeat is not a batch. */
	{
		lww_batch bt;
		assert_err(lww_batch_decode(b.p, b.len, &bt), LWW_EUNKNOWN);
	}
	/* One answering a HELLO carries its nonce; a cut inside the nonce
	 * is refused (the cut right before it is a plain heartbeat, which
	 * never proves a connection). */
	lww_buf_reset(&b);
	in.proof = 1;
	for (size_t i = 0; i < sizeof(in.nonce); i++) {
		in.nonce[i] = (uint8_t) (0xa0 + i);
	}
	assert_ok(lww_heartbeat_encode(&b, &in));
	assert_int_equal(b.len, 18 + LWW_HELLO_NONCE_BYTES);
	assert_ok(lww_heartbeat_decode(b.p, b.len, &out));
	assert_true(out.proof && out.seq == 77 &&
	            memcmp(out.nonce, in.nonce, sizeof(in.nonce)) == 0);
	{
		lww_buf rb = LWW_BUF_INIT;
		assert_int_equal(reenc_heartbeat(b.p, b.len, &rb), REENC_SAME);
		lww_buf_fini(&rb);
	}
	for (size_t n = 19; n < b.len; n++) {
		assert_true(dec_exact(dec_hb, b.p, n) != LWW_OK);
	}
	assert_ok(lww_buf_put_u8(&b, 0));
	assert_err(lww_heartbeat_decode(b.p, b.len, &out), LWW_EPROTO);
	lww_buf_fini(&b);
}

static lww_err
dec_hello(const uint8_t *p, size_t n)
{
	uint8_t nonce[LWW_HELLO_NONCE_BYTES];
	return lww_hello_decode(p, n, nonce);
}

static void
test_hello(void **state)
{
	uint8_t in[LWW_HELLO_NONCE_BYTES], out[LWW_HELLO_NONCE_BYTES];
	lww_buf b = LWW_BUF_INIT;
	(void) state;

	for (size_t i = 0; i < sizeof(in); i++) {
		in[i] = (uint8_t) (i * 7 + 1);
	}
	assert_ok(lww_hello_encode(&b, in));
	assert_int_equal(b.len, 2 + LWW_HELLO_NONCE_BYTES);
	assert_ok(lww_hello_decode(b.p, b.len, out));
	assert_memory_equal(in, out, sizeof(in));
	check_hostile(dec_hello, reenc_hello, &b);
	assert_err(lww_prune_decode(b.p, b.len), LWW_EUNKNOWN);
	lww_buf_fini(&b);
}

/* Every cut of a link message short of its end is refused. */
static void
cuts_refused(const lww_buf *b,
             lww_err (*dec)(const uint8_t *, size_t, lww_link_recs *))
{
	lww_link_recs r;
	for (size_t n = 0; n < b->len; n++) {
		assert_true(dec(b->p, n, &r) != LWW_OK);
	}
}

static void
test_link(void **state)
{
	lww_buf b = LWW_BUF_INIT, g = LWW_BUF_INIT, u = LWW_BUF_INIT;
	lww_buf hb = LWW_BUF_INIT;
	lww_heartbeat h = {.seq = 9, .hlc = 10};
	lww_link_recs r;
	uint64_t o, s, f, to;
	uint64_t seq;
	(void) state;

	/* IHAVE: records round-trip, the count is bounded, empty refused */
	assert_ok(lww_ihave_begin(&b));
	assert_err(lww_ihave_decode(b.p, b.len, &r), LWW_EPROTO);
	for (uint64_t i = 0; i < LWW_LINK_RECORDS_MAX; i++) {
		assert_ok(lww_ihave_add(&b, 1000 + i, 7 * i));
	}
	assert_err(lww_ihave_add(&b, 1, 1), LWW_ETOOBIG);
	assert_true(lww_link_count(&b) == LWW_LINK_RECORDS_MAX);
	assert_ok(lww_ihave_decode(b.p, b.len, &r));
	assert_true(r.count == LWW_LINK_RECORDS_MAX);
	lww_ihave_at(&r, 5, &o, &s);
	assert_true(o == 1005 && s == 35);
	cuts_refused(&b, lww_ihave_decode);
	assert_err(lww_graft_decode(b.p, b.len, &r), LWW_EUNKNOWN);

	/* GRAFT: from <= to, checked both ways */
	assert_ok(lww_graft_begin(&g));
	assert_err(lww_graft_add(&g, 1, 5, 4), LWW_EINVAL);
	assert_ok(lww_graft_add(&g, 1, 4, 4));
	assert_ok(lww_graft_add(&g, 2, 1, 9));
	assert_ok(lww_graft_decode(g.p, g.len, &r));
	lww_graft_at(&r, 1, &o, &f, &to);
	assert_true(o == 2 && f == 1 && to == 9);
	cuts_refused(&g, lww_graft_decode);
	g.p[g.len - 9] = 0xff; /* from of the last record > to */
	assert_err(lww_graft_decode(g.p, g.len, &r), LWW_EPROTO);

	/* PRUNE: exactly two bytes */
	lww_buf_reset(&g);
	assert_ok(lww_prune_encode(&g));
	assert_ok(lww_prune_decode(g.p, g.len));
	assert_ok(lww_buf_put_u8(&g, 0));
	assert_err(lww_prune_decode(g.p, g.len), LWW_EPROTO);

	/* BUNDLE: messages come back in order; no bundle inside a bundle */
	assert_ok(lww_heartbeat_encode(&hb, &h));
	assert_ok(lww_bundle_begin(&u));
	assert_err(lww_bundle_decode(u.p, u.len, &r), LWW_EPROTO);
	assert_ok(lww_bundle_add(&u, hb.p, hb.len));
	assert_ok(lww_bundle_add(&u, b.p, b.len));
	assert_err(lww_bundle_add(&u, u.p, u.len), LWW_EINVAL);
	assert_err(lww_bundle_add(&u, hb.p, 1), LWW_EINVAL);
	assert_ok(lww_bundle_decode(u.p, u.len, &r));
	assert_true(r.count == 2);
	{
		size_t off = 0, n;
		const uint8_t *m;
		assert_true(lww_bundle_next(&r, &off, &m, &n));
		assert_true(n == hb.len && memcmp(m, hb.p, n) == 0);
		assert_true(lww_bundle_next(&r, &off, &m, &n));
		assert_true(n == b.len && memcmp(m, b.p, n) == 0);
		assert_false(lww_bundle_next(&r, &off, &m, &n));
	}
	cuts_refused(&u, lww_bundle_decode);
	u.p[7] = 1; /* the first message's length no longer adds up */
	assert_err(lww_bundle_decode(u.p, u.len, &r), LWW_EPROTO);

	/* A batch's sequence, read without decoding it */
	lww_buf_reset(&g);
	assert_ok(lww_batch_begin(&g, 4242));
	assert_ok(lww_batch_peek_seq(g.p, g.len, &seq));
	assert_true(seq == 4242);
	assert_err(lww_batch_peek_seq(g.p, 9, &seq), LWW_EPROTO);
	assert_err(lww_batch_peek_seq(hb.p, hb.len, &seq), LWW_EUNKNOWN);

	lww_buf_fini(&b);
	lww_buf_fini(&g);
	lww_buf_fini(&u);
	lww_buf_fini(&hb);
}

static void
test_requests(void **state)
{
	uint8_t bin[4] = {0, 1, 0, 255};
	lww_req reqs[] = {
	    {.op = LWW_OP_ADD,
	     .key = (const uint8_t *) "k1",
	     .klen = 2,
	     .val = bin,
	     .vlen = 4},
	    {.op = LWW_OP_REMOVE, .key = (const uint8_t *) "k2", .klen = 2},
	    {.op = LWW_OP_LOOKUP, .key = (const uint8_t *) "k3", .klen = 2},
	    {.op = LWW_OP_LIST,
	     .key = (const uint8_t *) "pre",
	     .klen = 3,
	     .after = (const uint8_t *) "pre5",
	     .alen = 4,
	     .limit = 100},
	    {.op = LWW_OP_LIST, .limit = 1},
	    {.op = LWW_OP_STATS},
	    {.op = LWW_OP_PEERS},
	};
	lww_buf b = LWW_BUF_INIT;
	(void) state;

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		lww_req out;
		lww_buf_reset(&b);
		assert_ok(lww_req_encode(&b, &reqs[i]));
		assert_ok(lww_req_decode(b.p, b.len, &out));
		assert_int_equal(out.op, reqs[i].op);
		assert_int_equal(out.klen, reqs[i].klen);
		if (out.klen)
			assert_memory_equal(out.key, reqs[i].key, out.klen);
		assert_int_equal(out.vlen, reqs[i].vlen);
		if (out.vlen)
			assert_memory_equal(out.val, reqs[i].val, out.vlen);
		assert_int_equal(out.alen, reqs[i].alen);
		assert_int_equal(out.limit, reqs[i].limit);
		check_hostile(dec_req, reenc_request, &b);
	}
	lww_buf_fini(&b);
}

static void
test_load_request(void **state)
{
	lww_entry in[2] = {tu_entry("a", "x", 5, 5), tu_entry("b", NULL, 6, 6)};
	lww_buf b = LWW_BUF_INIT;
	lww_req out;
	lww_entry e;
	size_t off = 0, i = 0;
	(void) state;

	assert_ok(lww_load_begin(&b));
	assert_ok(lww_load_add(&b, &in[0]));
	assert_ok(lww_load_add(&b, &in[1]));
	assert_int_equal(lww_load_count(&b), 2);
	assert_ok(lww_req_decode(b.p, b.len, &out));
	assert_int_equal(out.op, LWW_OP_LOAD);
	assert_int_equal(out.items.count, 2);
	while (lww_entries_next(&out.items, &off, &e)) {
		/* Items carry no stamp: the node stamps them. */
		assert_true(e.hlc == 0 && e.node == 0);
		assert_int_equal(e.flags, in[i].flags);
		assert_memory_equal(e.key, in[i].key, e.klen);
		i++;
	}
	assert_int_equal(i, 2);
	check_hostile(dec_req, reenc_request, &b);
	/* An empty load is refused. */
	assert_ok(lww_load_begin(&b));
	assert_err(lww_req_decode(b.p, b.len, &out), LWW_EPROTO);
	lww_buf_fini(&b);
}

static void
test_replies(void **state)
{
	lww_entry e = tu_entry("key", "value", 99, 3);
	const char *json = "{\"keys\":1}";
	lww_rep reps[] = {
	    {.op = LWW_OP_ADD, .hlc = 5, .node = 6},
	    {.op = LWW_OP_REMOVE, .hlc = 7, .node = 8},
	    {.op = LWW_OP_LOAD, .hlc = 9, .node = 10, .count = 4096},
	    {.op = LWW_OP_LOOKUP, .entry = e},
	    {.op = LWW_OP_STATS, .text = json, .textlen = strlen(json)},
	    {.op = LWW_OP_PEERS, .text = "[]", .textlen = 2},
	    {.op = LWW_OP_LOOKUP,
	     .status = LWW_ENOTFOUND,
	     .msg = "no such key",
	     .msglen = 11},
	    {.op = LWW_OP_ADD, .status = LWW_EKEYSIZE, .msg = "", .msglen = 0},
	    {.op = 0, .status = LWW_EVERSION, .msg = "v", .msglen = 1},
	};
	lww_buf b = LWW_BUF_INIT;
	(void) state;

	for (size_t i = 0; i < sizeof(reps) / sizeof(reps[0]); i++) {
		lww_rep out;
		lww_buf_reset(&b);
		assert_ok(lww_rep_encode(&b, &reps[i]));
		assert_ok(lww_rep_decode(b.p, b.len, &out));
		assert_int_equal(out.op, reps[i].op);
		assert_int_equal(out.status, reps[i].status);
		assert_int_equal(out.msglen, reps[i].msglen);
		assert_true(out.hlc == reps[i].hlc && out.node == reps[i].node);
		assert_int_equal(out.count, reps[i].count);
		assert_int_equal(out.textlen, reps[i].textlen);
		if (reps[i].op == LWW_OP_LOOKUP && reps[i].status == LWW_OK) {
			assert_entry_eq(&out.entry, &e);
		}
		check_hostile(dec_rep, reenc_reply, &b);
	}
	lww_buf_fini(&b);
}

static void
test_list_reply(void **state)
{
	lww_entry in[2] = {tu_entry("a", "1", 1, 1), tu_entry("b", NULL, 2, 1)};
	lww_buf b = LWW_BUF_INIT;
	lww_rep out;
	lww_entry e;
	size_t off = 0, i = 0;
	(void) state;

	assert_ok(lww_list_begin(&b));
	assert_ok(lww_list_add(&b, &in[0]));
	assert_ok(lww_list_add(&b, &in[1]));
	assert_ok(lww_list_end(&b, 1, 0));
	assert_ok(lww_rep_decode(b.p, b.len, &out));
	assert_int_equal(out.op, LWW_OP_LIST);
	assert_int_equal(out.more, 1);
	assert_int_equal(out.damaged, 0);
	while (lww_entries_next(&out.entries, &off, &e)) {
		assert_entry_eq(&e, &in[i++]);
	}
	assert_int_equal(i, 2);
	check_hostile(dec_rep, reenc_reply, &b);
	b.p[b.len - 1] = 4; /* an unknown flag */
	assert_err(lww_rep_decode(b.p, b.len, &out), LWW_EPROTO);
	b.p[b.len - 1] = 2; /* "damaged" without its count */
	assert_err(lww_rep_decode(b.p, b.len, &out), LWW_EPROTO);

	/* A page that skipped damaged records says how many. */
	assert_ok(lww_list_begin(&b));
	assert_ok(lww_list_add(&b, &in[0]));
	assert_ok(lww_list_end(&b, 0, 3));
	assert_ok(lww_rep_decode(b.p, b.len, &out));
	assert_int_equal(out.more, 0);
	assert_int_equal(out.damaged, 3);
	check_hostile(dec_rep, reenc_reply, &b);
	lww_put_u32le(b.p + b.len - 4, 0); /* a count of none is malformed */
	assert_err(lww_rep_decode(b.p, b.len, &out), LWW_EPROTO);
	lww_buf_fini(&b);
}

static void
test_long_error_message_is_truncated(void **state)
{
	char msg[LWW_ERRMSG_MAX * 2];
	lww_rep r = {.op = LWW_OP_ADD,
	             .status = LWW_EIO,
	             .msg = msg,
	             .msglen = sizeof(msg)};
	lww_buf b = LWW_BUF_INIT;
	lww_rep out;
	(void) state;

	memset(msg, 'x', sizeof(msg));
	{
		lww_rep ok0 = {.op = 0, .status = LWW_OK};
		assert_err(lww_rep_encode(&b, &ok0), LWW_EINVAL);
	}
	assert_ok(lww_rep_encode(&b, &r));
	assert_ok(lww_rep_decode(b.p, b.len, &out));
	assert_int_equal(out.msglen, LWW_ERRMSG_MAX);
	lww_buf_fini(&b);
}

static lww_err
dec_treq(const uint8_t *p, size_t n)
{
	lww_tree_req r;
	return lww_tree_req_decode(p, n, &r);
}

static lww_err
dec_trep(const uint8_t *p, size_t n)
{
	lww_tree_rep r;
	return lww_tree_rep_decode(p, n, &r);
}

static lww_err
dec_lreq(const uint8_t *p, size_t n)
{
	lww_leaf_req r;
	return lww_leaf_req_decode(p, n, &r);
}

static lww_err
dec_lrep(const uint8_t *p, size_t n)
{
	lww_leaf_rep r;
	return lww_leaf_rep_decode(p, n, &r);
}

static void
test_tree_messages(void **state)
{
	uint32_t idx[3] = {0, 7, 255};
	uint8_t hashes[3 * 16 * LWW_SYNC_HASH];
	lww_buf b = LWW_BUF_INIT;
	lww_tree_req q;
	lww_tree_rep r;
	(void) state;

	for (size_t i = 0; i < sizeof(hashes); i++) {
		hashes[i] = (uint8_t) i;
	}
	assert_ok(lww_tree_req_encode(&b, 2, idx, 3));
	assert_ok(lww_tree_req_decode(b.p, b.len, &q));
	assert_int_equal(q.level, 2);
	assert_int_equal(q.count, 3);
	assert_int_equal(lww_tree_req_index(&q, 2), 255);
	check_hostile(dec_treq, reenc_tree_req, &b);
	/* An index outside its level is refused both ways. */
	idx[0] = 256;
	assert_err(lww_tree_req_encode(&b, 2, idx, 3), LWW_EINVAL);
	lww_put_u32le(b.p + 7, 256);
	assert_err(lww_tree_req_decode(b.p, b.len, &q), LWW_EPROTO);
	assert_err(lww_tree_req_encode(&b, 8, idx, 0), LWW_EINVAL);

	lww_buf_reset(&b);
	assert_ok(lww_tree_rep_encode(&b, 1, hashes, 3));
	assert_ok(lww_tree_rep_decode(b.p, b.len, &r));
	assert_int_equal(r.count, 3);
	assert_memory_equal(r.hashes, hashes, sizeof(hashes));
	check_hostile(dec_trep, reenc_tree_rep, &b);
	/* A count beyond the limit, with no bytes behind it. */
	lww_put_u32le(b.p + 3, LWW_SYNC_NODES_MAX + 1);
	assert_err(lww_tree_rep_decode(b.p, b.len, &r), LWW_EPROTO);
	lww_buf_fini(&b);
}

static void
test_leaf_messages(void **state)
{
	uint8_t sums[2 * LWW_SYNC_SUMMARY], h[16] = {9, 8, 7};
	lww_entry e = tu_entry("k", "v", 3, 4);
	lww_buf b = LWW_BUF_INIT;
	lww_leaf_req q;
	lww_leaf_rep r;
	uint32_t leaf, nsum, n = 0;
	const uint8_t *s;
	size_t off = 0;
	(void) state;

	lww_sync_summary(sums, 0xabcdef01, h);
	lww_sync_summary(sums + LWW_SYNC_SUMMARY, 2, h);
	assert_ok(lww_leaf_req_begin(&b));
	assert_ok(lww_leaf_req_add(&b, 5, sums, 2));
	assert_ok(lww_leaf_req_add(&b, 65535, NULL, 0));
	assert_err(lww_leaf_req_add(&b, 65536, NULL, 0), LWW_EINVAL);
	assert_int_equal(lww_leaf_req_count(&b), 2);
	assert_ok(lww_leaf_req_decode(b.p, b.len, &q));
	while (lww_leaf_req_next(&q, &off, &leaf, &nsum, &s)) {
		if (n++ == 0) {
			assert_int_equal(leaf, 5);
			assert_int_equal(nsum, 2);
			assert_int_equal(lww_get_u32le(s), 0xabcdef01);
			assert_memory_equal(s + 4, h, 8);
		} else {
			assert_int_equal(leaf, 65535);
			assert_int_equal(nsum, 0);
		}
	}
	assert_int_equal(n, 2);
	check_hostile(dec_lreq, reenc_leaf_req, &b);
	/* A summary count larger than the bytes left. */
	lww_put_u32le(b.p + 10, 1000000);
	assert_err(lww_leaf_req_decode(b.p, b.len, &q), LWW_EPROTO);

	assert_ok(lww_leaf_rep_begin(&b));
	assert_ok(lww_leaf_rep_add(&b, &e));
	lww_leaf_rep_set_done(&b, 2);
	assert_int_equal(lww_leaf_rep_count(&b), 1);
	assert_ok(lww_leaf_rep_decode(b.p, b.len, &r));
	assert_int_equal(r.done, 2);
	assert_int_equal(r.entries.count, 1);
	check_hostile(dec_lrep, reenc_leaf_rep, &b);
	lww_buf_fini(&b);
}

static lww_err
dec_push_req(const uint8_t *p, size_t n)
{
	lww_entries es;
	return lww_push_req_decode(p, n, &es);
}

static lww_err
dec_push_rep(const uint8_t *p, size_t n)
{
	uint32_t taken;
	return lww_push_rep_decode(p, n, &taken);
}

/* Push-pull: a LEAF_PP_REQ is a LEAF_REQ of another type; its reply
 * lists after the entries the summaries the peer lacks (wants); the
 * asker pushes those entries and learns how many the peer took. */
static void
test_push_pull_messages(void **state)
{
	uint8_t sums[2 * LWW_SYNC_SUMMARY], h[16] = {1, 2, 3};
	lww_entry e = tu_entry("k", "v", 3, 4), f = tu_entry("kk", NULL, 5, 6);
	lww_buf b = LWW_BUF_INIT;
	lww_leaf_req q;
	lww_leaf_rep r;
	lww_entries es;
	lww_entry got;
	uint32_t taken;
	size_t off = 0;
	(void) state;

	lww_sync_summary(sums, 7, h);
	lww_sync_summary(sums + LWW_SYNC_SUMMARY, 0xfffffff0, h);
	assert_ok(lww_leaf_pp_req_begin(&b));
	assert_ok(lww_leaf_req_add(&b, 9, sums, 2));
	assert_ok(lww_leaf_req_decode(b.p, b.len, &q));
	assert_true(q.push);
	assert_int_equal(q.count, 1);
	check_hostile(dec_lreq, reenc_leaf_req, &b);
	assert_ok(lww_leaf_req_begin(&b));
	assert_ok(lww_leaf_req_decode(b.p, b.len, &q));
	assert_false(q.push);

	/* A plain reply has no wants; a push-pull one has its own. */
	assert_ok(lww_leaf_rep_begin(&b));
	assert_ok(lww_leaf_rep_add(&b, &e));
	assert_err(lww_leaf_pp_rep_end(&b, sums, 2), LWW_EINVAL);
	assert_ok(lww_leaf_rep_decode(b.p, b.len, &r));
	assert_int_equal(r.nwant, 0);
	assert_null(r.want);
	assert_ok(lww_leaf_pp_rep_begin(&b));
	assert_ok(lww_leaf_rep_add(&b, &e));
	assert_ok(lww_leaf_rep_add(&b, &f));
	assert_ok(lww_leaf_pp_rep_end(&b, sums, 2));
	lww_leaf_rep_set_done(&b, 1);
	assert_ok(lww_leaf_rep_decode(b.p, b.len, &r));
	assert_int_equal(r.done, 1);
	assert_int_equal(r.entries.count, 2);
	assert_int_equal(r.nwant, 2);
	assert_memory_equal(r.want, sums, sizeof(sums));
	check_hostile(dec_lrep, reenc_leaf_rep, &b);
	/* A want count beyond the bytes left, before any multiplication. */
	lww_put_u32le(b.p + b.len - sizeof(sums) - 4, 0xffffffffu);
	assert_err(lww_leaf_rep_decode(b.p, b.len, &r), LWW_EPROTO);
	/* No wants is a legal reply (the peer holds all we summarised). */
	assert_ok(lww_leaf_pp_rep_begin(&b));
	assert_ok(lww_leaf_pp_rep_end(&b, NULL, 0));
	assert_ok(lww_leaf_rep_decode(b.p, b.len, &r));
	assert_int_equal(r.entries.count + r.nwant, 0);
	/* The entry count is checked before any entry is read. */
	lww_put_u32le(b.p + 6, LWW_BATCH_ENTRIES_MAX + 1);
	assert_err(lww_leaf_rep_decode(b.p, b.len, &r), LWW_ETOOBIG);

	assert_ok(lww_push_req_begin(&b));
	assert_err(lww_push_req_decode(b.p, b.len, &es), LWW_EPROTO);
	assert_ok(lww_push_req_add(&b, &e));
	assert_ok(lww_push_req_add(&b, &f));
	assert_int_equal(lww_push_req_count(&b), 2);
	assert_ok(lww_push_req_decode(b.p, b.len, &es));
	assert_int_equal(es.count, 2);
	assert_true(lww_entries_next(&es, &off, &got));
	assert_entry_eq(&got, &e);
	assert_true(lww_entries_next(&es, &off, &got));
	assert_entry_eq(&got, &f);
	check_hostile(dec_push_req, reenc_push_req, &b);
	lww_put_u32le(b.p + 2, LWW_BATCH_ENTRIES_MAX + 1);
	assert_err(lww_push_req_decode(b.p, b.len, &es), LWW_ETOOBIG);
	assert_ok(lww_push_req_begin(&b));
	for (uint32_t i = 0; i < LWW_BATCH_ENTRIES_MAX; i++) {
		assert_ok(lww_push_req_add(&b, &e));
	}
	assert_err(lww_push_req_add(&b, &e), LWW_ETOOBIG);
	assert_ok(lww_push_req_decode(b.p, b.len, &es));

	lww_buf_reset(&b);
	assert_ok(lww_push_rep_encode(&b, 2));
	assert_ok(lww_push_rep_decode(b.p, b.len, &taken));
	assert_int_equal(taken, 2);
	check_hostile(dec_push_rep, reenc_push_rep, &b);
	lww_put_u32le(b.p + 2, LWW_BATCH_ENTRIES_MAX + 1);
	assert_err(lww_push_rep_decode(b.p, b.len, &taken), LWW_EPROTO);
	lww_buf_fini(&b);
}

/* A message carrying one entry of the largest size stays within that
 * entry's bound plus the headroom, less the signed envelope (and, for an
 * API request, the client's auth wrapper: version, type, time, nonce)
 * that goes around it; so it fits in LWW_MSG_MAX. */
static void
assert_carries_largest(const lww_buf *b)
{
	size_t wrap = LWW_ENVELOPE_OVERHEAD + 2 + 8 + LWW_NONCE_BYTES;

	assert_true(b->len > LWW_KEY_MAX + LWW_VAL_MAX);
	assert_true(b->len + wrap <= LWW_ENTRY_ENCODED_MAX + LWW_MSG_HEADROOM);
	assert_true(b->len + wrap <= LWW_MSG_MAX);
}

static void
test_largest_entry_fits_every_message(void **state)
{
	uint8_t *key = malloc(LWW_KEY_MAX), *val = malloc(LWW_VAL_MAX);
	lww_buf b = LWW_BUF_INIT;
	lww_entry e;
	lww_batch bt;
	lww_leaf_rep lr;
	lww_req q, qo;
	lww_rep r, ro;
	(void) state;

	assert_non_null(key);
	assert_non_null(val);
	memset(key, 'k', LWW_KEY_MAX);
	memset(val, 0xa5, LWW_VAL_MAX);
	e = (lww_entry){key,        LWW_KEY_MAX, val, LWW_VAL_MAX,
	                UINT64_MAX, UINT64_MAX,  0};
	assert_true(lww_entry_size(&e) <= LWW_ENTRY_ENCODED_MAX);

	/* Gossip (and the log, which stores batches). */
	assert_ok(lww_batch_begin(&b, UINT64_MAX));
	assert_ok(lww_batch_add(&b, &e));
	assert_ok(lww_batch_decode(b.p, b.len, &bt));
	assert_carries_largest(&b);
	/* A repair reply carrying it alone. */
	assert_ok(lww_leaf_rep_begin(&b));
	assert_ok(lww_leaf_rep_add(&b, &e));
	lww_leaf_rep_set_done(&b, LWW_SYNC_LEAVES_MAX);
	assert_ok(lww_leaf_rep_decode(b.p, b.len, &lr));
	assert_int_equal(lr.entries.count, 1);
	assert_carries_largest(&b);
	/* A push carrying it alone. */
	{
		lww_entries pes;
		assert_ok(lww_push_req_begin(&b));
		assert_ok(lww_push_req_add(&b, &e));
		assert_ok(lww_push_req_decode(b.p, b.len, &pes));
		assert_int_equal(pes.count, 1);
		assert_carries_largest(&b);
	}
	/* The client's add, and the lookup reply. */
	q = (lww_req){.op = LWW_OP_ADD,
	              .key = key,
	              .klen = LWW_KEY_MAX,
	              .val = val,
	              .vlen = LWW_VAL_MAX};
	lww_buf_reset(&b);
	assert_ok(lww_req_encode(&b, &q));
	assert_ok(lww_req_decode(b.p, b.len, &qo));
	assert_carries_largest(&b);
	r = (lww_rep){.op = LWW_OP_LOOKUP, .entry = e};
	lww_buf_reset(&b);
	assert_ok(lww_rep_encode(&b, &r));
	assert_ok(lww_rep_decode(b.p, b.len, &ro));
	assert_entry_eq(&ro.entry, &e);
	assert_carries_largest(&b);
	lww_buf_fini(&b);
	free(key);
	free(val);
}

static void
test_clock_probes(void **state)
{
	lww_clock_probe in = {UINT64_C(1764600000123), UINT64_C(1764600000456),
	                      UINT64_C(1764600000457), 42},
	                out;
	lww_buf b = LWW_BUF_INIT;
	uint64_t t1 = 0;
	(void) state;

	assert_ok(lww_clock_req_encode(&b, in.t1));
	assert_ok(lww_clock_req_decode(b.p, b.len, &t1));
	assert_true(t1 == in.t1);
	check_hostile(dec_clock_req, reenc_clock_req, &b);
	/* A request is not a reply, nor a heartbeat. */
	assert_err(dec_clock_rep(b.p, b.len), LWW_EUNKNOWN);
	assert_err(dec_hb(b.p, b.len), LWW_EUNKNOWN);
	lww_buf_reset(&b);
	assert_ok(lww_clock_rep_encode(&b, &in));
	assert_ok(lww_clock_rep_decode(b.p, b.len, &out));
	assert_true(out.t1 == in.t1 && out.t2 == in.t2 && out.t3 == in.t3 &&
	            out.refused == 42);
	check_hostile(dec_clock_rep, reenc_clock_rep, &b);
	assert_err(dec_clock_req(b.p, b.len), LWW_EUNKNOWN);
	lww_buf_fini(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batch_round_trip),
	    cmocka_unit_test(test_batch_limits),
	    cmocka_unit_test(test_oversized_lengths),
	    cmocka_unit_test(test_heartbeat),
	    cmocka_unit_test(test_link),
	    cmocka_unit_test(test_hello),
	    cmocka_unit_test(test_clock_probes),
	    cmocka_unit_test(test_requests),
	    cmocka_unit_test(test_load_request),
	    cmocka_unit_test(test_replies),
	    cmocka_unit_test(test_list_reply),
	    cmocka_unit_test(test_long_error_message_is_truncated),
	    cmocka_unit_test(test_tree_messages),
	    cmocka_unit_test(test_leaf_messages),
	    cmocka_unit_test(test_push_pull_messages),
	    cmocka_unit_test(test_largest_entry_fits_every_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
