/*
 * stats.c - the stats and peers replies as JSON. Names come from the trust
 * file, whose syntax allows only [A-Za-z0-9._-], so they need no escaping.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwwd.h"

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

static unsigned long long
ld(_Atomic uint64_t *p)
{
	return (unsigned long long) atomic_load(p);
}

#define U(x) ld(&s->x)

lww_err
lwwd_stats_json(lwwd *d, lww_buf *b)
{
	lwwd_stats *s = &d->stats;
	lww_store_stats st;
	uint64_t fs = atomic_load(&s->fsyncs);
	size_t qlen;
	lww_err rv;

	if ((rv = lww_store_stats_get(d->store, &st)) != LWW_OK) {
		return rv;
	}
	pthread_mutex_lock(&d->mtx);
	qlen = d->qlen;
	pthread_mutex_unlock(&d->mtx);
	rv = put_fmt(b,
	             "{\"node\":\"%016" PRIx64 "\",\"name\":\"%s\","
	             "\"keys\":%llu,\"tombstones\":%llu,",
	             d->self, d->self_name,
	             (unsigned long long) (st.entries - st.tombstones),
	             (unsigned long long) st.tombstones);
	if (rv == LWW_OK)
		rv = put_fmt(b,
		             "\"store_bytes\":%llu,\"store_capacity\":%llu,"
		             "\"writes_local\":%llu,\"writes_remote\":%llu,"
		             "\"writes_failed\":%llu,\"write_queue\":%zu,",
		             (unsigned long long) st.bytes,
		             (unsigned long long) st.map_size, U(writes_local),
		             U(writes_remote), U(writes_failed), qlen);
	if (rv == LWW_OK)
		rv = put_fmt(b,
		             "\"batches_sent\":%llu,\"batches_received\":%llu,"
		             "\"batches_applied\":%llu,\"seq\":%llu,"
		             "\"seq_gaps\":%llu,",
		             U(batches_sent), U(batches_received),
		             U(batches_applied), ld(&d->seq_pub), U(seq_gaps));
	if (rv == LWW_OK)
		rv = put_fmt(b,
		             "\"rejected\":{\"malformed\":%llu,"
		             "\"untrusted\":%llu,\"bad_signature\":%llu,"
		             "\"forged_node_id\":%llu,\"own_key\":%llu},"
		             "\"drift_refused\":%llu,",
		             U(rejected_malformed), U(rejected_untrusted),
		             U(rejected_badsig), U(rejected_forged),
		             U(rejected_self), U(entries_drift));
	if (rv == LWW_OK)
		rv = put_fmt(b,
		             "\"heartbeats_sent\":%llu,"
		             "\"heartbeats_received\":%llu,"
		             "\"api_requests\":%llu,\"api_bad_requests\":%llu,"
		             "\"api_refused\":%llu,",
		             U(heartbeats_sent), U(heartbeats_received),
		             U(api_requests), U(api_bad_requests),
		             U(api_refused));
	if (rv == LWW_OK)
		rv = put_fmt(b,
		             "\"auth_refused\":{\"unsigned\":%llu,"
		             "\"unlisted\":%llu,\"bad_signature\":%llu,"
		             "\"stale\":%llu,\"replay\":%llu,"
		             "\"read_only\":%llu},",
		             U(auth_unsigned), U(auth_unlisted),
		             U(auth_bad_signature), U(auth_stale),
		             U(auth_replay), U(auth_readonly));
	if (rv == LWW_OK)
		rv = put_fmt(b,
		             "\"commits\":%llu,\"fsyncs\":%llu,"
		             "\"fsync_avg_us\":%llu,\"fsync_max_us\":%llu,",
		             U(commits), (unsigned long long) fs,
		             fs ? U(fsync_us_total) / fs : 0ULL,
		             U(fsync_us_max));
	if (rv == LWW_OK)
		rv =
		    put_fmt(b,
		            "\"repair\":{\"rounds\":%llu,\"in_sync\":%llu,"
		            "\"failed\":%llu,\"keys_fetched\":%llu,"
		            "\"keys_sent\":%llu,\"bytes_sent\":%llu,"
		            "\"bytes_received\":%llu,\"served\":%llu,"
		            "\"rejected\":%llu,\"last_ms\":%llu}}",
		            U(repair_rounds), U(repair_rounds_in_sync),
		            U(repair_rounds_failed), U(repair_keys_fetched),
		            U(repair_keys_sent), U(repair_bytes_sent),
		            U(repair_bytes_received), U(repair_requests_served),
		            U(repair_rejected), U(repair_last_ms));
	return rv;
}

lww_err
lwwd_peers_json(lwwd *d, lww_buf *b)
{
	uint64_t now = lwwd_now_ms();
	lww_err rv = lww_buf_put(b, "[", 1);

	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < d->npeers && rv == LWW_OK; i++) {
		const lwwd_peer_state *p = &d->peers[i];
		uint64_t lag = p->seq_announced > p->seq_applied
		                   ? p->seq_announced - p->seq_applied
		                   : 0;
		rv = put_fmt(
		    b,
		    "%s{\"name\":\"%s\",\"node\":\"%016" PRIx64 "\","
		    "\"last_contact_ms_ago\":%lld,\"seq\":%llu,"
		    "\"seq_announced\":%llu,\"lag\":%llu,"
		    "\"batches\":%llu,\"last_repair_ms_ago\":%lld,"
		    "\"repair_keys\":%llu}",
		    i ? "," : "", p->name, p->node,
		    p->last_contact_ms ? (long long) (now - p->last_contact_ms)
		                       : -1LL,
		    (unsigned long long) p->seq_applied,
		    (unsigned long long) p->seq_announced,
		    (unsigned long long) lag, (unsigned long long) p->batches,
		    p->last_repair_ms ? (long long) (now - p->last_repair_ms)
		                      : -1LL,
		    (unsigned long long) p->repair_keys);
	}
	pthread_mutex_unlock(&d->mtx);
	if (rv == LWW_OK) {
		rv = lww_buf_put(b, "]", 1);
	}
	return rv;
}
