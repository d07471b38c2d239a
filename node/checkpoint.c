/*
 * checkpoint.c - moving what the write-ahead log holds into the store.
 *
 * The writer appends to one log segment (--data/wal-NNNNNNNNNNNNNNNN) and
 * merges the same entries into the active in-memory generation (mem.c).
 * From time to time, between groups, it freezes that generation, starts a
 * new segment, and hands both to the checkpointer thread, which applies
 * the generation to LMDB in one transaction, makes it durable, forgets
 * the generation and only then removes the segment. So at every moment
 * each acknowledged write is in a synced segment, in the store, or both;
 * after a crash, start-up replays the segments left (merging is
 * idempotent, so records the store already holds change nothing).
 *
 * When: once the writer has been idle for a moment (writer.c), else
 * every CKPT_EVERY_MS or CKPT_ENTRIES entries, sooner when a reader
 * waits (lwwd_wal_barrier). Few, large checkpoints: each costs the
 * store's two fsyncs, which queue with the log's in the file system. A
 * checkpoint that fails (store full, I/O error) keeps its segment and
 * generation, is retried every second, and until one succeeds the writer
 * refuses new writes with its error.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lwwd.h"

#define CKPT_EVERY_MS    1000
#define CKPT_ENTRIES     65536
#define CKPT_TXN_ENTRIES 4096
#define MEM_ENTRIES_MAX  (1u << 18)
#define MEM_BYTES_MAX    ((size_t) 256 << 20)
#define BARRIER_MAX_MS   3000
#define WAL_PREFIX       "wal-"
#define WAL_NAME_LEN     (sizeof(WAL_PREFIX) - 1 + 16)

static char *
segment_path(const lwwd *d, uint64_t n)
{
	size_t len = strlen(d->cfg.data) + WAL_NAME_LEN + 2;
	char *p = malloc(len);

	if (p != NULL) {
		snprintf(p, len, "%s/" WAL_PREFIX "%016llx", d->cfg.data,
		         (unsigned long long) n);
	}
	return p;
}

/* ---- start-up ---- */

typedef struct replay {
	lwwd *d;
	lww_txn *t;
	uint64_t entries;
} replay;

/* One record: a batch message, then its origin (u64le). */
static lww_err
replay_record(const uint8_t *p, size_t n, void *arg)
{
	replay *r = arg;
	lww_batch b;
	lww_entry e;
	size_t off = 0;
	uint64_t origin;
	lww_err rv;

	if (n < 8) {
		return LWW_ECORRUPT;
	}
	origin = lww_get_u64le(p + n - 8);
	if (lww_batch_decode(p, n - 8, &b) != LWW_OK) {
		return LWW_ECORRUPT;
	}
	while (lww_entries_next(&b.entries, &off, &e)) {
		if ((rv = lww_txn_apply(r->t, &e, NULL)) != LWW_OK) {
			return rv;
		}
		r->entries++;
	}
	if (b.seq > 0 && origin != 0) {
		return lww_txn_set_seq(r->t, origin, b.seq);
	}
	return LWW_OK;
}

static int
segment_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The names of the segments in --data, sorted (oldest first). */
static char **
list_segments(const lwwd *d, size_t *count)
{
	DIR *dir = opendir(d->cfg.data);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;

	*count = 0;
	if (dir == NULL) {
		return NULL;
	}
	while ((de = readdir(dir)) != NULL) {
		const char *x = de->d_name;
		if (strlen(x) != WAL_NAME_LEN ||
		    strncmp(x, WAL_PREFIX, sizeof(WAL_PREFIX) - 1) != 0 ||
		    strspn(x + sizeof(WAL_PREFIX) - 1, "0123456789abcdef") !=
		        16) {
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (nn == NULL) {
				break;
			}
			names = nn;
		}
		if ((names[n] = strdup(x)) != NULL) {
			n++;
		}
	}
	closedir(dir);
	if (n > 0) {
		qsort(names, n, sizeof(*names), segment_cmp);
	}
	*count = n;
	return names;
}

/* Applies one segment left by a previous run to the store, durably, and
 * removes it. Prints why and returns -1 on error. */
static int
replay_segment(lwwd *d, uint64_t num)
{
	char *path = segment_path(d, num);
	const char *name;
	replay r = {d, NULL, 0};
	lww_wal_info info = {0, 0};
	lww_err rv;
	int rc = -1;

	if (path == NULL) {
		fprintf(stderr, "lwwd: out of memory\n");
		return -1;
	}
	name = strrchr(path, '/') + 1;
	if ((rv = lww_store_begin(d->store, &r.t)) == LWW_OK) {
		rv = lww_wal_replay(path, replay_record, &r, &info);
		if (rv == LWW_OK) {
			rv = lww_txn_commit(r.t);
		} else {
			lww_txn_abort(r.t);
		}
	}
	if (rv == LWW_OK) {
		rv = lww_store_sync(d->store);
	}
	if (rv != LWW_OK) {
		fprintf(stderr, "lwwd: cannot apply write-ahead log %s: %s%s\n",
		        path, lww_strerror(rv),
		        rv == LWW_EFULL ? " (raise --map-size; the log "
		                          "keeps the writes)"
		                        : "");
		goto out;
	}
	lwwd_log(LWWD_LOG_INFO, "wal_replayed",
	         "segment=%s records=%llu entries=%llu ignored_bytes=%llu",
	         name, (unsigned long long) info.records,
	         (unsigned long long) r.entries,
	         (unsigned long long) info.ignored);
	if (info.ignored > 0) {
		lwwd_log(
		    LWWD_LOG_WARN, "wal_torn_tail",
		    "segment=%s ignored_bytes=%llu (a write cut short by a "
		    "crash; it was never acknowledged)",
		    name, (unsigned long long) info.ignored);
	}
	if (unlink(path) != 0) {
		fprintf(stderr, "lwwd: cannot remove %s: %s\n", path,
		        strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(path);
	return rc;
}

int
lwwd_wal_recover(lwwd *d)
{
	size_t n;
	char **names = list_segments(d, &n);
	lww_err rv;
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t num =
		    strtoull(names[i] + sizeof(WAL_PREFIX) - 1, NULL, 16);
		if (num >= d->wal_next) {
			d->wal_next = num + 1;
		}
		rc = replay_segment(d, num);
	}
	for (size_t i = 0; i < n; i++) {
		free(names[i]);
	}
	free(names);
	if (rc != 0) {
		return -1;
	}
	if ((d->wal_path = segment_path(d, d->wal_next)) == NULL) {
		fprintf(stderr, "lwwd: out of memory\n");
		return -1;
	}
	if ((rv = lww_wal_create(d->wal_path, &d->wal)) != LWW_OK) {
		fprintf(stderr, "lwwd: cannot create write-ahead log %s: %s\n",
		        d->wal_path, lww_strerror(rv));
		return -1;
	}
	d->wal_next++;
	d->mem_gen = 1;
	return 0;
}

/* ---- the checkpointer ---- */

typedef struct ckpt_acc {
	lwwd *d;
	lww_txn *t; /* NULL after a failed commit */
	uint64_t n;
} ckpt_acc;

static lww_err
apply_cb(const lww_entry *e, void *arg)
{
	ckpt_acc *a = arg;
	lww_err rv;

	/* Transactions of bounded size: LMDB can reuse the pages one frees
	 * only two commits later, so one huge transaction would grow the
	 * file by a copy of every page it touches. Each commit syncs its
	 * data (the root's sync can wait: see store.h, defer_meta); a crash
	 * midway leaves a prefix applied, and replay merges the rest. */
	if (a->n > 0 && a->n % CKPT_TXN_ENTRIES == 0) {
		rv = lww_txn_commit(a->t);
		a->t = NULL;
		atomic_fetch_add(&a->d->stats.commits, 1);
		if (rv != LWW_OK ||
		    (rv = lww_store_begin(a->d->store, &a->t)) != LWW_OK) {
			return rv;
		}
	}
	a->n++;
	return lww_txn_apply(a->t, e, NULL);
}

static lww_err
seq_cb(uint64_t node, uint64_t seq, void *arg)
{
	ckpt_acc *a = arg;
	return lww_txn_set_seq(a->t, node, seq);
}

/* Applies the frozen generation to the store, durably. */
static lww_err
checkpoint(lwwd *d, uint64_t *entries)
{
	ckpt_acc a = {d, NULL, 0};
	lww_err rv;

	if ((rv = lww_store_begin(d->store, &a.t)) != LWW_OK) {
		return rv;
	}
	if ((rv = lwwd_mem_frozen_each(d, apply_cb, seq_cb, &a)) != LWW_OK) {
		lww_txn_abort(a.t); /* accepts NULL */
		return rv;
	}
	*entries = a.n;
	rv = lww_txn_commit(a.t);
	atomic_fetch_add(&d->stats.commits, 1);
	if (rv == LWW_OK && d->cfg.fsync_always) {
		/* The root too: the segment goes once this returns. */
		rv = lww_store_sync(d->store);
	}
	return rv;
}

static void *
ckpt_main(void *arg)
{
	lwwd *d = arg;

	pthread_mutex_lock(&d->mtx);
	for (;;) {
		uint64_t t0, us, n = 0;
		char *path;
		lww_err rv;

		while (!d->ckpt_ready && !d->ckpt_stopping) {
			pthread_cond_wait(&d->ckpt_cv, &d->mtx);
		}
		if (!d->ckpt_ready) {
			break;
		}
		path = d->ckpt_path;
		pthread_mutex_unlock(&d->mtx);

		t0 = lwwd_mono_us();
		rv = checkpoint(d, &n);
		us = lwwd_mono_us() - t0;
		if (rv == LWW_OK) {
			lwwd_mem_drop_frozen(d);
			if (unlink(path) != 0 && errno != ENOENT) {
				lwwd_log(LWWD_LOG_WARN, "wal_remove_failed",
				         "path=%s reason=\"%s\" (replayed, "
				         "harmlessly, at the next start)",
				         path, strerror(errno));
			}
			atomic_fetch_add(&d->stats.checkpoints, 1);
			atomic_fetch_add(&d->stats.checkpoint_entries, n);
			lwwd_stat_max(&d->stats.checkpoint_us_max, us);
		} else {
			atomic_fetch_add(&d->stats.checkpoints_failed, 1);
			lwwd_log(LWWD_LOG_ERROR, "checkpoint_failed",
			         "reason=\"%s\" segment=%s (writes are refused "
			         "until it succeeds; the log keeps them)%s",
			         lww_strerror(rv), path,
			         rv == LWW_EFULL ? "; raise --map-size" : "");
		}

		pthread_mutex_lock(&d->mtx);
		if (rv == LWW_OK) {
			free(d->ckpt_path);
			d->ckpt_path = NULL;
			d->ckpt_ready = 0;
			d->ckpt_done = d->mem_gen - 1;
			d->ckpt_err = LWW_OK;
			/* Readers waiting, and the writer if it has more. */
			pthread_cond_broadcast(&d->ckpt_cv);
			pthread_cond_broadcast(&d->cv);
		} else {
			d->ckpt_err = rv;
			if (!d->ckpt_stopping) {
				lwwd_cond_wait_until(&d->ckpt_cv, &d->mtx,
				                     lwwd_mono_us() + 1000000);
			}
			if (d->ckpt_stopping) {
				break;
			}
		}
	}
	pthread_mutex_unlock(&d->mtx);
	return NULL;
}

int
lwwd_ckpt_start(lwwd *d)
{
	if (pthread_create(&d->ckpt, NULL, ckpt_main, d) != 0) {
		return -1;
	}
	d->ckpt_started = 1;
	d->ckpt_last_us = lwwd_mono_us();
	return 0;
}

/* Writer: freezes the active generation onto a new segment and hands the
 * old segment to the checkpointer, which must be idle. */
static void
rotate(lwwd *d)
{
	struct lww_wal *old = d->wal, *nw;
	char *path = segment_path(d, d->wal_next), *oldpath = d->wal_path;
	lww_err rv;

	if (path == NULL) {
		return;
	}
	/* The new segment first: if it cannot be made, nothing changes. */
	if ((rv = lww_wal_create(path, &nw)) != LWW_OK) {
		lwwd_log(LWWD_LOG_ERROR, "wal_create_failed",
		         "path=%s reason=\"%s\"", path, lww_strerror(rv));
		free(path);
		return;
	}
	d->wal_next++;
	/* The syncer must be done with the old segment. */
	pthread_mutex_lock(&d->mtx);
	while (d->sync_head != NULL || d->syncing) {
		pthread_cond_wait(&d->sync_idle_cv, &d->mtx);
	}
	if (lwwd_mem_freeze(d) != 0) {
		pthread_mutex_unlock(&d->mtx);
		/* Not reached: the checkpointer was idle. Keep the old. */
		lww_wal_close(nw);
		unlink(path);
		free(path);
		return;
	}
	d->wal = nw;
	d->wal_path = path;
	d->mem_dirty = 0;
	d->ckpt_path = oldpath;
	d->ckpt_ready = 1;
	d->ckpt_wanted = 0;
	d->mem_gen++;
	pthread_cond_broadcast(&d->ckpt_cv);
	pthread_mutex_unlock(&d->mtx);
	lww_wal_close(old);
	d->ckpt_last_us = lwwd_mono_us();
}

void
lwwd_ckpt_maybe(lwwd *d, int idle)
{
	size_t bytes, n;
	int busy, wanted;

	if (!d->mem_dirty) {
		return;
	}
	n = lwwd_mem_active(d, &bytes);
	pthread_mutex_lock(&d->mtx);
	busy = d->ckpt_ready;
	if (busy && (n >= MEM_ENTRIES_MAX || bytes >= MEM_BYTES_MAX)) {
		/* Memory bound: wait for the checkpoint under way. */
		atomic_fetch_add(&d->stats.checkpoint_waits, 1);
		while (d->ckpt_ready && d->ckpt_err == LWW_OK &&
		       !d->ckpt_stopping) {
			pthread_cond_wait(&d->ckpt_cv, &d->mtx);
		}
		busy = d->ckpt_ready;
	}
	wanted = d->ckpt_wanted;
	pthread_mutex_unlock(&d->mtx);
	if (busy) {
		return;
	}
	if (!idle && !wanted && n < CKPT_ENTRIES &&
	    lwwd_mono_us() - d->ckpt_last_us < CKPT_EVERY_MS * 1000) {
		return;
	}
	rotate(d);
}

void
lwwd_wal_barrier(lwwd *d)
{
	uint64_t want, due;

	pthread_mutex_lock(&d->mtx);
	if (d->ckpt_err != LWW_OK) {
		/* Checkpoints fail (store full): do not wait for one. */
		pthread_mutex_unlock(&d->mtx);
		return;
	}
	if (d->mem_dirty) {
		/* The active generation, so first ask the writer to freeze
		 * it. (mem_dirty is the writer's; a stale read only makes
		 * this wait for one more checkpoint, or none.) */
		want = d->mem_gen;
		d->ckpt_wanted = 1;
		pthread_cond_signal(&d->cv);
	} else if (d->ckpt_ready) {
		want = d->mem_gen - 1;
	} else {
		pthread_mutex_unlock(&d->mtx);
		return;
	}
	due = lwwd_mono_us() + BARRIER_MAX_MS * 1000;
	while (d->ckpt_done < want && d->ckpt_err == LWW_OK &&
	       !d->ckpt_stopping && !d->stopping) {
		if (lwwd_cond_wait_until(&d->ckpt_cv, &d->mtx, due) != 0) {
			break; /* answer from the store as it is */
		}
	}
	pthread_mutex_unlock(&d->mtx);
}

void
lwwd_ckpt_stop(lwwd *d)
{
	/* Everything still logged goes into the store now, so that a clean
	 * stop leaves no segment behind. */
	if (d->wal != NULL && d->mem_dirty) {
		pthread_mutex_lock(&d->mtx);
		while (d->ckpt_ready && d->ckpt_err == LWW_OK) {
			pthread_cond_wait(&d->ckpt_cv, &d->mtx);
		}
		pthread_mutex_unlock(&d->mtx);
		if (!d->ckpt_ready) {
			rotate(d);
		}
	}
	pthread_mutex_lock(&d->mtx);
	while (d->ckpt_ready && d->ckpt_err == LWW_OK) {
		pthread_cond_wait(&d->ckpt_cv, &d->mtx);
	}
	d->ckpt_stopping = 1;
	pthread_cond_broadcast(&d->ckpt_cv);
	pthread_mutex_unlock(&d->mtx);
	if (d->ckpt_started) {
		pthread_join(d->ckpt, NULL);
		d->ckpt_started = 0;
	}
	if (d->wal != NULL) {
		lww_wal_close(d->wal);
		d->wal = NULL;
		/* Empty unless a checkpoint failed: then start-up replays. */
		if (!d->mem_dirty && !d->ckpt_ready) {
			unlink(d->wal_path);
		}
	}
	free(d->wal_path);
	free(d->ckpt_path);
	d->wal_path = d->ckpt_path = NULL;
}
