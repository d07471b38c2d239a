/*
 * api.c - the client API: an nng REP socket served by many contexts, so
 * many clients are served at once.
 *
 * Each context loops: receive, decode (bounds-checked; a bad request gets
 * an error reply, is counted and changes nothing), then either answer a
 * lookup at once from an LMDB read transaction, hand a write to the
 * writer and answer when its group commit is durable, or hand a request
 * that may block (list and stats wait for a checkpoint, peers for the
 * node's mutex, reload reads files) to the worker thread (work.c), which
 * answers it. The callbacks themselves never block.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "lwwd.h"
#include "replay.h"
#include "scrub.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>

enum { API_RECV, API_WAIT, API_WORK, API_SEND };

struct lwwd_api {
	lwwd *d;
	nng_ctx ctx;
	nng_aio *aio;
	int state;
	lwwd_op op;
	lwwd_job job; /* API_WORK: the request below, on the worker */
	lww_req q;
	nng_msg *qmsg; /* owns the bytes q points into */
	lww_buf out;
	lww_buf val;
};

/* API connections that have not sent a request yet, with when they were
 * accepted: a sweep every second closes those older than
 * LWW_API_FIRST_REQUEST_MS (a half-open connection: one that connects and
 * then sends nothing). */
struct lwwd_api_pipes {
	pthread_mutex_t mtx;
	struct {
		uint32_t id;
		uint64_t since_ms;
	} * v;
	size_t n, cap;
	nng_aio *sweep;
	int stopping;
};

/* Stops watching connection `id` (ps->mtx held). */
static void
pipes_forget(struct lwwd_api_pipes *ps, uint32_t id)
{
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->v[i].id == id) {
			ps->v[i] = ps->v[--ps->n];
			return;
		}
	}
}

static void
pipes_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct lwwd_api_pipes *ps = arg;
	uint32_t id = (uint32_t) nng_pipe_id(p);

	pthread_mutex_lock(&ps->mtx);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		if (ps->n == ps->cap) {
			size_t cap = ps->cap ? ps->cap * 2 : 64;
			void *v = realloc(ps->v, cap * sizeof(*ps->v));
			if (v == NULL) {
				pthread_mutex_unlock(&ps->mtx);
				return; /* not watched: it is served all the same */
			}
			ps->v = v;
			ps->cap = cap;
		}
		ps->v[ps->n].id = id;
		ps->v[ps->n].since_ms = lwwd_mono_ms();
		ps->n++;
	} else {
		pipes_forget(ps, id);
	}
	pthread_mutex_unlock(&ps->mtx);
}

/* A request came on the connection: it is no longer watched. */
static void
pipe_sent(struct lwwd_api_pipes *ps, nng_msg *m)
{
	uint32_t id = (uint32_t) nng_pipe_id(nng_msg_get_pipe(m));

	pthread_mutex_lock(&ps->mtx);
	pipes_forget(ps, id);
	pthread_mutex_unlock(&ps->mtx);
}

static void
sweep_cb(void *arg)
{
	struct lwwd_api_pipes *ps = arg;
	uint64_t now = lwwd_mono_ms();
	nng_pipe stale[64];
	size_t ns = 0;

	if (nng_aio_result(ps->sweep) == NNG_ECANCELED) {
		return;
	}
	pthread_mutex_lock(&ps->mtx);
	for (size_t i = 0; i < ps->n && ns < 64;) {
		if (now - ps->v[i].since_ms >= LWW_API_FIRST_REQUEST_MS) {
			stale[ns++].id = ps->v[i].id;
			ps->v[i] = ps->v[--ps->n];
		} else {
			i++;
		}
	}
	if (!ps->stopping) {
		nng_sleep_aio(1000, ps->sweep);
	}
	pthread_mutex_unlock(&ps->mtx);
	for (size_t i = 0; i < ns; i++) {
		(void) nng_pipe_close(stale[i]);
	}
}

static void
send_reply(struct lwwd_api *a)
{
	nng_msg *m;

	if (lwwd_msg_new(&m, a->out.p, a->out.len) != 0) {
		/* No memory for a reply: drop it; the client times out. */
		a->state = API_RECV;
		nng_ctx_recv(a->ctx, a->aio);
		return;
	}
	a->state = API_SEND;
	nng_aio_set_msg(a->aio, m);
	nng_ctx_send(a->ctx, a->aio);
}

static void
reply_error(struct lwwd_api *a, uint8_t op, lww_err rv, const char *msg)
{
	lww_rep r = {.op = op, .status = (uint8_t) rv};

	if (msg == NULL) {
		msg = lww_strerror(rv);
	}
	r.msg = msg;
	r.msglen = strlen(msg);
	lww_buf_reset(&a->out);
	if (lww_rep_encode(&a->out, &r) != LWW_OK) {
		lww_buf_reset(&a->out);
	}
	send_reply(a);
}

static void
write_done(lwwd_op *op, lww_err rv, uint64_t hlc, uint32_t count)
{
	struct lwwd_api *a = op->arg;
	uint8_t opcode = op->req.op;
	char held[LWW_LOG_KEY_MAX + 512];

	if (rv == LWW_ECLOCK && op->res_held_hlc != 0) {
		/* Formatted before the request's bytes (the key) are freed. */
		char kb[LWW_LOG_KEY_MAX];
		uint64_t at = lww_hlc_wall(op->res_held_hlc),
		         now = lwwd_now_ms();
		snprintf(
		    held, sizeof(held),
		    "refused for this node's clock: key %s is held at a "
		    "stamp of %llu ms since the epoch (%lld ms ahead of this "
		    "node's clock; written while a clock ran ahead): a write "
		    "now would lose to it; nothing was written; retry after "
		    "that time, and check time sync (NTP)",
		    lwwd_log_key(kb, sizeof(kb), op->res_key, op->res_klen),
		    (unsigned long long) at,
		    (long long) ((int64_t) at - (int64_t) now));
	}
	nng_msg_free(op->msg);
	op->msg = NULL;
	if (rv != LWW_OK) {
		const char *msg = NULL;
		atomic_fetch_add(&a->d->stats.api_refused, 1);
		if (rv == LWW_ENOSPC) {
			atomic_fetch_add(&a->d->stats.refused_disk_full, 1);
			msg =
			    "disk full: free space on the file system holding "
			    "--data; writes resume by themselves, and every "
			    "acknowledged write is kept";
		} else if (rv == LWW_EFULL) {
			atomic_fetch_add(&a->d->stats.refused_store_full, 1);
			msg = "store full: restart lwwd with a larger "
			      "--map-size; "
			      "every acknowledged write is kept";
		} else if (rv == LWW_ECLOCK && op->res_held_hlc != 0) {
			msg = held;
		} else if (rv == LWW_ECLOCK) {
			/* Refused by the writer (clock.c): fenced as it
			 * stamped, or a key held at a future stamp. */
			msg = "refused for this node's clock: it is fenced, or "
			      "a peer holds this node's write of the key "
			      "stamped in the future (log: clock_fenced, "
			      "clock_key_held); nothing was written; fix time "
			      "sync (NTP) and retry";
		}
		reply_error(a, opcode, rv, msg);
		return;
	}
	lww_rep r = {
	    .op = opcode, .hlc = hlc, .node = a->d->self, .count = count};
	lww_buf_reset(&a->out);
	(void) lww_rep_encode(&a->out, &r);
	send_reply(a);
}

/* A list page: the store's entries merged with the logged ones not yet
 * in it (mem.c), so that a page holds every acknowledged write also
 * while checkpoints cannot run. */
typedef struct list_state {
	lwwd *d;
	lww_buf *out;
	lwwd_mem_range mem; /* logged winners in the range, key order */
	size_t mi;          /* the next of them to merge */
	size_t emitted, limit;
	int more;
	uint32_t damaged;
	/* Damaged records met since the last entry added: counted only once
	 * an entry after them is (else the next page meets them again). */
	uint8_t pend[LWW_LIST_DAMAGED_NAMED_MAX][LWW_STORE_KEY_MAX];
	size_t pendlen[LWW_LIST_DAMAGED_NAMED_MAX];
	uint32_t npend;
} list_state;

/* A record the scan skipped because it failed its check. */
static void
list_damaged(const uint8_t *skey, size_t n, void *arg)
{
	list_state *ls = arg;

	if (ls->npend < LWW_LIST_DAMAGED_NAMED_MAX) {
		memcpy(ls->pend[ls->npend], skey, n);
		ls->pendlen[ls->npend] = n;
	}
	ls->npend++;
}

/* The damaged records before an entry on this page: counted, reported. */
static void
list_flush_damaged(list_state *ls)
{
	for (uint32_t i = 0; i < ls->npend && i < LWW_LIST_DAMAGED_NAMED_MAX;
	     i++) {
		lwwd_scrub_report(ls->d, ls->pend[i], ls->pendlen[i], 0);
	}
	ls->damaged += ls->npend;
	ls->npend = 0;
}

/* Adds a winner to the page; non-zero when the page is full. */
static int
list_emit(list_state *ls, const lww_entry *e)
{
	if (lww_entry_is_tombstone(e)) {
		return 0;
	}
	/* Keep the reply under the message limit; the client continues. */
	if (ls->emitted == ls->limit ||
	    ls->out->len + lww_entry_size(e) + 64 > LWW_MSG_MAX ||
	    lww_list_add(ls->out, e) != LWW_OK) {
		ls->more = 1;
		return 1;
	}
	ls->emitted++;
	list_flush_damaged(ls);
	return 0;
}

/* One store entry, after the logged entries that sort before it; of a
 * key in both, the winner. */
static int
list_cb(const lww_entry *e, void *arg)
{
	list_state *ls = arg;

	while (ls->mi < ls->mem.n) {
		const lww_entry *m = &ls->mem.v[ls->mi];
		int c = lww_entry_key_cmp(m, e);
		if (c > 0) {
			break;
		}
		ls->mi++;
		if (c == 0) {
			return list_emit(ls, lww_entry_wins(m, e) ? m : e);
		}
		if (list_emit(ls, m) != 0) {
			return 1;
		}
	}
	return list_emit(ls, e);
}

static void
do_read(struct lwwd_api *a, const lww_req *q)
{
	lwwd *d = a->d;
	lww_rep r = {.op = q->op};
	lww_buf text = LWW_BUF_INIT;
	lww_err rv = LWW_OK;

	lww_buf_reset(&a->out);
	switch (q->op) {
	case LWW_OP_LOOKUP:
		/* Logged writes not yet in the store first (mem.c). */
		switch (lwwd_mem_get(lwwd_ckpt_mem(d), q->key, q->klen, &a->val,
		                     &r.entry)) {
		case 1:
			rv = LWW_OK;
			break;
		case 0:
			rv = lww_store_get(d->store, q->key, q->klen, &a->val,
			                   &r.entry);
			break;
		default:
			rv = LWW_ENOMEM;
			break;
		}
		if (rv == LWW_OK && lww_entry_is_tombstone(&r.entry)) {
			rv = LWW_ENOTFOUND;
		}
		if (rv == LWW_ENOTFOUND) {
			reply_error(a, q->op, rv, "key not found");
			return;
		}
		if (rv == LWW_ECORRUPT) {
			atomic_fetch_add(&d->stats.api_refused, 1);
			lwwd_scrub_report(d, q->key, q->klen, 1);
			reply_error(a, q->op, rv,
			            "the stored record of this key is damaged "
			            "(it failed its checksum); not served: the "
			            "node drops it and repair fetches a sound "
			            "copy from a peer, retry in a few seconds");
			return;
		}
		break;
	case LWW_OP_LIST: {
		/* Tombstones too: a logged value may win over a stored
		 * tombstone, and the other way round. */
		lww_scan s = {q->key, q->klen, q->after,    q->alen,
		              0,      1,       list_damaged};
		list_state ls = {.d = d, .out = &a->out, .limit = q->limit};
		lwwd_wal_barrier(d); /* fewer logged entries to merge */
		/* The logged entries first: one the checkpointer drops after
		 * this is in the store before the scan below reads it. */
		rv = lwwd_mem_range_get(lwwd_ckpt_mem(d), q->key, q->klen,
		                        q->after, q->alen, &ls.mem);
		if (rv == LWW_OK && (rv = lww_list_begin(&a->out)) == LWW_OK &&
		    (rv = lww_store_scan(d->store, &s, list_cb, &ls, NULL)) ==
		        LWW_OK) {
			while (!ls.more && ls.mi < ls.mem.n) {
				(void) list_emit(&ls, &ls.mem.v[ls.mi++]);
			}
			if (!ls.more) {
				list_flush_damaged(&ls); /* the last page */
			}
			rv = lww_list_end(&a->out, ls.more, ls.damaged);
		}
		lwwd_mem_range_free(&ls.mem);
		if (rv != LWW_OK) {
			if (rv == LWW_ECORRUPT) {
				char kb[LWW_LOG_KEY_MAX];
				atomic_fetch_add(&d->stats.store_page_errors,
				                 1);
				atomic_fetch_add(&d->stats.api_refused, 1);
				lwwd_log(LWWD_LOG_ERROR, "store_page_damaged",
				         "during=list after=%s",
				         lwwd_log_key(kb, sizeof(kb), q->after,
				                      q->alen));
				reply_error(
				    a, q->op, rv,
				    "a page of the store file is damaged (LMDB "
				    "cannot read on from here); the rest of "
				    "the "
				    "list cannot be read: see the node's log");
				return;
			}
			break;
		}
		send_reply(a);
		return;
	}
	case LWW_OP_STATS:
	case LWW_OP_PEERS:
		rv = q->op == LWW_OP_STATS ? lwwd_stats_json(d, &text)
		                           : lwwd_peers_json(d, &text);
		r.text = (const char *) text.p;
		r.textlen = text.len;
		break;
	default:
		rv = LWW_EUNKNOWN;
		break;
	}
	if (rv == LWW_OK) {
		rv = lww_rep_encode(&a->out, &r);
	}
	lww_buf_fini(&text);
	if (rv != LWW_OK) {
		atomic_fetch_add(&d->stats.api_refused, 1);
		if (rv == LWW_ECORRUPT || rv == LWW_EIO) {
			lwwd_log(LWWD_LOG_ERROR, "read_failed", "reason=\"%s\"",
			         lww_strerror(rv));
		}
		reply_error(a, q->op, rv, NULL);
		return;
	}
	send_reply(a);
}

/* Counts a refused request and answers it. */
static void
refuse(struct lwwd_api *a, _Atomic uint64_t *ctr, uint8_t op, lww_err rv,
       const char *msg)
{
	atomic_fetch_add(ctr, 1);
	atomic_fetch_add(&a->d->stats.api_refused, 1);
	reply_error(a, op, rv, msg);
}

/* The op byte of a request, for error replies (0 if unreadable). */
static uint8_t
op_of(const uint8_t *p, size_t n)
{
	return (n >= 3 && p[1] == LWW_MSG_REQUEST && p[2] >= 1 &&
	        p[2] <= LWW_OP_LAST)
	           ? p[2]
	           : 0;
}

/* Unwraps a signed request: checks the signer (against --clients when
 * given), then freshness and replay. On success *p, *n point at the
 * request inside and *ro says if the client is read-only. Answers and
 * returns -1 otherwise. */
static int
authenticate(struct lwwd_api *a, const uint8_t **p, size_t *n, int *ro)
{
	lwwd *d = a->d;
	lww_envelope env;
	lwwd_signer who;
	lww_auth au;
	lww_err rv;
	uint8_t type;

	*ro = 0;
	if (lww_msg_peek(*p, *n, &type) != LWW_OK || type != LWW_MSG_ENVELOPE) {
		if (d->cfg.clients == NULL) {
			return 0; /* an open API: plain requests are fine */
		}
		refuse(a, &d->stats.auth_unsigned, op_of(*p, *n), LWW_EAUTH,
		       "this node accepts only signed requests: give lwwctl "
		       "--key FILE (or $LWW_KEY) with a key listed in its "
		       "--clients file");
		return -1;
	}
	rv = lwwd_verify(d, 1, *p, *n, &env, &who);
	if (rv == LWW_OK) {
		*ro = (who.flags & LWW_PEER_RO) != 0;
	}
	if (rv == LWW_EUNTRUSTED) {
		refuse(a, &d->stats.auth_unlisted, 0, LWW_EAUTH,
		       "client key not listed in this node's --clients file");
		return -1;
	}
	if (rv != LWW_OK) {
		refuse(a, &d->stats.auth_bad_signature, 0,
		       rv == LWW_EBADSIG ? LWW_EAUTH : rv,
		       rv == LWW_EBADSIG ? "bad request signature" : NULL);
		return -1;
	}
	if ((rv = lww_auth_decode(env.payload, env.plen, &au)) != LWW_OK) {
		atomic_fetch_add(&d->stats.api_bad_requests, 1);
		reply_error(a, 0, rv, NULL);
		return -1;
	}
	pthread_mutex_lock(&d->mtx);
	rv = lww_replay_check(d->replay, au.nonce, au.ts_ms, lwwd_now_ms());
	pthread_mutex_unlock(&d->mtx);
	if (rv == LWW_ESTALE) {
		refuse(
		    a, &d->stats.auth_stale, op_of(au.req, au.reqlen), rv,
		    "request timestamp more than 30 s from the node's clock");
		return -1;
	}
	if (rv != LWW_OK) {
		refuse(a, &d->stats.auth_replay, op_of(au.req, au.reqlen), rv,
		       rv == LWW_EREPLAY ? "request replayed" : NULL);
		return -1;
	}
	*p = au.req;
	*n = au.reqlen;
	return 0;
}

static void
do_reload(struct lwwd_api *a)
{
	char err[300];
	lww_rep r = {.op = LWW_OP_RELOAD};

	lwwd_log(LWWD_LOG_INFO, "reload", "from=api");
	if (lwwd_reload(a->d, 0, err, sizeof(err)) != 0) {
		lwwd_log(LWWD_LOG_ERROR, "reload_failed",
		         "reason=\"%s\" (keeping the old keys)", err);
		atomic_fetch_add(&a->d->stats.api_refused, 1);
		reply_error(a, LWW_OP_RELOAD, LWW_ESYNTAX, err);
		return;
	}
	lww_buf_reset(&a->out);
	(void) lww_rep_encode(&a->out, &r);
	send_reply(a);
}

/* The worker runs a request that may block, and answers it. */
static void
api_job(lwwd_job *job)
{
	struct lwwd_api *a =
	    (struct lwwd_api *) ((char *) job - offsetof(struct lwwd_api, job));
	/* Once answered, a may serve its next request at once: keep what
	 * is needed after the answer in locals. */
	lww_req q = a->q;
	nng_msg *msg = a->qmsg;

	a->qmsg = NULL;
	if (q.op == LWW_OP_RELOAD) {
		do_reload(a);
	} else {
		do_read(a, &q);
	}
	nng_msg_free(msg); /* q pointed into it */
}

/* Requests that may wait: for a checkpoint (list and stats read the
 * store, lwwd_wal_barrier), for the node's mutex (peers), or for files
 * (reload). */
static int
may_block(uint8_t op)
{
	return op == LWW_OP_LIST || op == LWW_OP_STATS || op == LWW_OP_PEERS ||
	       op == LWW_OP_RELOAD;
}

static void
handle(struct lwwd_api *a, nng_msg *msg)
{
	lwwd *d = a->d;
	const uint8_t *p = nng_msg_body(msg);
	size_t n = nng_msg_len(msg);
	lww_req q;
	lww_err rv;
	int ro;

	atomic_fetch_add(&d->stats.api_requests, 1);
	if (d->api_pipes != NULL) {
		pipe_sent(d->api_pipes, msg);
	}
	if (d->cfg.clients != NULL && n > LWW_API_UNAUTH_MAX &&
	    !lwwd_client_listed(d, p, n)) {
		/* Large and not from a listed client: the cheapest answer is
		 * none. Closing the connection makes a sender that repeats
		 * pay a new handshake each time. */
		atomic_fetch_add(&d->stats.auth_oversized, 1);
		atomic_fetch_add(&d->stats.api_refused, 1);
		nng_pipe_close(nng_msg_get_pipe(msg));
		nng_msg_free(msg);
		a->state = API_RECV;
		nng_ctx_recv(a->ctx, a->aio);
		return;
	}
	if (authenticate(a, &p, &n, &ro) != 0) {
		nng_msg_free(msg);
		return;
	}
	if ((rv = lww_req_decode(p, n, &q)) != LWW_OK) {
		atomic_fetch_add(&d->stats.api_bad_requests, 1);
		lwwd_log(LWWD_LOG_DEBUG, "bad_request", "reason=\"%s\" len=%zu",
		         lww_strerror(rv), n);
		reply_error(a, op_of(p, n), rv, NULL);
		nng_msg_free(msg);
		return;
	}
	if (ro && (lww_op_writes(q.op) || q.op == LWW_OP_RELOAD)) {
		refuse(a, &d->stats.auth_readonly, q.op, LWW_EREADONLY,
		       "this client is read-only (ro in the --clients file)");
		nng_msg_free(msg);
		return;
	}
	if (may_block(q.op)) {
		a->q = q;
		a->qmsg = msg;
		a->state = API_WORK;
		if ((rv = lwwd_work_submit(d, &a->job)) != LWW_OK) {
			a->qmsg = NULL;
			nng_msg_free(msg);
			atomic_fetch_add(&d->stats.api_refused, 1);
			reply_error(a, q.op, rv, "node shutting down");
		}
		return;
	}
	if (!lww_op_writes(q.op)) {
		do_read(a, &q);
		nng_msg_free(msg);
		return;
	}
	{
		char why[320];
		if (lwwd_clock_refuse(d, why, sizeof(why))) {
			atomic_fetch_add(&d->stats.api_refused, 1);
			reply_error(a, q.op, LWW_ECLOCK, why);
			nng_msg_free(msg);
			return;
		}
	}
	memset(&a->op, 0, sizeof(a->op));
	a->op.req = q;
	a->op.msg = msg;
	a->op.done = write_done;
	a->op.arg = a;
	a->state = API_WAIT;
	if ((rv = lwwd_writer_submit(d, &a->op)) != LWW_OK) {
		nng_msg_free(msg);
		reply_error(a, q.op, rv, "node shutting down");
	}
}

/* The aio holds a message only while a reply is being sent (or was left
 * unsent: see lwwd_api_stop): one taken from it is cleared from it. */
static void
api_cb(void *arg)
{
	struct lwwd_api *a = arg;
	int rv = nng_aio_result(a->aio);
	nng_msg *m;

	switch (a->state) {
	case API_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				return;
			}
			nng_ctx_recv(a->ctx, a->aio);
			return;
		}
		m = nng_aio_get_msg(a->aio);
		nng_aio_set_msg(a->aio, NULL);
		handle(a, m);
		return;
	case API_SEND:
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(a->aio));
			nng_aio_set_msg(a->aio, NULL);
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				return;
			}
		}
		a->state = API_RECV;
		nng_ctx_recv(a->ctx, a->aio);
		return;
	default:
		return;
	}
}

/* A host is loopback when every address it resolves to is in 127.0.0.0/8
 * or is ::1; a name that merely starts with "127." is not (fail closed:
 * one that does not resolve is not loopback either). */
static int
is_loopback(const char *host)
{
	struct addrinfo hints, *res = NULL, *ai;
	char h[256];
	size_t n = strlen(host);
	int ok = 0;

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(h)) {
		return 0;
	}
	memcpy(h, host, n);
	h[n] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(h, NULL, &hints, &res) != 0) {
		return 0;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *s4 =
			    (const struct sockaddr_in *) ai->ai_addr;
			ok = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *s6 =
			    (const struct sockaddr_in6 *) ai->ai_addr;
			ok = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
		} else {
			ok = 0;
		}
		if (!ok) {
			break;
		}
	}
	freeaddrinfo(res);
	return ok;
}

int
lwwd_api_check_url(const lwwd_config *c)
{
	nng_url *url;
	int rv, ok = 0;

	if ((rv = nng_url_parse(&url, c->api)) != 0) {
		fprintf(stderr, "lwwd: bad --api URL %s: %s\n", c->api,
		        nng_strerror(rv));
		return -1;
	}
	if (strcmp(url->u_scheme, "tcp") == 0 ||
	    strcmp(url->u_scheme, "tcp4") == 0 ||
	    strcmp(url->u_scheme, "tcp6") == 0 ||
	    strcmp(url->u_scheme, "tls+tcp") == 0) {
		ok = is_loopback(url->u_hostname) || c->clients != NULL ||
		     c->insecure_api;
		if (!ok) {
			fprintf(stderr,
			        "lwwd: refusing --api %s: a tcp API on a "
			        "non-loopback address needs client "
			        "authentication: give --clients FILE, use "
			        "127.0.0.1 or ipc://, or pass --insecure-api\n",
			        c->api);
		}
	} else if (strcmp(url->u_scheme, "ipc") == 0) {
		ok = 1;
	} else {
		fprintf(stderr,
		        "lwwd: --api %s: want ipc://, tcp:// or tls+tcp://\n",
		        c->api);
	}
	nng_url_free(url);
	return ok ? 0 : -1;
}

int
lwwd_api_start(lwwd *d)
{
	int rv;

	if ((rv = nng_rep0_open(&d->api)) != 0 ||
	    (rv = nng_socket_set_size(d->api, NNG_OPT_RECVMAXSZ,
	                              LWW_MSG_MAX)) != 0) {
		fprintf(stderr, "lwwd: cannot open --api %s: %s\n", d->cfg.api,
		        nng_strerror(rv));
		return -1;
	}
	if ((d->api_pipes = calloc(1, sizeof(*d->api_pipes))) == NULL) {
		return -1;
	}
	pthread_mutex_init(&d->api_pipes->mtx, NULL);
	if ((rv = nng_aio_alloc(&d->api_pipes->sweep, sweep_cb,
	                        d->api_pipes)) != 0 ||
	    (rv = nng_pipe_notify(d->api, NNG_PIPE_EV_ADD_POST, pipes_cb,
	                          d->api_pipes)) != 0 ||
	    (rv = nng_pipe_notify(d->api, NNG_PIPE_EV_REM_POST, pipes_cb,
	                          d->api_pipes)) != 0) {
		fprintf(stderr, "lwwd: cannot open --api %s: %s\n", d->cfg.api,
		        nng_strerror(rv));
		return -1;
	}
	nng_sleep_aio(1000, d->api_pipes->sweep);
	/* Owner-only: file permissions are the ipc API's access control. */
	if (lwwd_listen_guarded(d, d->api, d->cfg.api, "--api", LWWD_SP_REQ,
	                        0600) != 0) {
		return -1;
	}
	if ((d->apis = calloc(LWW_API_CONTEXTS, sizeof(*d->apis))) == NULL) {
		return -1;
	}
	for (size_t i = 0; i < LWW_API_CONTEXTS; i++) {
		struct lwwd_api *a = &d->apis[i];
		a->d = d;
		a->job.run = api_job;
		if (nng_aio_alloc(&a->aio, api_cb, a) != 0 ||
		    nng_ctx_open(&a->ctx, d->api) != 0) {
			return -1;
		}
		d->napis++;
		a->state = API_RECV;
		nng_ctx_recv(a->ctx, a->aio);
	}
	return 0;
}

void
lwwd_api_stop(lwwd *d)
{
	/* After lwwd_work_stop: no job is left to answer on a context.
	 * Contexts close first: a reply a callback sends from then on fails
	 * with NNG_ECLOSED through the callback, which frees it. */
	for (size_t i = 0; i < d->napis; i++) {
		nng_ctx_close(d->apis[i].ctx);
	}
	for (size_t i = 0; i < d->napis; i++) {
		nng_msg *m;
		nng_aio_stop(d->apis[i].aio);
		/* A reply that a callback still running sent after the stop
		 * began never started (nng 1.5 fails an operation on a
		 * stopped aio without a callback): it is left here. */
		if ((m = nng_aio_get_msg(d->apis[i].aio)) != NULL) {
			nng_msg_free(m);
		}
	}
	/* The REP socket itself stays open until the process exits: closing
	 * a socket with a live listener can make nng 1.5 panic in one of its
	 * own threads (nanomsg/nng#2110). Nothing of ours uses it any more. */
	for (size_t i = 0; i < d->napis; i++) {
		nng_aio_free(d->apis[i].aio);
		lww_buf_fini(&d->apis[i].out);
		lww_buf_fini(&d->apis[i].val);
	}
	free(d->apis);
	d->apis = NULL;
	d->napis = 0;
	if (d->api_pipes != NULL) {
		struct lwwd_api_pipes *ps = d->api_pipes;
		pthread_mutex_lock(&ps->mtx);
		ps->stopping = 1;
		pthread_mutex_unlock(&ps->mtx);
		if (ps->sweep != NULL) {
			nng_aio_stop(ps->sweep);
		}
		/* The table stays: the socket stays open (see above), and a
		 * pipe event nng is delivering may still reach it. */
	}
}
