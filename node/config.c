/*
 * config.c - lwwd's flags and its INI config file (inih). Both go through
 * one setter, so a key in the file and a flag of the same name mean the
 * same thing; flags given on the command line override the file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "limits.h"
#include "lwwd.h"

static const char usage[] =
    "usage: lwwd [--config FILE] --data DIR --key FILE --trust FILE\n"
    "            --api URL --gossip URL [--sync URL] [--peer URL]...\n"
    "            [--clients FILE]\n"
    "            [--max-drift MS] [--fsync always|none] [--map-size MIB]\n"
    "            [--repair-interval MS] [--scrub-interval DURATION]\n"
    "            [--tls-cert FILE --tls-ca FILE\n"
    "            [--tls-server-name NAME]] [--metrics URL]\n"
    "            [--wal-recovery refuse|skip-damaged]\n"
    "            [--log-level error|warn|info|debug] [--insecure-api]\n"
    "\n"
    "lwwd is the lww peer node: it holds the whole dictionary in LMDB,\n"
    "accepts writes from lwwctl, signs and gossips them to its peers, and\n"
    "merges what its trusted peers send.\n"
    "\n"
    "  --config FILE     INI file with the same keys as these flags (peer\n"
    "                    may repeat); flags override it\n"
    "  --data DIR        store directory (created if missing)\n"
    "  --key FILE        this node's secret key (lwwctl keygen), mode 0600\n"
    "  --trust FILE      peers whose writes are accepted: NAME PUBLICKEY a "
    "line\n"
    "  --api URL         client API (ipc:///path or tcp://127.0.0.1:PORT)\n"
    "  --clients FILE    accept only API requests signed by a key listed\n"
    "                    here (NAME PUBLICKEY [ro]; ro: read-only)\n"
    "  --gossip URL      this node's gossip link; neighbours dial it\n"
    "  --sync URL        repair socket (default: gossip port + 1, or ipc\n"
    "                    path + .sync)\n"
    "  --peer URL        a neighbour's --gossip URL to dial; repeatable. A\n"
    "                    few are enough: writes are relayed to every node\n"
    "                    of the trust file\n"
    "  --max-drift MS    refuse remote stamps this far ahead of our clock\n"
    "                    (default 1000)\n"
    "  --fsync MODE      always (default): reply after the write is on disk;\n"
    "                    none: do not fsync (a crash may lose recent writes)\n"
    "  --map-size MIB    largest store size in MiB (default 1024)\n"
    "  --repair-interval MS  anti-entropy round with a peer every MS\n"
    "                    (+-25% jitter; default 5000; 0: only when gossip\n"
    "                    shows a lost batch)\n"
    "  --scrub-interval DURATION  check every stored record against its\n"
    "                    checksum once per DURATION (500ms, 30s, 10m, 2h,\n"
    "                    7d; default 1h; 0: only records that reads find\n"
    "                    damaged); damaged ones are dropped and repaired\n"
    "                    from a peer\n"
    "  --wal-recovery MODE  what start-up does with a damaged write-ahead\n"
    "                    log record (not a torn tail): refuse (default)\n"
    "                    to start, naming it; skip-damaged: skip it, keep\n"
    "                    the rest, move the segment aside, and let repair\n"
    "                    fetch what was lost from the peers\n"
    "  --log-level LVL   error, warn, info (default) or debug\n"
    "  --metrics URL     serve Prometheus metrics, e.g.\n"
    "                    http://127.0.0.1:9464/metrics\n"
    "  --tls-cert FILE   this node's certificate and key (PEM), for\n"
    "                    tls+tcp:// gossip, sync and peer addresses\n"
    "  --tls-ca FILE     the CA (PEM) every peer's certificate must chain\n"
    "                    to; TLS is mutual\n"
    "  --tls-server-name NAME  the name peers' certificates must carry\n"
    "                    (default: the host in the peer's URL)\n"
    "  --insecure-api    allow a tcp API on a non-loopback address without\n"
    "                    --clients\n"
    "  -h, --help        this text;  --version  the version\n"
    "\n"
    "Signals: SIGTERM/SIGINT flush and exit 0; SIGHUP re-reads the trust "
    "and\nclients files.\n";

static int
set_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (s == NULL) {
		return -1;
	}
	free(*dst);
	*dst = s;
	return 0;
}

static int
parse_u64(const char *v, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (*v == '\0' || *v == '-') {
		return -1;
	}
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || x > max) {
		return -1;
	}
	*out = x;
	return 0;
}

/* A boolean, strictly: a typo must not turn an option on (fail closed).
 * 1 or 0, or -1 if v is none of the words. */
static int
parse_bool(const char *v)
{
	static const char *yes[] = {"yes", "true", "on", "1"};
	static const char *no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			return 1;
		}
		if (strcasecmp(v, no[i]) == 0) {
			return 0;
		}
	}
	return -1;
}

/* A DURATION: a whole number and a unit (ms, s, m, h, d), or 0. */
static int
parse_duration_ms(const char *v, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
	             {"h", 3600000}, {"d", 86400000}, {NULL, 0}};
	char num[24];
	size_t n = strspn(v, "0123456789");
	uint64_t x;

	if (n == 0 || n >= sizeof(num)) {
		return -1;
	}
	memcpy(num, v, n);
	num[n] = '\0';
	if (parse_u64(num, UINT64_C(1) << 40, &x) != 0) {
		return -1;
	}
	if (v[n] == '\0') {
		if (x != 0) {
			return -1; /* a unit is required */
		}
		*out = 0;
		return 0;
	}
	for (size_t i = 0; units[i].unit != NULL; i++) {
		if (strcmp(v + n, units[i].unit) == 0) {
			*out = x * units[i].ms;
			return 0;
		}
	}
	return -1;
}

/* Sets one option by name. Returns 0, or -1 with a message in err. */
static int
set_opt(lwwd_config *c, const char *name, const char *v, char *err,
        size_t errlen)
{
	uint64_t x;

	if (strcmp(name, "data") == 0) {
		return set_str(&c->data, v);
	} else if (strcmp(name, "key") == 0) {
		return set_str(&c->key, v);
	} else if (strcmp(name, "trust") == 0) {
		return set_str(&c->trust, v);
	} else if (strcmp(name, "clients") == 0) {
		return set_str(&c->clients, v);
	} else if (strcmp(name, "api") == 0) {
		return set_str(&c->api, v);
	} else if (strcmp(name, "gossip") == 0) {
		return set_str(&c->gossip, v);
	} else if (strcmp(name, "sync") == 0) {
		return set_str(&c->sync, v);
	} else if (strcmp(name, "peer") == 0) {
		char **p = realloc(c->peers, (c->npeers + 1) * sizeof(*p));
		if (p == NULL) {
			return -1;
		}
		c->peers = p;
		if ((p[c->npeers] = strdup(v)) == NULL) {
			return -1;
		}
		c->npeers++;
		return 0;
	} else if (strcmp(name, "max-drift") == 0) {
		if (parse_u64(v, UINT64_C(86400000), &x) != 0) {
			snprintf(
			    err, errlen,
			    "max-drift '%s': want milliseconds, 0..86400000",
			    v);
			return -1;
		}
		c->max_drift = x;
		return 0;
	} else if (strcmp(name, "fsync") == 0) {
		if (strcmp(v, "always") == 0) {
			c->fsync_always = 1;
		} else if (strcmp(v, "none") == 0) {
			c->fsync_always = 0;
		} else {
			snprintf(err, errlen, "fsync '%s': want always or none",
			         v);
			return -1;
		}
		return 0;
	} else if (strcmp(name, "map-size") == 0) {
		if (parse_u64(v, UINT64_C(1) << 22, &x) != 0 || x < 1) {
			snprintf(err, errlen,
			         "map-size '%s': want MiB, 1..4194304", v);
			return -1;
		}
		c->map_size = (size_t) x << 20;
		return 0;
	} else if (strcmp(name, "log-level") == 0) {
		int l = lwwd_log_parse_level(v);
		if (l < 0) {
			snprintf(
			    err, errlen,
			    "log-level '%s': want error, warn, info or debug",
			    v);
			return -1;
		}
		lwwd_log_level = l;
		return 0;
	} else if (strcmp(name, "repair-interval") == 0) {
		if (parse_u64(v, UINT64_C(86400000), &x) != 0) {
			snprintf(
			    err, errlen,
			    "repair-interval '%s': want milliseconds, "
			    "0..86400000 (0: only when gossip shows a loss)",
			    v);
			return -1;
		}
		c->repair_interval = x;
		return 0;
	} else if (strcmp(name, "scrub-interval") == 0) {
		if (parse_duration_ms(v, &x) != 0 ||
		    (x != 0 && x < LWWD_SCRUB_INTERVAL_MIN)) {
			snprintf(err, errlen,
			         "scrub-interval '%s': want a duration of at "
			         "least 1s such as 30s, 10m, 1h or 7d (0: off)",
			         v);
			return -1;
		}
		c->scrub_interval = x;
		return 0;
	} else if (strcmp(name, "wal-recovery") == 0) {
		if (strcmp(v, "refuse") == 0) {
			c->wal_skip_damaged = 0;
		} else if (strcmp(v, "skip-damaged") == 0) {
			c->wal_skip_damaged = 1;
		} else {
			snprintf(
			    err, errlen,
			    "wal-recovery '%s': want refuse or skip-damaged",
			    v);
			return -1;
		}
		return 0;
	} else if (strcmp(name, "metrics") == 0) {
		return set_str(&c->metrics, v);
	} else if (strcmp(name, "tls-cert") == 0) {
		return set_str(&c->tls_cert, v);
	} else if (strcmp(name, "tls-ca") == 0) {
		return set_str(&c->tls_ca, v);
	} else if (strcmp(name, "tls-server-name") == 0) {
		return set_str(&c->tls_server_name, v);
	} else if (strcmp(name, "insecure-api") == 0) {
		int b = parse_bool(v);
		if (b < 0) {
			snprintf(
			    err, errlen,
			    "insecure-api '%s': want yes, no, true, false, "
			    "on, off, 1 or 0",
			    v);
			return -1;
		}
		c->insecure_api = b;
		return 0;
	}
	snprintf(err, errlen, "unknown option '%s'", name);
	return -1;
}

typedef struct ini_state {
	lwwd_config *c;
	char err[256];
	int line_err;
} ini_state;

static int
config_ini_cb(void *user, const char *section, const char *name,
              const char *value)
{
	ini_state *st = user;

	if (section[0] != '\0' && strcmp(section, "lwwd") != 0) {
		snprintf(st->err, sizeof(st->err), "unknown section [%s]",
		         section);
		return 0;
	}
	if (strcmp(name, "config") == 0) {
		snprintf(st->err, sizeof(st->err), "config may not nest");
		return 0;
	}
	return set_opt(st->c, name, value, st->err, sizeof(st->err)) == 0;
}

char *
lwwd_config_default_sync(const char *gossip)
{
	size_t n = strlen(gossip);
	char *s;

	if (strncmp(gossip, "ipc://", 6) == 0) {
		if ((s = malloc(n + 6)) != NULL) {
			snprintf(s, n + 6, "%s.sync", gossip);
		}
		return s;
	}
	if (strncmp(gossip, "tcp://", 6) == 0 ||
	    strncmp(gossip, "tls+tcp://", 10) == 0) {
		const char *colon = strrchr(gossip, ':');
		uint64_t port;
		if (colon == NULL || colon < strstr(gossip, "://") + 3 ||
		    parse_u64(colon + 1, 65534, &port) != 0 || port == 0) {
			return NULL;
		}
		if ((s = malloc(n + 2)) != NULL) {
			snprintf(s, n + 2, "%.*s:%u", (int) (colon - gossip),
			         gossip, (unsigned) port + 1);
		}
		return s;
	}
	return NULL;
}

int
lwwd_config_parse(lwwd_config *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"data", required_argument, NULL, 'd'},
	    {"key", required_argument, NULL, 'k'},
	    {"trust", required_argument, NULL, 't'},
	    {"clients", required_argument, NULL, 'C'},
	    {"api", required_argument, NULL, 'a'},
	    {"gossip", required_argument, NULL, 'g'},
	    {"sync", required_argument, NULL, 's'},
	    {"peer", required_argument, NULL, 'p'},
	    {"max-drift", required_argument, NULL, 'm'},
	    {"fsync", required_argument, NULL, 'f'},
	    {"map-size", required_argument, NULL, 'M'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"insecure-api", no_argument, NULL, 'i'},
	    {"repair-interval", required_argument, NULL, 'r'},
	    {"scrub-interval", required_argument, NULL, 'S'},
	    {"tls-cert", required_argument, NULL, 'T'},
	    {"metrics", required_argument, NULL, 'P'},
	    {"tls-ca", required_argument, NULL, 'A'},
	    {"tls-server-name", required_argument, NULL, 'N'},
	    {"wal-recovery", required_argument, NULL, 'W'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	char err[256] = "";
	int ch, peers_from_flags = 0;

	memset(c, 0, sizeof(*c));
	c->max_drift = LWW_MAX_DRIFT_MS_DEFAULT;
	c->fsync_always = 1;
	c->repair_interval = LWWD_REPAIR_INTERVAL_DEFAULT;
	c->scrub_interval = LWWD_SCRUB_INTERVAL_DEFAULT;

	/* First pass: --help, --version and --config only. */
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			fputs(usage, stdout);
			return 1;
		} else if (ch == 'V') {
			printf("lwwd %s\n", LWW_VERSION);
			return 1;
		} else if (ch == 'c') {
			config = optarg;
		}
	}
	if (config != NULL) {
		ini_state st = {c, "", 0};
		int rc = ini_parse(config, config_ini_cb, &st);
		if (rc < 0) {
			fprintf(stderr, "lwwd: cannot read config %s: %s\n",
			        config, strerror(errno ? errno : ENOENT));
			return -1;
		}
		if (rc > 0) {
			fprintf(stderr, "lwwd: config %s line %d: %s\n", config,
			        rc, st.err[0] ? st.err : "syntax error");
			return -1;
		}
	}
	opterr = 1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		const char *name = NULL;
		for (size_t i = 0; opts[i].name != NULL; i++) {
			if (opts[i].val == ch) {
				name = opts[i].name;
			}
		}
		if (ch == '?' || name == NULL) {
			fputs(usage, stderr);
			return -1;
		}
		if (ch == 'c') {
			continue;
		}
		if (ch == 'p' && !peers_from_flags) {
			/* Peers on the command line replace the file's. */
			for (size_t i = 0; i < c->npeers; i++) {
				free(c->peers[i]);
			}
			c->npeers = 0;
			peers_from_flags = 1;
		}
		if (set_opt(c, name, optarg ? optarg : "true", err,
		            sizeof(err)) != 0) {
			fprintf(stderr, "lwwd: --%s\n",
			        err[0] ? err : "out of memory");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lwwd: unexpected argument '%s' (see --help)\n",
		        argv[optind]);
		return -1;
	}
	{
		const char *missing = !c->data     ? "--data DIR"
		                      : !c->key    ? "--key FILE"
		                      : !c->trust  ? "--trust FILE"
		                      : !c->api    ? "--api URL"
		                      : !c->gossip ? "--gossip URL"
		                                   : NULL;
		if (missing != NULL) {
			fprintf(stderr, "lwwd: missing %s (see --help)\n",
			        missing);
			return -1;
		}
	}
	if (c->sync == NULL &&
	    (c->sync = lwwd_config_default_sync(c->gossip)) == NULL) {
		fprintf(stderr,
		        "lwwd: cannot derive --sync from --gossip %s; give "
		        "--sync URL\n",
		        c->gossip);
		return -1;
	}
	return 0;
}

void
lwwd_config_fini(lwwd_config *c)
{
	free(c->data);
	free(c->key);
	free(c->trust);
	free(c->clients);
	free(c->tls_cert);
	free(c->tls_ca);
	free(c->tls_server_name);
	free(c->metrics);
	free(c->api);
	free(c->gossip);
	free(c->sync);
	for (size_t i = 0; i < c->npeers; i++) {
		free(c->peers[i]);
	}
	free(c->peers);
	memset(c, 0, sizeof(*c));
}
