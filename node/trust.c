/*
 * trust.c - (re)loading the trust and clients files, and opening signed
 * envelopes against them. A reload reads and builds the new sets
 * completely before swapping them in under keys_lock's write side, so a
 * file that does not parse changes nothing, and a key removed from a
 * file is refused from the next message on. Writes already merged stay.
 *
 * Checking a signature hashes the whole message (up to 2 MiB: a few
 * milliseconds), so it runs under keys_lock's read side, which the write
 * path never takes: a flood of badly signed batches from a trusted key
 * costs CPU, never the writer's mutex. The lock prefers writers, so a
 * reload waits for the checks under way, not for a flood to end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lwwd.h"

/* Logs keys that one set has and the other lacks. */
static void
log_diff(const lww_trust *from, const lww_trust *to, const char *event,
         const char *what, uint64_t self)
{
	for (size_t i = 0; i < lww_trust_count(from); i++) {
		const lww_peer *p = lww_trust_at(from, i);
		if (p->node != self && lww_trust_find_pk(to, p->pk) == NULL) {
			lwwd_log(LWWD_LOG_INFO, event, "%s=%s", what, p->name);
		}
	}
}

lww_err
lwwd_verify(lwwd *d, int clients, const uint8_t *p, size_t n, lww_envelope *env,
            lwwd_signer *who)
{
	lww_envelope e;
	lww_err rv;

	memset(who, 0, sizeof(*who));
	pthread_rwlock_rdlock(&d->keys_lock);
	rv = lww_envelope_open(p, n, clients ? d->clients : d->trust, &e);
	if (rv == LWW_OK && e.peer != NULL) {
		/* e.peer points into a set a reload frees: copy it. */
		who->node = e.peer->node;
		memcpy(who->name, e.peer->name, sizeof(who->name));
		who->flags = e.peer->flags;
	}
	pthread_rwlock_unlock(&d->keys_lock);
	if (rv != LWW_OK) {
		return rv;
	}
	e.peer = NULL;
	*env = e;
	if (!clients && who->node == d->self) {
		return LWW_EFORGED; /* our own key: a loop or a cloned key */
	}
	return LWW_OK;
}

int
lwwd_client_listed(lwwd *d, const uint8_t *p, size_t n)
{
	uint8_t type;
	int found;

	if (lww_msg_peek(p, n, &type) != LWW_OK || type != LWW_MSG_ENVELOPE ||
	    n < LWW_ENVELOPE_OVERHEAD) {
		return 0;
	}
	pthread_rwlock_rdlock(&d->keys_lock);
	found =
	    d->clients != NULL && lww_trust_find_pk(d->clients, p + 2) != NULL;
	pthread_rwlock_unlock(&d->keys_lock);
	return found;
}

int
lwwd_trusted_node(lwwd *d, uint64_t node)
{
	int found;

	pthread_rwlock_rdlock(&d->keys_lock);
	found = lww_trust_find_node(d->trust, node) != NULL;
	pthread_rwlock_unlock(&d->keys_lock);
	return found;
}

int
lwwd_check_not_world_writable(const char *flag, const char *path, int dir,
                              char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		return 0; /* whoever opens it says why it cannot */
	}
	if ((st.st_mode & S_IWOTH) != 0) {
		snprintf(err, errlen,
		         "%s %s is writable by every user (mode %04o): anyone "
		         "could %s; run chmod o-w %s",
		         flag, path, (unsigned) (st.st_mode & 07777),
		         dir ? "replace or delete the store and its log"
		             : "add a key of their own",
		         path);
		return -1;
	}
	return 0;
}

int
lwwd_reload(lwwd *d, int initial, char *err, size_t errlen)
{
	char why[256];
	lww_trust *t, *cl = NULL, *old, *oldcl;
	lwwd_peer_state *np;
	size_t n = 0;
	lww_err rv;

	if (lwwd_check_not_world_writable("--trust", d->cfg.trust, 0, err,
	                                  errlen) != 0 ||
	    (d->cfg.clients != NULL &&
	     lwwd_check_not_world_writable("--clients", d->cfg.clients, 0, err,
	                                   errlen) != 0)) {
		return -1;
	}
	if ((rv = lww_trust_load(d->cfg.trust, &t, why, sizeof(why))) !=
	    LWW_OK) {
		snprintf(err, errlen, "--trust %s: %s", d->cfg.trust, why);
		return -1;
	}
	/* A file being rewritten (empty, or cut short) must not drop every
	 * peer: a reload keeps the old keys unless the new file still lists
	 * this node, as every complete trust file of the cluster does. */
	if (!initial && lww_trust_find_node(t, d->self) == NULL) {
		snprintf(err, errlen,
		         "--trust %s: %s; fix the file (lwwctl keygen prints "
		         "this node's line) and reload again",
		         d->cfg.trust,
		         lww_trust_count(t) == 0
		             ? "it is empty (truncated, or being rewritten?)"
		             : "it no longer lists this node (truncated?)");
		lww_trust_free(t);
		return -1;
	}
	if (d->cfg.clients != NULL &&
	    (rv = lww_trust_load(d->cfg.clients, &cl, why, sizeof(why))) !=
	        LWW_OK) {
		snprintf(err, errlen, "--clients %s: %s", d->cfg.clients, why);
		lww_trust_free(t);
		return -1;
	}
	if ((np = calloc(lww_trust_count(t) + 1, sizeof(*np))) == NULL) {
		snprintf(err, errlen, "out of memory");
		lww_trust_free(t);
		lww_trust_free(cl);
		return -1;
	}
	/* keys_lock, then mtx: never the other way round. */
	pthread_rwlock_wrlock(&d->keys_lock);
	pthread_mutex_lock(&d->mtx);
	for (size_t i = 0; i < lww_trust_count(t); i++) {
		const lww_peer *p = lww_trust_at(t, i);
		if (p->node == d->self) {
			memcpy(d->self_name, p->name, sizeof(d->self_name));
			continue;
		}
		np[n].node = p->node;
		/* Keep what we knew of a peer that stays. */
		for (size_t j = 0; j < d->npeers; j++) {
			if (d->peers[j].node == p->node) {
				np[n] = d->peers[j];
			}
		}
		memcpy(np[n].name, p->name, sizeof(np[n].name));
		n++;
	}
	old = d->trust;
	oldcl = d->clients;
	d->trust = t;
	d->clients = cl;
	free(d->peers);
	d->peers = np;
	d->npeers = n;
	pthread_mutex_unlock(&d->mtx);
	pthread_rwlock_unlock(&d->keys_lock);
	/* The old sets are ours alone now; the new ones never change. */
	if (!initial) {
		log_diff(old, t, "peer_removed", "peer", d->self);
		log_diff(t, old, "peer_added", "peer", d->self);
		log_diff(oldcl, cl, "client_removed", "client", 0);
		log_diff(cl, oldcl, "client_added", "client", 0);
	}
	lww_trust_free(old);
	lww_trust_free(oldcl);
	if (!initial) {
		lwwd_log(LWWD_LOG_INFO, "trust_loaded",
		         "file=%s peers=%zu clients=%zu", d->cfg.trust, n,
		         lww_trust_count(cl));
	}
	return 0;
}
