/*
 * log.c - one line per event on stderr:
 *   2026-11-23T16:34:43.123Z level=info event=start key=value ...
 * The event keyword is stable so that scripts and journald filters can
 * rely on it. Secrets are never passed here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lwwd.h"

int lwwd_log_level = LWWD_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int
lwwd_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			return i;
		}
	}
	return -1;
}

void
lwwd_log(int level, const char *event, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;

	if (level > lwwd_log_level) {
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t) snprintf(line + n, sizeof(line) - n,
	                       ".%03ldZ level=%s event=%s ",
	                       ts.tv_nsec / 1000000, level_names[level], event);
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
	}
	/* One write per line keeps lines whole across threads. */
	fprintf(stderr, "%s\n", line);
}

char *
lwwd_log_key(char *out, size_t cap, const uint8_t *k, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t show = n, o = 0;
	int text = 1;

	for (size_t i = 0; i < n; i++) {
		text &= k[i] >= 0x20 && k[i] < 0x7f;
	}
	if (cap < 32) {
		if (cap > 0) {
			out[0] = '\0';
		}
		return out;
	}
	/* Two characters a byte at most (escapes, hex), and room for the
	 * quotes or "hex:" and "...(N bytes)". */
	if (show > (cap - 32) / 2) {
		show = (cap - 32) / 2;
	}
	if (text) {
		out[o++] = '"';
		for (size_t i = 0; i < show; i++) {
			if (k[i] == '"' || k[i] == '\\') {
				out[o++] = '\\';
			}
			out[o++] = (char) k[i];
		}
		out[o++] = '"';
	} else {
		memcpy(out, "hex:", 4);
		o = 4;
		for (size_t i = 0; i < show; i++) {
			out[o++] = hex[k[i] >> 4];
			out[o++] = hex[k[i] & 15];
		}
	}
	if (show < n) {
		snprintf(out + o, cap - o, "...(%zu bytes)", n);
	} else {
		out[o] = '\0';
	}
	return out;
}

int
lwwd_log_due(lwwd_log_limit *l, int reason, uint64_t gap_us, uint64_t *skipped)
{
	uint64_t now = lwwd_mono_us();

	if (l->started && reason == l->reason && now - l->at_us < gap_us) {
		l->skipped++;
		return 0;
	}
	*skipped = l->skipped;
	l->started = 1;
	l->reason = reason;
	l->skipped = 0;
	l->at_us = now;
	return 1;
}
