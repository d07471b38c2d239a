/*
 * writer.h - the write pipeline (writer.c): the queue of ops, the writer
 * thread that stamps, logs and merges them in groups, the syncer thread
 * that makes each group durable and answers it, and the log segment the
 * writer appends to and freezes. Its state (lwwd_writer) is private to
 * writer.c; other modules queue ops and ask through these functions.
 */
#ifndef LWWD_WRITER_H
#define LWWD_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "buf.h"
#include "codec.h"
#include "err.h"
#include "limits.h"
#include "thr.h"

typedef struct lwwd lwwd;
typedef struct lwwd_writer lwwd_writer;

/* ---- one queued write ---- */
typedef struct lwwd_op lwwd_op;
typedef void (*lwwd_op_done)(lwwd_op *op, lww_err rv, uint64_t hlc,
                             uint32_t count);

struct lwwd_op {
	int remote;
	int repair;  /* remote entries from repair: no sequence */
	lww_buf own; /* bytes the op owns (repair), freed with it */
	/* local: an API request (ADD, REMOVE, LOAD); remote: a batch */
	lww_req req;
	lww_batch batch;
	uint64_t origin; /* remote: signer's node id */
	char origin_name[LWW_TRUST_NAME_MAX +
	                 1]; /* remote: signer's name in the trust file */
	nng_msg *msg;        /* owns the bytes req/batch point into */
	lwwd_op_done done;   /* local: called once, from the writer */
	void *arg;
	int owned;        /* the writer frees the op (remote ops) */
	uint64_t res_hlc; /* stamp of the op's last write */
	/* LWW_ECLOCK for a held key: the stamp it would lose to, the key
	 * (into the op's own bytes) */
	uint64_t res_held_hlc;
	const uint8_t *res_key;
	size_t res_klen;
	uint32_t res_count; /* writes that won */
	lww_err res_rv;     /* the op's own outcome before the sync */
	lwwd_op *next;
};

/* Makes d->writer with its threads' condition variables, which others
 * may signal before it starts (on d->mtx, which must exist). -1 out of
 * memory. Free it with lwwd_writer_free. */
int lwwd_writer_alloc(lwwd *d);
/* Once its threads are stopped (lwwd_writer_stop) or never started;
 * accepts a node without one. */
void lwwd_writer_free(lwwd *d);
/* Starts the writer and the syncer; seq is the last batch seq the node
 * published (the store's, or a segment held in memory's). */
int lwwd_writer_start(lwwd *d, uint64_t seq);
/* Queues an op; LWW_ECLOSED if the node is stopping (op not taken). */
lww_err lwwd_writer_submit(lwwd *d, lwwd_op *op);
/* As lwwd_writer_submit, but waits (without d->mtx held by the caller)
 * while the queue is full for remote ops: until there is room, the
 * writer or caller stops, or deadline_us; LWW_EBUSY then. */
lww_err lwwd_writer_submit_wait(lwwd *d, lwwd_op *op, uint64_t deadline_us,
                                const lwwd_thr *caller);
/* Waits until the writer holds nothing queued or applying, it or caller
 * stops, or deadline_us. d->mtx not held. */
void lwwd_writer_wait_idle(lwwd *d, uint64_t deadline_us,
                           const lwwd_thr *caller);
/* Wakes those two waits (to see their caller's stop flag). */
void lwwd_writer_wake_waiters(lwwd *d);
/* Stops after applying everything queued, and joins. */
void lwwd_writer_stop(lwwd *d);
/* d->mtx held: wakes the writer (a checkpoint is done, or a reader wants
 * one). */
void lwwd_writer_wake(lwwd *d);
/* The last batch seq published (a heartbeat names it); any thread. */
uint64_t lwwd_writer_seq(lwwd *d);
/* Ops queued; d->mtx held. */
size_t lwwd_writer_queued(lwwd *d);
/* Whether the writer is stopping; any thread. */
int lwwd_writer_stopping(lwwd *d);
/* Start-up, after the segments a previous run left were replayed: makes
 * the first segment, numbered next (above theirs), if there is none;
 * LWW_OK, or why writes must be refused (the writer then tries again
 * before each group). */
lww_err lwwd_wal_reopen(lwwd *d, uint64_t next);
/* Whether the active generation holds data; any thread (may be stale). */
int lwwd_writer_dirty(lwwd *d);
/* d->mtx held: a reader waits for a checkpoint: the writer freezes the
 * active generation as soon as it can. */
void lwwd_writer_want_freeze(lwwd *d);
/* Shutdown, after the checkpointer's last run: closes the segment, and
 * removes it if it is empty and keep is 0. */
void lwwd_writer_close_log(lwwd *d, int keep);

#endif /* LWWD_WRITER_H */
