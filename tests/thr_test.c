/* thr_test.c - the node's thread helper (node/thr.h), alone: a thread
 * never started stops safely, waits end at their monotonic deadline, and
 * a stop wakes a thread waiting without one. A lost wake-up shows as a
 * hang, which the test's ctest timeout turns into a failure. */
#include "testutil.h"

#include "thr.h"

static void
test_never_started(void **state)
{
	lwwd_thr t;

	(void) state;
	memset(&t, 0, sizeof(t));
	/* A failed start-up stops every module: none of this may block. */
	lwwd_thr_ask_stop(&t);
	lwwd_thr_stop(&t);
	lwwd_thr_join(&t);
	lwwd_thr_fini(&t);
	assert_int_equal(lwwd_thr_stopping(&t), 0);
}

static void
test_deadline_wait(void **state)
{
	pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
	lwwd_thr t;
	uint64_t due;

	(void) state;
	memset(&t, 0, sizeof(t));
	lwwd_thr_init(&t, &mtx);
	due = lwwd_deadline_ms(50);
	pthread_mutex_lock(&mtx);
	while (lwwd_mono_us() < due) {
		assert_int_equal(lwwd_thr_wait(&t, due), 0);
	}
	pthread_mutex_unlock(&mtx);
	assert_true(lwwd_mono_us() >= due);
	assert_int_equal(lwwd_thr_sleep_until(&t, lwwd_deadline_ms(10)), 0);
	lwwd_thr_stop(&t); /* initialised, never started */
	assert_int_equal(lwwd_thr_stopping(&t), 1);
	assert_int_equal(lwwd_thr_wait(&t, UINT64_MAX), 1); /* no wait */
	lwwd_thr_fini(&t);
	/* Saturates instead of wrapping into the past. */
	assert_true(lwwd_deadline_ms(UINT64_MAX) == UINT64_MAX);
	assert_true(lwwd_deadline_ms(UINT64_MAX / 1000) == UINT64_MAX);
}

typedef struct waiter {
	pthread_mutex_t mtx;
	lwwd_thr t;
	int waiting, woken, slept;
} waiter;

static void *
wait_forever(void *arg)
{
	waiter *w = arg;

	pthread_mutex_lock(&w->mtx);
	w->waiting = 1; /* mtx is held until the wait releases it */
	while (!lwwd_thr_wait(&w->t, UINT64_MAX)) {
	}
	w->woken = 1;
	pthread_mutex_unlock(&w->mtx);
	return NULL;
}

static void *
sleep_long(void *arg)
{
	waiter *w = arg;

	/* An hour: only the stop ends it within the test's timeout. */
	w->slept = lwwd_thr_sleep_until(&w->t, lwwd_deadline_ms(3600000));
	return NULL;
}

static void
test_stop_wakes(void **state)
{
	void *(*fns[])(void *) = {wait_forever, sleep_long};

	(void) state;
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		waiter w;
		memset(&w, 0, sizeof(w));
		pthread_mutex_init(&w.mtx, NULL);
		assert_int_equal(lwwd_thr_start(&w.t, &w.mtx, fns[i], &w), 0);
		if (i == 0) {
			/* Stop only once it waits: its flag check is past, so
			 * only the wake-up can end the wait. Bounded: 10 s. */
			uint64_t until = lwwd_deadline_ms(10000);
			int waiting = 0;
			while (!waiting && lwwd_mono_us() < until) {
				pthread_mutex_lock(&w.mtx);
				waiting = w.waiting;
				pthread_mutex_unlock(&w.mtx);
			}
			assert_int_equal(waiting, 1);
		}
		lwwd_thr_stop(&w.t);
		lwwd_thr_stop(&w.t); /* idempotent */
		assert_int_equal(i == 0 ? w.woken : w.slept, 1);
		lwwd_thr_fini(&w.t);
		pthread_mutex_destroy(&w.mtx);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_never_started),
	    cmocka_unit_test(test_deadline_wait),
	    cmocka_unit_test(test_stop_wakes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
