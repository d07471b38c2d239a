/*
 * log.h - the node's log lines (log.c). Includes no other node header.
 */
#ifndef LWWD_LOG_H
#define LWWD_LOG_H

#include <stddef.h>
#include <stdint.h>

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

#endif /* LWWD_LOG_H */
