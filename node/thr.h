/*
 * thr.h - clocks, condition variables on the monotonic clock, and one
 * helper for the node's threads: start, a stop flag, a wake-up, a join,
 * and waits to monotonic deadlines.
 *
 * A thread's stop flag is set under the mutex the thread waits under (the
 * owner's, given to lwwd_thr_start), then its condition variable is
 * broadcast: a thread that checks the flag under that mutex before it
 * waits never misses the stop. Includes no other node header.
 */
#ifndef LWWD_THR_H
#define LWWD_THR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Wall-clock milliseconds: for stamps and what users read as dates,
 * never for a wait or a duration. */
uint64_t lwwd_now_ms(void);
/* Monotonic microseconds, for durations and deadlines. */
uint64_t lwwd_mono_us(void);
/* Monotonic milliseconds (lwwd_mono_us() / 1000). */
uint64_t lwwd_mono_ms(void);
/* lwwd_mono_us() + ms * 1000, saturating at UINT64_MAX (no deadline). */
uint64_t lwwd_deadline_ms(uint64_t ms);

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

/* One thread of a module. Zeroed memory is a thread never started: stop,
 * join and fini are then no-ops, so a failed start-up can stop all. */
typedef struct lwwd_thr {
	pthread_t id;
	pthread_mutex_t *mtx; /* the owner's lock: guards stop and what the
	                         thread waits for */
	pthread_cond_t cv;    /* lwwd_cond_init (monotonic) */
	_Atomic int stop;     /* set under *mtx; readable without it */
	int started, inited;
} lwwd_thr;

/* Makes cv and sets the owner's mutex, for a thread whose cv others may
 * signal before it starts; lwwd_thr_start then keeps both. */
void lwwd_thr_init(lwwd_thr *t, pthread_mutex_t *mtx);
/* Makes cv (unless lwwd_thr_init did), then starts fn(arg). 0, or -1 (the thread did not start;
 * stop and fini stay safe). */
int lwwd_thr_start(lwwd_thr *t, pthread_mutex_t *mtx, void *(*fn)(void *),
                   void *arg);
/* mtx held: wakes the thread (broadcast). */
void lwwd_thr_wake(lwwd_thr *t);
/* mtx held: waits for a wake-up or deadline_us (UINT64_MAX: none).
 * Returns 1 once stopping (without waiting), else 0; callers re-check
 * their condition. */
int lwwd_thr_wait(lwwd_thr *t, uint64_t deadline_us);
/* mtx NOT held: sleeps until deadline_us or the stop; 1 if stopping. */
int lwwd_thr_sleep_until(lwwd_thr *t, uint64_t deadline_us);
/* Any thread, no lock needed. */
int lwwd_thr_stopping(const lwwd_thr *t);
/* Sets the flag under mtx and wakes the thread; idempotent; a no-op for
 * a thread never started. mtx NOT held. */
void lwwd_thr_ask_stop(lwwd_thr *t);
/* Joins the thread if it was started; idempotent. */
void lwwd_thr_join(lwwd_thr *t);
/* lwwd_thr_ask_stop, then lwwd_thr_join. */
void lwwd_thr_stop(lwwd_thr *t);
/* Destroys cv, after the stop; a no-op if never initialised. */
void lwwd_thr_fini(lwwd_thr *t);

#endif /* LWWD_THR_H */
