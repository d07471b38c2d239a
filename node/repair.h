/*
 * repair.h - anti-entropy repair (repair.c); its state is private to repair.c.
 */
#ifndef LWWD_REPAIR_H
#define LWWD_REPAIR_H

#include <stdint.h>

typedef struct lwwd lwwd;

/* Anti-entropy repair (repair.c): the --sync REP server and the rounds
 * against each peer. */
int lwwd_repair_start(lwwd *d);
void lwwd_repair_stop(lwwd *d);
/* Asks for a round with the peer whose node id is given (0: any) soon;
 * called when gossip shows a lost batch. Rate-limited. Any thread, with
 * or without d->mtx (repair's lock is a leaf under it). */
void lwwd_repair_trigger(lwwd *d, uint64_t node);

#endif /* LWWD_REPAIR_H */
