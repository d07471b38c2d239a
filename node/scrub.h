/*
 * scrub.h - finds damaged records and has peers replace them.
 *
 * Every record in the store carries a check (store.h). Reads that meet a
 * record failing it report it here; a scrub thread drops such records
 * (lww_store_heal), and also walks the whole store once per
 * --scrub-interval (lww_store_check_keys and lww_store_check_leaf), so
 * that damage nobody reads is found too. Whatever it drops is logged at
 * error level with its key and counted, and a repair round is asked for:
 * the hash tree no longer holds the record, so repair fetches a sound
 * copy from a peer.
 */
#ifndef LWWD_SCRUB_H
#define LWWD_SCRUB_H

#include <stddef.h>
#include <stdint.h>

typedef struct lwwd lwwd;

/* Starts the scrub thread; prints why and returns -1 on error. */
int lwwd_scrub_start(lwwd *d);

/* Stops and joins the thread (it asks repair for rounds, so stop it
 * before repair); accepts a node whose scrub never started. Reports are
 * still taken, and ignored, until lwwd_scrub_free. */
void lwwd_scrub_stop(lwwd *d);

/* Frees what the scrub holds, once nothing can report any more (after
 * the API stopped). */
void lwwd_scrub_free(lwwd *d);

/* A read found a record damaged: key is the key itself when `full`
 * (a lookup), else its stored key (lww_store_key; a scan). Counts and
 * logs it, and queues it for the scrub thread. Any thread; never blocks
 * (a full queue is left to the next pass). */
void lwwd_scrub_report(lwwd *d, const uint8_t *key, size_t n, int full);

#endif /* LWWD_SCRUB_H */
