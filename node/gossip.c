/*
 * gossip.c - signed delta batches and heartbeats over nng pub/sub.
 *
 * The PUB socket publishes this node's batches (from the writer) and a
 * heartbeat every second. One SUB socket dials every --peer. A received
 * message is checked cheapest first: size (nng refuses anything over
 * LWW_MSG_MAX before allocating it), version and type, a trusted signer,
 * then the Ed25519 signature over the exact bytes, then the payload is
 * decoded and every entry must carry the signer's node id. Only then is a
 * batch queued for the writer. Every rejection is counted by reason.
 *
 * The signature is checked without the node's mutex (lwwd_verify),
 * so a trusted key flooding badly signed batches costs CPU, never the
 * writer's lock. The subscriber's callback never blocks, and it keeps
 * receiving after any error but the socket's close (see sub_cb).
 *
 * pub/sub drops messages when a subscriber is slow or away: gossip is the
 * fast path; anti-entropy repair is what makes replicas converge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limits.h"
#include "lwwd.h"

#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>

#define HEARTBEAT_MS 1000

/* Publishes a signed message; a full send buffer drops it (peers that
 * miss a batch fetch it by repair). */
static void
gossip_publish(lwwd *d, const uint8_t *p, size_t n)
{
	(void) lwwd_send(d->pub, NULL, p, n, NNG_FLAG_NONBLOCK);
}

void
lwwd_gossip_batch(lwwd *d, uint64_t seq, const uint8_t *b, size_t n)
{
	lww_buf env = LWW_BUF_INIT;

	(void) seq; /* the batch carries it */
	if (lww_envelope_seal(&d->key, b, n, &env) != LWW_OK) {
		lwwd_log(LWWD_LOG_ERROR, "publish_failed", "reason=seal");
	} else {
		gossip_publish(d, env.p, env.len);
		atomic_fetch_add(&d->stats.batches_sent, 1);
	}
	lww_buf_fini(&env);
}

static lwwd_peer_state *
peer_find(lwwd *d, uint64_t node)
{
	for (size_t i = 0; i < d->npeers; i++) {
		if (d->peers[i].node == node) {
			return &d->peers[i];
		}
	}
	return NULL;
}

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

/* A message signed with this node's own key. Ours come back when a
 * --peer names our own gossip address; a heartbeat that is none of the
 * last we sent comes from another process with our key: a cloned image
 * or a copied key file. Both would write under one node id, so that
 * their writes overwrite each other's and the peers' sequence tracking
 * breaks: each of them says so at error level, once a minute. */
static void
own_key(lwwd *d, const lww_envelope *env, const char *name)
{
	lww_heartbeat hb;
	uint8_t type;
	int ours = 1, log = 0;

	if (lww_msg_peek(env->payload, env->plen, &type) == LWW_OK &&
	    type == LWW_MSG_HEARTBEAT &&
	    lww_heartbeat_decode(env->payload, env->plen, &hb) == LWW_OK) {
		uint64_t now = lwwd_mono_ms();
		pthread_mutex_lock(&d->mtx);
		ours = 0;
		for (size_t i = 0;
		     i < sizeof(d->hb_sent) / sizeof(d->hb_sent[0]); i++) {
			ours |= d->hb_sent[i] == hb.hlc;
		}
		if (!ours && (d->same_key_logged_ms == 0 ||
		              now - d->same_key_logged_ms >= 60000)) {
			d->same_key_logged_ms = now;
			log = 1;
		}
		pthread_mutex_unlock(&d->mtx);
	}
	if (ours) {
		reject(&d->stats.rejected_self, "own_key", name);
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
		    (unsigned long long) d->self, name);
	}
}

static void
handle(lwwd *d, nng_msg *msg)
{
	const uint8_t *p = nng_msg_body(msg);
	size_t n = nng_msg_len(msg);
	lww_envelope env;
	lww_heartbeat hb;
	lwwd_peer_state *ps;
	lwwd_signer who;
	char name[LWW_TRUST_NAME_MAX + 1];
	uint64_t node = 0;
	uint64_t lost = 0; /* a batch of this node was lost: repair */
	uint8_t type;
	lww_err rv;
	lwwd_op *op;

	rv = lwwd_verify(d, 0, p, n, &env, &who);
	node = who.node;
	memcpy(name, who.name, sizeof(name));
	switch (rv) {
	case LWW_OK:
		break;
	case LWW_EFORGED:
		own_key(d, &env, name); /* counts rejected_self "own_key" */
		goto drop;
	case LWW_EUNTRUSTED:
		/* Name the unknown key, so an operator can trust it. */
		lww_pk_to_text(p + 2, name, sizeof(name));
		reject(&d->stats.rejected_untrusted, "untrusted", name);
		goto drop;
	case LWW_EBADSIG:
		reject(&d->stats.rejected_badsig, "bad_signature", "unknown");
		goto drop;
	default:
		reject(&d->stats.rejected_malformed, "malformed", "unknown");
		goto drop;
	}
	if (lww_msg_peek(env.payload, env.plen, &type) != LWW_OK) {
		reject(&d->stats.rejected_malformed, "malformed", name);
		goto drop;
	}
	if (type == LWW_MSG_HEARTBEAT) {
		if (lww_heartbeat_decode(env.payload, env.plen, &hb) !=
		    LWW_OK) {
			reject(&d->stats.rejected_malformed, "malformed", name);
			goto drop;
		}
		atomic_fetch_add(&d->stats.heartbeats_received, 1);
		pthread_mutex_lock(&d->mtx);
		if ((ps = peer_find(d, node)) != NULL) {
			ps->last_contact_ms = lwwd_mono_ms();
			/* A batch announced a heartbeat ago and still not
			 * here was lost: repair fetches it. */
			if (ps->seq_announced > ps->seq_applied &&
			    hb.seq > ps->seq_applied) {
				lost = node;
			}
			if (hb.seq > ps->seq_announced) {
				ps->seq_announced = hb.seq;
			}
		}
		pthread_mutex_unlock(&d->mtx);
		if (lost != 0) {
			d->hooks.loss(d, lost);
		}
		goto drop;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		goto drop;
	}
	if (type != LWW_MSG_BATCH ||
	    lww_batch_decode(env.payload, env.plen, &op->batch) != LWW_OK) {
		free(op);
		reject(&d->stats.rejected_malformed, "malformed", name);
		goto drop;
	}
	{
		/* No trusted node may write in another's name. */
		size_t off = 0;
		lww_entry e;
		while (lww_entries_next(&op->batch.entries, &off, &e)) {
			if (e.node != node) {
				free(op);
				reject(&d->stats.rejected_forged,
				       "forged_node_id", name);
				goto drop;
			}
		}
	}
	atomic_fetch_add(&d->stats.batches_received, 1);
	pthread_mutex_lock(&d->mtx);
	if ((ps = peer_find(d, node)) != NULL) {
		ps->last_contact_ms = lwwd_mono_ms();
		if (ps->seq_applied != 0 &&
		    op->batch.seq > ps->seq_applied + 1) {
			atomic_fetch_add(&d->stats.seq_gaps, 1);
			lost = node;
		}
		if (op->batch.seq > ps->seq_applied) {
			ps->seq_applied = op->batch.seq;
		}
		if (op->batch.seq > ps->seq_announced) {
			ps->seq_announced = op->batch.seq;
		}
		ps->batches++;
	}
	pthread_mutex_unlock(&d->mtx);
	if (lost != 0) {
		d->hooks.loss(d, lost);
	}
	op->remote = 1;
	op->owned = 1;
	op->origin = node;
	memcpy(op->origin_name, name, sizeof(name));
	op->msg = msg;
	if (lwwd_writer_submit(d, op) != LWW_OK) {
		/* The writer is flooded: drop it, and let repair fetch it
		 * (its sequence number is already counted as received). */
		free(op);
		d->hooks.loss(d, node);
		goto drop;
	}
	return;
drop:
	nng_msg_free(msg);
}

/*
 * The subscriber's one receive. It ends only when the socket is closed
 * (NNG_ECLOSED) or gossip stops (sub_stopping, set before nng_aio_stop,
 * whose cancel arrives as NNG_ECANCELED). After any other error the
 * subscriber pauses, and the heartbeat thread starts the next receive
 * at its next beat (within a second): the callback never blocks, a
 * persistent error cannot spin, and no nng timer is involved (nng 1.5
 * times them on the wall clock, see README). In nng 1.5 a SUB receive
 * fails otherwise only with NNG_ETIMEDOUT, once a receive timeout is set
 * on the socket or the aio (none is), and a failed allocation is skipped
 * inside nng; but a subscriber that died on one unexpected error would
 * stop this node hearing gossip for good, with nothing in the log, so
 * the rule is "anything but close: carry on".
 */
static void
sub_cb(void *arg)
{
	lwwd *d = arg;
	int rv = nng_aio_result(d->sub_aio);

	if (atomic_load(&d->sub_stopping)) {
		if (rv == 0) {
			nng_msg_free(nng_aio_get_msg(d->sub_aio));
		}
		return;
	}
	if (rv == 0) {
		handle(d, nng_aio_get_msg(d->sub_aio));
		nng_recv_aio(d->sub, d->sub_aio);
		return;
	}
	if (rv == NNG_ECLOSED) {
		return;
	}
	lwwd_log(LWWD_LOG_WARN, "gossip_receive_failed",
	         "reason=\"%s\" (receiving again within a second)",
	         nng_strerror(rv));
	pthread_mutex_lock(&d->gossip_mtx);
	d->sub_paused = 1;
	pthread_mutex_unlock(&d->gossip_mtx);
}

static void *
heartbeat_main(void *arg)
{
	lwwd *d = arg;
	lww_buf hb = LWW_BUF_INIT, env = LWW_BUF_INIT;

	for (;;) {
		uint64_t due = lwwd_deadline_ms(HEARTBEAT_MS);
		lww_heartbeat h;
		int stop, paused;

		pthread_mutex_lock(&d->gossip_mtx);
		while (lwwd_mono_us() < due &&
		       !lwwd_thr_wait(&d->heartbeat, due)) {
		}
		stop = lwwd_thr_stopping(&d->heartbeat);
		paused = d->sub_paused;
		d->sub_paused = 0;
		pthread_mutex_unlock(&d->gossip_mtx);
		if (stop) {
			break;
		}
		if (paused && !atomic_load(&d->sub_stopping)) {
			/* The subscriber paused after an error (sub_cb). */
			nng_recv_aio(d->sub, d->sub_aio);
		}
		h.seq = lwwd_writer_seq(d);
		h.hlc = lww_hlc_make(lwwd_now_ms(), 0);
		pthread_mutex_lock(&d->mtx);
		d->hb_sent[d->hb_sent_next++ % (sizeof(d->hb_sent) /
		                                sizeof(d->hb_sent[0]))] = h.hlc;
		pthread_mutex_unlock(&d->mtx);
		lww_buf_reset(&hb);
		lww_buf_reset(&env);
		if (lww_heartbeat_encode(&hb, &h) == LWW_OK &&
		    lww_envelope_seal(&d->key, hb.p, hb.len, &env) == LWW_OK) {
			gossip_publish(d, env.p, env.len);
			atomic_fetch_add(&d->stats.heartbeats_sent, 1);
		}
	}
	lww_buf_fini(&hb);
	lww_buf_fini(&env);
	return NULL;
}

int
lwwd_gossip_start(lwwd *d)
{
	int rv;

	pthread_mutex_init(&d->gossip_mtx, NULL);
	if ((rv = nng_pub0_open(&d->pub)) != 0 ||
	    (rv = nng_socket_set_int(d->pub, NNG_OPT_SENDBUF,
	                             LWW_GOSSIP_SENDBUF)) != 0) {
		fprintf(stderr, "lwwd: cannot open gossip socket: %s\n",
		        nng_strerror(rv));
		return -1;
	}
	if (lwwd_listen_guarded(d, d->pub, d->cfg.gossip, "--gossip",
	                        LWWD_SP_SUB, 0) != 0) {
		return -1;
	}
	if ((rv = nng_sub0_open(&d->sub)) != 0 ||
	    (rv = nng_socket_set(d->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
	    (rv = nng_socket_set_size(d->sub, NNG_OPT_RECVMAXSZ,
	                              LWW_MSG_MAX)) != 0 ||
	    (rv = nng_socket_set_int(d->sub, NNG_OPT_RECVBUF,
	                             LWW_GOSSIP_RECVBUF)) != 0 ||
	    (rv = nng_socket_set_ms(d->sub, NNG_OPT_RECONNMINT, 100)) != 0 ||
	    (rv = nng_socket_set_ms(d->sub, NNG_OPT_RECONNMAXT, 2000)) != 0) {
		fprintf(stderr, "lwwd: cannot open subscriber socket: %s\n",
		        nng_strerror(rv));
		return -1;
	}
	for (size_t i = 0; i < d->cfg.npeers; i++) {
		if (lwwd_dial_watched(d, d->sub, d->cfg.peers[i], "--peer") !=
		    0) {
			return -1;
		}
	}
	if ((rv = nng_aio_alloc(&d->sub_aio, sub_cb, d)) != 0) {
		return -1;
	}
	nng_recv_aio(d->sub, d->sub_aio);
	if (lwwd_thr_start(&d->heartbeat, &d->gossip_mtx, heartbeat_main, d) !=
	    0) {
		return -1;
	}
	return 0;
}

void
lwwd_gossip_stop(lwwd *d)
{
	/* The subscriber first: once nng_aio_stop returns, no callback runs
	 * or will run (a receive started later fails at once), so nothing of
	 * gossip reaches repair or the writer. */
	atomic_store(&d->sub_stopping, 1);
	if (d->sub_aio != NULL) {
		nng_aio_stop(d->sub_aio);
	}
	/* The heartbeat thread may restart the receive: it goes before the
	 * aio is freed. */
	lwwd_thr_stop(&d->heartbeat);
	/* The SUB socket itself stays open until exit, as the PUB socket
	 * does: nng 1.5's nng_close can deadlock against its own pipe
	 * callbacks under traffic (seen here; nanomsg/nng#1543), and with
	 * the receive stopped nothing of ours uses it. */
	if (d->sub_aio != NULL) {
		nng_aio_free(d->sub_aio);
		d->sub_aio = NULL;
	}
}
