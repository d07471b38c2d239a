/*
 * lwwd.h - the node's state that modules share, and their entry points.
 * Each module's own declarations are in its header (log.h, config.h,
 * thr.h, net.h, work.h, repair.h, trust.h, metrics.h, mem.h, scrub.h,
 * writer.h, ckpt.h, gossip.h), included here so that every file needs only this
 * one. The modules with state of their own keep it in an opaque struct
 * that struct lwwd points to (the writer, the checkpointer, gossip, the
 * worker, repair, the scrub, the clock, the listener guard, mem.h's
 * table); the rest of struct lwwd is what several modules share.
 *
 * Threads (each a lwwd_thr, thr.h): nng's own threads run the API, gossip
 * and metrics callbacks, which never block: what may wait (list, stats,
 * peers, reload, scrapes) goes to the worker thread (work.c). The writer
 * thread owns the hybrid logical clock, the op queue, the log segment it
 * appends to and the active in-memory generation (writer.h, mem.h); the
 * syncer thread fsyncs what the writer logged, then hands each batch to
 * the durable hook (gossip publishes it) and answers its clients
 * (writer.c). When it is time the writer freezes the active generation
 * onto a new segment and hands it to the frozen hook: the checkpointer
 * thread puts it into the store (ckpt.h, checkpoint.c), which also
 * replays the log at start-up and owns mem.h's table. The gossip link
 * thread sends the bundles, heartbeats, announcements and grafts that the
 * receive callback and the syncer queued, and restarts a paused receive
 * (gossip.h, gossip.c); repair runs two threads, the --sync server and
 * the rounds against peers (repair.c); the scrub thread checks the store
 * and drops damaged records (scrub.c); the clock thread probes peers'
 * clocks (clock.c); the listener guard re-listens when nng stops
 * accepting (net.c). The store is written by the checkpointer, start-up
 * and the scrub (LMDB serialises its write transactions). Losses that
 * gossip, the scrub and start-up detect go to repair through the loss
 * hook (lwwd_hooks, wired in main.c).
 *
 * Locks, in the order they may be taken: keys_lock (read side while a
 * signature is checked) -> d->mtx (the peer table; the writer's op and
 * sync queues and segment; the checkpoint state) -> the module locks: the
 * worker's, the scrub's, mem.h's, the clock's, repair's and gossip's.
 * Those are leaves: never take d->mtx (or keys_lock) while holding one.
 * Never check a signature under d->mtx (lwwd_verify): a reload takes
 * keys_lock, then d->mtx. Counters are atomics. Every timed wait runs on
 * the monotonic clock (lwwd_cond_init).
 */
#ifndef LWWD_H
#define LWWD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <nng/nng.h>

#include "codec.h"
#include "envelope.h"
#include "err.h"
#include "hlc.h"
#include "limits.h"
#include "mem.h"
#include "store.h"
#include "ckpt.h"
#include "config.h"
#include "gossip.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "repair.h"
#include "thr.h"
#include "trust.h"
#include "work.h"
#include "wal.h"
#include "writer.h"

/* Signed client requests: freshness window (the replay cache's size is
 * LWW_NONCES_MAX). */
#define LWWD_FRESH_MS 30000

/* ---- counters (stats.c) ---- */
typedef struct lwwd_stats {
	_Atomic uint64_t writes_local;
	_Atomic uint64_t writes_remote;
	_Atomic uint64_t writes_failed;
	_Atomic uint64_t batches_sent;
	_Atomic uint64_t batches_received;
	_Atomic uint64_t batches_applied;
	_Atomic uint64_t rejected_malformed;
	_Atomic uint64_t rejected_untrusted;
	_Atomic uint64_t rejected_badsig;
	_Atomic uint64_t rejected_forged;
	_Atomic uint64_t rejected_self;
	_Atomic uint64_t rejected_unproven;
	_Atomic uint64_t same_key_elsewhere;
	_Atomic uint64_t entries_drift;
	_Atomic uint64_t heartbeats_received;
	_Atomic uint64_t heartbeats_sent;
	_Atomic uint64_t api_requests;
	_Atomic uint64_t api_bad_requests;
	_Atomic uint64_t api_refused;
	_Atomic uint64_t listener_restarts;
	_Atomic uint64_t auth_unsigned;
	_Atomic uint64_t auth_unlisted;
	_Atomic uint64_t auth_oversized;
	_Atomic uint64_t auth_bad_signature;
	_Atomic uint64_t auth_stale;
	_Atomic uint64_t auth_replay;
	_Atomic uint64_t auth_readonly;
	_Atomic uint64_t commits;
	_Atomic uint64_t fsyncs;
	_Atomic uint64_t fsync_us_total;
	_Atomic uint64_t fsync_us_max;
	_Atomic uint64_t wal_bytes;
	_Atomic uint64_t wal_failed;
	_Atomic uint64_t checkpoints;
	_Atomic uint64_t checkpoint_entries;
	_Atomic uint64_t checkpoint_us_max;
	_Atomic uint64_t checkpoints_failed;
	_Atomic uint64_t checkpoint_waits;
	_Atomic uint64_t seq_gaps;
	_Atomic uint64_t repair_rounds;
	_Atomic uint64_t repair_rounds_failed;
	_Atomic uint64_t repair_rounds_stalled; /* also counted as failed */
	_Atomic uint64_t repair_rounds_in_sync;
	_Atomic uint64_t repair_keys_fetched;
	_Atomic uint64_t repair_keys_sent;
	_Atomic uint64_t repair_keys_pushed; /* own rounds: the peer took */
	_Atomic uint64_t repair_keys_taken;  /* from peers' pushes */
	_Atomic uint64_t repair_bytes_sent;
	_Atomic uint64_t repair_bytes_received;
	_Atomic uint64_t repair_pull_bytes; /* both ways, own rounds */
	_Atomic uint64_t repair_requests_served;
	_Atomic uint64_t repair_rejected;
	_Atomic uint64_t repair_last_ms;
	_Atomic uint64_t records_damaged; /* reads that met a damaged one */
	_Atomic uint64_t records_dropped; /* damaged records removed */
	_Atomic uint64_t index_fixed;
	_Atomic uint64_t tree_fixed;
	_Atomic uint64_t scrub_records;
	_Atomic uint64_t scrub_passes;
	_Atomic uint64_t store_page_errors;  /* LMDB found a damaged page */
	_Atomic uint64_t refused_disk_full;  /* writes refused: no disk */
	_Atomic uint64_t refused_store_full; /* writes refused: map full */
	/* The clock against the fleet (clock.c). offset is an int64_t. */
	_Atomic uint64_t clock_offset_ms;        /* own minus fleet median */
	_Atomic uint64_t clock_uncertainty_ms;   /* of that offset */
	_Atomic uint64_t clock_peers;            /* peers answering probes */
	_Atomic uint64_t clock_state;            /* lww_skew_state */
	_Atomic uint64_t clock_fenced;           /* 0, 1 ahead, 2 future mark */
	_Atomic uint64_t clock_fences;           /* times fenced */
	_Atomic uint64_t clock_writes_refused;   /* local writes fenced */
	_Atomic uint64_t clock_refused_by_peers; /* own entries peers refused */
	_Atomic uint64_t clock_rebases;          /* future marks recovered */
	_Atomic uint64_t clock_stranded;         /* own future writes found */
	_Atomic uint64_t clock_reissued;         /* ... and re-issued */
	_Atomic uint64_t clock_exported;         /* ... or exported */
	_Atomic uint64_t clock_future_held;      /* ... kept at that stamp */
	_Atomic uint64_t
	    clock_unasked; /* ... a configured peer did not answer */
	/* The gossip link (gossip.c). */
	_Atomic uint64_t gossip_neighbours; /* known by their heartbeat */
	_Atomic uint64_t gossip_eager;      /* ... pushed batches */
	_Atomic uint64_t gossip_lazy;       /* ... sent announcements */
	_Atomic uint64_t gossip_copies;     /* batch copies received */
	_Atomic uint64_t gossip_duplicates; /* ... seen before */
	_Atomic uint64_t gossip_delivered;  /* first copies, verified */
	_Atomic uint64_t gossip_forwarded;  /* copies relayed on */
	_Atomic uint64_t gossip_bytes_received;
	_Atomic uint64_t gossip_bytes_sent;
	_Atomic uint64_t gossip_ihave_sent;
	_Atomic uint64_t gossip_grafts_sent;
	_Atomic uint64_t gossip_grafts_served; /* batches sent for grafts */
	_Atomic uint64_t gossip_prunes_sent;
	_Atomic uint64_t gossip_given_up;     /* batches left to repair */
	_Atomic uint64_t gossip_send_dropped; /* messages not sent */
} lwwd_stats;

/* ---- peers seen on gossip ---- */
typedef struct lwwd_peer_state {
	uint64_t node;
	char name[LWW_TRUST_NAME_MAX + 1];
	uint64_t last_contact_ms; /* lwwd_mono_ms(), 0 = never */
	uint64_t seq_applied;     /* highest batch seq received */
	uint64_t seq_announced;   /* highest seq named by a heartbeat */
	uint64_t batches;
	uint64_t last_repair_ms; /* lwwd_mono_ms() of the last repair round,
	                            0 = never */
	uint64_t repair_keys;    /* entries fetched from it by repair */
	uint64_t pulls_ms;       /* lwwd_mono_ms() it last began a repair
	                            round with us, 0 = never */
	int clock_known;         /* a fresh clock estimate (clock.c) */
	int64_t clock_offset_ms; /* its clock minus ours */
	uint64_t clock_unc_ms;
	uint64_t clock_refused; /* our entries it refused (max drift) */
} lwwd_peer_state;

/* ---- what the modules hand each other (wired in main.c) ---- */
typedef struct lwwd lwwd;
typedef struct lwwd_hooks {
	/* Syncer thread, no lock held, after the fsync: a local batch (its
	 * seq, unsigned bytes) is durable: gossip publishes it. */
	void (*durable)(lwwd *d, uint64_t seq, const uint8_t *batch, size_t n);
	/* The writer (lwwd_writer_stop after it joined), d->mtx held, in
	 * the critical section that froze the active generation: segment
	 * (malloc'd, now the callee's) holds its records: the checkpointer
	 * applies it. Must not lock d->mtx nor block. */
	void (*frozen)(lwwd *d, char *segment);
	/* Any thread, d->mtx held or not: a batch of node (0: unknown) was
	 * lost or a record dropped: repair fetches it. */
	void (*loss)(lwwd *d, uint64_t node);
} lwwd_hooks;

/* ---- the node ---- */
struct lwwd {
	lwwd_config cfg;
	lww_key key;
	uint64_t self;
	char self_name[LWW_TRUST_NAME_MAX + 1];
	lww_store *store;
	lww_hlc hlc; /* writer thread only (start-up before it) */
	/* The greatest stamp the node kept above its clock when a recovery
	 * lowered it (persisted with the mark, lww_store_held; set by the
	 * recovery through lwwd_clock_writer_before): no entry is stored or
	 * logged above max(hlc.last, held_max), so a local stamp above it
	 * needs no look at what its keys hold (writer.c). Writer thread
	 * only (start-up before it). */
	uint64_t held_max;
	lwwd_stats stats;

	/* Guards here the peer table, hb_sent, the replay cache and the
	 * store's close; and the writer's and the checkpointer's fields
	 * that their structs say (writer.c, checkpoint.c). */
	pthread_mutex_t mtx;
	/* Guards trust and clients, not mtx: signatures are checked under
	 * its read side (lwwd_verify), so never under a lock that the
	 * write path needs; a reload swaps the sets under its write side. */
	pthread_rwlock_t keys_lock;
	lww_trust *trust;
	lww_trust *clients; /* NULL without --clients */
	struct lww_replay *replay;
	lwwd_peer_state *peers;
	size_t npeers;

	nng_socket api;
	lwwd_writer *writer; /* the write pipeline and log (writer.h) */
	lwwd_ckpt *ckpt; /* log replay, checkpoints, mem.h's table (ckpt.h) */
	int lock_fd;     /* the lock on --data, held until exit (main.c) */
	struct lwwd_api *apis;
	size_t napis;
	struct lwwd_api_pipes *api_pipes; /* connections without a request */
	struct lwwd_guard *guard; /* restarts a listener nng stopped (net.c) */
	struct lwwd_gossip *gossip;
	struct lwwd_repair *repair;
	struct lwwd_scrub *scrub;
	struct nng_http_server *metrics;
	int metrics_started;
	struct lwwd_work *work;
	struct lwwd_clock *clock;
	lwwd_hooks hooks;
};

int lwwd_api_start(lwwd *d);
void lwwd_api_stop(lwwd *d);

/* The clock against the peers (clock.c): probes, the fence, recovery
 * from a high-water mark in the future. Start after the store is open
 * and before the writer; stop after the writer and the repair server;
 * free after the API. */
int lwwd_clock_start(lwwd *d);
void lwwd_clock_stop(lwwd *d);
void lwwd_clock_free(lwwd *d);
/* API: non-zero if local writes must be refused now (LWW_ECLOCK), with a
 * one-line message into msg. Thread-safe, never blocks. */
int lwwd_clock_refuse(lwwd *d, char *msg, size_t cap);
/* Writer, before stamping a group: lowers its clock if recovery asks. */
void lwwd_clock_writer_before(lwwd *d);
/* Writer, while stamping a group: 1 (counted) if local writes are
 * fenced for the clock; they are refused with LWW_ECLOCK. */
int lwwd_clock_writer_fenced(lwwd *d);
/* Writer: a local write of key was refused (LWW_ECLOCK) because its new
 * stamp would lose to the entry held for it, stamped `held` (after a
 * recovery lowered the clock below it): counted, logged (rate-limited). */
void lwwd_clock_writer_held(lwwd *d, const uint8_t *key, size_t klen,
                            uint64_t held);
/* Writer, after a group: publishes its clock. */
void lwwd_clock_writer_after(lwwd *d);
/* Writer, between _before and _after: a remote stamp it observed (a
 * recovery never lowers the clock below one observed meanwhile). */
void lwwd_clock_writer_observed(lwwd *d, uint64_t stamp);
/* Writer: an entry stamped by node was refused as beyond max drift. */
void lwwd_clock_note_refused(lwwd *d, uint64_t node);
/* Repair server: the reply to a CLOCK_REQ (p, n) from node, received at
 * wall time t2, into out. */
lww_err lwwd_clock_probe_reply(lwwd *d, uint64_t node, const uint8_t *p,
                               size_t n, uint64_t t2, lww_buf *out);

/* JSON for the stats and peers requests, into b. */
lww_err lwwd_stats_json(lwwd *d, lww_buf *b);
lww_err lwwd_peers_json(lwwd *d, lww_buf *b);
/* The same counters in the Prometheus text format (version 0.0.4). */
lww_err lwwd_stats_prometheus(lwwd *d, lww_buf *b);
void lwwd_stat_max(_Atomic uint64_t *v, uint64_t x);

/* Refuses an --api URL that is neither ipc:// nor loopback tcp:// unless
 * --clients or --insecure-api; prints why. 0 if fine. */
int lwwd_api_check_url(const lwwd_config *c);

#endif /* LWWD_H */
