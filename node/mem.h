/*
 * mem.h - writes in the write-ahead log (synced, or about to be) but
 * not yet in the store, kept readable (mem.c).
 *
 * Two generations of winners by key: the active one, which the writer
 * merges into, and the frozen one, which the checkpointer is putting into
 * the store. lwwd_mem is opaque and owns its lock; it knows nothing of
 * the node, so tests drive it alone. Thread-safety: get, active and
 * range_get from any thread; put, note_seq and freeze from one thread
 * (the writer), frozen_each and drop_frozen from one other (the
 * checkpointer).
 */
#ifndef LWWD_MEM_H
#define LWWD_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "entry.h"
#include "err.h"

typedef struct lwwd_mem lwwd_mem;

/* A new, empty table, or NULL out of memory. sodium_init() must have run
 * (its hash key is random). Free it with lwwd_mem_free. */
lwwd_mem *lwwd_mem_alloc(void);
/* Frees m and every entry it holds; accepts NULL. */
void lwwd_mem_free(lwwd_mem *m);
/* The logged winner for key, active generation first: 1 (the value
 * copied into vbuf, out->key pointing to key and out->val into vbuf), 0
 * if none, -1 out of memory. */
int lwwd_mem_get(lwwd_mem *m, const uint8_t *key, size_t klen, lww_buf *vbuf,
                 lww_entry *out);
/* Writer: merges a copy of e into the active generation (keeps the
 * greater under lww_entry_wins). LWW_ENOMEM changes nothing. */
lww_err lwwd_mem_put(lwwd_mem *m, const lww_entry *e);
/* Writer: the active generation holds batch seq of node. */
lww_err lwwd_mem_note_seq(lwwd_mem *m, uint64_t node, uint64_t seq);
/* Entries and sequences in the active generation; *bytes (may be NULL)
 * gets the bytes of its keys and values. */
size_t lwwd_mem_active(lwwd_mem *m, size_t *bytes);
/* Writer: the active generation becomes the frozen one and a new empty
 * one is active (-1 if there is a frozen one already). */
int lwwd_mem_freeze(lwwd_mem *m);
/* Checkpointer: every entry of the frozen generation in key order, then
 * every sequence; stops at the first callback that fails and returns its
 * error. LWW_OK without a frozen generation. */
lww_err lwwd_mem_frozen_each(lwwd_mem *m,
                             lww_err (*fn)(const lww_entry *, void *),
                             lww_err (*seq)(uint64_t, uint64_t, void *),
                             void *arg);
/* Checkpointer: forgets the frozen generation (the store has it now). */
void lwwd_mem_drop_frozen(lwwd_mem *m);

/* A copy of the logged winners (tombstones included) whose key starts
 * with prefix and sorts after `after` (alen 0: from the first), one per
 * key, in key order: what a scan of the store must be merged with to see
 * every acknowledged write. The caller frees it with lwwd_mem_range_free. */
typedef struct lwwd_mem_range {
	lww_entry *v;
	size_t n;
	uint8_t *bytes; /* the keys and values v points into */
} lwwd_mem_range;
lww_err lwwd_mem_range_get(lwwd_mem *m, const uint8_t *prefix, size_t plen,
                           const uint8_t *after, size_t alen,
                           lwwd_mem_range *out);
void lwwd_mem_range_free(lwwd_mem_range *r);

#endif /* LWWD_MEM_H */
