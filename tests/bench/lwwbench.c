/*
 * lwwbench - the benchmark driver behind scripts/bench.
 *
 *   lwwbench clients URL THREADS SECONDS add|lookup KEYS
 *       THREADS clients, each with its own REQ socket, each waiting for
 *       its reply before the next request (like redis-benchmark -c).
 *   lwwbench echo URL SECONDS BYTES
 *       one client against an in-process nng REP echo server on URL: the
 *       floor nng allows for one serial request/reply.
 *   lwwbench load URL COUNT BATCH
 *       bulk writes of COUNT keys (16-byte keys, 100-byte values), BATCH
 *       to a LOAD request, one request at a time.
 *   lwwbench lag WRITE_URL RATE SECONDS READ_URL...
 *       writes at RATE/s for SECONDS into one node (64 paced clients) and
 *       polls the others for each key, reporting visibility lag and the
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
} lat;

/* Reservoir sample of latencies (us). */
static void
lat_add(lat *l, uint64_t us)
{
	uint32_t x = us > UINT32_MAX ? UINT32_MAX : (uint32_t) us;
	l->seen++;
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
	const char *url;
	int add;
	unsigned keys;
	unsigned id;
	uint64_t deadline;
	uint64_t ops;
	uint64_t errors;
	lat l;
} cl;

static void *
client_main(void *arg)
{
	cl *c = arg;
	nng_socket s = dial(c->url);
	lww_buf b = LWW_BUF_INIT;
	uint8_t val[100];
	char key[32];
	uint64_t i = 0;

	memset(val, 'v', sizeof(val));
	c->l.v = malloc(SAMPLES_MAX / 64 * sizeof(uint32_t) * 64);
	c->l.seed = c->id + 1;
	while (now_us() < c->deadline) {
		lww_req q = {.op = c->add ? LWW_OP_ADD : LWW_OP_LOOKUP};
		int n = snprintf(
		    key, sizeof(key), "key:%012u",
		    (unsigned) ((i * 7919 + c->id * 104729) % c->keys));
		q.key = (const uint8_t *) key;
		q.klen = (size_t) n;
		q.val = val;
		q.vlen = c->add ? sizeof(val) : 0;
		lww_buf_reset(&b);
		lww_req_encode(&b, &q);
		uint64_t t0 = now_us();
		int st = call(s, &b, NULL);
		/* A lookup of an absent key is a full lookup all the same. */
		if (st == 0 || (!c->add && st == LWW_ENOTFOUND)) {
			c->ops++;
			lat_add(&c->l, now_us() - t0);
		} else {
			c->errors++;
		}
		i++;
	}
	lww_buf_fini(&b);
	nng_close(s);
	return NULL;
}

static int
cmd_clients(int argc, char **argv)
{
	if (argc != 7) {
		return 2;
	}
	unsigned n = (unsigned) atoi(argv[3]);
	double secs = atof(argv[4]);
	int add = strcmp(argv[5], "add") == 0;
	unsigned keys = (unsigned) atoi(argv[6]);
	cl *cs = calloc(n, sizeof(*cs));
	pthread_t *t = calloc(n, sizeof(*t));
	uint64_t t0 = now_us(), ops = 0, errors = 0;
	uint32_t *all;
	size_t total = 0;

	for (unsigned i = 0; i < n; i++) {
		cs[i] =
		    (cl){argv[2], add, keys, i, t0 + (uint64_t) (secs * 1e6),
		         0,       0,   {0}};
		pthread_create(&t[i], NULL, client_main, &cs[i]);
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ops += cs[i].ops;
		errors += cs[i].errors;
		total += cs[i].l.n;
	}
	double el = (double) (now_us() - t0) / 1e6;
	all = malloc((total + 1) * sizeof(*all));
	total = 0;
	for (unsigned i = 0; i < n; i++) {
		memcpy(all + total, cs[i].l.v, cs[i].l.n * sizeof(*all));
		total += cs[i].l.n;
		free(cs[i].l.v);
	}
	printf("{\"ops\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"seconds\":%.3f,\"ops_per_s\":%.0f,\"p50_us\":%u,"
	       "\"p99_us\":%u}\n",
	       ops, errors, el, (double) ops / el, pct(all, total, 0.5),
	       pct(all, total, 0.99));
	free(all);
	free(cs);
	free(t);
	return errors > ops / 100 ? 1 : 0;
}

/* ---- echo ---- */

static void *
echo_main(void *arg)
{
	nng_socket *s = arg;
	nng_msg *m;

	while (nng_recvmsg(*s, &m, 0) == 0) {
		if (nng_sendmsg(*s, m, 0) != 0) {
			nng_msg_free(m);
		}
	}
	return NULL;
}

static int
cmd_echo(int argc, char **argv)
{
	if (argc != 5) {
		return 2;
	}
	double secs = atof(argv[3]);
	size_t bytes = (size_t) atoi(argv[4]);
	nng_socket srv;
	pthread_t th;
	int rv;

	if ((rv = nng_rep0_open(&srv)) != 0 ||
	    (rv = nng_listen(srv, argv[2], NULL, 0)) != 0) {
		die("echo listen", rv);
	}
	pthread_create(&th, NULL, echo_main, &srv);
	nng_socket s = dial(argv[2]);
	uint8_t *buf = calloc(1, bytes);
	lat l = {malloc(SAMPLES_MAX * sizeof(uint32_t)), 0, 0, 1};
	uint64_t t0 = now_us(), end = t0 + (uint64_t) (secs * 1e6), ops = 0;
	while (now_us() < end) {
		nng_msg *m;
		uint64_t a = now_us();
		if (nng_msg_alloc(&m, 0) != 0 ||
		    nng_msg_append(m, buf, bytes) ||
		    nng_sendmsg(s, m, 0) != 0 || nng_recvmsg(s, &m, 0) != 0) {
			die("echo", NNG_EINTERNAL);
		}
		nng_msg_free(m);
		lat_add(&l, now_us() - a);
		ops++;
	}
	double el = (double) (now_us() - t0) / 1e6;
	printf("{\"ops\":%" PRIu64 ",\"seconds\":%.3f,\"ops_per_s\":%.0f,"
	       "\"p50_us\":%u,\"p99_us\":%u}\n",
	       ops, el, (double) ops / el, pct(l.v, l.n, 0.5),
	       pct(l.v, l.n, 0.99));
	nng_close(s);
	nng_close(srv);
	pthread_join(th, NULL);
	free(l.v);
	free(buf);
	return 0;
}

/* ---- load ---- */

static int
cmd_load(int argc, char **argv)
{
	if (argc != 5) {
		return 2;
	}
	unsigned count = (unsigned) atoi(argv[3]);
	unsigned batch = (unsigned) atoi(argv[4]);
	nng_socket s = dial(argv[2]);
	lww_buf b = LWW_BUF_INIT;
	uint8_t val[100];
	char key[17];
	uint64_t t0 = now_us();
	unsigned done = 0;

	if (batch < 1 || batch > LWW_BATCH_ENTRIES_MAX) {
		return 2;
	}
	memset(val, 'v', sizeof(val));
	while (done < count) {
		lww_load_begin(&b);
		for (unsigned i = 0; i < batch && done + i < count; i++) {
			snprintf(key, sizeof(key), "k%015u", done + i);
			lww_entry e = {(const uint8_t *) key,
			               16,
			               val,
			               sizeof(val),
			               0,
			               0,
			               0};
			lww_load_add(&b, &e);
		}
		unsigned n = lww_load_count(&b);
		if (call(s, &b, NULL) != 0) {
			fprintf(stderr, "lwwbench: load refused at %u\n", done);
			return 1;
		}
		done += n;
	}
	double el = (double) (now_us() - t0) / 1e6;
	printf("{\"writes\":%u,\"seconds\":%.3f,\"writes_per_s\":%.0f}\n", done,
	       el, (double) done / el);
	lww_buf_fini(&b);
	nng_close(s);
	return 0;
}

/* ---- lag ---- */

typedef struct lagw {
	const char *url;
	double rate; /* per second, this thread */
	uint64_t start, end;
	_Atomic uint64_t *seq;
	uint64_t written;
} lagw;

static void *
lag_writer(void *arg)
{
	lagw *w = arg;
	nng_socket s = dial(w->url);
	lww_buf b = LWW_BUF_INIT;
	char key[32], val[32];
	uint64_t k = 0;

	while (1) {
		uint64_t now = now_us();
		if (now >= w->end) {
			break;
		}
		/* Pace: the k-th write of this thread is due at start +
		 * k / rate. */
		uint64_t due =
		    w->start + (uint64_t) ((double) k * 1e6 / w->rate);
		if (due > now) {
			nng_msleep((nng_duration) ((due - now) / 1000));
			continue;
		}
		uint64_t id = atomic_fetch_add(w->seq, 1);
		int kl = snprintf(key, sizeof(key), "lag/%012" PRIu64, id);
		int vl = snprintf(val, sizeof(val), "%" PRIu64, wall_us());
		lww_req q = {.op = LWW_OP_ADD,
		             .key = (const uint8_t *) key,
		             .klen = (size_t) kl,
		             .val = (const uint8_t *) val,
		             .vlen = (size_t) vl};
		lww_buf_reset(&b);
		lww_req_encode(&b, &q);
		if (call(s, &b, NULL) == 0) {
			w->written++;
		}
		k++;
	}
	lww_buf_fini(&b);
	nng_close(s);
	return NULL;
}

typedef struct lagr {
	const char *url;
	_Atomic int *stop;
	uint8_t *seen; /* by id */
	uint64_t cap;
	uint64_t nseen;
	uint64_t last_seen_us; /* monotonic, when the last new key showed */
	lat l;
} lagr;

static void *
lag_reader(void *arg)
{
	lagr *r = arg;
	nng_socket s = dial(r->url);
	lww_buf b = LWW_BUF_INIT;
	uint64_t low = 0; /* every id below is seen */
	char after[32];

	while (!atomic_load(r->stop)) {
		lww_req q = {.op = LWW_OP_LIST,
		             .key = (const uint8_t *) "lag/",
		             .klen = 4,
		             .limit = LWW_LIST_LIMIT_MAX};
		nng_msg *m;
		lww_rep rep;
		lww_entry e;
		size_t off = 0;
		int fresh = 0;

		if (low > 0) {
			q.alen = (size_t) snprintf(after, sizeof(after),
			                           "lag/%012" PRIu64, low - 1);
			q.after = (const uint8_t *) after;
		}
		lww_buf_reset(&b);
		lww_req_encode(&b, &q);
		if (call(s, &b, &m) != 0) {
			nng_msleep(1);
			continue;
		}
		uint64_t seen_at = wall_us();
		lww_rep_decode(nng_msg_body(m), nng_msg_len(m), &rep);
		while (lww_entries_next(&rep.entries, &off, &e)) {
			uint64_t id =
			    strtoull((const char *) e.key + 4, NULL, 10);
			if (id >= r->cap || r->seen[id]) {
				continue;
			}
			char tmp[32];
			size_t n = e.vlen < 31 ? e.vlen : 31;
			memcpy(tmp, e.val, n);
			tmp[n] = 0;
			uint64_t sent = strtoull(tmp, NULL, 10);
			r->seen[id] = 1;
			r->nseen++;
			lat_add(&r->l, seen_at > sent ? seen_at - sent : 0);
			fresh = 1;
		}
		nng_msg_free(m);
		while (low < r->cap && r->seen[low]) {
			low++;
		}
		if (fresh) {
			r->last_seen_us = now_us();
		} else {
			nng_msleep(1);
		}
	}
	lww_buf_fini(&b);
	nng_close(s);
	return NULL;
}

static int
cmd_lag(int argc, char **argv)
{
	if (argc < 6) {
		return 2;
	}
	double rate = atof(argv[3]), secs = atof(argv[4]);
	int nr = argc - 5, nw = 64;
	_Atomic uint64_t seq = 0;
	_Atomic int stop = 0;
	uint64_t cap = (uint64_t) (rate * secs * 1.2) + 1000;
	lagw *ws = calloc((size_t) nw, sizeof(*ws));
	lagr *rs = calloc((size_t) nr, sizeof(*rs));
	pthread_t *wt = calloc((size_t) nw, sizeof(*wt));
	pthread_t *rt = calloc((size_t) nr, sizeof(*rt));
	uint64_t start = now_us() + 200000, written = 0;

	for (int i = 0; i < nr; i++) {
		rs[i] = (lagr){argv[5 + i],
		               &stop,
		               calloc(cap, 1),
		               cap,
		               0,
		               0,
		               {malloc(SAMPLES_MAX * sizeof(uint32_t)), 0, 0,
		                (uint64_t) i + 1}};
		pthread_create(&rt[i], NULL, lag_reader, &rs[i]);
	}
	for (int i = 0; i < nw; i++) {
		ws[i] = (lagw){argv[2], rate / nw,
		               start,   start + (uint64_t) (secs * 1e6),
		               &seq,    0};
		pthread_create(&wt[i], NULL, lag_writer, &ws[i]);
	}
	for (int i = 0; i < nw; i++) {
		pthread_join(wt[i], NULL);
		written += ws[i].written;
	}
	uint64_t stopped = now_us();
	/* Wait (at most 30 s) until every reader has every written key. */
	uint64_t total_ids = atomic_load(&seq);
	while (now_us() - stopped < 30000000) {
		int all = 1;
		for (int i = 0; i < nr; i++) {
			all &= rs[i].nseen >= written;
		}
		if (all) {
			break;
		}
		nng_msleep(5);
	}
	uint64_t settled = 0;
	for (int i = 0; i < nr; i++) {
		uint64_t t = rs[i].last_seen_us > stopped
		                 ? rs[i].last_seen_us - stopped
		                 : 0;
		if (t > settled) {
			settled = t;
		}
	}
	atomic_store(&stop, 1);
	size_t tot = 0;
	for (int i = 0; i < nr; i++) {
		pthread_join(rt[i], NULL);
		tot += rs[i].l.n;
	}
	uint32_t *all = malloc((tot + 1) * sizeof(*all));
	size_t k = 0;
	uint64_t missing = 0;
	for (int i = 0; i < nr; i++) {
		memcpy(all + k, rs[i].l.v, rs[i].l.n * sizeof(*all));
		k += rs[i].l.n;
		missing += written > rs[i].nseen ? written - rs[i].nseen : 0;
	}
	printf("{\"written\":%" PRIu64 ",\"attempted\":%" PRIu64
	       ",\"rate_per_s\":%.0f,\"lag_p50_ms\":%.2f,\"lag_p99_ms\":%.2f,"
	       "\"settle_ms\":%.1f,\"missing\":%" PRIu64 "}\n",
	       written, total_ids, (double) written / secs,
	       pct(all, k, 0.5) / 1000.0, pct(all, k, 0.99) / 1000.0,
	       (double) settled / 1000.0, missing);
	for (int i = 0; i < nr; i++) {
		free(rs[i].seen);
		free(rs[i].l.v);
	}
	free(all);
	free(ws);
	free(rs);
	free(wt);
	free(rt);
	return missing ? 1 : 0;
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
		fprintf(stderr, "usage: lwwbench clients URL THREADS SECONDS "
		                "add|lookup KEYS\n"
		                "       lwwbench echo URL SECONDS BYTES\n"
		                "       lwwbench load URL COUNT BATCH\n"
		                "       lwwbench lag WRITE_URL RATE SECONDS "
		                "READ_URL...\n");
	}
	return rv;
}
