/*
 * decode.c - every wire decoder on arbitrary bytes: no crash, no leak, no
 * read out of bounds; and whatever a decoder accepts re-encodes to exactly
 * the same bytes (every value has one encoding), so decode-encode-decode
 * is the identity.
 */
#include <string.h>

#include "codec.h"
#include "fuzz.h"

static void
same(const lww_buf *b, const uint8_t *p, size_t n)
{
	FUZZ_CHECK(b->len == n);
	FUZZ_CHECK(n == 0 || memcmp(b->p, p, n) == 0);
}

static void
reencode_entries(lww_buf *b, const lww_entries *es,
                 lww_err (*add)(lww_buf *, const lww_entry *))
{
	size_t off = 0;
	lww_entry e;
	uint32_t n = 0;

	while (lww_entries_next(es, &off, &e)) {
		FUZZ_CHECK(add(b, &e) == LWW_OK);
		n++;
	}
	FUZZ_CHECK(n == es->count);
}

static void
batch(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_batch bt;
	if (lww_batch_decode(p, n, &bt) != LWW_OK) {
		return;
	}
	FUZZ_CHECK(lww_batch_begin(b, bt.seq) == LWW_OK);
	reencode_entries(b, &bt.entries, lww_batch_add);
	same(b, p, n);
}

static void
heartbeat(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_heartbeat hb;
	if (lww_heartbeat_decode(p, n, &hb) != LWW_OK) {
		return;
	}
	lww_buf_reset(b);
	FUZZ_CHECK(lww_heartbeat_encode(b, &hb) == LWW_OK);
	same(b, p, n);
}

static void
clock_probes(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_clock_probe c;
	uint64_t t1;

	if (lww_clock_req_decode(p, n, &t1) == LWW_OK) {
		lww_buf_reset(b);
		FUZZ_CHECK(lww_clock_req_encode(b, t1) == LWW_OK);
		same(b, p, n);
	}
	if (lww_clock_rep_decode(p, n, &c) == LWW_OK) {
		lww_buf_reset(b);
		FUZZ_CHECK(lww_clock_rep_encode(b, &c) == LWW_OK);
		same(b, p, n);
	}
}

static void
request(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_req q;
	if (lww_req_decode(p, n, &q) != LWW_OK) {
		return;
	}
	lww_buf_reset(b);
	if (q.op == LWW_OP_LOAD) {
		FUZZ_CHECK(lww_load_begin(b) == LWW_OK);
		reencode_entries(b, &q.items, lww_load_add);
	} else {
		FUZZ_CHECK(lww_req_encode(b, &q) == LWW_OK);
	}
	same(b, p, n);
}

static void
reply(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_rep r;
	if (lww_rep_decode(p, n, &r) != LWW_OK) {
		return;
	}
	lww_buf_reset(b);
	if (r.op == LWW_OP_LIST && r.status == LWW_OK) {
		FUZZ_CHECK(lww_list_begin(b) == LWW_OK);
		reencode_entries(b, &r.entries, lww_list_add);
		FUZZ_CHECK(lww_list_end(b, r.more, r.damaged) == LWW_OK);
	} else {
		FUZZ_CHECK(lww_rep_encode(b, &r) == LWW_OK);
	}
	same(b, p, n);
}

static void
entry(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_entry e;
	if (lww_entry_decode(p, n, &e) != LWW_OK) {
		return;
	}
	FUZZ_CHECK(lww_entry_check(&e) == LWW_OK);
	FUZZ_CHECK(lww_entry_size(&e) == n);
	lww_buf_reset(b);
	FUZZ_CHECK(lww_entry_encode(b, &e) == LWW_OK);
	same(b, p, n);
}

static void
tree(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_tree_req q;
	lww_tree_rep r;

	if (lww_tree_req_decode(p, n, &q) == LWW_OK) {
		uint32_t *idx = malloc(q.count * sizeof(*idx) + 1);
		FUZZ_CHECK(idx != NULL);
		for (uint32_t i = 0; i < q.count; i++) {
			idx[i] = lww_tree_req_index(&q, i);
		}
		lww_buf_reset(b);
		FUZZ_CHECK(lww_tree_req_encode(b, q.level, idx, q.count) ==
		           LWW_OK);
		free(idx);
		same(b, p, n);
	}
	if (lww_tree_rep_decode(p, n, &r) == LWW_OK) {
		lww_buf_reset(b);
		FUZZ_CHECK(lww_tree_rep_encode(b, r.level, r.hashes, r.count) ==
		           LWW_OK);
		same(b, p, n);
	}
}

static void
leaves(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_leaf_req q;
	lww_leaf_rep r;

	if (lww_leaf_req_decode(p, n, &q) == LWW_OK) {
		const uint8_t *sums;
		uint32_t leaf, nsum, count = 0;
		size_t off = 0;
		FUZZ_CHECK(lww_leaf_req_begin(b) == LWW_OK);
		while (lww_leaf_req_next(&q, &off, &leaf, &nsum, &sums)) {
			FUZZ_CHECK(lww_leaf_req_add(b, leaf, sums, nsum) ==
			           LWW_OK);
			count++;
		}
		FUZZ_CHECK(count == q.count);
		same(b, p, n);
	}
	if (lww_leaf_rep_decode(p, n, &r) == LWW_OK) {
		FUZZ_CHECK(lww_leaf_rep_begin(b) == LWW_OK);
		reencode_entries(b, &r.entries, lww_leaf_rep_add);
		lww_leaf_rep_set_done(b, r.done);
		same(b, p, n);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lww_buf b = LWW_BUF_INIT;
	uint8_t type;

	entry(data, size, &b);
	if (lww_msg_peek(data, size, &type) == LWW_OK) {
		batch(data, size, &b);
		heartbeat(data, size, &b);
		clock_probes(data, size, &b);
		request(data, size, &b);
		reply(data, size, &b);
		tree(data, size, &b);
		leaves(data, size, &b);
	}
	lww_buf_fini(&b);
	return 0;
}
