/*
 * metrics.c - the Prometheus endpoint: `--metrics http://HOST:PORT/PATH`
 * serves the node's counters (stats.c) in the text format with nng's HTTP
 * server. It only reads counters, the peer table and the store's
 * statistics. Counting waits for a checkpoint (lwwd_wal_barrier), so the
 * HTTP callback hands each scrape to the worker (work.c) and returns; the
 * worker completes the scrape's aio when the reply is built. The server
 * is stopped first at shutdown, before anything it reads is freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwwd.h"

#include <nng/supplemental/http/http.h>

typedef struct scrape {
	lwwd_job job; /* first: the worker hands back &job */
	lwwd *d;
	nng_aio *aio;
} scrape;

/* On the worker: builds the reply and completes the handler's aio. */
static void
scrape_run(lwwd_job *job)
{
	scrape *s = (scrape *) job;
	lwwd *d = s->d;
	nng_aio *aio = s->aio;
	lww_buf b = LWW_BUF_INIT;
	nng_http_res *res;
	int rv;

	free(s);
	if ((rv = nng_http_res_alloc(&res)) != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	if (lwwd_stats_prometheus(d, &b) != LWW_OK) {
		nng_http_res_set_status(res,
		                        NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR);
	} else if ((rv = nng_http_res_set_header(
	                res, "Content-Type",
	                "text/plain; version=0.0.4; charset=utf-8")) != 0 ||
	           (rv = nng_http_res_copy_data(res, b.p, b.len)) != 0) {
		lww_buf_fini(&b);
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	lww_buf_fini(&b);
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

/* nng's HTTP callback: queues the scrape and returns at once. */
static void
metrics_cb(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	scrape *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	s->job.run = scrape_run;
	s->d = nng_http_handler_get_data(h);
	s->aio = aio;
	if (lwwd_work_submit(s->d, &s->job) != LWW_OK) {
		/* Shutting down: the connection is closed unanswered. */
		free(s);
		nng_aio_finish(aio, NNG_ECLOSED);
	}
}

int
lwwd_metrics_start(lwwd *d)
{
	nng_http_handler *h;
	nng_url *url;
	int rv;

	if (d->cfg.metrics == NULL) {
		return 0;
	}
	if ((rv = nng_url_parse(&url, d->cfg.metrics)) != 0 ||
	    strcmp(url->u_scheme, "http") != 0) {
		fprintf(stderr,
		        "lwwd: bad --metrics %s: want http://HOST:PORT/PATH\n",
		        d->cfg.metrics);
		if (rv == 0) {
			nng_url_free(url);
		}
		return -1;
	}
	if ((rv = nng_http_server_hold(&d->metrics, url)) != 0 ||
	    (rv = nng_http_handler_alloc(
	         &h, url->u_path[0] ? url->u_path : "/metrics", metrics_cb)) !=
	        0 ||
	    (rv = nng_http_handler_set_method(h, "GET")) != 0 ||
	    (rv = nng_http_handler_set_data(h, d, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(d->metrics, h)) != 0 ||
	    (rv = nng_http_server_start(d->metrics)) != 0) {
		fprintf(stderr, "lwwd: cannot serve --metrics %s: %s\n",
		        d->cfg.metrics, nng_strerror(rv));
		nng_url_free(url);
		return -1;
	}
	nng_url_free(url);
	d->metrics_started = 1;
	return 0;
}

void
lwwd_metrics_stop(lwwd *d)
{
	if (d->metrics == NULL) {
		return;
	}
	/* Closes the listener and every connection, and returns once each
	 * connection is reaped, which waits for a scrape the worker is
	 * answering (nng stops the handler's aio). */
	if (d->metrics_started) {
		nng_http_server_stop(d->metrics);
		d->metrics_started = 0;
	}
	nng_http_server_release(d->metrics);
	d->metrics = NULL;
}
