/*
 * repair.c - anti-entropy: the --sync server and repair rounds with peers.
 *
 * A round with one peer walks the two hash trees from the root: one
 * TREE_REQ per level asks for the children of every node that differs, so
 * four round trips reach the 65,536 stored leaves. For the leaves that
 * differ, LEAF_REQ sends a 12-byte summary of each local entry there and
 * the peer answers with the entries the summaries do not cover. The bytes
 * moved grow with the difference, not with the store.
 *
 * Rounds are push-pull (LEAF_PP_REQ): the reply also lists the request's
 * summaries the peer lacks, and the asker sends those entries in PUSH
 * requests over the connection it dialled. So a node nobody can dial
 * (behind NAT, only --peer out) still gets its writes to its peers when
 * gossip lost them. A peer that dials our --sync itself (its clock
 * probes, its rounds) pulls what it lacks, so rounds with it stay
 * pull-only (PULLS_RECENT_MS). A peer
 * that predates push-pull refuses LEAF_PP_REQ; rounds with it fall back
 * to pull-only for PP_RETRY_MS.
 *
 * Every request and reply is a signed envelope from a trusted key. Fetched
 * and pushed entries go through the writer like gossip: an entry whose
 * node id belongs to no trusted key is dropped here, one beyond max drift
 * is refused there. Bounds: one session served at a time (a synchronous REP
 * loop), at most LWW_BATCH_ENTRIES_MAX entries and about
 * LWW_SYNC_REPLY_BYTES_TARGET bytes per reply, so a large catch-up is many
 * small steps and never stalls the API; rounds run on their own thread.
 *
 * Every legal entry can be repaired: a reply always carries its first
 * entry, and a request its first leaf, whatever their size (core/limits.h
 * keeps room for one entry of the largest size in every message). A leaf
 * too big for one reply comes in parts: the asker names what each part
 * brought in its next request, so the peer sends the rest. A leaf where
 * the peer makes no progress is skipped, and the round reported once at
 * error level (repair_stalled) and counted, not retried silently forever.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "limits.h"
#include "lwwd.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#define SESSION_TIMEOUT_MS 5000
#define TRIGGER_MIN_GAP_MS 500
/* A peer's stalled rounds are logged at error level at most this often;
 * the rounds in between log at debug level and are counted. */
#define STALL_LOG_EVERY_MS (10 * 60 * 1000)
/* Rounds in a row that fail at the same leaf before that is a stall. */
#define STALL_FAILED_RUNS 3
/* How long the sync server waits for room in the writer's queue for a
 * push: well within the asker's SESSION_TIMEOUT_MS, so it hears back. */
#define PUSH_WAIT_MS 2000
/* After a peer refused a push-pull request (an older lwwd), rounds with
 * it are pull-only this long, then push-pull is tried again. */
#define PP_RETRY_MS (10 * 60 * 1000)
/* A peer that probed our clock or began a round with us this recently
 * dials our --sync (we are its --peer), so its own rounds pull what it
 * lacks: pushing to it as well would move the same entries twice (a late
 * joiner would get everything once from each of its peers), so rounds
 * with it are pull-only. It probes every second (clock.c), so this spans
 * many probes; a peer silent longer gets pushes, which is only wasteful
 * if it pulls after all, never wrong. */
#define PULLS_RECENT_MS (30 * 1000)

_Static_assert(LWW_ENVELOPE_OVERHEAD + 64 <= LWW_MSG_HEADROOM,
               "the headroom holds the envelope and a message header");
_Static_assert(64 + (LWW_SYNC_NODES_MAX * LWW_DIGEST_FANOUT * LWW_SYNC_HASH) <=
                   LWW_MSG_PAYLOAD_MAX,
               "a tree reply fits in a message");

typedef struct repair_peer {
	char *url;
	nng_socket sock;
	int open;
	uint64_t node;            /* learned from its first signed reply */
	uint32_t fail_leaf;       /* where the last failed round stopped */
	unsigned fail_runs;       /* rounds in a row that failed there */
	uint64_t stall_logged_ms; /* last repair_stalled error logged */
	int stalled_logged;       /* stall_logged_ms is set */
	int stalled;              /* its last round stalled */
	uint64_t pull_only_until; /* lwwd_mono_ms(): push-pull refused */
	int pull_only_logged;     /* the warning about it was logged */
} repair_peer;

struct lwwd_repair {
	repair_peer *peers;
	size_t npeers;
	size_t next;
	nng_socket rep;
	nng_aio *rep_aio; /* the server's receive; stop cancels it */
	nng_aio *cli_aio; /* the client's exchanges; stop cancels them */
	/* A leaf lock (lwwd.h): guards the trigger below and the threads'
	 * stop flags; d->mtx may be held when it is taken, never the other
	 * way round. */
	pthread_mutex_t mtx;
	lwwd_thr server; /* answers --sync requests */
	lwwd_thr client; /* rounds: woken by a trigger or the stop */
	int triggered;
	uint64_t trigger_node;
	uint64_t last_trigger_ms;
};

/* Seals payload and sends it, through aio if given (the client's, which
 * lwwd_repair_stop cancels); returns 0 or an nng error. */
static int
send_sealed(lwwd *d, nng_socket s, nng_aio *aio, const lww_buf *payload,
            lww_buf *env)
{
	int rv =
	    lwwd_send_sealed(&d->key, s, aio, payload->p, payload->len, env, 0);
	if (rv == 0) {
		atomic_fetch_add(&d->stats.repair_bytes_sent, env->len);
	}
	return rv;
}

/* Opens a received envelope against the trust set. On success *env
 * points into msg, and node and name identify the signer; our own key
 * is LWW_EFORGED (a loop). */
static lww_err
open_sealed(lwwd *d, nng_msg *msg, lww_envelope *env, uint64_t *node,
            char name[LWW_TRUST_NAME_MAX + 1])
{
	lwwd_signer who;
	lww_err rv;

	atomic_fetch_add(&d->stats.repair_bytes_received, nng_msg_len(msg));
	rv = lwwd_verify(d, 0, nng_msg_body(msg), nng_msg_len(msg), env, &who);
	if (rv == LWW_OK) {
		*node = who.node;
		memcpy(name, who.name, LWW_TRUST_NAME_MAX + 1);
	}
	return rv;
}

/* ---- the server: answers one request at a time ---- */

static void
hash8(const lww_digest *h, uint8_t *out)
{
	memcpy(out, h->h, LWW_SYNC_HASH);
}

/* Notes that node dialled our --sync (a round or a clock probe). */
static void
note_pulls(lwwd *d, uint64_t node)
{
	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < d->npeers; i++) {
		if (d->peers[i].node == node) {
			d->peers[i].pulls_ms = lwwd_mono_ms();
		}
	}
	pthread_mutex_unlock(&d->mtx);
}

/* Whether node dialled our --sync within PULLS_RECENT_MS. */
static int
peer_pulls(lwwd *d, uint64_t node)
{
	uint64_t now = lwwd_mono_ms();
	int pulls = 0;

	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < d->npeers; i++) {
		if (d->peers[i].node == node && d->peers[i].pulls_ms != 0 &&
		    now - d->peers[i].pulls_ms < PULLS_RECENT_MS) {
			pulls = 1;
		}
	}
	pthread_mutex_unlock(&d->mtx);
	return pulls;
}

static lww_err
serve_tree(lwwd *d, uint64_t from, const lww_tree_req *q, lww_buf *out)
{
	uint8_t *hashes;
	lww_err rv = LWW_OK;

	if (q->level == 0) {
		/* A round begins: answer with everything acknowledged. */
		lwwd_wal_barrier(d);
		note_pulls(d, from);
	}

	hashes = malloc((size_t) q->count * 16 * LWW_SYNC_HASH + 1);
	if (hashes == NULL) {
		return LWW_ENOMEM;
	}
	for (uint32_t i = 0; i < q->count && rv == LWW_OK; i++) {
		lww_digest kids[LWW_DIGEST_FANOUT];
		rv = lww_store_digest_children(d->store, q->level,
		                               lww_tree_req_index(q, i), kids);
		for (int c = 0; c < LWW_DIGEST_FANOUT && rv == LWW_OK; c++) {
			hash8(&kids[c],
			      hashes + ((size_t) i * 16 + c) * LWW_SYNC_HASH);
		}
	}
	if (rv == LWW_OK) {
		rv = lww_tree_rep_encode(out, q->level, hashes, q->count);
	}
	free(hashes);
	return rv;
}

typedef struct leaf_serve {
	lww_buf *out;
	const uint8_t *sums;
	uint32_t nsum;
	uint8_t *held; /* push-pull: per summary, the store holds it */
	int full;
	uint64_t sent;
} leaf_serve;

/* A LEAF_REQ summary is a bucket and the hash prefix the store's bucket
 * index keeps, so neither side reads or hashes an entry to make one. */
_Static_assert(LWW_SYNC_HASH == LWW_STORE_SUMMARY_HASH,
               "repair summaries are the store's summary hashes");

/* The index of want among the n summaries at sums, or -1. */
static int64_t
summary_find(const uint8_t *sums, uint32_t n, const uint8_t want[12])
{
	for (uint32_t i = 0; i < n; i++) {
		if (memcmp(sums + (size_t) i * LWW_SYNC_SUMMARY, want,
		           LWW_SYNC_SUMMARY) == 0) {
			return i;
		}
	}
	return -1;
}

static int
summary_has(const uint8_t *sums, uint32_t n, const uint8_t want[12])
{
	return summary_find(sums, n, want) >= 0;
}

/* Only the entries the asker's summaries do not cover are read. The
 * walk sees every summary of the leaf, so it also marks which of the
 * asker's this store holds: the rest are what the asker should push. */
static int
leaf_serve_want(uint32_t bucket, const uint8_t *hash, void *arg)
{
	leaf_serve *ls = arg;
	uint8_t sum[LWW_SYNC_SUMMARY];
	int64_t i;

	lww_sync_summary(sum, bucket, hash);
	i = summary_find(ls->sums, ls->nsum, sum);
	if (i >= 0 && ls->held != NULL) {
		ls->held[i] = 1;
	}
	return i < 0;
}

static int
leaf_serve_cb(const lww_entry *e, void *arg)
{
	leaf_serve *ls = arg;
	size_t len = ls->out->len + lww_entry_size(e);

	/* Past the target a reply takes no more entries, but its first goes
	 * whatever its size: one of the largest (LWW_ENTRY_ENCODED_MAX)
	 * fits in a message, so every entry can be repaired. */
	if ((len > LWW_SYNC_REPLY_BYTES_TARGET &&
	     lww_leaf_rep_count(ls->out) > 0) ||
	    len > LWW_MSG_PAYLOAD_MAX ||
	    lww_leaf_rep_add(ls->out, e) != LWW_OK) {
		ls->full = 1;
		return 1;
	}
	ls->sent++;
	return 0;
}

/* Appends to wants the summaries of one leaf the store does not hold
 * (held[i] == 0). */
static lww_err
leaf_wants(const uint8_t *sums, uint32_t nsum, const uint8_t *held,
           lww_buf *wants)
{
	lww_err rv = LWW_OK;

	for (uint32_t i = 0; i < nsum && rv == LWW_OK; i++) {
		if (!held[i]) {
			rv = lww_buf_put(wants,
			                 sums + (size_t) i * LWW_SYNC_SUMMARY,
			                 LWW_SYNC_SUMMARY);
		}
	}
	return rv;
}

/* Answers a LEAF_REQ, or a LEAF_PP_REQ with the wants of the leaves it
 * serves whole in `wants` (a scratch buffer) and then at its end. */
static lww_err
serve_leaves(lwwd *d, const lww_leaf_req *q, lww_buf *out, lww_buf *wants)
{
	const uint8_t *sums;
	uint32_t leaf, nsum, done = 0;
	size_t off = 0;
	uint64_t sent = 0;
	lww_err rv;

	lww_buf_reset(wants);
	rv = q->push ? lww_leaf_pp_rep_begin(out) : lww_leaf_rep_begin(out);
	if (rv != LWW_OK) {
		return rv;
	}
	while (lww_leaf_req_next(q, &off, &leaf, &nsum, &sums)) {
		size_t mark = out->len, wmark = wants->len;
		uint32_t count = lww_leaf_rep_count(out);
		leaf_serve ls = {out, sums, nsum, NULL, 0, 0};
		if (q->push && nsum > 0 &&
		    (ls.held = calloc(nsum, 1)) == NULL) {
			return LWW_ENOMEM;
		}
		rv = lww_store_scan_summaries(d->store, LWW_DIGEST_STORED, leaf,
		                              leaf_serve_want, leaf_serve_cb,
		                              &ls);
		if (rv == LWW_OK && q->push && !ls.full && nsum > 0) {
			rv = leaf_wants(sums, nsum, ls.held, wants);
			/* The wants of a leaf are at most its summaries, which
			 * fit in a request; with the entries they may not fit
			 * in a reply: then the leaf is served next time, or,
			 * if first, in parts (its last part has room). */
			if (rv == LWW_OK &&
			    out->len + 4 + wants->len > LWW_MSG_PAYLOAD_MAX) {
				wants->len = wmark;
				ls.full = 1;
			}
		}
		free(ls.held);
		if (rv != LWW_OK) {
			return rv;
		}
		if (ls.full) {
			/* Leave this leaf whole for the next request, unless
			 * it alone overflows a reply: then send what fits and
			 * the asker asks again, naming what came. */
			if (done > 0) {
				lww_leaf_rep_truncate(out, mark, count);
			} else {
				sent += ls.sent;
			}
			break;
		}
		sent += ls.sent;
		done++;
	}
	if (q->push &&
	    (rv = lww_leaf_pp_rep_end(
	         out, wants->p, (uint32_t) (wants->len / LWW_SYNC_SUMMARY))) !=
	        LWW_OK) {
		return rv;
	}
	lww_leaf_rep_set_done(out, done);
	atomic_fetch_add(&d->stats.repair_keys_sent, sent);
	return LWW_OK;
}

static uint32_t submit_entries(lwwd *d, const lww_entries *es, uint64_t from,
                               const char *name, const lwwd_thr *caller,
                               uint64_t wait_ms);

/* Takes a peer's push like fetched entries, through the writer, but waits
 * for room at most PUSH_WAIT_MS: the REP loop serves everyone. */
static lww_err
serve_push(lwwd *d, const uint8_t *p, size_t n, uint64_t from, const char *name,
           lww_buf *out)
{
	lww_entries es;
	uint32_t taken;
	lww_err rv;

	if ((rv = lww_push_req_decode(p, n, &es)) != LWW_OK) {
		return rv;
	}
	taken = submit_entries(d, &es, from, name, &d->repair->server,
	                       PUSH_WAIT_MS);
	atomic_fetch_add(&d->stats.repair_keys_taken, taken);
	if (taken < es.count) {
		lwwd_log(LWWD_LOG_DEBUG, "repair_push_partly_taken",
		         "peer=%s taken=%u pushed=%u", name, taken, es.count);
	}
	return lww_push_rep_encode(out, taken);
}

static void *
server_main(void *arg)
{
	lwwd *d = arg;
	struct lwwd_repair *r = d->repair;
	lww_buf out = LWW_BUF_INIT, env = LWW_BUF_INIT, wants = LWW_BUF_INIT;

	while (!lwwd_thr_stopping(&r->server)) {
		char name[LWW_TRUST_NAME_MAX + 1];
		lww_envelope e;
		uint64_t node;
		nng_msg *msg;
		uint8_t type;
		uint64_t t2;
		lww_err rv;
		int nrv;

		/* No receive timeout: lwwd_repair_stop cancels the receive.
		 * (nng 1.5 times its timeouts on the wall clock, so one
		 * under way when the clock steps back lasts as much longer,
		 * and a stop waiting for it would too.) */
		nng_recv_aio(r->rep, r->rep_aio);
		nng_aio_wait(r->rep_aio);
		if ((nrv = nng_aio_result(r->rep_aio)) != 0) {
			/* Never spin on an error; the stop ends the wait. */
			if (nrv != NNG_ECANCELED && nrv != NNG_ECLOSED &&
			    lwwd_thr_sleep_until(&r->server,
			                         lwwd_deadline_ms(10))) {
				break;
			}
			continue;
		}
		msg = nng_aio_get_msg(r->rep_aio);
		t2 = lwwd_now_ms(); /* a clock probe's receive time */
		rv = open_sealed(d, msg, &e, &node, name);
		lww_buf_reset(&out);
		if (rv == LWW_OK &&
		    (rv = lww_msg_peek(e.payload, e.plen, &type)) == LWW_OK) {
			if (type == LWW_MSG_TREE_REQ) {
				lww_tree_req q;
				rv = lww_tree_req_decode(e.payload, e.plen, &q);
				if (rv == LWW_OK) {
					rv = serve_tree(d, node, &q, &out);
				}
			} else if (type == LWW_MSG_LEAF_REQ ||
			           type == LWW_MSG_LEAF_PP_REQ) {
				lww_leaf_req q;
				rv = lww_leaf_req_decode(e.payload, e.plen, &q);
				if (rv == LWW_OK) {
					rv = serve_leaves(d, &q, &out, &wants);
				}
			} else if (type == LWW_MSG_PUSH_REQ) {
				rv = serve_push(d, e.payload, e.plen, node,
				                name, &out);
			} else if (type == LWW_MSG_CLOCK_REQ) {
				/* It probes our --sync: we are its --peer, so
				 * its rounds come to us too (clock.c probes
				 * every peer each second). */
				note_pulls(d, node);
				rv = lwwd_clock_probe_reply(d, node, e.payload,
				                            e.plen, t2, &out);
			} else {
				rv = LWW_EUNKNOWN;
			}
		}
		nng_msg_free(msg);
		if (rv != LWW_OK) {
			/* No reply: the asker times out. Unsigned or untrusted
			 * requests get nothing to learn from. */
			atomic_fetch_add(&d->stats.repair_rejected, 1);
			lwwd_log(LWWD_LOG_DEBUG, "repair_request_refused",
			         "reason=\"%s\"", lww_strerror(rv));
			/* A REP socket must answer before the next receive;
			 * an empty reply is refused by every decoder. */
			lww_buf_reset(&out);
			(void) lww_buf_put_u8(&out, 0);
			nng_send(r->rep, out.p, out.len, 0);
			continue;
		}
		atomic_fetch_add(&d->stats.repair_requests_served, 1);
		(void) send_sealed(d, r->rep, NULL, &out, &env);
	}
	lww_buf_fini(&out);
	lww_buf_fini(&env);
	lww_buf_fini(&wants);
	return NULL;
}

/* ---- the client: rounds with peers ---- */

/* Sends a sealed request and waits for a reply signed by a trusted peer.
 * On success *reply (freed by the caller) holds it, *e points into it. */
static lww_err
exchange(lwwd *d, repair_peer *p, const lww_buf *req, lww_buf *env,
         nng_msg **reply, lww_envelope *e, uint64_t *node,
         char name[LWW_TRUST_NAME_MAX + 1])
{
	nng_aio *aio = d->repair->cli_aio;
	nng_msg *m;
	lww_err rv;

	if (send_sealed(d, p->sock, aio, req, env) != 0) {
		return LWW_EIO;
	}
	atomic_fetch_add(&d->stats.repair_pull_bytes, env->len);
	/* The socket's receive timeout applies; a stop cancels the aio. */
	nng_recv_aio(p->sock, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		return LWW_EIO;
	}
	m = nng_aio_get_msg(aio);
	nng_aio_set_msg(aio, NULL);
	atomic_fetch_add(&d->stats.repair_pull_bytes, nng_msg_len(m));
	if ((rv = open_sealed(d, m, e, node, name)) != LWW_OK) {
		/* The server's one-byte refusal (server_main): for a request
		 * type it does not know, LWW_EUNKNOWN. */
		if (nng_msg_len(m) == 1) {
			rv = LWW_EUNKNOWN;
		}
		nng_msg_free(m);
		atomic_fetch_add(&d->stats.repair_rejected, 1);
		return rv;
	}
	*reply = m;
	return LWW_OK;
}

typedef struct sum_acc {
	lww_buf *sums;
	uint32_t n;
} sum_acc;

static int
summarise_cb(uint32_t bucket, const uint8_t *hash, void *arg)
{
	sum_acc *a = arg;
	uint8_t sum[LWW_SYNC_SUMMARY];

	lww_sync_summary(sum, bucket, hash);
	if (lww_buf_put(a->sums, sum, sizeof(sum)) != LWW_OK) {
		return -1;
	}
	a->n++;
	return 0;
}

/* Queues fetched or pushed entries for the writer, keeping only those
 * stamped with a trusted node's id; waits for room at most wait_ms (the
 * caller's stop ends the wait). Returns the number queued. */
static uint32_t
submit_entries(lwwd *d, const lww_entries *es, uint64_t from, const char *name,
               const lwwd_thr *caller, uint64_t wait_ms)
{
	lwwd_op *op = calloc(1, sizeof(*op));
	size_t off = 0;
	uint32_t n = 0, dropped = 0;
	lww_entry e;

	if (op == NULL) {
		return 0;
	}
	while (lww_entries_next(es, &off, &e)) {
		if (!lwwd_trusted_node(d, e.node)) {
			dropped++;
			continue;
		}
		if (lww_entry_encode(&op->own, &e) == LWW_OK) {
			n++;
		}
	}
	if (dropped > 0) {
		atomic_fetch_add(&d->stats.rejected_forged, dropped);
		lwwd_log(LWWD_LOG_WARN, "repair_entries_refused",
		         "peer=%s count=%u reason=untrusted_node_id", name,
		         dropped);
	}
	if (n == 0) {
		lww_buf_fini(&op->own);
		free(op);
		return 0;
	}
	op->remote = 1;
	op->repair = 1;
	op->owned = 1;
	op->origin = from;
	snprintf(op->origin_name, sizeof(op->origin_name), "%s", name);
	op->batch.entries.p = op->own.p;
	op->batch.entries.n = op->own.len;
	op->batch.entries.count = n;
	op->batch.entries.stamped = 1;
	/* Repair must not be dropped like a gossip flood: wait for room. */
	if (lwwd_writer_submit_wait(d, op, lwwd_deadline_ms(wait_ms), caller) ==
	    LWW_OK) {
		return n;
	}
	lww_buf_fini(&op->own);
	free(op);
	return 0;
}

/* Queues entries a round fetched: waits for room in the writer's queue
 * up to 10 s (the stop ends the wait). */
static uint32_t
fetch_entries(lwwd *d, const lww_entries *es, uint64_t from, const char *name)
{
	uint32_t n =
	    submit_entries(d, es, from, name, &d->repair->client, 10000);
	atomic_fetch_add(&d->stats.repair_keys_fetched, n);
	return n;
}

/* Collects, from one leaf, the entries whose summaries the peer wants. */
typedef struct push_acc {
	lww_buf *req;        /* the PUSH_REQ under construction */
	const uint8_t *want; /* the wanted summaries in this leaf */
	uint32_t nwant;
	uint8_t *sent; /* per want: put in a push (or skipped) */
	int64_t cur;   /* the want push_want matched last */
	int full;      /* req is full: send it, then scan the leaf again */
} push_acc;

static int
push_want(uint32_t bucket, const uint8_t *hash, void *arg)
{
	push_acc *a = arg;
	uint8_t sum[LWW_SYNC_SUMMARY];

	lww_sync_summary(sum, bucket, hash);
	a->cur = summary_find(a->want, a->nwant, sum);
	return a->cur >= 0 && !a->sent[a->cur];
}

/* The store passes an entry right after push_want asked for it. */
static int
push_cb(const lww_entry *e, void *arg)
{
	push_acc *a = arg;
	uint32_t count = lww_push_req_count(a->req);
	size_t len = a->req->len + lww_entry_size(e);

	/* Bounded like a leaf reply, but the first entry always goes: one
	 * of the largest fits in a message. */
	if (count > 0 &&
	    (len > LWW_SYNC_REPLY_BYTES_TARGET || len > LWW_MSG_PAYLOAD_MAX ||
	     count >= LWW_BATCH_ENTRIES_MAX)) {
		a->full = 1;
		return 1;
	}
	/* An entry that cannot be encoded (not one the store accepts) is
	 * skipped, not retried forever. */
	(void) lww_push_req_add(a->req, e);
	if (a->cur >= 0) {
		a->sent[a->cur] = 1;
	}
	return 0;
}

/* Sends the push in req and reads how many the peer took into *took. */
static lww_err
push_send(lwwd *d, repair_peer *p, lww_buf *req, lww_buf *env, uint64_t *node,
          char name[LWW_TRUST_NAME_MAX + 1], uint64_t *took)
{
	uint32_t count = lww_push_req_count(req), taken;
	lww_envelope e;
	nng_msg *m;
	lww_err rv;

	if (count == 0) {
		return LWW_OK;
	}
	if ((rv = exchange(d, p, req, env, &m, &e, node, name)) != LWW_OK) {
		return rv;
	}
	rv = lww_push_rep_decode(e.payload, e.plen, &taken);
	nng_msg_free(m);
	if (rv != LWW_OK || taken > count) {
		atomic_fetch_add(&d->stats.repair_rejected, 1);
		return LWW_EPROTO;
	}
	atomic_fetch_add(&d->stats.repair_keys_pushed, taken);
	*took += taken;
	return lww_push_req_begin(req);
}

/* The stored leaf of the i-th summary at want (its bucket's top bits). */
static uint32_t
want_leaf(const uint8_t *want, uint32_t i)
{
	return lww_digest_index(
	    lww_get_u32le(want + (size_t) i * LWW_SYNC_SUMMARY),
	    LWW_DIGEST_STORED);
}

/* Pushes to the peer the entries whose summaries it said it lacks (nwant
 * at want, as a LEAF_PP_REP lists them: leaf by leaf). The summaries are
 * this store's, so each names one entry; one replaced since by a newer
 * write is no longer found, and is not sent. Adds to *took how many the
 * peer took. */
static lww_err
push_wanted(lwwd *d, repair_peer *p, const uint8_t *want, uint32_t nwant,
            lww_buf *req, lww_buf *env, uint64_t *node,
            char name[LWW_TRUST_NAME_MAX + 1], uint64_t *took)
{
	uint8_t *sent = calloc(nwant, 1);
	lww_err rv;

	if (sent == NULL) {
		return LWW_ENOMEM;
	}
	rv = lww_push_req_begin(req);
	for (uint32_t i = 0, j; i < nwant && rv == LWW_OK; i = j) {
		uint32_t leaf = want_leaf(want, i);
		for (j = i + 1; j < nwant && want_leaf(want, j) == leaf; j++) {
		}
		push_acc a = {.req = req,
		              .want = want + (size_t) i * LWW_SYNC_SUMMARY,
		              .nwant = j - i,
		              .sent = sent + i,
		              .cur = -1};
		/* A leaf with more than one push holds is scanned again after
		 * each push, for the entries not yet sent. */
		do {
			a.full = 0;
			rv = lww_store_scan_summaries(d->store,
			                              LWW_DIGEST_STORED, leaf,
			                              push_want, push_cb, &a);
			if (rv == LWW_OK && a.full) {
				rv =
				    push_send(d, p, req, env, node, name, took);
			}
		} while (rv == LWW_OK && a.full);
	}
	if (rv == LWW_OK) {
		rv = push_send(d, p, req, env, node, name, took);
	}
	free(sent);
	return rv;
}

static void
note_peer(lwwd *d, uint64_t node, uint64_t keys, uint64_t seq_seen)
{
	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < d->npeers; i++) {
		lwwd_peer_state *ps = &d->peers[i];
		if (ps->node != node) {
			continue;
		}
		ps->last_repair_ms = lwwd_mono_ms();
		ps->repair_keys += keys;
		/* Everything the peer had announced when the round began
		 * is now here, lost batches included. */
		if (seq_seen > ps->seq_applied) {
			ps->seq_applied = seq_seen;
		}
	}
	pthread_mutex_unlock(&d->mtx);
}

static uint64_t
announced_seq(lwwd *d, uint64_t node)
{
	uint64_t s = 0;
	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < d->npeers; i++) {
		if (d->peers[i].node == node) {
			s = d->peers[i].seq_announced;
		}
	}
	pthread_mutex_unlock(&d->mtx);
	return s;
}

static void
wait_writer_idle(lwwd *d)
{
	lwwd_writer_wait_idle(d, lwwd_deadline_ms(5000), &d->repair->client);
}

/* The leaves of one round where the peer made no progress. */
typedef struct stall {
	uint32_t leaves;
	char reason[320]; /* the first one's: cause, then what to do */
} stall;

static void __attribute__((format(printf, 2, 3)))
stall_note(stall *st, const char *fmt, ...)
{
	va_list ap;

	if (st->leaves++ == 0) {
		va_start(ap, fmt);
		vsnprintf(st->reason, sizeof(st->reason), fmt, ap);
		va_end(ap);
	}
}

/* A round failed at leaf (no reply, or a malformed one). The same leaf
 * STALL_FAILED_RUNS rounds in a row is a stall, not bad luck. */
static void
leaf_failed(repair_peer *p, uint32_t leaf, const char *why, stall *st)
{
	if (p->fail_runs > 0 && p->fail_leaf == leaf) {
		p->fail_runs++;
	} else {
		p->fail_leaf = leaf;
		p->fail_runs = 1;
	}
	if (p->fail_runs >= STALL_FAILED_RUNS) {
		stall_note(st,
		           "leaf %u: %u rounds in a row failed there (%s); "
		           "see the peer's log",
		           leaf, p->fail_runs, why);
	}
}

/* A reply served part of leaf (done = 0). Appends to *named the summary
 * of each entry it brought under that leaf which the request's summaries
 * (sums, nsum) did not name, so that the next request names it and the
 * peer sends the rest: entries not applied here (an older write, a stamp
 * beyond max drift) are named as well as those applied, and those
 * applied need not wait for a checkpoint to be summarised. Returns how
 * many it appended: 0 means the reply brought nothing new. */
static uint32_t
name_partial(uint32_t leaf, const uint8_t *sums, uint32_t nsum,
             const lww_entries *es, lww_buf *named)
{
	size_t off = 0;
	uint32_t n = 0;
	lww_entry e;

	while (lww_entries_next(es, &off, &e)) {
		uint32_t bucket = lww_digest_bucket(e.key, e.klen);
		uint8_t sum[LWW_SYNC_SUMMARY];
		lww_digest h;

		if (lww_digest_index(bucket, LWW_DIGEST_STORED) != leaf) {
			continue; /* not what was asked for */
		}
		lww_digest_entry(&e, &h);
		lww_sync_summary(sum, bucket, h.h);
		if (summary_has(sums, nsum, sum) ||
		    summary_has(named->p,
		                (uint32_t) (named->len / LWW_SYNC_SUMMARY),
		                sum) ||
		    lww_buf_put(named, sum, sizeof(sum)) != LWW_OK) {
			continue;
		}
		n++;
	}
	return n;
}

/* Reports a round that stalled: at error level once per
 * STALL_LOG_EVERY_MS for a peer, else at debug level; always counted. */
static void
report_stall(lwwd *d, repair_peer *p, const char *name, const stall *st)
{
	uint64_t now = lwwd_mono_ms();
	int level = LWWD_LOG_DEBUG;

	atomic_fetch_add(&d->stats.repair_rounds_stalled, 1);
	if (!p->stalled_logged ||
	    now - p->stall_logged_ms >= STALL_LOG_EVERY_MS) {
		level = LWWD_LOG_ERROR;
		p->stall_logged_ms = now;
		p->stalled_logged = 1;
	}
	p->stalled = 1;
	lwwd_log(level, "repair_stalled",
	         "peer=%s url=%s leaves=%u reason=\"%s\"", name, p->url,
	         st->leaves, st->reason);
}

/* One round with one peer. */
static void
round_with(lwwd *d, repair_peer *p)
{
	char name[LWW_TRUST_NAME_MAX + 1] = "?";
	lww_buf req = LWW_BUF_INIT, env = LWW_BUF_INIT, sums = LWW_BUF_INIT;
	lww_buf named = LWW_BUF_INIT; /* what parts of nodes[i] brought */
	lww_buf push = LWW_BUF_INIT;
	uint32_t *nodes = NULL, *next = NULL, nnodes = 1, nnext;
	uint64_t node = 0, fetched = 0, pushed = 0, seq0 = 0;
	uint64_t t0 = lwwd_mono_ms();
	/* Push-pull unless the peer refused it lately (an older lwwd);
	 * whether it pulls from us itself is known after the first reply. */
	int pp = t0 >= p->pull_only_until;
	const char *why = NULL;
	stall st = {0, ""};
	lww_err rv;

	nodes = malloc(LWW_SYNC_LEAVES_MAX * sizeof(*nodes));
	next = malloc(LWW_SYNC_LEAVES_MAX * sizeof(*next));
	if (nodes == NULL || next == NULL) {
		why = "out of memory";
		goto out;
	}
	nodes[0] = 0;
	/* The tree is the store's: put what is only logged there first. */
	lwwd_wal_barrier(d);
	/* Walk the stored levels: the children of each differing node. */
	for (uint8_t level = 0; level < LWW_DIGEST_STORED; level++) {
		nnext = 0;
		for (uint32_t i = 0; i < nnodes; i += LWW_SYNC_NODES_MAX) {
			uint32_t n = nnodes - i < LWW_SYNC_NODES_MAX
			                 ? nnodes - i
			                 : LWW_SYNC_NODES_MAX;
			lww_envelope e;
			lww_tree_rep tr;
			nng_msg *m;

			lww_buf_reset(&req);
			if (lww_tree_req_encode(&req, level, nodes + i, n) !=
			    LWW_OK) {
				why = "encode";
				goto out;
			}
			if ((rv = exchange(d, p, &req, &env, &m, &e, &node,
			                   name)) != LWW_OK) {
				why = lww_strerror(rv);
				goto out;
			}
			if (level == 0) {
				seq0 = announced_seq(d, node);
			}
			if (lww_tree_rep_decode(e.payload, e.plen, &tr) !=
			        LWW_OK ||
			    tr.level != level || tr.count != n) {
				nng_msg_free(m);
				atomic_fetch_add(&d->stats.repair_rejected, 1);
				why = "malformed tree reply";
				goto out;
			}
			for (uint32_t j = 0; j < n; j++) {
				lww_digest kids[LWW_DIGEST_FANOUT];
				if (lww_store_digest_children(d->store, level,
				                              nodes[i + j],
				                              kids) != LWW_OK) {
					nng_msg_free(m);
					why = "local digest";
					goto out;
				}
				for (uint32_t c = 0; c < 16; c++) {
					const uint8_t *theirs =
					    tr.hashes + ((size_t) j * 16 + c) *
					                    LWW_SYNC_HASH;
					if (memcmp(kids[c].h, theirs,
					           LWW_SYNC_HASH) != 0) {
						next[nnext++] =
						    (nodes[i + j] << 4) | c;
					}
				}
			}
			nng_msg_free(m);
		}
		uint32_t *tmp = nodes;
		nodes = next;
		next = tmp;
		nnodes = nnext;
		if (nnodes == 0) {
			atomic_fetch_add(&d->stats.repair_rounds_in_sync, 1);
			note_peer(d, node, 0, seq0);
			goto out;
		}
	}
	/* nodes[] now lists the differing leaves: fetch what they hold, and
	 * push what they lack unless the peer pulls it itself. */
	if (pp && peer_pulls(d, node)) {
		pp = 0;
	}
	/* A request names only as many leaves as a reply is likely to
	 * serve: summaries of leaves the reply cannot reach would be sent
	 * again. Start small, double while replies serve everything, and
	 * fall back to what the last reply managed. */
	for (uint32_t i = 0, want = 64; i < nnodes;) {
		uint32_t j = i, nsum0, leaf0, fresh;
		const uint8_t *sums0;
		lww_leaf_req q;
		size_t qoff = 0;
		lww_envelope e;
		lww_leaf_rep lr;
		nng_msg *m;

		if (st.leaves >= LWW_SYNC_STALLED_LEAVES_MAX) {
			why = "too many leaves without progress";
			goto out;
		}
		if ((pp ? lww_leaf_pp_req_begin(&req)
		        : lww_leaf_req_begin(&req)) != LWW_OK) {
			why = "encode";
			goto out;
		}
		for (; j < nnodes && j - i < want; j++) {
			sum_acc a = {&sums, 0};
			size_t need;
			lww_buf_reset(&sums);
			if (lww_store_scan_summaries(
			        d->store, LWW_DIGEST_STORED, nodes[j],
			        summarise_cb, NULL, &a) != LWW_OK ||
			    (j == i && named.len > 0 &&
			     lww_buf_put(&sums, named.p, named.len) !=
			         LWW_OK)) {
				why = "local summary";
				goto out;
			}
			a.n = (uint32_t) (sums.len / LWW_SYNC_SUMMARY);
			/* Each request stays within its target, but holds its
			 * first leaf whatever its size: it fits, or no request
			 * can name that leaf. */
			need = 8 + sums.len;
			if ((j > i &&
			     req.len + need > LWW_SYNC_REQUEST_BYTES_TARGET) ||
			    req.len + need > LWW_MSG_PAYLOAD_MAX) {
				break;
			}
			if (lww_leaf_req_add(&req, nodes[j], sums.p, a.n) !=
			    LWW_OK) {
				why = "local summary";
				goto out;
			}
		}
		if (j == i) {
			stall_note(
			    &st,
			    "leaf %u: this node holds more entries there "
			    "than one request can summarise (%zu bytes); "
			    "the differences there stay",
			    nodes[i], sums.len);
			lww_buf_reset(&named);
			i++;
			continue;
		}
		if ((rv = exchange(d, p, &req, &env, &m, &e, &node, name)) ==
		        LWW_EUNKNOWN &&
		    pp) {
			/* It answered the tree requests, so it refused the
			 * type: an lwwd from before push-pull. Ask again
			 * pull-only; its own rounds still pull from us if it
			 * can dial us. */
			pp = 0;
			p->pull_only_until = lwwd_mono_ms() + PP_RETRY_MS;
			lwwd_log(p->pull_only_logged ? LWWD_LOG_DEBUG
			                             : LWWD_LOG_WARN,
			         "repair_pull_only",
			         "peer=%s url=%s reason=\"it refused push-pull "
			         "repair requests; upgrade it, or writes of "
			         "this node that gossip lost reach it only "
			         "if it can dial this node's --sync\"",
			         name, p->url);
			p->pull_only_logged = 1;
			continue;
		}
		if (rv != LWW_OK) {
			why = lww_strerror(rv);
			leaf_failed(p, nodes[i], why, &st);
			goto out;
		}
		if (lww_leaf_rep_decode(e.payload, e.plen, &lr) != LWW_OK ||
		    lr.done > j - i) {
			nng_msg_free(m);
			atomic_fetch_add(&d->stats.repair_rejected, 1);
			why = "malformed leaf reply";
			leaf_failed(p, nodes[i], why, &st);
			goto out;
		}
		/* Push what the peer lacks first: the wants point into m. */
		if (lr.nwant > 0 &&
		    (rv = push_wanted(d, p, lr.want, lr.nwant, &push, &env,
		                      &node, name, &pushed)) != LWW_OK) {
			nng_msg_free(m);
			why = lww_strerror(rv);
			leaf_failed(p, nodes[i], why, &st);
			goto out;
		}
		if (lr.done > 0) {
			fetched += fetch_entries(d, &lr.entries, node, name);
			nng_msg_free(m);
			lww_buf_reset(&named);
			if (lr.done == j - i) {
				want = want < LWW_SYNC_LEAVES_MAX / 2
				           ? want * 2
				           : LWW_SYNC_LEAVES_MAX;
			} else {
				want = lr.done > 16 ? lr.done : 16;
			}
			i += lr.done;
			continue;
		}
		/* Part of one leaf too big for a reply came (or nothing):
		 * the next request names what came, so the peer sends the
		 * rest. Our own request holds the first leaf's summaries. */
		if (lww_leaf_req_decode(req.p, req.len, &q) != LWW_OK ||
		    !lww_leaf_req_next(&q, &qoff, &leaf0, &nsum0, &sums0)) {
			nng_msg_free(m);
			why = "encode";
			goto out;
		}
		fresh = name_partial(leaf0, sums0, nsum0, &lr.entries, &named);
		fetched += fetch_entries(d, &lr.entries, node, name);
		nng_msg_free(m);
		if (fresh == 0) {
			if (lr.entries.count == 0) {
				stall_note(
				    &st,
				    "leaf %u differs, but the peer's reply "
				    "carried none of its entries; upgrade "
				    "the peer if it runs an older lwwd "
				    "(replies capped below the largest "
				    "entry)",
				    nodes[i]);
			} else {
				stall_note(&st,
				           "leaf %u: the peer sent again only "
				           "entries this node had named; check "
				           "that both run the same lwwd",
				           nodes[i]);
			}
			lww_buf_reset(&named);
			i++;
			continue;
		}
		/* Let the writer take this part before asking for more, so
		 * that a huge leaf is not all queued in memory at once. */
		wait_writer_idle(d);
		want = 16;
	}
	p->fail_runs = 0; /* every leaf got an answer */
	/* Let the writer log what came, and the store take it, before the
	 * next round summarises again: entries still queued, or logged but
	 * not yet checkpointed (summaries come from the store), would be
	 * fetched twice. */
	if (fetched > 0) {
		wait_writer_idle(d);
		lwwd_wal_barrier(d);
	}
	note_peer(d, node, fetched, st.leaves > 0 ? 0 : seq0);
out:
	if (node != 0) {
		p->node = node;
	}
	if (st.leaves > 0) {
		report_stall(d, p, name, &st);
	}
	if (why != NULL || st.leaves > 0) {
		atomic_fetch_add(&d->stats.repair_rounds_failed, 1);
		if (why != NULL) {
			lwwd_log(LWWD_LOG_DEBUG, "repair_failed",
			         "peer=%s reason=\"%s\"", p->url, why);
		}
	} else {
		if (p->stalled) {
			p->stalled = 0;
			lwwd_log(LWWD_LOG_INFO, "repair_unstalled", "peer=%s",
			         name);
		}
		p->fail_runs = 0;
		atomic_fetch_add(&d->stats.repair_rounds, 1);
		atomic_store(&d->stats.repair_last_ms, lwwd_now_ms());
		if (fetched > 0 || pushed > 0) {
			lwwd_log(LWWD_LOG_INFO, "repaired",
			         "peer=%s keys=%llu pushed=%llu ms=%llu", name,
			         (unsigned long long) fetched,
			         (unsigned long long) pushed,
			         (unsigned long long) (lwwd_mono_ms() - t0));
		}
	}
	free(nodes);
	free(next);
	lww_buf_fini(&req);
	lww_buf_fini(&env);
	lww_buf_fini(&sums);
	lww_buf_fini(&named);
	lww_buf_fini(&push);
}

static void *
client_main(void *arg)
{
	lwwd *d = arg;
	struct lwwd_repair *r = d->repair;
	uint64_t seed = (uint64_t) d->self ^ lwwd_mono_ms();
	/* First round soon after start: a restarted or new node catches up
	 * without waiting for a full interval. */
	uint64_t due = lwwd_deadline_ms(300); /* µs */

	while (!lwwd_thr_stopping(&r->client)) {
		uint64_t trigger_node;
		int fired = 0;

		pthread_mutex_lock(&r->mtx);
		while (!r->triggered && lwwd_mono_us() < due &&
		       !lwwd_thr_wait(&r->client, due)) {
		}
		fired = r->triggered;
		trigger_node = r->trigger_node;
		r->triggered = 0;
		pthread_mutex_unlock(&r->mtx);
		if (lwwd_thr_stopping(&r->client)) {
			break;
		}
		if (r->npeers > 0) {
			/* A trigger names the peer that lost a batch, if a
			 * reply has told us which URL it listens on; else,
			 * and for timed rounds, peers take turns. */
			repair_peer *p = NULL;
			for (size_t i = 0; fired && i < r->npeers; i++) {
				if (trigger_node != 0 &&
				    r->peers[i].node == trigger_node) {
					p = &r->peers[i];
				}
			}
			if (p == NULL) {
				p = &r->peers[r->next++ % r->npeers];
			}
			round_with(d, p);
		}
		if (!fired || d->cfg.repair_interval == 0) {
			uint64_t iv = d->cfg.repair_interval;
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			/* +-25% jitter so rounds of many nodes spread out. */
			due = iv == 0 ? UINT64_MAX
			              : lwwd_deadline_ms(iv * 3 / 4 +
			                                 seed % (iv / 2 + 1));
		}
	}
	return NULL;
}

void
lwwd_repair_trigger(lwwd *d, uint64_t node)
{
	struct lwwd_repair *r = d->repair;
	uint64_t now = lwwd_mono_ms();

	/* Any thread; d->mtx may be held (r->mtx is a leaf under it). */
	if (r == NULL) {
		return;
	}
	pthread_mutex_lock(&r->mtx);
	if (now - r->last_trigger_ms >= TRIGGER_MIN_GAP_MS) {
		r->last_trigger_ms = now;
		r->triggered = 1;
		r->trigger_node = node;
		lwwd_thr_wake(&r->client);
	}
	pthread_mutex_unlock(&r->mtx);
}

int
lwwd_repair_start(lwwd *d)
{
	struct lwwd_repair *r = calloc(1, sizeof(*r));
	int rv;

	if (r == NULL) {
		return -1;
	}
	d->repair = r;
	pthread_mutex_init(&r->mtx, NULL);
	if ((rv = nng_rep0_open(&r->rep)) != 0 ||
	    (rv = nng_socket_set_size(r->rep, NNG_OPT_RECVMAXSZ,
	                              LWW_MSG_MAX)) != 0 ||
	    (rv = nng_aio_alloc(&r->rep_aio, NULL, NULL)) != 0 ||
	    (rv = nng_aio_alloc(&r->cli_aio, NULL, NULL)) != 0) {
		fprintf(stderr, "lwwd: cannot open --sync socket: %s\n",
		        nng_strerror(rv));
		return -1;
	}
	if (lwwd_listen_guarded(d, r->rep, d->cfg.sync, "--sync", LWWD_SP_REQ,
	                        0) != 0) {
		return -1;
	}
	if ((r->peers = calloc(d->cfg.npeers + 1, sizeof(*r->peers))) == NULL) {
		return -1;
	}
	for (size_t i = 0; i < d->cfg.npeers; i++) {
		repair_peer *p = &r->peers[r->npeers];
		p->url = lwwd_config_default_sync(d->cfg.peers[i]);
		if (p->url == NULL) {
			lwwd_log(
			    LWWD_LOG_WARN, "repair_peer_skipped",
			    "peer=%s reason=\"cannot derive its sync URL\"",
			    d->cfg.peers[i]);
			continue;
		}
		if ((rv = nng_req0_open(&p->sock)) != 0) {
			free(p->url);
			return -1;
		}
		p->open = 1;
		r->npeers++;
		nng_socket_set_ms(p->sock, NNG_OPT_RECVTIMEO,
		                  SESSION_TIMEOUT_MS);
		nng_socket_set_ms(p->sock, NNG_OPT_SENDTIMEO,
		                  SESSION_TIMEOUT_MS);
		nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME,
		                  NNG_DURATION_INFINITE);
		nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, LWW_MSG_MAX);
		nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 100);
		nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 2000);
		if (lwwd_dial_watched(d, p->sock, p->url, "sync of --peer") !=
		    0) {
			return -1;
		}
	}
	if (lwwd_thr_start(&r->server, &r->mtx, server_main, d) != 0 ||
	    lwwd_thr_start(&r->client, &r->mtx, client_main, d) != 0) {
		return -1;
	}
	return 0;
}

void
lwwd_repair_stop(lwwd *d)
{
	struct lwwd_repair *r = d->repair;

	if (r == NULL) {
		return;
	}
	lwwd_thr_ask_stop(&r->client);
	lwwd_thr_ask_stop(&r->server);
	/* A client waiting for room in the writer's queue, or for it to go
	 * idle, sees its stop now. */
	lwwd_writer_wake_waiters(d);
	/* Cancelling the client's aio ends the exchange in progress, and
	 * the rest of its round fails at once. The REQ sockets stay open
	 * until exit: nng_close can deadlock while a receive is under way
	 * on the socket (nanomsg/nng#1543, #1813). */
	if (r->cli_aio != NULL) {
		nng_aio_stop(r->cli_aio);
	}
	lwwd_thr_join(&r->client);
	nng_aio_free(r->cli_aio);
	/* The REP (listening) socket stays open until exit (see api.c); the
	 * server's receive is cancelled (one started after this fails at
	 * once), and the thread sees `stop`. */
	if (r->rep_aio != NULL) {
		nng_aio_stop(r->rep_aio);
	}
	lwwd_thr_join(&r->server);
	nng_aio_free(r->rep_aio);
	for (size_t i = 0; i < r->npeers; i++) {
		free(r->peers[i].url);
	}
	free(r->peers);
	lwwd_thr_fini(&r->client);
	lwwd_thr_fini(&r->server);
	pthread_mutex_destroy(&r->mtx);
	free(r);
	d->repair = NULL;
}
