/*
 * thr.c - condition variables on the monotonic clock, and deadlines from
 * it.
 *
 * pthread condition variables time their waits on CLOCK_REALTIME unless
 * told otherwise, so a wall clock stepped back an hour (NTP, an operator)
 * would make a one-second wait last an hour and one more second. Every
 * condition variable of the node is made here with CLOCK_MONOTONIC (as
 * nng's are) and every deadline is a lwwd_mono_us() time. The wall clock
 * (lwwd_now_ms) is for stamps and dates only.
 */
#include <errno.h>
#include <time.h>

#include "lwwd.h"

uint64_t
lwwd_mono_ms(void)
{
	return lwwd_mono_us() / 1000;
}

void
lwwd_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

int
lwwd_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mtx,
                     uint64_t deadline_us)
{
	struct timespec ts;

	if (deadline_us == UINT64_MAX) {
		return pthread_cond_wait(cv, mtx);
	}
	if (lwwd_mono_us() >= deadline_us) {
		return ETIMEDOUT;
	}
	ts.tv_sec = (time_t) (deadline_us / 1000000);
	ts.tv_nsec = (long) (deadline_us % 1000000) * 1000;
	return pthread_cond_timedwait(cv, mtx, &ts);
}
