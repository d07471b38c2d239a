/*
 * lwwforge - a hostile or well-behaved peer for end-to-end tests.
 *
 * Binds a PUB socket where a node under test subscribes (its --peer) and
 * publishes one kind of message, count times, interval ms apart (pub/sub
 * drops what is sent before the subscriber connects, so tests repeat):
 *   valid      a correctly signed batch writing KEY=VALUE
 *   forged     signed by KEYFILE, but the entry carries another node's id
 *   badsig     a valid batch with one signature bit flipped
 *   truncated  a valid batch cut short by one byte
 *   garbage    random bytes
 *   drift      a valid batch stamped one hour in the future
 * Usage: lwwforge URL KEYFILE MODE KEY VALUE COUNT INTERVAL_MS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/supplemental/util/platform.h>
#include <sodium.h>

#include "codec.h"
#include "envelope.h"
#include "hlc.h"

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int
main(int argc, char **argv)
{
	lww_buf batch = LWW_BUF_INIT, env = LWW_BUF_INIT;
	const char *mode;
	lww_entry e;
	lww_key k;
	nng_socket pub;
	int count, interval;

	if (argc != 8) {
		fprintf(stderr, "usage: lwwforge URL KEYFILE MODE KEY VALUE "
		                "COUNT INTERVAL_MS\n");
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
	e.val = (const uint8_t *) argv[5];
	e.vlen = strlen(argv[5]);
	e.hlc = lww_hlc_make(now_ms(), 0);
	e.node = lww_node_id(k.pk);
	if (strcmp(mode, "forged") == 0) {
		e.node ^= 1; /* someone else's id */
	} else if (strcmp(mode, "drift") == 0) {
		e.hlc = lww_hlc_make(now_ms() + 3600 * 1000, 0);
	}
	if (lww_batch_begin(&batch, (uint64_t) now_ms()) != LWW_OK ||
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
	           strcmp(mode, "drift") != 0) {
		fprintf(stderr, "lwwforge: unknown mode %s\n", mode);
		return 2;
	}
	if (nng_pub0_open(&pub) != 0 ||
	    nng_listen(pub, argv[1], NULL, 0) != 0) {
		fprintf(stderr, "lwwforge: cannot listen on %s\n", argv[1]);
		return 1;
	}
	for (int i = 0; i < count; i++) {
		nng_send(pub, env.p, env.len, 0);
		nng_msleep(interval);
	}
	nng_close(pub);
	lww_key_wipe(&k);
	lww_buf_fini(&batch);
	lww_buf_fini(&env);
	return 0;
}
