/*
 * lwwshim - an LD_PRELOAD library for end-to-end tests: it makes four
 * slow or rare conditions happen on demand in a real lwwd, each switched
 * on by an environment variable (all off by default):
 *
 *   LWW_SHIM_VERIFY_MS=N   every Ed25519 signature check
 *                          (crypto_sign_verify_detached) sleeps N ms after
 *                          its result is known: verification as slow as on
 *                          a small edge CPU, without using this machine's
 *                          CPU, so that a test sees who waits for it.
 *   LWW_SHIM_SYNC_MS=N     fsync and fdatasync of a file whose path
 *   LWW_SHIM_SYNC_MATCH=S  contains S sleep N ms first: a slow disk under
 *                          one file (say the store's data.mdb).
 *   LWW_SHIM_RECV_TIMEOUT_MS=N  every nng_recv_aio gets an N ms timeout
 *                          (as if a receive timeout were set on each
 *                          socket): a receive that waits longer fails
 *                          with NNG_ETIMEDOUT, an error other than close.
 *   LWW_SHIM_WALL_WAITS=1  a pthread_cond_timedwait on a CLOCK_REALTIME
 *                          condition variable ends when the wall clock
 *                          that the process reads (clock_gettime, possibly
 *                          skewed by libfaketime, preloaded after this)
 *                          reaches its deadline, as the kernel's does when
 *                          the real clock is stepped. libfaketime alone
 *                          moves each deadline to the real clock, which
 *                          hides exactly the bug a clock step causes: a
 *                          one-second wait that lasts an hour. (Waits on
 *                          CLOCK_MONOTONIC ones go straight to glibc:
 *                          libfaketime 0.9.10 ends them at once while the
 *                          clock is shifted, even with DONT_FAKE_MONOTONIC.)
 *
 * It is built without sanitizers and needs ASAN_OPTIONS with
 * verify_asan_link_order=0 in front of an ASan build of lwwd.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLICE_NS 10000000L /* a wall-clock wait looks again every 10 ms */

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static long
env_ms(const char *name)
{
	const char *v = getenv(name);

	return v != NULL ? atol(v) : 0;
}

static void *
next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL) {
		fprintf(stderr, "lwwshim: no %s to wrap\n", name);
		abort();
	}
	return f;
}

/* ---- slow signature checks ---- */

int crypto_sign_verify_detached(const unsigned char *sig,
                                const unsigned char *m, unsigned long long mlen,
                                const unsigned char *pk);

int
crypto_sign_verify_detached(const unsigned char *sig, const unsigned char *m,
                            unsigned long long mlen, const unsigned char *pk)
{
	static int (*real)(const unsigned char *, const unsigned char *,
	                   unsigned long long, const unsigned char *);
	long ms = env_ms("LWW_SHIM_VERIFY_MS");
	int rv;

	if (real == NULL) {
		real = (int (*)(const unsigned char *, const unsigned char *,
		                unsigned long long, const unsigned char *))
		    next("crypto_sign_verify_detached");
	}
	rv = real(sig, m, mlen, pk);
	if (ms > 0) {
		sleep_ms(ms);
	}
	return rv;
}

/* ---- a slow disk under one file ---- */

static void
slow_sync(int fd)
{
	const char *match = getenv("LWW_SHIM_SYNC_MATCH");
	long ms = env_ms("LWW_SHIM_SYNC_MS");
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (ms <= 0 || match == NULL) {
		return;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0) {
		return;
	}
	path[n] = '\0';
	if (strstr(path, match) != NULL) {
		sleep_ms(ms);
	}
}

int
fsync(int fd)
{
	static int (*real)(int);

	if (real == NULL) {
		real = (int (*)(int)) next("fsync");
	}
	slow_sync(fd);
	return real(fd);
}

int
fdatasync(int fd)
{
	static int (*real)(int);

	if (real == NULL) {
		real = (int (*)(int)) next("fdatasync");
	}
	slow_sync(fd);
	return real(fd);
}

/* ---- receive timeouts ---- */

/* nng's types, by layout: a socket is a struct of one uint32_t. */
typedef struct {
	unsigned int id;
} shim_socket;
void nng_recv_aio(shim_socket s, void *aio);

void
nng_recv_aio(shim_socket s, void *aio)
{
	static void (*real)(shim_socket, void *);
	static void (*set_timeout)(void *, int);
	long ms = env_ms("LWW_SHIM_RECV_TIMEOUT_MS");

	if (real == NULL) {
		real = (void (*)(shim_socket, void *)) next("nng_recv_aio");
		set_timeout =
		    (void (*)(void *, int)) next("nng_aio_set_timeout");
	}
	if (ms > 0) {
		set_timeout(aio, (int) ms);
	}
	real(s, aio);
}

/* ---- waits on the wall clock, as the kernel times them ---- */

/* glibc 2.25+ keeps a condition variable's clock in bit 1 of
 * __data.__wrefs (pthread_cond_common.c); checked once below. */
static int
is_monotonic(const pthread_cond_t *cv)
{
	return (cv->__data.__wrefs & 2u) != 0;
}

static void
check_layout(void)
{
	pthread_condattr_t a;
	pthread_cond_t rt, mono;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&mono, &a);
	pthread_cond_init(&rt, NULL);
	if (!is_monotonic(&mono) || is_monotonic(&rt)) {
		fprintf(stderr, "lwwshim: cannot tell a condition variable's "
		                "clock with this glibc\n");
		abort();
	}
	pthread_cond_destroy(&mono);
	pthread_cond_destroy(&rt);
	pthread_condattr_destroy(&a);
}

static int
ts_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec) {
		return a->tv_sec < b->tv_sec ? -1 : 1;
	}
	return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

/* glibc's own functions, past any other preload (libfaketime's
 * pthread_cond_timedwait ends waits on a CLOCK_MONOTONIC condition
 * variable at once while it shifts the clock). */
static int (*libc_timedwait)(pthread_cond_t *, pthread_mutex_t *,
                             const struct timespec *);
static int (*libc_clock_gettime)(clockid_t, struct timespec *);

static void
find_libc(void)
{
	void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);

	if (libc != NULL) {
		libc_timedwait = (int (*)(pthread_cond_t *, pthread_mutex_t *,
		                          const struct timespec *))
		    dlvsym(libc, "pthread_cond_timedwait", "GLIBC_2.3.2");
		libc_clock_gettime = (int (*)(
		    clockid_t, struct timespec *)) dlsym(libc, "clock_gettime");
	}
	if (libc_timedwait == NULL || libc_clock_gettime == NULL) {
		fprintf(stderr, "lwwshim: cannot find glibc's "
		                "pthread_cond_timedwait\n");
		abort();
	}
	check_layout();
}

int
pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mtx,
                       const struct timespec *abstime)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, find_libc);
	if (getenv("LWW_SHIM_WALL_WAITS") == NULL || is_monotonic(cv)) {
		return libc_timedwait(cv, mtx, abstime);
	}
	/* Wait in slices of real time until the clock the process reads
	 * passes the deadline, or the condition is signalled. */
	for (;;) {
		struct timespec now, left, until;
		int rv;

		clock_gettime(CLOCK_REALTIME, &now);
		if (ts_cmp(&now, abstime) >= 0) {
			return ETIMEDOUT;
		}
		left.tv_sec = abstime->tv_sec - now.tv_sec;
		left.tv_nsec = abstime->tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec > 0 || left.tv_nsec > SLICE_NS) {
			left.tv_sec = 0;
			left.tv_nsec = SLICE_NS;
		}
		libc_clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += left.tv_nsec;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if ((rv = libc_timedwait(cv, mtx, &until)) != ETIMEDOUT) {
			return rv; /* signalled (or an error) */
		}
	}
}
