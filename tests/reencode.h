/*
 * reencode.h - decode a wire message, encode what was decoded, compare.
 *
 * Every value has exactly one encoding, so a decoder that accepts bytes
 * must give back a value that encodes to those same bytes; anything else
 * means it accepted damage it should have refused, or lost a field. Shared
 * by the codec bit-flip test (tests/codec_test.c) and the decode fuzz
 * harness (fuzz/decode.c).
 */
#ifndef LWW_REENCODE_H
#define LWW_REENCODE_H

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "entry.h"

typedef enum reenc_result {
	REENC_REFUSED, /* the decoder returned an error */
	REENC_SAME,    /* decoded, and re-encodes to exactly these bytes */
	REENC_DIFFERS, /* decoded, but re-encodes differently (a bug) */
} reenc_result;

typedef reenc_result (*reenc_fn)(const uint8_t *p, size_t n, lww_buf *b);

static inline reenc_result
reenc_same(const lww_buf *b, const uint8_t *p, size_t n)
{
	return b->len == n && (n == 0 || memcmp(b->p, p, n) == 0)
	           ? REENC_SAME
	           : REENC_DIFFERS;
}

/* Appends every entry with add; 0 if one fails or the count is off. */
static inline int
reenc_entries(lww_buf *b, const lww_entries *es,
              lww_err (*add)(lww_buf *, const lww_entry *))
{
	size_t off = 0;
	lww_entry e;
	uint32_t n = 0;

	while (lww_entries_next(es, &off, &e)) {
		if (add(b, &e) != LWW_OK) {
			return 0;
		}
		n++;
	}
	return n == es->count;
}

static inline reenc_result
reenc_batch(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_batch bt;
	if (lww_batch_decode(p, n, &bt) != LWW_OK) {
		return REENC_REFUSED;
	}
	if (lww_batch_begin(b, bt.seq) != LWW_OK ||
	    !reenc_entries(b, &bt.entries, lww_batch_add)) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_heartbeat(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_heartbeat hb;
	if (lww_heartbeat_decode(p, n, &hb) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (lww_heartbeat_encode(b, &hb) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_hello(const uint8_t *p, size_t n, lww_buf *b)
{
	uint8_t nonce[LWW_HELLO_NONCE_BYTES];
	if (lww_hello_decode(p, n, nonce) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (lww_hello_encode(b, nonce) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_request(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_req q;
	if (lww_req_decode(p, n, &q) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (q.op == LWW_OP_LOAD) {
		if (lww_load_begin(b) != LWW_OK ||
		    !reenc_entries(b, &q.items, lww_load_add)) {
			return REENC_DIFFERS;
		}
	} else if (lww_req_encode(b, &q) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_reply(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_rep r;
	if (lww_rep_decode(p, n, &r) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (r.op == LWW_OP_LIST && r.status == LWW_OK) {
		if (lww_list_begin(b) != LWW_OK ||
		    !reenc_entries(b, &r.entries, lww_list_add) ||
		    lww_list_end(b, r.more, r.damaged) != LWW_OK) {
			return REENC_DIFFERS;
		}
	} else if (lww_rep_encode(b, &r) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_entry(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_entry e;
	if (lww_entry_decode(p, n, &e) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (lww_entry_check(&e) != LWW_OK || lww_entry_size(&e) != n ||
	    lww_entry_encode(b, &e) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_tree_req(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_tree_req q;
	uint32_t *idx;
	lww_err rv;

	if (lww_tree_req_decode(p, n, &q) != LWW_OK) {
		return REENC_REFUSED;
	}
	if ((idx = malloc(q.count * sizeof(*idx) + 1)) == NULL) {
		return REENC_DIFFERS;
	}
	for (uint32_t i = 0; i < q.count; i++) {
		idx[i] = lww_tree_req_index(&q, i);
	}
	lww_buf_reset(b);
	rv = lww_tree_req_encode(b, q.level, idx, q.count);
	free(idx);
	return rv == LWW_OK ? reenc_same(b, p, n) : REENC_DIFFERS;
}

static inline reenc_result
reenc_tree_rep(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_tree_rep r;
	if (lww_tree_rep_decode(p, n, &r) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (lww_tree_rep_encode(b, r.level, r.hashes, r.count) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_leaf_req(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_leaf_req q;
	const uint8_t *sums;
	uint32_t leaf, nsum, count = 0;
	size_t off = 0;

	if (lww_leaf_req_decode(p, n, &q) != LWW_OK) {
		return REENC_REFUSED;
	}
	if ((q.push ? lww_leaf_pp_req_begin(b) : lww_leaf_req_begin(b)) !=
	    LWW_OK) {
		return REENC_DIFFERS;
	}
	while (lww_leaf_req_next(&q, &off, &leaf, &nsum, &sums)) {
		if (lww_leaf_req_add(b, leaf, sums, nsum) != LWW_OK) {
			return REENC_DIFFERS;
		}
		count++;
	}
	return count == q.count ? reenc_same(b, p, n) : REENC_DIFFERS;
}

static inline reenc_result
reenc_leaf_rep(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_leaf_rep r;
	if (lww_leaf_rep_decode(p, n, &r) != LWW_OK) {
		return REENC_REFUSED;
	}
	/* A LEAF_PP_REP is a LEAF_REP with wants after its entries. */
	int pp = n >= 2 && p[1] == LWW_MSG_LEAF_PP_REP;
	if ((pp ? lww_leaf_pp_rep_begin(b) : lww_leaf_rep_begin(b)) != LWW_OK ||
	    !reenc_entries(b, &r.entries, lww_leaf_rep_add) ||
	    (pp && lww_leaf_pp_rep_end(b, r.want, r.nwant) != LWW_OK) ||
	    (!pp && r.nwant != 0)) {
		return REENC_DIFFERS;
	}
	lww_leaf_rep_set_done(b, r.done);
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_push_req(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_entries es;
	if (lww_push_req_decode(p, n, &es) != LWW_OK) {
		return REENC_REFUSED;
	}
	if (lww_push_req_begin(b) != LWW_OK ||
	    !reenc_entries(b, &es, lww_push_req_add)) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_push_rep(const uint8_t *p, size_t n, lww_buf *b)
{
	uint32_t taken;
	if (lww_push_rep_decode(p, n, &taken) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (lww_push_rep_encode(b, taken) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_clock_req(const uint8_t *p, size_t n, lww_buf *b)
{
	uint64_t t1;
	if (lww_clock_req_decode(p, n, &t1) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (lww_clock_req_encode(b, t1) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

static inline reenc_result
reenc_clock_rep(const uint8_t *p, size_t n, lww_buf *b)
{
	lww_clock_probe c;
	if (lww_clock_rep_decode(p, n, &c) != LWW_OK) {
		return REENC_REFUSED;
	}
	lww_buf_reset(b);
	if (lww_clock_rep_encode(b, &c) != LWW_OK) {
		return REENC_DIFFERS;
	}
	return reenc_same(b, p, n);
}

#endif
