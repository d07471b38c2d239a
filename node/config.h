/*
 * config.h - the command line and config file (config.c): plain data.
 */
#ifndef LWWD_CONFIG_H
#define LWWD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* ---- configuration (config.c) ---- */
#define LWWD_REPAIR_INTERVAL_DEFAULT 5000
#define LWWD_SCRUB_INTERVAL_DEFAULT  3600000 /* ms: a full pass an hour */
#define LWWD_SCRUB_INTERVAL_MIN      1000
typedef struct lwwd_config {
	char *data;
	char *key;
	char *trust;
	char *clients; /* NULL: the API accepts unsigned requests */
	char *api;
	char *gossip;
	char *sync;
	char **peers;
	size_t npeers;
	uint64_t max_drift;
	int fsync_always;
	size_t map_size;
	int insecure_api;
	uint64_t repair_interval; /* ms between periodic rounds; 0: none */
	uint64_t scrub_interval;  /* ms per full record check; 0: none */
	char *tls_cert;           /* PEM certificate and key, for tls+tcp */
	char *tls_ca;             /* PEM CA that signs every node's cert */
	char *tls_server_name;    /* name to expect in peers' certificates */
	char *metrics;            /* http://HOST:PORT/PATH, or NULL */
	int wal_skip_damaged;     /* --wal-recovery skip-damaged */
} lwwd_config;

/* Parses flags and the config file. Returns 0 to run, 1 after --help or
 * --version (exit 0), -1 on error (message printed, exit 2). */
int lwwd_config_parse(lwwd_config *c, int argc, char **argv);
void lwwd_config_fini(lwwd_config *c);
/* The sync URL a gossip URL implies: tcp port + 1, or ipc path + ".sync". */
char *lwwd_config_default_sync(const char *gossip);

#endif /* LWWD_CONFIG_H */
