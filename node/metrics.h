/*
 * metrics.h - the Prometheus endpoint (metrics.c).
 */
#ifndef LWWD_METRICS_H
#define LWWD_METRICS_H

typedef struct lwwd lwwd;

/* The Prometheus endpoint (metrics.c), if --metrics is given. Scrapes
 * are answered by the worker. Stop waits for a scrape being answered. */
int lwwd_metrics_start(lwwd *d);
void lwwd_metrics_stop(lwwd *d);

#endif /* LWWD_METRICS_H */
