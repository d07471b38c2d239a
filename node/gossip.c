/*
 * gossip.c - signed batches relayed between neighbours (Plumtree).
 *
 * The link. One NNG pair1 socket in polyamorous mode listens on --gossip
 * and dials every --peer; every connection (a pipe) carries messages both
 * ways, so a node that only dials out (behind NAT) is a full member. Each
 * side opens a connection with a HELLO carrying a random nonce (again
 * each beat until answered), and a neighbour is known by the signed
 * heartbeat that answers it (the nonce inside the signature); after that
 * a heartbeat every second keeps it known, from that node only. The
 * dialler answers first, the accepting end only once the dialler is
 * proved (may_prove), so nobody gets a proof by connecting; a heartbeat
 * recorded elsewhere and replayed proves nothing (a man in the middle on
 * a dialled address that passes both sides' messages on is not stopped:
 * that needs TLS). Unproved connections are closed after
 * UNPROVEN_MAX_MS. Heartbeats are never relayed. Until then a pipe gets only our HELLO, proof and
 * heartbeats, and its link messages are ignored (batches it sends are
 * still taken: their origin's signature is their proof).
 *
 * Relaying (Leitao, Pereira, Rodrigues: "Epidemic broadcast trees", 2007;
 * the design Riak and Corrosion use). Each neighbour is eager or lazy.
 * The first copy of a batch (origin, seq) is checked (origin trusted,
 * signature over the exact bytes, every entry carrying the origin's node
 * id), then forwarded unchanged to the eager neighbours and announced
 * (IHAVE origin seq) to the lazy ones, and queued for the writer. A copy
 * seen before is dropped before its signature is checked, and its sender
 * is told PRUNE: both ends then treat the link as lazy. The eager links
 * left form a tree; a batch announced but not received within
 * GRAFT_WAIT_MS is asked for (GRAFT) from the neighbour that announced it;
 * one that answers makes that link eager again, so the tree heals where
 * it broke.
 * Each node keeps the last LWW_GOSSIP_CACHE_BATCHES batches (at most
 * LWW_GOSSIP_CACHE_BYTES) to answer grafts; one it no longer holds is
 * given up after GRAFT_TRIES asks and fetched by repair (the loss hook).
 * Once a second every neighbour also gets the highest sequence this node
 * holds of every origin (an IHAVE summary): a batch lost with no other
 * announcement is found then.
 *
 * What a node has seen of an origin is a window (core/seen.h), started at
 * the sequence the store records for it, so a restarted node asks its
 * neighbours for what it missed. Messages to one neighbour are gathered
 * into bundles by the link thread, which sends them without blocking: a
 * neighbour too slow to take them loses them to grafts and repair.
 *
 * Locks: g->mtx is a leaf (lwwd.h): never d->mtx or keys_lock under it.
 * The receive callback is one chain (one aio), so messages are handled
 * one at a time; signatures are checked with no lock held.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "limits.h"
#include "lwwd.h"
#include "seen.h"

#include <nng/protocol/pair1/pair.h>

#define HEARTBEAT_MS   1000
#define TICK_MS        25   /* lazy announcements, graft timers */
#define GRAFT_WAIT_MS  100  /* an announced batch may still be coming */
#define GRAFT_RETRY_MS 500  /* a graft not answered: ask again */
#define GRAFT_TRIES    3    /* then repair fetches it */
#define GRAFT_SPAN_MAX 256  /* batches asked for in one record */
#define FLUSH_GAP_US   1000 /* bundles to one neighbour, at most this often */
#define SEND_PER_FLUSH                                                         \
	2              /* messages to one neighbour per flush: nng 1.5's
                            pair1 queues 2 per connection and drops
                            beyond, unseen (pair1poly_sock_get_cb) */
#define QUEUE_MSGS  64 /* waiting for one neighbour */
#define QUEUE_BYTES ((size_t) 32 << 20) /* ... and their bytes */
#define OUT_MAX     4096 /* messages one flush sends, all neighbours */
#define SERVE_MAX                                                              \
	(2 * GRAFT_SPAN_MAX) /* graft answers to one
                                               neighbour per retry time */
#define DELIVERIES  256      /* recent first copies, for stats */
#define CACHE_SLOTS LWW_GOSSIP_CACHE_BATCHES

typedef struct neighbour {
	nng_pipe pipe;
	uint64_t node; /* 0 until its heartbeat */
	char name[LWW_TRUST_NAME_MAX + 1];
	char *url; /* the --peer it is, when we dialled */
	int out;   /* we dialled it */
	int eager;
	/* A second connection to a node we have one with (both dialled):
	 * it carries only heartbeats; the link is the primary's. */
	int shadow;
	/* Who it is, proved once per connection: each side opens with a
	 * HELLO carrying a random nonce, and is known only by a signed
	 * heartbeat that carries that nonce back. A heartbeat recorded on
	 * another connection and replayed here proves nothing. */
	int hello;         /* owes our HELLO (again each beat until proved:
	                   a message to a busy connection can be lost) */
	int owes_proof;    /* owes a heartbeat answering its latest HELLO */
	uint64_t proof_ms; /* when we last sent one (one a beat at most) */
	uint8_t challenge[LWW_HELLO_NONCE_BYTES]; /* sent in our HELLO */
	uint8_t answer[LWW_HELLO_NONCE_BYTES];    /* from its HELLO */
	int prune;                                /* owes a PRUNE */
	uint64_t last_ms;
	lww_buf bundle; /* messages to it, not yet sent */
	lww_buf ihave;  /* lazy announcements to it */
	lww_buf graft;  /* grafts to it */
	nng_msg **q;    /* ready to send, oldest first (QUEUE_MSGS) */
	size_t qlen, qbytes;
	uint64_t prune_ms; /* when we last told it PRUNE */
	uint64_t serve_ms; /* graft answers: the budget's window ... */
	unsigned served;   /* ... and what it used */
	uint64_t copies, duplicates, forwarded;
} neighbour;

typedef struct origin {
	uint64_t node;
	lww_seen seen;
	uint64_t announced;  /* the highest sequence a neighbour holds */
	uint32_t announcer;  /* the pipe that said so */
	uint64_t missing_ms; /* since when a batch is missing (0: none) */
	uint64_t graft_ms;   /* when to ask (again) */
	uint64_t graft_at;   /* the first missing one when last asked */
	uint64_t graft_to;   /* the end of the run asked for (0: none) */
	uint64_t given_up;   /* announcements up to this were given up on:
	                        not grafted again (repair's) */
	unsigned grafts;     /* asks without progress */
	uint64_t copies, forwarded;
} origin;

typedef struct cached {
	uint64_t origin, seq;
	uint8_t *p;
	size_t n;
} cached;

typedef struct delivery {
	uint64_t origin, seq;
	int64_t delay_ms;
} delivery;

struct lwwd_gossip {
	lwwd *d;
	nng_socket sock;
	nng_aio *rx;
	pthread_mutex_t mtx;
	lwwd_thr thr; /* the link thread */
	_Atomic int stopping;
	int rx_paused; /* a receive failed: the link thread restarts it */
	int dirty;     /* a neighbour has something to send */
	int tick_soon; /* announcements to send, or a batch may be missing:
	                  tick every TICK_MS (else once a second, idle) */
	neighbour *nbs;
	size_t nnbs, capnbs;
	origin *origins;
	size_t norigins, caporigins;
	cached cache[CACHE_SLOTS];
	size_t cache_head, cache_len, cache_bytes;
	delivery deliv[DELIVERIES];
	size_t deliv_next;
	/* The stamps of our last heartbeats: one signed with our key that is
	 * none of them comes from another process with our key. */
	uint64_t hb_sent[64];
	unsigned hb_next;
	uint64_t same_key_logged_ms;
};

/* ---- tables (g->mtx held) ---- */

static neighbour *
nb_find(lwwd_gossip *g, uint32_t pipe)
{
	for (size_t i = 0; i < g->nnbs; i++) {
		if (nng_pipe_id(g->nbs[i].pipe) == (int) pipe) {
			return &g->nbs[i];
		}
	}
	return NULL;
}

static origin *
origin_find(lwwd_gossip *g, uint64_t node)
{
	for (size_t i = 0; i < g->norigins; i++) {
		if (g->origins[i].node == node) {
			return &g->origins[i];
		}
	}
	return NULL;
}

/* Adds an origin (a trusted node id; at most LWW_TRUST_PEERS_MAX plus the
 * ones a reload removed). NULL when out of memory. */
static origin *
origin_add(lwwd_gossip *g, uint64_t node)
{
	origin *o = origin_find(g, node);

	if (o != NULL) {
		return o;
	}
	if (g->norigins == g->caporigins) {
		size_t cap = g->caporigins ? g->caporigins * 2 : 16;
		origin *n = realloc(g->origins, cap * sizeof(*n));
		if (n == NULL) {
			return NULL;
		}
		g->origins = n;
		g->caporigins = cap;
	}
	o = &g->origins[g->norigins++];
	memset(o, 0, sizeof(*o));
	o->node = node;
	return o;
}

static void
cache_put(lwwd_gossip *g, uint64_t org, uint64_t seq, const uint8_t *p,
          size_t n)
{
	cached *c;

	if (n > LWW_GOSSIP_CACHE_BYTES) {
		return;
	}
	while (g->cache_len > 0 &&
	       (g->cache_len == CACHE_SLOTS ||
	        g->cache_bytes + n > LWW_GOSSIP_CACHE_BYTES)) {
		c = &g->cache[g->cache_head];
		g->cache_bytes -= c->n;
		free(c->p);
		c->p = NULL;
		g->cache_head = (g->cache_head + 1) % CACHE_SLOTS;
		g->cache_len--;
	}
	c = &g->cache[(g->cache_head + g->cache_len) % CACHE_SLOTS];
	if ((c->p = malloc(n)) == NULL) {
		return;
	}
	memcpy(c->p, p, n);
	c->n = n;
	c->origin = org;
	c->seq = seq;
	g->cache_len++;
	g->cache_bytes += n;
}

/* ---- sending (g->mtx held; the link thread sends what is ready) ---- */

/* Queues a message to one neighbour; a queue at its bound drops it
 * (counted: grafts and repair fetch what it held). */
static void
ready_push(lwwd_gossip *g, neighbour *nb, const uint8_t *p, size_t n)
{
	nng_msg *m;

	if ((nb->q == NULL &&
	     (nb->q = calloc(QUEUE_MSGS, sizeof(*nb->q))) == NULL) ||
	    nb->qlen == QUEUE_MSGS || nb->qbytes + n > QUEUE_BYTES ||
	    lwwd_msg_new(&m, p, n) != 0) {
		atomic_fetch_add(&g->d->stats.gossip_send_dropped, 1);
		return;
	}
	nng_msg_set_pipe(m, nb->pipe);
	nb->q[nb->qlen++] = m;
	nb->qbytes += n;
	g->dirty = 1;
}

/* Frees what a neighbour held (g->mtx held). */
static void
nb_fini(neighbour *nb)
{
	for (size_t i = 0; i < nb->qlen; i++) {
		nng_msg_free(nb->q[i]);
	}
	free(nb->q);
	free(nb->url);
	lww_buf_fini(&nb->bundle);
	lww_buf_fini(&nb->ihave);
	lww_buf_fini(&nb->graft);
}

/* Queues message p[0..n) to one neighbour, in its bundle. */
static void
nb_put(lwwd_gossip *g, neighbour *nb, const uint8_t *p, size_t n)
{
	lww_err rv;

	g->dirty = 1;
	if (nb->bundle.len == 0 && lww_bundle_begin(&nb->bundle) != LWW_OK) {
		atomic_fetch_add(&g->d->stats.gossip_send_dropped, 1);
		return;
	}
	if ((rv = lww_bundle_add(&nb->bundle, p, n)) != LWW_ETOOBIG) {
		if (rv != LWW_OK) {
			atomic_fetch_add(&g->d->stats.gossip_send_dropped, 1);
		}
		return;
	}
	/* Full: the bundle goes as it is, and the message starts the next
	 * (or, too big for any bundle, goes alone). */
	if (lww_link_count(&nb->bundle) > 0) {
		ready_push(g, nb, nb->bundle.p, nb->bundle.len);
	}
	lww_buf_reset(&nb->bundle);
	if (lww_bundle_begin(&nb->bundle) != LWW_OK ||
	    lww_bundle_add(&nb->bundle, p, n) != LWW_OK) {
		lww_buf_reset(&nb->bundle);
		ready_push(g, nb, p, n);
	}
}

/* Adds an IHAVE record for nb, sending the message when it is full. */
static void ihave_put(lwwd_gossip *g, neighbour *nb, uint64_t org,
                      uint64_t seq);

/* A neighbour that may be sent batches: known, not this node, and the
 * primary connection to it. */
static int
nb_member(const lwwd_gossip *g, const neighbour *nb)
{
	return nb->node != 0 && nb->node != g->d->self && !nb->shadow;
}

/* Of two connections between the same two nodes (each dialled the
 * other), both ends keep the one the smaller node id dialled, so that
 * each message crosses one, and a PRUNE arrives on the link it is
 * about. */
static int
nb_preferred(const lwwd_gossip *g, const neighbour *nb)
{
	return nb->out == (g->d->self < nb->node);
}

/* Another connection to nb's node, a shadow or not as asked (NULL:
 * none). */
static neighbour *
nb_other(lwwd_gossip *g, const neighbour *nb, int shadow)
{
	for (size_t i = 0; i < g->nnbs; i++) {
		neighbour *o = &g->nbs[i];
		if (o != nb && o->node == nb->node && o->shadow == shadow) {
			return o;
		}
	}
	return NULL;
}

/* The link a message from pipe belongs to: its primary connection
 * (NULL: an unknown pipe). */
static neighbour *
nb_link(lwwd_gossip *g, uint32_t pipe)
{
	neighbour *nb = nb_find(g, pipe), *o;

	if (nb != NULL && nb->shadow && (o = nb_other(g, nb, 0)) != NULL) {
		return o;
	}
	return nb;
}

/* nb (g->mtx held) has just been known as its node: if another
 * connection to that node is the link already, one of the two becomes
 * the other's shadow. */
static void
nb_pick(lwwd_gossip *g, neighbour *nb)
{
	neighbour *o = nb_other(g, nb, 0);

	nb->shadow = o != NULL;
	if (o != NULL && nb_preferred(g, nb) && !nb_preferred(g, o)) {
		nb->shadow = 0;
		nb->eager = o->eager;
		o->shadow = 1;
	}
}

/* The first copy of a batch of origin o, from neighbour node `from` (0:
 * our own, or an unknown connection's): to the eager neighbours as it
 * is, announced to the lazy ones. */
static void
spread(lwwd_gossip *g, origin *o, uint64_t seq, uint64_t from, const uint8_t *p,
       size_t n)
{
	for (size_t i = 0; i < g->nnbs; i++) {
		neighbour *nb = &g->nbs[i];
		if (!nb_member(g, nb) || (from != 0 && nb->node == from) ||
		    nb->node == o->node) {
			continue;
		}
		if (nb->eager) {
			nb_put(g, nb, p, n);
			nb->forwarded++;
			o->forwarded += o->node != g->d->self;
			atomic_fetch_add(&g->d->stats.gossip_forwarded,
			                 o->node != g->d->self);
		} else {
			g->tick_soon = 1;
			ihave_put(g, nb, o->node, seq);
		}
	}
	cache_put(g, o->node, seq, p, n);
}

static void
ihave_put(lwwd_gossip *g, neighbour *nb, uint64_t org, uint64_t seq)
{
	if (nb->ihave.len == 0) {
		(void) lww_ihave_begin(&nb->ihave);
	}
	if (lww_ihave_add(&nb->ihave, org, seq) == LWW_ETOOBIG) {
		/* Full: it goes now, a new one starts. */
		nb_put(g, nb, nb->ihave.p, nb->ihave.len);
		atomic_fetch_add(&g->d->stats.gossip_ihave_sent, 1);
		lww_buf_reset(&nb->ihave);
		(void) lww_ihave_begin(&nb->ihave);
		(void) lww_ihave_add(&nb->ihave, org, seq);
	}
}

/* Adds a GRAFT record for nb, sending the message when it is full. */
static void
graft_put(lwwd_gossip *g, neighbour *nb, uint64_t org, uint64_t from,
          uint64_t to)
{
	if (nb->graft.len == 0) {
		(void) lww_graft_begin(&nb->graft);
	}
	if (lww_graft_add(&nb->graft, org, from, to) == LWW_ETOOBIG) {
		nb_put(g, nb, nb->graft.p, nb->graft.len);
		lww_buf_reset(&nb->graft);
		(void) lww_graft_begin(&nb->graft);
		(void) lww_graft_add(&nb->graft, org, from, to);
	}
	atomic_fetch_add(&g->d->stats.gossip_grafts_sent, 1);
}

static void
publish_counts(lwwd_gossip *g)
{
	uint64_t known = 0, eager = 0;

	for (size_t i = 0; i < g->nnbs; i++) {
		known += nb_member(g, &g->nbs[i]);
		eager += nb_member(g, &g->nbs[i]) && g->nbs[i].eager;
	}
	atomic_store(&g->d->stats.gossip_neighbours, known);
	atomic_store(&g->d->stats.gossip_eager, eager);
	atomic_store(&g->d->stats.gossip_lazy, known - eager);
}

/* ---- receiving ---- */

/* Counts one rejection, and logs the first and then every 1000th. */
static void
reject(_Atomic uint64_t *ctr, const char *why, const char *who)
{
	uint64_t n = atomic_fetch_add(ctr, 1);
	if (n % 1000 == 0) {
		lwwd_log(LWWD_LOG_WARN, "gossip_rejected",
		         "reason=%s peer=%s count=%llu", why, who,
		         (unsigned long long) n + 1);
	}
}

/* Rejections by lwwd_verify's result; 1 if rv is LWW_OK. */
static int
verified(lwwd *d, lww_err rv, const uint8_t *p, const char *name)
{
	char pk[LWW_PK_TEXT_LEN + 1];

	switch (rv) {
	case LWW_OK:
		return 1;
	case LWW_EFORGED:
		/* Signed with our key, and not a batch we sent: a clone. */
		reject(&d->stats.rejected_self, "own_key", name);
		return 0;
	case LWW_EUNTRUSTED:
		/* Name the unknown key, so an operator can trust it. */
		lww_pk_to_text(p + 2, pk, sizeof(pk));
		reject(&d->stats.rejected_untrusted, "untrusted", pk);
		return 0;
	case LWW_EBADSIG:
		reject(&d->stats.rejected_badsig, "bad_signature", name);
		return 0;
	default:
		reject(&d->stats.rejected_malformed, "malformed", name);
		return 0;
	}
}

/* A heartbeat signed with this node's own key. Ours come back when a
 * --peer names our own gossip address; one that is none of the last we
 * sent comes from another process with our key: a cloned image or a
 * copied key file. Both would write under one node id, so that their
 * writes overwrite each other's and the sequence tracking breaks: each of
 * them says so at error level, once a minute. */
static void
own_key(lwwd_gossip *g, neighbour *nb, const lww_heartbeat *hb)
{
	lwwd *d = g->d;
	uint64_t now = lwwd_mono_ms();
	int ours = 0, log = 0;

	for (size_t i = 0; i < sizeof(g->hb_sent) / sizeof(g->hb_sent[0]);
	     i++) {
		ours |= g->hb_sent[i] == hb->hlc;
	}
	if (ours && nb != NULL) {
		nb->node = d->self; /* a loop to ourselves: never a member */
	}
	if (!ours && (g->same_key_logged_ms == 0 ||
	              now - g->same_key_logged_ms >= 60000)) {
		g->same_key_logged_ms = now;
		log = 1;
	}
	if (ours) {
		reject(&d->stats.rejected_self, "own_key", d->self_name);
		return;
	}
	atomic_fetch_add(&d->stats.same_key_elsewhere, 1);
	if (log) {
		lwwd_log(
		    LWWD_LOG_ERROR, "same_key_elsewhere",
		    "node=%016llx name=%s reason=\"another process "
		    "publishes heartbeats signed with this node's key (a "
		    "cloned image or a copied key file?): give each node its "
		    "own key (lwwctl keygen) and trust-file line\"",
		    (unsigned long long) d->self, d->self_name);
	}
}

/* A neighbour's heartbeat: its contact, and its own sequence for the
 * peer table's lag. */
static void
note_heartbeat(lwwd *d, uint64_t node, uint64_t seq)
{
	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < d->npeers; i++) {
		lwwd_peer_state *ps = &d->peers[i];
		if (ps->node == node) {
			ps->last_contact_ms = lwwd_mono_ms();
			if (seq > ps->seq_announced) {
				ps->seq_announced = seq;
			}
		}
	}
	pthread_mutex_unlock(&d->mtx);
}

/* The records of an IHAVE, for the peer table's lag (one lock). */
static void
note_ihave(lwwd *d, const lww_link_recs *r)
{
	pthread_mutex_lock(&d->mtx);
	for (uint32_t i = 0; i < r->count; i++) {
		uint64_t org, seq;
		lww_ihave_at(r, i, &org, &seq);
		for (size_t k = 0; k < d->npeers; k++) {
			if (d->peers[k].node == org &&
			    seq > d->peers[k].seq_announced) {
				d->peers[k].seq_announced = seq;
			}
		}
	}
	pthread_mutex_unlock(&d->mtx);
}

/* An announcement from a known neighbour: origin holds up to seq. */
static void
announce(lwwd_gossip *g, neighbour *nb, uint64_t node, uint64_t seq)
{
	origin *o;

	if (node == g->d->self || (o = origin_find(g, node)) == NULL) {
		return;
	}
	/* (Nothing known of it yet: the announced batch is grafted if it
	 * does not come, and its first batch starts the window; what came
	 * before is repair's. An announcement never starts the window: it
	 * is a neighbour's word, and a false one must not hide the
	 * origin's batches.) */
	if (seq <= o->given_up) {
		return;
	}
	if (seq > o->announced || (seq == o->announced && o->announcer == 0)) {
		o->announced = seq;
		o->announcer = (uint32_t) nng_pipe_id(nb->pipe);
	}
	if (seq > o->seen.top && !g->tick_soon) {
		/* It may be missing: time the graft. */
		g->tick_soon = 1;
		lwwd_thr_wake(&g->thr);
	}
}

static void
heartbeat(lwwd_gossip *g, uint32_t pipe, const uint8_t *p, size_t n)
{
	lwwd *d = g->d;
	lww_envelope env;
	lww_heartbeat hb;
	lwwd_signer who;
	neighbour *nb;
	lww_err rv;

	rv = lwwd_verify(d, 0, p, n, &env, &who);
	if (rv == LWW_EFORGED) {
		if (lww_heartbeat_decode(env.payload, env.plen, &hb) ==
		    LWW_OK) {
			pthread_mutex_lock(&g->mtx);
			own_key(g, nb_find(g, pipe), &hb);
			pthread_mutex_unlock(&g->mtx);
		}
		return;
	}
	if (!verified(d, rv, p, "unknown")) {
		return;
	}
	if (lww_heartbeat_decode(env.payload, env.plen, &hb) != LWW_OK) {
		reject(&d->stats.rejected_malformed, "malformed", who.name);
		return;
	}
	atomic_fetch_add(&d->stats.heartbeats_received, 1);
	pthread_mutex_lock(&g->mtx);
	if ((nb = nb_find(g, pipe)) == NULL) {
		pthread_mutex_unlock(&g->mtx); /* the connection is gone */
		return;
	}
	if (nb->node == 0 ? !hb.proof || memcmp(hb.nonce, nb->challenge,
	                                        sizeof(nb->challenge)) != 0
	                  : nb->node != who.node) {
		/* Not the answer to our HELLO here (a plain heartbeat before
		 * the proof is only early; a proof recorded elsewhere is
		 * replayed), or another node's heartbeat on a connection
		 * proved to be one node's: relayed or replayed, never its
		 * contact. */
		int counted = hb.proof || nb->node != 0;
		pthread_mutex_unlock(&g->mtx);
		if (counted) {
			reject(&d->stats.rejected_unproven, "unproven",
			       who.name);
		}
		return;
	}
	if (nb->node == 0) {
		lwwd_log(LWWD_LOG_INFO, "neighbour_up",
		         "name=%s node=%016llx url=%s direction=%s", who.name,
		         (unsigned long long) who.node,
		         nb->url != NULL ? nb->url : "-",
		         nb->out ? "out" : "in");
		nb->node = who.node;
		nb_pick(g, nb);
		if (nb->owes_proof) {
			g->dirty = 1; /* our answer may go now */
			lwwd_thr_wake(&g->thr);
		}
	}
	memcpy(nb->name, who.name, sizeof(nb->name));
	nb->last_ms = lwwd_mono_ms();
	(void) origin_add(g, who.node);
	if ((nb = nb_link(g, pipe)) != NULL && nb_member(g, nb)) {
		nb->last_ms = lwwd_mono_ms();
		announce(g, nb, who.node, hb.seq);
	}
	publish_counts(g);
	pthread_mutex_unlock(&g->mtx);
	note_heartbeat(d, who.node, hb.seq);
}

/* A batch envelope p[0..n), in msg (taken) or inside a bundle (msg
 * NULL). */
static void
batch(lwwd_gossip *g, uint32_t pipe, const uint8_t *p, size_t n, nng_msg *msg)
{
	lwwd *d = g->d;
	lww_envelope env;
	lwwd_signer who;
	lwwd_op *op = NULL;
	neighbour *nb;
	origin *o;
	uint64_t node, seq, lost = 0, newest = 0;
	lww_err rv;

	/* Seen before? Decided before the signature is checked: a relay
	 * hears most batches more than once. */
	if (lww_batch_peek_seq(p + 2 + LWW_PK_BYTES, n - LWW_ENVELOPE_OVERHEAD,
	                       &seq) != LWW_OK) {
		reject(&d->stats.rejected_malformed, "malformed", "unknown");
		goto drop;
	}
	node = lww_node_id(p + 2);
	pthread_mutex_lock(&g->mtx);
	o = origin_find(g, node);
	nb = nb_link(g, pipe);
	if (nb != NULL) {
		nb->copies++;
		nb->last_ms = lwwd_mono_ms();
	}
	atomic_fetch_add(&d->stats.gossip_copies, 1);
	if (o != NULL && lww_seen_has(&o->seen, seq)) {
		/* (our own batches come back too, where links make a
		 * cycle) */
		o->copies++;
		atomic_fetch_add(&d->stats.gossip_duplicates, 1);
		if (nb != NULL && nb_member(g, nb)) {
			uint64_t now = lwwd_mono_ms();
			nb->duplicates++;
			/* Both ends make the link lazy; told again (once a
			 * second) if it still pushes: a PRUNE may be lost. */
			if (nb->eager || now - nb->prune_ms >= 1000) {
				nb->eager = 0;
				nb->prune = 1;
				nb->prune_ms = now;
				g->dirty = 1;
				publish_counts(g);
				lwwd_thr_wake(&g->thr);
			}
		}
		pthread_mutex_unlock(&g->mtx);
		goto drop;
	}
	pthread_mutex_unlock(&g->mtx);

	rv = lwwd_verify(d, 0, p, n, &env, &who);
	if (!verified(d, rv, p, "unknown")) {
		goto drop;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		goto drop;
	}
	if (lww_batch_decode(env.payload, env.plen, &op->batch) != LWW_OK) {
		reject(&d->stats.rejected_malformed, "malformed", who.name);
		goto drop;
	}
	{
		/* No trusted node may write in another's name. (And the
		 * newest stamp, for the delivery's delay.) */
		size_t off = 0;
		lww_entry e;
		while (lww_entries_next(&op->batch.entries, &off, &e)) {
			if (e.node != who.node) {
				reject(&d->stats.rejected_forged,
				       "forged_node_id", who.name);
				goto drop;
			}
			if (e.hlc > newest) {
				newest = e.hlc;
			}
		}
	}
	atomic_fetch_add(&d->stats.batches_received, 1);
	pthread_mutex_lock(&g->mtx);
	if ((o = origin_add(g, node)) != NULL) {
		lost = lww_seen_add(&o->seen, seq);
		o->copies++;
		if (seq > o->announced) {
			o->announced = seq;
		}
		nb = nb_link(g, pipe);
		if (nb != NULL && !nb->eager && nb_member(g, nb)) {
			nb->eager = 1; /* it pushes to us: the tree's edge */
			publish_counts(g);
		}
		spread(g, o, seq, nb != NULL ? nb->node : 0, p, n);
		{
			delivery *dv = &g->deliv[g->deliv_next++ % DELIVERIES];
			dv->origin = node;
			dv->seq = seq;
			dv->delay_ms =
			    (int64_t) (lwwd_now_ms() - lww_hlc_wall(newest));
		}
		lwwd_thr_wake(&g->thr);
	}
	pthread_mutex_unlock(&g->mtx);
	atomic_fetch_add(&d->stats.gossip_delivered, 1);

	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < d->npeers; i++) {
		lwwd_peer_state *ps = &d->peers[i];
		if (ps->node != node) {
			continue;
		}
		ps->last_contact_ms = lwwd_mono_ms();
		if (seq > ps->seq_applied) {
			ps->seq_applied = seq;
		}
		if (seq > ps->seq_announced) {
			ps->seq_announced = seq;
		}
		ps->batches++;
	}
	pthread_mutex_unlock(&d->mtx);
	if (lost != 0) {
		atomic_fetch_add(&d->stats.seq_gaps, lost);
		d->hooks.loss(d, node);
	}
	if (msg == NULL) {
		/* From a bundle: the op gets its own copy, and points into
		 * it. */
		if (lwwd_msg_new(&msg, p, n) != 0 ||
		    lww_batch_decode(
		        (const uint8_t *) nng_msg_body(msg) + 2 + LWW_PK_BYTES,
		        n - LWW_ENVELOPE_OVERHEAD, &op->batch) != LWW_OK) {
			if (msg != NULL) {
				nng_msg_free(msg);
			}
			free(op);
			d->hooks.loss(d, node);
			return;
		}
	}
	op->remote = 1;
	op->owned = 1;
	op->origin = node;
	memcpy(op->origin_name, who.name, sizeof(who.name));
	op->msg = msg;
	if (lwwd_writer_submit(d, op) != LWW_OK) {
		/* The writer is flooded: drop it, and let repair fetch it
		 * (its sequence number is already counted as received). */
		nng_msg_free(msg);
		free(op);
		d->hooks.loss(d, node);
	}
	return;
drop:
	free(op);
	if (msg != NULL) {
		nng_msg_free(msg);
	}
}

static void
graft_served(lwwd_gossip *g, neighbour *nb, const lww_link_recs *r)
{
	uint64_t now = lwwd_mono_ms();
	unsigned sent = 0;

	/* A budget per neighbour: a GRAFT costs one pass over the cache
	 * per record, and its answer at most GRAFT_SPAN_MAX batches. */
	if (now - nb->serve_ms >= GRAFT_RETRY_MS) {
		nb->serve_ms = now;
		nb->served = 0;
	}
	for (uint32_t i = 0;
	     i < r->count && sent < GRAFT_SPAN_MAX && nb->served < SERVE_MAX;
	     i++) {
		uint64_t org, from, to;
		lww_graft_at(r, i, &org, &from, &to);
		if (origin_find(g, org) == NULL) {
			continue; /* nothing of it cached */
		}
		nb->served++;
		for (size_t k = 0; k < g->cache_len && sent < GRAFT_SPAN_MAX;
		     k++) {
			cached *c =
			    &g->cache[(g->cache_head + k) % CACHE_SLOTS];
			if (c->origin == org && c->seq >= from &&
			    c->seq <= to) {
				nb_put(g, nb, c->p, c->n);
				sent++;
			}
		}
	}
	atomic_fetch_add(&g->d->stats.gossip_grafts_served, sent);
	if (sent > 0) {
		/* The tree broke at this link: it carries batches again.
		 * (A graft for what this node never had changes nothing.) */
		nb->eager = 1;
		publish_counts(g);
	}
	g->dirty = 1;
	lwwd_thr_wake(&g->thr);
}

static void
handle_other(lwwd_gossip *g, uint32_t pipe, const uint8_t *p, size_t n)
{
	lwwd *d = g->d;
	lww_link_recs r;
	neighbour *nb;
	uint8_t type, ptype;

	if (lww_msg_peek(p, n, &type) != LWW_OK) {
		reject(&d->stats.rejected_malformed, "malformed", "unknown");
		return;
	}
	if (type == LWW_MSG_HELLO) {
		uint8_t nonce[LWW_HELLO_NONCE_BYTES];
		if (lww_hello_decode(p, n, nonce) != LWW_OK) {
			reject(&d->stats.rejected_malformed, "malformed",
			       "hello");
			return;
		}
		pthread_mutex_lock(&g->mtx);
		if ((nb = nb_find(g, pipe)) != NULL) {
			/* Answered by send_proofs, one a beat at most,
			 * and only when may_prove. */
			memcpy(nb->answer, nonce, sizeof(nb->answer));
			nb->owes_proof = 1;
			g->dirty = 1;
			lwwd_thr_wake(&g->thr);
		}
		pthread_mutex_unlock(&g->mtx);
		return;
	}
	if (type == LWW_MSG_ENVELOPE) {
		if (n < LWW_ENVELOPE_OVERHEAD + 2 ||
		    lww_msg_peek(p + 2 + LWW_PK_BYTES,
		                 n - LWW_ENVELOPE_OVERHEAD, &ptype) != LWW_OK) {
			reject(&d->stats.rejected_malformed, "malformed",
			       "unknown");
		} else if (ptype == LWW_MSG_HEARTBEAT) {
			heartbeat(g, pipe, p, n);
		} else {
			reject(&d->stats.rejected_malformed, "malformed",
			       "unknown");
		}
		return;
	}
	pthread_mutex_lock(&g->mtx);
	nb = nb_link(g, pipe);
	if (nb == NULL || !nb_member(g, nb)) {
		/* Link messages only from a neighbour known by its
		 * heartbeat (a shadow connection's apply to the link). */
		pthread_mutex_unlock(&g->mtx);
		return;
	}
	nb->last_ms = lwwd_mono_ms();
	if (type == LWW_MSG_IHAVE && lww_ihave_decode(p, n, &r) == LWW_OK) {
		uint64_t org, seq;
		for (uint32_t i = 0; i < r.count; i++) {
			lww_ihave_at(&r, i, &org, &seq);
			announce(g, nb, org, seq);
		}
		pthread_mutex_unlock(&g->mtx);
		note_ihave(d, &r);
		return;
	}
	if (type == LWW_MSG_PRUNE && lww_prune_decode(p, n) == LWW_OK) {
		nb->eager = 0;
		publish_counts(g);
	} else if (type == LWW_MSG_GRAFT &&
	           lww_graft_decode(p, n, &r) == LWW_OK) {
		graft_served(g, nb, &r);
	} else {
		pthread_mutex_unlock(&g->mtx);
		reject(&d->stats.rejected_malformed, "malformed", "link");
		return;
	}
	pthread_mutex_unlock(&g->mtx);
}

/* One message of the link: p[0..n), in msg (whole, taken) or inside a
 * bundle (msg NULL). */
static void
handle_one(lwwd_gossip *g, uint32_t pipe, const uint8_t *p, size_t n,
           nng_msg *msg)
{
	if (n >= LWW_ENVELOPE_OVERHEAD + 2 && p[0] == LWW_WIRE_VERSION &&
	    p[1] == LWW_MSG_ENVELOPE &&
	    p[2 + LWW_PK_BYTES + 1] == LWW_MSG_BATCH) {
		batch(g, pipe, p, n, msg); /* takes msg */
		return;
	}
	handle_other(g, pipe, p, n);
	if (msg != NULL) {
		nng_msg_free(msg);
	}
}

static void
handle(lwwd_gossip *g, nng_msg *msg)
{
	const uint8_t *p = nng_msg_body(msg);
	size_t n = nng_msg_len(msg);
	uint32_t pipe = (uint32_t) nng_pipe_id(nng_msg_get_pipe(msg));
	lww_link_recs r;

	atomic_fetch_add(&g->d->stats.gossip_bytes_received, n);
	if (n >= 2 && p[1] == LWW_MSG_BUNDLE) {
		size_t off = 0, len;
		const uint8_t *m;
		if (lww_bundle_decode(p, n, &r) != LWW_OK) {
			reject(&g->d->stats.rejected_malformed, "malformed",
			       "bundle");
			nng_msg_free(msg);
			return;
		}
		while (lww_bundle_next(&r, &off, &m, &len) &&
		       !atomic_load(&g->stopping)) {
			handle_one(g, pipe, m, len, NULL);
		}
		nng_msg_free(msg);
		return;
	}
	handle_one(g, pipe, p, n, msg); /* takes msg */
}

/*
 * The one receive. It ends only when the socket is closed (NNG_ECLOSED)
 * or gossip stops (stopping, set before nng_aio_stop, whose cancel
 * arrives as NNG_ECANCELED). After any other error the receive pauses and
 * the link thread starts the next one within a tick: the callback never
 * blocks, a persistent error cannot spin, and a receive that died on one
 * unexpected error cannot silence gossip for good.
 */
static void
rx_cb(void *arg)
{
	lwwd_gossip *g = arg;
	int rv = nng_aio_result(g->rx);

	if (atomic_load(&g->stopping)) {
		if (rv == 0) {
			nng_msg_free(nng_aio_get_msg(g->rx));
		}
		return;
	}
	if (rv == 0) {
		handle(g, nng_aio_get_msg(g->rx));
		nng_recv_aio(g->sock, g->rx);
		return;
	}
	if (rv == NNG_ECLOSED) {
		return;
	}
	lwwd_log(LWWD_LOG_WARN, "gossip_receive_failed",
	         "reason=\"%s\" (receiving again within a second)",
	         nng_strerror(rv));
	pthread_mutex_lock(&g->mtx);
	g->rx_paused = 1;
	lwwd_thr_wake(&g->thr);
	pthread_mutex_unlock(&g->mtx);
}

/* ---- pipes ---- */

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	lwwd_gossip *g = arg;
	neighbour *nb;

	pthread_mutex_lock(&g->mtx);
	if (atomic_load(&g->stopping)) {
		pthread_mutex_unlock(&g->mtx);
		return;
	}
	if (ev == NNG_PIPE_EV_ADD_POST && nb_find(g, nng_pipe_id(p)) == NULL) {
		nng_dialer dl = nng_pipe_dialer(p);
		if (g->nnbs == g->capnbs) {
			size_t cap = g->capnbs ? g->capnbs * 2 : 8;
			neighbour *n = realloc(g->nbs, cap * sizeof(*n));
			if (n == NULL) {
				pthread_mutex_unlock(&g->mtx);
				nng_pipe_close(p);
				return;
			}
			g->nbs = n;
			g->capnbs = cap;
		}
		nb = &g->nbs[g->nnbs++];
		memset(nb, 0, sizeof(*nb));
		nb->pipe = p;
		nb->eager = 1;
		nb->hello = 1;
		randombytes_buf(nb->challenge, sizeof(nb->challenge));
		nb->last_ms = lwwd_mono_ms();
		if (nng_dialer_id(dl) > 0) {
			char *url = NULL;
			nb->out = 1;
			if (nng_dialer_get_string(dl, NNG_OPT_URL, &url) == 0) {
				nb->url = strdup(url);
				nng_strfree(url);
			}
		}
		g->dirty = 1;
		lwwd_thr_wake(&g->thr);
	} else if (ev == NNG_PIPE_EV_REM_POST &&
	           (nb = nb_find(g, nng_pipe_id(p))) != NULL) {
		if (nb->node != 0 && nb->node != g->d->self) {
			lwwd_log(LWWD_LOG_INFO, "neighbour_down",
			         "name=%s url=%s", nb->name,
			         nb->url != NULL ? nb->url : "-");
		}
		if (nb_member(g, nb)) {
			/* The link's shadow, if any, carries it now. */
			neighbour *o = nb_other(g, nb, 1);
			if (o != NULL) {
				o->shadow = 0;
				o->eager = 1;
			}
		}
		for (size_t i = 0; i < g->norigins; i++) {
			if (g->origins[i].announcer ==
			    (uint32_t) nng_pipe_id(p)) {
				g->origins[i].announcer = 0;
			}
		}
		nb_fini(nb);
		*nb = g->nbs[--g->nnbs];
		publish_counts(g);
	}
	pthread_mutex_unlock(&g->mtx);
}

/* ---- the link thread ---- */

/* Graft timers (g->mtx held): a batch announced and still missing after
 * GRAFT_WAIT_MS is asked of its announcer; after GRAFT_TRIES asks that
 * bring nothing it is given up to repair. Fills lost[] with origins to
 * hand to repair; *pending says whether one is still missing. */
static size_t
tick_grafts(lwwd_gossip *g, uint64_t now, uint64_t *lost, size_t max,
            int *pending)
{
	size_t nlost = 0;

	*pending = 0;
	for (size_t i = 0; i < g->norigins; i++) {
		origin *o = &g->origins[i];
		uint64_t miss =
		    o->seen.started
		        ? lww_seen_first_missing(&o->seen, o->announced)
		        : o->announced;
		neighbour *nb;
		if (miss == 0) {
			o->missing_ms = 0;
			o->grafts = 0;
			continue;
		}
		*pending = 1;
		if (o->missing_ms == 0) {
			o->missing_ms = now;
			o->graft_ms = now + GRAFT_WAIT_MS;
			o->grafts = 0;
			continue;
		}
		if (o->grafts > 0 && miss > o->graft_at) {
			/* The last graft brought some: a long gap (a node
			 * back after an hour) comes GRAFT_SPAN_MAX at a time,
			 * as fast as they arrive. */
			o->grafts = 0;
			o->graft_ms = now;
		}
		if (now < o->graft_ms) {
			continue;
		}
		if (o->grafts < GRAFT_TRIES) {
			/* The neighbour that announced it; gone, any other
			 * (the try counts either way). */
			nb =
			    o->announcer != 0 ? nb_find(g, o->announcer) : NULL;
			for (size_t k = 0;
			     (nb == NULL || !nb_member(g, nb)) && k < g->nnbs;
			     k++) {
				nb = nb_member(g, &g->nbs[k]) ? &g->nbs[k]
				                              : NULL;
			}
			if (o->grafts == 0 || o->graft_to < miss) {
				/* The run missing from miss on, as it is at the
				 * first ask: what arrives after it, or is
				 * announced later, has a timer of its own. */
				uint64_t to = miss;
				while (to < o->announced &&
				       to - miss + 1 < GRAFT_SPAN_MAX &&
				       (!o->seen.started ||
				        !lww_seen_has(&o->seen, to + 1))) {
					to++;
				}
				o->graft_to = to;
			}
			o->grafts++;
			o->graft_at = miss;
			o->graft_ms = now + GRAFT_RETRY_MS;
			if (nb != NULL && nb_member(g, nb)) {
				graft_put(g, nb, o->node, miss, o->graft_to);
			}
			continue;
		}
		if (nlost == max) {
			continue; /* handed to repair at the next tick */
		}
		int upto_lost;
		/* Nobody could send it: repair fetches what it held. Only
		 * what this node has seen of the origin is passed over: an
		 * announcement is a neighbour's word, not the origin's, and
		 * one that names a sequence never sent must not make the
		 * window skip the origin's next batches. */
		{
			/* What was asked for, never past what was seen. */
			uint64_t upto = o->graft_to < o->seen.top ? o->graft_to
			                                          : o->seen.top;
			uint64_t n = lww_seen_skip(&o->seen, upto);
			upto_lost = n > 0;
			atomic_fetch_add(&g->d->stats.seq_gaps, n);
			atomic_fetch_add(&g->d->stats.gossip_given_up, n);
			if (upto < miss || o->announced <= upto) {
				/* Nothing seen reaches the claim (or all of it
				 * is given up): it is not grafted again. */
				o->given_up = o->announced;
				o->announced = o->seen.top;
			}
			o->graft_to = 0;
		}
		o->missing_ms = 0;
		o->grafts = 0;
		if (upto_lost) {
			lost[nlost++] = o->node;
		}
	}
	return nlost;
}

/* Adds the summary (the highest sequence held of every origin) to each
 * neighbour's announcements (g->mtx held). */
static void
summarise(lwwd_gossip *g, uint64_t own_seq)
{
	for (size_t i = 0; i < g->nnbs; i++) {
		neighbour *nb = &g->nbs[i];
		if (!nb_member(g, nb)) {
			continue;
		}
		if (own_seq > 0) {
			ihave_put(g, nb, g->d->self, own_seq);
		}
		for (size_t k = 0; k < g->norigins; k++) {
			const origin *o = &g->origins[k];
			if (o->seen.started && o->seen.top > 0 &&
			    o->node != nb->node && o->node != g->d->self) {
				ihave_put(g, nb, o->node, o->seen.top);
			}
		}
	}
}

/* Notes the stamp of a heartbeat we sign (g->mtx held): one signed with
 * our key that is none of the last comes from a clone (own_key). */
static void
hb_note_sent(lwwd_gossip *g, uint64_t hlc)
{
	size_t n = sizeof(g->hb_sent) / sizeof(g->hb_sent[0]);

	if (g->hb_next > 0 && g->hb_sent[(g->hb_next - 1) % n] == hlc) {
		return; /* proofs of one millisecond share a stamp */
	}
	g->hb_sent[g->hb_next++ % n] = hlc;
}

/* Whether we answer nb's HELLO now (g->mtx held). The dialling end
 * proves itself first: we answer on a connection we dialled (to an
 * address our --peer names), and on one we accepted only once the other
 * end has proved to be a trusted node. Else a stranger could dial two
 * nodes and pass one's nonce to the other, carrying its proof back; and
 * any connector could make us sign on demand. Never on a loop to
 * ourselves. */
static int
may_prove(const lwwd_gossip *g, const neighbour *nb)
{
	return nb->node != g->d->self && (nb->out || nb->node != 0);
}

/* Proofs owed (answers to HELLOs, one a beat per connection at most):
 * collected under g->mtx, signed outside it (the writer's
 * lwwd_gossip_batch takes g->mtx), then queued to their connections if
 * they are still there. */
#define PROOFS_MAX 64

static void
send_proofs(lwwd_gossip *g)
{
	struct {
		uint32_t pipe;
		uint8_t nonce[LWW_HELLO_NONCE_BYTES];
		lww_buf env;
	} want[PROOFS_MAX];
	lww_buf hb = LWW_BUF_INIT;
	uint64_t now = lwwd_mono_ms(), seq, hlc;
	size_t n = 0;

	pthread_mutex_lock(&g->mtx);
	for (size_t i = 0; i < g->nnbs && n < PROOFS_MAX; i++) {
		neighbour *nb = &g->nbs[i];
		if (!nb->owes_proof || !may_prove(g, nb) ||
		    (nb->proof_ms != 0 && now - nb->proof_ms < HEARTBEAT_MS)) {
			continue;
		}
		want[n].pipe = (uint32_t) nng_pipe_id(nb->pipe);
		memcpy(want[n].nonce, nb->answer, sizeof(want[n].nonce));
		want[n].env = (lww_buf) LWW_BUF_INIT;
		n++;
		nb->owes_proof = 0;
		nb->proof_ms = now;
	}
	pthread_mutex_unlock(&g->mtx);
	if (n == 0) {
		return;
	}
	seq = lwwd_writer_seq(g->d);
	hlc = lww_hlc_make(lwwd_now_ms(), 0);
	for (size_t i = 0; i < n; i++) {
		lww_heartbeat h;
		memset(&h, 0, sizeof(h));
		h.seq = seq;
		h.hlc = hlc;
		h.proof = 1;
		memcpy(h.nonce, want[i].nonce, sizeof(h.nonce));
		lww_buf_reset(&hb);
		if (lww_heartbeat_encode(&hb, &h) != LWW_OK ||
		    lww_envelope_seal(&g->d->key, hb.p, hb.len, &want[i].env) !=
		        LWW_OK) {
			lww_buf_reset(&want[i].env);
		}
	}
	pthread_mutex_lock(&g->mtx);
	hb_note_sent(g, hlc);
	for (size_t i = 0; i < n; i++) {
		neighbour *nb = nb_find(g, want[i].pipe);
		if (nb != NULL && want[i].env.len > 0) {
			nb_put(g, nb, want[i].env.p, want[i].env.len);
			atomic_fetch_add(&g->d->stats.heartbeats_sent, 1);
			g->dirty = 1;
		}
		lww_buf_fini(&want[i].env);
	}
	pthread_mutex_unlock(&g->mtx);
	lww_buf_fini(&hb);
}

/* Connections still not proved after UNPROVEN_MAX_MS (g->mtx held): up
 * to max of them into close[], closed by the caller outside the lock. A
 * trusted node proves itself within a beat or two (HELLO is repeated
 * every beat); what stays silent is a stranger, or an lwwd from before
 * HELLO. */
#define UNPROVEN_MAX_MS 30000

static size_t
unproven(lwwd_gossip *g, uint64_t now, nng_pipe *close, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < g->nnbs && n < max; i++) {
		neighbour *nb = &g->nbs[i];
		if (nb->node == 0 && now - nb->last_ms >= UNPROVEN_MAX_MS) {
			close[n++] = nb->pipe;
			nb->last_ms = now; /* once */
			lwwd_log(LWWD_LOG_INFO, "neighbour_unproven",
			         "url=%s direction=%s reason=\"it did not "
			         "answer HELLO with a trusted node's signed "
			         "heartbeat in %d s: a stranger, or an lwwd "
			         "from before HELLO (upgrade it)\" (closed)",
			         nb->url != NULL ? nb->url : "-",
			         nb->out ? "out" : "in",
			         UNPROVEN_MAX_MS / 1000);
		}
	}
	return n;
}

/* Moves each neighbour's pending messages to its queue (g->mtx held):
 * HELLO (until proved), heartbeat (hb, on a beat), PRUNE (the encoded
 * prune), GRAFT, IHAVE (on a tick), then its bundle. Proofs go by
 * send_proofs. */
static void
gather(lwwd_gossip *g, const lww_buf *hb, const lww_buf *prune, int beat,
       int tick)
{
	for (size_t i = 0; i < g->nnbs; i++) {
		neighbour *nb = &g->nbs[i];
		if (beat && nb->node == 0) {
			nb->hello = 1; /* not proved yet: ask again */
		}
		if (nb->hello) {
			lww_buf m = LWW_BUF_INIT;
			if (lww_hello_encode(&m, nb->challenge) == LWW_OK) {
				nb_put(g, nb, m.p, m.len);
				nb->hello = 0;
			}
			lww_buf_fini(&m);
		}
		if (beat && hb->len > 0) {
			nb_put(g, nb, hb->p, hb->len);
		}
		if (nb->prune) {
			nb_put(g, nb, prune->p, prune->len);
			nb->prune = 0;
			atomic_fetch_add(&g->d->stats.gossip_prunes_sent, 1);
		}
		if (lww_link_count(&nb->graft) > 0) {
			nb_put(g, nb, nb->graft.p, nb->graft.len);
		}
		lww_buf_reset(&nb->graft);
		if (tick && lww_link_count(&nb->ihave) > 0) {
			nb_put(g, nb, nb->ihave.p, nb->ihave.len);
			atomic_fetch_add(&g->d->stats.gossip_ihave_sent, 1);
			lww_buf_reset(&nb->ihave);
		}
		if (lww_link_count(&nb->bundle) > 0) {
			ready_push(g, nb, nb->bundle.p, nb->bundle.len);
		}
		lww_buf_reset(&nb->bundle);
	}
}

static void *
link_main(void *arg)
{
	lwwd_gossip *g = arg;
	lwwd *d = g->d;
	lww_buf hb = LWW_BUF_INIT, env = LWW_BUF_INIT, prune = LWW_BUF_INIT;
	nng_msg **out = calloc(OUT_MAX, sizeof(*out));
	uint64_t next_beat = 0, next_tick = 0, last_tick = 0, last_flush = 0;

	if (out == NULL || lww_prune_encode(&prune) != LWW_OK) {
		lwwd_log(LWWD_LOG_ERROR, "gossip_failed",
		         "reason=\"out of memory\"");
		free(out);
		lww_buf_fini(&prune);
		return NULL;
	}
	for (;;) {
		uint64_t lost[64];
		nng_pipe closing[16];
		size_t nout = 0, nlost = 0, nclose = 0;
		int beat = 0, tick = 0, paused;
		uint64_t now_us = lwwd_mono_us(), now;

		/* A heartbeat to sign, outside the lock; a new neighbour
		 * is greeted with the last one. */
		now = now_us / 1000;
		if (now >= next_beat) {
			lww_heartbeat h;
			memset(&h, 0, sizeof(h));
			h.seq = lwwd_writer_seq(d);
			h.hlc = lww_hlc_make(lwwd_now_ms(), 0);
			lww_buf_reset(&hb);
			lww_buf_reset(&env);
			if (lww_heartbeat_encode(&hb, &h) == LWW_OK &&
			    lww_envelope_seal(&d->key, hb.p, hb.len, &env) ==
			        LWW_OK) {
				beat = 1;
				pthread_mutex_lock(&g->mtx);
				hb_note_sent(g, h.hlc);
				pthread_mutex_unlock(&g->mtx);
				atomic_fetch_add(&d->stats.heartbeats_sent, 1);
			}
			next_beat = now + HEARTBEAT_MS;
		}
		send_proofs(g);
		pthread_mutex_lock(&g->mtx);
		if (beat) {
			summarise(g, lwwd_writer_seq(d));
			nclose = unproven(g, now, closing,
			                  sizeof(closing) / sizeof(closing[0]));
		}
		if (beat || now >= next_tick ||
		    (g->tick_soon && now >= last_tick + TICK_MS)) {
			int pending;
			tick = 1;
			last_tick = now;
			nlost = tick_grafts(g, now, lost,
			                    sizeof(lost) / sizeof(lost[0]),
			                    &pending);
			/* Idle, the link thread wakes once a second. */
			g->tick_soon = pending;
			next_tick = now + (pending ? TICK_MS : HEARTBEAT_MS);
		}
		if (beat || tick || g->dirty) {
			gather(g, &env, &prune, beat, tick);
			g->dirty = 0;
		}
		/* At most SEND_PER_FLUSH messages to each neighbour: what
		 * waits goes at the next flush (FLUSH_GAP_US later). */
		for (size_t i = 0; i < g->nnbs; i++) {
			neighbour *nb = &g->nbs[i];
			size_t k = 0;
			while (k < SEND_PER_FLUSH && k < nb->qlen &&
			       nout < OUT_MAX) {
				nb->qbytes -= nng_msg_len(nb->q[k]);
				out[nout++] = nb->q[k++];
			}
			if (k > 0) {
				memmove(nb->q, nb->q + k,
				        (nb->qlen - k) * sizeof(*nb->q));
				nb->qlen -= k;
			}
			g->dirty |= nb->qlen > 0;
		}
		paused = g->rx_paused;
		g->rx_paused = 0;
		pthread_mutex_unlock(&g->mtx);

		if (paused && !atomic_load(&g->stopping)) {
			nng_recv_aio(g->sock, g->rx);
		}
		for (size_t i = 0; i < nout; i++) {
			size_t len = nng_msg_len(out[i]);
			if (nng_sendmsg(g->sock, out[i], NNG_FLAG_NONBLOCK) !=
			    0) {
				nng_msg_free(out[i]);
				atomic_fetch_add(&d->stats.gossip_send_dropped,
				                 1);
			} else {
				atomic_fetch_add(&d->stats.gossip_bytes_sent,
				                 len);
			}
		}
		for (size_t i = 0; i < nlost; i++) {
			d->hooks.loss(d, lost[i]);
		}
		for (size_t i = 0; i < nclose; i++) {
			nng_pipe_close(closing[i]);
		}
		if (nout > 0) {
			last_flush = lwwd_mono_us();
		}

		pthread_mutex_lock(&g->mtx);
		for (;;) {
			uint64_t tk =
			    g->tick_soon && last_tick + TICK_MS < next_tick
			        ? last_tick + TICK_MS
			        : next_tick;
			uint64_t due = (next_beat < tk ? next_beat : tk) * 1000;
			uint64_t t = lwwd_mono_us();
			if (lwwd_thr_stopping(&g->thr) || t >= due) {
				break;
			}
			if (g->dirty || g->rx_paused) {
				/* Gather a little more before the next
				 * bundle. */
				if (t < last_flush + FLUSH_GAP_US) {
					pthread_mutex_unlock(&g->mtx);
					lwwd_thr_sleep_until(
					    &g->thr, last_flush + FLUSH_GAP_US);
					pthread_mutex_lock(&g->mtx);
				}
				break;
			}
			(void) lwwd_thr_wait(&g->thr, due);
		}
		if (lwwd_thr_stopping(&g->thr)) {
			pthread_mutex_unlock(&g->mtx);
			break;
		}
		pthread_mutex_unlock(&g->mtx);
	}
	lww_buf_fini(&hb);
	lww_buf_fini(&env);
	lww_buf_fini(&prune);
	free(out);
	return NULL;
}

/* ---- the node's own batches ---- */

void
lwwd_gossip_batch(lwwd *d, uint64_t seq, const uint8_t *b, size_t n)
{
	lwwd_gossip *g = d->gossip;
	lww_buf env = LWW_BUF_INIT;
	origin *o;

	if (g == NULL) {
		return;
	}
	if (lww_envelope_seal(&d->key, b, n, &env) != LWW_OK) {
		lwwd_log(LWWD_LOG_ERROR, "publish_failed", "reason=seal");
		lww_buf_fini(&env);
		return;
	}
	pthread_mutex_lock(&g->mtx);
	if (!atomic_load(&g->stopping) &&
	    (o = origin_add(g, d->self)) != NULL) {
		(void) lww_seen_add(&o->seen, seq);
		spread(g, o, seq, 0, env.p, env.len);
		lwwd_thr_wake(&g->thr);
		atomic_fetch_add(&d->stats.batches_sent, 1);
	}
	pthread_mutex_unlock(&g->mtx);
	lww_buf_fini(&env);
}

/* ---- start and stop ---- */

int
lwwd_gossip_start(lwwd *d)
{
	lwwd_gossip *g = calloc(1, sizeof(*g));
	int rv;

	if (g == NULL) {
		fprintf(stderr, "lwwd: out of memory\n");
		return -1;
	}
	g->d = d;
	pthread_mutex_init(&g->mtx, NULL);
	lwwd_thr_init(&g->thr, &g->mtx);
	/* Every trusted origin's window starts at what the store holds of
	 * it, so a restarted node asks for what it missed meanwhile. */
	pthread_rwlock_rdlock(&d->keys_lock);
	for (size_t i = 0; i < lww_trust_count(d->trust); i++) {
		const lww_peer *p = lww_trust_at(d->trust, i);
		uint64_t seq = 0;
		origin *o;
		if (p->node == d->self ||
		    (o = origin_add(g, p->node)) == NULL) {
			continue;
		}
		if (lww_store_seq(d->store, p->node, &seq) == LWW_OK &&
		    seq > 0) {
			lww_seen_start(&o->seen, seq);
			/* The peer table's too, so its lag is real at once
			 * (keys_lock -> d->mtx is the lock order). */
			pthread_mutex_lock(&d->mtx);
			for (size_t k = 0; k < d->npeers; k++) {
				if (d->peers[k].node == p->node &&
				    d->peers[k].seq_applied < seq) {
					d->peers[k].seq_applied = seq;
				}
			}
			pthread_mutex_unlock(&d->mtx);
		}
	}
	pthread_rwlock_unlock(&d->keys_lock);
	d->gossip = g;
	if ((rv = nng_pair1_open_poly(&g->sock)) != 0 ||
	    (rv = nng_socket_set_int(g->sock, NNG_OPT_SENDBUF,
	                             LWW_GOSSIP_SENDBUF)) != 0 ||
	    (rv = nng_socket_set_int(g->sock, NNG_OPT_RECVBUF,
	                             LWW_GOSSIP_RECVBUF)) != 0 ||
	    (rv = nng_socket_set_size(g->sock, NNG_OPT_RECVMAXSZ,
	                              LWW_MSG_MAX)) != 0 ||
	    (rv = nng_socket_set_ms(g->sock, NNG_OPT_RECONNMINT, 100)) != 0 ||
	    (rv = nng_socket_set_ms(g->sock, NNG_OPT_RECONNMAXT, 2000)) != 0 ||
	    (rv = nng_pipe_notify(g->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, g)) !=
	        0 ||
	    (rv = nng_pipe_notify(g->sock, NNG_PIPE_EV_REM_POST, pipe_cb, g)) !=
	        0) {
		fprintf(stderr, "lwwd: cannot open gossip socket: %s\n",
		        nng_strerror(rv));
		return -1;
	}
	if (lwwd_listen_guarded(d, g->sock, d->cfg.gossip, "--gossip",
	                        LWWD_SP_PAIR1, 0) != 0) {
		return -1;
	}
	for (size_t i = 0; i < d->cfg.npeers; i++) {
		if (lwwd_dial_watched(d, g->sock, d->cfg.peers[i], "--peer") !=
		    0) {
			return -1;
		}
	}
	if ((rv = nng_aio_alloc(&g->rx, rx_cb, g)) != 0) {
		return -1;
	}
	nng_recv_aio(g->sock, g->rx);
	if (lwwd_thr_start(&g->thr, &g->mtx, link_main, g) != 0) {
		return -1;
	}
	return 0;
}

void
lwwd_gossip_stop(lwwd *d)
{
	lwwd_gossip *g = d->gossip;

	if (g == NULL) {
		return;
	}
	/* The receive first: once nng_aio_stop returns, no callback runs
	 * or will run (a receive started later fails at once), so nothing
	 * of gossip reaches repair or the writer. Pipe callbacks still may:
	 * they see `stopping` under the lock and do nothing. */
	pthread_mutex_lock(&g->mtx);
	atomic_store(&g->stopping, 1);
	pthread_mutex_unlock(&g->mtx);
	if (g->rx != NULL) {
		nng_aio_stop(g->rx);
	}
	/* The link thread may restart the receive: it goes before the aio
	 * is freed. */
	lwwd_thr_stop(&g->thr);
	/* The socket itself stays open until exit: nng 1.5's nng_close can
	 * deadlock against its own pipe callbacks under traffic
	 * (nanomsg/nng#1543), and with the receive stopped nothing of ours
	 * uses it. g stays (d->gossip) for those pipe callbacks; what it
	 * holds is freed. */
	if (g->rx != NULL) {
		nng_aio_free(g->rx);
		g->rx = NULL;
	}
	pthread_mutex_lock(&g->mtx);
	for (size_t i = 0; i < g->nnbs; i++) {
		nb_fini(&g->nbs[i]);
	}
	free(g->nbs);
	g->nbs = NULL;
	g->nnbs = g->capnbs = 0;
	free(g->origins);
	g->origins = NULL;
	g->norigins = g->caporigins = 0;
	for (size_t k = 0; k < g->cache_len; k++) {
		free(g->cache[(g->cache_head + k) % CACHE_SLOTS].p);
	}
	g->cache_len = 0;
	pthread_mutex_unlock(&g->mtx);
	lwwd_thr_fini(&g->thr);
}

/* ---- what stats and peers show ---- */

/* The trust-file name of node, or its id (d->mtx held or not). */
static void
name_of(lwwd *d, uint64_t node, char *out, size_t cap)
{
	const lww_peer *p;

	pthread_rwlock_rdlock(&d->keys_lock);
	p = lww_trust_find_node(d->trust, node);
	if (p != NULL) {
		snprintf(out, cap, "%s", p->name);
	} else if (node == d->self) {
		snprintf(out, cap, "%s", d->self_name);
	} else {
		snprintf(out, cap, "%016" PRIx64, node);
	}
	pthread_rwlock_unlock(&d->keys_lock);
}

lww_err
lwwd_gossip_deliveries_json(lwwd *d, lww_buf *b)
{
	lwwd_gossip *g = d->gossip;
	delivery dv[DELIVERIES];
	size_t n = 0, next = 0;
	lww_err rv;

	if (g != NULL) {
		pthread_mutex_lock(&g->mtx);
		next = g->deliv_next;
		n = next < DELIVERIES ? next : DELIVERIES;
		memcpy(dv, g->deliv, sizeof(dv));
		pthread_mutex_unlock(&g->mtx);
	}
	rv = lww_buf_put(b, ",\"deliveries\":[", 15);
	for (size_t i = 0; i < n && rv == LWW_OK; i++) {
		const delivery *x = &dv[(next - n + i) % DELIVERIES];
		char name[LWW_TRUST_NAME_MAX + 1], tmp[160];
		int len;
		name_of(d, x->origin, name, sizeof(name));
		len = snprintf(tmp, sizeof(tmp),
		               "%s{\"origin\":\"%s\",\"seq\":%" PRIu64
		               ",\"delay_ms\":%" PRId64 "}",
		               i ? "," : "", name, x->seq, x->delay_ms);
		rv = lww_buf_put(b, tmp, (size_t) len);
	}
	return rv != LWW_OK ? rv : lww_buf_put(b, "]", 1);
}

/* Neighbour rows are written from a copy, so that names are looked up
 * without g->mtx held. */
typedef struct nb_row {
	uint64_t node;
	char name[LWW_TRUST_NAME_MAX + 1];
	char url[256];
	int has_url, out, eager;
	uint64_t ago, copies, duplicates, forwarded;
} nb_row;

lww_err
lwwd_gossip_neighbours_json(lwwd *d, lww_buf *b, int first)
{
	lwwd_gossip *g = d->gossip;
	nb_row *rows = NULL;
	size_t n = 0;
	lww_err rv = LWW_OK;

	if (g == NULL) {
		return LWW_OK;
	}
	pthread_mutex_lock(&g->mtx);
	if (g->nnbs > 0 && (rows = calloc(g->nnbs, sizeof(*rows))) == NULL) {
		pthread_mutex_unlock(&g->mtx);
		return LWW_ENOMEM;
	}
	for (size_t i = 0; i < g->nnbs; i++) {
		const neighbour *nb = &g->nbs[i];
		nb_row *r = &rows[n];
		if (!nb_member(g, nb)) {
			continue;
		}
		r->node = nb->node;
		memcpy(r->name, nb->name, sizeof(r->name));
		if (nb->url != NULL) {
			r->has_url = 1;
			snprintf(r->url, sizeof(r->url), "%s", nb->url);
		}
		r->out = nb->out;
		r->eager = nb->eager;
		r->ago = lwwd_mono_ms() - nb->last_ms;
		r->copies = nb->copies;
		r->duplicates = nb->duplicates;
		r->forwarded = nb->forwarded;
		n++;
	}
	pthread_mutex_unlock(&g->mtx);
	for (size_t i = 0; i < n && rv == LWW_OK; i++) {
		char tmp[512];
		int len = snprintf(tmp, sizeof(tmp),
		                   "%s{\"kind\":\"neighbour\",\"name\":\"%s\","
		                   "\"node\":\"%016" PRIx64 "\",\"url\":",
		                   first && i == 0 ? "" : ",", rows[i].name,
		                   rows[i].node);
		if (len < 0 || (size_t) len >= sizeof(tmp)) {
			rv = LWW_EINVAL;
			break;
		}
		rv = lww_buf_put(b, tmp, (size_t) len);
		if (rv == LWW_OK) {
			rv = rows[i].has_url ? lwwd_json_str(b, rows[i].url)
			                     : lww_buf_put(b, "null", 4);
		}
		len = snprintf(
		    tmp, sizeof(tmp),
		    ",\"direction\":\"%s\",\"mode\":\"%s\","
		    "\"last_contact_ms_ago\":%" PRIu64 ",\"copies\":%" PRIu64
		    ",\"duplicates\":%" PRIu64 ",\"forwarded\":%" PRIu64 "}",
		    rows[i].out ? "out" : "in",
		    rows[i].eager ? "eager" : "lazy", rows[i].ago,
		    rows[i].copies, rows[i].duplicates, rows[i].forwarded);
		if (rv == LWW_OK && (len < 0 || (size_t) len >= sizeof(tmp))) {
			rv = LWW_EINVAL;
		}
		if (rv == LWW_OK) {
			rv = lww_buf_put(b, tmp, (size_t) len);
		}
	}
	free(rows);
	return rv;
}

void
lwwd_gossip_origin_counts(lwwd *d, uint64_t node, uint64_t *copies,
                          uint64_t *forwarded)
{
	lwwd_gossip *g = d->gossip;
	const origin *o;

	*copies = *forwarded = 0;
	if (g == NULL) {
		return;
	}
	pthread_mutex_lock(&g->mtx);
	if ((o = origin_find(g, node)) != NULL) {
		*copies = o->copies;
		*forwarded = o->forwarded;
	}
	pthread_mutex_unlock(&g->mtx);
}
