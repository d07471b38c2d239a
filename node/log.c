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
