/*
 * metrics.c - the Prometheus endpoint: `--metrics http://HOST:PORT/PATH`
 * serves the node's counters (stats.c) in the text format with nng's HTTP
 * server. It only reads counters and the store's statistics.
 */
#include <stdio.h>
#include <string.h>

#include "lwwd.h"

#include <nng/supplemental/http/http.h>

static void
metrics_cb(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	lwwd *d = nng_http_handler_get_data(h);
	lww_buf b = LWW_BUF_INIT;
	nng_http_res *res;
	int rv;

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
	/* The server is never stopped: it lives until the process exits, as
	 * every listening socket does (see api.c). It reads only counters. */
	return 0;
}
