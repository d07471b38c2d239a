/*
 * work.h - the worker thread for requests that may block (work.c).
 */
#ifndef LWWD_WORK_H
#define LWWD_WORK_H

#include "err.h"

typedef struct lwwd lwwd;

/* ---- the worker: requests that may block (work.c) ---- */
/* nng forbids blocking in its callbacks, so a callback whose request may
 * wait (for a checkpoint, the node's mutex, a file) queues a job here and
 * returns; the job answers its request when it is done. One thread runs
 * the jobs in the order queued. */
typedef struct lwwd_job lwwd_job;
struct lwwd_job {
	void (*run)(lwwd_job *job); /* on the worker thread */
	lwwd_job *next;
};
int lwwd_work_start(lwwd *d);
/* Queues job (owned by the caller until run is called). LWW_ECLOSED once
 * the worker stops (or never started): the job is not taken. Never
 * blocks beyond a short mutex. Thread-safe. */
lww_err lwwd_work_submit(lwwd *d, lwwd_job *job);
/* Refuses new jobs, runs every job queued, and joins the thread. Jobs
 * may still be offered (and are refused) until lwwd_work_free. */
void lwwd_work_stop(lwwd *d);
void lwwd_work_free(lwwd *d);

#endif /* LWWD_WORK_H */
