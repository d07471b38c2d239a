/*
 * writer.c - the single writer: applies local writes and remote batches in
 * group commits, then publishes the local ones as one signed delta batch.
 *
 * Whatever queued up while the previous commit was syncing becomes the next
 * group, so under load many writes share one fsync, and with one client a
 * write pays exactly one. A client's reply is sent only after the commit
 * that holds its write returned (durable with fsync = always), and the
 * batch is published only after that commit, so gossip never carries a
 * write that a crash could take back. If a group fails (store full, I/O
 * error) its ops are retried one by one so each gets its own answer; a
 * failed commit leaves the store as it was.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limits.h"
#include "lwwd.h"

#define GROUP_OPS_MAX    1024
#define QUEUE_REMOTE_MAX 4096

uint64_t
lwwd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

uint64_t
lwwd_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

void
lwwd_stat_max(_Atomic uint64_t *v, uint64_t x)
{
	uint64_t cur = atomic_load(v);
	while (x > cur && !atomic_compare_exchange_weak(v, &cur, x)) {
	}
}

/* Applies a group in one transaction. Local entries are stamped and added
 * to the outgoing batch gb (sequence seq). */
static lww_err
apply_group(lwwd *d, lwwd_op *ops, lww_buf *gb, uint64_t seq)
{
	lww_txn *t;
	lww_err rv;
	uint64_t t0;

	if ((rv = lww_store_begin(d->store, &t)) != LWW_OK) {
		return rv;
	}
	if ((rv = lww_batch_begin(gb, seq)) != LWW_OK) {
		goto fail;
	}
	for (lwwd_op *op = ops; op != NULL; op = op->next) {
		lww_entry e;
		size_t off = 0;
		int won;

		op->res_count = 0;
		if (op->remote) {
			while (lww_entries_next(&op->batch.entries, &off, &e)) {
				if (lww_hlc_check(&d->hlc, e.hlc) != LWW_OK) {
					atomic_fetch_add(
					    &d->stats.entries_drift, 1);
					lwwd_log(
					    LWWD_LOG_WARN, "drift_refused",
					    "peer=%s key_len=%zu "
					    "stamp_ms=%llu now_ms=%llu",
					    op->origin_name, e.klen,
					    (unsigned long long) lww_hlc_wall(
					        e.hlc),
					    (unsigned long long) lwwd_now_ms());
					continue;
				}
				if ((rv = lww_txn_apply(t, &e, &won)) !=
				    LWW_OK) {
					goto fail;
				}
				lww_hlc_observe(&d->hlc, e.hlc);
				op->res_count += (uint32_t) won;
			}
			if (!op->repair &&
			    (rv = lww_txn_set_seq(t, op->origin,
			                          op->batch.seq)) != LWW_OK) {
				goto fail;
			}
			continue;
		}
		if (op->req.op == LWW_OP_LOAD) {
			while (lww_entries_next(&op->req.items, &off, &e)) {
				if ((rv = lww_hlc_now(&d->hlc, &e.hlc)) !=
				    LWW_OK) {
					goto fail;
				}
				e.node = d->self;
				if ((rv = lww_txn_apply(t, &e, NULL)) !=
				        LWW_OK ||
				    (rv = lww_batch_add(gb, &e)) != LWW_OK) {
					goto fail;
				}
				op->res_hlc = e.hlc;
				op->res_count++;
			}
			continue;
		}
		e.key = op->req.key;
		e.klen = op->req.klen;
		e.val = op->req.val;
		e.vlen = op->req.vlen;
		e.flags = op->req.op == LWW_OP_REMOVE ? LWW_ENTRY_TOMBSTONE : 0;
		e.node = d->self;
		if ((rv = lww_hlc_now(&d->hlc, &e.hlc)) != LWW_OK ||
		    (rv = lww_txn_apply(t, &e, NULL)) != LWW_OK ||
		    (rv = lww_batch_add(gb, &e)) != LWW_OK) {
			goto fail;
		}
		op->res_hlc = e.hlc;
		op->res_count = 1;
	}
	if (lww_batch_count(gb) > 0 &&
	    (rv = lww_txn_set_seq(t, d->self, seq)) != LWW_OK) {
		goto fail;
	}
	t0 = lwwd_mono_us();
	rv = lww_txn_commit(t);
	atomic_fetch_add(&d->stats.commits, 1);
	if (rv == LWW_OK && d->cfg.fsync_always) {
		uint64_t us = lwwd_mono_us() - t0;
		atomic_fetch_add(&d->stats.fsyncs, 1);
		atomic_fetch_add(&d->stats.fsync_us_total, us);
		lwwd_stat_max(&d->stats.fsync_us_max, us);
	}
	return rv;
fail:
	lww_txn_abort(t);
	return rv;
}

/* Publishes the committed local batch, signed. */
static void
publish(lwwd *d, const lww_buf *gb, lww_buf *env)
{
	lww_buf_reset(env);
	if (lww_envelope_seal(&d->key, gb->p, gb->len, env) != LWW_OK) {
		lwwd_log(LWWD_LOG_ERROR, "publish_failed", "reason=seal");
		return;
	}
	lwwd_gossip_publish(d, env->p, env->len);
	atomic_fetch_add(&d->stats.batches_sent, 1);
}

/* Answers and releases every op of a group. */
static void
finish(lwwd *d, lwwd_op *ops, lww_err rv)
{
	lwwd_op *next;

	for (lwwd_op *op = ops; op != NULL; op = next) {
		next = op->next;
		op->next = NULL;
		if (op->remote) {
			if (rv == LWW_OK) {
				atomic_fetch_add(&d->stats.writes_remote,
				                 op->res_count);
				if (!op->repair) {
					atomic_fetch_add(
					    &d->stats.batches_applied, 1);
				}
			}
		} else if (rv == LWW_OK) {
			atomic_fetch_add(&d->stats.writes_local, op->res_count);
		} else {
			atomic_fetch_add(&d->stats.writes_failed, 1);
		}
		if (op->done != NULL) {
			op->done(op, rv, op->res_hlc, op->res_count);
		}
		if (op->owned) {
			nng_msg_free(op->msg);
			lww_buf_fini(&op->own);
			free(op);
		}
	}
}

/*
 * Durability without a second fsync on the writer's path. With fsync =
 * always the store writes each commit's new root (LMDB's meta page)
 * without syncing it (MDB_NOMETASYNC: a crash undoes at most the commits
 * not yet synced, and never corrupts). A committed group goes to the
 * syncer thread, which runs one fsync for every group handed to it so far
 * and only then publishes their batches and answers their clients. The
 * writer meanwhile commits the next group, so the two fsyncs a durable
 * LMDB commit needs overlap instead of adding up.
 */
typedef struct synced {
	lwwd_op *ops;
	lww_buf gb; /* its batch, if it has local writes */
	uint64_t seq;
	struct synced *next;
} synced;

static void
sync_push(lwwd *d, lwwd_op *ops, const lww_buf *gb, uint64_t seq)
{
	synced *g = calloc(1, sizeof(*g));

	if (g == NULL) {
		/* No memory to queue it: sync here, then answer. */
		finish(d, ops, lww_store_sync(d->store));
		return;
	}
	g->ops = ops;
	g->seq = seq;
	if (lww_batch_count(gb) > 0 &&
	    lww_buf_put(&g->gb, gb->p, gb->len) != LWW_OK) {
		lww_buf_reset(&g->gb); /* no memory: repair spreads it */
	}
	pthread_mutex_lock(&d->mtx);
	if (d->sync_tail != NULL) {
		d->sync_tail->next = g;
	} else {
		d->sync_head = g;
	}
	d->sync_tail = g;
	pthread_cond_signal(&d->sync_cv);
	pthread_mutex_unlock(&d->mtx);
}

static void *
syncer_main(void *arg)
{
	lwwd *d = arg;
	lww_buf env = LWW_BUF_INIT;

	for (;;) {
		synced *g, *next;
		uint64_t t0, us;
		lww_err rv;

		pthread_mutex_lock(&d->mtx);
		while (d->sync_head == NULL && !d->sync_stopping) {
			pthread_cond_wait(&d->sync_cv, &d->mtx);
		}
		g = d->sync_head;
		d->sync_head = d->sync_tail = NULL;
		pthread_mutex_unlock(&d->mtx);
		if (g == NULL) {
			break;
		}
		/* One fsync covers every group committed before it began. */
		t0 = lwwd_mono_us();
		rv = lww_store_sync(d->store);
		us = lwwd_mono_us() - t0;
		atomic_fetch_add(&d->stats.fsyncs, 1);
		atomic_fetch_add(&d->stats.fsync_us_total, us);
		lwwd_stat_max(&d->stats.fsync_us_max, us);
		if (rv != LWW_OK) {
			/* Applied, but not known to be durable: say so. */
			lwwd_log(LWWD_LOG_ERROR, "sync_failed", "reason=\"%s\"",
			         lww_strerror(rv));
		}
		for (; g != NULL; g = next) {
			next = g->next;
			if (rv == LWW_OK && g->gb.len > 0) {
				atomic_store(&d->seq_pub, g->seq);
				publish(d, &g->gb, &env);
			}
			finish(d, g->ops, rv);
			lww_buf_fini(&g->gb);
			free(g);
		}
	}
	lww_buf_fini(&env);
	return NULL;
}

/* Commits one group; on failure retries its ops one at a time. */
static void
commit_group(lwwd *d, lwwd_op *ops, lww_buf *gb, lww_buf *env)
{
	uint64_t seq = d->seq + 1;
	lww_err rv = apply_group(d, ops, gb, seq);

	if (rv == LWW_OK) {
		if (lww_batch_count(gb) > 0) {
			d->seq = seq;
		}
		if (d->cfg.fsync_always) {
			sync_push(d, ops, gb, seq);
			return;
		}
		/* No fsync promised: answer now. */
		if (lww_batch_count(gb) > 0) {
			atomic_store(&d->seq_pub, seq);
			publish(d, gb, env);
		}
		finish(d, ops, rv);
		return;
	}
	if (ops->next == NULL) {
		lwwd_log(LWWD_LOG_ERROR, "commit_failed", "reason=\"%s\"",
		         lww_strerror(rv));
		if (ops->remote && !ops->repair) {
			lwwd_log(LWWD_LOG_WARN, "batch_not_applied",
			         "peer=%s seq=%llu (repair will fetch it)",
			         ops->origin_name,
			         (unsigned long long) ops->batch.seq);
		}
		finish(d, ops, rv);
		return;
	}
	while (ops != NULL) {
		lwwd_op *next = ops->next;
		ops->next = NULL;
		commit_group(d, ops, gb, env);
		ops = next;
	}
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
	lww_buf gb = LWW_BUF_INIT, env = LWW_BUF_INIT;

	for (;;) {
		lwwd_op *group, *last;
		size_t items, bytes, nops;

		pthread_mutex_lock(&d->mtx);
		while (d->qhead == NULL && !d->stopping) {
			pthread_cond_wait(&d->cv, &d->mtx);
		}
		if (d->qhead == NULL) {
			pthread_mutex_unlock(&d->mtx);
			break;
		}
		/* Take ops while the outgoing batch stays within limits. */
		group = last = d->qhead;
		items = op_local_items(group);
		bytes = group->remote ? 0 : nng_msg_len(group->msg);
		nops = 1;
		while (last->next != NULL && nops < GROUP_OPS_MAX) {
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
		d->qhead = last->next;
		if (d->qhead == NULL) {
			d->qtail = NULL;
		}
		d->qlen -= nops;
		d->applying = 1;
		last->next = NULL;
		pthread_mutex_unlock(&d->mtx);
		commit_group(d, group, &gb, &env);
		pthread_mutex_lock(&d->mtx);
		d->applying = 0;
		pthread_mutex_unlock(&d->mtx);
	}
	lww_buf_fini(&gb);
	lww_buf_fini(&env);
	return NULL;
}

int
lwwd_writer_start(lwwd *d)
{
	if (pthread_create(&d->syncer, NULL, syncer_main, d) != 0) {
		return -1;
	}
	d->syncer_started = 1;
	if (pthread_create(&d->writer, NULL, writer_main, d) != 0) {
		return -1;
	}
	d->writer_started = 1;
	return 0;
}

lww_err
lwwd_writer_submit(lwwd *d, lwwd_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&d->mtx);
	if (d->stopping) {
		pthread_mutex_unlock(&d->mtx);
		return LWW_ECLOSED;
	}
	/* Remote batches beyond the bound are dropped: repair brings them
	 * later, while memory stays bounded under a flood. */
	if (op->remote && d->qlen >= QUEUE_REMOTE_MAX) {
		pthread_mutex_unlock(&d->mtx);
		return LWW_EBUSY;
	}
	if (d->qtail != NULL) {
		d->qtail->next = op;
	} else {
		d->qhead = op;
	}
	d->qtail = op;
	d->qlen++;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mtx);
	return LWW_OK;
}

void
lwwd_writer_stop(lwwd *d)
{
	pthread_mutex_lock(&d->mtx);
	d->stopping = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mtx);
	if (d->writer_started) {
		pthread_join(d->writer, NULL);
		d->writer_started = 0;
	}
	/* Then the syncer: it answers what the writer handed it, and ends. */
	pthread_mutex_lock(&d->mtx);
	d->sync_stopping = 1;
	pthread_cond_broadcast(&d->sync_cv);
	pthread_mutex_unlock(&d->mtx);
	if (d->syncer_started) {
		pthread_join(d->syncer, NULL);
		d->syncer_started = 0;
	}
}
