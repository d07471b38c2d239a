/*
 * gossip.h - relayed gossip between neighbours (gossip.c): the node's
 * batches reach every trusted node through whichever nodes link them.
 */
#ifndef LWWD_GOSSIP_H
#define LWWD_GOSSIP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

typedef struct lwwd lwwd;
typedef struct lwwd_gossip lwwd_gossip;

/* Listens on --gossip, dials every --peer, starts the link thread.
 * Prints why and returns -1 on error. */
int lwwd_gossip_start(lwwd *d);
/* Stops receiving and the link thread; nothing of gossip reaches repair
 * or the writer afterwards. */
void lwwd_gossip_stop(lwwd *d);
/* The durable hook's target (the syncer, no lock held): signs a durable
 * local batch and sends it to the neighbours (counted as sent). */
void lwwd_gossip_batch(lwwd *d, uint64_t seq, const uint8_t *b, size_t n);
/* JSON, d->mtx held or not (gossip's lock is a leaf): appends
 * ,"deliveries":[...] (the last first copies of remote batches, for the
 * stats object "gossip"); the neighbour rows of peers (each after a comma
 * unless first); for origin node, the copies received and forwarded. */
lww_err lwwd_gossip_deliveries_json(lwwd *d, lww_buf *b);
lww_err lwwd_gossip_neighbours_json(lwwd *d, lww_buf *b, int first);
void lwwd_gossip_origin_counts(lwwd *d, uint64_t node, uint64_t *copies,
                               uint64_t *forwarded);

#endif /* LWWD_GOSSIP_H */
