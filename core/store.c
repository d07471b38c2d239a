/*
 * store.c - the dictionary in LMDB. See store.h for the layout and the
 * contract. Only this file includes lmdb.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "limits.h"
#include "store.h"

/* 1: idx values empty. 2: idx values hold each entry's summary hash.
 * 3: every record carries a check. lww_store_open upgrades older formats
 * in place. */
#define STORE_FORMAT 3
/* Record version 1 (formats 1, 2): ver flags hlc node [klen key] value.
 * Version 2 adds check: the first REC_CHECK bytes of the entry's hash
 * (lww_digest_entry over key, flags, stamp and value), which the writer
 * computes anyway for the hash tree, so a check costs a write nothing. */
#define REC_VERSION_1 1
#define REC_VERSION   2
#define REC_CHECK     8
#define REC_HDR_1     (1 + 1 + 8 + 8)
#define REC_HDR       (REC_HDR_1 + REC_CHECK) /* ver flags hlc node check */
#define LKEY_HASH     16
#define LKEY_MAX      LWW_STORE_KEY_MAX
#define IDX_KEY_MAX   (4 + LKEY_MAX)

_Static_assert(LWW_STORE_KEY_MAX == LWW_STORE_INLINE_KEY + LKEY_HASH,
               "a stored key is an inline prefix and a hash");
_Static_assert(REC_CHECK == LWW_STORE_SUMMARY_HASH,
               "records and the bucket index keep the same hash bytes");

static const char META_FORMAT[] = "format";
static const char META_HLC[] = "hlc";
/* Absent (0) in stores older than it: no upgrade needed. */
static const char META_HELD[] = "held";
static const char META_TOMB[] = "tombstones";
#define META_SEQ_PREFIX 's'

struct lww_store {
	MDB_env *env;
	MDB_dbi kv;
	MDB_dbi idx;
	MDB_dbi tree;
	MDB_dbi meta;
};

struct lww_txn {
	lww_store *s;
	MDB_txn *txn;
	int failed;
	lww_digest_delta delta;
	int64_t dtomb;
	uint64_t hlc;
	lww_buf rec;
	/* Leaves whose stored hash a damaged record made unknown: they are
	 * recomputed from their records at commit. */
	uint32_t *redo;
	size_t nredo, capredo;
	/* lww_txn_replace: the write that e replaces whatever their order */
	const lww_entry *replacing;
	int hlc_reset; /* lww_txn_reset_hlc: commit sets the mark to hlc_to */
	uint64_t hlc_to;
	uint64_t held_to;
};

static lww_err
mdb_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return LWW_OK;
	case MDB_NOTFOUND:
		return LWW_ENOTFOUND;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
	case MDB_DBS_FULL:
		return LWW_EFULL;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_VALSIZE:
		return LWW_ECORRUPT;
	case MDB_READERS_FULL:
		return LWW_EBUSY;
	default:
		return lww_err_from_errno(rc); /* LMDB passes errno on */
	}
}

size_t
lww_store_key(const uint8_t *key, size_t klen, uint8_t out[LWW_STORE_KEY_MAX])
{
	if (klen <= LWW_STORE_INLINE_KEY) {
		memcpy(out, key, klen);
		return klen;
	}
	memcpy(out, key, LWW_STORE_INLINE_KEY);
	crypto_generichash(out + LWW_STORE_INLINE_KEY, LKEY_HASH, key, klen,
	                   NULL, 0);
	return LKEY_MAX;
}

/* Encodes e as a version 2 record; h is its entry hash. */
static lww_err
rec_encode(lww_buf *b, const lww_entry *e, const lww_digest *h)
{
	uint8_t hdr[REC_HDR];
	lww_err rv;

	lww_buf_reset(b);
	hdr[0] = REC_VERSION;
	hdr[1] = e->flags;
	lww_put_u64le(hdr + 2, e->hlc);
	lww_put_u64le(hdr + 10, e->node);
	memcpy(hdr + REC_HDR_1, h->h, REC_CHECK);
	if ((rv = lww_buf_put(b, hdr, sizeof(hdr))) != LWW_OK) {
		return rv;
	}
	if (e->klen > LWW_STORE_INLINE_KEY) {
		uint8_t kl[2] = {(uint8_t) e->klen, (uint8_t) (e->klen >> 8)};
		if ((rv = lww_buf_put(b, kl, 2)) != LWW_OK ||
		    (rv = lww_buf_put(b, e->key, e->klen)) != LWW_OK) {
			return rv;
		}
	}
	return lww_buf_put(b, e->val, e->vlen);
}

/* Splits a stored record of version `ver` into an entry that borrows from
 * k and d, without checking it against its hash. *check points at the
 * stored check (NULL for version 1). */
static lww_err
rec_parse(const MDB_val *k, const MDB_val *d, int ver, lww_entry *e,
          const uint8_t **check)
{
	const uint8_t *p = d->mv_data;
	size_t n = d->mv_size;
	size_t off = ver == REC_VERSION_1 ? REC_HDR_1 : REC_HDR;

	if (n < off || p[0] != ver || (p[1] & ~LWW_ENTRY_FLAGS_KNOWN) != 0) {
		return LWW_ECORRUPT;
	}
	e->flags = p[1];
	e->hlc = lww_get_u64le(p + 2);
	e->node = lww_get_u64le(p + 10);
	*check = ver == REC_VERSION_1 ? NULL : p + REC_HDR_1;
	if (k->mv_size > LWW_STORE_INLINE_KEY) {
		size_t klen;
		uint8_t lk[LKEY_MAX];
		if (k->mv_size != LKEY_MAX || n - off < 2) {
			return LWW_ECORRUPT;
		}
		klen = (size_t) p[off] | ((size_t) p[off + 1] << 8);
		off += 2;
		if (klen <= LWW_STORE_INLINE_KEY || klen > LWW_KEY_MAX ||
		    klen > n - off) {
			return LWW_ECORRUPT;
		}
		e->key = p + off;
		e->klen = klen;
		off += klen;
		/* The full key must be the one the stored key names. */
		if (lww_store_key(e->key, e->klen, lk) != LKEY_MAX ||
		    memcmp(lk, k->mv_data, LKEY_MAX) != 0) {
			return LWW_ECORRUPT;
		}
	} else {
		if (k->mv_size < LWW_KEY_MIN) {
			return LWW_ECORRUPT;
		}
		e->key = k->mv_data;
		e->klen = k->mv_size;
	}
	e->val = p + off;
	e->vlen = n - off;
	if (e->vlen > LWW_VAL_MAX ||
	    (lww_entry_is_tombstone(e) && e->vlen != 0)) {
		return LWW_ECORRUPT;
	}
	return LWW_OK;
}

/* What a record that failed its check still says it was: its flag is the
 * best guess left, for the tombstone count. */
static int
damaged_tombstone(const MDB_val *k, const MDB_val *d)
{
	const uint8_t *check;
	lww_entry e;

	return rec_parse(k, d, REC_VERSION, &e, &check) == LWW_OK &&
	       lww_entry_is_tombstone(&e);
}

/* Decodes a stored record and checks it against its hash, so a changed
 * byte anywhere in it (key included) is LWW_ECORRUPT. The entry borrows
 * from k and d; h (may be NULL) gets its hash. */
static lww_err
rec_decode(const MDB_val *k, const MDB_val *d, lww_entry *e, lww_digest *h)
{
	const uint8_t *check;
	lww_digest dg;
	lww_err rv;

	if ((rv = rec_parse(k, d, REC_VERSION, e, &check)) != LWW_OK) {
		return rv;
	}
	lww_digest_entry(e, &dg);
	if (sodium_memcmp(dg.h, check, REC_CHECK) != 0) {
		return LWW_ECORRUPT;
	}
	if (h != NULL) {
		*h = dg;
	}
	return LWW_OK;
}

static lww_err
meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
             uint64_t *out)
{
	MDB_val k = {klen, (void *) key}, d;
	int rc = mdb_get(txn, dbi, &k, &d);

	if (rc == MDB_NOTFOUND) {
		*out = 0;
		return LWW_OK;
	}
	if (rc != 0) {
		return mdb_err(rc);
	}
	if (d.mv_size != 8) {
		return LWW_ECORRUPT;
	}
	*out = lww_get_u64le(d.mv_data);
	return LWW_OK;
}

static lww_err
meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
             uint64_t v)
{
	uint8_t buf[8];
	MDB_val k = {klen, (void *) key}, d = {8, buf};

	lww_put_u64le(buf, v);
	return mdb_err(mdb_put(txn, dbi, &k, &d, 0));
}

static void
seq_key(uint64_t node, uint8_t out[9])
{
	out[0] = META_SEQ_PREFIX;
	for (int i = 0; i < 8; i++) {
		out[1 + i] = (uint8_t) (node >> (56 - 8 * i));
	}
}

static void
tree_key(unsigned level, uint32_t index, uint8_t out[5])
{
	out[0] = (uint8_t) level;
	out[1] = (uint8_t) (index >> 24);
	out[2] = (uint8_t) (index >> 16);
	out[3] = (uint8_t) (index >> 8);
	out[4] = (uint8_t) index;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
	       ((uint32_t) p[2] << 8) | p[3];
}

static int idx_put(MDB_txn *txn, lww_store *s, uint32_t bucket,
                   const MDB_val *k, const lww_digest *h, int fresh);

/* Formats 1 and 2 to 3: rewrites every record with its check (and for
 * format 1 gives every bucket index record its summary hash), in the
 * transaction that opens the store (all or nothing). */
static lww_err
store_upgrade(MDB_txn *txn, lww_store *s, uint64_t fmt)
{
	uint8_t kb[LKEY_MAX];
	lww_buf rec = LWW_BUF_INIT;
	MDB_cursor *cur;
	MDB_val k, d;
	lww_err rv = LWW_OK;
	int rc;

	if ((rc = mdb_cursor_open(txn, s->kv, &cur)) != 0) {
		return mdb_err(rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		const uint8_t *check;
		lww_entry e;
		lww_digest h;
		if (k.mv_size > LKEY_MAX) {
			continue; /* not a key lww writes: damaged, as above */
		}
		if (rec_parse(&k, &d, REC_VERSION_1, &e, &check) != LWW_OK) {
			/* Damaged already: left as it is, it fails its
			 * check from now on and is healed like any other. */
			continue;
		}
		lww_digest_entry(&e, &h);
		if ((rv = rec_encode(&rec, &e, &h)) != LWW_OK) {
			break;
		}
		/* k and e point into the page the put rewrites: copy k. */
		memcpy(kb, k.mv_data, k.mv_size);
		k.mv_data = kb;
		if (fmt == 1 &&
		    (rc = idx_put(txn, s, lww_digest_bucket(e.key, e.klen), &k,
		                  &h, 0)) != 0) {
			rv = mdb_err(rc);
			break;
		}
		d.mv_size = rec.len;
		d.mv_data = rec.p;
		if ((rc = mdb_cursor_put(cur, &k, &d, MDB_CURRENT)) != 0) {
			rv = mdb_err(rc);
			break;
		}
	}
	if (rv == LWW_OK && rc != MDB_NOTFOUND) {
		rv = mdb_err(rc);
	}
	mdb_cursor_close(cur);
	lww_buf_fini(&rec);
	return rv;
}

lww_err
lww_store_open(const char *dir, const lww_store_opts *opts, lww_store **out)
{
	size_t map_size = LWW_STORE_MAP_SIZE_DEFAULT;
	unsigned flags = MDB_NOTLS;
	lww_store *s;
	MDB_txn *txn = NULL;
	uint64_t fmt;
	int rc;
	lww_err rv;

	if (dir == NULL) {
		return LWW_EINVAL;
	}
	if (opts != NULL) {
		if (opts->map_size != 0) {
			map_size = opts->map_size;
		}
		if (opts->nosync) {
			flags |= MDB_NOSYNC;
		}
		if (opts->defer_meta) {
			flags |= MDB_NOMETASYNC;
		}
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return LWW_ENOMEM;
	}
	if ((rc = mdb_env_create(&s->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env, LWW_STORE_READERS_MAX)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, map_size)) != 0 ||
	    (rc = mdb_env_open(s->env, dir, flags, 0600)) != 0 ||
	    (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "kv", MDB_CREATE, &s->kv)) != 0 ||
	    (rc = mdb_dbi_open(txn, "idx", MDB_CREATE, &s->idx)) != 0 ||
	    (rc = mdb_dbi_open(txn, "tree", MDB_CREATE, &s->tree)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0) {
		rv = mdb_err(rc);
		goto fail;
	}
	if ((rv = meta_get_u64(txn, s->meta, META_FORMAT,
	                       sizeof(META_FORMAT) - 1, &fmt)) != LWW_OK) {
		goto fail;
	}
	if ((fmt == 1 || fmt == 2) &&
	    (rv = store_upgrade(txn, s, fmt)) != LWW_OK) {
		goto fail;
	}
	if (fmt < STORE_FORMAT) {
		rv = meta_put_u64(txn, s->meta, META_FORMAT,
		                  sizeof(META_FORMAT) - 1, STORE_FORMAT);
		if (rv != LWW_OK) {
			goto fail;
		}
	} else if (fmt != STORE_FORMAT) {
		rv = LWW_EVERSION;
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		rv = mdb_err(rc);
		goto fail;
	}
	*out = s;
	return LWW_OK;
fail:
	if (txn != NULL) {
		mdb_txn_abort(txn);
	}
	if (s->env != NULL) {
		mdb_env_close(s->env);
	}
	free(s);
	return rv;
}

lww_err
lww_store_sync(lww_store *s)
{
	return mdb_err(mdb_env_sync(s->env, 1));
}

void
lww_store_close(lww_store *s)
{
	if (s != NULL) {
		mdb_env_close(s->env);
		free(s);
	}
}

lww_err
lww_store_clear(lww_store *s)
{
	MDB_txn *txn;
	lww_err rv;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		return mdb_err(rc);
	}
	if ((rc = mdb_drop(txn, s->kv, 0)) != 0 ||
	    (rc = mdb_drop(txn, s->idx, 0)) != 0 ||
	    (rc = mdb_drop(txn, s->tree, 0)) != 0 ||
	    (rc = mdb_drop(txn, s->meta, 0)) != 0) {
		mdb_txn_abort(txn);
		return mdb_err(rc);
	}
	if ((rv = meta_put_u64(txn, s->meta, META_FORMAT,
	                       sizeof(META_FORMAT) - 1, STORE_FORMAT)) !=
	    LWW_OK) {
		mdb_txn_abort(txn);
		return rv;
	}
	return mdb_err(mdb_txn_commit(txn));
}

lww_err
lww_store_begin(lww_store *s, lww_txn **out)
{
	lww_txn *t;
	int rc;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		return LWW_ENOMEM;
	}
	t->s = s;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t->txn)) != 0) {
		free(t);
		return mdb_err(rc);
	}
	*out = t;
	return LWW_OK;
}

static void
txn_free(lww_txn *t)
{
	free(t->redo);
	lww_digest_delta_fini(&t->delta);
	lww_buf_fini(&t->rec);
	free(t);
}

void
lww_txn_abort(lww_txn *t)
{
	if (t != NULL) {
		mdb_txn_abort(t->txn);
		txn_free(t);
	}
}

/* Marks the transaction failed: from now on only abort is possible. */
static lww_err
txn_fail(lww_txn *t, lww_err rv)
{
	t->failed = 1;
	return rv;
}

/* Sets the bucket index record of stored key k: its summary hash. With
 * fresh, MDB_KEYEXIST if it has one already (nothing changed). */
static int
idx_put(MDB_txn *txn, lww_store *s, uint32_t bucket, const MDB_val *k,
        const lww_digest *h, int fresh)
{
	uint8_t ik[IDX_KEY_MAX];
	MDB_val ikv = {4 + k->mv_size, ik},
	        hv = {LWW_STORE_SUMMARY_HASH, (void *) h->h};

	put_be32(ik, bucket);
	memcpy(ik + 4, k->mv_data, k->mv_size);
	return mdb_put(txn, s->idx, &ikv, &hv, fresh ? MDB_NOOVERWRITE : 0);
}

/* 1 if stored key k has its bucket index record and it holds h's summary
 * bytes, 0 if not, -1 on an LMDB error. */
static int
idx_matches(MDB_txn *txn, lww_store *s, uint32_t bucket, const MDB_val *k,
            const lww_digest *h)
{
	uint8_t ik[IDX_KEY_MAX];
	MDB_val ikv = {4 + k->mv_size, ik}, iv;
	int rc;

	put_be32(ik, bucket);
	memcpy(ik + 4, k->mv_data, k->mv_size);
	rc = mdb_get(txn, s->idx, &ikv, &iv);
	if (rc == MDB_NOTFOUND) {
		return 0;
	}
	if (rc != 0) {
		return -1;
	}
	return iv.mv_size == LWW_STORE_SUMMARY_HASH &&
	       memcmp(iv.mv_data, h->h, LWW_STORE_SUMMARY_HASH) == 0;
}

/* Notes that leaf's stored hash must be recomputed at commit. */
static lww_err
txn_redo(lww_txn *t, uint32_t leaf)
{
	for (size_t i = 0; i < t->nredo; i++) {
		if (t->redo[i] == leaf) {
			return LWW_OK;
		}
	}
	if (t->nredo == t->capredo) {
		size_t nc = t->capredo ? t->capredo * 2 : 4;
		uint32_t *nr = realloc(t->redo, nc * sizeof(*nr));
		if (nr == NULL) {
			return LWW_ENOMEM;
		}
		t->redo = nr;
		t->capredo = nc;
	}
	t->redo[t->nredo++] = leaf;
	return LWW_OK;
}

static uint32_t
leaf_of(uint32_t bucket)
{
	return lww_digest_index(bucket, LWW_DIGEST_STORED);
}

lww_err
lww_txn_apply(lww_txn *t, const lww_entry *e, int *won)
{
	uint8_t lk[LKEY_MAX];
	lww_digest oldh, newh;
	int have = 0, oldtomb = 0, damaged = 0, rc;
	uint32_t bucket;
	MDB_val k, d;
	lww_err rv;

	if (t->failed) {
		return LWW_EINVAL;
	}
	if ((rv = lww_entry_check(e)) != LWW_OK) {
		return rv;
	}
	k.mv_size = lww_store_key(e->key, e->klen, lk);
	k.mv_data = lk;
	bucket = lww_digest_bucket(e->key, e->klen);
	rc = mdb_get(t->txn, t->s->kv, &k, &d);
	if (rc == 0) {
		lww_entry cur;
		if ((rv = rec_decode(&k, &d, &cur, &oldh)) == LWW_ECORRUPT) {
			/* A damaged record loses to anything: its hash in
			 * the tree is unknown, so its leaf is recomputed. */
			damaged = 1;
			oldtomb = damaged_tombstone(&k, &d);
		} else if (rv != LWW_OK) {
			return txn_fail(t, rv);
		} else {
			/* A sound record whose index record was lost or
			 * damaged: the tree may not hold its hash either.
			 * Rewrite the index record; the leaf is recomputed. */
			if ((rc = idx_matches(t->txn, t->s, bucket, &k,
			                      &oldh)) < 0) {
				return txn_fail(t, LWW_EIO);
			}
			if (rc == 0) {
				damaged = 1;
			}
			if (!lww_entry_wins(e, &cur) &&
			    !(t->replacing != NULL &&
			      cur.node == t->replacing->node &&
			      cur.hlc == t->replacing->hlc)) {
				if (won != NULL) {
					*won = 0;
				}
				if (!damaged) {
					return LWW_OK;
				}
				if ((rc = idx_put(t->txn, t->s, bucket, &k,
				                  &oldh, 0)) != 0) {
					return txn_fail(t, mdb_err(rc));
				}
				rv = txn_redo(t, leaf_of(bucket));
				return rv != LWW_OK ? txn_fail(t, rv) : LWW_OK;
			}
			oldtomb = lww_entry_is_tombstone(&cur);
			have = 1;
		}
	} else if (rc != MDB_NOTFOUND) {
		return txn_fail(t, mdb_err(rc));
	}
	lww_digest_entry(e, &newh);
	if ((rv = rec_encode(&t->rec, e, &newh)) != LWW_OK) {
		return txn_fail(t, rv);
	}
	d.mv_size = t->rec.len;
	d.mv_data = t->rec.p;
	if ((rc = mdb_put(t->txn, t->s->kv, &k, &d, 0)) != 0) {
		return txn_fail(t, mdb_err(rc));
	}
	/* A new key with an index record already: its record was lost (a
	 * damaged key), and the tree still holds its hash. */
	rc = idx_put(t->txn, t->s, bucket, &k, &newh, !have && !damaged);
	if (rc == MDB_KEYEXIST) {
		damaged = 1;
		rc = idx_put(t->txn, t->s, bucket, &k, &newh, 0);
	}
	if (rc != 0) {
		return txn_fail(t, mdb_err(rc));
	}
	if (damaged) {
		if ((rv = txn_redo(t, leaf_of(bucket))) != LWW_OK) {
			return txn_fail(t, rv);
		}
	}
	if (have) {
		lww_digest_xor(&newh, &oldh); /* one delta: old out, new in */
	}
	if ((rv = lww_digest_delta_add(&t->delta, bucket, &newh)) != LWW_OK) {
		return txn_fail(t, rv);
	}
	t->dtomb += lww_entry_is_tombstone(e) - oldtomb;
	if (e->hlc > t->hlc) {
		t->hlc = e->hlc;
	}
	if (won != NULL) {
		*won = 1;
	}
	return LWW_OK;
}

lww_err
lww_txn_set_seq(lww_txn *t, uint64_t node, uint64_t seq)
{
	uint8_t key[9];
	uint64_t cur;
	lww_err rv;

	if (t->failed) {
		return LWW_EINVAL;
	}
	seq_key(node, key);
	if ((rv = meta_get_u64(t->txn, t->s->meta, key, sizeof(key), &cur)) !=
	    LWW_OK) {
		return txn_fail(t, rv);
	}
	if (seq <= cur) {
		return LWW_OK;
	}
	if ((rv = meta_put_u64(t->txn, t->s->meta, key, sizeof(key), seq)) !=
	    LWW_OK) {
		return txn_fail(t, rv);
	}
	return LWW_OK;
}

void
lww_txn_note_hlc(lww_txn *t, uint64_t hlc)
{
	if (hlc > t->hlc) {
		t->hlc = hlc;
	}
}

lww_err
lww_txn_replace(lww_txn *t, const lww_entry *e, const lww_entry *old, int *done)
{
	lww_err rv;

	if (old == NULL || e->klen != old->klen ||
	    (e->klen > 0 && memcmp(e->key, old->key, e->klen) != 0)) {
		return LWW_EINVAL;
	}
	t->replacing = old;
	rv = lww_txn_apply(t, e, done);
	t->replacing = NULL;
	return rv;
}

void
lww_txn_reset_hlc(lww_txn *t, uint64_t hlc, uint64_t held)
{
	t->hlc_reset = 1;
	t->hlc_to = hlc;
	t->held_to = held;
}

static lww_err leaf_walk(lww_store *s, MDB_txn *txn, uint32_t leaf, int fix,
                         lww_store_check *r, int64_t *dtomb);
static lww_err tomb_add(lww_store *s, MDB_txn *txn, int64_t dtomb);

static lww_err
tree_fold(unsigned level, uint32_t index, const lww_digest *delta, void *arg)
{
	lww_txn *t = arg;
	uint8_t key[5];
	lww_digest h;
	MDB_val k = {sizeof(key), key}, d;
	int rc;

	tree_key(level, index, key);
	rc = mdb_get(t->txn, t->s->tree, &k, &d);
	if (rc == 0 && d.mv_size == LWW_DIGEST_BYTES) {
		memcpy(h.h, d.mv_data, LWW_DIGEST_BYTES);
	} else if (rc == MDB_NOTFOUND) {
		memset(h.h, 0, sizeof(h.h));
	} else {
		return rc ? mdb_err(rc) : LWW_ECORRUPT;
	}
	lww_digest_xor(&h, delta);
	if (lww_digest_is_zero(&h)) {
		rc = mdb_del(t->txn, t->s->tree, &k, NULL);
		return rc == MDB_NOTFOUND ? LWW_OK : mdb_err(rc);
	}
	d.mv_size = LWW_DIGEST_BYTES;
	d.mv_data = h.h;
	return mdb_err(mdb_put(t->txn, t->s->tree, &k, &d, 0));
}

lww_err
lww_txn_commit(lww_txn *t)
{
	uint64_t v;
	lww_err rv;
	int rc;

	if (t->failed) {
		rv = LWW_EINVAL;
		goto fail;
	}
	if ((rv = lww_digest_delta_fold(&t->delta, tree_fold, t)) != LWW_OK) {
		goto fail;
	}
	for (size_t i = 0; i < t->nredo; i++) {
		lww_store_check r = {0, 0, 0, 0};
		if ((rv = leaf_walk(t->s, t->txn, t->redo[i], 1, &r,
		                    &t->dtomb)) != LWW_OK) {
			goto fail;
		}
	}
	if ((rv = tomb_add(t->s, t->txn, t->dtomb)) != LWW_OK) {
		goto fail;
	}
	if (t->hlc_reset) {
		v = t->hlc > t->hlc_to ? t->hlc : t->hlc_to;
		if ((rv = meta_put_u64(t->txn, t->s->meta, META_HLC,
		                       sizeof(META_HLC) - 1, v)) != LWW_OK ||
		    (rv = meta_put_u64(t->txn, t->s->meta, META_HELD,
		                       sizeof(META_HELD) - 1, t->held_to)) !=
		        LWW_OK) {
			goto fail;
		}
	} else if (t->hlc != 0) {
		if ((rv = meta_get_u64(t->txn, t->s->meta, META_HLC,
		                       sizeof(META_HLC) - 1, &v)) != LWW_OK) {
			goto fail;
		}
		if (t->hlc > v &&
		    (rv = meta_put_u64(t->txn, t->s->meta, META_HLC,
		                       sizeof(META_HLC) - 1, t->hlc)) !=
		        LWW_OK) {
			goto fail;
		}
	}
	rc = mdb_txn_commit(t->txn); /* frees the LMDB txn, also on error */
	txn_free(t);
	return mdb_err(rc);
fail:
	lww_txn_abort(t);
	return rv;
}

lww_err
lww_store_apply(lww_store *s, const lww_entry *e, size_t n, size_t *won)
{
	size_t count = 0;
	lww_txn *t;
	lww_err rv;

	if ((rv = lww_store_begin(s, &t)) != LWW_OK) {
		return rv;
	}
	for (size_t i = 0; i < n; i++) {
		int w;
		if ((rv = lww_txn_apply(t, &e[i], &w)) != LWW_OK) {
			lww_txn_abort(t);
			return rv;
		}
		count += (size_t) w;
	}
	if ((rv = lww_txn_commit(t)) != LWW_OK) {
		return rv;
	}
	if (won != NULL) {
		*won = count;
	}
	return LWW_OK;
}

static lww_err
read_begin(lww_store *s, MDB_txn **txn)
{
	return mdb_err(mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn));
}

lww_err
lww_store_get(lww_store *s, const uint8_t *key, size_t klen, lww_buf *vbuf,
              lww_entry *out)
{
	uint8_t lk[LKEY_MAX];
	MDB_txn *txn;
	MDB_val k, d;
	lww_entry e;
	lww_err rv;
	int rc;

	if (key == NULL || klen < LWW_KEY_MIN || klen > LWW_KEY_MAX) {
		return LWW_EKEYSIZE;
	}
	k.mv_size = lww_store_key(key, klen, lk);
	k.mv_data = lk;
	if ((rv = read_begin(s, &txn)) != LWW_OK) {
		return rv;
	}
	if ((rc = mdb_get(txn, s->kv, &k, &d)) == MDB_NOTFOUND) {
		/* Never written, or its record was lost to a damaged key:
		 * then the bucket index still names it. */
		uint8_t ik[IDX_KEY_MAX];
		MDB_val ikv = {4 + k.mv_size, ik};
		put_be32(ik, lww_digest_bucket(key, klen));
		memcpy(ik + 4, k.mv_data, k.mv_size);
		rc = mdb_get(txn, s->idx, &ikv, &d);
		rv = rc == 0 ? LWW_ECORRUPT : mdb_err(rc ? rc : MDB_NOTFOUND);
		goto out;
	}
	if (rc != 0) {
		rv = mdb_err(rc);
		goto out;
	}
	if ((rv = rec_decode(&k, &d, &e, NULL)) != LWW_OK) {
		goto out;
	}
	if (e.klen != klen || memcmp(e.key, key, klen) != 0) {
		rv = LWW_ENOTFOUND; /* a different key with the same hash */
		goto out;
	}
	lww_buf_reset(vbuf);
	if ((rv = lww_buf_put(vbuf, e.val, e.vlen)) != LWW_OK) {
		goto out;
	}
	e.key = key;
	e.val = vbuf->p;
	*out = e;
out:
	mdb_txn_abort(txn);
	return rv;
}

static int
entry_key_cmp(const void *a, const void *b)
{
	return lww_entry_key_cmp(a, b);
}

typedef struct scan_state {
	const lww_scan *q;
	lww_scan_fn fn;
	void *arg;
	size_t emitted;
	int more;
	int stop;
} scan_state;

/* Offers one entry in key order to the caller, applying the filters. */
static void
scan_offer(scan_state *st, const lww_entry *e)
{
	const lww_scan *q = st->q;

	if (!lww_entry_key_in(e, q->prefix, q->plen, q->after, q->alen)) {
		return;
	}
	if (lww_entry_is_tombstone(e) && !q->tombstones) {
		return;
	}
	if (q->limit != 0 && st->emitted == q->limit) {
		st->more = 1;
		st->stop = 1;
		return;
	}
	st->emitted++;
	if (st->fn(e, st->arg) != 0) {
		st->stop = 1;
	}
}

/* Reports a record that failed its check and was skipped, unless it
 * lies past the entries this page returns (the next page reports it). */
static void
scan_damaged(scan_state *st, const MDB_val *k)
{
	if (st->q->damaged != NULL &&
	    (st->q->limit == 0 || st->emitted < st->q->limit)) {
		st->q->damaged(k->mv_data, k->mv_size, st->arg);
	}
}

lww_err
lww_store_scan(lww_store *s, const lww_scan *q, lww_scan_fn fn, void *arg,
               int *more)
{
	size_t tp =
	    q->plen < LWW_STORE_INLINE_KEY ? q->plen : LWW_STORE_INLINE_KEY;
	size_t ta =
	    q->alen < LWW_STORE_INLINE_KEY ? q->alen : LWW_STORE_INLINE_KEY;
	scan_state st = {q, fn, arg, 0, 0, 0};
	lww_entry *run = NULL;
	size_t nrun = 0, caprun = 0;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_val k, d;
	lww_err rv;
	int rc;

	if (q->plen > LWW_KEY_MAX || q->alen > LWW_KEY_MAX ||
	    (q->plen && !q->prefix) || (q->alen && !q->after)) {
		return LWW_EINVAL;
	}
	if ((rv = read_begin(s, &txn)) != LWW_OK) {
		return rv;
	}
	if ((rc = mdb_cursor_open(txn, s->kv, &cur)) != 0) {
		rv = mdb_err(rc);
		goto out;
	}
	/* Seek to the greater of the truncated prefix and continuation: no
	 * key after the continuation sorts below its first bytes. */
	k.mv_data = (void *) q->prefix;
	k.mv_size = tp;
	if (ta > 0 && lww_bytes_cmp(q->after, ta, q->prefix, tp) > 0) {
		k.mv_data = (void *) q->after;
		k.mv_size = ta;
	}
	rc = k.mv_size ? mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE)
	               : mdb_cursor_get(cur, &k, &d, MDB_FIRST);
	while (rc == 0 && !st.stop) {
		lww_entry e;
		if (k.mv_size < tp ||
		    (tp && memcmp(k.mv_data, q->prefix, tp) != 0)) {
			break; /* past every key with the prefix */
		}
		if ((rv = rec_decode(&k, &d, &e, NULL)) == LWW_ECORRUPT) {
			scan_damaged(&st, &k);
			rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
			continue;
		}
		if (rv != LWW_OK) {
			goto out;
		}
		if (k.mv_size <= LWW_STORE_INLINE_KEY) {
			scan_offer(&st, &e);
			rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
			continue;
		}
		/* Long keys sharing their first bytes sort by hash in LMDB:
		 * gather the run and offer it in byte order. */
		nrun = 0;
		do {
			if (nrun == caprun) {
				size_t nc = caprun ? caprun * 2 : 16;
				lww_entry *nr = realloc(run, nc * sizeof(*nr));
				if (nr == NULL) {
					rv = LWW_ENOMEM;
					goto out;
				}
				run = nr;
				caprun = nc;
			}
			run[nrun++] = e;
			rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
			if (rc != 0 || k.mv_size <= LWW_STORE_INLINE_KEY ||
			    memcmp(k.mv_data, run[0].key,
			           LWW_STORE_INLINE_KEY) != 0) {
				break;
			}
			while ((rv = rec_decode(&k, &d, &e, NULL)) ==
			       LWW_ECORRUPT) {
				scan_damaged(&st, &k);
				rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
				if (rc != 0 ||
				    k.mv_size <= LWW_STORE_INLINE_KEY ||
				    memcmp(k.mv_data, run[0].key,
				           LWW_STORE_INLINE_KEY) != 0) {
					break;
				}
			}
			if (rv == LWW_ECORRUPT) {
				break; /* the run ended on damaged records */
			}
			if (rv != LWW_OK) {
				goto out;
			}
		} while (1);
		qsort(run, nrun, sizeof(*run), entry_key_cmp);
		for (size_t i = 0; i < nrun && !st.stop; i++) {
			scan_offer(&st, &run[i]);
		}
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		rv = mdb_err(rc);
		goto out;
	}
	if (more != NULL) {
		*more = st.more;
	}
	rv = LWW_OK;
out:
	free(run);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rv;
}

/* Non-zero if (level, index) names a node of the digest tree. */
static int
valid_node(unsigned level, uint32_t index)
{
	if (level > LWW_DIGEST_LEVELS) {
		return 0;
	}
	return level == LWW_DIGEST_LEVELS || (index >> (4 * level)) == 0;
}

/* Walks the bucket index under a digest node, resolving each key to its
 * entry; cb gets the bucket too. With want, only the keys whose summary
 * want asks for are resolved (> 0), and want < 0 stops the walk. */
typedef lww_err (*bucket_fn)(uint32_t bucket, const lww_entry *e,
                             const lww_digest *h, void *arg);

static lww_err
bucket_walk(lww_store *s, unsigned level, uint32_t index, lww_summary_fn want,
            bucket_fn cb, void *arg)
{
	uint32_t first, span;
	uint8_t start[4];
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_val k, d;
	lww_err rv;
	int rc;

	if (!valid_node(level, index)) {
		return LWW_EINVAL;
	}
	first = lww_digest_first(level, index);
	span = lww_digest_span(level);
	if ((rv = read_begin(s, &txn)) != LWW_OK) {
		return rv;
	}
	if ((rc = mdb_cursor_open(txn, s->idx, &cur)) != 0) {
		rv = mdb_err(rc);
		goto out;
	}
	put_be32(start, first);
	k.mv_size = sizeof(start);
	k.mv_data = start;
	rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		MDB_val kk, dd;
		uint32_t b;
		lww_entry e;
		lww_digest h;
		if (k.mv_size < 4) {
			continue; /* damaged: lww_store_check_leaf drops it */
		}
		b = get_be32(k.mv_data);
		if (b - first > span || b < first) {
			break;
		}
		if (k.mv_size == 4 || k.mv_size > IDX_KEY_MAX ||
		    d.mv_size != LWW_STORE_SUMMARY_HASH) {
			continue;
		}
		if (want != NULL) {
			int w;
			if ((w = want(b, d.mv_data, arg)) < 0) {
				break;
			}
			if (w == 0) {
				continue;
			}
		}
		kk.mv_size = k.mv_size - 4;
		kk.mv_data = (uint8_t *) k.mv_data + 4;
		/* A record that is gone or damaged counts as missing here;
		 * lww_store_check_leaf drops it and fixes the tree. */
		if ((rc = mdb_get(txn, s->kv, &kk, &dd)) == MDB_NOTFOUND) {
			continue;
		}
		if (rc != 0) {
			rv = mdb_err(rc);
			goto out;
		}
		if ((rv = rec_decode(&kk, &dd, &e, &h)) == LWW_ECORRUPT) {
			continue;
		}
		if (rv != LWW_OK || (rv = cb(b, &e, &h, arg)) != LWW_OK) {
			goto out;
		}
	}
	rv = (rc == 0 || rc == MDB_NOTFOUND) ? LWW_OK : mdb_err(rc);
out:
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rv;
}

/* A bucket walk for a caller's callbacks: want may be NULL (every entry
 * to fn), fn may be NULL (summaries only). */
typedef struct summary_walk {
	lww_summary_fn want;
	lww_scan_fn fn;
	void *arg;
} summary_walk;

static int
summary_want(uint32_t bucket, const uint8_t *hash, void *arg)
{
	summary_walk *w = arg;
	return w->want(bucket, hash, w->arg);
}

static lww_err
summary_entry(uint32_t bucket, const lww_entry *e, const lww_digest *h,
              void *arg)
{
	summary_walk *w = arg;
	(void) bucket;
	(void) h;
	return w->fn != NULL && w->fn(e, w->arg) ? LWW_ECLOSED : LWW_OK;
}

lww_err
lww_store_scan_bucket(lww_store *s, unsigned level, uint32_t index,
                      lww_scan_fn fn, void *arg)
{
	summary_walk w = {NULL, fn, arg};
	lww_err rv = bucket_walk(s, level, index, NULL, summary_entry, &w);
	return rv == LWW_ECLOSED ? LWW_OK : rv; /* stopped by the caller */
}

lww_err
lww_store_scan_summaries(lww_store *s, unsigned level, uint32_t index,
                         lww_summary_fn want, lww_scan_fn fn, void *arg)
{
	summary_walk w = {want, fn, arg};
	lww_err rv;

	if (want == NULL) {
		return LWW_EINVAL;
	}
	rv = bucket_walk(s, level, index, summary_want, summary_entry, &w);
	return rv == LWW_ECLOSED ? LWW_OK : rv; /* stopped by the caller */
}

typedef struct children_acc {
	unsigned level; /* of the children */
	lww_digest *out;
} children_acc;

static lww_err
children_cb(uint32_t bucket, const lww_entry *e, const lww_digest *h, void *arg)
{
	children_acc *a = arg;

	(void) e;
	lww_digest_xor(&a->out[lww_digest_index(bucket, a->level) & 15], h);
	return LWW_OK;
}

static lww_err
tree_get(lww_store *s, MDB_txn *txn, unsigned level, uint32_t index,
         lww_digest *out)
{
	uint8_t key[5];
	MDB_val k = {sizeof(key), key}, d;
	int rc;

	(void) s;
	tree_key(level, index, key);
	rc = mdb_get(txn, s->tree, &k, &d);
	if (rc == MDB_NOTFOUND) {
		memset(out->h, 0, sizeof(out->h));
		return LWW_OK;
	}
	if (rc != 0) {
		return mdb_err(rc);
	}
	if (d.mv_size != LWW_DIGEST_BYTES) {
		return LWW_ECORRUPT;
	}
	memcpy(out->h, d.mv_data, LWW_DIGEST_BYTES);
	return LWW_OK;
}

lww_err
lww_store_digest_children(lww_store *s, unsigned level, uint32_t index,
                          lww_digest out[LWW_DIGEST_FANOUT])
{
	lww_digest tmp[LWW_DIGEST_FANOUT];
	MDB_txn *txn;
	lww_err rv = LWW_OK;

	if (level >= LWW_DIGEST_LEVELS || !valid_node(level, index)) {
		return LWW_EINVAL;
	}
	memset(tmp, 0, sizeof(tmp));
	if (level + 1 <= LWW_DIGEST_STORED) {
		if ((rv = read_begin(s, &txn)) != LWW_OK) {
			return rv;
		}
		for (uint32_t i = 0; i < LWW_DIGEST_FANOUT && rv == LWW_OK;
		     i++) {
			rv = tree_get(s, txn, level + 1, (index << 4) | i,
			              &tmp[i]);
		}
		mdb_txn_abort(txn);
	} else {
		children_acc a = {level + 1, tmp};
		rv = bucket_walk(s, level, index, NULL, children_cb, &a);
	}
	if (rv == LWW_OK) {
		memcpy(out, tmp, sizeof(tmp));
	}
	return rv;
}

lww_err
lww_store_digest(lww_store *s, unsigned level, uint32_t index, lww_digest *out)
{
	lww_digest tmp[LWW_DIGEST_FANOUT];
	MDB_txn *txn;
	lww_err rv;

	if (!valid_node(level, index)) {
		return LWW_EINVAL;
	}
	if (level <= LWW_DIGEST_STORED) {
		if ((rv = read_begin(s, &txn)) != LWW_OK) {
			return rv;
		}
		rv = tree_get(s, txn, level, index, out);
		mdb_txn_abort(txn);
		return rv;
	}
	/* A computed level: the XOR of its entries, via its parent's view. */
	if ((rv = lww_store_digest_children(s, level - 1, index >> 4, tmp)) !=
	    LWW_OK) {
		return rv;
	}
	*out = tmp[index & 15];
	return LWW_OK;
}

/* One u64 meta value, read in a transaction of its own. */
static lww_err
meta_read_u64(lww_store *s, const char *name, size_t nlen, uint64_t *out)
{
	MDB_txn *txn;
	lww_err rv;

	if ((rv = read_begin(s, &txn)) != LWW_OK) {
		return rv;
	}
	rv = meta_get_u64(txn, s->meta, name, nlen, out);
	mdb_txn_abort(txn);
	return rv;
}

lww_err
lww_store_hlc(lww_store *s, uint64_t *out)
{
	return meta_read_u64(s, META_HLC, sizeof(META_HLC) - 1, out);
}

lww_err
lww_store_held(lww_store *s, uint64_t *out)
{
	return meta_read_u64(s, META_HELD, sizeof(META_HELD) - 1, out);
}

lww_err
lww_store_seq(lww_store *s, uint64_t node, uint64_t *out)
{
	uint8_t key[9];
	MDB_txn *txn;
	lww_err rv;

	if ((rv = read_begin(s, &txn)) != LWW_OK) {
		return rv;
	}
	seq_key(node, key);
	rv = meta_get_u64(txn, s->meta, key, sizeof(key), out);
	mdb_txn_abort(txn);
	return rv;
}

lww_err
lww_store_stats_get(lww_store *s, lww_store_stats *out)
{
	MDB_envinfo info;
	MDB_stat st;
	MDB_txn *txn;
	uint64_t tomb;
	lww_err rv;
	int rc;

	if ((rv = read_begin(s, &txn)) != LWW_OK) {
		return rv;
	}
	if ((rc = mdb_stat(txn, s->kv, &st)) != 0) {
		rv = mdb_err(rc);
		goto out;
	}
	if ((rv = meta_get_u64(txn, s->meta, META_TOMB, sizeof(META_TOMB) - 1,
	                       &tomb)) != LWW_OK) {
		goto out;
	}
	if ((rc = mdb_env_info(s->env, &info)) != 0) {
		rv = mdb_err(rc);
		goto out;
	}
	out->entries = st.ms_entries;
	out->tombstones = tomb;
	out->bytes = ((uint64_t) info.me_last_pgno + 1) * st.ms_psize;
	out->map_size = info.me_mapsize;
out:
	mdb_txn_abort(txn);
	return rv;
}

/* ---- checking records and healing what fails ---- */

/* Writes the hash of stored tree node (level, index), or deletes it
 * when zero (as tree_fold does). */
static lww_err
tree_put(lww_store *s, MDB_txn *txn, unsigned level, uint32_t index,
         const lww_digest *h)
{
	uint8_t key[5];
	MDB_val k = {sizeof(key), key}, d = {LWW_DIGEST_BYTES, (void *) h->h};
	int rc;

	tree_key(level, index, key);
	if (lww_digest_is_zero(h)) {
		rc = mdb_del(txn, s->tree, &k, NULL);
		return rc == MDB_NOTFOUND ? LWW_OK : mdb_err(rc);
	}
	return mdb_err(mdb_put(txn, s->tree, &k, &d, 0));
}

/* Checks node (level < LWW_DIGEST_STORED, index) against the XOR of its
 * 16 children; with fix, writes that XOR. 1 if it differed. */
static lww_err
node_check(lww_store *s, MDB_txn *txn, unsigned level, uint32_t index, int fix,
           int *differed)
{
	lww_digest acc, h;
	lww_err rv;

	memset(&acc, 0, sizeof(acc));
	for (uint32_t c = 0; c < LWW_DIGEST_FANOUT; c++) {
		if ((rv = tree_get(s, txn, level + 1, (index << 4) | c, &h)) !=
		    LWW_OK) {
			return rv;
		}
		lww_digest_xor(&acc, &h);
	}
	if ((rv = tree_get(s, txn, level, index, &h)) != LWW_OK) {
		return rv;
	}
	*differed = sodium_memcmp(h.h, acc.h, sizeof(acc.h)) != 0;
	return *differed && fix ? tree_put(s, txn, level, index, &acc) : LWW_OK;
}

/* Checks every bucket index record under stored leaf `leaf` against its
 * record, and the leaf's stored hash against the records. With fix (a
 * write transaction), drops index records whose record is gone or
 * damaged (and the damaged record), rewrites index records that differ
 * from their record, and sets the leaf's hash (and its ancestors') to
 * what the records hold. *dtomb gets the change in tombstones. */
static lww_err
leaf_walk(lww_store *s, MDB_txn *txn, uint32_t leaf, int fix,
          lww_store_check *r, int64_t *dtomb)
{
	uint32_t first = lww_digest_first(LWW_DIGEST_STORED, leaf);
	uint32_t span = lww_digest_span(LWW_DIGEST_STORED);
	uint8_t start[4], kb[LKEY_MAX];
	lww_digest acc, stored;
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	lww_err rv = LWW_OK;
	int rc;

	memset(&acc, 0, sizeof(acc));
	if ((rc = mdb_cursor_open(txn, s->idx, &cur)) != 0) {
		return mdb_err(rc);
	}
	put_be32(start, first);
	k.mv_size = sizeof(start);
	k.mv_data = start;
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		MDB_val kk, dd;
		lww_entry e;
		lww_digest h;
		uint32_t b = 0;
		int bad = 0, tomb = 0;

		if (k.mv_size >= 4) {
			b = get_be32(k.mv_data);
			if (b < first || b - first > span) {
				break;
			}
		} else if (k.mv_size < 2 || memcmp(k.mv_data, start, 2) != 0) {
			/* A damaged short key: in this leaf if it has the
			 * leaf's first two bytes (then it goes below), else
			 * past it. */
			break;
		}
		r->records++;
		if (k.mv_size <= 4 || k.mv_size > IDX_KEY_MAX) {
			bad = 1;
			kk.mv_size = 0;
		} else {
			kk.mv_size = k.mv_size - 4;
			memcpy(kb, (uint8_t *) k.mv_data + 4, kk.mv_size);
			kk.mv_data = kb;
			rc = mdb_get(txn, s->kv, &kk, &dd);
			if (rc == MDB_NOTFOUND) {
				bad = 1;
			} else if (rc != 0) {
				rv = mdb_err(rc);
				break;
			} else if ((rv = rec_decode(&kk, &dd, &e, &h)) ==
			           LWW_ECORRUPT) {
				bad = 2;
				rv = LWW_OK;
				tomb = damaged_tombstone(&kk, &dd);
			} else if (rv != LWW_OK) {
				break;
			} else if (lww_digest_bucket(e.key, e.klen) != b) {
				/* A sound record, indexed under a damaged
				 * bucket: only the index record goes (the
				 * key walk restores the right one). */
				bad = 1;
			}
		}
		if (bad) {
			r->damaged++;
			if (fix) {
				if (bad == 2 &&
				    (rc = mdb_del(txn, s->kv, &kk, NULL)) !=
				        0 &&
				    rc != MDB_NOTFOUND) {
					rv = mdb_err(rc);
					break;
				}
				if ((rc = mdb_cursor_del(cur, 0)) != 0) {
					rv = mdb_err(rc);
					break;
				}
				*dtomb -= tomb;
			}
			continue;
		}
		lww_digest_xor(&acc, &h);
		if (d.mv_size != LWW_STORE_SUMMARY_HASH ||
		    memcmp(d.mv_data, h.h, LWW_STORE_SUMMARY_HASH) != 0) {
			r->index_fixed++;
			if (fix && (rc = idx_put(txn, s, b, &kk, &h, 0)) != 0) {
				rv = mdb_err(rc);
				break;
			}
		}
	}
	if (rv == LWW_OK && rc != 0 && rc != MDB_NOTFOUND) {
		rv = mdb_err(rc);
	}
	mdb_cursor_close(cur);
	if (rv != LWW_OK || (rv = tree_get(s, txn, LWW_DIGEST_STORED, leaf,
	                                   &stored)) != LWW_OK) {
		return rv;
	}
	if (sodium_memcmp(stored.h, acc.h, sizeof(acc.h)) != 0) {
		r->tree_fixed++;
		if (!fix) {
			return LWW_OK;
		}
		/* The leaf from its records, then each node above it from
		 * its children: a damaged record and a damaged tree node
		 * both end in the tree the records imply. */
		if ((rv = tree_put(s, txn, LWW_DIGEST_STORED, leaf, &acc)) !=
		    LWW_OK) {
			return rv;
		}
		for (unsigned l = LWW_DIGEST_STORED; l-- > 0 && rv == LWW_OK;) {
			int differed;
			rv = node_check(s, txn, l,
			                leaf >> (4 * (LWW_DIGEST_STORED - l)),
			                1, &differed);
		}
	}
	return rv;
}

/* Checks the tree nodes above stored leaf `leaf` whose last leaf it is,
 * so that a walk over every leaf checks every node once. */
static lww_err
ancestors_walk(lww_store *s, MDB_txn *txn, uint32_t leaf, int fix,
               lww_store_check *r)
{
	lww_err rv = LWW_OK;

	for (unsigned l = LWW_DIGEST_STORED; l-- > 0 && rv == LWW_OK;) {
		unsigned shift = 4 * (LWW_DIGEST_STORED - l);
		int differed = 0;
		if (((leaf + 1) & ((UINT32_C(1) << shift) - 1)) != 0) {
			break; /* not the last leaf under this node */
		}
		rv = node_check(s, txn, l, leaf >> shift, fix, &differed);
		r->tree_fixed += (uint64_t) differed;
	}
	return rv;
}

/* Adds dtomb to the stored tombstone count. */
static lww_err
tomb_add(lww_store *s, MDB_txn *txn, int64_t dtomb)
{
	uint64_t v;
	lww_err rv;

	if (dtomb == 0) {
		return LWW_OK;
	}
	if ((rv = meta_get_u64(txn, s->meta, META_TOMB, sizeof(META_TOMB) - 1,
	                       &v)) != LWW_OK) {
		return rv;
	}
	v = (int64_t) v + dtomb < 0 ? 0 : (uint64_t) ((int64_t) v + dtomb);
	return meta_put_u64(txn, s->meta, META_TOMB, sizeof(META_TOMB) - 1, v);
}

static int
check_clean(const lww_store_check *r)
{
	return r->damaged == 0 && r->index_fixed == 0 && r->tree_fixed == 0;
}

/* One check: walk(s, txn, fix, arg, r, dtomb). */
typedef lww_err (*check_fn)(lww_store *s, MDB_txn *txn, int fix, void *arg,
                            lww_store_check *r, int64_t *dtomb);

/* Runs a check in a read transaction and, only when it found something
 * off, again in a write transaction that fixes it (the state may have
 * moved in between: the second run decides). */
static lww_err
check_then_fix(lww_store *s, check_fn walk, void *arg, lww_store_check *out)
{
	lww_store_check r = {0, 0, 0, 0};
	int64_t dtomb = 0;
	MDB_txn *txn;
	lww_err rv;
	int rc;

	if ((rv = read_begin(s, &txn)) != LWW_OK) {
		return rv;
	}
	rv = walk(s, txn, 0, arg, &r, &dtomb);
	mdb_txn_abort(txn);
	if (rv == LWW_OK && !check_clean(&r)) {
		memset(&r, 0, sizeof(r));
		dtomb = 0;
		if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
			return mdb_err(rc);
		}
		if ((rv = walk(s, txn, 1, arg, &r, &dtomb)) != LWW_OK ||
		    (rv = tomb_add(s, txn, dtomb)) != LWW_OK) {
			mdb_txn_abort(txn);
			return rv;
		}
		rv = mdb_err(mdb_txn_commit(txn));
	}
	if (rv == LWW_OK && out != NULL) {
		*out = r;
	}
	return rv;
}

static lww_err
leaf_check(lww_store *s, MDB_txn *txn, int fix, void *arg, lww_store_check *r,
           int64_t *dtomb)
{
	uint32_t leaf = *(const uint32_t *) arg;
	lww_err rv = leaf_walk(s, txn, leaf, fix, r, dtomb);

	return rv == LWW_OK ? ancestors_walk(s, txn, leaf, fix, r) : rv;
}

lww_err
lww_store_check_leaf(lww_store *s, uint32_t leaf, lww_store_check *out)
{
	if (leaf >= LWW_STORE_LEAVES) {
		return LWW_EINVAL;
	}
	return check_then_fix(s, leaf_check, &leaf, out);
}

/* Checks up to `limit` records in key order after stored key `after`
 * (alen 0: from the first): each must pass its check and have its bucket
 * index record. With fix, drops damaged records and recomputes the leaves
 * they touched. next/nlen get the last stored key looked at. */
static lww_err
keys_walk(lww_store *s, MDB_txn *txn, int fix, const uint8_t *after,
          size_t alen, size_t limit, uint8_t *next, size_t *nlen,
          lww_store_check *r, int64_t *dtomb)
{
	uint32_t redo[64];
	size_t nredo = 0, seen = 0;
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	lww_err rv = LWW_OK;
	int rc;

	*nlen = 0;
	if ((rc = mdb_cursor_open(txn, s->kv, &cur)) != 0) {
		return mdb_err(rc);
	}
	k.mv_size = alen;
	k.mv_data = (void *) after;
	rc = alen ? mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE)
	          : mdb_cursor_get(cur, &k, &d, MDB_FIRST);
	if (rc == 0 && alen && k.mv_size == alen &&
	    memcmp(k.mv_data, after, alen) == 0) {
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT); /* strictly after */
	}
	for (; rc == 0 && seen < limit && nredo < 64;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		uint8_t ik[IDX_KEY_MAX];
		MDB_val ikv, iv;
		lww_entry e;
		lww_digest h;
		uint32_t b;

		seen++;
		r->records++;
		if (k.mv_size > LKEY_MAX) {
			rv = LWW_ECORRUPT; /* not a key this store writes */
			break;
		}
		memcpy(next, k.mv_data, k.mv_size);
		*nlen = k.mv_size;
		if ((rv = rec_decode(&k, &d, &e, &h)) == LWW_ECORRUPT) {
			const uint8_t *check;
			int tomb = 0;
			rv = LWW_OK;
			r->damaged++;
			/* Its leaf: from the key the record names, else from
			 * the key as stored when that is the whole key. */
			if (rec_parse(&k, &d, REC_VERSION, &e, &check) ==
			    LWW_OK) {
				tomb = lww_entry_is_tombstone(&e);
				redo[nredo++] =
				    leaf_of(lww_digest_bucket(e.key, e.klen));
			} else if (k.mv_size <= LWW_STORE_INLINE_KEY) {
				redo[nredo++] = leaf_of(
				    lww_digest_bucket(k.mv_data, k.mv_size));
			} else {
				/* A long key it cannot read: no way to its
				 * leaf from here. Left to the leaf walk (and
				 * lww_store_heal_key), which reach it from its
				 * index record. */
				r->damaged--;
				continue;
			}
			if (fix) {
				if ((rc = mdb_cursor_del(cur, 0)) != 0) {
					rv = mdb_err(rc);
					break;
				}
				*dtomb -= tomb;
			}
			continue;
		}
		if (rv != LWW_OK) {
			break;
		}
		b = lww_digest_bucket(e.key, e.klen);
		put_be32(ik, b);
		memcpy(ik + 4, k.mv_data, k.mv_size);
		ikv.mv_size = 4 + k.mv_size;
		ikv.mv_data = ik;
		rc = mdb_get(txn, s->idx, &ikv, &iv);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 &&
		     (iv.mv_size != LWW_STORE_SUMMARY_HASH ||
		      memcmp(iv.mv_data, h.h, LWW_STORE_SUMMARY_HASH) != 0))) {
			/* A lost or damaged index record: rewrite it; the
			 * leaf's hash is then recomputed from the records. */
			r->index_fixed++;
			redo[nredo++] = leaf_of(b);
			if (fix) {
				MDB_val kc = {k.mv_size, next};
				if ((rc = idx_put(txn, s, b, &kc, &h, 0)) !=
				    0) {
					rv = mdb_err(rc);
					break;
				}
			}
			rc = 0;
		} else if (rc != 0) {
			rv = mdb_err(rc);
			break;
		}
	}
	if (rv == LWW_OK && rc != 0 && rc != MDB_NOTFOUND) {
		rv = mdb_err(rc);
	}
	if (rv == LWW_OK && rc == MDB_NOTFOUND) {
		*nlen = 0; /* the end: the next call starts over */
	}
	mdb_cursor_close(cur);
	for (size_t i = 0; rv == LWW_OK && fix && i < nredo; i++) {
		lww_store_check lr = {0, 0, 0, 0};
		rv = leaf_walk(s, txn, redo[i], 1, &lr, dtomb);
		r->tree_fixed += lr.tree_fixed;
	}
	return rv;
}

typedef struct keys_arg {
	const uint8_t *after;
	size_t alen, limit;
	uint8_t *next;
	size_t *nlen;
} keys_arg;

static lww_err
keys_check(lww_store *s, MDB_txn *txn, int fix, void *arg, lww_store_check *r,
           int64_t *dtomb)
{
	keys_arg *k = arg;
	return keys_walk(s, txn, fix, k->after, k->alen, k->limit, k->next,
	                 k->nlen, r, dtomb);
}

lww_err
lww_store_check_keys(lww_store *s, const uint8_t *after, size_t alen,
                     size_t limit, uint8_t next[LWW_STORE_KEY_MAX],
                     size_t *nlen, lww_store_check *out)
{
	keys_arg k = {after, alen, limit, next, nlen};

	if (alen > LWW_STORE_KEY_MAX || (alen && after == NULL) || limit == 0 ||
	    next == NULL || nlen == NULL) {
		return LWW_EINVAL;
	}
	return check_then_fix(s, keys_check, &k, out);
}

/* Checks the record under stored key skey (and, with leaf >= 0, that
 * tree leaf). */
static lww_err
heal(lww_store *s, const uint8_t *skey, size_t n, int64_t leaf,
     lww_store_check *out)
{
	uint8_t before[LWW_STORE_KEY_MAX], next[LWW_STORE_KEY_MAX];
	lww_store_check r = {0, 0, 0, 0}, lr = {0, 0, 0, 0};
	size_t blen = 0, nlen;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, d;
	lww_err rv;
	int rc;

	/* The stored key just before skey, so that a one-record check
	 * starting after it looks at skey itself. */
	if ((rv = read_begin(s, &txn)) != LWW_OK) {
		return rv;
	}
	if ((rc = mdb_cursor_open(txn, s->kv, &cur)) != 0) {
		mdb_txn_abort(txn);
		return mdb_err(rc);
	}
	k.mv_size = n;
	k.mv_data = (void *) skey;
	rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	if (rc == 0) {
		rc = mdb_cursor_get(cur, &k, &d, MDB_PREV);
	} else if (rc == MDB_NOTFOUND) {
		rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
	}
	if (rc == 0 && k.mv_size <= LWW_STORE_KEY_MAX) {
		memcpy(before, k.mv_data, k.mv_size);
		blen = k.mv_size;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		return mdb_err(rc);
	}
	rv = lww_store_check_keys(s, before, blen, 1, next, &nlen, &r);
	/* A record lost under this key leaves only its index record, which
	 * the leaf check finds. */
	if (rv == LWW_OK && leaf >= 0) {
		rv = lww_store_check_leaf(s, (uint32_t) leaf, &lr);
		r.damaged += lr.damaged;
		r.index_fixed += lr.index_fixed;
		r.tree_fixed += lr.tree_fixed;
	}
	if (rv == LWW_OK && out != NULL) {
		*out = r;
	}
	return rv;
}

lww_err
lww_store_heal(lww_store *s, const uint8_t *skey, size_t n,
               lww_store_check *out)
{
	if (skey == NULL || n == 0 || n > LWW_STORE_KEY_MAX) {
		return LWW_EINVAL;
	}
	return heal(s, skey, n,
	            n <= LWW_STORE_INLINE_KEY
	                ? (int64_t) leaf_of(lww_digest_bucket(skey, n))
	                : -1,
	            out);
}

lww_err
lww_store_heal_key(lww_store *s, const uint8_t *key, size_t klen,
                   lww_store_check *out)
{
	uint8_t sk[LWW_STORE_KEY_MAX];

	if (key == NULL || klen < LWW_KEY_MIN || klen > LWW_KEY_MAX) {
		return LWW_EKEYSIZE;
	}
	return heal(s, sk, lww_store_key(key, klen, sk),
	            leaf_of(lww_digest_bucket(key, klen)), out);
}
