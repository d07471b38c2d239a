/*
 * stats.c - the node's counters, rendered two ways from one table: JSON
 * for `lwwctl stats` and the Prometheus text format for --metrics. Peer
 * names come from the trust file, whose syntax allows only
 * [A-Za-z0-9._-], so they need no escaping in either.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwwd.h"

void
lwwd_stat_max(_Atomic uint64_t *v, uint64_t x)
{
	uint64_t cur = atomic_load(v);
	while (x > cur && !atomic_compare_exchange_weak(v, &cur, x)) {
	}
}

/* Everything reported, read once so that one reply is consistent. */
typedef struct snap {
	uint64_t keys, tombstones, store_bytes, store_capacity, write_queue;
	uint64_t seq, fsync_avg_us;
	uint64_t v[sizeof(lwwd_stats) / sizeof(uint64_t)]; /* the atomics */
} snap;

#define S(field) offsetof(snap, field)
#define A(field) (offsetof(snap, v) + offsetof(lwwd_stats, field))

/* take() reads lwwd_stats as an array of counters. */
_Static_assert(sizeof(lwwd_stats) % sizeof(uint64_t) == 0,
               "lwwd_stats holds only 64-bit counters");

typedef struct metric {
	const char *group; /* JSON object holding the field, or NULL */
	const char *json;
	const char *prom; /* NULL: JSON only */
	const char *labels;
	const char *type;
	const char *help;
	size_t off;
	double scale; /* Prometheus value = value / scale */
} metric;

/* The one signed value: an int64_t kept in its uint64_t. */
#define SIGNED(m) ((m)->off == A(clock_offset_ms))

static const metric metrics[] = {
    {NULL, "keys", "lww_keys", NULL, "gauge", "Keys holding a value.", S(keys),
     1},
    {NULL, "tombstones", "lww_tombstones", NULL, "gauge",
     "Keys whose latest write is a removal.", S(tombstones), 1},
    {NULL, "store_bytes", "lww_store_bytes", NULL, "gauge",
     "Bytes of the LMDB file in use.", S(store_bytes), 1},
    {NULL, "store_capacity", "lww_store_capacity_bytes", NULL, "gauge",
     "LMDB map size: the store's capacity.", S(store_capacity), 1},
    {NULL, "writes_local", "lww_writes_total", "origin=\"local\"", "counter",
     "Writes applied, by origin.", A(writes_local), 1},
    {NULL, "writes_remote", "lww_writes_total", "origin=\"remote\"", "counter",
     NULL, A(writes_remote), 1},
    {NULL, "writes_failed", "lww_writes_failed_total", NULL, "counter",
     "Local writes refused by the store (full, I/O).", A(writes_failed), 1},
    {NULL, "write_queue", "lww_write_queue", NULL, "gauge",
     "Writes and batches waiting for the writer.", S(write_queue), 1},
    {NULL, "batches_sent", "lww_batches_sent_total", NULL, "counter",
     "Signed delta batches published.", A(batches_sent), 1},
    {NULL, "batches_received", "lww_batches_received_total", NULL, "counter",
     "Delta batches received and verified.", A(batches_received), 1},
    {NULL, "batches_applied", "lww_batches_applied_total", NULL, "counter",
     "Delta batches merged into the store.", A(batches_applied), 1},
    {NULL, "seq", "lww_seq", NULL, "gauge",
     "Sequence number of this node's last batch.", S(seq), 1},
    {NULL, "seq_gaps", "lww_seq_gaps_total", NULL, "counter",
     "Lost batches seen as sequence gaps.", A(seq_gaps), 1},
    {"rejected", "malformed", "lww_batches_rejected_total",
     "reason=\"malformed\"", "counter", "Gossip messages rejected, by reason.",
     A(rejected_malformed), 1},
    {"rejected", "untrusted", "lww_batches_rejected_total",
     "reason=\"untrusted\"", "counter", NULL, A(rejected_untrusted), 1},
    {"rejected", "bad_signature", "lww_batches_rejected_total",
     "reason=\"bad_signature\"", "counter", NULL, A(rejected_badsig), 1},
    {"rejected", "forged_node_id", "lww_batches_rejected_total",
     "reason=\"forged_node_id\"", "counter", NULL, A(rejected_forged), 1},
    {"rejected", "own_key", "lww_batches_rejected_total", "reason=\"own_key\"",
     "counter", NULL, A(rejected_self), 1},
    {"rejected", "unproven", "lww_batches_rejected_total",
     "reason=\"unproven\"", "counter", NULL, A(rejected_unproven), 1},
    {NULL, "same_key_elsewhere", "lww_same_key_elsewhere_total", NULL,
     "counter",
     "Heartbeats signed with this node's key by another process (a cloned "
     "key).",
     A(same_key_elsewhere), 1},
    {NULL, "drift_refused", "lww_drift_refused_total", NULL, "counter",
     "Remote entries refused for a stamp beyond max drift.", A(entries_drift),
     1},
    {NULL, "heartbeats_sent", "lww_heartbeats_sent_total", NULL, "counter",
     "Heartbeats published.", A(heartbeats_sent), 1},
    {NULL, "heartbeats_received", "lww_heartbeats_received_total", NULL,
     "counter", "Heartbeats received from trusted peers.",
     A(heartbeats_received), 1},
    {NULL, "api_requests", "lww_api_requests_total", NULL, "counter",
     "API requests received.", A(api_requests), 1},
    {NULL, "api_bad_requests", "lww_api_bad_requests_total", NULL, "counter",
     "API requests that did not decode.", A(api_bad_requests), 1},
    {NULL, "api_refused", "lww_api_refused_total", NULL, "counter",
     "API requests answered with an error.", A(api_refused), 1},
    {NULL, "listener_restarts", "lww_listener_restarts_total", NULL, "counter",
     "Listeners opened anew after nng stopped accepting on them.",
     A(listener_restarts), 1},
    {"auth_refused", "unsigned", "lww_auth_refused_total",
     "reason=\"unsigned\"", "counter",
     "API requests refused by client authentication, by reason.",
     A(auth_unsigned), 1},
    {"auth_refused", "unlisted", "lww_auth_refused_total",
     "reason=\"unlisted\"", "counter", NULL, A(auth_unlisted), 1},
    {"auth_refused", "oversized", "lww_auth_refused_total",
     "reason=\"oversized\"", "counter", NULL, A(auth_oversized), 1},
    {"auth_refused", "bad_signature", "lww_auth_refused_total",
     "reason=\"bad_signature\"", "counter", NULL, A(auth_bad_signature), 1},
    {"auth_refused", "stale", "lww_auth_refused_total", "reason=\"stale\"",
     "counter", NULL, A(auth_stale), 1},
    {"auth_refused", "replay", "lww_auth_refused_total", "reason=\"replay\"",
     "counter", NULL, A(auth_replay), 1},
    {"auth_refused", "read_only", "lww_auth_refused_total",
     "reason=\"read_only\"", "counter", NULL, A(auth_readonly), 1},
    {NULL, "commits", "lww_commits_total", NULL, "counter",
     "Store transactions committed (checkpoints, start-up replay).", A(commits),
     1},
    {NULL, "wal_bytes", "lww_wal_bytes_total", NULL, "counter",
     "Bytes appended to the write-ahead log.", A(wal_bytes), 1},
    {NULL, "wal_failed", "lww_wal_append_failures_total", NULL, "counter",
     "Write-ahead log appends that failed (the writes were refused).",
     A(wal_failed), 1},
    {"checkpoint", "count", "lww_checkpoints_total", "result=\"ok\"", "counter",
     "Checkpoints of the log into the store, by result.", A(checkpoints), 1},
    {"checkpoint", "failed", "lww_checkpoints_total", "result=\"failed\"",
     "counter", NULL, A(checkpoints_failed), 1},
    {"checkpoint", "entries", "lww_checkpoint_entries_total", NULL, "counter",
     "Entries moved from the log into the store.", A(checkpoint_entries), 1},
    {"checkpoint", "max_us", "lww_checkpoint_max_seconds", NULL, "gauge",
     "Longest checkpoint.", A(checkpoint_us_max), 1e6},
    {"checkpoint", "writer_waits", "lww_checkpoint_writer_waits_total", NULL,
     "counter", "Times the writer waited for a checkpoint (log memory bound).",
     A(checkpoint_waits), 1},
    {NULL, "fsyncs", "lww_fsync_seconds_count", NULL, "summary",
     "Log syncs that made writes durable, and the time they took.", A(fsyncs),
     1},
    {NULL, NULL, "lww_fsync_seconds_sum", NULL, "summary", NULL,
     A(fsync_us_total), 1e6},
    {NULL, "fsync_avg_us", NULL, NULL, NULL, NULL, S(fsync_avg_us), 1},
    {NULL, "fsync_max_us", "lww_fsync_max_seconds", NULL, "gauge",
     "Longest log sync.", A(fsync_us_max), 1e6},
    {"repair", "rounds", "lww_repair_rounds_total", "result=\"ok\"", "counter",
     "Repair rounds, by result.", A(repair_rounds), 1},
    {"repair", "in_sync", "lww_repair_rounds_total", "result=\"in_sync\"",
     "counter", NULL, A(repair_rounds_in_sync), 1},
    {"repair", "failed", "lww_repair_rounds_total", "result=\"failed\"",
     "counter", NULL, A(repair_rounds_failed), 1},
    {"repair", "stalled", "lww_repair_stalled_rounds_total", NULL, "counter",
     "Repair rounds where a peer made no progress on some leaf (also "
     "failed; logged as repair_stalled).",
     A(repair_rounds_stalled), 1},
    {"repair", "keys_fetched", "lww_repair_keys_total", "direction=\"fetched\"",
     "counter", "Entries moved by repair.", A(repair_keys_fetched), 1},
    {"repair", "keys_sent", "lww_repair_keys_total", "direction=\"sent\"",
     "counter", NULL, A(repair_keys_sent), 1},
    {"repair", "keys_pushed", "lww_repair_keys_total", "direction=\"pushed\"",
     "counter", NULL, A(repair_keys_pushed), 1},
    {"repair", "keys_taken", "lww_repair_keys_total", "direction=\"taken\"",
     "counter", NULL, A(repair_keys_taken), 1},
    {"repair", "bytes_sent", "lww_repair_bytes_total", "direction=\"sent\"",
     "counter", "Bytes of repair traffic.", A(repair_bytes_sent), 1},
    {"repair", "bytes_received", "lww_repair_bytes_total",
     "direction=\"received\"", "counter", NULL, A(repair_bytes_received), 1},
    {"repair", "pull_bytes", "lww_repair_pull_bytes_total", NULL, "counter",
     "Bytes both ways of the repair rounds this node ran.",
     A(repair_pull_bytes), 1},
    {"repair", "served", "lww_repair_requests_served_total", NULL, "counter",
     "Repair requests answered for peers.", A(repair_requests_served), 1},
    {"repair", "rejected", "lww_repair_rejected_total", NULL, "counter",
     "Repair messages refused (signature, trust, format).", A(repair_rejected),
     1},
    {"repair", "last_ms", "lww_repair_last_timestamp_seconds", NULL, "gauge",
     "Wall time of the last successful repair round.", A(repair_last_ms), 1e3},
    {"writes_refused", "disk_full", "lww_writes_refused_total",
     "reason=\"disk_full\"", "counter",
     "Writes refused because the disk or the store is full, by reason.",
     A(refused_disk_full), 1},
    {"writes_refused", "store_full", "lww_writes_refused_total",
     "reason=\"store_full\"", "counter", NULL, A(refused_store_full), 1},
    {"writes_refused", "clock", "lww_writes_refused_total", "reason=\"clock\"",
     "counter", NULL, A(clock_writes_refused), 1},
    {"integrity", "records_damaged", "lww_records_damaged_total", NULL,
     "counter", "Reads that met a stored record failing its checksum.",
     A(records_damaged), 1},
    {"integrity", "records_dropped", "lww_records_dropped_total", NULL,
     "counter", "Damaged records removed so that repair replaces them.",
     A(records_dropped), 1},
    {"integrity", "index_fixed", "lww_index_records_fixed_total", NULL,
     "counter", "Bucket index records rewritten from their record.",
     A(index_fixed), 1},
    {"integrity", "tree_fixed", "lww_tree_nodes_fixed_total", NULL, "counter",
     "Hash tree nodes recomputed from the records.", A(tree_fixed), 1},
    {"integrity", "scrub_records", "lww_scrub_records_total", NULL, "counter",
     "Records checked by the scrub.", A(scrub_records), 1},
    {"integrity", "scrub_passes", "lww_scrub_passes_total", NULL, "counter",
     "Completed scrub passes over the whole store.", A(scrub_passes), 1},
    {"integrity", "page_errors", "lww_store_page_errors_total", NULL, "counter",
     "Damaged pages LMDB reported (not fixable by the node).",
     A(store_page_errors), 1},
    {"clock", "offset_ms", "lww_clock_offset_seconds", NULL, "gauge",
     "This node's clock minus the median of its peers' (probes).",
     A(clock_offset_ms), 1e3},
    {"clock", "uncertainty_ms", "lww_clock_uncertainty_seconds", NULL, "gauge",
     "Uncertainty of that offset (half the probe's round trip).",
     A(clock_uncertainty_ms), 1e3},
    {"clock", "peers", "lww_clock_peers", NULL, "gauge",
     "Peers answering clock probes.", A(clock_peers), 1},
    {"clock", "state", "lww_clock_state", NULL, "gauge",
     "0 unknown, 1 ok, 2 ahead (fenced), 3 ahead (too few peers to fence), "
     "4 behind.",
     A(clock_state), 1},
    {"clock", "fenced", "lww_clock_fenced", NULL, "gauge",
     "Local writes refused: 1 clock ahead of the peers, 2 clock mark in the "
     "future.",
     A(clock_fenced), 1},
    {"clock", "fences", "lww_clock_fences_total", NULL, "counter",
     "Times local writes were fenced for the clock.", A(clock_fences), 1},
    {"clock", "refused_by_peers", "lww_clock_refused_by_peers_total", NULL,
     "counter",
     "This node's entries that peers refused as beyond max drift (their "
     "report).",
     A(clock_refused_by_peers), 1},
    {"clock", "rebases", "lww_clock_rebases_total", NULL, "counter",
     "Recoveries from a clock high-water mark in the future.", A(clock_rebases),
     1},
    {"clock", "stranded", "lww_clock_stranded_total", NULL, "counter",
     "Own writes found stamped in the future at a recovery.", A(clock_stranded),
     1},
    {"clock", "reissued", "lww_clock_reissued_total", NULL, "counter",
     "Own future-stamped writes re-issued at the corrected time.",
     A(clock_reissued), 1},
    {"clock", "exported", "lww_clock_exported_total", NULL, "counter",
     "Own future-stamped writes not re-issued (a peer holds another write "
     "of the key, or this one in the future, or could not tell) but "
     "exported to a file in the data directory.",
     A(clock_exported), 1},
    {"clock", "future_held", "lww_clock_future_held_total", NULL, "counter",
     "Own future-stamped writes kept at that stamp at a recovery (a peer "
     "holds it, or could not tell); local writes of their keys are refused "
     "until it passes.",
     A(clock_future_held), 1},
    {"clock", "unasked", "lww_clock_unasked_total", NULL, "counter",
     "Own future-stamped writes kept at that stamp at a recovery because a "
     "configured peer did not answer what it holds for them (it may hold "
     "a newer write); counted in future_held and exported too.",
     A(clock_unasked), 1},
    /* The gossip group stays last: its JSON object ends with the recent
     * deliveries (lwwd_stats_json). */
    {"gossip", "neighbours", "lww_gossip_neighbours", NULL, "gauge",
     "Neighbours on the gossip link, known by their heartbeat.",
     A(gossip_neighbours), 1},
    {"gossip", "eager", "lww_gossip_eager_neighbours", NULL, "gauge",
     "Neighbours this node pushes batches to (the broadcast tree).",
     A(gossip_eager), 1},
    {"gossip", "lazy", "lww_gossip_lazy_neighbours", NULL, "gauge",
     "Neighbours this node only announces batches to.", A(gossip_lazy), 1},
    {"gossip", "copies_received", "lww_gossip_copies_received_total", NULL,
     "counter", "Batch copies received from neighbours, duplicates included.",
     A(gossip_copies), 1},
    {"gossip", "duplicates", "lww_gossip_duplicates_total", NULL, "counter",
     "Batch copies received that had been seen before.", A(gossip_duplicates),
     1},
    {"gossip", "delivered", "lww_gossip_delivered_total", NULL, "counter",
     "Remote batches received for the first time and verified.",
     A(gossip_delivered), 1},
    {"gossip", "forwarded", "lww_gossip_forwarded_total", NULL, "counter",
     "Copies of other nodes' batches relayed to neighbours.",
     A(gossip_forwarded), 1},
    {"gossip", "bytes_received", "lww_gossip_received_bytes_total", NULL,
     "counter", "Bytes received on the gossip link.", A(gossip_bytes_received),
     1},
    {"gossip", "bytes_sent", "lww_gossip_sent_bytes_total", NULL, "counter",
     "Bytes sent on the gossip link.", A(gossip_bytes_sent), 1},
    {"gossip", "ihave_sent", "lww_gossip_ihave_sent_total", NULL, "counter",
     "Announcements (IHAVE) sent to lazy neighbours.", A(gossip_ihave_sent), 1},
    {"gossip", "grafts_sent", "lww_gossip_grafts_sent_total", NULL, "counter",
     "Missing batches asked of a neighbour (GRAFT).", A(gossip_grafts_sent), 1},
    {"gossip", "grafts_served", "lww_gossip_grafts_served_total", NULL,
     "counter", "Batches sent to a neighbour that asked for them.",
     A(gossip_grafts_served), 1},
    {"gossip", "prunes_sent", "lww_gossip_prunes_sent_total", NULL, "counter",
     "Links made lazy after a duplicate (PRUNE).", A(gossip_prunes_sent), 1},
    {"gossip", "given_up", "lww_gossip_given_up_total", NULL, "counter",
     "Batches no neighbour could send, left to repair.", A(gossip_given_up), 1},
    {"gossip", "send_dropped", "lww_gossip_send_dropped_total", NULL, "counter",
     "Link messages dropped before sending (queue full).",
     A(gossip_send_dropped), 1},
};

static lww_err
put_fmt(lww_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= sizeof(tmp)) {
		return LWW_EINVAL;
	}
	return lww_buf_put(b, tmp, (size_t) n);
}

static uint64_t
value(const snap *s, const metric *m)
{
	return *(const uint64_t *) ((const char *) s + m->off);
}

/* Adds what the logged writes not yet in the store change in the key
 * and tombstone counts (none once a checkpoint ran; all of them while a
 * full disk or store stops checkpoints). */
static void
logged_counts(lwwd *d, snap *s)
{
	lwwd_mem_range r;
	lww_buf vb = LWW_BUF_INIT;

	if (lwwd_mem_range_get(lwwd_ckpt_mem(d), NULL, 0, NULL, 0, &r) !=
	    LWW_OK) {
		return;
	}
	for (size_t i = 0; i < r.n; i++) {
		const lww_entry *m = &r.v[i];
		lww_entry cur;
		int tomb = lww_entry_is_tombstone(m);
		lww_err rv =
		    lww_store_get(d->store, m->key, m->klen, &vb, &cur);
		if (rv == LWW_OK) {
			if (!lww_entry_wins(m, &cur) ||
			    lww_entry_is_tombstone(&cur) == tomb) {
				continue;
			}
			/* The key moves from one count to the other. */
			if (tomb) {
				s->keys--;
			} else {
				s->tombstones--;
			}
		} else if (rv != LWW_ENOTFOUND) {
			continue;
		}
		if (tomb) {
			s->tombstones++;
		} else {
			s->keys++;
		}
	}
	lww_buf_fini(&vb);
	lwwd_mem_range_free(&r);
}

static lww_err
take(lwwd *d, snap *s)
{
	_Atomic uint64_t *a = (_Atomic uint64_t *) &d->stats;
	lww_store_stats st;
	lww_err rv;

	/* Counts come from the store: let it hold every acknowledged write
	 * first (both for lwwctl stats and the metrics endpoint). */
	lwwd_wal_barrier(d);
	/* Under the mutex: the metrics server may ask while main closes the
	 * store at shutdown. */
	pthread_mutex_lock(&d->mtx);
	rv =
	    d->store != NULL ? lww_store_stats_get(d->store, &st) : LWW_ECLOSED;
	s->write_queue = lwwd_writer_queued(d);
	pthread_mutex_unlock(&d->mtx);
	if (rv != LWW_OK) {
		return rv;
	}
	{
		uint64_t q = s->write_queue;
		memset(s, 0, sizeof(*s));
		s->write_queue = q;
	}
	for (size_t i = 0; i < sizeof(s->v) / sizeof(s->v[0]); i++) {
		s->v[i] = atomic_load(&a[i]);
	}
	s->keys = st.entries - st.tombstones;
	s->tombstones = st.tombstones;
	logged_counts(d, s);
	s->store_bytes = st.bytes;
	s->store_capacity = st.map_size;
	s->seq = lwwd_writer_seq(d);
	{
		uint64_t n = atomic_load(&d->stats.fsyncs);
		s->fsync_avg_us =
		    n ? atomic_load(&d->stats.fsync_us_total) / n : 0;
	}
	return LWW_OK;
}

lww_err
lwwd_stats_json(lwwd *d, lww_buf *b)
{
	const char *group = NULL;
	lww_err rv;
	snap s;

	if ((rv = take(d, &s)) != LWW_OK) {
		return rv;
	}
	rv = put_fmt(b, "{\"node\":\"%016" PRIx64 "\",\"name\":\"%s\"", d->self,
	             d->self_name);
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
		const metric *m = &metrics[i];
		const char *sep = ",";
		if (rv != LWW_OK || m->json == NULL) {
			continue;
		}
		/* Fields of one group are adjacent in the table. */
		if (group != NULL &&
		    (m->group == NULL || strcmp(group, m->group) != 0)) {
			rv = lww_buf_put(b, "}", 1);
			group = NULL;
		}
		if (rv == LWW_OK && m->group != NULL && group == NULL) {
			rv = put_fmt(b, ",\"%s\":{", m->group);
			group = m->group;
			sep = "";
		}
		if (rv == LWW_OK && SIGNED(m)) {
			rv = put_fmt(b, "%s\"%s\":%" PRId64, sep, m->json,
			             (int64_t) value(&s, m));
		} else if (rv == LWW_OK) {
			rv = put_fmt(b, "%s\"%s\":%" PRIu64, sep, m->json,
			             value(&s, m));
		}
	}
	if (rv == LWW_OK && group != NULL && strcmp(group, "gossip") == 0) {
		rv = lwwd_gossip_deliveries_json(d, b);
	}
	if (rv == LWW_OK && group != NULL) {
		rv = lww_buf_put(b, "}", 1);
	}
	return rv ? rv : lww_buf_put(b, "}", 1);
}

static lww_err
prom_value(lww_buf *b, const char *name, const char *labels, double v)
{
	return labels != NULL ? put_fmt(b, "%s{%s} %.17g\n", name, labels, v)
	                      : put_fmt(b, "%s %.17g\n", name, v);
}

/* Batches of a peer announced and not received; -1 when nothing of it
 * is on record (its sequence numbers say nothing yet: a node numbers
 * its batches from the wall clock, main.c). */
static int64_t
peer_lag(const lwwd_peer_state *p)
{
	if (p->seq_applied == 0) {
		return -1;
	}
	return p->seq_announced > p->seq_applied
	           ? (int64_t) (p->seq_announced - p->seq_applied)
	           : 0;
}

lww_err
lwwd_stats_prometheus(lwwd *d, lww_buf *b)
{
	const char *last = "";
	uint64_t now;
	lww_err rv;
	snap s;

	if ((rv = take(d, &s)) != LWW_OK) {
		return rv;
	}
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
		const metric *m = &metrics[i];
		const char *base = m->prom;
		if (rv != LWW_OK || base == NULL) {
			continue;
		}
		/* One HELP/TYPE per family (a summary's _count and _sum). */
		if (m->help != NULL && strcmp(base, last) != 0) {
			size_t n = strlen(base);
			int summary = strcmp(m->type, "summary") == 0;
			rv =
			    put_fmt(b, "# HELP %.*s %s\n# TYPE %.*s %s\n",
			            (int) (summary ? n - 6 : n), base, m->help,
			            (int) (summary ? n - 6 : n), base, m->type);
		}
		last = base;
		if (rv == LWW_OK) {
			rv = prom_value(b, base, m->labels,
			                SIGNED(m)
			                    ? (double) (int64_t) value(&s, m) /
			                          m->scale
			                    : (double) value(&s, m) / m->scale);
		}
	}
	if (rv == LWW_OK) {
		rv = put_fmt(
		    b, "# HELP lww_peer_last_contact_seconds Seconds since "
		       "a peer was last heard (-1: never).\n"
		       "# TYPE lww_peer_last_contact_seconds gauge\n");
	}
	pthread_mutex_lock(&d->mtx);
	now = lwwd_mono_ms(); /* the peer table's clock, read under its lock */
	for (size_t i = 0; i < d->npeers && rv == LWW_OK; i++) {
		const lwwd_peer_state *p = &d->peers[i];
		char l[96];
		snprintf(l, sizeof(l), "peer=\"%s\"", p->name);
		rv = prom_value(b, "lww_peer_last_contact_seconds", l,
		                p->last_contact_ms
		                    ? (double) (now - p->last_contact_ms) / 1e3
		                    : -1.0);
	}
	if (rv == LWW_OK) {
		rv = put_fmt(b, "# HELP lww_peer_lag_batches Batches a peer "
		                "announced that have not arrived.\n"
		                "# TYPE lww_peer_lag_batches gauge\n");
	}
	for (size_t i = 0; i < d->npeers && rv == LWW_OK; i++) {
		const lwwd_peer_state *p = &d->peers[i];
		char l[96];
		if (peer_lag(p) < 0) {
			continue;
		}
		snprintf(l, sizeof(l), "peer=\"%s\"", p->name);
		rv = prom_value(b, "lww_peer_lag_batches", l,
		                (double) peer_lag(p));
	}
	if (rv == LWW_OK) {
		rv = put_fmt(b, "# HELP lww_peer_clock_offset_seconds A peer's "
		                "clock minus this node's (probes; absent: no "
		                "estimate).\n"
		                "# TYPE lww_peer_clock_offset_seconds gauge\n");
	}
	for (size_t i = 0; i < d->npeers && rv == LWW_OK; i++) {
		const lwwd_peer_state *p = &d->peers[i];
		char l[96];
		if (!p->clock_known) {
			continue;
		}
		snprintf(l, sizeof(l), "peer=\"%s\"", p->name);
		rv = prom_value(b, "lww_peer_clock_offset_seconds", l,
		                (double) p->clock_offset_ms / 1e3);
	}
	/* Per origin, what the gossip link brought and relayed (gossip's
	 * lock is a leaf under d->mtx). */
	if (rv == LWW_OK) {
		rv =
		    put_fmt(b, "# HELP lww_peer_copies_total Copies of a "
		               "node's batches received, duplicates included.\n"
		               "# TYPE lww_peer_copies_total counter\n");
	}
	for (size_t i = 0; i < d->npeers && rv == LWW_OK; i++) {
		uint64_t copies, fwd;
		char l[96];
		lwwd_gossip_origin_counts(d, d->peers[i].node, &copies, &fwd);
		snprintf(l, sizeof(l), "peer=\"%s\"", d->peers[i].name);
		rv = prom_value(b, "lww_peer_copies_total", l, (double) copies);
	}
	if (rv == LWW_OK) {
		rv = put_fmt(b, "# HELP lww_peer_forwarded_total Copies of a "
		                "node's batches relayed to neighbours.\n"
		                "# TYPE lww_peer_forwarded_total counter\n");
	}
	for (size_t i = 0; i < d->npeers && rv == LWW_OK; i++) {
		uint64_t copies, fwd;
		char l[96];
		lwwd_gossip_origin_counts(d, d->peers[i].node, &copies, &fwd);
		snprintf(l, sizeof(l), "peer=\"%s\"", d->peers[i].name);
		rv = prom_value(b, "lww_peer_forwarded_total", l, (double) fwd);
	}
	pthread_mutex_unlock(&d->mtx);
	return rv;
}

lww_err
lwwd_peers_json(lwwd *d, lww_buf *b)
{
	lww_err rv = lww_buf_put(b, "[", 1);
	uint64_t now;

	pthread_mutex_lock(&d->mtx);
	now = lwwd_mono_ms(); /* the peer table's clock, read under its lock */
	for (size_t i = 0; i < d->npeers && rv == LWW_OK; i++) {
		const lwwd_peer_state *p = &d->peers[i];
		char off[24] = "null", unc[24] = "null", lag[24] = "null";
		uint64_t copies, fwd;
		lwwd_gossip_origin_counts(d, p->node, &copies, &fwd);
		if (peer_lag(p) >= 0) {
			snprintf(lag, sizeof(lag), "%lld",
			         (long long) peer_lag(p));
		}
		if (p->clock_known) {
			snprintf(off, sizeof(off), "%lld",
			         (long long) p->clock_offset_ms);
			snprintf(unc, sizeof(unc), "%llu",
			         (unsigned long long) p->clock_unc_ms);
		}
		rv = put_fmt(
		    b,
		    "%s{\"kind\":\"origin\",\"name\":\"%s\",\"node\":"
		    "\"%016" PRIx64 "\","
		    "\"last_contact_ms_ago\":%lld,\"seq\":%llu,"
		    "\"seq_announced\":%llu,\"lag\":%s,"
		    "\"batches\":%llu,\"last_repair_ms_ago\":%lld,"
		    "\"repair_keys\":%llu,\"clock_offset_ms\":%s,"
		    "\"clock_uncertainty_ms\":%s,\"clock_refused_ours\":%llu,"
		    "\"copies\":%llu,\"forwarded\":%llu}",
		    i ? "," : "", p->name, p->node,
		    p->last_contact_ms ? (long long) (now - p->last_contact_ms)
		                       : -1LL,
		    (unsigned long long) p->seq_applied,
		    (unsigned long long) p->seq_announced, lag,
		    (unsigned long long) p->batches,
		    p->last_repair_ms ? (long long) (now - p->last_repair_ms)
		                      : -1LL,
		    (unsigned long long) p->repair_keys, off, unc,
		    (unsigned long long) p->clock_refused,
		    (unsigned long long) copies, (unsigned long long) fwd);
	}
	{
		int first = d->npeers == 0;
		pthread_mutex_unlock(&d->mtx);
		/* Then each configured address, by URL, and each
		 * neighbour on the link. */
		if (rv == LWW_OK) {
			rv = lwwd_dialers_json(d, b, first);
		}
		if (rv == LWW_OK) {
			rv = lwwd_gossip_neighbours_json(
			    d, b, b->len > 0 && b->p[b->len - 1] == '[');
		}
	}
	if (rv == LWW_OK) {
		rv = lww_buf_put(b, "]", 1);
	}
	return rv;
}
