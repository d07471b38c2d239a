/*
 * lwwbench - the benchmark driver behind scripts/bench.
 *
 *   lwwbench clients URL CLIENTS SECONDS add|lookup KEYS
 *       CLIENTS connections, each waiting for its reply before its next
 *       request (like redis-benchmark -c), driven by one epoll thread
 *       that speaks nng's SP wire format (sp.c), so that the client's
 *       own cost stays small next to the server's.
 *   lwwbench echo URL CLIENTS SECONDS
 *       the same clients against an in-process nng REP echo server on URL
 *       served by contexts as lwwd serves: the floor nng allows.
 *   lwwbench load URL CLIENTS COUNT BATCH
 *       bulk writes of COUNT keys (16-byte keys, 100-byte values), BATCH
 *       to a LOAD request, from CLIENTS connections at once.
 *   lwwbench lag WRITE_URL RATE SECONDS READ_URL...
 *       writes at RATE/s for SECONDS into one node (open loop, paced,
 *       over up to 256 connections), samples with lookups on the others
 *       how long the newest write takes to show (lag from when each
 *       write was due, so a writer that falls behind shows it), and the
 *       time until every reader holds every key.
 * Each prints one JSON object on stdout. Loops are bounded in time.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "codec.h"
#include "limits.h"
#include "sp.h"

#define SAMPLES_MAX 200000

static uint64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t
wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void
die(const char *what, int rv)
{
	fprintf(stderr, "lwwbench: %s: %s\n", what, nng_strerror(rv));
	exit(1);
}

static nng_socket
dial(const char *url)
{
	nng_socket s;
	int rv;

	if ((rv = nng_req0_open(&s)) != 0) {
		die("req0_open", rv);
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 10000);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, LWW_MSG_MAX);
	if ((rv = nng_dial(s, url, NULL, 0)) != 0) {
		die(url, rv);
	}
	return s;
}

/* One request/reply; returns the reply status, or -1 on transport error. */
static int
call(nng_socket s, const lww_buf *req, nng_msg **out)
{
	nng_msg *m;
	lww_rep rep;
	int rv;

	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, req->p, req->len)) {
		return -1;
	}
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return -1;
	}
	if (nng_recvmsg(s, &m, 0) != 0) {
		return -1;
	}
	if (lww_rep_decode(nng_msg_body(m), nng_msg_len(m), &rep) != LWW_OK) {
		nng_msg_free(m);
		return -1;
	}
	rv = rep.status;
	if (out != NULL) {
		*out = m;
	} else {
		nng_msg_free(m);
	}
	return rv;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
	return (x > y) - (x < y);
}

typedef struct lat {
	uint32_t *v;
	size_t n;
	uint64_t seen;
	uint64_t seed;
	uint32_t max; /* of all, not only the sample */
} lat;

/* Reservoir sample of latencies (us). */
static void
lat_add(lat *l, uint64_t us)
{
	uint32_t x = us > UINT32_MAX ? UINT32_MAX : (uint32_t) us;
	l->seen++;
	if (x > l->max) {
		l->max = x;
	}
	if (l->n < SAMPLES_MAX) {
		l->v[l->n++] = x;
		return;
	}
	l->seed = l->seed * 6364136223846793005ULL + 1442695040888963407ULL;
	uint64_t j = (l->seed >> 11) % l->seen;
	if (j < SAMPLES_MAX) {
		l->v[j] = x;
	}
}

static uint32_t
pct(uint32_t *v, size_t n, double p)
{
	if (n == 0) {
		return 0;
	}
	qsort(v, n, sizeof(*v), cmp_u32);
	size_t i = (size_t) (p * (double) (n - 1));
	return v[i];
}

/* ---- clients ---- */

typedef struct cl {
	sp_pool *pool;
	int add; /* 1 add, 0 lookup, -1 echo */
	unsigned keys;
	uint64_t deadline;
	uint64_t *sent; /* per connection */
	uint64_t ops, errors;
	lww_buf b;
	lat l;
} cl;

/* The next request of connection i: keys spread over the key space. */
static int
cl_send(cl *c, unsigned i)
{
	uint8_t val[100];
	char key[32];
	uint64_t k = c->sent[i]++;
	int n = snprintf(key, sizeof(key), "key:%012u",
	                 (unsigned) ((k * 7919 + i * 104729) % c->keys));
	lww_req q = {.op = c->add > 0 ? LWW_OP_ADD : LWW_OP_LOOKUP,
	             .key = (const uint8_t *) key,
	             .klen = (size_t) n,
	             .val = val,
	             .vlen = c->add > 0 ? sizeof(val) : 0};

	memset(val, 'v', sizeof(val));
	lww_buf_reset(&c->b);
	lww_req_encode(&c->b, &q);
	return sp_send(c->pool, i, c->b.p, c->b.len);
}

static void
cl_reply(void *arg, unsigned i, const uint8_t *p, size_t n, uint64_t us)
{
	cl *c = arg;
	lww_rep rep;
	int ok;

	if (c->add < 0) {
		ok = 1; /* an echo: any reply counts */
	} else {
		/* A lookup of an absent key is a full lookup all the same. */
		ok = lww_rep_decode(p, n, &rep) == LWW_OK &&
		     (rep.status == 0 ||
		      (!c->add && rep.status == LWW_ENOTFOUND));
	}
	if (ok) {
		c->ops++;
		lat_add(&c->l, us);
	} else {
		c->errors++;
	}
	if (sp_now_us() < c->deadline && cl_send(c, i) != 0) {
		c->errors++;
	}
}

/* N connections in a closed loop for SECONDS, from one epoll thread. */
static int
run_clients(const char *url, unsigned n, double secs, int add, unsigned keys)
{
	cl c = {.add = add, .keys = keys ? keys : 1};
	uint64_t t0;
	int rv = 0;

	c.l = (lat){malloc(SAMPLES_MAX * sizeof(uint32_t)), 0, 0, 1, 0};
	c.sent = calloc(n, sizeof(*c.sent));
	if ((c.pool = sp_open(url, n, cl_reply, &c)) == NULL) {
		return 1;
	}
	t0 = now_us();
	c.deadline = t0 + (uint64_t) (secs * 1e6);
	for (unsigned i = 0; i < n; i++) {
		if (cl_send(&c, i) != 0) {
			c.errors++;
		}
	}
	/* Until the deadline, then at most 10 s for replies in flight. */
	for (;;) {
		unsigned busy = 0;
		for (unsigned i = 0; i < n; i++) {
			busy += (unsigned) sp_busy(c.pool, i);
		}
		if (busy == 0 || now_us() > c.deadline + 10000000) {
			break;
		}
		if (sp_poll(c.pool, 10) != 0) {
			rv = 1;
			break;
		}
	}
	double el = (double) (now_us() - t0) / 1e6;
	printf("{\"ops\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"seconds\":%.3f,\"ops_per_s\":%.0f,\"p50_us\":%u,"
	       "\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u}\n",
	       c.ops, c.errors, el, (double) c.ops / el, pct(c.l.v, c.l.n, 0.5),
	       pct(c.l.v, c.l.n, 0.9), pct(c.l.v, c.l.n, 0.99), c.l.max);
	sp_close(c.pool);
	lww_buf_fini(&c.b);
	free(c.l.v);
	free(c.sent);
	return rv || c.errors > c.ops / 100 ? 1 : 0;
}

static int
cmd_clients(int argc, char **argv)
{
	if (argc != 7) {
		return 2;
	}
	return run_clients(argv[2], (unsigned) atoi(argv[3]), atof(argv[4]),
	                   strcmp(argv[5], "add") == 0,
	                   (unsigned) atoi(argv[6]));
}

/* ---- echo ---- */

/* An nng REP echo server served by contexts, the way lwwd serves. */
typedef struct echo_ctx {
	nng_ctx ctx;
	nng_aio *aio;
	int sending;
} echo_ctx;

static void
echo_cb(void *arg)
{
	echo_ctx *e = arg;

	if (nng_aio_result(e->aio) != 0) {
		if (e->sending) {
			nng_msg_free(nng_aio_get_msg(e->aio));
		} else if (nng_aio_result(e->aio) == NNG_ECLOSED) {
			return;
		}
		e->sending = 0;
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	if (e->sending) {
		e->sending = 0;
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	e->sending = 1;
	nng_ctx_send(e->ctx, e->aio); /* the message it got, as it is */
}

static int
cmd_echo(int argc, char **argv)
{
	if (argc != 5) {
		return 2;
	}
	unsigned n = (unsigned) atoi(argv[3]);
	double secs = atof(argv[4]);
	enum { NCTX = 128 };
	echo_ctx *es = calloc(NCTX, sizeof(*es));
	nng_socket srv;
	int rv;

	if ((rv = nng_rep0_open(&srv)) != 0 ||
	    (rv = nng_listen(srv, argv[2], NULL, 0)) != 0) {
		die("echo listen", rv);
	}
	for (int i = 0; i < NCTX; i++) {
		if ((rv = nng_ctx_open(&es[i].ctx, srv)) != 0 ||
		    (rv = nng_aio_alloc(&es[i].aio, echo_cb, &es[i])) != 0) {
			die("echo ctx", rv);
		}
		nng_ctx_recv(es[i].ctx, es[i].aio);
	}
	/* The requests it echoes are the lookups the clients mode sends. */
	rv = run_clients(argv[2], n, secs, -1, 100000);
	for (int i = 0; i < NCTX; i++) {
		nng_aio_stop(es[i].aio);
	}
	nng_close(srv);
	for (int i = 0; i < NCTX; i++) {
		nng_aio_free(es[i].aio);
	}
	free(es);
	return rv;
}

/* ---- load ---- */

typedef struct ld {
	sp_pool *pool;
	unsigned count, batch;
	unsigned next; /* first key of the next request */
	unsigned done, failed;
	lww_buf b;
} ld;

/* The next LOAD request on connection i: BATCH fresh 16-byte keys. */
static int
ld_send(ld *l, unsigned i)
{
	uint8_t val[100];
	char key[17];
	unsigned n = 0;

	memset(val, 'v', sizeof(val));
	lww_load_begin(&l->b);
	for (; n < l->batch && l->next < l->count; n++, l->next++) {
		snprintf(key, sizeof(key), "k%015u", l->next);
		lww_entry e = {
		    (const uint8_t *) key, 16, val, sizeof(val), 0, 0, 0};
		lww_load_add(&l->b, &e);
	}
	return n == 0 ? 0 : sp_send(l->pool, i, l->b.p, l->b.len);
}

static void
ld_reply(void *arg, unsigned i, const uint8_t *p, size_t n, uint64_t us)
{
	ld *l = arg;
	lww_rep rep;

	(void) us;
	if (lww_rep_decode(p, n, &rep) == LWW_OK && rep.status == 0) {
		l->done += rep.count;
	} else {
		l->failed++;
	}
	if (ld_send(l, i) != 0) {
		l->failed++;
	}
}

static int
cmd_load(int argc, char **argv)
{
	if (argc != 6) {
		return 2;
	}
	unsigned conns = (unsigned) atoi(argv[3]);
	ld l = {.count = (unsigned) atoi(argv[4]),
	        .batch = (unsigned) atoi(argv[5])};
	uint64_t t0 = now_us();
	int rv = 0;

	if (conns < 1 || l.batch < 1 || l.batch > LWW_BATCH_ENTRIES_MAX) {
		return 2;
	}
	if ((l.pool = sp_open(argv[2], conns, ld_reply, &l)) == NULL) {
		return 1;
	}
	for (unsigned i = 0; i < conns; i++) {
		if (ld_send(&l, i) != 0) {
			l.failed++;
		}
	}
	/* Until every write is answered; at most 10 minutes. */
	while (!l.failed && now_us() - t0 < 600000000) {
		unsigned busy = 0;
		for (unsigned i = 0; i < conns; i++) {
			busy += (unsigned) sp_busy(l.pool, i);
		}
		if (busy == 0) {
			break;
		}
		if (sp_poll(l.pool, 10) != 0) {
			rv = 1;
			break;
		}
	}
	double el = (double) (now_us() - t0) / 1e6;
	if (l.failed || l.done != l.count) {
		fprintf(stderr,
		        "lwwbench: load: %u of %u written, %u refused\n",
		        l.done, l.count, l.failed);
		rv = 1;
	}
	printf("{\"writes\":%u,\"seconds\":%.3f,\"writes_per_s\":%.0f}\n",
	       l.done, el, (double) l.done / el);
	sp_close(l.pool);
	lww_buf_fini(&l.b);
	return rv;
}

/* ---- lag ---- */

/* The writer: open loop, paced. The k-th write is due at start + k / rate
 * and goes out on the first idle connection of LAG_CONNS; a write that
 * finds none waits, and its wait counts in its lag (the value carries
 * the wall time it was due). */
#define LAG_CONNS 256

typedef struct lagw {
	double rate;
	uint64_t start, end;
	uint64_t next; /* id of the next write */
	uint64_t written, failed;
	lww_buf b;
	_Atomic uint64_t *sent; /* readers sample the newest */
} lagw;

static void
lagw_reply(void *arg, unsigned conn, const uint8_t *p, size_t n, uint64_t us)
{
	lagw *w = arg;
	lww_rep rep;

	(void) conn;
	(void) us;
	if (lww_rep_decode(p, n, &rep) == LWW_OK && rep.status == 0) {
		w->written++;
	} else {
		w->failed++;
	}
}

static int
lag_write(const char *url, lagw *w)
{
	sp_pool *pool = sp_open(url, LAG_CONNS, lagw_reply, w);
	unsigned rr = 0;
	int rv = 0;

	if (pool == NULL) {
		return 1;
	}
	for (;;) {
		uint64_t now = now_us();
		if (now >= w->end) {
			break;
		}
		while (w->next < (uint64_t) ((double) (now - w->start) *
		                             w->rate / 1e6) &&
		       now >= w->start) {
			unsigned i, k;
			for (k = 0; k < LAG_CONNS; k++) {
				i = (rr + k) % LAG_CONNS;
				if (!sp_busy(pool, i)) {
					break;
				}
			}
			if (k == LAG_CONNS) {
				break; /* all busy: it waits */
			}
			rr = i + 1;
			uint64_t due = w->start + (uint64_t) ((double) w->next *
			                                      1e6 / w->rate);
			char key[32], val[32];
			int kl = snprintf(key, sizeof(key), "lag/%012" PRIu64,
			                  w->next);
			int vl = snprintf(val, sizeof(val), "%" PRIu64,
			                  wall_us() - (now - due));
			lww_req q = {.op = LWW_OP_ADD,
			             .key = (const uint8_t *) key,
			             .klen = (size_t) kl,
			             .val = (const uint8_t *) val,
			             .vlen = (size_t) vl};
			lww_buf_reset(&w->b);
			lww_req_encode(&w->b, &q);
			if (sp_send(pool, i, w->b.p, w->b.len) != 0) {
				rv = 1;
				goto out;
			}
			w->next++;
			atomic_store(w->sent, w->next);
		}
		if (sp_poll(pool, 1) != 0) {
			rv = 1;
			goto out;
		}
	}
	/* Collect the replies in flight (at most 10 s). */
	for (uint64_t t = now_us(); now_us() - t < 10000000;) {
		unsigned busy = 0;
		for (unsigned i = 0; i < LAG_CONNS; i++) {
			busy += (unsigned) sp_busy(pool, i);
		}
		if (busy == 0 || sp_poll(pool, 10) != 0) {
			break;
		}
	}
out:
	sp_close(pool);
	lww_buf_fini(&w->b);
	return rv;
}

/* A reader samples visibility with lookups, as a user would see it: it
 * takes the newest key the writer has sent, polls the node for it every
 * 200 us until it shows, and records now minus the time the write was
 * due (its value). Then the next newest, and so on. */
typedef struct lagr {
	const char *url;
	_Atomic int *stop;
	_Atomic uint64_t *sent; /* ids below were sent */
	lat l;
} lagr;

/* The value of key on the node at s, as a number; -1 if absent. */
static int64_t
lookup_num(nng_socket s, lww_buf *b, const char *key)
{
	lww_req q = {.op = LWW_OP_LOOKUP,
	             .key = (const uint8_t *) key,
	             .klen = strlen(key)};
	nng_msg *m;
	lww_rep rep;
	char tmp[32];
	int64_t v = -1;

	lww_buf_reset(b);
	lww_req_encode(b, &q);
	if (call(s, b, &m) < 0) {
		return -1;
	}
	/* call hands over the reply whatever its status. */
	if (lww_rep_decode(nng_msg_body(m), nng_msg_len(m), &rep) == LWW_OK &&
	    rep.status == 0) {
		size_t n = rep.entry.vlen < 31 ? rep.entry.vlen : 31;
		memcpy(tmp, rep.entry.val, n);
		tmp[n] = 0;
		v = (int64_t) strtoull(tmp, NULL, 10);
	}
	nng_msg_free(m);
	return v;
}

static void *
lag_reader(void *arg)
{
	lagr *r = arg;
	nng_socket s = dial(r->url);
	lww_buf b = LWW_BUF_INIT;
	uint64_t last = UINT64_MAX;

	while (!atomic_load(r->stop)) {
		uint64_t n = atomic_load(r->sent);
		char key[32];
		int64_t due = -1;

		if (n == 0 || n - 1 == last) {
			nng_msleep(1);
			continue;
		}
		last = n - 1;
		snprintf(key, sizeof(key), "lag/%012" PRIu64, last);
		while (!atomic_load(r->stop) &&
		       (due = lookup_num(s, &b, key)) < 0) {
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
		}
		if (due >= 0) {
			uint64_t now = wall_us();
			lat_add(&r->l, now > (uint64_t) due
			                   ? now - (uint64_t) due
			                   : 0);
		}
	}
	lww_buf_fini(&b);
	nng_close(s);
	return NULL;
}

/* The number of keys the node at url holds (its stats), or -1. */
static int64_t
node_keys(const char *url)
{
	nng_socket s = dial(url);
	lww_buf b = LWW_BUF_INIT;
	lww_req q = {.op = LWW_OP_STATS};
	nng_msg *m;
	lww_rep rep;
	int64_t keys = -1;

	lww_req_encode(&b, &q);
	if (call(s, &b, &m) >= 0) {
		if (lww_rep_decode(nng_msg_body(m), nng_msg_len(m), &rep) ==
		        LWW_OK &&
		    rep.status == 0) {
			char *t = strndup(rep.text, rep.textlen);
			char *k = t ? strstr(t, "\"keys\":") : NULL;
			if (k != NULL) {
				keys = strtoll(k + 7, NULL, 10);
			}
			free(t);
		}
		nng_msg_free(m);
	}
	lww_buf_fini(&b);
	nng_close(s);
	return keys;
}

static int
cmd_lag(int argc, char **argv)
{
	if (argc < 6) {
		return 2;
	}
	double rate = atof(argv[3]), secs = atof(argv[4]);
	int nr = argc - 5;
	_Atomic int stop = 0;
	_Atomic uint64_t sent = 0;
	lagr *rs = calloc((size_t) nr, sizeof(*rs));
	pthread_t *rt = calloc((size_t) nr, sizeof(*rt));
	uint64_t start = now_us() + 200000, written, stopped, settled = 0;
	lagw w = {rate,         start, start + (uint64_t) (secs * 1e6), 0, 0, 0,
	          LWW_BUF_INIT, &sent};
	uint64_t missing = 0;
	int wrv;

	for (int i = 0; i < nr; i++) {
		rs[i] = (lagr){argv[5 + i],
		               &stop,
		               &sent,
		               {malloc(SAMPLES_MAX * sizeof(uint32_t)), 0, 0,
		                (uint64_t) i + 1, 0}};
		pthread_create(&rt[i], NULL, lag_reader, &rs[i]);
	}
	wrv = lag_write(argv[2], &w);
	written = w.written;
	stopped = now_us();
	atomic_store(&stop, 1);
	size_t tot = 0;
	for (int i = 0; i < nr; i++) {
		pthread_join(rt[i], NULL);
		tot += rs[i].l.n;
	}
	/* Until every reader holds every key written (at most 30 s). */
	for (int i = 0; i < nr; i++) {
		int64_t k;
		while ((k = node_keys(rs[i].url)) < (int64_t) written &&
		       now_us() - stopped < 30000000) {
			nng_msleep(5);
		}
		missing += k < (int64_t) written ? written - (uint64_t) k : 0;
	}
	settled = now_us() - stopped;
	uint32_t *all = malloc((tot + 1) * sizeof(*all));
	size_t k = 0;
	for (int i = 0; i < nr; i++) {
		memcpy(all + k, rs[i].l.v, rs[i].l.n * sizeof(*all));
		k += rs[i].l.n;
	}
	printf("{\"written\":%" PRIu64 ",\"attempted\":%" PRIu64
	       ",\"rate_per_s\":%.0f,\"samples\":%zu,\"lag_p50_ms\":%.2f,"
	       "\"lag_p99_ms\":%.2f,\"settle_ms\":%.1f,\"missing\":%" PRIu64
	       "}\n",
	       written, w.next, (double) written / secs, k,
	       pct(all, k, 0.5) / 1000.0, pct(all, k, 0.99) / 1000.0,
	       (double) settled / 1000.0, missing);
	for (int i = 0; i < nr; i++) {
		free(rs[i].l.v);
	}
	free(all);
	free(rs);
	free(rt);
	return missing || wrv ? 1 : 0;
}

int
main(int argc, char **argv)
{
	int rv = 2;

	if (argc >= 2) {
		if (strcmp(argv[1], "clients") == 0) {
			rv = cmd_clients(argc, argv);
		} else if (strcmp(argv[1], "echo") == 0) {
			rv = cmd_echo(argc, argv);
		} else if (strcmp(argv[1], "load") == 0) {
			rv = cmd_load(argc, argv);
		} else if (strcmp(argv[1], "lag") == 0) {
			rv = cmd_lag(argc, argv);
		}
	}
	if (rv == 2) {
		fprintf(stderr, "usage: lwwbench clients URL CLIENTS SECONDS "
		                "add|lookup KEYS\n"
		                "       lwwbench echo URL CLIENTS SECONDS\n"
		                "       lwwbench load URL CLIENTS COUNT BATCH\n"
		                "       lwwbench lag WRITE_URL RATE SECONDS "
		                "READ_URL...\n");
	}
	return rv;
}
