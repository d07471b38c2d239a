/*
 * gen_seeds.c - writes the seed corpora: valid messages of every kind for
 * decode, signed-envelope inputs for envelope, clock scripts for hlc and
 * schedules for converge, log segments for wal. Run once: gen_seeds fuzz/corpus; the output is
 * committed, so this is a tool, not part of the tests.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "codec.h"
#include "envelope.h"
#include "hlc.h"
#include "wal.h"

static const char *root;

static void
put(const char *target, const char *name, const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		return;
	}
	fclose(f);
}

static void
putb(const char *target, const char *name, lww_buf *b)
{
	put(target, name, b->p, b->len);
	lww_buf_reset(b);
}

int
main(int argc, char **argv)
{
	lww_buf b = LWW_BUF_INIT;
	lww_entry e1 = {(const uint8_t *) "user:1",
	                6,
	                (const uint8_t *) "Zoe",
	                3,
	                lww_hlc_make(1795450000000, 3),
	                0x1122334455667788,
	                0};
	lww_entry e2 = {(const uint8_t *) "gone",
	                4,
	                NULL,
	                0,
	                lww_hlc_make(1795450000001, 0),
	                42,
	                LWW_ENTRY_TOMBSTONE};
	uint8_t sum[LWW_SYNC_SUMMARY], h[16] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint8_t hashes[2 * 16 * LWW_SYNC_HASH];
	uint32_t idx[2] = {3, 9};

	if (argc != 2 || sodium_init() < 0) {
		fprintf(stderr, "usage: gen_seeds CORPUS_DIR\n");
		return 2;
	}
	root = argv[1];

	/* decode */
	lww_entry_encode(&b, &e1);
	putb("decode", "entry", &b);
	lww_batch_begin(&b, 7);
	lww_batch_add(&b, &e1);
	lww_batch_add(&b, &e2);
	putb("decode", "batch", &b);
	lww_heartbeat hb = {.seq = 7, .hlc = e1.hlc};
	lww_heartbeat_encode(&b, &hb);
	putb("decode", "heartbeat", &b);
	hb.proof = 1;
	memset(hb.nonce, 0xab, sizeof(hb.nonce));
	lww_heartbeat_encode(&b, &hb);
	putb("decode", "heartbeat_proof", &b);
	lww_hello_encode(&b, hb.nonce);
	putb("decode", "hello", &b);
	lww_clock_req_encode(&b, 1795450000000);
	putb("decode", "clock_req", &b);
	{
		lww_clock_probe cp = {1795450000000, 1795450000012,
		                      1795450000013, 3};
		lww_clock_rep_encode(&b, &cp);
		putb("decode", "clock_rep", &b);
	}
	{
		lww_req reqs[] = {
		    {.op = LWW_OP_ADD,
		     .key = e1.key,
		     .klen = 6,
		     .val = e1.val,
		     .vlen = 3},
		    {.op = LWW_OP_REMOVE, .key = e1.key, .klen = 6},
		    {.op = LWW_OP_LOOKUP, .key = e1.key, .klen = 6},
		    {.op = LWW_OP_LIST,
		     .key = (const uint8_t *) "user:",
		     .klen = 5,
		     .after = e1.key,
		     .alen = 6,
		     .limit = 100},
		    {.op = LWW_OP_STATS},
		    {.op = LWW_OP_PEERS},
		};
		for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
			char name[32];
			snprintf(name, sizeof(name), "req-%d", reqs[i].op);
			lww_req_encode(&b, &reqs[i]);
			putb("decode", name, &b);
		}
	}
	lww_load_begin(&b);
	lww_load_add(&b, &e1);
	lww_load_add(&b, &e2);
	putb("decode", "req-load", &b);
	{
		lww_rep reps[] = {
		    {.op = LWW_OP_ADD,
		     .hlc = e1.hlc,
		     .node = e1.node,
		     .count = 1},
		    {.op = LWW_OP_LOOKUP, .entry = e1},
		    {.op = LWW_OP_STATS, .text = "{\"keys\":1}", .textlen = 10},
		    {.op = LWW_OP_LOOKUP,
		     .status = LWW_ENOTFOUND,
		     .msg = "key not found",
		     .msglen = 13},
		    {.op = 0, .status = LWW_EVERSION, .msg = "v", .msglen = 1},
		};
		for (size_t i = 0; i < sizeof(reps) / sizeof(reps[0]); i++) {
			char name[32];
			snprintf(name, sizeof(name), "rep-%zu", i);
			lww_rep_encode(&b, &reps[i]);
			putb("decode", name, &b);
		}
	}
	lww_list_begin(&b);
	lww_list_add(&b, &e1);
	lww_list_add(&b, &e2);
	lww_list_end(&b, 1, 0);
	putb("decode", "rep-list", &b);
	lww_tree_req_encode(&b, 1, idx, 2);
	putb("decode", "tree-req", &b);
	memset(hashes, 0xab, sizeof(hashes));
	lww_tree_rep_encode(&b, 1, hashes, 2);
	putb("decode", "tree-rep", &b);
	lww_sync_summary(sum, 0x12345678, h);
	lww_leaf_req_begin(&b);
	lww_leaf_req_add(&b, 17, sum, 1);
	lww_leaf_req_add(&b, 65535, NULL, 0);
	putb("decode", "leaf-req", &b);
	lww_leaf_rep_begin(&b);
	lww_leaf_rep_add(&b, &e1);
	lww_leaf_rep_set_done(&b, 1);
	putb("decode", "leaf-rep", &b);
	lww_leaf_pp_req_begin(&b);
	lww_leaf_req_add(&b, 17, sum, 1);
	putb("decode", "leaf-pp-req", &b);
	lww_leaf_pp_rep_begin(&b);
	lww_leaf_rep_add(&b, &e1);
	lww_leaf_pp_rep_end(&b, sum, 1);
	lww_leaf_rep_set_done(&b, 1);
	putb("decode", "leaf-pp-rep", &b);
	lww_push_req_begin(&b);
	lww_push_req_add(&b, &e1);
	lww_push_req_add(&b, &e2);
	putb("decode", "push-req", &b);
	lww_buf_reset(&b);
	lww_push_rep_encode(&b, 2);
	putb("decode", "push-rep", &b);

	/* envelope: mode, nmut, mutations, payload */
	{
		const uint8_t clean[] = {0, 0, 1, 0x01, 'h', 'i'};
		const uint8_t flip[] = {0, 1, 40, 0, 0x80, 'p', 'a', 'y'};
		const uint8_t stranger[] = {1, 0, 'x'};
		const uint8_t trunc[] = {2, 0, 'a', 'b', 'c'};
		const uint8_t extra[] = {4, 0, 'a'};
		put("envelope", "clean", clean, sizeof(clean));
		put("envelope", "flip", flip, sizeof(flip));
		put("envelope", "stranger", stranger, sizeof(stranger));
		put("envelope", "truncated", trunc, sizeof(trunc));
		put("envelope", "extra", extra, sizeof(extra));
	}

	/* hlc: drift:u16 then op:u8 value:u64 */
	{
		uint8_t s[2 + 9 * 8];
		size_t n = 2;
		const uint8_t ops[] = {0, 2, 2, 3, 1, 2, 3, 2};
		const uint64_t vals[] = {1795450000000,
		                         0,
		                         0,
		                         lww_hlc_make(1795450000500, 9),
		                         0xf0,
		                         0,
		                         lww_hlc_make(1795459999999, 0),
		                         0};
		s[0] = 0xe8; /* 1000 ms */
		s[1] = 0x03;
		for (int i = 0; i < 8; i++, n += 9) {
			s[n] = ops[i];
			for (int j = 0; j < 8; j++) {
				s[n + 1 + j] = (uint8_t) (vals[i] >> (8 * j));
			}
		}
		put("hlc", "steps", s, n);
	}

	/* converge: records of 4 bytes (see converge.c) */
	{
		const uint8_t s1[] = {0, 0, 0x41, 'x', 0, 1, 0x42, 'y',
		                      1, 0, 1,    0,   1, 1, 2,    0,
		                      2, 3, 0,    1,   3, 0, 0,    0};
		const uint8_t s2[] = {0,   0x10, 0x01, 'a',  0, 0x21, 0x01,
		                      'b', 0,    0x32, 0x21, 0, 1,    0,
		                      1,   0,    1,    1,    2, 0,    1,
		                      2,   0,    0,    3,    0, 0,    0};
		put("converge", "writes", s1, sizeof(s1));
		put("converge", "same-stamps", s2, sizeof(s2));
	}

	/* wal: a segment as lwwd writes it (batch messages, then the
	 * origin), whole, cut short in its last record, and damaged before
	 * a whole record (in a payload, in a length, in the header) */
	{
		char path[512];
		lww_wal *w;
		FILE *f;
		uint8_t seg[2048];
		size_t n, first;

		snprintf(path, sizeof(path), "%s/wal-seed.tmp", root);
		unlink(path);
		if (lww_wal_create(path, &w) != LWW_OK) {
			fprintf(stderr, "cannot create %s\n", path);
			return 1;
		}
		lww_batch_begin(&b, 7);
		lww_batch_add(&b, &e1);
		lww_batch_add(&b, &e2);
		lww_buf_put_u64(&b, 0x1122334455667788);
		lww_wal_append(w, b.p, b.len);
		first = (size_t) lww_wal_size(w);
		lww_buf_reset(&b);
		lww_batch_begin(&b, 0);
		lww_batch_add(&b, &e2);
		lww_buf_put_u64(&b, 42);
		lww_wal_append(w, b.p, b.len);
		lww_buf_reset(&b);
		lww_wal_close(w);
		if ((f = fopen(path, "rb")) == NULL) {
			return 1;
		}
		n = fread(seg, 1, sizeof(seg), f);
		fclose(f);
		unlink(path);
		put("wal", "segment", seg, n);
		put("wal", "torn", seg, n - 5);
		put("wal", "header-only", seg, LWW_WAL_HEADER);
		put("wal", "header-cut-short", seg, LWW_WAL_HEADER - 9);
		seg[first - 3] ^= 0x10;
		put("wal", "damaged-payload", seg, n);
		seg[first - 3] ^= 0x10;
		seg[LWW_WAL_HEADER + 1] ^= 0x10;
		put("wal", "damaged-length", seg, n);
		seg[LWW_WAL_HEADER + 1] ^= 0x10;
		seg[LWW_WAL_HEADER + 5] ^= 0x10;
		put("wal", "damaged-length-check", seg, n);
		seg[LWW_WAL_HEADER + 5] ^= 0x10;
		seg[7] ^= 0x10;
		put("wal", "damaged-version", seg, n);
		seg[7] ^= 0x10;
		seg[12] ^= 0x10;
		put("wal", "damaged-key", seg, n);
		seg[12] ^= 0x10;
		seg[2] ^= 0x10;
		put("wal", "damaged-header", seg, n);
		{
			/* A whole header of a newer version. */
			uint8_t zero[crypto_shorthash_KEYBYTES] = {0};
			seg[7] = LWW_WAL_VERSION + 1;
			crypto_shorthash(seg + 24, seg, 24, zero);
			put("wal", "newer-version", seg, n);
			seg[7] = LWW_WAL_VERSION;
			crypto_shorthash(seg + 24, seg, 24, zero);
		}
		/* A stretch that reads as a length everywhere, after the
		 * first record (the scan's worst case). */
		for (size_t i = first; i + 4 <= sizeof(seg); i += 4) {
			memcpy(seg + i, "\0\0\2\0", 4);
		}
		put("wal", "length-stretch", seg, sizeof(seg));
	}
	lww_buf_fini(&b);
	return 0;
}
