/*
 * seen.c - the per-origin window of seen batch sequences (seen.h).
 */
#include <string.h>

#include "seen.h"

#define WORDS (LWW_SEEN_WINDOW / 64)

static int
bit(const lww_seen *s, uint64_t i)
{
	return (int) ((s->bits[i / 64] >> (i % 64)) & 1u);
}

/* Moves the window down by n (the bits of base+1..base+n leave it);
 * the caller moves base. */
static void
shift_down(lww_seen *s, uint64_t n)
{
	size_t words, b;

	if (n >= LWW_SEEN_WINDOW) {
		memset(s->bits, 0, sizeof(s->bits));
		return;
	}
	words = (size_t) n / 64;
	b = (size_t) n % 64;
	if (words > 0) {
		memmove(s->bits, s->bits + words,
		        (WORDS - words) * sizeof(s->bits[0]));
		memset(s->bits + WORDS - words, 0, words * sizeof(s->bits[0]));
	}
	if (b > 0) {
		for (size_t w = 0; w < WORDS; w++) {
			s->bits[w] >>= b;
			if (w + 1 < WORDS) {
				s->bits[w] |= s->bits[w + 1] << (64 - b);
			}
		}
	}
}

/* Moves base up while base+1 has been seen (bit 0), a whole word at a
 * time where it is all set. */
static void
advance(lww_seen *s)
{
	for (;;) {
		uint64_t n = s->bits[0] == UINT64_MAX ? 64 : s->bits[0] & 1u;
		if (n == 0) {
			return;
		}
		shift_down(s, n);
		s->base += n;
	}
}

/* Counts the unseen sequences in base+1..base+n of the window, and one
 * more for a jump past it. */
static uint64_t
unseen(const lww_seen *s, uint64_t n)
{
	uint64_t c = 0;
	for (uint64_t i = 0; i < n && i < LWW_SEEN_WINDOW; i++) {
		c += !bit(s, i);
	}
	return c + (n > LWW_SEEN_WINDOW ? 1 : 0);
}

uint64_t
lww_seen_skip(lww_seen *s, uint64_t seq)
{
	uint64_t n, lost;

	if (!s->started || seq <= s->base) {
		return 0;
	}
	n = seq - s->base;
	lost = unseen(s, n);
	shift_down(s, n);
	s->base = seq;
	advance(s);
	if (s->top < s->base) {
		s->top = s->base;
	}
	return lost;
}

void
lww_seen_start(lww_seen *s, uint64_t base)
{
	memset(s, 0, sizeof(*s));
	s->started = 1;
	s->base = base;
	s->top = base;
}

int
lww_seen_has(const lww_seen *s, uint64_t seq)
{
	if (seq == 0) {
		return 1; /* not a batch's: batches count from 1 */
	}
	if (!s->started) {
		return 0;
	}
	if (seq <= s->base) {
		return 1;
	}
	if (seq - s->base > LWW_SEEN_WINDOW) {
		return 0;
	}
	return bit(s, seq - s->base - 1);
}

uint64_t
lww_seen_add(lww_seen *s, uint64_t seq)
{
	uint64_t lost = 0;

	if (seq == 0) {
		return 0;
	}
	if (!s->started) {
		lww_seen_start(s, seq - 1); /* seq >= 1 */
	}
	if (seq <= s->base) {
		return 0;
	}
	if (seq - s->base > LWW_SEEN_WINDOW) {
		/* A jump: what it passes over is given up at once (the origin
		 * was renumbered at a restart, or too much was lost to track):
		 * repair's, not grafted one by one. */
		lost = lww_seen_skip(s, seq - 1);
	}
	if (seq <= s->base) { /* the skip reached it (it was seen) */
		return lost;
	}
	{
		uint64_t i = seq - s->base - 1;
		s->bits[i / 64] |= (uint64_t) 1 << (i % 64);
	}
	if (s->top < seq) {
		s->top = seq;
	}
	advance(s);
	return lost;
}

uint64_t
lww_seen_first_missing(const lww_seen *s, uint64_t upto)
{
	if (!s->started || upto <= s->base) {
		return 0;
	}
	for (uint64_t q = s->base + 1; q <= upto; q++) {
		if (q - s->base > LWW_SEEN_WINDOW || !bit(s, q - s->base - 1)) {
			return q;
		}
	}
	return 0;
}
