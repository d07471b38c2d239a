/*
 * clock.c - this node's clock against its peers: measure, fence, recover.
 *
 * One thread probes every peer once a second over the peer's sync (repair)
 * socket with a signed CLOCK_REQ, on a REQ socket of its own (the repair
 * client's is busy with rounds), and feeds the samples to core/skew.c. It
 * publishes each peer's offset (peer table) and the node's own offset from
 * the fleet median (stats), and decides the fence:
 *
 * - ahead: the fleet (at least two answering peers) says this clock is
 *   more than max_drift/2 ahead. Local writes are refused (LWW_ECLOCK)
 *   until it is back within max_drift/4; reads, gossip and repair go on.
 * - future mark: the clock's high-water mark (persisted, or stamped while
 *   the wall clock ran ahead) is beyond max_drift ahead of the wall
 *   clock, so every stamp issued now would be refused by the peers.
 *   Local writes are refused until one answering peer confirms the wall
 *   clock; then the node waits for the store to hold every logged write,
 *   re-issues its own writes stamped in the future at the corrected time
 *   (lww_txn_replace, chunked transactions, reported per key), lowers the
 *   persisted mark, has the writer lower its clock (lwwd_clock_writer_before)
 *   and unfences. Peers fetch the re-issued writes by repair.
 *
 * Every transition is one warn line. The repair server answers probes
 * (lwwd_clock_probe_reply) with how many entries stamped by the asker it
 * refused as beyond max drift, so an origin learns that its writes did
 * not replicate (stats clock.refused_by_peers, peers, a warn line).
 *
 * Every wait is on the monotonic clock; probes are cancelled at their
 * deadline rather than timed by nng (which times on the wall clock).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "limits.h"
#include "lwwd.h"
#include "skew.h"

#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#define PROBE_EVERY_MS   1000
#define PROBE_TIMEOUT_MS 800
/* A round's time after which failing peers wait for the next round. */
#define PROBE_ROUND_MS 3000
/* A failing peer is probed at least every this many rounds. */
#define PROBE_BACKOFF_MAX 8
/* Distinct stamping nodes whose drift refusals are counted. */
#define REFUSED_NODES_MAX 256
/* Stranded entries a recovery handles per store transaction, as the
 * checkpointer (LWW_CKPT_TXN_ENTRIES). */
#define REBASE_TXN_ENTRIES 4096
/* A failed recovery is retried after 1 s, doubling up to this: each try
 * scans the store and asks every peer. */
#define REBASE_BACKOFF_MAX_MS 60000
/* A recovery waits this long for every configured peer to answer before
 * it keeps the stranded keys a silent one may hold newer writes of at
 * their stamps: after a power cut the fleet restarts together, and a
 * peer a second slower than this node must not strand its keys for the
 * hour its clock ran ahead. */
#define REBASE_PEER_WAIT_MS 10000
/* Re-issued keys named one per log line; the rest are counted. */
#define REISSUE_LOG_MAX 20

enum { FENCE_NONE = 0, FENCE_AHEAD = 1, FENCE_MARK = 2 };

typedef struct clock_peer {
	char *url;
	nng_socket sock;
	int open;
	uint64_t node; /* learned from its first signed reply */
	char name[LWW_TRUST_NAME_MAX + 1];
	lww_skew_peer skew;
	uint64_t refused; /* its count of our entries it refused */
	int heard;        /* a reply came since this node started */
	unsigned fails;   /* probes failed in a row */
	unsigned skip;    /* rounds left to skip it (a dead peer) */
	int answered;     /* its last probe was answered */
} clock_peer;

typedef struct refused_from {
	uint64_t node;
	uint64_t n;
} refused_from;

struct lwwd_clock {
	clock_peer *peers;
	size_t npeers;
	nng_aio *aio;
	pthread_mutex_t mtx; /* done, and the thread's stop */
	lwwd_thr thr;        /* woken by probe_cb and the stop */
	int done;
	uint64_t threshold; /* ms ahead of the fleet that fences */
	lww_skew_state state;
	int fence; /* FENCE_* as last logged */
	/* A failed recovery's next try (monotonic ms) and the wait before
	 * it, doubled at each failure (the clock thread's). */
	uint64_t rebase_due, rebase_backoff;
	/* When this recovery first found a configured peer silent (0: not
	 * yet; the clock thread's). */
	uint64_t rebase_wait_since;
	/* For the API: what fences, and the figures for its message. */
	_Atomic int fenced;
	_Atomic int64_t fence_ms;
	_Atomic uint64_t fence_peers;
	/* The writer's clock: published by it, lowered through rebase_to.
	 * The writer holds wmtx from before it stamps a group until it
	 * has logged it and published its clock, so that once the fence
	 * is set under wmtx no later local write is stamped, every earlier
	 * one is logged, and no stale mark is published over a rebase. */
	pthread_mutex_t wmtx;
	int wfenced; /* the fence as the writer saw it (under wmtx) */
	/* The greatest remote stamp the writer observed since the current
	 * recovery attempt began (under wmtx): the store scan cannot see
	 * what is logged after its barrier, so the clock is never lowered
	 * below it (a write after a read would be stamped below the value
	 * read, and lose). */
	uint64_t seen_max;
	lwwd_log_limit held_log; /* clock_key_held lines (under wmtx) */
	_Atomic uint64_t hlc_pub;
	_Atomic uint64_t rebase_to;
	uint64_t rebase_held; /* d->held_max with rebase_to (under wmtx) */
	_Atomic int behind;   /* the mark fence's clock is behind the peers */
	/* Entries of other nodes this node refused as beyond max drift. */
	pthread_mutex_t rmtx;
	refused_from refused[REFUSED_NODES_MAX];
	size_t nrefused;
};

/* ---- for the writer and the repair server ---- */

void
lwwd_clock_writer_before(lwwd *d)
{
	struct lwwd_clock *c = d->clock;
	uint64_t to;

	if (c == NULL) {
		return;
	}
	pthread_mutex_lock(&c->wmtx);
	c->wfenced = atomic_load(&c->fenced) != FENCE_NONE;
	if ((to = atomic_exchange(&c->rebase_to, 0)) != 0) {
		lww_hlc_rebase(&d->hlc, to > c->seen_max ? to : c->seen_max);
		/* What the recovery persisted with the lowered mark, which
		 * its scan found complete: replaces what an earlier one
		 * kept (still stored, it was scanned again). */
		d->held_max = c->rebase_held;
	}
}

void
lwwd_clock_writer_observed(lwwd *d, uint64_t stamp)
{
	struct lwwd_clock *c = d->clock;

	/* Under wmtx (between _before and _after). */
	if (c != NULL && stamp > c->seen_max) {
		c->seen_max = stamp;
	}
}

int
lwwd_clock_writer_fenced(lwwd *d)
{
	struct lwwd_clock *c = d->clock;

	if (c == NULL || !c->wfenced) {
		return 0;
	}
	atomic_fetch_add(&d->stats.clock_writes_refused, 1);
	return 1;
}

void
lwwd_clock_writer_held(lwwd *d, const uint8_t *key, size_t klen, uint64_t held)
{
	struct lwwd_clock *c = d->clock;
	char kb[LWW_LOG_KEY_MAX];
	uint64_t skipped = 0;

	atomic_fetch_add(&d->stats.clock_writes_refused, 1);
	/* A client retrying such a key would flood the log otherwise. */
	if (c != NULL &&
	    !lwwd_log_due(&c->held_log, 1, LWWD_LOG_GAP_US, &skipped)) {
		return;
	}
	lwwd_log(LWWD_LOG_WARN, "clock_key_held",
	         "key=%s stamp_ms=%llu now_ms=%llu not_logged_since=%llu (this "
	         "node holds a write of the key stamped in the future, above "
	         "its clock since a recovery lowered it: a write now would "
	         "lose to it, refused until the clock passes that stamp)",
	         lwwd_log_key(kb, sizeof(kb), key, klen),
	         (unsigned long long) lww_hlc_wall(held),
	         (unsigned long long) lwwd_now_ms(),
	         (unsigned long long) skipped);
}

void
lwwd_clock_writer_after(lwwd *d)
{
	struct lwwd_clock *c = d->clock;

	if (c == NULL) {
		return;
	}
	/* Under wmtx: a rebase sets rebase_to and hlc_pub under it too, so
	 * this never publishes the old mark over it. */
	if (atomic_load(&c->rebase_to) == 0) {
		atomic_store(&c->hlc_pub, d->hlc.last);
	}
	pthread_mutex_unlock(&c->wmtx);
}

void
lwwd_clock_note_refused(lwwd *d, uint64_t node)
{
	struct lwwd_clock *c = d->clock;

	if (c == NULL) {
		return;
	}
	pthread_mutex_lock(&c->rmtx);
	for (size_t i = 0; i < c->nrefused; i++) {
		if (c->refused[i].node == node) {
			c->refused[i].n++;
			pthread_mutex_unlock(&c->rmtx);
			return;
		}
	}
	if (c->nrefused < REFUSED_NODES_MAX) {
		c->refused[c->nrefused].node = node;
		c->refused[c->nrefused].n = 1;
		c->nrefused++;
	}
	pthread_mutex_unlock(&c->rmtx);
}

lww_err
lwwd_clock_probe_reply(lwwd *d, uint64_t node, const uint8_t *p, size_t n,
                       uint64_t t2, lww_buf *out)
{
	struct lwwd_clock *c = d->clock;
	lww_clock_probe r = {0, t2, 0, 0};
	lww_err rv;

	if ((rv = lww_clock_req_decode(p, n, &r.t1)) != LWW_OK) {
		return rv;
	}
	if (c != NULL) {
		pthread_mutex_lock(&c->rmtx);
		for (size_t i = 0; i < c->nrefused; i++) {
			if (c->refused[i].node == node) {
				r.refused = c->refused[i].n;
			}
		}
		pthread_mutex_unlock(&c->rmtx);
	}
	r.t3 = lwwd_now_ms();
	if (r.t3 < r.t2) {
		r.t3 = r.t2; /* our clock stepped back meanwhile */
	}
	return lww_clock_rep_encode(out, &r);
}

/* ---- for the API ---- */

int
lwwd_clock_refuse(lwwd *d, char *msg, size_t cap)
{
	struct lwwd_clock *c = d->clock;
	int f;

	if (c == NULL || (f = atomic_load(&c->fenced)) == FENCE_NONE) {
		return 0;
	}
	if (f == FENCE_AHEAD) {
		snprintf(msg, cap,
		         "this node's clock is %lld ms ahead of its peers "
		         "(median of %llu): local writes are refused until it "
		         "agrees again; fix time sync (NTP) on this machine",
		         (long long) atomic_load(&c->fence_ms),
		         (unsigned long long) atomic_load(&c->fence_peers));
	} else if (atomic_load(&c->behind)) {
		snprintf(msg, cap,
		         "this node's clock is behind its peers and %lld ms "
		         "behind its own high-water mark (a dead RTC or a "
		         "clock set back?): local writes are refused, they "
		         "would be stamped at a wrong time; fix time sync "
		         "(NTP) on this machine",
		         (long long) atomic_load(&c->fence_ms));
	} else {
		snprintf(
		    msg, cap,
		    "this node's clock high-water mark is %lld ms ahead of "
		    "its wall clock (it ran ahead before): local writes "
		    "resume once the peers confirm the clock; check time "
		    "sync (NTP) and that peers are reachable",
		    (long long) atomic_load(&c->fence_ms));
	}
	atomic_fetch_add(&d->stats.clock_writes_refused, 1);
	return 1;
}

/* ---- probing ---- */

static void
probe_cb(void *arg)
{
	struct lwwd_clock *c = arg;

	pthread_mutex_lock(&c->mtx);
	c->done = 1;
	lwwd_thr_wake(&c->thr);
	pthread_mutex_unlock(&c->mtx);
}

/* Waits for the aio started after `c->done = 0` until the monotonic
 * deadline, then cancels it; returns its result. */
static int
aio_finish(struct lwwd_clock *c, uint64_t deadline_us)
{
	pthread_mutex_lock(&c->mtx);
	/* The deadline is checked here, not taken from the wait's result. */
	while (!c->done && lwwd_mono_us() < deadline_us &&
	       !lwwd_thr_wait(&c->thr, deadline_us)) {
	}
	pthread_mutex_unlock(&c->mtx);
	nng_aio_cancel(c->aio);
	nng_aio_wait(c->aio);
	return nng_aio_result(c->aio);
}

static void
aio_arm(struct lwwd_clock *c)
{
	pthread_mutex_lock(&c->mtx);
	c->done = 0;
	pthread_mutex_unlock(&c->mtx);
}

/* One signed request to a peer's sync socket and its signed reply, by
 * the monotonic deadline: 0 and the reply (the caller frees it), its
 * signer in *signer. */
static int
rpc(lwwd *d, clock_peer *p, const lww_buf *req, lww_buf *env, uint64_t deadline,
    nng_msg **rep, lww_envelope *e, lwwd_signer *signer)
{
	struct lwwd_clock *c = d->clock;
	nng_msg *m;
	lww_err rv;
	int nrv;

	lww_buf_reset(env);
	if (lww_envelope_seal(&d->key, req->p, req->len, env) != LWW_OK ||
	    lwwd_msg_new(&m, env->p, env->len) != 0) {
		return -1;
	}
	aio_arm(c);
	nng_aio_set_msg(c->aio, m);
	nng_send_aio(p->sock, c->aio);
	if ((nrv = aio_finish(c, deadline)) != 0) {
		lwwd_log(LWWD_LOG_DEBUG, "clock_probe_failed",
		         "url=%s stage=send reason=\"%s\"", p->url,
		         nng_strerror(nrv));
		if ((m = nng_aio_get_msg(c->aio)) != NULL) {
			nng_msg_free(m);
		}
		nng_aio_set_msg(c->aio, NULL);
		return -1;
	}
	nng_aio_set_msg(c->aio, NULL);
	aio_arm(c);
	nng_recv_aio(p->sock, c->aio);
	if ((nrv = aio_finish(c, deadline)) != 0) {
		lwwd_log(LWWD_LOG_DEBUG, "clock_probe_failed",
		         "url=%s stage=receive reason=\"%s\"", p->url,
		         nng_strerror(nrv));
		return -1;
	}
	m = nng_aio_get_msg(c->aio);
	nng_aio_set_msg(c->aio, NULL);
	/* Our own sync socket (a loop) is LWW_EFORGED. */
	rv = lwwd_verify(d, 0, nng_msg_body(m), nng_msg_len(m), e, signer);
	if (rv != LWW_OK) {
		nng_msg_free(m);
		return -1;
	}
	*rep = m;
	return 0;
}

/* One probe of one peer; 0 and a sample on success. */
static int
probe(lwwd *d, clock_peer *p, lww_buf *req, lww_buf *env, lww_skew_sample *out)
{
	uint64_t t1 = lwwd_now_ms(), m1 = lwwd_mono_ms(), t4, m4;
	uint64_t deadline = lwwd_mono_us() + PROBE_TIMEOUT_MS * 1000;
	lww_clock_probe r;
	lww_envelope e;
	lwwd_signer signer;
	nng_msg *m;
	lww_err rv;

	lww_buf_reset(req);
	if (lww_clock_req_encode(req, t1) != LWW_OK ||
	    rpc(d, p, req, env, deadline, &m, &e, &signer) != 0) {
		return -1;
	}
	t4 = lwwd_now_ms();
	m4 = lwwd_mono_ms();
	rv = lww_clock_rep_decode(e.payload, e.plen, &r);
	nng_msg_free(m);
	if (rv != LWW_OK || r.t1 != t1) {
		return -1;
	}
	p->node = signer.node;
	memcpy(p->name, signer.name, sizeof(p->name));
	if (lww_skew_sample_make(t1, r.t2, r.t3, t4, m4 - m1, m4, out) !=
	    LWW_OK) {
		return -1;
	}
	if (!p->heard) {
		/* The peer's count runs since it started; what it refused
		 * before this node's first contact since this node started
		 * was counted by an earlier run, or before we asked: a
		 * baseline, logged, not counted again at every restart. */
		p->heard = 1;
		if (r.refused > 0) {
			lwwd_log(LWWD_LOG_INFO, "writes_refused_by_peer_before",
			         "peer=%s entries=%llu (refused before this "
			         "node's first contact since it started: not "
			         "counted in clock.refused_by_peers)",
			         p->name, (unsigned long long) r.refused);
		}
	} else if (r.refused > p->refused) {
		atomic_fetch_add(&d->stats.clock_refused_by_peers,
		                 r.refused - p->refused);
		lwwd_log(LWWD_LOG_WARN, "writes_refused_by_peer",
		         "peer=%s entries=%llu total=%llu reason=\"stamp "
		         "beyond max drift: this node's clock runs ahead of "
		         "the peer's\"",
		         p->name, (unsigned long long) (r.refused - p->refused),
		         (unsigned long long) r.refused);
	}
	p->refused = r.refused;
	return 0;
}

/* Copies a peer's estimate into the peer table (by node id). */
static void
publish_peer(lwwd *d, const clock_peer *p, const lww_skew_sample *best,
             int have)
{
	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < d->npeers; i++) {
		lwwd_peer_state *ps = &d->peers[i];
		if (ps->node != p->node) {
			continue;
		}
		ps->clock_known = have;
		if (have) {
			ps->clock_offset_ms = best->offset_ms;
			ps->clock_unc_ms = best->delay_ms / 2;
		}
		ps->clock_refused = p->refused;
	}
	pthread_mutex_unlock(&d->mtx);
}

/* ---- recovery from a high-water mark in the future ---- */

enum {
	V_REISSUE = 0, /* no asked peer holds the key: re-issue */
	V_NEWER = 1,   /* a peer holds another write of it: adopt that */
	V_UNKNOWN = 2, /* a peer could not tell: keep, export */
	V_HELD = 3,    /* a peer holds this very write: keep, export */
	V_UNASKED = 4, /* a configured peer did not answer: keep, export */
};

typedef struct stranded {
	lww_entry e;
	uint8_t *bytes; /* key then value */
	int verdict;
	int seen;     /* in the reply being read */
	lww_entry pe; /* V_NEWER: the greatest peer's write of the key */
	uint8_t *pbytes;
	char held_by[LWW_TRUST_NAME_MAX + 1];
} stranded;

typedef struct find_acc {
	lwwd *d;
	uint64_t now_ms;
	uint64_t legit;       /* greatest stamp not beyond max drift */
	uint64_t foreign;     /* other nodes' entries beyond max drift */
	uint64_t foreign_max; /* their greatest stamp (kept as they are) */
	stranded *v;
	size_t n, cap;
	int failed;
} find_acc;

/* A copy of e whose key and value live in *bytes (malloc'd). */
static int
entry_copy(const lww_entry *e, lww_entry *out, uint8_t **bytes)
{
	if ((*bytes = malloc(e->klen + e->vlen + 1)) == NULL) {
		return -1;
	}
	*out = *e;
	memcpy(*bytes, e->key, e->klen);
	if (e->vlen > 0) {
		memcpy(*bytes + e->klen, e->val, e->vlen);
	}
	out->key = *bytes;
	out->val = e->vlen > 0 ? *bytes + e->klen : NULL;
	return 0;
}

static int
find_cb(const lww_entry *e, void *arg)
{
	find_acc *a = arg;
	uint64_t w = lww_hlc_wall(e->hlc);
	stranded *s;

	if (e->node != a->d->self || w <= a->now_ms) {
		if (w <= a->now_ms + a->d->cfg.max_drift) {
			if (e->hlc > a->legit) {
				a->legit = e->hlc;
			}
		} else {
			a->foreign++;
			if (e->hlc > a->foreign_max) {
				a->foreign_max = e->hlc;
			}
		}
		return 0;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		stranded *v = realloc(a->v, cap * sizeof(*v));
		if (v == NULL) {
			a->failed = 1;
			return 1;
		}
		a->v = v;
		a->cap = cap;
	}
	s = &a->v[a->n];
	memset(s, 0, sizeof(*s));
	if (entry_copy(e, &s->e, &s->bytes) != 0) {
		a->failed = 1;
		return 1;
	}
	a->n++;
	return 0;
}

static void
find_free(find_acc *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].bytes);
		free(a->v[i].pbytes);
	}
	free(a->v);
}

/* Whether the logged (not yet stored) writes hold one of ours stamped
 * after now: the store must hold them all before they are re-issued.
 * The greatest stamp of any logged entry, any node's, into *mem_max. */
static int
logged_future(lwwd *d, uint64_t now_ms, uint64_t *mem_max)
{
	lwwd_mem_range r;
	int found = 0;

	*mem_max = 0;
	if (lwwd_mem_range_get(lwwd_ckpt_mem(d), NULL, 0, NULL, 0, &r) !=
	    LWW_OK) {
		return 1;
	}
	for (size_t i = 0; i < r.n; i++) {
		if (r.v[i].node == d->self &&
		    lww_hlc_wall(r.v[i].hlc) > now_ms) {
			found = 1;
		}
		if (r.v[i].hlc > *mem_max) {
			*mem_max = r.v[i].hlc;
		}
	}
	lwwd_mem_range_free(&r);
	return found;
}

/* Leaves asked for in one request (a reply holds at most about
 * LWW_SYNC_REPLY_BYTES_TARGET and says how many leaves it served). */
#define ASK_LEAVES 256

static uint32_t
leaf_of(const lww_entry *e)
{
	return lww_digest_index(lww_digest_bucket(e->key, e->klen),
	                        LWW_DIGEST_STORED);
}

/* Stranded writes in order of leaf, then key: the order asked in. */
static int
stranded_cmp(const void *x, const void *y)
{
	const stranded *a = x, *b = y;
	uint32_t la = leaf_of(&a->e), lb = leaf_of(&b->e);

	if (la != lb) {
		return la < lb ? -1 : 1;
	}
	return lww_entry_key_cmp(&a->e, &b->e);
}

/* The stranded write with e's key among v[lo, hi), or NULL. */
static stranded *
stranded_find(stranded *v, size_t lo, size_t hi, const lww_entry *e)
{
	uint32_t le = leaf_of(e);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t lm = leaf_of(&v[mid].e);
		int c = lm != le ? (lm < le ? -1 : 1)
		                 : lww_entry_key_cmp(&v[mid].e, e);
		if (c == 0) {
			return &v[mid];
		}
		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return NULL;
}

/* Folds what peer p holds for s's key (pe) into s's verdict. */
static int
fold(lwwd *d, stranded *s, const lww_entry *pe, const char *peer)
{
	if (pe->hlc == s->e.hlc && pe->node == s->e.node) {
		s->verdict = V_HELD;
		snprintf(s->held_by, sizeof(s->held_by), "%s", peer);
	} else if (lww_hlc_check(&d->hlc, pe->hlc) != LWW_OK) {
		/* Another write stamped beyond the drift horizon (that peer's
		 * clock ran ahead): adopting it would take in a stamp that
		 * gossip and repair refuse, and nobody can tell which write
		 * is newer. (Reads only the clock's wall function and drift,
		 * fixed before this thread starts.) */
		if (s->verdict < V_UNKNOWN) {
			s->verdict = V_UNKNOWN;
		}
	} else if (s->verdict <= V_NEWER &&
	           (s->pbytes == NULL || lww_entry_wins(pe, &s->pe))) {
		free(s->pbytes);
		s->pbytes = NULL;
		if (entry_copy(pe, &s->pe, &s->pbytes) != 0) {
			return -1;
		}
		s->verdict = V_NEWER;
	}
	return 0;
}

/* Asks peer p, by repair's leaf request (no summaries: the whole leaf),
 * what it holds for each stranded key (a->v sorted by stranded_cmp), and
 * folds the answers into the verdicts. 0 if it answered all. */
static int
ask_peer(lwwd *d, clock_peer *p, find_acc *a, lww_buf *req, lww_buf *env)
{
	size_t i = 0;

	while (i < a->n) {
		uint64_t deadline = lwwd_mono_us() + PROBE_TIMEOUT_MS * 1000;
		size_t j = i, nleaves = 0, end;
		uint32_t last = 0;
		lww_leaf_rep rep;
		lww_envelope e;
		lwwd_signer signer;
		lww_entry pe;
		size_t off = 0;
		nng_msg *m;

		lww_buf_reset(req);
		if (lww_leaf_req_begin(req) != LWW_OK) {
			return -1;
		}
		/* Distinct leaves from i on. */
		for (; j < a->n; j++) {
			uint32_t l = leaf_of(&a->v[j].e);
			if (nleaves > 0 && l == last) {
				continue;
			}
			if (nleaves == ASK_LEAVES ||
			    lww_leaf_req_add(req, l, NULL, 0) != LWW_OK) {
				break;
			}
			last = l;
			nleaves++;
		}
		if (rpc(d, p, req, env, deadline, &m, &e, &signer) != 0) {
			return -1;
		}
		if (lww_leaf_rep_decode(e.payload, e.plen, &rep) != LWW_OK ||
		    rep.done > nleaves) {
			nng_msg_free(m);
			return -1;
		}
		/* The stranded writes of the leaves fully served, or of the
		 * first if it alone overflowed the reply. */
		end = i;
		for (size_t k = 0; end < a->n; end++) {
			uint32_t l = leaf_of(&a->v[end].e);
			if (end > i && l != leaf_of(&a->v[end - 1].e)) {
				k++;
			}
			if (k == (rep.done > 0 ? rep.done : 1)) {
				break;
			}
		}
		while (lww_entries_next(&rep.entries, &off, &pe)) {
			stranded *s = stranded_find(a->v, i, end, &pe);
			if (s != NULL) {
				s->seen = 1;
				if (fold(d, s, &pe, signer.name) != 0) {
					nng_msg_free(m);
					return -1;
				}
			}
		}
		nng_msg_free(m);
		for (size_t k = i; k < end; k++) {
			/* A leaf too large for one reply: absent may mean
			 * unsent. */
			if (!a->v[k].seen && rep.done == 0 &&
			    a->v[k].verdict == V_REISSUE) {
				a->v[k].verdict = V_UNKNOWN;
			}
			a->v[k].seen = 0;
		}
		i = end;
	}
	return 0;
}

static void
put_b64(FILE *f, const char *name, const uint8_t *p, size_t n)
{
	size_t blen =
	    sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
	char *b = malloc(blen);

	if (b == NULL) {
		fprintf(f, "\"%s\":null,", name);
		return;
	}
	sodium_bin2base64(b, blen, p, n, sodium_base64_VARIANT_ORIGINAL);
	fprintf(f, "\"%s\":\"%s\",\"%s_encoding\":\"base64\",", name, b, name);
	free(b);
}

/* Writes the stranded writes that are not re-issued to a new file in the
 * data directory, one JSON object a line (the fields of `lwwctl --json
 * list`, plus why), synced. 0 on success (or nothing to write). */
static int
export_stranded(lwwd *d, const find_acc *a, uint64_t now_ms, char *path,
                size_t cap)
{
	static const char *why[] = {
	    "reissued", "peer_holds_other_write", "peer_could_not_tell",
	    "peer_holds_it_in_future", "not_every_peer_answered"};
	size_t k = 0;
	FILE *f;

	for (size_t i = 0; i < a->n; i++) {
		k += a->v[i].verdict != V_REISSUE;
	}
	if (k == 0) {
		return 0;
	}
	snprintf(path, cap, "%s/clock-stranded-%llu.jsonl", d->cfg.data,
	         (unsigned long long) now_ms);
	if ((f = fopen(path, "wx")) == NULL) {
		return -1;
	}
	for (size_t i = 0; i < a->n; i++) {
		const stranded *s = &a->v[i];
		if (s->verdict == V_REISSUE) {
			continue;
		}
		fputc('{', f);
		put_b64(f, "key", s->e.key, s->e.klen);
		if (lww_entry_is_tombstone(&s->e)) {
			fputs("\"removed\":true,", f);
		} else {
			put_b64(f, "value", s->e.val, s->e.vlen);
		}
		fprintf(f,
		        "\"hlc\":%" PRIu64 ",\"wall_ms\":%" PRIu64
		        ",\"logical\":%" PRIu64 ",\"node\":\"%016" PRIx64
		        "\",\"reason\":\"%s\"}\n",
		        s->e.hlc, lww_hlc_wall(s->e.hlc),
		        lww_hlc_logical(s->e.hlc), s->e.node, why[s->verdict]);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

/* Re-issues this node's future-stamped writes at the confirmed time and
 * lowers the clock. Before it, the answering peers are asked what they
 * hold for those keys: a key another write of which a peer holds (this
 * node dropped it: it lost to the future stamp) is not re-issued, which
 * would make the older write win, but the peer's write is adopted and
 * ours exported; a key a peer holds this very write of (its clock ran
 * ahead too) is kept and exported (it wins until its stamp passes).
 * 0 when done (the fence may lift), 1 while it waits for a silent
 * configured peer (REBASE_PEER_WAIT_MS), -1 to retry. */
static int
rebase(lwwd *d, uint64_t now_ms, uint64_t mark, clock_peer **ask, size_t nask)
{
	struct lwwd_clock *c = d->clock;
	lww_scan q = {NULL, 0, NULL, 0, 0, 1, NULL};
	find_acc a = {d, now_ms, 0, 0, 0, NULL, 0, 0, 0};
	uint64_t stamp, done = 0, exported = 0, held = 0, held_max, mem_max;
	lww_buf req = LWW_BUF_INIT, env = LWW_BUF_INIT;
	char path[4096] = "";
	lww_txn *t = NULL;
	size_t asked = 0, missing = 0, unasked = 0, committed = 0;
	int waiting = 0;
	uint64_t cdone = 0, cexported = 0;
	char miss_url[256] = "";
	lww_err rv;

	/* From here on the writer notes every remote stamp it observes:
	 * what it logs after the barrier below is not in the scan, and the
	 * clock must not be lowered below it (lwwd_clock_writer_before). */
	pthread_mutex_lock(&c->wmtx);
	c->seen_max = 0;
	pthread_mutex_unlock(&c->wmtx);
	/* Every acknowledged write into the store first (fenced: no new
	 * local ones), so that no log segment holds a future stamp that a
	 * replay could bring back over its re-issued write. */
	lwwd_wal_barrier(d);
	if (logged_future(d, now_ms, &mem_max)) {
		return -1;
	}
	rv = lww_store_scan(d->store, &q, find_cb, &a, NULL);
	if (rv != LWW_OK || a.failed) {
		lwwd_log(LWWD_LOG_ERROR, "clock_rebase_failed",
		         "reason=\"%s\" (retrying)",
		         a.failed ? "out of memory" : lww_strerror(rv));
		goto out;
	}
	if (a.n > 1) {
		qsort(a.v, a.n, sizeof(*a.v), stranded_cmp);
	}
	for (size_t i = 0; a.n > 0 && i < nask; i++) {
		if (ask_peer(d, ask[i], &a, &req, &env) != 0) {
			/* Half an answer is none: retry the whole. */
			lwwd_log(LWWD_LOG_WARN, "clock_rebase_waits",
			         "peer=%s reason=\"it did not answer what it "
			         "holds for this node's stranded keys\" "
			         "(retrying)",
			         ask[i]->name);
			goto out;
		}
		asked++;
	}
	if (a.n > 0 && asked == 0) {
		goto out;
	}
	/* Re-issued only if every configured peer node answered: one that
	 * did not may hold a newer write of the key (this node dropped it,
	 * it lost to the future stamp), which a re-issued write would beat
	 * silently. Such keys stay at their stamp (local writes of them are
	 * refused as held, writer.c) and are exported. */
	for (size_t i = 0; i < c->npeers; i++) {
		int found = 0;
		for (size_t j = 0; c->peers[i].node != 0 && j < nask; j++) {
			found |= ask[j]->node == c->peers[i].node;
		}
		if (!found) {
			if (missing++ == 0) {
				snprintf(miss_url, sizeof(miss_url), "%s",
				         c->peers[i].url);
			}
		}
	}
	if (missing > 0 && a.n > 0) {
		uint64_t now = lwwd_mono_ms();
		if (c->rebase_wait_since == 0) {
			c->rebase_wait_since = now;
		}
		if (now - c->rebase_wait_since < REBASE_PEER_WAIT_MS) {
			lwwd_log(LWWD_LOG_WARN, "clock_rebase_waits",
			         "peer=%s peers_missing=%zu reason=\"a "
			         "configured peer did not answer what it holds "
			         "for this node's stranded keys\" (retrying; "
			         "after %d s without it the keys stay at their "
			         "stamps)",
			         miss_url, missing, REBASE_PEER_WAIT_MS / 1000);
			waiting = 1;
			goto out;
		}
	}
	for (size_t i = 0; missing > 0 && i < a.n; i++) {
		if (a.v[i].verdict == V_REISSUE) {
			a.v[i].verdict = V_UNASKED;
			unasked++;
		}
	}
	if (unasked > 0) {
		atomic_fetch_add(&d->stats.clock_unasked, unasked);
		lwwd_log(LWWD_LOG_WARN, "clock_stranded_not_reissued",
		         "keys=%zu peers_missing=%zu first=%s (a configured "
		         "peer did not answer what it holds for them, and "
		         "may hold newer writes: kept at their future stamp "
		         "and exported, local writes of them refused until "
		         "it passes)",
		         unasked, missing, miss_url);
	}
	if (export_stranded(d, &a, now_ms, path, sizeof(path)) != 0) {
		lwwd_log(LWWD_LOG_ERROR, "clock_rebase_failed",
		         "reason=\"cannot write %s: %s\" (retrying; free "
		         "space or fix permissions in the data directory)",
		         path, strerror(errno));
		goto out;
	}
	stamp = lww_hlc_make(now_ms, 0);
	if (a.legit > stamp) {
		stamp = a.legit;
	}
	/* An adopted peer write is held from now on (within the drift
	 * horizon, fold): the clock must not stay below it either, or
	 * local writes of its key would be refused as held until then. */
	for (size_t i = 0; i < a.n; i++) {
		if (a.v[i].verdict == V_NEWER && a.v[i].pe.hlc > stamp) {
			stamp = a.v[i].pe.hlc;
		}
	}
	/* What the store keeps above stamp once this is done: the stranded
	 * writes kept at their stamp (below) and other nodes' entries beyond
	 * max drift; and whatever the log still holds that the scan could
	 * not see (the barrier gives up after 3 s, and at once while
	 * checkpoints fail: a peer's entry left in memory reaches the store
	 * later). What the writer logs after the barrier is observed and the
	 * clock is not lowered below it (seen_max). The writer checks the
	 * keys of local writes stamped up to this (writer.c). */
	held_max = a.foreign_max > mem_max ? a.foreign_max : mem_max;
	/* In transactions of REBASE_TXN_ENTRIES (one transaction failed for
	 * good on a large store: "store full"); the mark is lowered only in
	 * the last, so a failure part way leaves it in the future and the
	 * retry finds what is left (what was re-issued or adopted is no
	 * longer stranded). */
	for (size_t from = 0, end = 0; from < a.n || end == 0; from = end) {
		end = a.n - from > REBASE_TXN_ENTRIES
		          ? from + REBASE_TXN_ENTRIES
		          : a.n;
		if ((rv = lww_store_begin(d->store, &t)) != LWW_OK) {
			goto fail;
		}
		for (size_t i = from; i < end; i++) {
			stranded *s = &a.v[i];
			char kb[LWW_LOG_KEY_MAX];
			lww_entry ne = s->e;
			int won = 0;

			lwwd_log_key(kb, sizeof(kb), s->e.key, s->e.klen);
			if (s->verdict == V_REISSUE) {
				ne.hlc = ++stamp;
				if ((rv = lww_txn_replace(t, &ne, &s->e,
				                          &won)) != LWW_OK) {
					goto fail;
				}
				done += (uint64_t) won;
				if (i < REISSUE_LOG_MAX) {
					lwwd_log(
					    LWWD_LOG_WARN, "clock_reissued",
					    "key=%s %s old_stamp_ms=%llu "
					    "new_stamp_ms=%llu",
					    kb,
					    lww_entry_is_tombstone(&ne)
					        ? "removed=1"
					        : "removed=0",
					    (unsigned long long) lww_hlc_wall(
					        s->e.hlc),
					    (unsigned long long) now_ms);
				}
				continue;
			}
			exported++;
			if (s->verdict == V_NEWER) {
				/* The peer's write is the newer one in real time as
			 * far as anyone can tell: ours goes to the file. */
				if ((rv = lww_txn_replace(t, &s->pe, &s->e,
				                          &won)) != LWW_OK) {
					goto fail;
				}
			} else {
				held++; /* kept in the future: its key is held */
				if (s->e.hlc > held_max) {
					held_max = s->e.hlc;
				}
			}
			if (i < REISSUE_LOG_MAX || s->verdict == V_HELD) {
				lwwd_log(
				    LWWD_LOG_WARN, "clock_stranded_exported",
				    "key=%s stamp_ms=%llu file=%s "
				    "reason=\"%s\"",
				    kb,
				    (unsigned long long) lww_hlc_wall(s->e.hlc),
				    path,
				    s->verdict == V_NEWER
				        ? "a peer holds another write of this "
				          "key, which this node dropped: kept "
				          "the peer's, not re-issued"
				    : s->verdict == V_HELD
				        ? "a peer accepted this write at its "
				          "future stamp (its clock ran ahead "
				          "too): it wins over later writes of "
				          "the key until that time, and local "
				          "writes of it are refused until then"
				    : s->verdict == V_UNASKED
				        ? "a configured peer did not answer, "
				          "and "
				          "may hold a newer write of this key: "
				          "kept as it is"
				        : "a peer could not tell what it holds "
				          "for this key: kept as it is");
			}
		}
		if (end == a.n) {
			lww_txn_reset_hlc(t, stamp, held_max);
		}
		rv = lww_txn_commit(t);
		t = NULL;
		if (rv != LWW_OK || (rv = lww_store_sync(d->store)) != LWW_OK) {
			goto fail;
		}
		committed = end;
		cdone = done;
		cexported = exported;
		if (end == a.n) {
			break;
		}
	}
	/* Under the writer's lock: it never publishes its old mark over
	 * this one (it reads rebase_to and stores hlc_pub under it). */
	c->rebase_wait_since = 0;
	pthread_mutex_lock(&c->wmtx);
	atomic_store(&c->rebase_to, stamp);
	c->rebase_held = held_max;
	atomic_store(&c->hlc_pub, stamp);
	pthread_mutex_unlock(&c->wmtx);
	atomic_fetch_add(&d->stats.clock_stranded, a.n);
	atomic_fetch_add(&d->stats.clock_reissued, done);
	atomic_fetch_add(&d->stats.clock_exported, exported);
	atomic_fetch_add(&d->stats.clock_future_held, held);
	lwwd_log(LWWD_LOG_WARN, "clock_rebased",
	         "mark_ms=%llu now_ms=%llu stranded=%zu reissued=%llu "
	         "exported=%llu held_by_peers=%llu others_future=%llu "
	         "peers_asked=%zu%s%s (this node's writes stamped in the "
	         "future, which peers refused, are re-issued at the "
	         "corrected time unless a peer holds another write of the "
	         "key; peers fetch them by repair)",
	         (unsigned long long) lww_hlc_wall(mark),
	         (unsigned long long) now_ms, a.n, (unsigned long long) done,
	         (unsigned long long) exported, (unsigned long long) held,
	         (unsigned long long) a.foreign, asked,
	         exported > 0 ? " file=" : "", exported > 0 ? path : "");
	find_free(&a);
	lww_buf_fini(&req);
	lww_buf_fini(&env);
	return 0;
fail:
	lww_txn_abort(t);
	if (committed == 0 && path[0] != '\0') {
		/* Nothing of it happened: the retry writes a new file. */
		unlink(path);
		path[0] = '\0';
	}
	/* What was committed stays done: re-issued or adopted entries are
	 * no longer stranded, and the file (kept) names the exported. */
	atomic_fetch_add(&d->stats.clock_reissued, cdone);
	atomic_fetch_add(&d->stats.clock_exported, cexported);
	lwwd_log(
	    LWWD_LOG_ERROR, "clock_rebase_failed",
	    "reason=\"%s\" committed=%zu of=%zu%s%s (retrying%s)",
	    lww_strerror(rv), committed, a.n, path[0] ? " file=" : "", path,
	    rv == LWW_EFULL ? "; restart lwwd with a larger --map-size" : "");
out:
	find_free(&a);
	lww_buf_fini(&req);
	lww_buf_fini(&env);
	return waiting ? 1 : -1;
}

/* ---- the decision ---- */

static void
set_fence(lwwd *d, int fence, int64_t ms, size_t peers)
{
	struct lwwd_clock *c = d->clock;

	atomic_store(&c->fence_ms, ms);
	atomic_store(&c->fence_peers, peers);
	/* Under the writer's lock: once this returns, no local write is
	 * stamped unfenced and every earlier one is logged. */
	if (atomic_load(&c->fenced) != fence) {
		pthread_mutex_lock(&c->wmtx);
		atomic_store(&c->fenced, fence);
		pthread_mutex_unlock(&c->wmtx);
	}
	atomic_store(&d->stats.clock_fenced, (uint64_t) fence);
	if (fence == c->fence) {
		return;
	}
	if (fence == FENCE_AHEAD) {
		atomic_fetch_add(&d->stats.clock_fences, 1);
		lwwd_log(LWWD_LOG_WARN, "clock_fenced",
		         "ahead_ms=%lld peers=%zu threshold_ms=%llu (local "
		         "writes refused until the clock agrees with the "
		         "peers; fix time sync)",
		         (long long) ms, peers,
		         (unsigned long long) c->threshold);
	} else if (fence == FENCE_MARK) {
		atomic_fetch_add(&d->stats.clock_fences, 1);
		lwwd_log(
		    LWWD_LOG_WARN, "clock_fenced",
		    "mark_ahead_ms=%lld (the clock's high-water mark is in "
		    "the future; local writes refused until a peer "
		    "confirms the wall clock)",
		    (long long) ms);
	} else {
		lwwd_log(LWWD_LOG_WARN, "clock_unfenced",
		         "peers=%zu (local writes accepted again)", peers);
	}
	c->fence = fence;
}

static void
judge(lwwd *d)
{
	struct lwwd_clock *c = d->clock;
	uint64_t now = lwwd_mono_ms(), wall = lwwd_now_ms();
	lww_skew_sample best[64];
	clock_peer *ask[64];
	size_t n = 0;
	int64_t off = 0;
	uint64_t unc = 0, mark, mark_wall;
	lww_skew_state st;
	int agrees, fence = FENCE_NONE, rebased = 0;
	int64_t fence_ms = 0;

	for (size_t i = 0; i < c->npeers; i++) {
		lww_skew_sample s;
		int have = lww_skew_best(&c->peers[i].skew, now, &s), dup = 0;
		/* One vote per node, however many URLs reach it. */
		for (size_t j = 0; have && j < i; j++) {
			dup |= c->peers[j].node == c->peers[i].node;
		}
		if (have && !dup && n < 64) {
			ask[n] = &c->peers[i];
			best[n++] = s;
		}
		if (c->peers[i].node != 0 && !dup) {
			publish_peer(d, &c->peers[i], &s, have);
		}
	}
	if (lww_skew_fleet(best, n, &off, &unc)) {
		atomic_store(&d->stats.clock_offset_ms, (uint64_t) off);
		atomic_store(&d->stats.clock_uncertainty_ms, unc);
	}
	atomic_store(&d->stats.clock_peers, n);
	st = lww_skew_judge(c->state, best, n, c->threshold);
	if (st != c->state && st != LWW_SKEW_UNKNOWN &&
	    c->state != LWW_SKEW_UNKNOWN) {
		lwwd_log(LWWD_LOG_WARN, "clock_state",
		         "state=%s was=%s offset_ms=%lld uncertainty_ms=%llu "
		         "peers=%zu%s",
		         lww_skew_state_name(st), lww_skew_state_name(c->state),
		         (long long) off, (unsigned long long) unc, n,
		         st == LWW_SKEW_AHEAD_UNSURE
		             ? " (too few peers answer to fence; fix time "
		               "sync)"
		         : st == LWW_SKEW_BEHIND
		             ? " (this clock is behind the peers: fix time "
		               "sync)"
		             : "");
	} else if (st != c->state &&
	           (st == LWW_SKEW_AHEAD_UNSURE || st == LWW_SKEW_BEHIND)) {
		lwwd_log(
		    LWWD_LOG_WARN, "clock_state",
		    "state=%s offset_ms=%lld uncertainty_ms=%llu peers=%zu "
		    "(fix time sync)",
		    lww_skew_state_name(st), (long long) off,
		    (unsigned long long) unc, n);
	}
	c->state = st;
	atomic_store(&d->stats.clock_state, (uint64_t) st);

	/* The clock's mark: only peers refuse what it stamps, so with none
	 * configured it is no matter. */
	mark = atomic_load(&c->hlc_pub);
	mark_wall = lww_hlc_wall(mark);
	/* Only a clock that agrees with the fleet confirms the wall clock:
	 * one far behind (a dead RTC) would re-stamp this node's writes
	 * into the past, where they lose everywhere. */
	agrees = st == LWW_SKEW_OK && lww_skew_agrees(best, n, c->threshold);
	if (lww_skew_fence_ahead(c->fence == FENCE_AHEAD, st)) {
		fence = FENCE_AHEAD;
		/* Without a verdict (peers lost) the last figure stands. */
		fence_ms =
		    st == LWW_SKEW_AHEAD ? off : atomic_load(&c->fence_ms);
	} else if (c->npeers > 0 && mark_wall > wall + d->cfg.max_drift) {
		fence = FENCE_MARK;
		fence_ms = (int64_t) (mark_wall - wall);
		atomic_store(&c->behind, st == LWW_SKEW_BEHIND);
		/* Fenced before the rebase reads the store: no local write
		 * is stamped from the old mark meanwhile. */
		set_fence(d, fence, fence_ms, n);
		if (agrees && now >= c->rebase_due) {
			int rv = rebase(d, wall, mark, ask, n);
			if (rv == 0) {
				fence = FENCE_NONE;
				rebased = 1;
				c->rebase_backoff = 0;
			} else if (rv > 0) {
				/* Waiting for a peer: ask again next
				 * round, the decision at the wait's end. */
				c->rebase_due = lwwd_mono_ms() + PROBE_EVERY_MS;
			} else {
				c->rebase_backoff =
				    c->rebase_backoff == 0 ? PROBE_EVERY_MS
				    : c->rebase_backoff * 2 >
				            REBASE_BACKOFF_MAX_MS
				        ? REBASE_BACKOFF_MAX_MS
				        : c->rebase_backoff * 2;
				c->rebase_due =
				    lwwd_mono_ms() + c->rebase_backoff;
			}
		}
	}
	if (fence != FENCE_MARK) {
		/* Whatever lifted it, the next recovery waits anew. */
		c->rebase_wait_since = 0;
	}
	set_fence(d, fence, fence_ms, n);
	/* Counted once the fence is lifted: a client that sees the count
	 * can write. */
	if (rebased) {
		atomic_fetch_add(&d->stats.clock_rebases, 1);
	}
}

static void *
clock_main(void *arg)
{
	lwwd *d = arg;
	struct lwwd_clock *c = d->clock;
	lww_buf req = LWW_BUF_INIT, env = LWW_BUF_INIT;
	uint64_t due = lwwd_mono_us();

	while (!lwwd_thr_stopping(&c->thr)) {
		uint64_t round = lwwd_mono_ms();
		/* Probes are sequential, each up to PROBE_TIMEOUT_MS: peers
		 * whose last probe was answered are probed every round; the
		 * others (failing, or not yet heard) only every
		 * min(failures, PROBE_BACKOFF_MAX)th round and not once the
		 * round ran PROBE_ROUND_MS, so that dead peers never starve
		 * the live ones' freshness window (LWW_SKEW_FRESH_MS). */
		for (size_t i = 0; i < c->npeers && !lwwd_thr_stopping(&c->thr);
		     i++) {
			clock_peer *p = &c->peers[i];
			lww_skew_sample s;
			if (!p->answered &&
			    (p->skip > 0 ||
			     lwwd_mono_ms() - round > PROBE_ROUND_MS)) {
				if (p->skip > 0) {
					p->skip--;
				}
				continue;
			}
			if (probe(d, p, &req, &env, &s) == 0) {
				lww_skew_add(&p->skew, &s);
				p->fails = 0;
				p->answered = 1;
			} else {
				p->answered = 0;
				p->fails += p->fails < PROBE_BACKOFF_MAX;
				p->skip = p->fails - 1;
			}
		}
		if (lwwd_thr_stopping(&c->thr)) {
			break;
		}
		judge(d);
		due += PROBE_EVERY_MS * 1000;
		if (due < lwwd_mono_us()) {
			due = lwwd_deadline_ms(PROBE_EVERY_MS);
		}
		if (lwwd_thr_sleep_until(&c->thr, due)) {
			break;
		}
	}
	lww_buf_fini(&req);
	lww_buf_fini(&env);
	return NULL;
}

int
lwwd_clock_start(lwwd *d)
{
	struct lwwd_clock *c = calloc(1, sizeof(*c));
	uint64_t wall = lwwd_now_ms();

	if (c == NULL) {
		return -1;
	}
	d->clock = c;
	pthread_mutex_init(&c->mtx, NULL);
	pthread_mutex_init(&c->rmtx, NULL);
	pthread_mutex_init(&c->wmtx, NULL);
	lwwd_thr_init(&c->thr, &c->mtx); /* probe_cb wakes it */
	c->threshold = d->cfg.max_drift / 2;
	c->state = LWW_SKEW_UNKNOWN;
	/* Before the writer starts: its clock is read here only. */
	atomic_store(&c->hlc_pub, d->hlc.last);
	if (nng_aio_alloc(&c->aio, probe_cb, c) != 0 ||
	    (c->peers = calloc(d->cfg.npeers + 1, sizeof(*c->peers))) == NULL) {
		fprintf(stderr, "lwwd: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < d->cfg.npeers; i++) {
		clock_peer *p = &c->peers[c->npeers];
		if ((p->url = lwwd_config_default_sync(d->cfg.peers[i])) ==
		    NULL) {
			continue; /* repair logs it */
		}
		if (nng_req0_open(&p->sock) != 0) {
			free(p->url);
			return -1;
		}
		p->open = 1;
		c->npeers++;
		nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME,
		                  NNG_DURATION_INFINITE);
		nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, LWW_MSG_MAX);
		nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 100);
		nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 2000);
		if (lwwd_dial(&d->cfg, p->sock, p->url, "sync of --peer") !=
		    0) {
			return -1;
		}
	}
	/* A mark in the future fences from the start, before any write. */
	if (c->npeers > 0 &&
	    lww_hlc_wall(d->hlc.last) > wall + d->cfg.max_drift) {
		set_fence(d, FENCE_MARK,
		          (int64_t) (lww_hlc_wall(d->hlc.last) - wall), 0);
	}
	if (lwwd_thr_start(&c->thr, &c->mtx, clock_main, d) != 0) {
		return -1;
	}
	return 0;
}

void
lwwd_clock_stop(lwwd *d)
{
	struct lwwd_clock *c = d->clock;

	if (c == NULL) {
		return;
	}
	lwwd_thr_ask_stop(&c->thr);
	/* Cancel, not nng_aio_stop: a stopped aio fails the next receive
	 * without reaching the REQ socket, which then keeps the request it
	 * sent until the socket closes (never: see lwwd_clock_free). The
	 * thread, woken above, cancels its own exchange and sees the flag. */
	if (c->aio != NULL) {
		nng_aio_cancel(c->aio);
	}
	lwwd_thr_join(&c->thr);
}

void
lwwd_clock_free(lwwd *d)
{
	struct lwwd_clock *c = d->clock;

	if (c == NULL) {
		return;
	}
	lwwd_clock_stop(d);
	d->clock = NULL;
	nng_aio_free(c->aio);
	/* The REQ sockets stay open until exit (see repair.c). */
	for (size_t i = 0; i < c->npeers; i++) {
		free(c->peers[i].url);
	}
	free(c->peers);
	lwwd_thr_fini(&c->thr);
	pthread_mutex_destroy(&c->mtx);
	pthread_mutex_destroy(&c->rmtx);
	pthread_mutex_destroy(&c->wmtx);
	free(c);
}
