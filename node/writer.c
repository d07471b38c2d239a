/*
 * writer.c - the single writer: logs local writes and remote batches in
 * groups, then publishes the local ones as one signed delta batch.
 *
 * Whatever queued up while the previous group was syncing becomes the
 * next group, so under load many writes share one fsync, and with one
 * client a write pays exactly one. For each group the writer stamps the
 * local writes, keeps the remote entries that beat what the node holds,
 * appends them to the write-ahead log (core/wal.h) and merges them into
 * the in-memory generation that lookups read (mem.h); the syncer thread
 * then runs one fdatasync for every group handed to it so far (none with
 * --fsync none), and only then publishes their batches and answers their
 * clients. So with --fsync always neither a write's reply nor a gossip
 * batch carries a write that a crash could take back; with --fsync none
 * a crash may lose acknowledged writes. Reads do not wait for the sync: a
 * group is in the in-memory generation from the moment it is logged, so
 * a lookup or list may return a write whose writer is not answered yet,
 * and that a crash before the fsync takes back. A group whose log append
 * fails is answered with the error and leaves nothing visible; one whose
 * fsync fails is answered with the error too, but its writes stay logged
 * and visible and reach the store. The store itself (LMDB) is written in
 * large checkpoints off this path (checkpoint.c): the writer owns the
 * log segment and chooses when to freeze the active generation onto a
 * new one, and hands each frozen generation to the checkpointer through
 * the frozen hook (wired in main.c).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "lwwd.h"

/* Quiet this long, the writer checkpoints what it logged (checkpoint.c),
 * so that sparse writes share a checkpoint (each costs the store's syncs
 * and a new segment); under load it does every CKPT_EVERY_MS. */
#define IDLE_CKPT_MS 1000
/* Under load, a checkpoint at least this often (or every
 * LWW_CKPT_ENTRIES entries). */
#define CKPT_EVERY_MS 1000

/* A logged group handed to the syncer. */
typedef struct synced {
	lwwd_op *ops;
	lww_buf gb; /* its batch, if it has local writes */
	uint64_t seq;
	struct synced *next;
} synced;

struct lwwd_writer {
	/* The op queue, under d->mtx. */
	lwwd_op *qhead, *qtail;
	size_t qlen;
	int applying;            /* the writer holds a group it has not
	                            committed */
	pthread_cond_t progress; /* on d->mtx: a group done, or stopping */
	/* On d->mtx. thr: woken by an op queued, a checkpoint done (it may
	 * freeze the next), a barrier's ask, the stop. syncer: makes logged
	 * groups durable, woken by a group handed to it. */
	lwwd_thr thr;
	lwwd_thr syncer;
	/* The groups handed to the syncer, under d->mtx. */
	int syncing; /* the syncer holds groups it has not answered */
	pthread_cond_t sync_idle_cv; /* on d->mtx: the syncer holds none */
	synced *sync_head, *sync_tail;
	/* The log segment and the freeze, set by start-up before the
	 * writer runs. wal and wal_path change under d->mtx (the syncer
	 * reads wal), freeze_wanted is under d->mtx, the rest the
	 * writer's. */
	struct lww_wal *wal;      /* the segment appended to */
	uint64_t wal_next;        /* number of the next segment */
	char *wal_path;           /* path of wal */
	lww_err wal_err;          /* why wal is NULL */
	int freeze_wanted;        /* a reader waits for a checkpoint */
	uint64_t frozen_us;       /* when the writer last froze */
	_Atomic int mem_dirty;    /* the active generation holds data */
	uint64_t seq;             /* last batch seq logged (the writer's) */
	_Atomic uint64_t seq_pub; /* last batch seq published: any thread */
};

/* The entry the node holds for e's key: logged, else stored. */
static lww_err
current(lwwd *d, const lww_entry *e, lww_buf *vb, lww_entry *cur, int *have)
{
	int m = lwwd_mem_get(lwwd_ckpt_mem(d), e->key, e->klen, vb, cur);
	lww_err rv;

	if (m != 0) {
		*have = m > 0;
		return m > 0 ? LWW_OK : LWW_ENOMEM;
	}
	rv = lww_store_get(d->store, e->key, e->klen, vb, cur);
	*have = rv == LWW_OK;
	return rv == LWW_ENOTFOUND ? LWW_OK : rv;
}

/* Appends batch b (a batch message) as one log record for origin, and on
 * success merges its entries into the active generation. */
static lww_err
log_batch(lwwd *d, lww_buf *b, uint64_t origin, int note_seq)
{
	lwwd_writer *w = d->writer;
	lww_batch bt;
	lww_entry e;
	size_t off = 0, len = b->len;
	lww_err rv;

	if ((rv = lww_buf_put_u64(b, origin)) != LWW_OK) {
		return rv;
	}
	rv = lww_wal_append(w->wal, b->p, b->len);
	b->len = len; /* the batch again, as gossip carries it */
	if (rv != LWW_OK) {
		static lwwd_log_limit limit; /* the writer thread's */
		uint64_t skipped;
		atomic_fetch_add(&d->stats.wal_failed, 1);
		if (lwwd_log_due(&limit, rv, LWWD_LOG_GAP_US, &skipped)) {
			lwwd_log(
			    LWWD_LOG_ERROR, "log_append_failed",
			    "reason=\"%s\" not_logged_since=%llu (the "
			    "writes were refused, never acknowledged)%s",
			    lww_strerror(rv), (unsigned long long) skipped,
			    rv == LWW_ENOSPC
			        ? "; free space on the file system holding "
			          "--data"
			        : "");
		}
		return rv;
	}
	w->mem_dirty = 1;
	atomic_fetch_add(&d->stats.wal_bytes, len + 8);
	if ((rv = lww_batch_decode(b->p, b->len, &bt)) != LWW_OK) {
		return rv;
	}
	while (lww_entries_next(&bt.entries, &off, &e)) {
		if ((rv = lwwd_mem_put(lwwd_ckpt_mem(d), &e)) != LWW_OK) {
			return rv;
		}
	}
	return note_seq && bt.seq > 0
	           ? lwwd_mem_note_seq(lwwd_ckpt_mem(d), origin, bt.seq)
	           : LWW_OK;
}

/* The entries of a remote op that beat what the node holds, logged. */
static void
log_remote(lwwd *d, lwwd_op *op, lww_buf *rec, lww_buf *vb)
{
	lww_entry e, cur;
	size_t off = 0;
	lww_err rv;
	int have;

	if ((rv = lww_batch_begin(rec, op->repair ? 0 : op->batch.seq)) !=
	    LWW_OK) {
		op->res_rv = rv;
		return;
	}
	while (lww_entries_next(&op->batch.entries, &off, &e)) {
		if (lww_hlc_check(&d->hlc, e.hlc) != LWW_OK) {
			atomic_fetch_add(&d->stats.entries_drift, 1);
			lwwd_clock_note_refused(d, e.node);
			lwwd_log(
			    LWWD_LOG_WARN, "drift_refused",
			    "peer=%s key_len=%zu stamp_ms=%llu now_ms=%llu",
			    op->origin_name, e.klen,
			    (unsigned long long) lww_hlc_wall(e.hlc),
			    (unsigned long long) lwwd_now_ms());
			continue;
		}
		if ((rv = current(d, &e, vb, &cur, &have)) != LWW_OK) {
			op->res_rv = rv;
			return;
		}
		lww_hlc_observe(&d->hlc, e.hlc);
		lwwd_clock_writer_observed(d, e.hlc);
		if (have && !lww_entry_wins(&e, &cur)) {
			continue;
		}
		if ((rv = lww_batch_add(rec, &e)) != LWW_OK) {
			op->res_rv = rv;
			return;
		}
		op->res_count++;
	}
	if (lww_batch_count(rec) > 0) {
		op->res_rv = log_batch(d, rec, op->origin, !op->repair);
	}
}

/* The greatest stamp the node holds for any key op writes, into *held
 * (0 if none), and that key into op->res_key. A new local stamp is
 * normally above every stamp held (the clock observed or restored them
 * all), but not after a recovery lowered the clock below entries it
 * keeps in the future (clock.c), nor across a restart that persisted
 * that lower mark: a write stamped below such an entry would be
 * acknowledged and lose. One lookup per key (logged, else stored), so
 * only for stamps not above d->held_max (stamp_local). */
static lww_err
held_above(lwwd *d, lwwd_op *op, lww_buf *vb, uint64_t *held)
{
	lww_entry e, cur;
	size_t off = 0;
	lww_err rv;
	int have, load = op->req.op == LWW_OP_LOAD;

	*held = 0;
	e.key = op->req.key;
	e.klen = op->req.klen;
	while (load ? lww_entries_next(&op->req.items, &off, &e) : off++ == 0) {
		if ((rv = current(d, &e, vb, &cur, &have)) != LWW_OK) {
			return rv;
		}
		if (have && cur.hlc > *held) {
			*held = cur.hlc;
			op->res_key = e.key;
			op->res_klen = e.klen;
		}
	}
	return LWW_OK;
}

/* Stamps the local writes of op into the group's batch gb. */
static lww_err
stamp_local(lwwd *d, lwwd_op *op, lww_buf *gb, lww_buf *vb)
{
	lww_entry e;
	size_t off = 0;
	uint64_t held, first;
	lww_err rv;

	/* The op's first stamp must beat every entry held for its keys
	 * (its later stamps are greater still), else it is refused whole
	 * before anything is added to the batch. No entry is held above
	 * max(the clock, held_max): a first stamp above held_max beats
	 * them all without a look (a refused op's stamp is spent, which
	 * only moves the clock on). */
	if ((rv = lww_hlc_now(&d->hlc, &first)) != LWW_OK) {
		return rv;
	}
	if (first > d->held_max) {
		held = 0;
	} else if ((rv = held_above(d, op, vb, &held)) != LWW_OK) {
		return rv;
	}
	if (held != 0 && first <= held) {
		op->res_held_hlc = held;
		lwwd_clock_writer_held(d, op->res_key, op->res_klen, held);
		return LWW_ECLOCK;
	}
	if (op->req.op == LWW_OP_LOAD) {
		while (lww_entries_next(&op->req.items, &off, &e)) {
			if (first != 0) {
				e.hlc = first;
				first = 0;
			} else if ((rv = lww_hlc_now(&d->hlc, &e.hlc)) !=
			           LWW_OK) {
				return rv;
			}
			e.node = d->self;
			if ((rv = lww_batch_add(gb, &e)) != LWW_OK) {
				return rv;
			}
			op->res_hlc = e.hlc;
			op->res_count++;
		}
		return LWW_OK;
	}
	e.key = op->req.key;
	e.klen = op->req.klen;
	e.val = op->req.val;
	e.vlen = op->req.vlen;
	e.flags = op->req.op == LWW_OP_REMOVE ? LWW_ENTRY_TOMBSTONE : 0;
	e.node = d->self;
	e.hlc = first;
	if ((rv = lww_batch_add(gb, &e)) != LWW_OK) {
		return rv;
	}
	op->res_hlc = e.hlc;
	op->res_count = 1;
	return LWW_OK;
}

/* Logs a group: each remote op as a record of its winners, the local
 * writes as one record, the batch gb (sequence seq) that gossip will
 * carry. Each op's outcome goes to op->res_rv; refuse, if not LWW_OK,
 * is every op's. */
static void
log_group(lwwd *d, lwwd_op *ops, lww_buf *gb, lww_buf *rec, lww_buf *vb,
          uint64_t seq, lww_err refuse)
{
	lww_err rv = lww_batch_begin(gb, seq), lrv = LWW_OK;

	for (lwwd_op *op = ops; op != NULL; op = op->next) {
		op->res_count = 0;
		op->res_held_hlc = 0;
		/* A store that cannot take its checkpoints takes no more. */
		op->res_rv = refuse != LWW_OK ? refuse : rv;
		if (op->res_rv != LWW_OK) {
			continue;
		}
		if (op->remote) {
			log_remote(d, op, rec, vb);
			/* The clock's fence is checked here, not only at the
			 * API, so that a write admitted just before the clock
			 * fenced is not stamped from a mark that a recovery
			 * is lowering meanwhile. */
		} else if (lwwd_clock_writer_fenced(d)) {
			op->res_rv = LWW_ECLOCK;
		} else {
			uint32_t had = lww_batch_count(gb);
			op->res_rv = stamp_local(d, op, gb, vb);
			if (op->res_rv != LWW_OK &&
			    lww_batch_count(gb) != had) {
				/* the batch is in an unknown state */
				lrv = op->res_rv;
			}
		}
	}
	if (lww_batch_count(gb) > 0) {
		if (lrv == LWW_OK) {
			lrv = log_batch(d, gb, d->self, 1);
		}
		if (lrv != LWW_OK) {
			lww_buf_reset(gb); /* nothing to publish */
		}
		for (lwwd_op *op = ops; op != NULL; op = op->next) {
			if (!op->remote && op->res_rv == LWW_OK) {
				op->res_rv = lrv;
			}
		}
	}
}

/* Answers and releases every op of a group; rv, if not LWW_OK, is the
 * group's sync failure and overrides each op's own outcome. */
static void
finish(lwwd *d, lwwd_op *ops, lww_err rv)
{
	lwwd_op *next;

	for (lwwd_op *op = ops; op != NULL; op = next) {
		lww_err orv = rv != LWW_OK ? rv : op->res_rv;
		next = op->next;
		op->next = NULL;
		if (op->remote) {
			if (orv == LWW_OK) {
				atomic_fetch_add(&d->stats.writes_remote,
				                 op->res_count);
				if (!op->repair) {
					atomic_fetch_add(
					    &d->stats.batches_applied, 1);
				}
			} else if (!op->repair) {
				lwwd_log(
				    LWWD_LOG_WARN, "batch_not_applied",
				    "peer=%s seq=%llu reason=\"%s\" (repair "
				    "will fetch it)",
				    op->origin_name,
				    (unsigned long long) op->batch.seq,
				    lww_strerror(orv));
			}
		} else if (orv == LWW_OK) {
			atomic_fetch_add(&d->stats.writes_local, op->res_count);
		} else {
			atomic_fetch_add(&d->stats.writes_failed, 1);
		}
		if (op->done != NULL) {
			op->done(op, orv, op->res_hlc, op->res_count);
		}
		if (op->owned) {
			nng_msg_free(op->msg);
			lww_buf_fini(&op->own);
			free(op);
		}
	}
}

/*
 * A logged group goes to the syncer thread, which runs one fdatasync of
 * the log for every group handed to it so far (none with fsync = none)
 * and only then publishes their batches and answers their clients. The
 * writer meanwhile logs the next group.
 */

static void
sync_push(lwwd *d, lwwd_op *ops, const lww_buf *gb, uint64_t seq)
{
	lwwd_writer *w = d->writer;
	synced *g = calloc(1, sizeof(*g));

	if (g == NULL) {
		/* No memory to queue it: sync here, then answer. */
		finish(d, ops,
		       d->cfg.fsync_always && w->wal != NULL
		           ? lww_wal_sync(w->wal)
		           : LWW_OK);
		return;
	}
	g->ops = ops;
	g->seq = seq;
	if (lww_batch_count(gb) > 0 &&
	    lww_buf_put(&g->gb, gb->p, gb->len) != LWW_OK) {
		lww_buf_reset(&g->gb); /* no memory: repair spreads it */
	}
	pthread_mutex_lock(&d->mtx);
	if (w->sync_tail != NULL) {
		w->sync_tail->next = g;
	} else {
		w->sync_head = g;
	}
	w->sync_tail = g;
	lwwd_thr_wake(&w->syncer);
	pthread_mutex_unlock(&d->mtx);
}

static void *
syncer_main(void *arg)
{
	lwwd *d = arg;
	lwwd_writer *w = d->writer;

	for (;;) {
		synced *g, *next;
		struct lww_wal *wal;
		lww_err rv = LWW_OK;

		pthread_mutex_lock(&d->mtx);
		w->syncing = 0;
		pthread_cond_broadcast(&w->sync_idle_cv);
		while (w->sync_head == NULL &&
		       !lwwd_thr_wait(&w->syncer, UINT64_MAX)) {
		}
		g = w->sync_head;
		w->sync_head = w->sync_tail = NULL;
		w->syncing = g != NULL;
		/* The writer changes segments only while this is idle. */
		wal = w->wal;
		pthread_mutex_unlock(&d->mtx);
		if (g == NULL) {
			break;
		}
		/* One fsync covers every group logged before it began. */
		/* No segment (a full disk at start-up): nothing was logged. */
		if (d->cfg.fsync_always && wal != NULL) {
			uint64_t t0 = lwwd_mono_us(), us;
			rv = lww_wal_sync(wal);
			us = lwwd_mono_us() - t0;
			atomic_fetch_add(&d->stats.fsyncs, 1);
			atomic_fetch_add(&d->stats.fsync_us_total, us);
			lwwd_stat_max(&d->stats.fsync_us_max, us);
		}
		if (rv != LWW_OK) {
			/* Logged, but not known to be durable: say so. */
			lwwd_log(LWWD_LOG_ERROR, "sync_failed", "reason=\"%s\"",
			         lww_strerror(rv));
		}
		for (; g != NULL; g = next) {
			next = g->next;
			if (rv == LWW_OK && g->gb.len > 0) {
				/* seq_pub first: a heartbeat never names a
				 * batch before it could have been sent. */
				atomic_store(&w->seq_pub, g->seq);
				if (d->hooks.durable != NULL) {
					d->hooks.durable(d, g->seq, g->gb.p,
					                 g->gb.len);
				}
			}
			finish(d, g->ops, rv);
			lww_buf_fini(&g->gb);
			free(g);
		}
	}
	return NULL;
}

/* ---- the log segment and the freeze ---- */

/* d->mtx held: waits until the syncer holds no group (it is done with
 * the segment the writer is about to change). */
static void
sync_idle(lwwd *d)
{
	lwwd_writer *w = d->writer;

	while (w->sync_head != NULL || w->syncing) {
		pthread_cond_wait(&w->sync_idle_cv, &d->mtx);
	}
}

/* A new segment to append to; on a full disk, none (w->wal stays NULL,
 * and the writer refuses writes until lwwd_wal_reopen makes one). */
static lww_err
open_segment(lwwd *d)
{
	lwwd_writer *w = d->writer;
	char *path = lwwd_wal_segment_path(d, w->wal_next);
	lww_wal *seg;
	lww_err rv;

	if (path == NULL) {
		return LWW_ENOMEM;
	}
	if ((rv = lww_wal_create(path, &seg)) != LWW_OK) {
		if (rv != w->wal_err) {
			lwwd_log(LWWD_LOG_ERROR, "wal_create_failed",
			         "path=%s reason=\"%s\" (writes are refused "
			         "until it can be made)",
			         path, lww_strerror(rv));
		}
		w->wal_err = rv;
		free(path);
		return rv;
	}
	if (w->wal_err != LWW_OK) {
		lwwd_log(LWWD_LOG_INFO, "wal_created",
		         "path=%s (writes are accepted again)", path);
	}
	w->wal_err = LWW_OK;
	w->wal_next++;
	pthread_mutex_lock(&d->mtx);
	free(w->wal_path);
	w->wal_path = path;
	w->wal = seg;
	pthread_mutex_unlock(&d->mtx);
	return LWW_OK;
}

lww_err
lwwd_wal_reopen(lwwd *d, uint64_t next)
{
	lwwd_writer *w = d->writer;

	if (w->wal != NULL) {
		return LWW_OK;
	}
	w->wal_next = next;
	return open_segment(d);
}

/* Freezes the active generation onto a new segment and hands the old
 * segment to the checkpointer (the frozen hook), which must be idle.
 * -1 if no new segment could be made (nothing changed). */
static int
freeze(lwwd *d)
{
	static lwwd_log_limit limit; /* the writer's (and, once it stopped,
	                              * its stopper's) */
	lwwd_writer *w = d->writer;
	struct lww_wal *old = w->wal, *nw;
	char *path = lwwd_wal_segment_path(d, w->wal_next);
	char *oldpath = w->wal_path;
	uint64_t skipped;
	lww_err rv;

	if (path == NULL) {
		return -1;
	}
	/* The new segment first: if it cannot be made, nothing changes. */
	if ((rv = lww_wal_create(path, &nw)) != LWW_OK) {
		if (lwwd_log_due(&limit, rv, LWWD_LOG_GAP_US, &skipped)) {
			lwwd_log(LWWD_LOG_ERROR, "wal_create_failed",
			         "path=%s reason=\"%s\" not_logged_since=%llu "
			         "(writes stay in the current segment; "
			         "retried every second)",
			         path, lww_strerror(rv),
			         (unsigned long long) skipped);
		}
		free(path);
		return -1;
	}
	w->wal_next++;
	/* The syncer must be done with the old segment. */
	pthread_mutex_lock(&d->mtx);
	sync_idle(d);
	if (lwwd_mem_freeze(lwwd_ckpt_mem(d)) != 0) {
		pthread_mutex_unlock(&d->mtx);
		/* Not reached: the checkpointer was idle. Keep the old. */
		lww_wal_close(nw);
		unlink(path);
		free(path);
		return -1;
	}
	w->wal = nw;
	w->wal_path = path;
	w->mem_dirty = 0;
	w->freeze_wanted = 0;
	/* In the same critical section as the freeze: a barrier never sees
	 * nothing dirty and nothing frozen in between. */
	d->hooks.frozen(d, oldpath);
	pthread_mutex_unlock(&d->mtx);
	lww_wal_close(old);
	w->frozen_us = lwwd_mono_us();
	return 0;
}

/* Between groups: freezes when it is time (idle: as soon as a
 * checkpoint can run). -1 if a freeze was due and failed. */
static int
maybe_freeze(lwwd *d, int idle)
{
	lwwd_writer *w = d->writer;
	size_t bytes, n;
	int busy, wanted;

	if (!w->mem_dirty) {
		return 0;
	}
	n = lwwd_mem_active(lwwd_ckpt_mem(d), &bytes);
	pthread_mutex_lock(&d->mtx);
	busy = lwwd_ckpt_busy(d);
	if (busy && (n >= LWW_MEM_ENTRIES_MAX || bytes >= LWW_MEM_BYTES_MAX)) {
		/* Memory bound: wait for the checkpoint under way. */
		atomic_fetch_add(&d->stats.checkpoint_waits, 1);
		busy = lwwd_ckpt_wait_room(d);
	}
	wanted = w->freeze_wanted;
	pthread_mutex_unlock(&d->mtx);
	if (busy) {
		return 0;
	}
	if (!idle && !wanted && n < LWW_CKPT_ENTRIES &&
	    lwwd_mono_us() - w->frozen_us < CKPT_EVERY_MS * 1000) {
		return 0;
	}
	return freeze(d);
}

static size_t
op_local_items(const lwwd_op *op)
{
	if (op->remote) {
		return 0;
	}
	return op->req.op == LWW_OP_LOAD ? op->req.items.count : 1;
}

static void *
writer_main(void *arg)
{
	lwwd *d = arg;
	lwwd_writer *w = d->writer;
	lww_buf gb = LWW_BUF_INIT, rec = LWW_BUF_INIT, vb = LWW_BUF_INIT;
	uint64_t last_us = 0; /* when the last group was logged */

	for (;;) {
		lwwd_op *group, *last;
		size_t items, bytes, nops;
		lww_err refuse;
		uint64_t seq;

		pthread_mutex_lock(&d->mtx);
		while (w->qhead == NULL && !lwwd_thr_stopping(&w->thr)) {
			uint64_t now = lwwd_mono_us(), due;
			if (!w->mem_dirty || lwwd_ckpt_busy(d)) {
				(void) lwwd_thr_wait(&w->thr, UINT64_MAX);
				continue;
			}
			/* Idle for a while, or a reader waits: checkpoint
			 * what was logged. */
			due = last_us + IDLE_CKPT_MS * 1000;
			if (now >= due || w->freeze_wanted) {
				pthread_mutex_unlock(&d->mtx);
				int failed = maybe_freeze(d, 1) != 0;
				pthread_mutex_lock(&d->mtx);
				if (failed) {
					/* No new segment (a full disk): try
					 * again in a second, not at once. */
					last_us = lwwd_mono_us();
					w->freeze_wanted = 0;
				}
				continue;
			}
			(void) lwwd_thr_wait(&w->thr, due);
		}
		if (w->qhead == NULL) {
			pthread_mutex_unlock(&d->mtx);
			break;
		}
		/* Take ops while the outgoing batch stays within limits. */
		group = last = w->qhead;
		items = op_local_items(group);
		bytes = group->remote ? 0 : nng_msg_len(group->msg);
		nops = 1;
		while (last->next != NULL && nops < LWW_GROUP_OPS_MAX) {
			lwwd_op *n = last->next;
			size_t ni = op_local_items(n);
			size_t nb = n->remote ? 0 : nng_msg_len(n->msg);
			if (items + ni > LWW_BATCH_ENTRIES_MAX ||
			    bytes + nb > LWW_BATCH_BYTES_TARGET) {
				break;
			}
			items += ni;
			bytes += nb;
			nops++;
			last = n;
		}
		w->qhead = last->next;
		if (w->qhead == NULL) {
			w->qtail = NULL;
		}
		w->qlen -= nops;
		w->applying = 1;
		refuse = lwwd_ckpt_error(d);
		last->next = NULL;
		pthread_mutex_unlock(&d->mtx);
		if (refuse == LWW_OK && w->wal == NULL) {
			/* Start-up found no room for a segment: try again. */
			refuse = open_segment(d);
		}

		seq = w->seq + 1;
		lwwd_clock_writer_before(d);
		log_group(d, group, &gb, &rec, &vb, seq, refuse);
		lwwd_clock_writer_after(d);
		if (lww_batch_count(&gb) > 0) {
			w->seq = seq;
		}
		sync_push(d, group, &gb, seq);
		(void) maybe_freeze(d, 0);
		last_us = lwwd_mono_us();
		pthread_mutex_lock(&d->mtx);
		w->applying = 0;
		pthread_cond_broadcast(&w->progress);
		pthread_mutex_unlock(&d->mtx);
	}
	lww_buf_fini(&gb);
	lww_buf_fini(&rec);
	lww_buf_fini(&vb);
	return NULL;
}

int
lwwd_writer_alloc(lwwd *d)
{
	lwwd_writer *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		return -1;
	}
	lwwd_thr_init(&w->thr, &d->mtx);
	lwwd_thr_init(&w->syncer, &d->mtx);
	lwwd_cond_init(&w->progress);
	lwwd_cond_init(&w->sync_idle_cv);
	d->writer = w;
	return 0;
}

void
lwwd_writer_free(lwwd *d)
{
	lwwd_writer *w = d->writer;

	if (w == NULL) {
		return;
	}
	lwwd_thr_fini(&w->thr);
	lwwd_thr_fini(&w->syncer);
	pthread_cond_destroy(&w->progress);
	pthread_cond_destroy(&w->sync_idle_cv);
	free(w->wal_path);
	free(w);
	d->writer = NULL;
}

int
lwwd_writer_start(lwwd *d, uint64_t seq)
{
	lwwd_writer *w = d->writer;

	w->seq = seq;
	atomic_store(&w->seq_pub, seq);
	w->frozen_us = lwwd_mono_us();
	if (lwwd_thr_start(&w->syncer, &d->mtx, syncer_main, d) != 0 ||
	    lwwd_thr_start(&w->thr, &d->mtx, writer_main, d) != 0) {
		return -1;
	}
	return 0;
}

/* d->mtx held. */
static lww_err
submit_locked(lwwd *d, lwwd_op *op)
{
	lwwd_writer *w = d->writer;

	op->next = NULL;
	if (lwwd_thr_stopping(&w->thr)) {
		return LWW_ECLOSED;
	}
	/* Remote batches beyond the bound are dropped: repair brings them
	 * later, while memory stays bounded under a flood. */
	if (op->remote && w->qlen >= LWW_QUEUE_REMOTE_MAX) {
		return LWW_EBUSY;
	}
	if (w->qtail != NULL) {
		w->qtail->next = op;
	} else {
		w->qhead = op;
	}
	w->qtail = op;
	w->qlen++;
	lwwd_thr_wake(&w->thr);
	return LWW_OK;
}

uint64_t
lwwd_writer_seq(lwwd *d)
{
	return atomic_load(&d->writer->seq_pub);
}

size_t
lwwd_writer_queued(lwwd *d)
{
	return d->writer->qlen;
}

lww_err
lwwd_writer_submit(lwwd *d, lwwd_op *op)
{
	lww_err rv;

	pthread_mutex_lock(&d->mtx);
	rv = submit_locked(d, op);
	pthread_mutex_unlock(&d->mtx);
	return rv;
}

lww_err
lwwd_writer_submit_wait(lwwd *d, lwwd_op *op, uint64_t deadline_us,
                        const lwwd_thr *caller)
{
	lwwd_writer *w = d->writer;
	lww_err rv;

	pthread_mutex_lock(&d->mtx);
	while ((rv = submit_locked(d, op)) == LWW_EBUSY &&
	       !lwwd_thr_stopping(caller) && lwwd_mono_us() < deadline_us) {
		(void) lwwd_cond_wait_until(&w->progress, &d->mtx, deadline_us);
	}
	pthread_mutex_unlock(&d->mtx);
	return rv;
}

void
lwwd_writer_wait_idle(lwwd *d, uint64_t deadline_us, const lwwd_thr *caller)
{
	lwwd_writer *w = d->writer;

	pthread_mutex_lock(&d->mtx);
	while ((w->qhead != NULL || w->applying) &&
	       !lwwd_thr_stopping(&w->thr) && !lwwd_thr_stopping(caller) &&
	       lwwd_mono_us() < deadline_us) {
		(void) lwwd_cond_wait_until(&w->progress, &d->mtx, deadline_us);
	}
	pthread_mutex_unlock(&d->mtx);
}

void
lwwd_writer_wake_waiters(lwwd *d)
{
	lwwd_writer *w = d->writer;

	pthread_mutex_lock(&d->mtx);
	pthread_cond_broadcast(&w->progress);
	pthread_mutex_unlock(&d->mtx);
}

void
lwwd_writer_stop(lwwd *d)
{
	lwwd_writer *w = d->writer;

	lwwd_thr_ask_stop(&w->thr);
	/* Waits for room or idleness end (the writer stops). */
	lwwd_writer_wake_waiters(d);
	lwwd_thr_join(&w->thr);
	/* Then the syncer: it answers what the writer handed it, and ends. */
	lwwd_thr_stop(&w->syncer);
	/* Everything still logged goes to the checkpointer now, so that a
	 * clean stop leaves no segment behind (lwwd_ckpt_stop applies it). */
	if (w->wal != NULL && w->mem_dirty) {
		int busy;
		pthread_mutex_lock(&d->mtx);
		busy = lwwd_ckpt_wait_room(d);
		pthread_mutex_unlock(&d->mtx);
		if (!busy) {
			(void) freeze(d);
		}
	}
}

void
lwwd_writer_wake(lwwd *d)
{
	lwwd_writer *w = d->writer;

	lwwd_thr_wake(&w->thr);
}

int
lwwd_writer_stopping(lwwd *d)
{
	return lwwd_thr_stopping(&d->writer->thr);
}

int
lwwd_writer_dirty(lwwd *d)
{
	return d->writer->mem_dirty;
}

void
lwwd_writer_want_freeze(lwwd *d)
{
	lwwd_writer *w = d->writer;

	w->freeze_wanted = 1;
	lwwd_thr_wake(&w->thr);
}

void
lwwd_writer_close_log(lwwd *d, int keep)
{
	lwwd_writer *w = d->writer;

	if (w->wal != NULL) {
		lww_wal_close(w->wal);
		w->wal = NULL;
		/* Empty unless the last freeze or checkpoint failed. */
		if (!w->mem_dirty && !keep) {
			unlink(w->wal_path);
		}
	}
	free(w->wal_path);
	w->wal_path = NULL;
}
