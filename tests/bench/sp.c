/*
 * sp.c - see sp.h. One thread, non-blocking sockets, one outstanding
 * request per connection (like redis-benchmark -c without -P).
 */
#define _GNU_SOURCE
#include "sp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SP_REPLY_MAX (1u << 20)

typedef struct sp_conn {
	int fd;
	int busy;
	uint32_t id;
	uint64_t t0;
	uint8_t *out; /* a partly written request */
	size_t olen, ooff;
	int wantout; /* EPOLLOUT is asked for */
	uint8_t *in;
	size_t ilen, icap;
} sp_conn;

struct sp_pool {
	int ep;
	unsigned n;
	sp_conn *c;
	sp_reply_fn fn;
	void *arg;
};

uint64_t
sp_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t) v;
		v >>= 8;
	}
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++) {
		v = v << 8 | p[i];
	}
	return v;
}

static int
parse_url(const char *url, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon;
	size_t hl;

	if (strncmp(url, "tcp://", 6) != 0 ||
	    (colon = strrchr(url + 6, ':')) == NULL ||
	    (hl = (size_t) (colon - (url + 6))) >= sizeof(host)) {
		return -1;
	}
	memcpy(host, url + 6, hl);
	host[hl] = 0;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t) atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* Blocking connect and SP handshake: we are REQ (0x30), the peer REP. */
static int
conn_open(const struct sockaddr_in *sa)
{
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	uint8_t got[8];
	size_t n = 0;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) ||
	    write(fd, hello, 8) != 8) {
		goto fail;
	}
	while (n < 8) {
		ssize_t r = read(fd, got + n, 8 - n);
		if (r <= 0) {
			goto fail;
		}
		n += (size_t) r;
	}
	if (memcmp(got, "\0SP\0\0\x31", 6) != 0) {
		fprintf(stderr, "lwwbench: peer is not an SP REP socket\n");
		goto fail;
	}
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		goto fail;
	}
	return fd;
fail:
	if (fd >= 0) {
		close(fd);
	}
	return -1;
}

sp_pool *
sp_open(const char *url, unsigned n, sp_reply_fn fn, void *arg)
{
	struct sockaddr_in sa;
	sp_pool *p;

	if (parse_url(url, &sa) != 0) {
		fprintf(stderr, "lwwbench: %s: want tcp://A.B.C.D:PORT\n", url);
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->c = calloc(n, sizeof(*p->c))) == NULL ||
	    (p->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		free(p != NULL ? p->c : NULL);
		free(p);
		return NULL;
	}
	p->fn = fn;
	p->arg = arg;
	for (unsigned i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		sp_conn *c = &p->c[i];
		if ((c->fd = conn_open(&sa)) < 0 ||
		    epoll_ctl(p->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
			fprintf(stderr, "lwwbench: %s: connection %u: %s\n",
			        url, i, strerror(errno));
			p->n = i + (c->fd >= 0);
			sp_close(p);
			return NULL;
		}
		c->id = (uint32_t) i << 20;
		p->n = i + 1;
	}
	return p;
}

void
sp_close(sp_pool *p)
{
	if (p == NULL) {
		return;
	}
	for (unsigned i = 0; i < p->n; i++) {
		close(p->c[i].fd);
		free(p->c[i].out);
		free(p->c[i].in);
	}
	close(p->ep);
	free(p->c);
	free(p);
}

int
sp_busy(const sp_pool *p, unsigned i)
{
	return p->c[i].busy;
}

static int
want_out(sp_pool *p, unsigned i, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
	                         .data.u32 = i};
	return epoll_ctl(p->ep, EPOLL_CTL_MOD, p->c[i].fd, &ev);
}

/* Writes what is left of the request; EPOLLOUT is asked for only while
 * the socket is full. */
static int
flush_out(sp_pool *p, unsigned i)
{
	sp_conn *c = &p->c[i];

	while (c->ooff < c->olen) {
		ssize_t w = write(c->fd, c->out + c->ooff, c->olen - c->ooff);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (c->wantout) {
				return 0;
			}
			c->wantout = 1;
			return want_out(p, i, 1);
		}
		if (w <= 0) {
			return -1;
		}
		c->ooff += (size_t) w;
	}
	c->olen = 0;
	if (c->wantout) {
		c->wantout = 0;
		return want_out(p, i, 0);
	}
	return 0;
}

int
sp_send(sp_pool *p, unsigned i, const uint8_t *msg, size_t n)
{
	sp_conn *c = &p->c[i];
	uint8_t *o;

	if (c->busy || (o = realloc(c->out, n + 12)) == NULL) {
		return -1;
	}
	c->out = o;
	c->id = (c->id + 1) & 0x7fffffffu;
	put_be(o, n + 4, 8);
	put_be(o + 8, c->id | 0x80000000u, 4);
	memcpy(o + 12, msg, n);
	c->olen = n + 12;
	c->ooff = 0;
	c->busy = 1;
	c->t0 = sp_now_us();
	return flush_out(p, i); /* usually one write() takes it all */
}

/* Delivers every whole reply in c->in. */
static int
take_replies(sp_pool *p, unsigned i)
{
	sp_conn *c = &p->c[i];
	size_t off = 0;

	while (c->ilen - off >= 8) {
		uint64_t len = get_be(c->in + off, 8);
		if (len < 4 || len > SP_REPLY_MAX) {
			fprintf(stderr, "lwwbench: bad reply length %llu\n",
			        (unsigned long long) len);
			return -1;
		}
		if (c->ilen - off - 8 < len) {
			break;
		}
		const uint8_t *b = c->in + off + 8;
		uint32_t id = (uint32_t) get_be(b, 4);
		if (c->busy && id == (c->id | 0x80000000u)) {
			c->busy = 0;
			p->fn(p->arg, i, b + 4, (size_t) len - 4,
			      sp_now_us() - c->t0);
		}
		off += 8 + (size_t) len;
	}
	memmove(c->in, c->in + off, c->ilen - off);
	c->ilen -= off;
	return 0;
}

static int
read_in(sp_pool *p, unsigned i)
{
	sp_conn *c = &p->c[i];

	for (;;) {
		if (c->icap - c->ilen < 4096) {
			size_t cap = c->icap ? c->icap * 2 : 8192;
			uint8_t *b;
			if (cap > SP_REPLY_MAX + 4096 ||
			    (b = realloc(c->in, cap)) == NULL) {
				return -1;
			}
			c->in = b;
			c->icap = cap;
		}
		ssize_t r = read(c->fd, c->in + c->ilen, c->icap - c->ilen);
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			return 0;
		}
		if (r <= 0) {
			fprintf(stderr, "lwwbench: connection %u closed\n", i);
			return -1;
		}
		c->ilen += (size_t) r;
		if (take_replies(p, i) != 0) {
			return -1;
		}
		if ((size_t) r < 4096) {
			return 0;
		}
	}
}

int
sp_poll(sp_pool *p, int timeout_ms)
{
	struct epoll_event ev[64];
	int n = epoll_wait(p->ep, ev, 64, timeout_ms);

	for (int k = 0; k < n; k++) {
		unsigned i = ev[k].data.u32;
		if (((ev[k].events & EPOLLOUT) && flush_out(p, i) != 0) ||
		    ((ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
		     read_in(p, i) != 0)) {
			return -1;
		}
	}
	return n < 0 && errno != EINTR ? -1 : 0;
}
