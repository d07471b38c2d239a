/* store_test.c - the LMDB store: merge keeps winners, scans are in byte
 * order (long keys too), state persists, failures change nothing, and the
 * incremental digest equals one computed from scratch. */
#include <lmdb.h>
#include <sodium.h>

#include "testutil.h"

#include "digest.h"
#include "err.h"
#include "limits.h"
#include "store.h"

static int
setup(void **state)
{
	(void) state;
	return sodium_init() < 0 ? -1 : 0;
}

static lww_entry
ent(const void *k, size_t kl, const char *v, uint64_t hlc, uint64_t node)
{
	lww_entry e = {k, kl, NULL, 0, hlc, node, 0};
	if (v == NULL) {
		e.flags = LWW_ENTRY_TOMBSTONE;
	} else {
		e.val = (const uint8_t *) v;
		e.vlen = strlen(v);
	}
	return e;
}

#define ENT(k, v, h, n) ent(k, strlen(k), v, h, n)

static void
expect_val(lww_store *s, const char *k, const char *v)
{
	lww_buf b = LWW_BUF_INIT;
	lww_entry e;

	assert_ok(lww_store_get(s, (const uint8_t *) k, strlen(k), &b, &e));
	if (v == NULL) {
		assert_true(lww_entry_is_tombstone(&e));
	} else {
		assert_false(lww_entry_is_tombstone(&e));
		assert_int_equal(e.vlen, strlen(v));
		assert_memory_equal(e.val, v, e.vlen);
	}
	lww_buf_fini(&b);
}

/* Summaries (bucket:u32 + 8 hash bytes, as 12 bytes) of every entry. */
typedef struct sums {
	uint8_t (*v)[12];
	size_t n, cap;
} sums;

static void
sums_add(sums *a, uint32_t bucket, const uint8_t *hash)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->v = realloc(a->v, a->cap * sizeof(*a->v));
		assert_non_null(a->v);
	}
	memcpy(a->v[a->n], &bucket, 4);
	memcpy(a->v[a->n] + 4, hash, LWW_STORE_SUMMARY_HASH);
	a->n++;
}

static int
sums_from_index(uint32_t bucket, const uint8_t *hash, void *arg)
{
	sums_add(arg, bucket, hash);
	return 0;
}

static int
sums_from_entry(const lww_entry *e, void *arg)
{
	lww_digest h;

	lww_digest_entry(e, &h);
	sums_add(arg, lww_digest_bucket(e->key, e->klen), h.h);
	return 0;
}

static int
cmp12(const void *a, const void *b)
{
	return memcmp(a, b, 12);
}

/* The bucket index's summaries are those of the stored entries: under
 * the root, and under each leaf that holds anything. */
static void
check_summaries(lww_store *s)
{
	sums idx = {0}, ent = {0}, leaf;
	lww_scan q = {.tombstones = 1};

	assert_ok(
	    lww_store_scan_summaries(s, 0, 0, sums_from_index, NULL, &idx));
	assert_ok(lww_store_scan(s, &q, sums_from_entry, &ent, NULL));
	assert_int_equal(idx.n, ent.n);
	qsort(idx.v, idx.n, 12, cmp12);
	qsort(ent.v, ent.n, 12, cmp12);
	if (idx.n > 0) {
		assert_memory_equal(idx.v, ent.v, idx.n * 12);
	}
	for (size_t i = 0; i < ent.n; i++) {
		uint32_t b;
		size_t in_leaf = 0;
		memcpy(&b, ent.v[i], 4);
		memset(&leaf, 0, sizeof(leaf));
		assert_ok(lww_store_scan_summaries(
		    s, LWW_DIGEST_STORED,
		    lww_digest_index(b, LWW_DIGEST_STORED), sums_from_index,
		    NULL, &leaf));
		for (size_t j = 0; j < leaf.n; j++) {
			in_leaf += memcmp(leaf.v[j], ent.v[i], 12) == 0;
		}
		assert_int_equal(in_leaf, 1);
		free(leaf.v);
	}
	free(idx.v);
	free(ent.v);
}

static void
test_apply_keeps_winner(void **state)
{
	char *dir = tu_tmpdir();
	lww_store *s;
	lww_buf b = LWW_BUF_INIT;
	lww_entry e, x;
	size_t won;
	int w;
	lww_txn *t;
	(void) state;

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_err(lww_store_get(s, (const uint8_t *) "a", 1, &b, &e),
	           LWW_ENOTFOUND);
	e = ENT("a", "one", 10, 1);
	assert_ok(lww_store_apply(s, &e, 1, &won));
	assert_int_equal(won, 1);
	expect_val(s, "a", "one");
	e = ENT("a", "older", 9, 5);
	assert_ok(lww_store_apply(s, &e, 1, &won));
	assert_int_equal(won, 0);
	expect_val(s, "a", "one");
	e = ENT("a", "one", 10, 1); /* duplicate */
	assert_ok(lww_store_apply(s, &e, 1, &won));
	assert_int_equal(won, 0);
	e = ENT("a", NULL, 10, 1); /* same stamp: tombstone wins */
	assert_ok(lww_store_apply(s, &e, 1, &won));
	assert_int_equal(won, 1);
	expect_val(s, "a", NULL);
	e = ENT("a", "back", 11, 1);
	assert_ok(lww_store_apply(s, &e, 1, &won));
	expect_val(s, "a", "back");
	/* An invalid entry is refused and the transaction stays usable. */
	assert_ok(lww_store_begin(s, &t));
	x = ent("k", 0, "v", 1, 1);
	assert_err(lww_txn_apply(t, &x, &w), LWW_EKEYSIZE);
	x = ENT("b", "bee", 12, 1);
	assert_ok(lww_txn_apply(t, &x, &w));
	assert_ok(lww_txn_commit(t));
	expect_val(s, "b", "bee");
	/* An aborted transaction leaves nothing. */
	assert_ok(lww_store_begin(s, &t));
	x = ENT("c", "sea", 13, 1);
	assert_ok(lww_txn_apply(t, &x, &w));
	lww_txn_abort(t);
	assert_err(lww_store_get(s, (const uint8_t *) "c", 1, &b, &e),
	           LWW_ENOTFOUND);
	{
		lww_store_stats st;
		assert_ok(lww_store_stats_get(s, &st));
		assert_int_equal(st.entries, 2);
		assert_int_equal(st.tombstones, 0);
		assert_true(st.bytes > 0 && st.map_size >= st.bytes);
	}
	/* Clear empties everything, and the store stays usable. */
	assert_ok(lww_store_clear(s));
	assert_err(lww_store_get(s, (const uint8_t *) "b", 1, &b, &e),
	           LWW_ENOTFOUND);
	{
		lww_store_stats st;
		lww_digest root;
		assert_ok(lww_store_stats_get(s, &st));
		assert_int_equal(st.entries, 0);
		assert_ok(lww_store_digest(s, 0, 0, &root));
		assert_true(lww_digest_is_zero(&root));
	}
	e = ENT("a", "again", 1, 1);
	assert_ok(lww_store_apply(s, &e, 1, &won));
	assert_int_equal(won, 1);
	lww_buf_fini(&b);
	lww_store_close(s);
	tu_rmdir(dir);
}

typedef struct collect {
	char keys[64][1100];
	size_t klen[64];
	size_t n;
} collect;

static int
collect_cb(const lww_entry *e, void *arg)
{
	collect *c = arg;
	assert_true(c->n < 64);
	memcpy(c->keys[c->n], e->key, e->klen);
	c->klen[c->n] = e->klen;
	c->n++;
	return 0;
}

/* The held mark: 0 for a new store (and one written before it existed),
 * written only by the commit that lowers the clock mark, kept across a
 * close and open and by commits that do not lower the mark, dropped with
 * an aborted transaction. */
static void
test_held_mark_persists(void **state)
{
	char *dir = tu_tmpdir();
	lww_store *s;
	lww_entry fut = ENT("k", "v", 9000, 7), e = ENT("x", "v", 20, 9);
	lww_txn *t;
	uint64_t v = 1;
	(void) state;

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_ok(lww_store_held(s, &v));
	assert_int_equal(v, 0);
	assert_ok(lww_store_apply(s, &fut, 1, NULL));
	assert_ok(lww_store_held(s, &v));
	assert_int_equal(v, 0);
	assert_ok(lww_store_begin(s, &t));
	lww_txn_reset_hlc(t, 50, 9000);
	assert_ok(lww_txn_commit(t));
	lww_store_close(s);

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_ok(lww_store_held(s, &v));
	assert_int_equal(v, 9000);
	assert_ok(lww_store_hlc(s, &v));
	assert_int_equal(v, 50);
	assert_ok(lww_store_apply(s, &e, 1, NULL));
	assert_ok(lww_store_held(s, &v));
	assert_int_equal(v, 9000);
	assert_ok(lww_store_begin(s, &t));
	lww_txn_reset_hlc(t, 60, 0);
	lww_txn_abort(t);
	lww_store_close(s);

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_ok(lww_store_held(s, &v));
	assert_int_equal(v, 9000);
	assert_ok(lww_store_begin(s, &t));
	lww_txn_reset_hlc(t, 60, 0);
	assert_ok(lww_txn_commit(t));
	assert_ok(lww_store_held(s, &v));
	assert_int_equal(v, 0);
	assert_ok(lww_store_begin(s, &t));
	lww_txn_reset_hlc(t, 60, 70);
	assert_ok(lww_txn_commit(t));
	assert_ok(lww_store_clear(s));
	assert_ok(lww_store_held(s, &v));
	assert_int_equal(v, 0);
	lww_store_close(s);
	tu_rmdir(dir);
}

/* A node re-issuing its own future-stamped write at a lower stamp:
 * replace beats the order only for that exact write, the digest equals a
 * store that only ever held the new write, and the clock mark lowers. */
static void
test_replace_and_reset_hlc(void **state)
{
	char *dir = tu_tmpdir(), *dir2 = tu_tmpdir();
	lww_store *s, *s2;
	lww_entry fut = ENT("k", "v", 5000, 7), now = ENT("k", "v", 100, 7);
	lww_entry other = ENT("k", "w", 6000, 9), bad = ENT("x", "v", 1, 7);
	lww_digest a, b;
	lww_txn *t;
	uint64_t hlc;
	int done = -1;
	(void) state;

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_ok(lww_store_open(dir2, NULL, &s2));
	assert_ok(lww_store_apply(s, &fut, 1, NULL));
	assert_ok(lww_store_apply(s2, &now, 1, NULL));
	assert_ok(lww_store_begin(s, &t));
	assert_err(lww_txn_replace(t, &bad, &fut, &done), LWW_EINVAL);
	assert_ok(lww_txn_replace(t, &now, &fut, &done));
	assert_int_equal(done, 1);
	lww_txn_reset_hlc(t, 50, 0);
	assert_ok(lww_txn_commit(t));
	expect_val(s, "k", "v");
	assert_ok(lww_store_hlc(s, &hlc));
	assert_int_equal(hlc, 100); /* the stamp applied, not lower */
	for (unsigned level = 0; level <= LWW_DIGEST_STORED; level++) {
		assert_ok(lww_store_digest(s, level, 0, &a));
		assert_ok(lww_store_digest(s2, level, 0, &b));
		assert_memory_equal(a.h, b.h, sizeof(a.h));
	}
	/* Once the key holds another write, replace merges as usual. */
	assert_ok(lww_store_apply(s, &other, 1, NULL));
	assert_ok(lww_store_begin(s, &t));
	assert_ok(lww_txn_replace(t, &now, &fut, &done));
	assert_int_equal(done, 0);
	assert_ok(lww_txn_commit(t));
	expect_val(s, "k", "w");
	assert_ok(lww_store_hlc(s, &hlc));
	assert_int_equal(hlc, 6000);
	lww_store_close(s);
	lww_store_close(s2);
	tu_rmdir(dir);
	tu_rmdir(dir2);
}

static void
test_scan_prefix_continuation_limit(void **state)
{
	char *dir = tu_tmpdir();
	const char *ks[] = {"b", "a/2", "a/1", "a", "a/10", "c", "a/3"};
	lww_store *s;
	lww_scan q = {0};
	collect c;
	char last[16];
	int more;
	(void) state;

	assert_ok(lww_store_open(dir, NULL, &s));
	for (size_t i = 0; i < 7; i++) {
		lww_entry e = ENT(ks[i], "v", 1, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	{
		lww_entry e = ENT("a/3", NULL, 2, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	memset(&c, 0, sizeof(c));
	assert_ok(lww_store_scan(s, &q, collect_cb, &c, &more));
	assert_int_equal(c.n, 6); /* a/3 is removed */
	assert_false(more);
	assert_memory_equal(c.keys[0], "a", 1);
	assert_memory_equal(c.keys[1], "a/1", 3);
	assert_memory_equal(c.keys[2], "a/10", 4);
	assert_memory_equal(c.keys[3], "a/2", 3);
	assert_memory_equal(c.keys[4], "b", 1);

	memset(&c, 0, sizeof(c));
	q.prefix = (const uint8_t *) "a/";
	q.plen = 2;
	q.limit = 2;
	assert_ok(lww_store_scan(s, &q, collect_cb, &c, &more));
	assert_int_equal(c.n, 2);
	assert_true(more);
	memcpy(last, c.keys[1], c.klen[1]);
	q.after = (const uint8_t *) last;
	q.alen = c.klen[1];
	memset(&c, 0, sizeof(c));
	assert_ok(lww_store_scan(s, &q, collect_cb, &c, &more));
	assert_int_equal(c.n, 1);
	assert_memory_equal(c.keys[0], "a/2", 3);
	assert_false(more);

	q.after = NULL;
	q.alen = 0;
	q.limit = 0;
	q.tombstones = 1;
	memset(&c, 0, sizeof(c));
	assert_ok(lww_store_scan(s, &q, collect_cb, &c, &more));
	assert_int_equal(c.n, 4);
	assert_memory_equal(c.keys[3], "a/3", 3);
	lww_store_close(s);
	tu_rmdir(dir);
}

static void
test_long_keys_in_byte_order(void **state)
{
	char *dir = tu_tmpdir();
	static uint8_t keys[20][LWW_KEY_MAX];
	size_t lens[20];
	lww_store *s;
	lww_scan q = {0};
	collect c;
	uint64_t seed = 99;
	int more;
	(void) state;

	/* Keys sharing a 600-byte prefix, longer than LMDB's key limit. */
	assert_ok(lww_store_open(dir, NULL, &s));
	for (int i = 0; i < 20; i++) {
		memset(keys[i], 'p', 600);
		lens[i] = 601 + tu_below(&seed, LWW_KEY_MAX - 601);
		for (size_t j = 600; j < lens[i]; j++) {
			keys[i][j] = (uint8_t) ('a' + tu_below(&seed, 3));
		}
		lww_entry e = ent(keys[i], lens[i], "v", 1, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	/* A short key and one at exactly the inline limit. */
	{
		static uint8_t k480[LWW_STORE_INLINE_KEY];
		memset(k480, 'p', sizeof(k480));
		lww_entry e = ent(k480, sizeof(k480), "v", 1, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
		e = ent("p", 1, "v", 1, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	memset(&c, 0, sizeof(c));
	assert_ok(lww_store_scan(s, &q, collect_cb, &c, &more));
	assert_int_equal(c.n, 22);
	for (size_t i = 1; i < c.n; i++) {
		size_t m =
		    c.klen[i] < c.klen[i - 1] ? c.klen[i] : c.klen[i - 1];
		int cmp = memcmp(c.keys[i - 1], c.keys[i], m);
		assert_true(cmp < 0 || (cmp == 0 && c.klen[i - 1] < c.klen[i]));
	}
	/* Each long key reads back exactly. */
	for (int i = 0; i < 20; i++) {
		lww_buf b = LWW_BUF_INIT;
		lww_entry e;
		assert_ok(lww_store_get(s, keys[i], lens[i], &b, &e));
		lww_buf_fini(&b);
	}
	/* Paging through the run with limit 3 gives the same order. */
	{
		collect all = c;
		size_t got = 0;
		q.limit = 3;
		do {
			memset(&c, 0, sizeof(c));
			assert_ok(lww_store_scan(s, &q, collect_cb, &c, &more));
			for (size_t i = 0; i < c.n; i++, got++) {
				assert_int_equal(c.klen[i], all.klen[got]);
				assert_memory_equal(c.keys[i], all.keys[got],
				                    c.klen[i]);
			}
			q.after = (const uint8_t *) all.keys[got - 1];
			q.alen = all.klen[got - 1];
		} while (more);
		assert_int_equal(got, 22);
	}
	/* A prefix longer than the inline part. */
	memset(&c, 0, sizeof(c));
	q.after = NULL;
	q.alen = 0;
	q.limit = 0;
	q.prefix = keys[0];
	q.plen = 601;
	assert_ok(lww_store_scan(s, &q, collect_cb, &c, &more));
	assert_true(c.n >= 1);
	for (size_t i = 0; i < c.n; i++) {
		assert_memory_equal(c.keys[i], keys[0], 601);
	}
	check_summaries(s);
	lww_store_close(s);
	tu_rmdir(dir);
}

static void
test_persistence(void **state)
{
	char *dir = tu_tmpdir();
	lww_store *s;
	lww_txn *t;
	uint64_t v;
	lww_entry e = ENT("k", "v", 500, 9);
	(void) state;

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_ok(lww_store_hlc(s, &v));
	assert_int_equal(v, 0);
	assert_ok(lww_store_begin(s, &t));
	assert_ok(lww_txn_apply(t, &e, NULL));
	assert_ok(lww_txn_set_seq(t, 9, 77));
	assert_ok(lww_txn_set_seq(t, 9, 70)); /* never lowered */
	lww_txn_note_hlc(t, 400);
	assert_ok(lww_txn_commit(t));
	lww_store_close(s);

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_ok(lww_store_hlc(s, &v));
	assert_int_equal(v, 500);
	assert_ok(lww_store_seq(s, 9, &v));
	assert_int_equal(v, 77);
	assert_ok(lww_store_seq(s, 10, &v));
	assert_int_equal(v, 0);
	expect_val(s, "k", "v");
	assert_ok(lww_store_begin(s, &t));
	lww_txn_note_hlc(t, 900);
	assert_ok(lww_txn_commit(t));
	assert_ok(lww_store_hlc(s, &v));
	assert_int_equal(v, 900);
	lww_store_close(s);
	tu_rmdir(dir);
}

static void
test_deferred_meta_commits_and_syncs(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.defer_meta = 1};
	lww_store *s;
	(void) state;

	assert_ok(lww_store_open(dir, &o, &s));
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		lww_entry e = ENT(k, "v", (uint64_t) i + 1, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	assert_ok(lww_store_sync(s));
	lww_store_close(s);
	/* Reopened with full sync, every commit is there. */
	assert_ok(lww_store_open(dir, NULL, &s));
	expect_val(s, "k0", "v");
	expect_val(s, "k19", "v");
	lww_store_close(s);
	tu_rmdir(dir);
}

static void
test_full_store_changes_nothing(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.map_size = 256 * 1024, .nosync = 1};
	static char val[60000];
	lww_store *s;
	lww_digest root_before, root_after;
	lww_store_stats st_before, st_after;
	lww_entry batch[8];
	char keys[8][16];
	int i, full = 0;
	(void) state;

	memset(val, 'x', sizeof(val) - 1);
	assert_ok(lww_store_open(dir, &o, &s));
	for (i = 0; i < 100 && !full; i++) {
		lww_err rv;
		snprintf(keys[0], 16, "k%d", i);
		batch[0] = ENT(keys[0], val, (uint64_t) i + 1, 1);
		rv = lww_store_apply(s, batch, 1, NULL);
		if (rv == LWW_EFULL) {
			full = 1;
		} else {
			assert_ok(rv);
		}
	}
	assert_true(full);
	assert_ok(lww_store_digest(s, 0, 0, &root_before));
	assert_ok(lww_store_stats_get(s, &st_before));
	/* A batch that cannot fit: none of it is stored. */
	for (int j = 0; j < 8; j++) {
		snprintf(keys[j], 16, "new%d", j);
		batch[j] = ENT(keys[j], val, 1000, 1);
	}
	batch[0].val = (const uint8_t *) "small";
	batch[0].vlen = 5;
	assert_err(lww_store_apply(s, batch, 8, NULL), LWW_EFULL);
	{
		lww_buf b = LWW_BUF_INIT;
		lww_entry e;
		assert_err(
		    lww_store_get(s, (const uint8_t *) "new0", 4, &b, &e),
		    LWW_ENOTFOUND);
		lww_buf_fini(&b);
	}
	assert_ok(lww_store_digest(s, 0, 0, &root_after));
	assert_memory_equal(root_before.h, root_after.h, LWW_DIGEST_BYTES);
	assert_ok(lww_store_stats_get(s, &st_after));
	assert_int_equal(st_before.entries, st_after.entries);
	/* Everything stored before still reads back. */
	for (int j = 0; j < i - 1; j++) {
		char k[16];
		snprintf(k, 16, "k%d", j);
		expect_val(s, k, val);
	}
	lww_store_close(s);
	tu_rmdir(dir);
}

/* Recomputes the stored digest levels from a full scan and compares every
 * node with what the store kept incrementally. */
typedef struct recompute {
	lww_digest (*lvl)[1 << 16];
	size_t n;
} recompute;

static int
recompute_cb(const lww_entry *e, void *arg)
{
	recompute *r = arg;
	uint32_t b = lww_digest_bucket(e->key, e->klen);
	lww_digest h;

	lww_digest_entry(e, &h);
	for (unsigned l = 0; l <= LWW_DIGEST_STORED; l++) {
		lww_digest_xor(&r->lvl[l][lww_digest_index(b, l)], &h);
	}
	r->n++;
	return 0;
}

static void
check_digest(lww_store *s)
{
	recompute r = {calloc(LWW_DIGEST_STORED + 1, sizeof(*r.lvl)), 0};
	lww_scan q = {.tombstones = 1};
	lww_digest kids[LWW_DIGEST_FANOUT], root;

	assert_non_null(r.lvl);
	assert_ok(lww_store_scan(s, &q, recompute_cb, &r, NULL));
	assert_ok(lww_store_digest(s, 0, 0, &root));
	assert_memory_equal(root.h, r.lvl[0][0].h, LWW_DIGEST_BYTES);
	for (unsigned l = 0; l < LWW_DIGEST_STORED; l++) {
		for (uint32_t i = 0; i < (1u << (4 * l)); i++) {
			assert_ok(lww_store_digest_children(s, l, i, kids));
			for (uint32_t c = 0; c < 16; c++) {
				assert_memory_equal(
				    kids[c].h, r.lvl[l + 1][(i << 4) | c].h,
				    LWW_DIGEST_BYTES);
			}
		}
	}
	free(r.lvl);
}

static void
test_digest_incremental_equals_recomputed(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_store *s;
	uint64_t seed = 4242;
	(void) state;

	assert_ok(lww_store_open(dir, &o, &s));
	check_digest(s); /* empty: all zero */
	for (int round = 0; round < 20; round++) {
		lww_txn *t;
		assert_ok(lww_store_begin(s, &t));
		for (int i = 0; i < 50; i++) {
			char k[16], v[16];
			snprintf(k, 16, "key%u",
			         (unsigned) tu_below(&seed, 300));
			snprintf(v, 16, "v%u", (unsigned) tu_below(&seed, 5));
			lww_entry e = ENT(k, tu_below(&seed, 4) ? v : NULL,
			                  1 + tu_below(&seed, 40),
			                  1 + tu_below(&seed, 3));
			assert_ok(lww_txn_apply(t, &e, NULL));
		}
		assert_ok(lww_txn_commit(t));
		check_summaries(s);
	}
	check_digest(s);
	lww_store_close(s);
	tu_rmdir(dir);
}

static void
test_digest_finds_the_difference(void **state)
{
	char *d1 = tu_tmpdir(), *d2 = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_store *a, *b;
	lww_digest ha, hb, ka[16], kb[16];
	uint32_t index = 0;
	unsigned level;
	collect c;
	(void) state;

	assert_ok(lww_store_open(d1, &o, &a));
	assert_ok(lww_store_open(d2, &o, &b));
	for (int i = 0; i < 200; i++) {
		char k[16];
		snprintf(k, 16, "key%d", i);
		lww_entry e = ENT(k, "v", 5, 1);
		assert_ok(lww_store_apply(a, &e, 1, NULL));
		assert_ok(lww_store_apply(b, &e, 1, NULL));
	}
	assert_ok(lww_store_digest(a, 0, 0, &ha));
	assert_ok(lww_store_digest(b, 0, 0, &hb));
	assert_memory_equal(ha.h, hb.h, LWW_DIGEST_BYTES);
	{
		lww_entry e = ENT("key77", "changed", 6, 1);
		assert_ok(lww_store_apply(b, &e, 1, NULL));
	}
	assert_ok(lww_store_digest(b, 0, 0, &hb));
	assert_memory_not_equal(ha.h, hb.h, LWW_DIGEST_BYTES);
	/* Descend: exactly one child differs at each level, down to the
	 * single bucket of key77 (levels 5..8 are computed). */
	for (level = 0; level < LWW_DIGEST_LEVELS; level++) {
		int diff = -1;
		assert_ok(lww_store_digest_children(a, level, index, ka));
		assert_ok(lww_store_digest_children(b, level, index, kb));
		for (int i = 0; i < 16; i++) {
			if (memcmp(ka[i].h, kb[i].h, LWW_DIGEST_BYTES) != 0) {
				assert_int_equal(diff, -1);
				diff = i;
			}
		}
		assert_int_not_equal(diff, -1);
		index = (index << 4) | (uint32_t) diff;
	}
	assert_int_equal(index,
	                 lww_digest_bucket((const uint8_t *) "key77", 5));
	assert_ok(lww_store_digest(b, 8, index, &hb));
	assert_memory_equal(hb.h, kb[index & 15].h, LWW_DIGEST_BYTES);
	memset(&c, 0, sizeof(c));
	assert_ok(
	    lww_store_scan_bucket(b, 8, index, (lww_scan_fn) collect_cb, &c));
	assert_int_equal(c.n, 1);
	assert_memory_equal(c.keys[0], "key77", 5);
	/* Whole-tree bucket scan sees every key. */
	memset(&c, 0, sizeof(c));
	assert_ok(lww_store_scan_bucket(b, 4, index >> 16,
	                                (lww_scan_fn) collect_cb, &c));
	assert_true(c.n >= 1);
	/* Bad addresses are refused. */
	assert_err(lww_store_digest_children(a, 8, 0, ka), LWW_EINVAL);
	assert_err(lww_store_digest_children(a, 1, 16, ka), LWW_EINVAL);
	assert_err(lww_store_digest(a, 0, 1, &ha), LWW_EINVAL);
	assert_err(lww_store_digest(a, 9, 0, &ha), LWW_EINVAL);
	lww_store_close(a);
	lww_store_close(b);
	tu_rmdir(d1);
	tu_rmdir(d2);
}

typedef struct pick {
	uint8_t want[12];   /* the one summary to resolve */
	int calls, stop_at; /* stop_at > 0: stop on that call */
	size_t got;
	char key[16];
} pick;

static int
pick_want(uint32_t bucket, const uint8_t *hash, void *arg)
{
	pick *p = arg;
	uint8_t sum[12];

	memcpy(sum, &bucket, 4);
	memcpy(sum + 4, hash, LWW_STORE_SUMMARY_HASH);
	if (++p->calls == p->stop_at) {
		return -1;
	}
	return memcmp(sum, p->want, 12) == 0;
}

static int
pick_entry(const lww_entry *e, void *arg)
{
	pick *p = arg;

	p->got++;
	assert_true(e->klen < sizeof(p->key));
	memcpy(p->key, e->key, e->klen);
	p->key[e->klen] = 0;
	return 0;
}

static void
test_summary_walk_reads_only_wanted(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_store *s;
	sums all = {0};
	pick p;
	lww_digest h;
	(void) state;

	assert_ok(lww_store_open(dir, &o, &s));
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, 16, "key%d", i);
		lww_entry e = ENT(k, i % 7 ? "v" : NULL, 5, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	assert_ok(
	    lww_store_scan_summaries(s, 0, 0, sums_from_index, NULL, &all));
	assert_int_equal(all.n, 100);
	/* Only the entry whose summary is wanted is read, and it is key43. */
	memset(&p, 0, sizeof(p));
	{
		lww_entry e = ENT("key43", "v", 5, 1);
		uint32_t b = lww_digest_bucket((const uint8_t *) "key43", 5);
		lww_digest_entry(&e, &h);
		memcpy(p.want, &b, 4);
		memcpy(p.want + 4, h.h, LWW_STORE_SUMMARY_HASH);
	}
	assert_ok(lww_store_scan_summaries(s, 0, 0, pick_want, pick_entry, &p));
	assert_int_equal(p.calls, 100);
	assert_int_equal(p.got, 1);
	assert_string_equal(p.key, "key43");
	/* A negative answer stops the walk at once. */
	memset(&p, 0, sizeof(p));
	p.stop_at = 3;
	assert_ok(lww_store_scan_summaries(s, 0, 0, pick_want, pick_entry, &p));
	assert_int_equal(p.calls, 3);
	assert_int_equal(p.got, 0);
	assert_err(lww_store_scan_summaries(s, 0, 0, NULL, pick_entry, &p),
	           LWW_EINVAL);
	assert_err(lww_store_scan_summaries(s, 9, 0, pick_want, NULL, &p),
	           LWW_EINVAL);
	free(all.v);
	lww_store_close(s);
	tu_rmdir(dir);
}

/* The store's LMDB environment opened directly, for tests that play
 * the disk's part (old formats, bit rot). */
typedef struct raw {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi kv, idx, tree, meta;
} raw;

static void
raw_open(raw *r, const char *dir)
{
	assert_int_equal(mdb_env_create(&r->env), 0);
	assert_int_equal(mdb_env_set_maxdbs(r->env, 4), 0);
	assert_int_equal(mdb_env_open(r->env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
	assert_int_equal(mdb_dbi_open(r->txn, "kv", 0, &r->kv), 0);
	assert_int_equal(mdb_dbi_open(r->txn, "idx", 0, &r->idx), 0);
	assert_int_equal(mdb_dbi_open(r->txn, "tree", 0, &r->tree), 0);
	assert_int_equal(mdb_dbi_open(r->txn, "meta", 0, &r->meta), 0);
}

static void
raw_close(raw *r)
{
	assert_int_equal(mdb_txn_commit(r->txn), 0);
	mdb_env_close(r->env);
}

/* Every record of db, copied: keys and data. */
typedef struct rawrecs {
	MDB_val k[70], d[70];
	size_t n;
} rawrecs;

static void
raw_all(raw *r, MDB_dbi dbi, rawrecs *out)
{
	MDB_cursor *cur;
	MDB_val k, d;

	out->n = 0;
	assert_int_equal(mdb_cursor_open(r->txn, dbi, &cur), 0);
	while (mdb_cursor_get(cur, &k, &d, out->n ? MDB_NEXT : MDB_FIRST) ==
	       0) {
		assert_true(out->n < 70);
		out->k[out->n].mv_size = k.mv_size;
		out->k[out->n].mv_data = malloc(k.mv_size);
		out->d[out->n].mv_size = d.mv_size;
		out->d[out->n].mv_data = malloc(d.mv_size + 1);
		memcpy(out->k[out->n].mv_data, k.mv_data, k.mv_size);
		memcpy(out->d[out->n].mv_data, d.mv_data, d.mv_size);
		out->n++;
	}
	mdb_cursor_close(cur);
}

static void
rawrecs_free(rawrecs *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->k[i].mv_data);
		free(a->d[i].mv_data);
	}
	a->n = 0;
}

static uint64_t
store_format(const char *dir)
{
	raw r;
	MDB_val fk = {6, (void *) "format"}, d;
	uint64_t v;

	raw_open(&r, dir);
	assert_int_equal(mdb_get(r.txn, r.meta, &fk, &d), 0);
	assert_int_equal(d.mv_size, 8);
	v = lww_get_u64le(d.mv_data);
	raw_close(&r);
	return v;
}

/* Formats 1 and 2 stored records without a check (version 1), and format
 * 1 kept no summaries in the bucket index: opening such a store rewrites
 * every record with its check and fills the summaries in, once, and the
 * store says format 3 from then on. */
static void
old_format_is_upgraded(int fmt)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_store *s;
	raw r;
	rawrecs kv, idx;
	MDB_val fk = {6, (void *) "format"}, d;
	uint8_t fmtv[8] = {(uint8_t) fmt}, *big = malloc(700);

	assert_non_null(big);
	memset(big, 'L', 700); /* a key stored under its hash */
	assert_ok(lww_store_open(dir, &o, &s));
	for (int i = 0; i < 60; i++) {
		char k2[16];
		snprintf(k2, 16, "key%d", i);
		lww_entry e = ENT(k2, i % 5 ? "value" : NULL, 7, 2);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	{
		lww_entry e = ent(big, 700, "long", 9, 3);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	lww_store_close(s);

	/* Make it what that format wrote: version 1 records (no check:
	 * bytes 18..25 go) and, for format 1, empty index values. */
	raw_open(&r, dir);
	raw_all(&r, r.kv, &kv);
	assert_int_equal(kv.n, 61);
	for (size_t i = 0; i < kv.n; i++) {
		uint8_t *p = kv.d[i].mv_data;
		MDB_val v1 = {kv.d[i].mv_size - 8, p};
		assert_int_equal(p[0], 2);
		p[0] = 1;
		memmove(p + 18, p + 26, kv.d[i].mv_size - 26);
		assert_int_equal(mdb_put(r.txn, r.kv, &kv.k[i], &v1, 0), 0);
	}
	raw_all(&r, r.idx, &idx);
	assert_int_equal(idx.n, 61);
	for (size_t i = 0; fmt == 1 && i < idx.n; i++) {
		MDB_val empty = {0, NULL};
		assert_int_equal(idx.d[i].mv_size, LWW_STORE_SUMMARY_HASH);
		assert_int_equal(mdb_put(r.txn, r.idx, &idx.k[i], &empty, 0),
		                 0);
	}
	d = (MDB_val){8, fmtv};
	assert_int_equal(mdb_put(r.txn, r.meta, &fk, &d, 0), 0);
	raw_close(&r);
	rawrecs_free(&kv);
	rawrecs_free(&idx);

	assert_ok(lww_store_open(dir, &o, &s));
	check_summaries(s);
	check_digest(s);
	expect_val(s, "key1", "value");
	expect_val(s, "key5", NULL);
	{
		lww_buf b = LWW_BUF_INIT;
		lww_entry e;
		assert_ok(lww_store_get(s, big, 700, &b, &e));
		assert_int_equal(e.vlen, 4);
		lww_buf_fini(&b);
	}
	lww_store_close(s);
	assert_int_equal(store_format(dir), 3);
	free(big);
	tu_rmdir(dir);
}

static void
test_old_formats_are_upgraded(void **state)
{
	(void) state;
	old_format_is_upgraded(1);
	old_format_is_upgraded(2);
}

typedef struct damage {
	collect c;
	size_t damaged;
	uint8_t skey[LWW_STORE_KEY_MAX];
	size_t sklen;
} damage;

static void
damaged_cb(const uint8_t *skey, size_t n, void *arg)
{
	damage *g = arg;
	g->damaged++;
	memcpy(g->skey, skey, n);
	g->sklen = n;
}

static void
test_corrupt_record_is_reported(void **state)
{
	char *dir = tu_tmpdir();
	lww_store *s;
	lww_buf b = LWW_BUF_INIT;
	lww_entry e = ENT("good", "v", 1, 1), z = ENT("zed", "z", 1, 1),
	          y = ENT("a", "a", 1, 1), x;
	lww_scan q = {.damaged = damaged_cb};
	lww_store_check ck;
	damage g;
	raw r;
	MDB_val k = {3, "bad"}, d = {3, "\x07\x00\x01"};
	(void) state;

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_ok(lww_store_apply(s, &e, 1, NULL));
	assert_ok(lww_store_apply(s, &z, 1, NULL));
	assert_ok(lww_store_apply(s, &y, 1, NULL));
	lww_store_close(s);
	/* Write a garbage record behind the store's back. */
	raw_open(&r, dir);
	assert_int_equal(mdb_put(r.txn, r.kv, &k, &d, 0), 0);
	raw_close(&r);

	assert_ok(lww_store_open(dir, NULL, &s));
	assert_err(lww_store_get(s, (const uint8_t *) "bad", 3, &b, &x),
	           LWW_ECORRUPT);
	/* A scan skips it, names it, and returns the sound ones around. */
	memset(&g, 0, sizeof(g));
	assert_ok(lww_store_scan(s, &q, collect_cb, &g, NULL));
	assert_int_equal(g.c.n, 3);
	assert_int_equal(g.damaged, 1);
	assert_int_equal(g.sklen, 3);
	assert_memory_equal(g.skey, "bad", 3);
	/* A page that ends before it does not name it; the next does. */
	memset(&g, 0, sizeof(g));
	q.limit = 1;
	assert_ok(lww_store_scan(s, &q, collect_cb, &g, NULL));
	assert_int_equal(g.c.n, 1);
	assert_int_equal(g.damaged, 0);
	memset(&g, 0, sizeof(g));
	q.after = (const uint8_t *) "a";
	q.alen = 1;
	assert_ok(lww_store_scan(s, &q, collect_cb, &g, NULL));
	assert_int_equal(g.c.n, 1);
	assert_int_equal(g.damaged, 1);
	q = (lww_scan){.damaged = damaged_cb};
	/* Any write beats it, and the tree holds the sound state after. */
	x = ENT("bad", "new", 2, 1);
	assert_ok(lww_store_apply(s, &x, 1, NULL));
	expect_val(s, "bad", "new");
	check_digest(s);
	check_summaries(s);
	expect_val(s, "good", "v");
	/* Nothing left to find. */
	assert_ok(lww_store_check_leaf(
	    s,
	    lww_digest_index(lww_digest_bucket((const uint8_t *) "bad", 3),
	                     LWW_DIGEST_STORED),
	    &ck));
	assert_int_equal(ck.damaged + ck.index_fixed + ck.tree_fixed, 0);
	lww_buf_fini(&b);
	lww_store_close(s);
	tu_rmdir(dir);
}

/* The entries of the bit-rot tests: short and long keys, a tombstone, an
 * empty value. */
static uint8_t rot_long[700];

static size_t
rot_entries(lww_entry *out)
{
	memset(rot_long, 'L', sizeof(rot_long));
	out[0] = ENT("k1", "value one", 5, 7);
	out[1] = ENT("k2", NULL, 6, 7);
	out[2] = ENT("k3", "", 7, 8);
	out[3] = ent(rot_long, sizeof(rot_long), "long", 8, 9);
	return 4;
}

/* The store in dir holds exactly es except that es[skip] may be absent,
 * with a hash tree and index that agree with its records. */
static void
expect_sound(lww_store *s, const lww_entry *es, size_t n)
{
	lww_buf b = LWW_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		lww_entry e;
		lww_err rv = lww_store_get(s, es[i].key, es[i].klen, &b, &e);
		if (rv == LWW_ENOTFOUND) {
			continue;
		}
		assert_ok(rv);
		assert_int_equal(lww_entry_cmp(&e, &es[i]), 0);
	}
	lww_buf_fini(&b);
	check_digest(s);
	check_summaries(s);
}

/* A store in dir holding the bit-rot entries (closed again); *root (may
 * be NULL) gets its root hash. Returns how many entries. */
static size_t
rot_store(const char *dir, lww_entry *es, lww_digest *root)
{
	lww_store_opts o = {.nosync = 1};
	size_t n = rot_entries(es);
	lww_store *s;

	assert_ok(lww_store_open(dir, &o, &s));
	assert_ok(lww_store_apply(s, es, n, NULL));
	if (root != NULL) {
		assert_ok(lww_store_digest(s, 0, 0, root));
	}
	lww_store_close(s);
	return n;
}

/* Flips byte `at` of the record stored for e, behind the store's back. */
static void
rot_flip(const char *dir, const lww_entry *e, size_t at, uint8_t x)
{
	uint8_t sk[LWW_STORE_KEY_MAX];
	MDB_val k = {lww_store_key(e->key, e->klen, sk), sk}, d;
	uint8_t *copy;
	raw r;

	raw_open(&r, dir);
	assert_int_equal(mdb_get(r.txn, r.kv, &k, &d), 0);
	assert_true(at < d.mv_size);
	assert_non_null(copy = malloc(d.mv_size));
	memcpy(copy, d.mv_data, d.mv_size);
	copy[at] ^= x;
	d.mv_data = copy;
	assert_int_equal(mdb_put(r.txn, r.kv, &k, &d, 0), 0);
	raw_close(&r);
	free(copy);
}

/* Any single changed byte of a stored record, or of the key it is stored
 * under, is found by every way of reading it, never served, and healing
 * drops it and leaves a store whose tree matches its records. */
static void
test_every_changed_byte_is_found(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_entry es[4];
	size_t n = rot_entries(es), cases = 0;
	lww_store *s;
	lww_buf b = LWW_BUF_INIT;
	rawrecs kv;
	raw r;
	(void) state;

	lww_digest root, all;

	assert_ok(lww_store_open(dir, &o, &s));
	assert_ok(lww_store_apply(s, es, n, NULL));
	assert_ok(lww_store_digest(s, 0, 0, &all));
	lww_store_close(s);
	raw_open(&r, dir);
	raw_all(&r, r.kv, &kv);
	raw_close(&r);
	assert_int_equal(kv.n, n);

	for (size_t i = 0; i < kv.n; i++) {
		size_t klen = kv.k[i].mv_size, dlen = kv.d[i].mv_size;
		const lww_entry *orig = NULL;
		for (size_t j = 0; j < n; j++) {
			uint8_t sk[LWW_STORE_KEY_MAX];
			if (lww_store_key(es[j].key, es[j].klen, sk) == klen &&
			    memcmp(sk, kv.k[i].mv_data, klen) == 0) {
				orig = &es[j];
			}
		}
		assert_non_null(orig);
		/* Positions 0..klen-1 change the key, the rest the record. */
		for (size_t pos = 0; pos < klen + dlen; pos++) {
			uint8_t kb[LWW_STORE_KEY_MAX], *db = malloc(dlen + 1);
			MDB_val k2 = {klen, kb}, d2 = {dlen, db};
			lww_scan q = {.tombstones = 1, .damaged = damaged_cb};
			lww_store_check ck;
			lww_entry e;
			damage g;

			memcpy(kb, kv.k[i].mv_data, klen);
			memcpy(db, kv.d[i].mv_data, dlen);
			if (pos < klen) {
				kb[pos] ^= 0x5a;
			} else {
				db[pos - klen] ^= 0x5a;
			}
			raw_open(&r, dir);
			assert_int_equal(mdb_del(r.txn, r.kv, &kv.k[i], NULL),
			                 0);
			assert_int_equal(mdb_put(r.txn, r.kv, &k2, &d2, 0), 0);
			raw_close(&r);

			assert_ok(lww_store_open(dir, &o, &s));
			assert_err(
			    lww_store_get(s, orig->key, orig->klen, &b, &e),
			    LWW_ECORRUPT);
			memset(&g, 0, sizeof(g));
			assert_ok(lww_store_scan(s, &q, collect_cb, &g, NULL));
			assert_int_equal(g.damaged, 1);
			assert_int_equal(g.c.n, n - 1);
			/* Heal what the scan named, then what the lookup
			 * named: afterwards the key is simply missing, and
			 * the store is sound. */
			assert_ok(lww_store_heal(s, g.skey, g.sklen, &ck));
			{
				uint8_t sk[LWW_STORE_KEY_MAX];
				size_t sn =
				    lww_store_key(orig->key, orig->klen, sk);
				assert_ok(lww_store_heal(s, sk, sn, NULL));
			}
			if (orig->klen > LWW_STORE_INLINE_KEY) {
				/* A long key's lost index record is found by
				 * the leaf check. */
				assert_ok(lww_store_check_leaf(
				    s,
				    lww_digest_index(lww_digest_bucket(
				                         orig->key, orig->klen),
				                     LWW_DIGEST_STORED),
				    NULL));
			}
			assert_err(
			    lww_store_get(s, orig->key, orig->klen, &b, &e),
			    LWW_ENOTFOUND);
			/* The tree is the XOR of the entries: now all but
			 * this one (a full check every 64th case). */
			{
				lww_digest h;
				lww_digest_entry(orig, &h);
				lww_digest_xor(&h, &all);
				assert_ok(lww_store_digest(s, 0, 0, &root));
				assert_memory_equal(root.h, h.h,
				                    LWW_DIGEST_BYTES);
			}
			if (cases % 64 == 0) {
				expect_sound(s, es, n);
			}
			/* And the sound copy, from a peer, merges back in. */
			assert_ok(lww_store_apply(s, orig, 1, NULL));
			assert_ok(lww_store_digest(s, 0, 0, &root));
			assert_memory_equal(root.h, all.h, LWW_DIGEST_BYTES);
			if (cases % 64 == 0) {
				expect_sound(s, es, n);
			}
			lww_store_close(s);
			free(db);

			/* Back to the pristine record for the next case. */
			raw_open(&r, dir);
			(void) mdb_del(r.txn, r.kv, &k2, NULL);
			assert_int_equal(
			    mdb_put(r.txn, r.kv, &kv.k[i], &kv.d[i], 0), 0);
			raw_close(&r);
			cases++;
		}
	}
	assert_true(cases > 700);
	rawrecs_free(&kv);
	lww_buf_fini(&b);
	tu_rmdir(dir);
}

/* The checks that a scrub runs find damage nobody reads: a changed
 * record, a changed or lost index record, a changed tree leaf. */
static void
test_checks_find_and_fix_damage(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_entry es[4];
	size_t n = rot_entries(es), nlen;
	uint8_t next[LWW_STORE_KEY_MAX];
	lww_store_check ck, sum;
	lww_store *s;
	rawrecs kv, idx, tree;
	raw r;
	(void) state;

	assert_ok(lww_store_open(dir, &o, &s));
	assert_ok(lww_store_apply(s, es, n, NULL));
	/* A sound store: both checks find nothing and write nothing. */
	assert_ok(lww_store_check_keys(s, NULL, 0, 100, next, &nlen, &ck));
	assert_int_equal(ck.records, n);
	assert_int_equal(ck.damaged + ck.index_fixed + ck.tree_fixed, 0);
	assert_int_equal(nlen, 0);
	lww_store_close(s);

	raw_open(&r, dir);
	raw_all(&r, r.kv, &kv);
	raw_all(&r, r.idx, &idx);
	raw_all(&r, r.tree, &tree);
	/* A changed value byte in record 0, a changed index value for
	 * record 1, and a changed tree node (a leaf). */
	((uint8_t *) kv.d[0].mv_data)[kv.d[0].mv_size - 1] ^= 1;
	assert_int_equal(mdb_put(r.txn, r.kv, &kv.k[0], &kv.d[0], 0), 0);
	((uint8_t *) idx.d[1].mv_data)[0] ^= 1;
	assert_int_equal(mdb_put(r.txn, r.idx, &idx.k[1], &idx.d[1], 0), 0);
	for (size_t i = 0; i < tree.n; i++) {
		if (((uint8_t *) tree.k[i].mv_data)[0] == LWW_DIGEST_STORED) {
			((uint8_t *) tree.d[i].mv_data)[3] ^= 0x10;
			assert_int_equal(
			    mdb_put(r.txn, r.tree, &tree.k[i], &tree.d[i], 0),
			    0);
			break;
		}
	}
	raw_close(&r);

	assert_ok(lww_store_open(dir, &o, &s));
	memset(&sum, 0, sizeof(sum));
	nlen = 0;
	do { /* a pass in steps of one record */
		uint8_t after[LWW_STORE_KEY_MAX];
		size_t alen = nlen;
		memcpy(after, next, nlen);
		assert_ok(
		    lww_store_check_keys(s, after, alen, 1, next, &nlen, &ck));
		sum.damaged += ck.damaged;
		sum.index_fixed += ck.index_fixed;
	} while (nlen != 0);
	assert_int_equal(sum.damaged, 1);
	assert_int_equal(sum.index_fixed, 1);
	for (uint32_t l = 0; l < LWW_STORE_LEAVES; l++) {
		assert_ok(lww_store_check_leaf(s, l, &ck));
		sum.tree_fixed += ck.tree_fixed;
	}
	assert_true(sum.tree_fixed >= 1);
	expect_sound(s, es, n);
	/* A second pass finds nothing. */
	for (uint32_t l = 0; l < LWW_STORE_LEAVES; l++) {
		assert_ok(lww_store_check_leaf(s, l, &ck));
		assert_int_equal(ck.damaged + ck.index_fixed + ck.tree_fixed,
		                 0);
	}
	assert_err(lww_store_check_leaf(s, LWW_STORE_LEAVES, &ck), LWW_EINVAL);
	lww_store_close(s);
	rawrecs_free(&kv);
	rawrecs_free(&idx);
	rawrecs_free(&tree);
	tu_rmdir(dir);
}

/* Damage in a long key's own bytes: the record cannot name its leaf,
 * the key a lookup had can, and healing by it leaves a sound store. */
static void
test_heal_key_reaches_a_long_keys_leaf(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_entry es[4];
	size_t nlen;
	lww_store *s;
	lww_buf b = LWW_BUF_INIT;
	lww_entry e;
	lww_digest all, root;
	uint8_t sk[LWW_STORE_KEY_MAX], next[LWW_STORE_KEY_MAX];
	size_t sn;
	(void) state;

	(void) rot_store(dir, es, &all);
	sn = lww_store_key(es[3].key, es[3].klen, sk);
	rot_flip(dir, &es[3], 26 + 2 + 5, 0x5a); /* in the full key */
	assert_ok(lww_store_open(dir, &o, &s));
	assert_err(lww_store_get(s, es[3].key, es[3].klen, &b, &e),
	           LWW_ECORRUPT);
	/* What a scan reports (its stored key) cannot name the leaf; the
	 * key a lookup had can. */
	assert_ok(lww_store_heal(s, sk, sn, NULL));
	nlen = 0;
	do {
		uint8_t after[LWW_STORE_KEY_MAX];
		size_t alen = nlen;
		memcpy(after, next, nlen);
		assert_ok(
		    lww_store_check_keys(s, after, alen, 1, next, &nlen, NULL));
	} while (nlen != 0);
	assert_ok(lww_store_heal_key(s, es[3].key, es[3].klen, NULL));
	assert_err(lww_store_get(s, es[3].key, es[3].klen, &b, &e),
	           LWW_ENOTFOUND);
	assert_ok(lww_store_digest(s, 0, 0, &root));
	{
		lww_digest h;
		lww_digest_entry(&es[3], &h);
		lww_digest_xor(&h, &all);
		assert_memory_equal(root.h, h.h, LWW_DIGEST_BYTES);
	}
	check_digest(s);
	lww_store_close(s);
	lww_buf_fini(&b);
	tu_rmdir(dir);
}

/* A write over a damaged tombstone takes it out of the count. */
static void
test_damaged_tombstone_leaves_the_count(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_entry es[4];
	lww_store *s;
	lww_store_stats st;
	(void) state;

	(void) rot_store(dir, es, NULL);
	rot_flip(dir, &es[1], 3, 1); /* the tombstone k2's stamp */
	assert_ok(lww_store_open(dir, &o, &s));
	{
		lww_entry x = ENT("k2", "live", 100, 1);
		assert_ok(lww_store_apply(s, &x, 1, NULL));
	}
	assert_ok(lww_store_stats_get(s, &st));
	assert_int_equal(st.tombstones, 0);
	lww_store_close(s);
	tu_rmdir(dir);
}

/* A damaged (3-byte) index key inside a leaf: dropped, and the records
 * after it still count for the leaf. */
static void
test_short_index_key_inside_a_leaf(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_store *s;
	lww_store_check ck;
	raw r;
	char k[16];
	uint32_t bk = 0;
	int i;
	(void) state;

	assert_ok(lww_store_open(dir, &o, &s));
	for (i = 0;; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		bk = lww_digest_bucket((const uint8_t *) k, strlen(k));
		if (((bk >> 8) & 0xff) > 0) {
			break;
		}
	}
	{
		lww_entry e = ENT(k, "v", 1, 1), f = ENT("other", "w", 1, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
		assert_ok(lww_store_apply(s, &f, 1, NULL));
	}
	lww_store_close(s);
	raw_open(&r, dir);
	{
		uint8_t ik[3] = {(uint8_t) (bk >> 24), (uint8_t) (bk >> 16),
		                 (uint8_t) (bk >> 8)};
		uint8_t h[8] = {0};
		MDB_val kk = {3, ik}, dd = {8, h};
		assert_int_equal(mdb_put(r.txn, r.idx, &kk, &dd, 0), 0);
	}
	raw_close(&r);
	assert_ok(lww_store_open(dir, &o, &s));
	for (int pass = 0; pass < 2; pass++) {
		assert_ok(lww_store_check_leaf(
		    s, lww_digest_index(bk, LWW_DIGEST_STORED), &ck));
		assert_int_equal(ck.damaged, pass == 0 ? 1 : 0);
	}
	assert_int_equal(ck.tree_fixed, 0);
	check_digest(s);
	check_summaries(s);
	lww_store_close(s);
	tu_rmdir(dir);
}

/* A sound record indexed under a wrong bucket: the leaf check drops the
 * index record, and a later write to the key leaves a sound tree. */
static void
test_index_under_a_wrong_bucket_then_a_write(void **state)
{
	char *dir = tu_tmpdir();
	lww_store_opts o = {.nosync = 1};
	lww_store *s;
	lww_store_check ck;
	raw r;
	rawrecs idx;
	(void) state;

	assert_ok(lww_store_open(dir, &o, &s));
	{
		lww_entry e = ENT("kk", "v", 1, 1), f = ENT("other", "w", 1, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
		assert_ok(lww_store_apply(s, &f, 1, NULL));
	}
	lww_store_close(s);
	raw_open(&r, dir);
	raw_all(&r, r.idx, &idx);
	for (size_t i = 0; i < idx.n; i++) {
		uint8_t *p = idx.k[i].mv_data;
		if (idx.k[i].mv_size == 6 && memcmp(p + 4, "kk", 2) == 0) {
			assert_int_equal(mdb_del(r.txn, r.idx, &idx.k[i], NULL),
			                 0);
			p[3] ^= 1; /* same leaf, another bucket */
			assert_int_equal(
			    mdb_put(r.txn, r.idx, &idx.k[i], &idx.d[i], 0), 0);
		}
	}
	raw_close(&r);
	assert_ok(lww_store_open(dir, &o, &s));
	assert_ok(lww_store_check_leaf(
	    s,
	    lww_digest_index(lww_digest_bucket((const uint8_t *) "kk", 2),
	                     LWW_DIGEST_STORED),
	    &ck));
	assert_int_equal(ck.damaged, 1);
	{
		lww_entry e = ENT("kk", "v2", 2, 1);
		assert_ok(lww_store_apply(s, &e, 1, NULL));
	}
	check_digest(s);
	check_summaries(s);
	expect_val(s, "kk", "v2");
	lww_store_close(s);
	rawrecs_free(&idx);
	tu_rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_apply_keeps_winner),
	    cmocka_unit_test(test_replace_and_reset_hlc),
	    cmocka_unit_test(test_held_mark_persists),
	    cmocka_unit_test(test_scan_prefix_continuation_limit),
	    cmocka_unit_test(test_long_keys_in_byte_order),
	    cmocka_unit_test(test_persistence),
	    cmocka_unit_test(test_deferred_meta_commits_and_syncs),
	    cmocka_unit_test(test_full_store_changes_nothing),
	    cmocka_unit_test(test_digest_incremental_equals_recomputed),
	    cmocka_unit_test(test_digest_finds_the_difference),
	    cmocka_unit_test(test_summary_walk_reads_only_wanted),
	    cmocka_unit_test(test_old_formats_are_upgraded),
	    cmocka_unit_test(test_corrupt_record_is_reported),
	    cmocka_unit_test(test_every_changed_byte_is_found),
	    cmocka_unit_test(test_checks_find_and_fix_damage),
	    cmocka_unit_test(test_heal_key_reaches_a_long_keys_leaf),
	    cmocka_unit_test(test_damaged_tombstone_leaves_the_count),
	    cmocka_unit_test(test_short_index_key_inside_a_leaf),
	    cmocka_unit_test(test_index_under_a_wrong_bucket_then_a_write),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
