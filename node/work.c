/*
 * work.c - the worker: one thread that runs the requests that may block.
 *
 * nng runs the API, gossip and HTTP callbacks on a few threads of its own
 * and forbids blocking in them: one callback waiting for a checkpoint (up
 * to 3 s), reading a trust file or queueing for the node's mutex holds
 * up every request behind it. Such a callback queues a job here and
 * returns at once; the job runs on this thread, in the order queued, and
 * answers its request itself (nng's sends and nng_aio_finish never
 * block). Lookups and writes never come here. One thread is enough: the
 * jobs are rare (list, stats, peers, reload, metrics scrapes), and a
 * second stats call would only wait for the same checkpoint.
 */
#include <stdlib.h>

#include "lwwd.h"

struct lwwd_work {
	pthread_mutex_t mtx; /* the queue's own: never the node's */
	lwwd_job *head, *tail;
	lwwd_thr thr; /* woken by a job queued, or the stop */
};

static void *
work_main(void *arg)
{
	struct lwwd_work *w = arg;

	pthread_mutex_lock(&w->mtx);
	for (;;) {
		lwwd_job *j;

		while (w->head == NULL && !lwwd_thr_wait(&w->thr, UINT64_MAX)) {
		}
		/* Stopping ends the loop only once the queue is empty. */
		if ((j = w->head) == NULL) {
			break;
		}
		w->head = j->next;
		if (w->head == NULL) {
			w->tail = NULL;
		}
		j->next = NULL;
		pthread_mutex_unlock(&w->mtx);
		/* The job may be queued again as soon as it has answered:
		 * nothing here touches it after run. */
		j->run(j);
		pthread_mutex_lock(&w->mtx);
	}
	pthread_mutex_unlock(&w->mtx);
	return NULL;
}

int
lwwd_work_start(lwwd *d)
{
	struct lwwd_work *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		return -1;
	}
	pthread_mutex_init(&w->mtx, NULL);
	d->work = w;
	if (lwwd_thr_start(&w->thr, &w->mtx, work_main, w) != 0) {
		lwwd_thr_ask_stop(&w->thr); /* refuse jobs: none would run */
		return -1;
	}
	return 0;
}

lww_err
lwwd_work_submit(lwwd *d, lwwd_job *job)
{
	struct lwwd_work *w = d->work;

	if (w == NULL) {
		return LWW_ECLOSED;
	}
	job->next = NULL;
	pthread_mutex_lock(&w->mtx);
	if (lwwd_thr_stopping(&w->thr)) {
		pthread_mutex_unlock(&w->mtx);
		return LWW_ECLOSED;
	}
	if (w->tail != NULL) {
		w->tail->next = job;
	} else {
		w->head = job;
	}
	w->tail = job;
	lwwd_thr_wake(&w->thr);
	pthread_mutex_unlock(&w->mtx);
	return LWW_OK;
}

void
lwwd_work_stop(lwwd *d)
{
	struct lwwd_work *w = d->work;

	if (w == NULL) {
		return;
	}
	lwwd_thr_stop(&w->thr); /* it runs every job queued first */
}

void
lwwd_work_free(lwwd *d)
{
	struct lwwd_work *w = d->work;

	if (w == NULL) {
		return;
	}
	lwwd_work_stop(d);
	lwwd_thr_fini(&w->thr);
	pthread_mutex_destroy(&w->mtx);
	free(w);
	d->work = NULL;
}
