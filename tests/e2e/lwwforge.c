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
 * As a repair asker: lwwforge push URL KEYFILE sends one signed PUSH_REQ
 * to a node's --sync URL with two entries, forge-push/own=x stamped with
 * KEYFILE's node id and forge-push/other=x stamped with another id, and
 * prints "taken N" from the reply.
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
		                "       lwwforge push URL KEYFILE\n");
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
