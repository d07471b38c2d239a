/*
 * mem.c - writes in the write-ahead log (synced, or about to be) but
 * not yet in the store, kept readable.
 *
 * Two generations of winners by key: the active one, which the writer
 * merges into, and the frozen one, which the checkpointer is putting into
 * the store. A lookup takes the winner of the two, else the store; the
 * checkpointer drops the frozen generation only after its store commit,
 * so a key is always in at least one of the three. Each generation also
 * keeps the highest batch sequence per origin it holds. Chained hash
 * tables keyed by SipHash with a random key, so remote keys cannot be
 * chosen to collide.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "mem.h"

typedef struct mnode {
	struct mnode *next;
	uint64_t h;
	uint64_t hlc, node;
	uint32_t klen, vlen;
	uint8_t flags;
	uint8_t data[]; /* key, then value */
} mnode;

typedef struct mseq {
	uint64_t node, seq;
} mseq;

typedef struct mtab {
	mnode **b;
	size_t nb; /* buckets, a power of two (0: none yet) */
	size_t n;
	size_t bytes;
	mseq *seqs;
	size_t nseqs, capseqs;
} mtab;

struct lwwd_mem {
	pthread_mutex_t mtx; /* the tables' shape; entries never change */
	uint8_t key[crypto_shorthash_KEYBYTES];
	mtab gen[2];
	int active; /* index of the active generation */
	int frozen; /* the other one holds a frozen generation */
};

static uint64_t
key_hash(const struct lwwd_mem *m, const uint8_t *k, size_t n)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, k, n, m->key);
	memcpy(&v, h, sizeof(v));
	return v;
}

static mnode **
slot(const mtab *t, uint64_t h, const uint8_t *k, size_t n)
{
	mnode **p;

	if (t->nb == 0) {
		return NULL;
	}
	for (p = &t->b[h & (t->nb - 1)]; *p != NULL; p = &(*p)->next) {
		if ((*p)->h == h && (*p)->klen == n &&
		    memcmp((*p)->data, k, n) == 0) {
			return p;
		}
	}
	return p;
}

static void
node_entry(const mnode *x, lww_entry *e)
{
	e->key = x->data;
	e->klen = x->klen;
	e->val = x->data + x->klen;
	e->vlen = x->vlen;
	e->hlc = x->hlc;
	e->node = x->node;
	e->flags = x->flags;
}

static int
grow(mtab *t)
{
	size_t nb = t->nb ? t->nb * 2 : 1024;
	mnode **b = calloc(nb, sizeof(*b));

	if (b == NULL) {
		return -1;
	}
	for (size_t i = 0; i < t->nb; i++) {
		mnode *x, *next;
		for (x = t->b[i]; x != NULL; x = next) {
			next = x->next;
			x->next = b[x->h & (nb - 1)];
			b[x->h & (nb - 1)] = x;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

static void
tab_clear(mtab *t)
{
	for (size_t i = 0; i < t->nb; i++) {
		mnode *x, *next;
		for (x = t->b[i]; x != NULL; x = next) {
			next = x->next;
			free(x);
		}
	}
	free(t->b);
	free(t->seqs);
	memset(t, 0, sizeof(*t));
}

lwwd_mem *
lwwd_mem_alloc(void)
{
	lwwd_mem *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		return NULL;
	}
	pthread_mutex_init(&m->mtx, NULL);
	randombytes_buf(m->key, sizeof(m->key));
	return m;
}

void
lwwd_mem_free(lwwd_mem *m)
{
	if (m == NULL) {
		return;
	}
	tab_clear(&m->gen[0]);
	tab_clear(&m->gen[1]);
	pthread_mutex_destroy(&m->mtx);
	free(m);
}

int
lwwd_mem_get(lwwd_mem *m, const uint8_t *key, size_t klen, lww_buf *vbuf,
             lww_entry *out)
{
	uint64_t h = key_hash(m, key, klen);
	lww_entry best, e;
	int found = 0;

	pthread_mutex_lock(&m->mtx);
	for (int i = 0; i < 2; i++) {
		const mtab *t = &m->gen[i == 0 ? m->active : !m->active];
		mnode **p;
		if (i == 1 && !m->frozen) {
			break;
		}
		/* Both generations, as range_get does: the writer only merges
		 * what beats the node's winner into the active one, but a
		 * lookup must not depend on that to return the winner. */
		if ((p = slot(t, h, key, klen)) != NULL && *p != NULL) {
			node_entry(*p, &e);
			if (!found || lww_entry_wins(&e, &best)) {
				best = e;
				found = 1;
			}
		}
	}
	if (found) {
		lww_buf_reset(vbuf);
		if (lww_buf_put(vbuf, best.val, best.vlen) != LWW_OK) {
			found = -1;
		} else {
			best.key = key;
			best.val = vbuf->p;
			*out = best;
		}
	}
	pthread_mutex_unlock(&m->mtx);
	return found;
}

lww_err
lwwd_mem_put(lwwd_mem *m, const lww_entry *e)
{
	uint64_t h = key_hash(m, e->key, e->klen);
	mtab *t;
	mnode **p, *x;
	lww_err rv = LWW_OK;

	x = malloc(sizeof(*x) + e->klen + e->vlen);
	if (x == NULL) {
		return LWW_ENOMEM;
	}
	x->next = NULL;
	x->h = h;
	x->hlc = e->hlc;
	x->node = e->node;
	x->klen = (uint32_t) e->klen;
	x->vlen = (uint32_t) e->vlen;
	x->flags = e->flags;
	memcpy(x->data, e->key, e->klen);
	if (e->vlen > 0) {
		memcpy(x->data + e->klen, e->val, e->vlen);
	}
	pthread_mutex_lock(&m->mtx);
	t = &m->gen[m->active];
	if ((t->n + 1 > t->nb && grow(t) != 0) ||
	    (p = slot(t, h, e->key, e->klen)) == NULL) {
		rv = LWW_ENOMEM;
		free(x);
	} else if (*p == NULL) {
		*p = x;
		t->n++;
		t->bytes += e->klen + e->vlen;
	} else {
		lww_entry cur;
		node_entry(*p, &cur);
		if (lww_entry_wins(e, &cur)) {
			x->next = (*p)->next;
			t->bytes += e->vlen - cur.vlen;
			free(*p);
			*p = x;
		} else {
			free(x);
		}
	}
	pthread_mutex_unlock(&m->mtx);
	return rv;
}

lww_err
lwwd_mem_note_seq(lwwd_mem *m, uint64_t node, uint64_t seq)
{
	mtab *t = &m->gen[m->active];
	size_t i;

	/* The writer alone touches the active generation's sequences. */
	for (i = 0; i < t->nseqs; i++) {
		if (t->seqs[i].node == node) {
			if (seq > t->seqs[i].seq) {
				t->seqs[i].seq = seq;
			}
			return LWW_OK;
		}
	}
	if (t->nseqs == t->capseqs) {
		size_t cap = t->capseqs ? t->capseqs * 2 : 8;
		mseq *s = realloc(t->seqs, cap * sizeof(*s));
		if (s == NULL) {
			return LWW_ENOMEM;
		}
		t->seqs = s;
		t->capseqs = cap;
	}
	t->seqs[t->nseqs++] = (mseq){node, seq};
	return LWW_OK;
}

size_t
lwwd_mem_active(lwwd_mem *m, size_t *bytes)
{
	size_t n;

	pthread_mutex_lock(&m->mtx);
	n = m->gen[m->active].n + m->gen[m->active].nseqs;
	if (bytes != NULL) {
		*bytes = m->gen[m->active].bytes;
	}
	pthread_mutex_unlock(&m->mtx);
	return n;
}

int
lwwd_mem_freeze(lwwd_mem *m)
{
	int rv = -1;

	pthread_mutex_lock(&m->mtx);
	if (!m->frozen) {
		m->active = !m->active;
		m->frozen = 1;
		rv = 0;
	}
	pthread_mutex_unlock(&m->mtx);
	return rv;
}

/* Byte order of keys, shorter first. */
static int
node_cmp(const void *a, const void *b)
{
	lww_entry x, y;

	node_entry(*(const mnode *const *) a, &x);
	node_entry(*(const mnode *const *) b, &y);
	return lww_entry_key_cmp(&x, &y);
}

lww_err
lwwd_mem_frozen_each(lwwd_mem *m, lww_err (*fn)(const lww_entry *, void *),
                     lww_err (*seq)(uint64_t, uint64_t, void *), void *arg)
{
	const mtab *t;
	lww_err rv = LWW_OK;

	/* The frozen generation does not change until it is dropped, and
	 * only the caller (the checkpointer) drops it. */
	pthread_mutex_lock(&m->mtx);
	t = m->frozen ? &m->gen[!m->active] : NULL;
	pthread_mutex_unlock(&m->mtx);
	if (t == NULL) {
		return LWW_OK;
	}
	/* In key order: the store's B-trees then fill pages as a sorted
	 * load does, and each transaction touches neighbouring pages. */
	mnode **v = malloc((t->n ? t->n : 1) * sizeof(*v));
	size_t n = 0;
	if (v == NULL) {
		return LWW_ENOMEM;
	}
	for (size_t i = 0; i < t->nb; i++) {
		for (mnode *x = t->b[i]; x != NULL; x = x->next) {
			v[n++] = x;
		}
	}
	qsort(v, n, sizeof(*v), node_cmp);
	for (size_t i = 0; i < n && rv == LWW_OK; i++) {
		lww_entry e;
		node_entry(v[i], &e);
		rv = fn(&e, arg);
	}
	free(v);
	for (size_t i = 0; i < t->nseqs && rv == LWW_OK; i++) {
		rv = seq(t->seqs[i].node, t->seqs[i].seq, arg);
	}
	return rv;
}

void
lwwd_mem_drop_frozen(lwwd_mem *m)
{
	mtab old;

	pthread_mutex_lock(&m->mtx);
	if (!m->frozen) {
		pthread_mutex_unlock(&m->mtx);
		return;
	}
	old = m->gen[!m->active];
	memset(&m->gen[!m->active], 0, sizeof(old));
	m->frozen = 0;
	pthread_mutex_unlock(&m->mtx);
	tab_clear(&old); /* freed outside the lock */
}

/* Whether x's key is in a list page's range (lww_entry_key_in). */
static int
in_range(const mnode *x, const uint8_t *prefix, size_t plen,
         const uint8_t *after, size_t alen)
{
	lww_entry e;

	node_entry(x, &e);
	return lww_entry_key_in(&e, prefix, plen, after, alen);
}

static int
entry_key_cmp(const void *a, const void *b)
{
	int c = lww_entry_key_cmp(a, b);
	return c != 0 ? c : -lww_entry_cmp(a, b); /* the winner first */
}

lww_err
lwwd_mem_range_get(lwwd_mem *m, const uint8_t *prefix, size_t plen,
                   const uint8_t *after, size_t alen, lwwd_mem_range *out)
{
	size_t n = 0, bytes = 0, off = 0, k = 0;
	lwwd_mem_range r = {NULL, 0, NULL};

	pthread_mutex_lock(&m->mtx);
	for (int g = 0; g < 2; g++) {
		const mtab *t = &m->gen[g];
		if (g != m->active && !m->frozen) {
			continue;
		}
		for (size_t i = 0; i < t->nb; i++) {
			for (mnode *x = t->b[i]; x != NULL; x = x->next) {
				if (in_range(x, prefix, plen, after, alen)) {
					n++;
					bytes += x->klen + x->vlen;
				}
			}
		}
	}
	if (n > 0 && ((r.v = malloc(n * sizeof(*r.v))) == NULL ||
	              (r.bytes = malloc(bytes ? bytes : 1)) == NULL)) {
		pthread_mutex_unlock(&m->mtx);
		free(r.v);
		return LWW_ENOMEM;
	}
	for (int g = 0; g < 2 && n > 0; g++) {
		const mtab *t = &m->gen[g];
		if (g != m->active && !m->frozen) {
			continue;
		}
		for (size_t i = 0; i < t->nb; i++) {
			for (mnode *x = t->b[i]; x != NULL; x = x->next) {
				lww_entry *e = &r.v[k];
				if (!in_range(x, prefix, plen, after, alen)) {
					continue;
				}
				node_entry(x, e);
				memcpy(r.bytes + off, x->data,
				       x->klen + x->vlen);
				e->key = r.bytes + off;
				e->val = r.bytes + off + x->klen;
				off += x->klen + x->vlen;
				k++;
			}
		}
	}
	pthread_mutex_unlock(&m->mtx);
	/* Key order; of a key in both generations, only the winner. */
	if (n > 1) {
		qsort(r.v, n, sizeof(*r.v), entry_key_cmp);
	}
	for (size_t i = 0; i < n; i++) {
		if (r.n > 0 && r.v[r.n - 1].klen == r.v[i].klen &&
		    memcmp(r.v[r.n - 1].key, r.v[i].key, r.v[i].klen) == 0) {
			continue;
		}
		r.v[r.n++] = r.v[i];
	}
	*out = r;
	return LWW_OK;
}

void
lwwd_mem_range_free(lwwd_mem_range *r)
{
	free(r->v);
	free(r->bytes);
	memset(r, 0, sizeof(*r));
}
