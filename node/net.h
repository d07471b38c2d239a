/*
 * net.h - listening, dialling and sending (net.c). Includes no lwwd.h.
 */
#ifndef LWWD_NET_H
#define LWWD_NET_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "err.h"

typedef struct lwwd lwwd;

/* ---- addresses (net.c) ---- */
/* Refuses tls+tcp:// addresses without --tls-cert and --tls-ca. */
int lwwd_tls_check(const lwwd_config *c);
/* Listens on url (flag names the option, for errors); with out != NULL
 * the listener is returned unstarted, for more options. Prints why and
 * returns -1 on error. */
int lwwd_listen(const lwwd_config *c, nng_socket s, const char *url,
                const char *flag, nng_listener *out);
/* Listens on url and starts the listener, mode ipc_perms for an ipc://
 * url (0: nng's default); a guard thread listens anew if nng stops
 * accepting on it (net.c: nng 1.5 bug #1518). peer_proto is the SP
 * protocol number of its peers (LWWD_SP_REQ, LWWD_SP_PAIR1), to check that
 * it still accepts. */
#define LWWD_SP_PAIR1 0x11
#define LWWD_SP_REQ   0x30
int lwwd_listen_guarded(lwwd *d, nng_socket s, const char *url,
                        const char *flag, uint16_t peer_proto, int ipc_perms);
/* Stops the guard thread; before the guarded sockets close. */
void lwwd_guard_stop(lwwd *d);
/* Dials url without blocking (as lwwd_dial) and watches the dialer: a
 * failure is a warning naming the URL, once a minute, and
 * lwwd_dialers_json reports its state. After lwwd_listen_guarded. */
int lwwd_dial_watched(lwwd *d, nng_socket s, const char *url, const char *flag);
/* Appends one JSON object per watched dialer (url, dial, state:
 * connected, connecting or failing, last_error), each after a comma
 * unless first and it is the first. */
lww_err lwwd_dialers_json(lwwd *d, lww_buf *b, int first);
/* Appends s as a JSON string (quoted, escaped). */
lww_err lwwd_json_str(lww_buf *b, const char *s);
/* Dials url without blocking; nng redials while it is down. */
int lwwd_dial(const lwwd_config *c, nng_socket s, const char *url,
              const char *flag);
/* A message holding a copy of p[0..n) in *out. On failure *out is NULL,
 * nothing needs freeing, and the nng error is returned. */
int lwwd_msg_new(nng_msg **out, const void *p, size_t n);
/* Sends a copy of p[0..n) on s: with aio NULL by nng_sendmsg(s, m,
 * flags); else by nng_send_aio and nng_aio_wait (nng_aio_stop on aio ends
 * the wait). A message not sent is freed, the one left in the aio too.
 * Returns 0 or an nng error. */
int lwwd_send(nng_socket s, nng_aio *aio, const void *p, size_t n, int flags);
/* Seals payload with k into env (reused), then lwwd_send. NNG_ENOMEM if
 * sealing fails. */
int lwwd_send_sealed(const lww_key *k, nng_socket s, nng_aio *aio,
                     const void *payload, size_t n, lww_buf *env, int flags);

#endif /* LWWD_NET_H */
