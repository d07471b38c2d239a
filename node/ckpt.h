/*
 * ckpt.h - writes durable before the store has them: start-up's replay of
 * the write-ahead log, and the checkpointer thread that moves each frozen
 * generation into the store (checkpoint.c; the table itself is mem.h).
 * Its state (lwwd_ckpt) is private to checkpoint.c.
 */
#ifndef LWWD_CKPT_H
#define LWWD_CKPT_H

#include <stdint.h>

#include "err.h"
#include "mem.h"

typedef struct lwwd lwwd;
typedef struct lwwd_ckpt lwwd_ckpt;

/* Makes d->ckpt with its table of logged writes and the condition
 * variables others may signal before the checkpointer starts (on
 * d->mtx, which must exist). sodium_init() must have run (mem.h). -1
 * out of memory. Free it with lwwd_ckpt_free. */
int lwwd_ckpt_alloc(lwwd *d);
/* After lwwd_ckpt_stop, once nothing runs that may read the table (the
 * API stopped); accepts a node without one. */
void lwwd_ckpt_free(lwwd *d);
/* The table of logged writes (mem.h): the writer merges into it, reads
 * merge it with the store. Any thread, from alloc to free. */
lwwd_mem *lwwd_ckpt_mem(lwwd *d);

/* Start-up: applies the segments a previous run left in --data to the
 * store and removes them, then opens a fresh segment. A damaged segment
 * stops the start (the segment is kept) unless --wal-recovery
 * skip-damaged, which skips the damage and moves the segment aside.
 * Segments the store or disk has no room for stay, and are read from
 * memory until a checkpoint applies them; without room for a new
 * segment the writer has none yet. Either way writes are refused until
 * then. Prints why and returns -1 on error. */
int lwwd_wal_recover(lwwd *d);
/* After lwwd_wal_recover: the greatest stamp and own batch seq that the
 * segments held in memory hold and the store does not (0: none), and 1
 * if it skipped or dropped log records (repair should fetch them).
 * hlc and seq may be NULL. */
int lwwd_wal_recovered(lwwd *d, uint64_t *hlc, uint64_t *seq);
/* The path of segment number n in --data (malloc'd; NULL: no memory). */
char *lwwd_wal_segment_path(const lwwd *d, uint64_t n);
int lwwd_ckpt_start(lwwd *d);
/* Shutdown, after the writer (which froze what it logged): waits for
 * the checkpoints, stops, and closes the writer's segment. */
void lwwd_ckpt_stop(lwwd *d);
/* The frozen hook's target (d->mtx held, never blocks): the checkpointer
 * applies the generation just frozen, then removes segment (its own). */
void lwwd_ckpt_submit(lwwd *d, char *segment);
/* d->mtx held: whether a frozen generation waits or is being applied. */
int lwwd_ckpt_busy(lwwd *d);
/* d->mtx held: why the last checkpoint failed (LWW_OK: it did not). */
lww_err lwwd_ckpt_error(lwwd *d);
/* d->mtx held: waits while a checkpoint is under way, until it is done,
 * fails or the checkpointer stops; returns lwwd_ckpt_busy. */
int lwwd_ckpt_wait_room(lwwd *d);
/* Waits until the store holds every write acknowledged so far, so that
 * scans and counts read from it see them. Gives up after 3 s, and at
 * once while checkpoints fail: the store is then read as it is. */
void lwwd_wal_barrier(lwwd *d);

#endif /* LWWD_CKPT_H */
