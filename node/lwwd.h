/*
 * lwwd.h - the peer node's modules and the state they share.
 *
 * Threads: nng's own threads run the API, gossip and metrics callbacks,
 * which never block: what may wait (list, stats, peers, reload, scrapes)
 * goes to the worker thread (work.c). The writer thread owns the hybrid
 * logical clock, the log segment it appends to and the active in-memory
 * generation (writer.c, mem.h); the syncer thread fsyncs what the writer
 * logged, then publishes its batches and answers its clients (writer.c);
 * the checkpointer thread puts each frozen generation into the store
 * (checkpoint.c). The heartbeat thread publishes liveness and restarts a
 * paused gossip receive (gossip.c); repair runs two threads, the --sync
 * server and the rounds against peers (repair.c); the scrub thread checks
 * the store and drops damaged records (scrub.c). The store is written by
 * the checkpointer, start-up and the scrub (LMDB serialises its write
 * transactions). Counters are atomics; the peer table, the op and sync
 * queues and the checkpoint state are behind the node's mutex; the
 * in-memory generations (mem.h) and the worker's queue behind their own;
 * the trust sets behind keys_lock, under which signatures are checked
 * (trust.c). Every timed wait runs on the monotonic clock
 * (lwwd_cond_init).
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
#include "wal.h"

/* ---- logging (log.c) ---- */
enum { LWWD_LOG_ERROR, LWWD_LOG_WARN, LWWD_LOG_INFO, LWWD_LOG_DEBUG };
extern int lwwd_log_level;
int lwwd_log_parse_level(const char *s);
/* One line on stderr: time, level, event keyword, then key=value text. */
void lwwd_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A key for a log line, into out (always terminated): printable ASCII
 * quoted with \" and \\ escaped, anything else hex:...; long keys are
 * cut with ... and their length. Returns out. */
char *lwwd_log_key(char *out, size_t cap, const uint8_t *k, size_t n);

/* Rate limit for a line that a persistent condition repeats (a full disk
 * refusing every write): lwwd_log_due says whether to log now: on the
 * first call, when `reason` changes, or once `gap_us` passed since the
 * last line; *skipped gets the calls not logged since. One owner thread
 * per limit. */
typedef struct lwwd_log_limit {
	int reason;
	uint64_t skipped;
	uint64_t at_us;
	int started;
} lwwd_log_limit;
int lwwd_log_due(lwwd_log_limit *l, int reason, uint64_t gap_us,
                 uint64_t *skipped);
#define LWWD_LOG_GAP_US (60 * UINT64_C(1000000))

/* Signed client requests: freshness window (the replay cache's size is
 * LWW_NONCES_MAX). */
#define LWWD_FRESH_MS 30000

/* ---- configuration (config.c) ---- */
#define LWWD_REPAIR_INTERVAL_DEFAULT 5000
#define LWWD_SCRUB_INTERVAL_DEFAULT  3600000 /* ms: a full pass an hour */
#define LWWD_SCRUB_INTERVAL_MIN      1000
typedef struct lwwd_config {
	char *data;
	char *key;
	char *trust;
	char *clients; /* NULL: the API accepts unsigned requests */
	char *api;
	char *gossip;
	char *sync;
	char **peers;
	size_t npeers;
	uint64_t max_drift;
	int fsync_always;
	size_t map_size;
	int insecure_api;
	uint64_t repair_interval; /* ms between periodic rounds; 0: none */
	uint64_t scrub_interval;  /* ms per full record check; 0: none */
	char *tls_cert;           /* PEM certificate and key, for tls+tcp */
	char *tls_ca;             /* PEM CA that signs every node's cert */
	char *tls_server_name;    /* name to expect in peers' certificates */
	char *metrics;            /* http://HOST:PORT/PATH, or NULL */
	int wal_skip_damaged;     /* --wal-recovery skip-damaged */
} lwwd_config;

/* Parses flags and the config file. Returns 0 to run, 1 after --help or
 * --version (exit 0), -1 on error (message printed, exit 2). */
int lwwd_config_parse(lwwd_config *c, int argc, char **argv);
void lwwd_config_fini(lwwd_config *c);
/* The sync URL a gossip URL implies: tcp port + 1, or ipc path + ".sync". */
char *lwwd_config_default_sync(const char *gossip);

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
	int clock_known;         /* a fresh clock estimate (clock.c) */
	int64_t clock_offset_ms; /* its clock minus ours */
	uint64_t clock_unc_ms;
	uint64_t clock_refused; /* our entries it refused (max drift) */
} lwwd_peer_state;

/* ---- one queued write (writer.c) ---- */
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

/* ---- the node ---- */
typedef struct lwwd {
	lwwd_config cfg;
	lww_key key;
	uint64_t self;
	char self_name[LWW_TRUST_NAME_MAX + 1];
	lww_store *store;
	lww_hlc hlc; /* writer thread only (start-up before it) */
	lwwd_stats stats;

	pthread_mutex_t mtx;  /* guards peers, the op queue */
	pthread_cond_t cv;    /* writer: queue not empty, or stopping */
	pthread_cond_t hb_cv; /* heartbeat: hb_stopping */
	int hb_stopping;
	/* Guards trust and clients, not mtx: signatures are checked under
	 * its read side (lwwd_open_signed), so never under a lock that the
	 * write path needs; a reload swaps the sets under its write side. */
	pthread_rwlock_t keys_lock;
	lww_trust *trust;
	lww_trust *clients; /* NULL without --clients */
	struct lww_replay *replay;
	lwwd_peer_state *peers;
	size_t npeers;
	lwwd_op *qhead, *qtail;
	size_t qlen;
	int applying; /* the writer holds a group it has not committed */
	int stopping;
	uint64_t seq; /* last published batch seq (writer) */
	_Atomic uint64_t seq_pub;

	nng_socket pub;
	nng_socket sub;
	nng_socket api;
	pthread_t writer;
	pthread_t syncer; /* makes logged groups durable (writer.c) */
	int syncer_started;
	int sync_stopping;
	int syncing; /* the syncer holds groups it has not answered */
	pthread_cond_t sync_cv;
	pthread_cond_t sync_idle_cv;
	struct synced *sync_head, *sync_tail;

	/* The write-ahead log and its checkpoints (checkpoint.c). Under
	 * mtx unless noted. */
	lwwd_mem *mem;       /* logged, not yet in the store (mem.h) */
	struct lww_wal *wal; /* the segment appended to (writer) */
	uint64_t wal_next;   /* number of the next segment (writer) */
	char *wal_path;      /* path of d->wal (writer) */
	uint64_t mem_gen;    /* number of the active generation */
	uint64_t ckpt_done;  /* last generation the store holds */
	int ckpt_ready;      /* a frozen generation waits or is applied */
	char *ckpt_path;     /* its segment, removed once it is applied */
	/* Segments start-up could not apply (store or disk full), frozen
	 * with that generation (ckpt_path NULL), and how many. */
	struct lwwd_leftover *left;
	size_t nleft;
	lww_err wal_err;  /* why d->wal is NULL (writer) */
	int wal_repair;   /* start-up skipped or dropped log records */
	uint64_t wal_hlc; /* greatest stamp held, not stored (start-up) */
	int lock_fd;      /* the lock on --data, held until exit */
	lww_err ckpt_err; /* the last checkpoint failed so: refuse */
	int ckpt_wanted;  /* a reader waits for a checkpoint */
	int ckpt_stopping;
	uint64_t ckpt_last_us; /* when the writer last froze (writer) */
	_Atomic int mem_dirty; /* the active generation holds data */
	pthread_t ckpt;
	int ckpt_started;
	pthread_cond_t ckpt_cv; /* checkpointer: work, stop; readers: done */
	pthread_t heartbeat;
	int writer_started;
	int heartbeat_started;
	struct lwwd_api *apis;
	size_t napis;
	struct lwwd_api_pipes *api_pipes; /* connections without a request */
	struct lwwd_guard *guard; /* restarts a listener nng stopped (net.c) */
	/* The stamps of the last heartbeats sent, under mtx (gossip.c): one
	 * signed with our key that is none of them comes from another
	 * process with our key. */
	uint64_t hb_sent[16];
	unsigned hb_sent_next;
	uint64_t same_key_logged_ms; /* lwwd_mono_ms() of the last error */
	nng_aio *sub_aio;
	int sub_paused; /* under mtx: a receive failed; the heartbeat thread
	                   starts the next */
	_Atomic int sub_stopping; /* gossip stops: sub_aio is not re-armed */
	struct lwwd_repair *repair;
	struct lwwd_scrub *scrub;
	struct nng_http_server *metrics;
	int metrics_started;
	struct lwwd_work *work;
	struct lwwd_clock *clock;
} lwwd;

/* Wall-clock milliseconds: for stamps and what users read as dates,
 * never for a wait or a duration. */
uint64_t lwwd_now_ms(void);
/* Monotonic microseconds, for durations and deadlines. */
uint64_t lwwd_mono_us(void);
/* Monotonic milliseconds (lwwd_mono_us() / 1000). */
uint64_t lwwd_mono_ms(void);

/* ---- threads and waits (thr.c) ---- */
/* Initialises a condition variable whose timed waits run on the monotonic
 * clock, so that a wall-clock step never moves their deadlines. Every
 * condition variable of the node is made so. */
void lwwd_cond_init(pthread_cond_t *cv);
/* Waits on cv (made by lwwd_cond_init; mtx held) until it is signalled or
 * lwwd_mono_us() reaches deadline_us (UINT64_MAX: no deadline). Returns 0
 * when woken (perhaps spuriously: callers re-check their condition),
 * ETIMEDOUT once the deadline has passed. */
int lwwd_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mtx,
                         uint64_t deadline_us);

/* ---- the worker: requests that may block (work.c) ---- */
/* nng forbids blocking in its callbacks, so a callback whose request may
 * wait (for a checkpoint, the node's mutex, a file) queues a job here and
 * returns; the job answers its request when it is done. One thread runs
 * the jobs in the order queued. */
typedef struct lwwd_job lwwd_job;
struct lwwd_job {
	void (*run)(lwwd_job *job); /* on the worker thread */
	lwwd_job *next;
};
int lwwd_work_start(lwwd *d);
/* Queues job (owned by the caller until run is called). LWW_ECLOSED once
 * the worker stops (or never started): the job is not taken. Never
 * blocks beyond a short mutex. Thread-safe. */
lww_err lwwd_work_submit(lwwd *d, lwwd_job *job);
/* Refuses new jobs, runs every job queued, and joins the thread. Jobs
 * may still be offered (and are refused) until lwwd_work_free. */
void lwwd_work_stop(lwwd *d);
void lwwd_work_free(lwwd *d);

/* ---- addresses (net.c) ---- */
/* Refuses tls+tcp:// addresses without --tls-cert and --tls-ca. */
int lwwd_tls_check(const lwwd_config *c);
/* Listens on url (flag names the option, for errors); with out != NULL
 * the listener is returned unstarted, for more options. Prints why and
 * returns -1 on error. */
int lwwd_listen(const lwwd_config *c, nng_socket s, const char *url,
                const char *flag, nng_listener *out);
/* Listens on url and starts the listener, mode ipc_perms for an ipc://
 * url (0: nng's default); a guard thread listens anew if nng stops
 * accepting on it (net.c: nng 1.5 bug #1518). peer_proto is the SP
 * protocol number of its peers (LWWD_SP_REQ, LWWD_SP_SUB), to check that
 * it still accepts. */
#define LWWD_SP_SUB 0x21
#define LWWD_SP_REQ 0x30
int lwwd_listen_guarded(lwwd *d, nng_socket s, const char *url,
                        const char *flag, uint16_t peer_proto, int ipc_perms);
/* Stops the guard thread; before the guarded sockets close. */
void lwwd_guard_stop(lwwd *d);
/* Dials url without blocking (as lwwd_dial) and watches the dialer: a
 * failure is a warning naming the URL, once a minute, and
 * lwwd_dialers_json reports its state. After lwwd_listen_guarded. */
int lwwd_dial_watched(lwwd *d, nng_socket s, const char *url, const char *flag);
/* Appends one JSON object per watched dialer (url, dial, state:
 * connected, connecting or failing, last_error), each after a comma
 * unless first and it is the first. */
lww_err lwwd_dialers_json(lwwd *d, lww_buf *b, int first);
/* Dials url without blocking; nng redials while it is down. */
int lwwd_dial(const lwwd_config *c, nng_socket s, const char *url,
              const char *flag);

/* ---- writes durable before the store has them (checkpoint.c; the
 * table itself is mem.h) ---- */
/* Start-up: applies the segments a previous run left in --data to the
 * store and removes them, then opens a fresh segment. A damaged segment
 * stops the start (the segment is kept) unless --wal-recovery
 * skip-damaged, which skips the damage and moves the segment aside.
 * Segments the store or disk has no room for stay, and are read from
 * memory until a checkpoint applies them; without room for a new
 * segment d->wal stays NULL. Either way writes are refused until then.
 * Prints why and returns -1 on error. */
int lwwd_wal_recover(lwwd *d);
/* Writer: makes a new segment if there is none (start-up found the disk
 * full); LWW_OK, or why writes must be refused. */
lww_err lwwd_wal_reopen(lwwd *d);
int lwwd_ckpt_start(lwwd *d);
/* Shutdown, after the writer: puts everything logged into the store. */
void lwwd_ckpt_stop(lwwd *d);
/* Writer, between groups: freezes the active generation and starts its
 * checkpoint when it is time (idle: as soon as one can run). */
void lwwd_ckpt_maybe(lwwd *d, int idle);
/* Waits until the store holds every write acknowledged so far, so that
 * scans and counts read from it see them. Gives up after 3 s, and at
 * once while checkpoints fail: the store is then read as it is. */
void lwwd_wal_barrier(lwwd *d);

int lwwd_writer_start(lwwd *d);
/* Queues an op; LWW_ECLOSED if the node is stopping (op not taken). */
lww_err lwwd_writer_submit(lwwd *d, lwwd_op *op);
/* Stops after applying everything queued, and joins. */
void lwwd_writer_stop(lwwd *d);

int lwwd_api_start(lwwd *d);
void lwwd_api_stop(lwwd *d);

int lwwd_gossip_start(lwwd *d);
void lwwd_gossip_stop(lwwd *d);
/* Publishes a signed payload on the PUB socket. */
void lwwd_gossip_publish(lwwd *d, const uint8_t *p, size_t n);

/* Anti-entropy repair (repair.c): the --sync REP server and the rounds
 * against each peer. */
int lwwd_repair_start(lwwd *d);
void lwwd_repair_stop(lwwd *d);
/* Asks for a round with the peer whose node id is given (0: any) soon;
 * called when gossip shows a lost batch. Rate-limited. */
void lwwd_repair_trigger(lwwd *d, uint64_t node);

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

/* The Prometheus endpoint (metrics.c), if --metrics is given. Scrapes
 * are answered by the worker. Stop waits for a scrape being answered. */
int lwwd_metrics_start(lwwd *d);
void lwwd_metrics_stop(lwwd *d);

/* JSON for the stats and peers requests, into b. */
lww_err lwwd_stats_json(lwwd *d, lww_buf *b);
lww_err lwwd_peers_json(lwwd *d, lww_buf *b);
/* The same counters in the Prometheus text format (version 0.0.4). */
lww_err lwwd_stats_prometheus(lwwd *d, lww_buf *b);
void lwwd_stat_max(_Atomic uint64_t *v, uint64_t x);

/* -1 with a message naming the chmod fix if path (a file, or with dir
 * a directory) is writable by every user. */
int lwwd_check_not_world_writable(const char *flag, const char *path, int dir,
                                  char *err, size_t errlen);
/* Loads the trust file and rebuilds the peer table, then the clients file
 * if there is one (start-up, SIGHUP, lwwctl reload); logs what changed
 * unless `initial`. On error keeps what it had, writes why into err and
 * returns -1. */
int lwwd_reload(lwwd *d, int initial, char *err, size_t errlen);
/* Non-zero if p, n is an envelope whose signer is listed in --clients;
 * checks no signature (a table lookup, for what is refused unread). */
int lwwd_client_listed(lwwd *d, const uint8_t *p, size_t n);
/* Opens an envelope signed by a key of the trust file (clients != 0: of
 * the --clients file; errors as lww_envelope_open). The signature is
 * checked under keys_lock's read side, never under d->mtx; on LWW_OK
 * *signer gets a copy of the signer's entry and env->peer points to it. */
LWW_MUST_CHECK lww_err lwwd_open_signed(lwwd *d, int clients, const uint8_t *p,
                                        size_t n, lww_envelope *env,
                                        lww_peer *signer);
/* Whether node is the node id of a key in the trust file. */
int lwwd_trusted_node(lwwd *d, uint64_t node);

/* Refuses an --api URL that is neither ipc:// nor loopback tcp:// unless
 * --clients or --insecure-api; prints why. 0 if fine. */
int lwwd_api_check_url(const lwwd_config *c);

#endif /* LWWD_H */
