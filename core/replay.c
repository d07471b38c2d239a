/*
 * replay.c - nonce cache: open addressing with linear probing over a
 * power-of-two table at most three-quarters full. Expired slots are not
 * reused in place (that would break probe chains); instead, when the table
 * fills, it is rebuilt without them.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "replay.h"

typedef struct slot {
	uint8_t nonce[16];
	uint64_t expires; /* 0: empty */
} slot;

struct lww_replay {
	slot *t;
	size_t cap; /* slots, a power of two */
	size_t used;
	uint64_t window;
};

lww_replay *
lww_replay_alloc(size_t cap, uint64_t window_ms)
{
	lww_replay *r = calloc(1, sizeof(*r));
	size_t n = 64;

	if (r == NULL) {
		return NULL;
	}
	/* Room for cap live entries at three-quarters load. */
	while (n < cap + cap / 3 + 1 && n < ((size_t) 1 << 30)) {
		n *= 2;
	}
	if ((r->t = calloc(n, sizeof(*r->t))) == NULL) {
		free(r);
		return NULL;
	}
	r->cap = n;
	r->window = window_ms;
	return r;
}

void
lww_replay_free(lww_replay *r)
{
	if (r != NULL) {
		free(r->t);
		free(r);
	}
}

static size_t
home(const lww_replay *r, const uint8_t nonce[16])
{
	/* Nonces are random: their first bytes are a fine hash. */
	return (size_t) lww_get_u64le(nonce) & (r->cap - 1);
}

/* Drops expired entries by reinserting the live ones. */
static void
rebuild(lww_replay *r, uint64_t now)
{
	slot *old = r->t;
	slot *t = calloc(r->cap, sizeof(*t));

	if (t == NULL) {
		return; /* keep the old table; the caller sees it full */
	}
	r->t = t;
	r->used = 0;
	for (size_t i = 0; i < r->cap; i++) {
		if (old[i].expires > now) {
			size_t j = home(r, old[i].nonce);
			while (t[j].expires != 0) {
				j = (j + 1) & (r->cap - 1);
			}
			t[j] = old[i];
			r->used++;
		}
	}
	free(old);
}

lww_err
lww_replay_check(lww_replay *r, const uint8_t nonce[16], uint64_t ts_ms,
                 uint64_t now_ms)
{
	size_t i;

	if ((ts_ms > now_ms && ts_ms - now_ms > r->window) ||
	    (now_ms > ts_ms && now_ms - ts_ms > r->window)) {
		return LWW_ESTALE;
	}
	for (i = home(r, nonce); r->t[i].expires != 0;
	     i = (i + 1) & (r->cap - 1)) {
		if (r->t[i].expires > now_ms &&
		    memcmp(r->t[i].nonce, nonce, 16) == 0) {
			return LWW_EREPLAY;
		}
	}
	if (r->used + 1 > r->cap / 4 * 3) {
		rebuild(r, now_ms);
		if (r->used + 1 > r->cap / 4 * 3) {
			return LWW_EBUSY;
		}
		for (i = home(r, nonce); r->t[i].expires != 0;
		     i = (i + 1) & (r->cap - 1)) {
		}
	}
	memcpy(r->t[i].nonce, nonce, 16);
	/* Remember it until its timestamp itself makes it stale. */
	r->t[i].expires = ts_ms + r->window + 1;
	r->used++;
	return LWW_OK;
}
