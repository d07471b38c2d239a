/*
 * net.c - listening and dialling for gossip and repair, with nng's TLS
 * transport when a URL says tls+tcp://. TLS is mutual: every node presents
 * --tls-cert (certificate and key, PEM) and requires the other side's to
 * be signed by --tls-ca. It gives confidentiality; who may write is still
 * decided by the Ed25519 trust file.
 */
#include <stdio.h>
#include <string.h>

#include "lwwd.h"

#include <nng/supplemental/tls/tls.h>

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
