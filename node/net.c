/*
 * net.c - listening and dialling for gossip and repair, with nng's TLS
 * transport when a URL says tls+tcp://. TLS is mutual: every node presents
 * --tls-cert (certificate and key, PEM) and requires the other side's to
 * be signed by --tls-ca. It gives confidentiality; who may write is still
 * decided by the Ed25519 trust file.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "lwwd.h"

#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <nng/transport/ipc/ipc.h>

static int
is_tls(const char *url)
{
	return strncmp(url, "tls+", 4) == 0;
}

int
lwwd_tls_check(const lwwd_config *c)
{
	int any =
	    is_tls(c->gossip) || (c->sync && is_tls(c->sync)) || is_tls(c->api);
	for (size_t i = 0; i < c->npeers; i++) {
		any |= is_tls(c->peers[i]);
	}
	if (any && (c->tls_cert == NULL || c->tls_ca == NULL)) {
		fprintf(stderr, "lwwd: a tls+tcp:// address needs --tls-cert "
		                "FILE (certificate and key, PEM) and --tls-ca "
		                "FILE\n");
		return -1;
	}
	return 0;
}

/* Applies the TLS options through a setter of the listener or dialer. */
#define TLS_SETUP(kind, obj, c, server)                                        \
	((rv = nng_##kind##_set_string(obj, NNG_OPT_TLS_CERT_KEY_FILE,         \
	                               (c)->tls_cert)) == 0 &&                 \
	 (rv = nng_##kind##_set_string(obj, NNG_OPT_TLS_CA_FILE,               \
	                               (c)->tls_ca)) == 0 &&                   \
	 (rv = nng_##kind##_set_int(obj, NNG_OPT_TLS_AUTH_MODE,                \
	                            NNG_TLS_AUTH_MODE_REQUIRED)) == 0 &&       \
	 (server || (c)->tls_server_name == NULL ||                            \
	  (rv = nng_##kind##_set_string(obj, NNG_OPT_TLS_SERVER_NAME,          \
	                                (c)->tls_server_name)) == 0))

int
lwwd_listen(const lwwd_config *c, nng_socket s, const char *url,
            const char *flag, nng_listener *out)
{
	nng_listener l;
	int rv;

	if ((rv = nng_listener_create(&l, s, url)) == 0 &&
	    (!is_tls(url) || TLS_SETUP(listener, l, c, 1))) {
		rv = out != NULL ? 0 : nng_listener_start(l, 0);
	}
	if (rv != 0) {
		fprintf(stderr, "lwwd: cannot listen on %s %s: %s\n", flag, url,
		        nng_strerror(rv));
		return -1;
	}
	if (out != NULL) {
		*out = l; /* the caller sets more options, then starts it */
	}
	return 0;
}

int
lwwd_dial(const lwwd_config *c, nng_socket s, const char *url, const char *flag)
{
	nng_dialer dl;
	int rv;

	/* Non-blocking: a peer that is down now is redialled. */
	if ((rv = nng_dialer_create(&dl, s, url)) == 0 &&
	    (!is_tls(url) || TLS_SETUP(dialer, dl, c, 0))) {
		rv = nng_dialer_start(dl, NNG_FLAG_NONBLOCK);
	}
	if (rv != 0) {
		fprintf(stderr, "lwwd: cannot dial %s %s: %s\n", flag, url,
		        nng_strerror(rv));
		return -1;
	}
	return 0;
}

int
lwwd_msg_new(nng_msg **out, const void *p, size_t n)
{
	nng_msg *m = NULL;
	int rv;

	/* One allocation and a copy, so there is no append that can fail
	 * after it; nng_msg_alloc leaves m unwritten when it fails. */
	*out = NULL;
	if ((rv = nng_msg_alloc(&m, n)) != 0) {
		return rv;
	}
	if (n > 0) {
		memcpy(nng_msg_body(m), p, n);
	}
	*out = m;
	return 0;
}

int
lwwd_send(nng_socket s, nng_aio *aio, const void *p, size_t n, int flags)
{
	nng_msg *m;
	int rv;

	if ((rv = lwwd_msg_new(&m, p, n)) != 0) {
		return rv;
	}
	if (aio == NULL) {
		if ((rv = nng_sendmsg(s, m, flags)) != 0) {
			nng_msg_free(m);
		}
		return rv;
	}
	nng_aio_set_msg(aio, m);
	nng_send_aio(s, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		/* Not sent (a cancelled aio may not even start): the
		 * message is still ours. */
		if ((m = nng_aio_get_msg(aio)) != NULL) {
			nng_msg_free(m);
		}
	}
	nng_aio_set_msg(aio, NULL);
	return rv;
}

int
lwwd_send_sealed(const lww_key *k, nng_socket s, nng_aio *aio,
                 const void *payload, size_t n, lww_buf *env, int flags)
{
	lww_buf_reset(env);
	if (lww_envelope_seal(k, payload, n, env) != LWW_OK) {
		return NNG_ENOMEM;
	}
	return lwwd_send(s, aio, env->p, env->len, flags);
}

/*
 * The listener guard. nng 1.5.2 (Debian 12) has a bug (nanomsg/nng#1518,
 * fixed in 1.6): a peer that connects and is gone before the SP handshake
 * (a client that gives up at that moment, a port scanner, a flood of
 * refused oversized requests whose senders reconnect and exit) fails the
 * handshake with EPIPE, which the transport hands to the listener as
 * NNG_ECLOSED, and the listener then never accepts again: every later
 * client waits until it times out, for as long as the node runs.
 *
 * Such a failure is counted in the listener's "other" errors. When that
 * counter moves, the guard checks that the listener still accepts: it
 * connects to it, does the SP handshake of a peer, and waits for the
 * listener's "accept" counter to move. If it does not, the guard closes
 * the listener and listens again on the same address (ipc socket file
 * and options included), logs a warning and counts it. The same thread
 * watches the dialers of --peer addresses (lwwd_dial_watched).
 */
#define GUARD_TICK_MS  250
#define GUARD_PROBE_MS 3000
#define DIAL_ERRORS    8 /* entries of dial_errors */

typedef struct guarded {
	nng_socket sock;
	nng_listener l;
	const char *url, *flag;
	uint16_t peer_proto; /* the SP protocol number of its peers */
	int ipc_perms;
	uint64_t other;    /* the listener's "other" errors last seen */
	int closed;        /* closed, and listening anew failed: retry */
	uint64_t retry_ms; /* lwwd_mono_ms() of the next retry */
} guarded;

/* A dialer (a --peer's gossip or sync address): its state for lwwctl
 * peers, and a warning when it fails, at most once a minute. */
typedef struct dialed {
	nng_dialer dl;
	char *url;
	const char *flag;
	uint64_t errs[DIAL_ERRORS]; /* its error counters last seen */
	uint64_t warn_ms; /* lwwd_mono_ms() of the last warning, 0 = never */
	int connected;    /* it has a pipe */
	int failed;       /* an error since it last connected */
	char last_error[128];
} dialed;

struct lwwd_guard {
	dialed *dv;
	size_t dn;
	pthread_mutex_t mtx;
	lwwd_thr thr; /* on mtx: ticks, and the stop */
	guarded g[4];
	size_t n;
};

/* The scope named kind ("listener", "dialer") with that id in a snapshot
 * (nng 1.5's nng_stat_find_listener matches the wrong scope once there
 * are several). */
static nng_stat *
find_scope(nng_stat *st, const char *kind, uint64_t want)
{
	nng_stat *c, *id;

	if (st == NULL) {
		return NULL;
	}
	if (nng_stat_type(st) == NNG_STAT_SCOPE &&
	    strcmp(nng_stat_name(st), kind) == 0 &&
	    (id = nng_stat_find(st, "id")) != NULL &&
	    nng_stat_value(id) == want) {
		return st;
	}
	for (c = nng_stat_child(st); c != NULL; c = nng_stat_next(c)) {
		nng_stat *f = find_scope(c, kind, want);
		if (f != NULL) {
			return f;
		}
	}
	return NULL;
}

static nng_stat *
find_listener(nng_stat *st, nng_listener l)
{
	return find_scope(st, "listener", (uint64_t) nng_listener_id(l));
}

/* The value of one counter of listener l; -1 if stats are unavailable. */
static int
listener_stat(nng_listener l, const char *name, uint64_t *out)
{
	nng_stat *all, *ls, *s;
	int rv = -1;

	if (nng_stats_get(&all) != 0) {
		return -1;
	}
	if ((ls = find_listener(all, l)) != NULL &&
	    (s = nng_stat_find(ls, name)) != NULL) {
		*out = nng_stat_value(s);
		rv = 0;
	}
	nng_stats_free(all);
	return rv;
}

/* Connects to url with a plain socket and does the SP handshake as a
 * peer of protocol proto would (nng's wire: 0 'S' 'P' 0, the protocol
 * number, 0 0), waiting at most GUARD_PROBE_MS for the reply. Plain
 * sockets, not an nng socket: closing an nng socket whose dialer is
 * still connecting can wait on nng 1.5 for as long as the connection
 * takes, and the guard must stop promptly. TLS is not spoken: a tls+tcp
 * listener is only checked for taking the connection. */
static void
probe_connect(const char *url, uint16_t proto)
{
	struct addrinfo hints, *res = NULL;
	struct timeval tv = {GUARD_PROBE_MS / 1000,
	                     (GUARD_PROBE_MS % 1000) * 1000};
	uint8_t hdr[8] = {
	    0, 'S', 'P', 0, (uint8_t) (proto >> 8), (uint8_t) proto, 0, 0};
	uint8_t rep[8];
	int fd = -1;

	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un sa;
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		if (strlen(url + 6) >= sizeof(sa.sun_path) ||
		    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
			return;
		}
		memcpy(sa.sun_path, url + 6, strlen(url + 6));
		(void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
			close(fd);
			return;
		}
	} else {
		nng_url *u;
		if (nng_url_parse(&u, url) != 0) {
			return;
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		if (getaddrinfo(u->u_hostname, u->u_port, &hints, &res) == 0 &&
		    res != NULL &&
		    (fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC,
		                 0)) >= 0) {
			(void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
			                  sizeof(tv));
			(void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
			                  sizeof(tv));
			if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
				close(fd);
				fd = -1;
			}
		}
		if (res != NULL) {
			freeaddrinfo(res);
		}
		nng_url_free(u);
		if (fd < 0) {
			return;
		}
	}
	if (!is_tls(url) &&
	    send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) == (ssize_t) sizeof(hdr)) {
		/* Its header: the handshake is complete on both sides once
		 * it has read ours, and closing then is an ordinary
		 * disconnect, not the failure the guard is for. */
		size_t got = 0;
		while (got < sizeof(rep)) {
			ssize_t n = recv(fd, rep + got, sizeof(rep) - got, 0);
			if (n <= 0) {
				break;
			}
			got += (size_t) n;
		}
	}
	close(fd);
}

/* Non-zero if the listener accepted a connection after the guard made
 * one of its own. */
static int
guard_probe(guarded *g)
{
	uint64_t before, now, deadline;

	if (listener_stat(g->l, "accept", &before) != 0) {
		return 1; /* cannot tell: leave it be */
	}
	probe_connect(g->url, g->peer_proto);
	/* A connection that fails (refused, or EAGAIN: nobody takes
	 * connections off a full backlog) is no sign of life; another
	 * client's connection accepted meanwhile is. */
	deadline = lwwd_mono_ms() + GUARD_PROBE_MS;
	for (;;) {
		if (listener_stat(g->l, "accept", &now) != 0 || now != before) {
			return 1;
		}
		if (lwwd_mono_ms() >= deadline) {
			return 0;
		}
		nng_msleep(20);
	}
}

static void
guard_relisten(lwwd *d, guarded *g)
{
	nng_listener l;
	size_t max = 0;
	int rv;

	if (!g->closed) {
		nng_listener_close(g->l);
		g->closed = 1;
	}
	if (lwwd_listen(&d->cfg, g->sock, g->url, g->flag, &l) != 0) {
		g->retry_ms = lwwd_mono_ms() + 5000; /* printed why */
		return;
	}
	(void) nng_socket_get_size(g->sock, NNG_OPT_RECVMAXSZ, &max);
	if ((max != 0 &&
	     (rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, max)) != 0) ||
	    (g->ipc_perms != 0 &&
	     (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS,
	                                g->ipc_perms)) != 0) ||
	    (rv = nng_listener_start(l, 0)) != 0) {
		lwwd_log(LWWD_LOG_ERROR, "listener_restart_failed",
		         "flag=%s url=%s reason=\"%s\"", g->flag, g->url,
		         nng_strerror(rv));
		nng_listener_close(l);
		g->retry_ms = lwwd_mono_ms() + 5000;
		return;
	}
	g->l = l;
	g->other = 0;
	g->closed = 0;
	atomic_fetch_add(&d->stats.listener_restarts, 1);
	lwwd_log(LWWD_LOG_WARN, "listener_restarted",
	         "flag=%s url=%s reason=\"it stopped accepting after a "
	         "client left during the handshake (nng 1.5 bug #1518)\"",
	         g->flag, g->url);
}

/* What a dialer's error counters mean, for an operator. */
static const struct {
	const char *stat, *why;
} dial_errors[] = {
    {"refused", "connection refused (no lwwd listening there: is it "
                "running, and is this its --gossip address?)"},
    {"timeout", "timed out (host down, or a firewall drops the traffic)"},
    {"proto", "protocol error (something other than lwwd answers there)"},
    {"reject", "wrong socket type (not a --gossip address of a peer?)"},
    {"auth", "TLS authentication failed (check --tls-ca, --tls-cert and "
             "the peer's certificate name)"},
    {"disconnect", "disconnected"},
    {"oom", "out of memory"},
    {"other", "cannot connect (no such host or path, or the network is "
              "unreachable)"},
};
_Static_assert(sizeof(dial_errors) / sizeof(dial_errors[0]) == DIAL_ERRORS,
               "one counter a dial error");

/* Updates a dialer's state from a snapshot; warns on new errors. */
static void
dial_check(nng_stat *all, dialed *w)
{
	nng_stat *ds =
	    find_scope(all, "dialer", (uint64_t) nng_dialer_id(w->dl));
	nng_stat *x;
	const char *why = NULL;
	uint64_t now;

	if (ds == NULL) {
		return;
	}
	x = nng_stat_find(ds, "pipes");
	w->connected = x != NULL && nng_stat_value(x) > 0;
	if (w->connected) {
		w->failed = 0;
	}
	/* The first counter that moved names the error. */
	for (size_t i = 0; i < sizeof(dial_errors) / sizeof(dial_errors[0]);
	     i++) {
		uint64_t v;
		if ((x = nng_stat_find(ds, dial_errors[i].stat)) == NULL) {
			continue;
		}
		v = nng_stat_value(x);
		if (v != w->errs[i] && why == NULL) {
			why = dial_errors[i].why;
		}
		w->errs[i] = v;
	}
	if (why == NULL) {
		return;
	}
	snprintf(w->last_error, sizeof(w->last_error), "%s", why);
	if (w->connected || strcmp(why, "disconnected") == 0) {
		return; /* a peer restarting is no failure to report */
	}
	w->failed = 1;
	now = lwwd_mono_ms();
	if (w->warn_ms == 0 || now - w->warn_ms >= 60000) {
		w->warn_ms = now;
		lwwd_log(LWWD_LOG_WARN, "peer_unreachable",
		         "flag=%s url=%s reason=\"%s\" (repeats at most once a "
		         "minute; lwwctl peers shows its state)",
		         w->flag, w->url, why);
	}
}

static void *
guard_main(void *arg)
{
	lwwd *d = arg;
	struct lwwd_guard *gd = d->guard;

	pthread_mutex_lock(&gd->mtx);
	while (!lwwd_thr_wait(&gd->thr, lwwd_deadline_ms(GUARD_TICK_MS))) {
		if (gd->dn > 0) {
			nng_stat *all;
			if (nng_stats_get(&all) == 0) {
				for (size_t i = 0; i < gd->dn; i++) {
					dial_check(all, &gd->dv[i]);
				}
				nng_stats_free(all);
			}
		}
		for (size_t i = 0; i < gd->n && !lwwd_thr_stopping(&gd->thr);
		     i++) {
			guarded *g = &gd->g[i];
			uint64_t other;
			if (g->closed) {
				if (lwwd_mono_ms() >= g->retry_ms) {
					guard_relisten(d, g);
				}
				continue;
			}
			if (listener_stat(g->l, "other", &other) != 0 ||
			    other == g->other) {
				continue;
			}
			g->other = other;
			/* Probing takes time: let lwwd_guard_stop in. */
			pthread_mutex_unlock(&gd->mtx);
			int alive = guard_probe(g);
			pthread_mutex_lock(&gd->mtx);
			if (!alive && !lwwd_thr_stopping(&gd->thr)) {
				guard_relisten(d, g);
			}
		}
	}
	pthread_mutex_unlock(&gd->mtx);
	return NULL;
}

int
lwwd_listen_guarded(lwwd *d, nng_socket s, const char *url, const char *flag,
                    uint16_t peer_proto, int ipc_perms)
{
	struct lwwd_guard *gd = d->guard;
	nng_listener l;
	int rv;

	if (gd == NULL) {
		if ((gd = calloc(1, sizeof(*gd))) == NULL) {
			return -1;
		}
		pthread_mutex_init(&gd->mtx, NULL);
		d->guard = gd;
	}
	if (lwwd_listen(&d->cfg, s, url, flag, &l) != 0) {
		return -1;
	}
	if (ipc_perms != 0 && strncmp(url, "ipc://", 6) == 0 &&
	    (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS,
	                               ipc_perms)) != 0) {
		/* Fail closed: a socket others may open is open to every
		 * local user. */
		fprintf(stderr,
		        "lwwd: cannot make %s %s owner-only (mode %o): %s; "
		        "refusing to serve it open to other users: use a "
		        "tcp://127.0.0.1 address instead\n",
		        flag, url, (unsigned) ipc_perms, nng_strerror(rv));
		return -1;
	}
	if ((rv = nng_listener_start(l, 0)) != 0) {
		fprintf(stderr, "lwwd: cannot listen on %s %s: %s\n", flag, url,
		        nng_strerror(rv));
		return -1;
	}
	pthread_mutex_lock(&gd->mtx);
	if (gd->n < sizeof(gd->g) / sizeof(gd->g[0])) {
		guarded *g = &gd->g[gd->n++];
		g->sock = s;
		g->l = l;
		g->url = url;
		g->flag = flag;
		g->peer_proto = peer_proto;
		g->ipc_perms = strncmp(url, "ipc://", 6) == 0 ? ipc_perms : 0;
		(void) listener_stat(l, "other", &g->other);
	}
	if (!gd->thr.started) {
		(void) lwwd_thr_start(&gd->thr, &gd->mtx, guard_main, d);
	}
	pthread_mutex_unlock(&gd->mtx);
	return 0;
}

void
lwwd_guard_stop(lwwd *d)
{
	struct lwwd_guard *gd = d->guard;

	if (gd == NULL) {
		return;
	}
	lwwd_thr_stop(&gd->thr);
	lwwd_thr_fini(&gd->thr);
	pthread_mutex_destroy(&gd->mtx);
	for (size_t i = 0; i < gd->dn; i++) {
		free(gd->dv[i].url);
	}
	free(gd->dv);
	free(gd);
	d->guard = NULL;
}

int
lwwd_dial_watched(lwwd *d, nng_socket s, const char *url, const char *flag)
{
	struct lwwd_guard *gd = d->guard;
	nng_dialer dl;
	int rv;

	/* Non-blocking: a peer that is down now is redialled. */
	if ((rv = nng_dialer_create(&dl, s, url)) == 0 &&
	    (!is_tls(url) || TLS_SETUP(dialer, dl, &d->cfg, 0))) {
		rv = nng_dialer_start(dl, NNG_FLAG_NONBLOCK);
	}
	if (rv != 0) {
		fprintf(stderr, "lwwd: cannot dial %s %s: %s\n", flag, url,
		        nng_strerror(rv));
		return -1;
	}
	if (gd == NULL) {
		return 0; /* no listener yet: nothing watches */
	}
	pthread_mutex_lock(&gd->mtx);
	{
		dialed *v = realloc(gd->dv, (gd->dn + 1) * sizeof(*v));
		if (v != NULL) {
			gd->dv = v;
			memset(&v[gd->dn], 0, sizeof(v[0]));
			v[gd->dn].dl = dl;
			v[gd->dn].flag = flag;
			if ((v[gd->dn].url = strdup(url)) != NULL) {
				gd->dn++;
			}
		}
	}
	pthread_mutex_unlock(&gd->mtx);
	return 0;
}

/* Appends s to b as a JSON string. */
lww_err
lwwd_json_str(lww_buf *b, const char *s)
{
	lww_err rv = lww_buf_put(b, "\"", 1);
	for (; *s != '\0' && rv == LWW_OK; s++) {
		char e[8];
		if (*s == '"' || *s == '\\') {
			e[0] = '\\';
			e[1] = *s;
			rv = lww_buf_put(b, e, 2);
		} else if ((unsigned char) *s < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", (unsigned) *s);
			rv = lww_buf_put(b, e, 6);
		} else {
			rv = lww_buf_put(b, s, 1);
		}
	}
	return rv == LWW_OK ? lww_buf_put(b, "\"", 1) : rv;
}

lww_err
lwwd_dialers_json(lwwd *d, lww_buf *b, int first)
{
	struct lwwd_guard *gd = d->guard;
	lww_err rv = LWW_OK;

	if (gd == NULL) {
		return LWW_OK;
	}
	pthread_mutex_lock(&gd->mtx);
	for (size_t i = 0; i < gd->dn && rv == LWW_OK; i++) {
		const dialed *w = &gd->dv[i];
		const char *state = w->connected ? "connected"
		                    : w->failed  ? "failing"
		                                 : "connecting";
		if (!first || i > 0) {
			rv = lww_buf_put(b, ",", 1);
		}
		if (rv == LWW_OK) {
			static const char row[] =
			    "{\"kind\":\"address\",\"url\":";
			rv = lww_buf_put(b, row, sizeof(row) - 1);
		}
		if (rv == LWW_OK) {
			rv = lwwd_json_str(b, w->url);
		}
		if (rv == LWW_OK) {
			rv = lww_buf_put(b, ",\"dial\":", 8);
		}
		if (rv == LWW_OK) {
			rv = lwwd_json_str(b, w->flag);
		}
		if (rv == LWW_OK) {
			rv = lww_buf_put(b, ",\"state\":", 9);
		}
		if (rv == LWW_OK) {
			rv = lwwd_json_str(b, state);
		}
		if (rv == LWW_OK) {
			rv = lww_buf_put(b, ",\"last_error\":", 14);
		}
		if (rv == LWW_OK) {
			rv = lwwd_json_str(b, w->last_error);
		}
		if (rv == LWW_OK) {
			rv = lww_buf_put(b, "}", 1);
		}
	}
	pthread_mutex_unlock(&gd->mtx);
	return rv;
}
