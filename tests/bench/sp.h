/*
 * sp.h - a lean load generator for the benchmark: many TCP connections
 * driven by one epoll thread, speaking nng's REQ side of the SP protocol
 * directly (the 8-byte SP header, then 64-bit length-prefixed messages
 * whose body starts with a 32-bit request id). This is what
 * redis-benchmark is to Redis: the client costs little, so the server is
 * what gets measured.
 */
#ifndef LWWBENCH_SP_H
#define LWWBENCH_SP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sp_pool sp_pool;

/* Called for every reply: connection index, reply payload (without the
 * request id) and the microseconds since its request was sent. */
typedef void (*sp_reply_fn)(void *arg, unsigned conn, const uint8_t *p,
                            size_t n, uint64_t us);

/* Opens n connections to URL (tcp://A.B.C.D:PORT) and does the SP
 * handshake on each. Returns NULL with a message on stderr on failure. */
sp_pool *sp_open(const char *url, unsigned n, sp_reply_fn fn, void *arg);
void sp_close(sp_pool *);

/* Sends one request on connection conn, which must be idle. */
int sp_send(sp_pool *, unsigned conn, const uint8_t *p, size_t n);
int sp_busy(const sp_pool *, unsigned conn);

/* Waits up to timeout_ms for replies and delivers them. Returns -1 when a
 * connection failed (message on stderr). */
int sp_poll(sp_pool *, int timeout_ms);

uint64_t sp_now_us(void);

#endif
