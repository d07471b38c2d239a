/*
 * scrub.c - the scrub thread: drops damaged records so that repair
 * replaces them, and checks the whole store once per --scrub-interval.
 * See scrub.h.
 *
 * The pass goes in small steps every TICK_MS: a share of the records in
 * key order (each against its check and its bucket index record), and a
 * share of the 65,536 tree leaves (each against its records), sized so
 * the whole store is covered once per interval. Each step is a short
 * read transaction; only a step that found damage writes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwwd.h"
#include "scrub.h"

#define TICK_MS      100
#define LOG_GAP_MS   10000
#define RETRIGGER_MS 1000 /* a second repair trigger after a fix */

struct lwwd_scrub {
	lwwd *d;
	pthread_mutex_t mtx; /* the queue below */
	lwwd_thr thr;        /* woken by reports and the stop */
	uint8_t queue[LWW_SCRUB_QUEUE_MAX][LWW_KEY_MAX];
	size_t qlen[LWW_SCRUB_QUEUE_MAX];
	int qfull[LWW_SCRUB_QUEUE_MAX]; /* the key itself, not its stored key */
	size_t nq;
	uint64_t retrigger_ms; /* ask repair again then (0: no) */
	/* The pass (scrub thread only). */
	uint8_t after[LWW_STORE_KEY_MAX];
	size_t alen;
	uint32_t leaf;
	int keys_done, leaves_done;
	lwwd_log_limit failed_log; /* scrub_failed lines */
};

void
lwwd_scrub_report(lwwd *d, const uint8_t *key, size_t n, int full)
{
	struct lwwd_scrub *s = d->scrub;
	char kb[LWW_LOG_KEY_MAX];

	atomic_fetch_add(&d->stats.records_damaged, 1);
	lwwd_log(LWWD_LOG_ERROR, "record_damaged",
	         "key=%s%s reason=\"failed its check\" action=\"not served; "
	         "dropping it so that repair fetches a sound copy\"",
	         lwwd_log_key(kb, sizeof(kb), key, n),
	         full ? "" : " (as stored)");
	if (s == NULL || n == 0 ||
	    n > (full ? LWW_KEY_MAX : LWW_STORE_KEY_MAX)) {
		return;
	}
	pthread_mutex_lock(&s->mtx);
	if (!lwwd_thr_stopping(&s->thr) && s->nq < LWW_SCRUB_QUEUE_MAX) {
		memcpy(s->queue[s->nq], key, n);
		s->qlen[s->nq] = n;
		s->qfull[s->nq++] = full;
		lwwd_thr_wake(&s->thr);
	}
	pthread_mutex_unlock(&s->mtx);
}

/* Asks for a repair round now, and once more a second later: repair
 * takes one trigger per half second, so a fix right after another would
 * otherwise wait for the next periodic round. */
static void
ask_repair(struct lwwd_scrub *s)
{
	s->d->hooks.loss(s->d, 0);
	s->retrigger_ms = lwwd_mono_us() / 1000 + RETRIGGER_MS;
}

/* Counts, logs and has repaired what a check found; 1 if it dropped or
 * fixed anything. */
static int
account(struct lwwd_scrub *s, const lww_store_check *r, const char *what)
{
	lwwd *d = s->d;

	atomic_fetch_add(&d->stats.scrub_records, r->records);
	if (r->damaged == 0 && r->index_fixed == 0 && r->tree_fixed == 0) {
		return 0;
	}
	atomic_fetch_add(&d->stats.records_dropped, r->damaged);
	atomic_fetch_add(&d->stats.index_fixed, r->index_fixed);
	atomic_fetch_add(&d->stats.tree_fixed, r->tree_fixed);
	lwwd_log(LWWD_LOG_ERROR, "store_healed",
	         "found=%s dropped=%llu index_fixed=%llu tree_fixed=%llu "
	         "action=\"repair fetches sound copies from peers\"",
	         what, (unsigned long long) r->damaged,
	         (unsigned long long) r->index_fixed,
	         (unsigned long long) r->tree_fixed);
	ask_repair(s);
	return 1;
}

/* A check that LMDB itself could not do (a damaged page): name it. */
static void
check_failed(struct lwwd_scrub *s, lww_err rv, const char *where)
{
	uint64_t skipped;

	if (rv == LWW_ECORRUPT) {
		atomic_fetch_add(&s->d->stats.store_page_errors, 1);
	}
	if (!lwwd_log_due(&s->failed_log, rv, LOG_GAP_MS * 1000, &skipped)) {
		return;
	}
	lwwd_log(LWWD_LOG_ERROR, "scrub_failed", "where=\"%s\" reason=\"%s\"%s",
	         where, lww_strerror(rv),
	         rv == LWW_ECORRUPT
	             ? " action=\"the store file is damaged beyond a record: "
	               "stop lwwd, move --data aside and restart it empty; "
	               "repair refills it from peers\""
	             : "");
}

static void
heal_queued(struct lwwd_scrub *s)
{
	uint8_t key[LWW_KEY_MAX];
	size_t n;
	int full;

	for (;;) {
		lww_store_check r = {0, 0, 0, 0};
		lww_err rv;
		pthread_mutex_lock(&s->mtx);
		if (s->nq == 0 || lwwd_thr_stopping(&s->thr)) {
			pthread_mutex_unlock(&s->mtx);
			return;
		}
		n = s->qlen[--s->nq];
		full = s->qfull[s->nq];
		memcpy(key, s->queue[s->nq], n);
		pthread_mutex_unlock(&s->mtx);
		rv = full ? lww_store_heal_key(s->d->store, key, n, &r)
		          : lww_store_heal(s->d->store, key, n, &r);
		if (rv != LWW_OK) {
			check_failed(s, rv, "record reported by a read");
			continue;
		}
		account(s, &r, "reported by a read");
	}
}

/* One step of the pass, sized so that a pass takes the interval. */
static void
pass_step(struct lwwd_scrub *s)
{
	lwwd *d = s->d;
	uint64_t iv = d->cfg.scrub_interval;
	lww_store_stats st;
	lww_store_check r = {0, 0, 0, 0};
	uint8_t next[LWW_STORE_KEY_MAX];
	size_t nkeys, nleaves, nlen;
	lww_err rv;

	if (lww_store_stats_get(d->store, &st) != LWW_OK) {
		st.entries = 0;
	}
	nkeys = (size_t) (st.entries * TICK_MS / iv) + LWW_SCRUB_STEP_KEYS;
	nleaves = (size_t) ((uint64_t) LWW_STORE_LEAVES * TICK_MS / iv) + 1;
	if (!s->keys_done) {
		rv = lww_store_check_keys(d->store, s->after, s->alen, nkeys,
		                          next, &nlen, &r);
		if (rv != LWW_OK) {
			check_failed(s, rv, "records in key order");
			nlen = 0; /* start over next pass */
		} else {
			account(s, &r, "records in key order");
		}
		memcpy(s->after, next, nlen);
		s->alen = nlen;
		s->keys_done = nlen == 0;
	}
	for (size_t i = 0; i < nleaves && !s->leaves_done; i++) {
		memset(&r, 0, sizeof(r));
		if ((rv = lww_store_check_leaf(d->store, s->leaf, &r)) !=
		    LWW_OK) {
			check_failed(s, rv, "hash tree leaves");
		} else {
			account(s, &r, "hash tree leaf");
		}
		s->leaf = (s->leaf + 1) % LWW_STORE_LEAVES;
		s->leaves_done = s->leaf == 0;
	}
	if (s->keys_done && s->leaves_done) {
		atomic_fetch_add(&d->stats.scrub_passes, 1);
		lwwd_log(
		    LWWD_LOG_DEBUG, "scrub_pass", "records=%llu",
		    (unsigned long long) atomic_load(&d->stats.scrub_records));
		s->keys_done = s->leaves_done = 0;
	}
}

static void *
scrub_main(void *arg)
{
	struct lwwd_scrub *s = arg;
	uint64_t next = lwwd_mono_us() + TICK_MS * 1000;

	for (;;) {
		heal_queued(s);
		pthread_mutex_lock(&s->mtx);
		while (!lwwd_thr_stopping(&s->thr) && s->nq == 0 &&
		       lwwd_mono_us() < next) {
			(void) lwwd_thr_wait(&s->thr, next);
		}
		if (lwwd_thr_stopping(&s->thr)) {
			pthread_mutex_unlock(&s->mtx);
			return NULL;
		}
		pthread_mutex_unlock(&s->mtx);
		if (lwwd_mono_us() >= next) {
			if (s->d->cfg.scrub_interval != 0) {
				pass_step(s);
			}
			if (s->retrigger_ms != 0 &&
			    lwwd_mono_us() / 1000 >= s->retrigger_ms) {
				s->d->hooks.loss(s->d, 0);
				s->retrigger_ms = 0;
			}
			next = lwwd_mono_us() + TICK_MS * 1000;
		}
	}
}

int
lwwd_scrub_start(lwwd *d)
{
	struct lwwd_scrub *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		fprintf(stderr, "lwwd: out of memory\n");
		return -1;
	}
	s->d = d;
	pthread_mutex_init(&s->mtx, NULL);
	if (lwwd_thr_start(&s->thr, &s->mtx, scrub_main, s) != 0) {
		fprintf(stderr, "lwwd: cannot start the scrub thread\n");
		lwwd_thr_fini(&s->thr);
		pthread_mutex_destroy(&s->mtx);
		free(s);
		return -1;
	}
	d->scrub = s;
	return 0;
}

void
lwwd_scrub_stop(lwwd *d)
{
	struct lwwd_scrub *s = d->scrub;

	if (s == NULL) {
		return;
	}
	lwwd_thr_stop(&s->thr); /* reports are refused from here on */
}

void
lwwd_scrub_free(lwwd *d)
{
	struct lwwd_scrub *s = d->scrub;

	if (s == NULL) {
		return;
	}
	d->scrub = NULL;
	lwwd_thr_fini(&s->thr);
	pthread_mutex_destroy(&s->mtx);
	free(s);
}
