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
 *
 * lwwd_thr is the one copy of a module thread's start, stop flag,
 * wake-up, join and waits (thr.h).
 */
#include <errno.h>
#include <time.h>

#include "thr.h"

uint64_t
lwwd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

uint64_t
lwwd_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

uint64_t
lwwd_mono_ms(void)
{
	return lwwd_mono_us() / 1000;
}

uint64_t
lwwd_deadline_ms(uint64_t ms)
{
	uint64_t now = lwwd_mono_us();

	if (ms >= (UINT64_MAX - now) / 1000) {
		return UINT64_MAX;
	}
	return now + ms * 1000;
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

void
lwwd_thr_init(lwwd_thr *t, pthread_mutex_t *mtx)
{
	t->mtx = mtx;
	if (!t->inited) {
		lwwd_cond_init(&t->cv);
		t->inited = 1;
	}
}

int
lwwd_thr_start(lwwd_thr *t, pthread_mutex_t *mtx, void *(*fn)(void *),
               void *arg)
{
	lwwd_thr_init(t, mtx);
	if (pthread_create(&t->id, NULL, fn, arg) != 0) {
		return -1;
	}
	t->started = 1;
	return 0;
}

void
lwwd_thr_wake(lwwd_thr *t)
{
	pthread_cond_broadcast(&t->cv);
}

int
lwwd_thr_wait(lwwd_thr *t, uint64_t deadline_us)
{
	if (atomic_load(&t->stop)) {
		return 1;
	}
	(void) lwwd_cond_wait_until(&t->cv, t->mtx, deadline_us);
	return atomic_load(&t->stop) != 0;
}

int
lwwd_thr_sleep_until(lwwd_thr *t, uint64_t deadline_us)
{
	int stop;

	pthread_mutex_lock(t->mtx);
	while (!(stop = atomic_load(&t->stop)) &&
	       lwwd_mono_us() < deadline_us) {
		(void) lwwd_cond_wait_until(&t->cv, t->mtx, deadline_us);
	}
	pthread_mutex_unlock(t->mtx);
	return stop;
}

int
lwwd_thr_stopping(const lwwd_thr *t)
{
	return atomic_load(&t->stop) != 0;
}

void
lwwd_thr_ask_stop(lwwd_thr *t)
{
	if (!t->inited) {
		return;
	}
	pthread_mutex_lock(t->mtx);
	atomic_store(&t->stop, 1);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(t->mtx);
}

void
lwwd_thr_join(lwwd_thr *t)
{
	if (t->started) {
		pthread_join(t->id, NULL);
		t->started = 0;
	}
}

void
lwwd_thr_stop(lwwd_thr *t)
{
	lwwd_thr_ask_stop(t);
	lwwd_thr_join(t);
}

void
lwwd_thr_fini(lwwd_thr *t)
{
	if (t->inited) {
		pthread_cond_destroy(&t->cv);
		t->inited = 0;
	}
}
