/*
 * checkpoint.c - moving what the write-ahead log holds into the store.
 *
 * The writer appends to one log segment (--data/wal-NNNNNNNNNNNNNNNN) and
 * merges the same entries into the active in-memory generation (mem.h).
 * From time to time, between groups, it freezes that generation, starts a
 * new segment, and hands the old one to the checkpointer thread through
 * the frozen hook (lwwd_ckpt_submit, wired in main.c), which applies
 * the generation to LMDB in key order, in transactions of at most
 * LWW_CKPT_TXN_ENTRIES entries (a crash midway leaves a prefix applied;
 * replay merges the rest), forgets the generation and only then removes
 * the segment. With --fsync always each commit syncs its data and the
 * last one's root is synced before the segment goes, so at every moment
 * each acknowledged write is in a synced segment, in the store, or both;
 * with --fsync none nothing is synced, and a crash may lose recent writes.
 * After a crash, start-up replays the segments left (merging is
 * idempotent, so records the store already holds change nothing).
 *
 * When is the writer's choice (writer.c): once it has been idle for a
 * moment, else every second or LWW_CKPT_ENTRIES entries, sooner when a
 * reader waits (lwwd_wal_barrier). Few, large checkpoints: each costs the
 * store's fsyncs (one per transaction, one for the root), which queue
 * with the log's in the file system. A
 * checkpoint that fails (store full, I/O error) keeps its segment and
 * generation, is retried every second, and until one succeeds the writer
 * refuses new writes with its error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lwwd.h"

#define BARRIER_MAX_MS 3000
#define WAL_PREFIX     "wal-"
#define WAL_NAME_LEN   (sizeof(WAL_PREFIX) - 1 + 16)

char *
lwwd_wal_segment_path(const lwwd *d, uint64_t n)
{
	size_t len = strlen(d->cfg.data) + WAL_NAME_LEN + 2;
	char *p = malloc(len);

	if (p != NULL) {
		snprintf(p, len, "%s/" WAL_PREFIX "%016llx", d->cfg.data,
		         (unsigned long long) n);
	}
	return p;
}

/* A segment start-up could not apply (the store or the disk is full):
 * the frozen generation holds its records until a checkpoint puts them
 * into the store, then it is removed, or moved aside if it was damaged. */
struct lwwd_leftover {
	char *path;
	int damaged;
};

struct lwwd_ckpt {
	/* Logged, not yet in the store (mem.h; its own lock). Set before
	 * any thread runs, freed after they all stopped. */
	lwwd_mem *mem;
	/* Under d->mtx. */
	uint64_t gen;  /* number of the active generation */
	uint64_t done; /* last generation the store holds */
	int ready;     /* a frozen generation waits or is applied */
	char *segment; /* its segment, removed once it is applied */
	/* Segments start-up could not apply (store or disk full), frozen
	 * with that generation (segment NULL), and how many. Set by
	 * start-up, then the checkpointer's. */
	struct lwwd_leftover *left;
	size_t nleft;
	/* What start-up's replay found, before any thread runs. */
	int wal_repair;    /* it skipped or dropped log records */
	uint64_t wal_hlc;  /* greatest stamp held, not stored */
	uint64_t wal_seq;  /* greatest own batch seq held */
	lww_err err;       /* under d->mtx: the last checkpoint failed so */
	lwwd_thr thr;      /* on d->mtx: woken by a frozen generation, stop */
	pthread_cond_t cv; /* on d->mtx, readers: a checkpoint done or
	                      failed */
};

int
lwwd_ckpt_alloc(lwwd *d)
{
	lwwd_ckpt *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		return -1;
	}
	if ((c->mem = lwwd_mem_alloc()) == NULL) {
		free(c);
		return -1;
	}
	lwwd_thr_init(&c->thr, &d->mtx);
	lwwd_cond_init(&c->cv);
	d->ckpt = c;
	return 0;
}

void
lwwd_ckpt_free(lwwd *d)
{
	lwwd_ckpt *c = d->ckpt;

	if (c == NULL) {
		return;
	}
	lwwd_thr_fini(&c->thr);
	pthread_cond_destroy(&c->cv);
	/* The segment and leftovers went with lwwd_ckpt_stop. */
	lwwd_mem_free(c->mem);
	free(c);
	d->ckpt = NULL;
}

lwwd_mem *
lwwd_ckpt_mem(lwwd *d)
{
	return d->ckpt->mem;
}

int
lwwd_wal_recovered(lwwd *d, uint64_t *hlc, uint64_t *seq)
{
	if (hlc != NULL) {
		*hlc = d->ckpt->wal_hlc;
	}
	if (seq != NULL) {
		*seq = d->ckpt->wal_seq;
	}
	return d->ckpt->wal_repair;
}

/* ---- start-up ---- */

typedef struct replay {
	lwwd *d;
	lww_txn *t; /* NULL: into the active generation instead */
	lww_buf vb;
	uint64_t entries;
	lww_err store_err; /* the store's own error, not the record's */
} replay;

/* One entry into the active generation, if it beats the store's. */
static lww_err
replay_mem(replay *r, const lww_entry *e)
{
	lwwd_ckpt *c = r->d->ckpt;
	lww_entry cur;
	lww_err rv = lww_store_get(r->d->store, e->key, e->klen, &r->vb, &cur);

	if (rv == LWW_OK && !lww_entry_wins(e, &cur)) {
		return LWW_OK;
	}
	if (rv != LWW_OK && rv != LWW_ENOTFOUND) {
		return rv;
	}
	/* The store does not have this stamp yet: the clock must not
	 * restart below it (main.c), whoever made it, as the writer
	 * observes remote stamps. */
	if (e->hlc > c->wal_hlc) {
		c->wal_hlc = e->hlc;
	}
	return lwwd_mem_put(c->mem, e);
}

/* One record: a batch message, then its origin (u64le). */
static lww_err
replay_record(const uint8_t *p, size_t n, void *arg)
{
	replay *r = arg;
	lwwd_ckpt *c = r->d->ckpt;
	lww_batch b;
	lww_entry e;
	size_t off = 0;
	uint64_t origin;
	lww_err rv;

	/* Not a batch: damage its check could not see (the log says
	 * LWW_ECORRUPT; skip-damaged skips it). */
	if (n < 8) {
		return LWW_ECORRUPT;
	}
	origin = lww_get_u64le(p + n - 8);
	if (lww_batch_decode(p, n - 8, &b) != LWW_OK) {
		return LWW_ECORRUPT;
	}
	while (lww_entries_next(&b.entries, &off, &e)) {
		rv = r->t != NULL ? lww_txn_apply(r->t, &e, NULL)
		                  : replay_mem(r, &e);
		if (rv != LWW_OK) {
			goto store_err;
		}
		r->entries++;
	}
	if (b.seq > 0 && origin != 0) {
		if (r->t != NULL) {
			rv = lww_txn_set_seq(r->t, origin, b.seq);
			goto store_err;
		}
		if (origin == r->d->self && b.seq > c->wal_seq) {
			c->wal_seq = b.seq; /* nor the batch sequence */
		}
		rv = lwwd_mem_note_seq(c->mem, origin, b.seq);
		goto store_err;
	}
	return LWW_OK;
store_err:
	/* The store's LWW_ECORRUPT must not pass for the log's damage. */
	if (rv == LWW_ECORRUPT) {
		r->store_err = rv;
		rv = LWW_EIO;
	}
	return rv;
}

static int
segment_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(names[i]);
	}
	free(names);
}

/* The names of the segments in --data, sorted (oldest first), in
 * *out (*count of them). All or nothing: a partial list would skip
 * acknowledged writes, so an error prints why and returns -1. */
static int
list_segments(const lwwd *d, char ***out, size_t *count)
{
	DIR *dir = opendir(d->cfg.data);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int e = 0;

	*out = NULL;
	*count = 0;
	if (dir == NULL) {
		fprintf(stderr,
		        "lwwd: cannot list the write-ahead log in %s: %s (is "
		        "--data readable?)\n",
		        d->cfg.data, strerror(errno));
		return -1;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(dir)) == NULL) {
			e = errno;
			break;
		}
		const char *x = de->d_name;
		if (strlen(x) != WAL_NAME_LEN ||
		    strncmp(x, WAL_PREFIX, sizeof(WAL_PREFIX) - 1) != 0 ||
		    strspn(x + sizeof(WAL_PREFIX) - 1, "0123456789abcdef") !=
		        16) {
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char **nn = realloc(names, ncap * sizeof(*nn));
			if (nn == NULL) {
				e = ENOMEM;
				break;
			}
			names = nn;
			cap = ncap;
		}
		if ((names[n] = strdup(x)) == NULL) {
			e = ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	if (e != 0) {
		fprintf(stderr,
		        "lwwd: cannot list the write-ahead log in %s: %s\n",
		        d->cfg.data, strerror(e));
		free_names(names, n);
		return -1;
	}
	if (n > 0) {
		qsort(names, n, sizeof(*names), segment_cmp);
	}
	*out = names;
	*count = n;
	return 0;
}

/* Makes the directory entries of --data durable. */
static int
sync_data_dir(const lwwd *d)
{
	int fd = open(d->cfg.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0) {
		return -1;
	}
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Removes a segment whose records the store holds now; a damaged one is
 * moved aside instead (PATH.damaged, or .damaged.N if that exists), for
 * the operator to look at. Logs a failure: the segment is then applied
 * again, harmlessly, at the next start. */
static void
retire_segment(lwwd *d, const char *path, int damaged)
{
	char aside[PATH_MAX];
	int rc = -1;

	if (!damaged) {
		if (unlink(path) != 0 && errno != ENOENT) {
			lwwd_log(LWWD_LOG_WARN, "wal_remove_failed",
			         "path=%s reason=\"%s\" (replayed, "
			         "harmlessly, at the next start)",
			         path, strerror(errno));
		}
		return;
	}
	for (int i = 0; i < LWW_WAL_DAMAGED_KEPT_MAX && rc != 0; i++) {
		if (i == 0) {
			snprintf(aside, sizeof(aside), "%s.damaged", path);
		} else {
			snprintf(aside, sizeof(aside), "%s.damaged.%d", path,
			         i);
		}
		/* link(2) never replaces an existing name, as rename(2)
		 * would: an earlier .damaged file stays as it was. */
		if ((rc = link(path, aside)) != 0) {
			if (errno == EEXIST) {
				continue;
			}
			break;
		}
		if ((rc = unlink(path)) != 0) {
			int e = errno;
			unlink(aside);
			errno = e;
			break;
		}
	}
	if (rc != 0 || sync_data_dir(d) != 0) {
		lwwd_log(LWWD_LOG_WARN, "wal_move_aside_failed",
		         "path=%s reason=\"%s\" (it stays; the next start "
		         "finds the damage again)",
		         path, strerror(errno));
		return;
	}
	lwwd_log(LWWD_LOG_WARN, "wal_moved_aside",
	         "path=%s to=%s (its whole records are in the store; "
	         "kept as it was, for inspection: delete it when done)",
	         path, aside);
}

static int
is_capacity(lww_err rv)
{
	return rv == LWW_ENOSPC || rv == LWW_EFULL;
}

/* Applies one segment left by a previous run to the store, durably, and
 * retires it; or, with into_mem (an earlier one could not be applied),
 * or if the store or disk is full, merges it into the active generation
 * and keeps it (1). Prints why and returns -1 on an error that stops
 * the start. */
static int
replay_segment(lwwd *d, uint64_t num, int into_mem, int applied_before,
               lww_err *cap_err)
{
	lwwd_ckpt *c = d->ckpt;
	char *path = lwwd_wal_segment_path(d, num);
	const char *name;
	replay r = {d, NULL, LWW_BUF_INIT, 0, LWW_OK};
	lww_wal_info info;
	unsigned flags = d->cfg.wal_skip_damaged ? LWW_WAL_SKIP_DAMAGED : 0;
	lww_err rv = LWW_OK;
	int rc = -1;

	if (path == NULL) {
		fprintf(stderr, "lwwd: out of memory\n");
		return -1;
	}
	memset(&info, 0, sizeof(info));
	name = strrchr(path, '/') + 1;
	if (!into_mem) {
		if ((rv = lww_store_begin(d->store, &r.t)) == LWW_OK) {
			rv = lww_wal_replay(path, flags, replay_record, &r,
			                    &info);
			if (rv == LWW_OK) {
				rv = lww_txn_commit(r.t);
			} else {
				lww_txn_abort(r.t);
			}
			r.t = NULL;
		}
		if (rv == LWW_OK) {
			rv = lww_store_sync(d->store);
		}
	}
	if (into_mem || is_capacity(rv)) {
		if (!into_mem) {
			*cap_err = rv;
			lwwd_log(LWWD_LOG_ERROR, "wal_not_applied",
			         "segment=%s reason=\"%s\" (kept, and read "
			         "from memory; writes are refused until a "
			         "checkpoint succeeds)",
			         name, lww_strerror(rv));
		}
		r.entries = 0;
		r.store_err = LWW_OK;
		rv = lww_wal_replay(path, flags, replay_record, &r, &info);
		into_mem = 1;
	}
	if (r.store_err != LWW_OK) {
		rv = r.store_err; /* the store's, not the log's */
		info.damaged = 0;
	}
	if (rv == LWW_ECORRUPT && info.damaged) {
		fprintf(stderr,
		        "lwwd: write-ahead log %s is damaged at byte %llu "
		        "(%llu bytes), before records that may have been "
		        "acknowledged; %s. Either restore "
		        "--data from a backup, or start once with "
		        "--wal-recovery skip-damaged: it skips the damaged "
		        "record, keeps the rest, moves the segment aside, and "
		        "repair fetches what was lost from the peers\n",
		        path, (unsigned long long) info.damaged_at,
		        (unsigned long long) info.damaged_bytes,
		        applied_before
		            ? "the older segments before it were applied to "
		              "the store and removed (they were whole), this "
		              "one and the later ones are unchanged"
		            : "nothing was changed");
		goto out;
	}
	if (rv != LWW_OK) {
		fprintf(stderr, "lwwd: cannot apply write-ahead log %s: %s%s\n",
		        path, lww_strerror(rv),
		        rv == LWW_EFULL ? " (raise --map-size; the log "
		                          "keeps the writes)"
		        : rv == LWW_ENOSPC
		            ? " (free space on the file system "
		              "holding --data; the log keeps the "
		              "writes)"
		            : "");
		goto out;
	}
	lwwd_log(LWWD_LOG_INFO, into_mem ? "wal_held" : "wal_replayed",
	         "segment=%s records=%llu entries=%llu ignored_bytes=%llu",
	         name, (unsigned long long) info.records,
	         (unsigned long long) r.entries,
	         (unsigned long long) info.ignored);
	if (info.ignored > 0) {
		/* A crash's torn tail, or damage in the last synced record:
		 * the two look alike. Repair fetches it if it was the
		 * latter (and a peer has it). */
		c->wal_repair = 1;
		lwwd_log(LWWD_LOG_WARN, "wal_torn_tail",
		         "segment=%s ignored_bytes=%llu (a write cut short by "
		         "a crash before its sync, so not acknowledged, or "
		         "damaged: repair fetches it if a peer has it)",
		         name, (unsigned long long) info.ignored);
	}
	if (info.damaged) {
		c->wal_repair = 1;
		lwwd_log(LWWD_LOG_WARN, "wal_damage_skipped",
		         "segment=%s offset=%llu stretches=%llu bytes=%llu "
		         "(--wal-recovery skip-damaged; repair fetches the "
		         "lost writes from the peers)",
		         name, (unsigned long long) info.damaged_at,
		         (unsigned long long) info.damaged,
		         (unsigned long long) info.damaged_bytes);
	}
	if (into_mem) {
		struct lwwd_leftover *l =
		    realloc(c->left, (c->nleft + 1) * sizeof(*l));
		if (l == NULL) {
			fprintf(stderr, "lwwd: out of memory\n");
			goto out;
		}
		c->left = l;
		l[c->nleft].path = path;
		l[c->nleft].damaged = info.damaged > 0;
		c->nleft++;
		path = NULL;
		rc = 1;
		goto out;
	}
	retire_segment(d, path, info.damaged > 0);
	rc = 0;
out:
	lww_buf_fini(&r.vb);
	free(path);
	return rc;
}

int
lwwd_wal_recover(lwwd *d)
{
	lwwd_ckpt *c = d->ckpt;
	size_t n;
	char **names;
	lww_err rv, cap_err = LWW_OK;
	uint64_t next = 0; /* the number of the first new segment */
	int rc = 0, into_mem = 0, applied = 0;

	if (list_segments(d, &names, &n) != 0) {
		return -1;
	}
	for (size_t i = 0; i < n && rc >= 0; i++) {
		uint64_t num =
		    strtoull(names[i] + sizeof(WAL_PREFIX) - 1, NULL, 16);
		if (num >= next) {
			next = num + 1;
		}
		/* Once one cannot be applied, the later ones (newer writes)
		 * are held in memory with it, in order. */
		rc = replay_segment(d, num, into_mem, applied, &cap_err);
		if (rc == 1) {
			into_mem = 1;
		} else if (rc == 0) {
			applied = 1;
		}
	}
	free_names(names, n);
	if (rc < 0) {
		return -1;
	}
	c->gen = 1;
	if (c->nleft > 0) {
		/* The checkpointer applies them as a frozen generation once
		 * there is room, retrying every second; until then writes
		 * are refused with the reason. */
		if (lwwd_mem_freeze(c->mem) != 0) {
			return -1; /* not reached: nothing is frozen yet */
		}
		c->ready = 1;
		c->err = cap_err;
		c->gen = 2;
	}
	if ((rv = lwwd_wal_reopen(d, next)) != LWW_OK && !is_capacity(rv)) {
		fprintf(stderr,
		        "lwwd: cannot create write-ahead log in %s: %s\n",
		        d->cfg.data, lww_strerror(rv));
		return -1;
	}
	return 0;
}

/* Checkpointer: the leftover segments, now in the store. Their writes
 * were synced by the run before, so with --fsync none (whose commits
 * do not sync) the store is synced before they go. */
static void
retire_leftovers(lwwd *d, uint64_t entries)
{
	lwwd_ckpt *c = d->ckpt;
	lww_err rv;

	if (c->nleft == 0) {
		return;
	}
	if (!d->cfg.fsync_always && (rv = lww_store_sync(d->store)) != LWW_OK) {
		lwwd_log(LWWD_LOG_WARN, "wal_leftovers_kept",
		         "segments=%zu entries=%llu reason=\"%s\" (the store "
		         "could not be synced; they are removed after the next "
		         "checkpoint, or replayed at the next start)",
		         c->nleft, (unsigned long long) entries,
		         lww_strerror(rv));
		return;
	}
	for (size_t i = 0; i < c->nleft; i++) {
		retire_segment(d, c->left[i].path, c->left[i].damaged);
		free(c->left[i].path);
	}
	free(c->left);
	c->left = NULL;
	c->nleft = 0;
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
	if (a->n > 0 && a->n % LWW_CKPT_TXN_ENTRIES == 0) {
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
	lwwd_ckpt *c = d->ckpt;
	ckpt_acc a = {d, NULL, 0};
	lww_err rv;

	if ((rv = lww_store_begin(d->store, &a.t)) != LWW_OK) {
		return rv;
	}
	if ((rv = lwwd_mem_frozen_each(c->mem, apply_cb, seq_cb, &a)) !=
	    LWW_OK) {
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

/* Failed checkpoints are retried every second: the first failure, a
 * change of reason, and then one line a minute say so, and the recovery
 * says how many retries it took. */
typedef struct fail_log {
	lwwd_log_limit limit;
	uint64_t count; /* failures in a row */
} fail_log;

static void
log_failure(fail_log *f, lww_err rv, const char *path)
{
	uint64_t skipped;

	f->count++;
	if (!lwwd_log_due(&f->limit, rv, LWWD_LOG_GAP_US, &skipped)) {
		return;
	}
	lwwd_log(LWWD_LOG_ERROR, "checkpoint_failed",
	         "reason=\"%s\" segment=%s failures=%llu (writes are refused "
	         "until it succeeds; the log keeps them; retried every "
	         "second, logged once a minute)%s",
	         lww_strerror(rv), path, (unsigned long long) f->count,
	         rv == LWW_EFULL    ? "; raise --map-size"
	         : rv == LWW_ENOSPC ? "; free space on the file system "
	                              "holding --data"
	                            : "");
}

static void
log_recovery(fail_log *f)
{
	if (f->count > 0) {
		lwwd_log(LWWD_LOG_WARN, "checkpoint_recovered",
		         "after=%llu failures (writes are accepted again)",
		         (unsigned long long) f->count);
	}
	memset(f, 0, sizeof(*f));
}

static void *
ckpt_main(void *arg)
{
	lwwd *d = arg;
	lwwd_ckpt *c = d->ckpt;
	fail_log fails;

	memset(&fails, 0, sizeof(fails));

	pthread_mutex_lock(&d->mtx);
	for (;;) {
		uint64_t t0, us, n = 0;
		char *path;
		lww_err rv;

		while (!c->ready && !lwwd_thr_wait(&c->thr, UINT64_MAX)) {
		}
		if (!c->ready) {
			break;
		}
		path = c->segment;
		pthread_mutex_unlock(&d->mtx);

		t0 = lwwd_mono_us();
		rv = checkpoint(d, &n);
		us = lwwd_mono_us() - t0;
		if (rv == LWW_OK) {
			lwwd_mem_drop_frozen(c->mem);
			if (path != NULL) {
				retire_segment(d, path, 0);
			}
			retire_leftovers(d, n);
			log_recovery(&fails);
			atomic_fetch_add(&d->stats.checkpoints, 1);
			atomic_fetch_add(&d->stats.checkpoint_entries, n);
			lwwd_stat_max(&d->stats.checkpoint_us_max, us);
		} else {
			atomic_fetch_add(&d->stats.checkpoints_failed, 1);
			log_failure(&fails, rv,
			            path != NULL ? path : c->left[0].path);
		}

		pthread_mutex_lock(&d->mtx);
		if (rv == LWW_OK) {
			free(c->segment);
			c->segment = NULL;
			c->ready = 0;
			c->done = c->gen - 1;
			c->err = LWW_OK;
			/* Readers waiting, and the writer if it has more. */
			pthread_cond_broadcast(&c->cv);
			lwwd_writer_wake(d);
		} else {
			c->err = rv;
			/* Wake who waits for this checkpoint (shutdown, the
			 * barrier): it failed, and will not be waited for. */
			pthread_cond_broadcast(&c->cv);
			/* Retry in a second; the stop ends the wait. */
			if (lwwd_thr_wait(&c->thr, lwwd_deadline_ms(1000))) {
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
	lwwd_ckpt *c = d->ckpt;

	if (lwwd_thr_start(&c->thr, &d->mtx, ckpt_main, d) != 0) {
		return -1;
	}
	return 0;
}

void
lwwd_ckpt_submit(lwwd *d, char *segment)
{
	lwwd_ckpt *c = d->ckpt;

	c->segment = segment;
	c->ready = 1;
	c->gen++;
	lwwd_thr_wake(&c->thr);
}

int
lwwd_ckpt_busy(lwwd *d)
{
	return d->ckpt->ready;
}

lww_err
lwwd_ckpt_error(lwwd *d)
{
	return d->ckpt->err;
}

int
lwwd_ckpt_wait_room(lwwd *d)
{
	lwwd_ckpt *c = d->ckpt;

	while (c->ready && c->err == LWW_OK && !lwwd_thr_stopping(&c->thr)) {
		pthread_cond_wait(&c->cv, &d->mtx);
	}
	return c->ready;
}

void
lwwd_wal_barrier(lwwd *d)
{
	lwwd_ckpt *c = d->ckpt;
	uint64_t want, due;

	pthread_mutex_lock(&d->mtx);
	if (c->err != LWW_OK) {
		/* Checkpoints fail (store full): do not wait for one. */
		pthread_mutex_unlock(&d->mtx);
		return;
	}
	if (lwwd_writer_dirty(d)) {
		/* The active generation, so first ask the writer to freeze
		 * it. (A stale read only makes this wait for one more
		 * checkpoint, or none.) */
		want = c->gen;
		lwwd_writer_want_freeze(d);
	} else if (c->ready) {
		want = c->gen - 1;
	} else {
		pthread_mutex_unlock(&d->mtx);
		return;
	}
	due = lwwd_mono_us() + BARRIER_MAX_MS * 1000;
	while (c->done < want && c->err == LWW_OK &&
	       !lwwd_thr_stopping(&c->thr) && !lwwd_writer_stopping(d)) {
		if (lwwd_cond_wait_until(&c->cv, &d->mtx, due) != 0) {
			break; /* answer from the store as it is */
		}
	}
	pthread_mutex_unlock(&d->mtx);
}

void
lwwd_ckpt_stop(lwwd *d)
{
	lwwd_ckpt *c = d->ckpt;

	/* The last generation the writer froze (lwwd_writer_stop) goes
	 * into the store now, so that a clean stop leaves no segment. */
	pthread_mutex_lock(&d->mtx);
	while (c->ready && c->err == LWW_OK) {
		pthread_cond_wait(&c->cv, &d->mtx);
	}
	pthread_mutex_unlock(&d->mtx);
	lwwd_thr_ask_stop(&c->thr);
	/* Readers waiting for a checkpoint see the stop too. */
	pthread_mutex_lock(&d->mtx);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&d->mtx);
	lwwd_thr_join(&c->thr);
	/* Kept if a checkpoint failed: then start-up replays. */
	lwwd_writer_close_log(d, c->ready);
	free(c->segment);
	c->segment = NULL;
	/* Not applied: the next start finds them again. */
	for (size_t i = 0; i < c->nleft; i++) {
		free(c->left[i].path);
	}
	free(c->left);
	c->left = NULL;
	c->nleft = 0;
}
