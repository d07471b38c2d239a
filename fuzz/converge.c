/*
 * converge.c - replicas that saw the same writes are identical.
 *
 * The input drives three real stores (LMDB in a temporary directory, on
 * tmpfs where there is one, opened once per process and cleared per run)
 * through local writes with arbitrary small keys, values and stamps (equal
 * stamps with different contents included) and an arbitrary schedule:
 * deliveries of any write to any replica (reordered, duplicated, dropped)
 * and partial repairs (every entry under one digest node copied from one
 * replica to another). Throughout, two replicas have equal digest roots if
 * and only if their contents are equal; each root equals one recomputed
 * from the contents. After a final full exchange every replica holds the
 * reference model: per key, the greatest write under the total order.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "codec.h"
#include "digest.h"
#include "fuzz.h"
#include "store.h"
#include "../tests/ref_order.h"

#define R          3
#define WRITES_MAX 64

static lww_store *st[R];
static char dirs[R][64];

static void
cleanup(void)
{
	for (int i = 0; i < R; i++) {
		char cmd[256];
		lww_store_close(st[i]);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dirs[i]);
		if (system(cmd) != 0) {
			fprintf(stderr, "converge: cannot remove %s\n",
			        dirs[i]);
		}
	}
}

static void
init(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	lww_store_opts o = {.map_size = 64 << 20, .nosync = 1};

	FUZZ_CHECK(sodium_init() >= 0);
	for (int i = 0; i < R; i++) {
		snprintf(dirs[i], sizeof(dirs[i]), "%s/lwwfuzz.XXXXXX", base);
		FUZZ_CHECK(mkdtemp(dirs[i]) != NULL);
		FUZZ_CHECK(lww_store_open(dirs[i], &o, &st[i]) == LWW_OK);
	}
	atexit(cleanup);
}

typedef struct fz_write {
	uint8_t key[4];
	uint8_t val[4];
	lww_entry e;
} fz_write;

/* All entries of a store, tombstones included, in key order. */
static int
dump_cb(const lww_entry *e, void *arg)
{
	FUZZ_CHECK(lww_entry_encode(arg, e) == LWW_OK);
	return 0;
}

static void
dump(lww_store *s, lww_buf *b)
{
	lww_scan q = {.tombstones = 1};
	lww_buf_reset(b);
	FUZZ_CHECK(lww_store_scan(s, &q, dump_cb, b, NULL) == LWW_OK);
}

static int
xor_cb(const lww_entry *e, void *arg)
{
	lww_digest h;
	lww_digest_entry(e, &h);
	lww_digest_xor(arg, &h);
	return 0;
}

static void
check_pairs(void)
{
	lww_buf a = LWW_BUF_INIT, b = LWW_BUF_INIT;
	lww_digest ra, rb, recomputed;

	for (int i = 0; i < R; i++) {
		lww_scan q = {.tombstones = 1};
		memset(&recomputed, 0, sizeof(recomputed));
		FUZZ_CHECK(lww_store_scan(st[i], &q, xor_cb, &recomputed,
		                          NULL) == LWW_OK);
		FUZZ_CHECK(lww_store_digest(st[i], 0, 0, &ra) == LWW_OK);
		FUZZ_CHECK(memcmp(ra.h, recomputed.h, LWW_DIGEST_BYTES) == 0);
	}
	for (int i = 0; i < R; i++) {
		for (int j = i + 1; j < R; j++) {
			int same_content, same_root;
			dump(st[i], &a);
			dump(st[j], &b);
			FUZZ_CHECK(lww_store_digest(st[i], 0, 0, &ra) ==
			           LWW_OK);
			FUZZ_CHECK(lww_store_digest(st[j], 0, 0, &rb) ==
			           LWW_OK);
			same_content =
			    a.len == b.len &&
			    (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
			same_root = memcmp(ra.h, rb.h, LWW_DIGEST_BYTES) == 0;
			FUZZ_CHECK(same_content == same_root);
		}
	}
	lww_buf_fini(&a);
	lww_buf_fini(&b);
}

typedef struct copy_state {
	lww_txn *t;
} copy_state;

static int
copy_cb(const lww_entry *e, void *arg)
{
	copy_state *c = arg;
	FUZZ_CHECK(lww_txn_apply(c->t, e, NULL) == LWW_OK);
	return 0;
}

/* Copies every entry under digest node (level, index) from a to b. */
static void
repair(int a, int b, unsigned level, uint32_t index)
{
	copy_state c;
	FUZZ_CHECK(lww_store_begin(st[b], &c.t) == LWW_OK);
	FUZZ_CHECK(lww_store_scan_bucket(st[a], level, index, copy_cb, &c) ==
	           LWW_OK);
	FUZZ_CHECK(lww_txn_commit(c.t) == LWW_OK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static fz_write w[WRITES_MAX];
	const fz_write *model[256];
	lww_buf a = LWW_BUF_INIT, b = LWW_BUF_INIT, m = LWW_BUF_INIT;
	size_t nw = 0, off = 0;

	if (st[0] == NULL) {
		init();
	}
	for (int i = 0; i < R; i++) {
		FUZZ_CHECK(lww_store_clear(st[i]) == LWW_OK);
	}
	while (off + 4 <= size) {
		const uint8_t *p = data + off;
		off += 4;
		switch (p[0] % 4) {
		case 0: { /* a local write on replica p[1] % R */
			fz_write *x;
			if (nw == WRITES_MAX) {
				break;
			}
			x = &w[nw++];
			/* Keys k0..k15 (two bytes) and a few long-ish values. */
			x->key[0] = 'k';
			x->key[1] = (uint8_t) ('a' + (p[2] & 15));
			x->val[0] = x->val[1] = x->val[2] = p[3];
			x->e = (lww_entry){x->key,
			                   2,
			                   x->val,
			                   (size_t) (p[2] >> 6),
			                   1 + (p[1] >> 2) % 4,
			                   1 + (p[1] >> 4) % 3,
			                   0};
			if (p[2] & 0x20) {
				x->e.flags = LWW_ENTRY_TOMBSTONE;
				x->e.val = NULL;
				x->e.vlen = 0;
			}
			FUZZ_CHECK(lww_store_apply(st[p[1] % R], &x->e, 1,
			                           NULL) == LWW_OK);
			break;
		}
		case 1: /* deliver write p[1] to replica p[2] % R */
			if (nw > 0) {
				FUZZ_CHECK(lww_store_apply(st[p[2] % R],
				                           &w[p[1] % nw].e, 1,
				                           NULL) == LWW_OK);
			}
			break;
		case 2: { /* a partial repair under one digest node */
			unsigned level = p[3] % 3;
			uint32_t index =
			    level == 0 ? 0 : p[1] % (1u << (4 * level));
			repair(p[2] % R, (p[2] / R) % R, level, index);
			break;
		}
		case 3:
			check_pairs();
			break;
		}
	}
	/* Full exchange: everyone gets everything. */
	for (int i = 0; i < R; i++) {
		for (int j = 0; j < R; j++) {
			if (i != j) {
				repair(i, j, 0, 0);
			}
		}
	}
	check_pairs();
	/* The model: per key the greatest write. */
	memset(model, 0, sizeof(model));
	for (size_t i = 0; i < nw; i++) {
		const fz_write *x = &w[i];
		if (model[x->key[1]] == NULL ||
		    ref_order_wins(&x->e, &model[x->key[1]]->e)) {
			model[x->key[1]] = x;
		}
	}
	for (int k = 0; k < 256; k++) {
		if (model[k] != NULL) {
			FUZZ_CHECK(lww_entry_encode(&m, &model[k]->e) ==
			           LWW_OK);
		}
	}
	dump(st[0], &a);
	FUZZ_CHECK(a.len == m.len && (m.len == 0 || !memcmp(a.p, m.p, m.len)));
	for (int i = 1; i < R; i++) {
		dump(st[i], &b);
		FUZZ_CHECK(a.len == b.len &&
		           (a.len == 0 || memcmp(a.p, b.p, a.len) == 0));
	}
	lww_buf_fini(&a);
	lww_buf_fini(&b);
	lww_buf_fini(&m);
	return 0;
}
