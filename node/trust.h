/*
 * trust.h - the trust and clients files, and opening signed envelopes against them (trust.c).
 */
#ifndef LWWD_TRUST_H
#define LWWD_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "err.h"
#include "limits.h"

typedef struct lwwd lwwd;

/* -1 with a message naming the chmod fix if path (a file, or with dir
 * a directory) is writable by every user. */
int lwwd_check_not_world_writable(const char *flag, const char *path, int dir,
                                  char *err, size_t errlen);
/* Loads the trust file and rebuilds the peer table, then the clients file
 * if there is one (start-up, SIGHUP, lwwctl reload); logs what changed
 * unless `initial`. On error keeps what it had, writes why into err and
 * returns -1. */
int lwwd_reload(lwwd *d, int initial, char *err, size_t errlen);
/* Non-zero if p, n is an envelope whose signer is listed in --clients;
 * checks no signature (a table lookup, for what is refused unread). */
int lwwd_client_listed(lwwd *d, const uint8_t *p, size_t n);
/* Who signed an envelope lwwd_verify opened. */
typedef struct lwwd_signer {
	uint64_t node; /* 0: any signer was accepted (no --clients) */
	char name[LWW_TRUST_NAME_MAX + 1];
	unsigned flags; /* LWW_PEER_RO */
} lwwd_signer;
/* Opens p[0..n) against the trust set (clients 0) or the --clients set,
 * under keys_lock's read side, never under d->mtx (a reload takes
 * keys_lock, then d->mtx). On LWW_OK *env borrows from p, with env->peer
 * NULL (a reload may free the set), and *who names the signer (zeroed
 * when no set was given: any valid signer, not read-only). From a peer, a
 * message signed by this node's own key is LWW_EFORGED, with *who filled
 * in (our socket looped back, or a cloned key). Other errors are as
 * lww_envelope_open. */
LWW_MUST_CHECK lww_err lwwd_verify(lwwd *d, int clients, const uint8_t *p,
                                   size_t n, lww_envelope *env,
                                   lwwd_signer *who);
/* Whether node is the node id of a key in the trust file. */
int lwwd_trusted_node(lwwd *d, uint64_t node);

#endif /* LWWD_TRUST_H */
