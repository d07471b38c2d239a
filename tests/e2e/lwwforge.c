/*
 * lwwforge - a hostile or well-behaved peer for end-to-end tests.
 *
 * Listens with a pair1 socket where a node under test dials (its --peer:
 * the gossip link) and sends one kind of message, count times, interval
 * ms apart (a relay drops copies of a batch it has seen):
 *   valid      a correctly signed batch writing KEY=VALUE
 *   forged     signed by KEYFILE, but the entry carries another node's id
 *   badsig     a valid batch with one signature bit flipped
 *   truncated  a valid batch cut short by one byte
 *   garbage    random bytes
 *   drift      a valid batch stamped one hour in the future
 *   junksig    VALUE's bytes as the payload (no batch), then a random
 *              signature (well-formed: verifying it hashes the message)
 * Usage: lwwforge URL KEYFILE MODE KEY VALUE COUNT INTERVAL_MS
 * COUNT "once" sends the message exactly once, so a test can prove that
 * this very message was refused (a counter rises by exactly one): until a
 * line arrives on stdin it publishes a valid batch writing KEY.ready=1
 * every INTERVAL_MS (the test waits for that key: the node is subscribed),
 * then sends MODE's message once, prints "sent" and stays bound until
 * stdin closes.
 * VALUE @N is N bytes of 'x' (up to 1 MiB; for junksig up to a whole
 * message): a large message, slow to verify (Ed25519 hashes all of it).
 *
 * As a client: lwwforge api URL KEYFILE MODE sends one signed ADD of
 * forge-api=x to the API and prints the status code of each reply:
 *   replay   the same signed bytes twice
 *   stale    stamped 60 s in the past
 *   badsig   one signature bit flipped
 *
 * As a repair peer: lwwforge sync URL KEYFILE MODE binds a REP socket at
 * URL (the sync URL a node derives from its --peer) and answers repair
 * requests, signed by KEYFILE, until it is killed:
 *   stuck    its hash tree differs from an empty store's in one leaf, but
 *            every leaf reply carries no entry (as a peer whose replies
 *            are capped below the size of an entry it holds); it knows
 *            no push-pull request, as an lwwd from before them
 *
 * As a trusted neighbour: lwwforge link URL KEYFILE FILE dials a node's
 * --gossip, answers its HELLO with a heartbeat signed by KEYFILE (which
 * the trust file lists), sends FILE's bytes as one message, prints
 * "sent" and stays connected until stdin closes (at most 30 s). With
 * "late" it acts as if the node's first HELLO was lost, and answers the
 * next one.
 * As a recorder: lwwforge record dial|listen URL NONCE_HEX OUT dials a
 * node's --gossip (or listens where a node's --peer dials), sends a HELLO
 * with that nonce every 500 ms and writes the node's signed heartbeat
 * answering it to OUT (to replay it elsewhere); exit 1 if none comes in
 * 10 s (30 s listening). A node answers only on a connection it dialled,
 * or once the dialler proved itself: dialling one gets no answer.
 *
 * As a repair asker: lwwforge push URL KEYFILE sends one signed PUSH_REQ
 * to a node's --sync URL with two entries, forge-push/own=x stamped with
 * KEYFILE's node id and forge-push/other=x stamped with another id, and
 * prints "taken N" from the reply.
 *
 * As a gossip relay: lwwforge relay LISTEN_URL UPSTREAM_URL KEYFILE MODE
 * opens one polyamorous pair1 socket that dials UPSTREAM_URL (a node's
 * --gossip) and listens on LISTEN_URL (a downstream node's --peer). Every
 * 200 ms it sends its own heartbeat, signed by KEYFILE (which the trust
 * file lists, so the nodes take it for a neighbour), on every pipe, and
 * answers each pipe's HELLO with a heartbeat carrying its nonce; it
 * forwards each message received from upstream (but the upstream node's
 * own HELLO and heartbeats) to every downstream pipe, until it is killed:
 *   pass       unchanged; what downstream sends is dropped
 *   tamper     every BATCH (alone or in a BUNDLE) has one byte of its
 *              first entry's value flipped (the payload, not the
 *              signature, so only the signature check can tell); what
 *              downstream sends is dropped
 *   dropfirst  the first BATCH (alone or in a BUNDLE) is dropped, and
 *              what downstream sends goes upstream: only a graft can
 *              bring that batch back
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <sodium.h>

#include "codec.h"
#include "envelope.h"
#include "hlc.h"
#include "limits.h"

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static int
api_status(nng_socket s, const lww_buf *b)
{
	nng_msg *m;
	lww_rep rep;
	int st;

	if (nng_send(s, b->p, b->len, 0) != 0 || nng_recvmsg(s, &m, 0) != 0) {
		return -1;
	}
	st = lww_rep_decode(nng_msg_body(m), nng_msg_len(m), &rep) == LWW_OK
	         ? rep.status
	         : -2;
	nng_msg_free(m);
	return st;
}

static int
api_main(const char *url, const char *keyfile, const char *mode)
{
	lww_buf req = LWW_BUF_INIT, auth = LWW_BUF_INIT, env = LWW_BUF_INIT;
	lww_req q = {.op = LWW_OP_ADD,
	             .key = (const uint8_t *) "forge-api",
	             .klen = 9,
	             .val = (const uint8_t *) "x",
	             .vlen = 1};
	uint8_t nonce[LWW_NONCE_BYTES];
	uint64_t ts = now_ms();
	nng_socket s;
	lww_key k;

	if (lww_key_load(keyfile, &k) != LWW_OK) {
		fprintf(stderr, "lwwforge: cannot load key %s\n", keyfile);
		return 1;
	}
	if (strcmp(mode, "stale") == 0) {
		ts -= 60000;
	}
	randombytes_buf(nonce, sizeof(nonce));
	if (lww_req_encode(&req, &q) != LWW_OK ||
	    lww_auth_encode(&auth, ts, nonce, req.p, req.len) != LWW_OK ||
	    lww_envelope_seal(&k, auth.p, auth.len, &env) != LWW_OK) {
		return 1;
	}
	if (strcmp(mode, "badsig") == 0) {
		env.p[env.len - 1] ^= 0x01;
	}
	if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0) {
		fprintf(stderr, "lwwforge: cannot reach %s\n", url);
		return 1;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	printf("%d", api_status(s, &env));
	if (strcmp(mode, "replay") == 0) {
		printf(" %d", api_status(s, &env));
	}
	printf("\n");
	nng_close(s);
	lww_key_wipe(&k);
	lww_buf_fini(&req);
	lww_buf_fini(&auth);
	lww_buf_fini(&env);
	return 0;
}

/* The answer of a stuck peer to one repair request, into out. */
static lww_err
stuck_answer(const uint8_t *p, size_t n, lww_buf *out)
{
	lww_tree_req tq;
	lww_leaf_req lq;
	uint8_t *hashes;
	uint8_t type;
	lww_err rv;

	if ((rv = lww_msg_peek(p, n, &type)) != LWW_OK) {
		return rv;
	}
	if (type == LWW_MSG_LEAF_REQ) {
		if ((rv = lww_leaf_req_decode(p, n, &lq)) != LWW_OK) {
			return rv;
		}
		return lww_leaf_rep_begin(out); /* done 0, no entry */
	}
	if ((rv = lww_tree_req_decode(p, n, &tq)) != LWW_OK) {
		return rv;
	}
	/* Only the first child of node 0 differs, down to leaf 0. */
	hashes = calloc((size_t) tq.count * 16 + 1, LWW_SYNC_HASH);
	if (hashes == NULL) {
		return LWW_ENOMEM;
	}
	for (uint32_t i = 0; i < tq.count; i++) {
		if (lww_tree_req_index(&tq, i) == 0) {
			memset(hashes + (size_t) i * 16 * LWW_SYNC_HASH, 0xff,
			       LWW_SYNC_HASH);
		}
	}
	rv = lww_tree_rep_encode(out, tq.level, hashes, tq.count);
	free(hashes);
	return rv;
}

static int
push_main(const char *url, const char *keyfile)
{
	lww_buf req = LWW_BUF_INIT, env = LWW_BUF_INIT;
	lww_envelope e;
	lww_entry en;
	uint32_t taken;
	nng_socket s;
	nng_msg *m;
	lww_key k;
	int rc = 1;

	if (lww_key_load(keyfile, &k) != LWW_OK) {
		fprintf(stderr, "lwwforge: cannot load key %s\n", keyfile);
		return 1;
	}
	memset(&en, 0, sizeof(en));
	en.val = (const uint8_t *) "x";
	en.vlen = 1;
	en.hlc = lww_hlc_make(now_ms(), 0);
	en.node = lww_node_id(k.pk);
	en.key = (const uint8_t *) "forge-push/own";
	en.klen = strlen("forge-push/own");
	if (lww_push_req_begin(&req) != LWW_OK ||
	    lww_push_req_add(&req, &en) != LWW_OK) {
		return 1;
	}
	en.node ^= 1; /* someone else's id */
	en.key = (const uint8_t *) "forge-push/other";
	en.klen = strlen("forge-push/other");
	if (lww_push_req_add(&req, &en) != LWW_OK ||
	    lww_envelope_seal(&k, req.p, req.len, &env) != LWW_OK) {
		return 1;
	}
	if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0) {
		fprintf(stderr, "lwwforge: cannot reach %s\n", url);
		return 1;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	if (nng_send(s, env.p, env.len, 0) == 0 && nng_recvmsg(s, &m, 0) == 0) {
		if (lww_envelope_open(nng_msg_body(m), nng_msg_len(m), NULL,
		                      &e) == LWW_OK &&
		    lww_push_rep_decode(e.payload, e.plen, &taken) == LWW_OK) {
			printf("taken %u\n", taken);
			rc = 0;
		}
		nng_msg_free(m);
	}
	nng_close(s);
	lww_key_wipe(&k);
	lww_buf_fini(&req);
	lww_buf_fini(&env);
	return rc;
}

static int
sync_main(const char *url, const char *keyfile, const char *mode)
{
	lww_buf out = LWW_BUF_INIT, env = LWW_BUF_INIT;
	nng_socket s;
	lww_key k;

	if (strcmp(mode, "stuck") != 0) {
		fprintf(stderr, "lwwforge: unknown sync mode %s\n", mode);
		return 2;
	}
	if (lww_key_load(keyfile, &k) != LWW_OK) {
		fprintf(stderr, "lwwforge: cannot load key %s\n", keyfile);
		return 1;
	}
	if (nng_rep0_open(&s) != 0 ||
	    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, LWW_MSG_MAX) != 0 ||
	    nng_listen(s, url, NULL, 0) != 0) {
		fprintf(stderr, "lwwforge: cannot listen on %s\n", url);
		return 1;
	}
	for (;;) {
		lww_envelope e;
		nng_msg *m;

		if (nng_recvmsg(s, &m, 0) != 0) {
			break;
		}
		lww_buf_reset(&out);
		lww_buf_reset(&env);
		if (lww_envelope_open(nng_msg_body(m), nng_msg_len(m), NULL,
		                      &e) != LWW_OK ||
		    stuck_answer(e.payload, e.plen, &out) != LWW_OK ||
		    lww_envelope_seal(&k, out.p, out.len, &env) != LWW_OK) {
			lww_buf_reset(&env);
			(void) lww_buf_put_u8(&env,
			                      0); /* refused by decoders */
		}
		nng_msg_free(m);
		if (nng_send(s, env.p, env.len, 0) != 0) {
			break;
		}
	}
	nng_close(s);
	lww_key_wipe(&k);
	lww_buf_fini(&out);
	lww_buf_fini(&env);
	return 0;
}

/* The pipes of the one pair1 socket, kept by nng's pipe callbacks, so that
 * a message can go to each of them (a polyamorous socket sends a message
 * to the one pipe it names). */
#define FORGE_PIPES_MAX 64
static nng_mtx *pipes_mtx;
static nng_pipe pipes[FORGE_PIPES_MAX];
static size_t npipes;

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void) arg;
	nng_mtx_lock(pipes_mtx);
	if (ev == NNG_PIPE_EV_ADD_POST && npipes < FORGE_PIPES_MAX) {
		pipes[npipes++] = p;
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		for (size_t i = 0; i < npipes; i++) {
			if (nng_pipe_id(pipes[i]) == nng_pipe_id(p)) {
				pipes[i] = pipes[--npipes];
				break;
			}
		}
	}
	nng_mtx_unlock(pipes_mtx);
}

/* A polyamorous pair1 socket that tracks its pipes; 0 or an nng error. */
static int
pair_open(nng_socket *s)
{
	int rv;

	if ((rv = nng_mtx_alloc(&pipes_mtx)) != 0 ||
	    (rv = nng_pair1_open_poly(s)) != 0) {
		return rv;
	}
	(void) nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, LWW_MSG_MAX);
	(void) nng_pipe_notify(*s, NNG_PIPE_EV_ADD_POST, pipe_cb, NULL);
	(void) nng_pipe_notify(*s, NNG_PIPE_EV_REM_POST, pipe_cb, NULL);
	return 0;
}

/* Sends p to every pipe, or only to those of listener l_id if it is
 * above 0, or of dialer d_id if that is. Never blocks: a full pipe drops
 * the copy, as a gossip sender does. */
static void
send_all(nng_socket s, const uint8_t *p, size_t n, int l_id, int d_id)
{
	nng_pipe to[FORGE_PIPES_MAX];
	size_t k = 0;

	nng_mtx_lock(pipes_mtx);
	for (size_t i = 0; i < npipes; i++) {
		if ((l_id <= 0 ||
		     nng_listener_id(nng_pipe_listener(pipes[i])) == l_id) &&
		    (d_id <= 0 ||
		     nng_dialer_id(nng_pipe_dialer(pipes[i])) == d_id)) {
			to[k++] = pipes[i];
		}
	}
	nng_mtx_unlock(pipes_mtx);
	for (size_t i = 0; i < k; i++) {
		nng_msg *m;

		if (nng_msg_alloc(&m, 0) != 0) {
			return;
		}
		if (nng_msg_append(m, p, n) != 0) {
			nng_msg_free(m);
			return;
		}
		nng_msg_set_pipe(m, to[i]);
		if (nng_sendmsg(s, m, NNG_FLAG_NONBLOCK) != 0) {
			nng_msg_free(m);
		}
	}
}

/* MODE tamper: flips the first byte of the first entry's value (or of its
 * key, for a tombstone) of a signed BATCH, in place. */
static void
tamper_one(uint8_t *p, size_t n)
{
	lww_envelope env;
	lww_batch b;
	lww_entry e;
	uint8_t type;
	size_t off = 0;

	if (lww_envelope_open(p, n, NULL, &env) != LWW_OK ||
	    lww_msg_peek(env.payload, env.plen, &type) != LWW_OK ||
	    type != LWW_MSG_BATCH ||
	    lww_batch_decode(env.payload, env.plen, &b) != LWW_OK ||
	    !lww_entries_next(&b.entries, &off, &e)) {
		return;
	}
	if (e.vlen > 0) {
		p[e.val - p] ^= 0x01;
	} else {
		p[e.key - p] ^= 0x01;
	}
}

/* Tampers with every batch of a message: alone, or in a BUNDLE (a node
 * gathers its messages to one neighbour into bundles). */
static void
tamper(uint8_t *p, size_t n)
{
	lww_link_recs r;
	const uint8_t *m;
	size_t mn, off = 0;
	uint8_t type;

	if (lww_msg_peek(p, n, &type) != LWW_OK || type != LWW_MSG_BUNDLE) {
		tamper_one(p, n);
		return;
	}
	if (lww_bundle_decode(p, n, &r) != LWW_OK) {
		return;
	}
	while (lww_bundle_next(&r, &off, &m, &mn)) {
		tamper_one(p + (m - p), mn);
	}
}

/* Whether p is a signed message of that type (a BATCH, or a HEARTBEAT:
 * a node's own, which a relay never passes on, as a node never does). */
static int
signed_is(const uint8_t *p, size_t n, uint8_t want)
{
	lww_envelope env;
	uint8_t type;

	return lww_envelope_open(p, n, NULL, &env) == LWW_OK &&
	       lww_msg_peek(env.payload, env.plen, &type) == LWW_OK &&
	       type == want;
}

/* What the relay passes on of a message (alone, or the messages of a
 * BUNDLE), as a bundle into out; 0 when nothing is left to send. Never
 * the sender's HELLO (its nonce goes to hello, *asked set: the relay
 * answers it itself) nor its heartbeats; with drop set, not the first
 * batch the relay sees (MODE dropfirst; *dropped says whether it has gone
 * by). */
static int
pass_on(const uint8_t *p, size_t n, int drop, int *dropped, lww_buf *out,
        uint8_t hello[LWW_HELLO_NONCE_BYTES], int *asked)
{
	lww_link_recs r;
	const uint8_t *m = p;
	size_t mn = n, off = 0;
	uint8_t type;
	int bundle, first = 1;

	lww_buf_reset(out);
	bundle = lww_msg_peek(p, n, &type) == LWW_OK &&
	         type == LWW_MSG_BUNDLE &&
	         lww_bundle_decode(p, n, &r) == LWW_OK;
	if (lww_bundle_begin(out) != LWW_OK) {
		return 0;
	}
	while (bundle ? lww_bundle_next(&r, &off, &m, &mn) : first) {
		first = 0;
		if (lww_hello_decode(m, mn, hello) == LWW_OK) {
			*asked = 1;
		} else if (signed_is(m, mn, LWW_MSG_HEARTBEAT)) {
			continue;
		} else if (drop && !*dropped &&
		           signed_is(m, mn, LWW_MSG_BATCH)) {
			*dropped = 1;
		} else if (mn < 2 || lww_bundle_add(out, m, mn) != LWW_OK) {
			return 0;
		}
	}
	return lww_link_count(out) > 0;
}

/* Sends p to one pipe; never blocks. */
static void
send_pipe(nng_socket s, nng_pipe to, const uint8_t *p, size_t n)
{
	nng_msg *m;

	if (nng_msg_alloc(&m, 0) != 0) {
		return;
	}
	if (nng_msg_append(m, p, n) != 0) {
		nng_msg_free(m);
		return;
	}
	nng_msg_set_pipe(m, to);
	if (nng_sendmsg(s, m, NNG_FLAG_NONBLOCK) != 0) {
		nng_msg_free(m);
	}
}

/* A heartbeat signed by k into env; one answering a HELLO (its nonce)
 * when nonce is not NULL. 1 when done. */
static int
relay_heartbeat(const lww_key *k, const uint8_t *nonce, lww_buf *hb,
                lww_buf *env)
{
	lww_heartbeat h;

	memset(&h, 0, sizeof(h));
	h.hlc = lww_hlc_make(now_ms(), 0);
	if (nonce != NULL) {
		h.proof = 1;
		memcpy(h.nonce, nonce, sizeof(h.nonce));
	}
	lww_buf_reset(hb);
	lww_buf_reset(env);
	return lww_heartbeat_encode(hb, &h) == LWW_OK &&
	       lww_envelope_seal(k, hb->p, hb->len, env) == LWW_OK;
}

/* Finds, in a message (alone or in a BUNDLE) from a node, its HELLO (its
 * nonce into hello) and its heartbeat answering ours (a copy of the
 * envelope into proof). */
static void
scan_link(const uint8_t *p, size_t n, uint8_t hello[LWW_HELLO_NONCE_BYTES],
          int *asked, lww_buf *proof)
{
	lww_link_recs r;
	const uint8_t *m = p;
	size_t mn = n, off = 0;
	uint8_t type;
	int bundle, first = 1;

	bundle = lww_msg_peek(p, n, &type) == LWW_OK &&
	         type == LWW_MSG_BUNDLE &&
	         lww_bundle_decode(p, n, &r) == LWW_OK;
	while (bundle ? lww_bundle_next(&r, &off, &m, &mn) : first) {
		lww_envelope env;
		lww_heartbeat hb;

		first = 0;
		if (lww_hello_decode(m, mn, hello) == LWW_OK) {
			*asked = 1;
		} else if (proof != NULL &&
		           lww_envelope_open(m, mn, NULL, &env) == LWW_OK &&
		           lww_heartbeat_decode(env.payload, env.plen, &hb) ==
		               LWW_OK &&
		           hb.proof) {
			lww_buf_reset(proof);
			(void) lww_buf_put(proof, m, mn);
		}
	}
}

/* lwwforge link URL KEYFILE FILE: see the top of the file. */
static int
link_main(const char *url, const char *keyfile, const char *file, int skip)
{
	lww_buf hb = LWW_BUF_INIT, env = LWW_BUF_INIT, msg = LWW_BUF_INIT;
	uint8_t nonce[LWW_HELLO_NONCE_BYTES];
	uint64_t until = now_ms() + 10000;
	int asked = 0, rc = 1;
	char buf[4096];
	size_t got;
	nng_socket s;
	lww_key k;
	FILE *f;

	if (lww_key_load(keyfile, &k) != LWW_OK) {
		fprintf(stderr, "lwwforge: cannot load key %s\n", keyfile);
		return 1;
	}
	if ((f = fopen(file, "rb")) == NULL) {
		fprintf(stderr, "lwwforge: cannot read %s\n", file);
		return 1;
	}
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
		(void) lww_buf_put(&msg, (const uint8_t *) buf, got);
	}
	fclose(f);
	if (nng_pair1_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0) {
		fprintf(stderr, "lwwforge: cannot dial %s\n", url);
		return 1;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 100);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 2000);
	while (!asked && now_ms() < until) {
		nng_msg *m;
		if (nng_recvmsg(s, &m, 0) == 0) {
			scan_link(nng_msg_body(m), nng_msg_len(m), nonce,
			          &asked, NULL);
			nng_msg_free(m);
			if (asked && skip > 0) {
				skip--; /* as if that HELLO was lost */
				asked = 0;
			}
		}
	}
	if (asked && relay_heartbeat(&k, nonce, &hb, &env) &&
	    nng_send(s, env.p, env.len, 0) == 0 &&
	    nng_send(s, msg.p, msg.len, 0) == 0) {
		printf("sent\n");
		fflush(stdout);
		rc = 0;
		/* Stays connected until stdin closes (at most 30 s), taking
		 * what the node sends, so the message is read on a live
		 * connection. */
		for (until = now_ms() + 30000; now_ms() < until;) {
			struct pollfd pfd = {.fd = STDIN_FILENO,
			                     .events = POLLIN};
			nng_msg *m;
			if (poll(&pfd, 1, 0) > 0 &&
			    read(STDIN_FILENO, buf, sizeof(buf)) <= 0) {
				break;
			}
			if (nng_recvmsg(s, &m, 0) == 0) {
				nng_msg_free(m);
			}
		}
	} else {
		fprintf(stderr, "lwwforge: no HELLO from %s\n", url);
	}
	nng_close(s);
	lww_key_wipe(&k);
	lww_buf_fini(&hb);
	lww_buf_fini(&env);
	lww_buf_fini(&msg);
	return rc;
}

/* lwwforge record URL NONCE_HEX OUT: see the top of the file. */
static int
record_main(const char *how, const char *url, const char *hex, const char *out)
{
	lww_buf hello = LWW_BUF_INIT, proof = LWW_BUF_INIT;
	uint8_t nonce[LWW_HELLO_NONCE_BYTES], theirs[LWW_HELLO_NONCE_BYTES];
	uint64_t until = now_ms() + 10000, next = 0;
	int asked = 0, rc = 1, listening = strcmp(how, "listen") == 0;
	nng_socket s;
	FILE *f;

	if (strlen(hex) != 2 * sizeof(nonce) ||
	    sodium_hex2bin(nonce, sizeof(nonce), hex, strlen(hex), NULL, NULL,
	                   NULL) != 0) {
		fprintf(stderr, "lwwforge: NONCE_HEX is %zu hex digits\n",
		        2 * sizeof(nonce));
		return 2;
	}
	if (lww_hello_encode(&hello, nonce) != LWW_OK ||
	    nng_pair1_open(&s) != 0 ||
	    (listening ? nng_listen(s, url, NULL, 0)
	               : nng_dial(s, url, NULL, 0)) != 0) {
		fprintf(stderr, "lwwforge: cannot %s %s\n", how, url);
		return 1;
	}
	if (listening) {
		until += 20000; /* the node's dialer retries */
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 100);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 100);
	while (proof.len == 0 && now_ms() < until) {
		nng_msg *m;
		/* Again every 500 ms: one sent before the node has taken
		 * the connection in, or before anybody dialled, is lost. */
		if (now_ms() >= next) {
			(void) nng_send(s, hello.p, hello.len, 0);
			next = now_ms() + 500;
		}
		if (nng_recvmsg(s, &m, 0) == 0) {
			scan_link(nng_msg_body(m), nng_msg_len(m), theirs,
			          &asked, &proof);
			nng_msg_free(m);
		}
	}
	if (proof.len > 0 && (f = fopen(out, "wb")) != NULL) {
		rc = fwrite(proof.p, 1, proof.len, f) == proof.len &&
		             fclose(f) == 0
		         ? 0
		         : 1;
	} else {
		fprintf(stderr, "lwwforge: no answer to the HELLO from %s\n",
		        url);
	}
	nng_close(s);
	lww_buf_fini(&hello);
	lww_buf_fini(&proof);
	return rc;
}

static int
relay_main(const char *listen, const char *upstream, const char *keyfile,
           const char *mode)
{
	lww_buf hb = LWW_BUF_INIT, env = LWW_BUF_INIT, out = LWW_BUF_INIT;
	nng_listener l;
	nng_dialer dl;
	nng_socket s;
	lww_key k;
	uint64_t last_hb = 0;
	int tampering, dropping, dropped = 0, up, asked, more;
	uint8_t nonce[LWW_HELLO_NONCE_BYTES];

	if (strcmp(mode, "tamper") != 0 && strcmp(mode, "pass") != 0 &&
	    strcmp(mode, "dropfirst") != 0) {
		fprintf(stderr, "lwwforge: unknown relay mode %s\n", mode);
		return 2;
	}
	tampering = strcmp(mode, "tamper") == 0;
	dropping = strcmp(mode, "dropfirst") == 0;
	if (lww_key_load(keyfile, &k) != LWW_OK) {
		fprintf(stderr, "lwwforge: cannot load key %s\n", keyfile);
		return 1;
	}
	if (pair_open(&s) != 0 || nng_listen(s, listen, &l, 0) != 0) {
		fprintf(stderr, "lwwforge: cannot listen on %s\n", listen);
		return 1;
	}
	/* Non-blocking: the upstream node may start after the relay. */
	if (nng_dial(s, upstream, &dl, NNG_FLAG_NONBLOCK) != 0) {
		fprintf(stderr, "lwwforge: cannot dial %s\n", upstream);
		return 1;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 50);
	for (;;) {
		nng_msg *m;
		int rv;

		if (now_ms() - last_hb >= 200) {
			last_hb = now_ms();
			if (relay_heartbeat(&k, NULL, &hb, &env)) {
				send_all(s, env.p, env.len, 0, 0);
			}
		}
		rv = nng_recvmsg(s, &m, 0);
		if (rv == NNG_ETIMEDOUT) {
			continue;
		}
		if (rv != 0) {
			break;
		}
		up = nng_dialer_id(nng_pipe_dialer(nng_msg_get_pipe(m))) ==
		     nng_dialer_id(dl);
		if (up && tampering) {
			tamper(nng_msg_body(m), nng_msg_len(m));
		}
		asked = 0;
		more = pass_on(nng_msg_body(m), nng_msg_len(m), up && dropping,
		               &dropped, &out, nonce, &asked);
		if (asked && relay_heartbeat(&k, nonce, &hb, &env)) {
			/* Known by its own key on every connection. */
			send_pipe(s, nng_msg_get_pipe(m), env.p, env.len);
		}
		if (more && up) {
			send_all(s, out.p, out.len, nng_listener_id(l), 0);
		} else if (more && dropping) {
			/* Grafts and announcements go back up. */
			send_all(s, out.p, out.len, 0, nng_dialer_id(dl));
		}
		nng_msg_free(m);
	}
	nng_close(s);
	lww_key_wipe(&k);
	lww_buf_fini(&hb);
	lww_buf_fini(&env);
	lww_buf_fini(&out);
	return 0;
}

/* COUNT "once": see the top of the file. */
static int
send_once(nng_socket pub, const lww_key *k, const char *key, const lww_buf *msg,
          uint64_t seq, int interval)
{
	lww_buf batch = LWW_BUF_INIT, ready = LWW_BUF_INIT;
	char rkey[256];
	char line[64];
	struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
	lww_entry e;

	snprintf(rkey, sizeof(rkey), "%s.ready", key);
	memset(&e, 0, sizeof(e));
	e.key = (const uint8_t *) rkey;
	e.klen = strlen(rkey);
	e.val = (const uint8_t *) "1";
	e.vlen = 1;
	e.node = lww_node_id(k->pk);
	for (;;) {
		/* A fresh stamp each time, and the sequence just below the
		 * message's: the node takes the first copy (later ones are
		 * duplicates to a relay), and the message after it is new. */
		e.hlc = lww_hlc_make(now_ms(), 0);
		lww_buf_reset(&ready);
		lww_buf_reset(&batch);
		if (lww_batch_begin(&batch, seq - 1) != LWW_OK ||
		    lww_batch_add(&batch, &e) != LWW_OK ||
		    lww_envelope_seal(k, batch.p, batch.len, &ready) !=
		        LWW_OK) {
			fprintf(stderr, "lwwforge: cannot build the batch\n");
			return 1;
		}
		nng_send(pub, ready.p, ready.len, 0);
		if (poll(&pfd, 1, interval) > 0) {
			break;
		}
	}
	if (fgets(line, sizeof(line), stdin) == NULL) {
		return 1; /* stdin closed before the go: send nothing */
	}
	nng_send(pub, msg->p, msg->len, 0);
	printf("sent\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
	}
	nng_close(pub);
	lww_buf_fini(&batch);
	lww_buf_fini(&ready);
	return 0;
}

int
main(int argc, char **argv)
{
	lww_buf batch = LWW_BUF_INIT, env = LWW_BUF_INIT;
	uint8_t *big = NULL;
	const char *mode;
	lww_entry e;
	lww_key k;
	nng_socket pub;
	int count, interval;
	/* Above the sequence of a node started earlier with this key (it
	 * numbers from its start in microseconds), so the node under test
	 * takes it as new. */
	uint64_t seq = (uint64_t) now_ms() * 1000 + 999;

	if (argc == 5 && strcmp(argv[1], "api") == 0) {
		if (sodium_init() < 0) {
			return 1;
		}
		return api_main(argv[2], argv[3], argv[4]);
	}
	if (argc == 5 && strcmp(argv[1], "sync") == 0) {
		if (sodium_init() < 0) {
			return 1;
		}
		return sync_main(argv[2], argv[3], argv[4]);
	}
	if (argc == 6 && strcmp(argv[1], "relay") == 0) {
		if (sodium_init() < 0) {
			return 1;
		}
		return relay_main(argv[2], argv[3], argv[4], argv[5]);
	}
	if ((argc == 5 || (argc == 6 && strcmp(argv[5], "late") == 0)) &&
	    strcmp(argv[1], "link") == 0) {
		if (sodium_init() < 0) {
			return 1;
		}
		return link_main(argv[2], argv[3], argv[4], argc == 6);
	}
	if (argc == 6 && strcmp(argv[1], "record") == 0 &&
	    (strcmp(argv[2], "dial") == 0 || strcmp(argv[2], "listen") == 0)) {
		if (sodium_init() < 0) {
			return 1;
		}
		return record_main(argv[2], argv[3], argv[4], argv[5]);
	}
	if (argc == 4 && strcmp(argv[1], "push") == 0) {
		if (sodium_init() < 0) {
			return 1;
		}
		return push_main(argv[2], argv[3]);
	}
	if (argc != 8) {
		fprintf(stderr, "usage: lwwforge URL KEYFILE MODE KEY VALUE "
		                "COUNT INTERVAL_MS\n"
		                "       lwwforge api URL KEYFILE "
		                "replay|stale|badsig\n"
		                "       lwwforge sync URL KEYFILE stuck\n"
		                "       lwwforge relay LISTEN_URL UPSTREAM_URL "
		                "KEYFILE tamper|pass|dropfirst\n"
		                "       lwwforge push URL KEYFILE\n"
		                "       lwwforge link URL KEYFILE FILE [late]\n"
		                "       lwwforge record dial|listen URL "
		                "NONCE_HEX OUT\n");
		return 2;
	}
	if (sodium_init() < 0 || lww_key_load(argv[2], &k) != LWW_OK) {
		fprintf(stderr, "lwwforge: cannot load key %s\n", argv[2]);
		return 1;
	}
	mode = argv[3];
	count = atoi(argv[6]);
	interval = atoi(argv[7]);
	memset(&e, 0, sizeof(e));
	e.key = (const uint8_t *) argv[4];
	e.klen = strlen(argv[4]);
	if (argv[5][0] == '@') {
		size_t max = strcmp(mode, "junksig") == 0
		                 ? LWW_MSG_MAX - LWW_ENVELOPE_OVERHEAD
		                 : LWW_VAL_MAX;
		e.vlen = strtoul(argv[5] + 1, NULL, 10);
		if (e.vlen > max || (big = malloc(e.vlen + 1)) == NULL) {
			fprintf(stderr, "lwwforge: bad value size %s\n",
			        argv[5]);
			return 2;
		}
		memset(big, 'x', e.vlen);
		e.val = big;
	} else {
		e.val = (const uint8_t *) argv[5];
		e.vlen = strlen(argv[5]);
	}
	e.hlc = lww_hlc_make(now_ms(), 0);
	e.node = lww_node_id(k.pk);
	if (strcmp(mode, "forged") == 0) {
		e.node ^= 1; /* someone else's id */
	} else if (strcmp(mode, "drift") == 0) {
		e.hlc = lww_hlc_make(now_ms() + 3600 * 1000, 0);
	}
	if (strcmp(mode, "junksig") == 0) {
		if (lww_envelope_seal(&k, e.val, e.vlen, &env) != LWW_OK) {
			fprintf(stderr, "lwwforge: cannot build the message\n");
			return 1;
		}
		/* Random R and S, with S below the group order so that the
		 * verifier hashes the whole message before refusing it (a
		 * non-canonical S is refused before any hashing). */
		randombytes_buf(env.p + env.len - LWW_SIG_BYTES, LWW_SIG_BYTES);
		env.p[env.len - 1] &= 0x0f;
	} else if (lww_batch_begin(&batch, seq) != LWW_OK ||
	           lww_batch_add(&batch, &e) != LWW_OK ||
	           lww_envelope_seal(&k, batch.p, batch.len, &env) != LWW_OK) {
		fprintf(stderr, "lwwforge: cannot build the batch\n");
		return 1;
	}
	if (strcmp(mode, "badsig") == 0) {
		env.p[env.len - 1] ^= 0x01;
	} else if (strcmp(mode, "truncated") == 0) {
		env.len--;
	} else if (strcmp(mode, "garbage") == 0) {
		randombytes_buf(env.p, env.len);
	} else if (strcmp(mode, "valid") != 0 && strcmp(mode, "forged") != 0 &&
	           strcmp(mode, "drift") != 0 && strcmp(mode, "junksig") != 0) {
		fprintf(stderr, "lwwforge: unknown mode %s\n", mode);
		return 2;
	}
	/* A neighbour on the node's gossip link (gossip.c): it dials us. */
	if (nng_pair1_open(&pub) != 0 ||
	    nng_listen(pub, argv[1], NULL, 0) != 0) {
		fprintf(stderr, "lwwforge: cannot listen on %s\n", argv[1]);
		return 1;
	}
	if (strcmp(argv[6], "once") == 0) {
		return send_once(pub, &k, argv[4], &env, seq, interval);
	}
	for (int i = 0; i < count; i++) {
		nng_send(pub, env.p, env.len, 0);
		nng_msleep(interval);
	}
	nng_close(pub);
	lww_key_wipe(&k);
	lww_buf_fini(&batch);
	lww_buf_fini(&env);
	free(big);
	return 0;
}
