/*
 * main.c - lwwd start-up and shutdown.
 *
 * Start-up checks everything a user can get wrong (flags, key file and its
 * permissions, trust file, data directory, addresses in use) and fails with
 * one line naming the cause. Signals are handled synchronously in the main
 * thread (sigwait): SIGTERM/SIGINT stop the node after the writer applied
 * and published everything queued; SIGHUP re-reads the trust file.
 *
 * Modules start in the order their events flow backwards (the store and
 * its checkpointer, the writer, the worker, repair, gossip, the API,
 * metrics) and stop in the reverse order: each source of events stops
 * before what consumes its events is freed (see the end of main).
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "limits.h"
#include "lwwd.h"
#include "replay.h"
#include "scrub.h"

static uint64_t
wall_ms(void *arg)
{
	(void) arg;
	return lwwd_now_ms();
}

/* Locks --data for this process's life (a POSIX lock on DIR/lwwd.lock,
 * which the kernel drops when the process ends, however it ends), so
 * that a second lwwd never replays, applies or removes the log segments
 * a running one appends to. The lock file holds the owner's pid too,
 * for people. Prints why and returns -1 if another process holds it. */
static int
lock_data(lwwd *d)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	size_t len = strlen(d->cfg.data) + sizeof("/lwwd.lock");
	char *path = malloc(len), pid[32];
	struct stat st;
	int fd, n;

	if (path == NULL) {
		fprintf(stderr, "lwwd: out of memory\n");
		return -1;
	}
	snprintf(path, len, "%s/lwwd.lock", d->cfg.data);
	/* Not through a symlink, nor onto anything but a regular file:
	 * the pid is written and the file truncated below. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fprintf(stderr, "lwwd: cannot open %s: %s (%s)\n", path,
		        strerror(errno),
		        errno == ELOOP ? "it is a symlink: remove it"
		                       : "is --data writable?");
		free(path);
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr,
		        "lwwd: %s is not a regular file; remove it (lwwd "
		        "makes it)\n",
		        path);
		close(fd);
		free(path);
		return -1;
	}
	if (fcntl(fd, F_SETLK, &fl) != 0) {
		int e = errno;
		long holder = 0;
		if (e == EACCES || e == EAGAIN) {
			struct flock q = {.l_type = F_WRLCK,
			                  .l_whence = SEEK_SET};
			if (fcntl(fd, F_GETLK, &q) == 0 &&
			    q.l_type != F_UNLCK) {
				holder = (long) q.l_pid;
			}
			if (holder <= 0 &&
			    (n = (int) pread(fd, pid, sizeof(pid) - 1, 0)) >
			        0) {
				pid[n] = '\0';
				holder = strtol(pid, NULL, 10);
			}
			fprintf(stderr,
			        "lwwd: --data %s is in use by another lwwd "
			        "(pid %ld); stop it first, or give this node "
			        "its own --data\n",
			        d->cfg.data, holder);
		} else {
			fprintf(stderr, "lwwd: cannot lock %s: %s\n", path,
			        strerror(e));
		}
		close(fd);
		free(path);
		return -1;
	}
	/* Best effort (the disk may be full): the lock is what counts. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long) getpid());
	if (pwrite(fd, pid, (size_t) n, 0) == n) {
		(void) ftruncate(fd, n);
	}
	free(path);
	d->lock_fd = fd; /* never closed: closing would drop the lock */
	return 0;
}

/* Opens --data, replays what a previous run logged, and restores the
 * clock; *seq gets the last batch seq the node published. */
static int
open_store(lwwd *d, uint64_t *seq)
{
	/* Checkpoints sync the store explicitly (checkpoint.c), so its
	 * commits can defer the root's sync. */
	lww_store_opts o = {d->cfg.map_size, !d->cfg.fsync_always,
	                    d->cfg.fsync_always};
	uint64_t hlc, st_seq, wal_hlc, wal_seq;
	lww_err rv;

	if (mkdir(d->cfg.data, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "lwwd: cannot create --data %s: %s\n",
		        d->cfg.data, strerror(errno));
		return -1;
	}
	{
		char err[512];
		if (lwwd_check_not_world_writable("--data", d->cfg.data, 1, err,
		                                  sizeof(err)) != 0) {
			fprintf(stderr, "lwwd: %s\n", err);
			return -1;
		}
	}
	/* Before anything in it is read or written. */
	if (lock_data(d) != 0) {
		return -1;
	}
	if ((rv = lww_store_open(d->cfg.data, &o, &d->store)) != LWW_OK) {
		fprintf(stderr, "lwwd: cannot open store in %s: %s\n",
		        d->cfg.data,
		        rv == LWW_EPERM ? "permission denied (is --data "
		                          "writable?)"
		                        : lww_strerror(rv));
		return -1;
	}
	/* Writes a previous run logged but did not checkpoint, first. */
	if (lwwd_wal_recover(d) != 0) {
		return -1;
	}
	if ((rv = lww_store_hlc(d->store, &hlc)) != LWW_OK ||
	    (rv = lww_store_held(d->store, &d->held_max)) != LWW_OK ||
	    (rv = lww_store_seq(d->store, d->self, &st_seq)) != LWW_OK) {
		fprintf(stderr, "lwwd: cannot read store state: %s\n",
		        lww_strerror(rv));
		return -1;
	}
	/* Segments held in memory (a full store or disk) may hold later
	 * stamps and sequences than the store. */
	(void) lwwd_wal_recovered(d, &wal_hlc, &wal_seq);
	*seq = st_seq > wal_seq ? st_seq : wal_seq;
	{
		/* Batches are numbered from the wall clock in microseconds
		 * at every start, unless the record is ahead: a node whose
		 * record went back (its data wiped, a backup restored, a
		 * snapshot reverted, a crash under --fsync none) would
		 * otherwise number batches its neighbours have seen, and
		 * relays drop those (gossip.c). A restart costs one counted
		 * jump at each relay, so one repair round. */
		uint64_t now_us = lwwd_now_ms() * 1000;
		if (*seq < now_us) {
			*seq = now_us;
		}
	}
	lww_hlc_init(&d->hlc, wall_ms, NULL, d->cfg.max_drift);
	lww_hlc_restore(&d->hlc, hlc > wal_hlc ? hlc : wal_hlc);
	return 0;
}

static int
load_identity(lwwd *d)
{
	char err[256];
	lww_err rv;

	rv = lww_key_load(d->cfg.key, &d->key);
	if (rv != LWW_OK) {
		fprintf(stderr, "lwwd: cannot load --key %s: %s%s\n",
		        d->cfg.key, lww_strerror(rv),
		        rv == LWW_EPERM ? " (chmod 600 it, as its owner)"
		        : rv == LWW_ENOENT
		            ? " (make one with: lwwctl keygen FILE)"
		            : "");
		return -1;
	}
	d->self = lww_node_id(d->key.pk);
	snprintf(d->self_name, sizeof(d->self_name), "%016llx",
	         (unsigned long long) d->self);
	if (lwwd_reload(d, 1, err, sizeof(err)) != 0) {
		fprintf(stderr, "lwwd: %s\n", err);
		return -1;
	}
	/* Nonces of signed client requests, for a 30 s freshness window. */
	if ((d->replay = lww_replay_alloc(LWW_NONCES_MAX, LWWD_FRESH_MS)) ==
	    NULL) {
		fprintf(stderr, "lwwd: out of memory\n");
		return -1;
	}
	return 0;
}

/* The write pipeline's hand-offs (lwwd_hooks), wired here so that the
 * writer, checkpointer, gossip, scrub and repair do not call each
 * other. */
static void
hook_durable(lwwd *d, uint64_t seq, const uint8_t *batch, size_t n)
{
	lwwd_gossip_batch(d, seq, batch, n);
}

static void
hook_frozen(lwwd *d, char *segment)
{
	lwwd_ckpt_submit(d, segment);
}

static void
hook_loss(lwwd *d, uint64_t node)
{
	lwwd_repair_trigger(d, node); /* a no-op once repair has stopped */
}

int
main(int argc, char **argv)
{
	static lwwd node;
	lwwd *d = &node;
	sigset_t set;
	uint64_t seq = 0;
	int rc, sig, status = 1;

	if ((rc = lwwd_config_parse(&d->cfg, argc, argv)) != 0) {
		lwwd_config_fini(&d->cfg);
		return rc > 0 ? 0 : 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "lwwd: libsodium failed to initialise\n");
		return 1;
	}
	d->lock_fd = -1;
	d->hooks.durable = hook_durable;
	d->hooks.frozen = hook_frozen;
	d->hooks.loss = hook_loss;
	pthread_mutex_init(&d->mtx, NULL);
	/* The writer's and checkpointer's threads wait on d->mtx; their cvs
	 * are made now, as others signal them before they start. */
	if (lwwd_writer_alloc(d) != 0 || lwwd_ckpt_alloc(d) != 0) {
		fprintf(stderr, "lwwd: out of memory\n");
		lwwd_writer_free(d);
		lwwd_config_fini(&d->cfg);
		return 1;
	}
	{
		/* A reload waits for the signature checks under way, not
		 * for a stream of them to pause. */
		pthread_rwlockattr_t ra;
		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setkind_np(
		    &ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&d->keys_lock, &ra);
		pthread_rwlockattr_destroy(&ra);
	}

	/* Block the signals before any thread starts; main waits for them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (lwwd_api_check_url(&d->cfg) != 0 || lwwd_tls_check(&d->cfg) != 0 ||
	    load_identity(d) != 0 || open_store(d, &seq) != 0 ||
	    lwwd_ckpt_start(d) != 0 || lwwd_clock_start(d) != 0 ||
	    lwwd_writer_start(d, seq) != 0 || lwwd_work_start(d) != 0 ||
	    lwwd_repair_start(d) != 0 || lwwd_scrub_start(d) != 0 ||
	    lwwd_gossip_start(d) != 0 || lwwd_api_start(d) != 0 ||
	    lwwd_metrics_start(d) != 0) {
		goto out;
	}
	if (lwwd_wal_recovered(d, NULL, NULL)) {
		/* What the damaged (or dropped) records held may be on the
		 * peers: ask now. */
		d->hooks.loss(d, 0);
	}
	lwwd_log(LWWD_LOG_INFO, "start",
	         "node=%016llx name=%s version=\"%s\" api=%s gossip=%s "
	         "sync=%s metrics=%s peers=%zu fsync=%s seq=%llu",
	         (unsigned long long) d->self, d->self_name, LWW_VERSION,
	         d->cfg.api, d->cfg.gossip, d->cfg.sync,
	         d->cfg.metrics != NULL ? d->cfg.metrics : "off", d->cfg.npeers,
	         d->cfg.fsync_always ? "always" : "none",
	         (unsigned long long) seq);
	for (;;) {
		if (sigwait(&set, &sig) != 0) {
			continue;
		}
		if (sig == SIGHUP) {
			char err[300];
			lwwd_log(LWWD_LOG_INFO, "reload", "signal=HUP");
			if (lwwd_reload(d, 0, err, sizeof(err)) != 0) {
				lwwd_log(LWWD_LOG_ERROR, "reload_failed",
				         "reason=\"%s\" (keeping the old keys)",
				         err);
			}
			continue;
		}
		lwwd_log(LWWD_LOG_INFO, "stopping", "signal=%s",
		         sig == SIGTERM ? "TERM" : "INT");
		break;
	}
	status = 0;
out:
	/* Scrapes read the peer table and the store: none is left once the
	 * server has stopped (it waits for the one being answered). */
	lwwd_metrics_stop(d);
	/* Gossip feeds the writer and triggers repair rounds: its
	 * receive and link thread stop before repair is freed. */
	lwwd_guard_stop(d); /* it may probe any listener */
	lwwd_gossip_stop(d);
	/* The scrub triggers repair rounds and writes the store; reads
	 * still report to it (ignored) until lwwd_scrub_free. */
	lwwd_scrub_stop(d);
	/* Repair feeds the writer; its server reads the store. */
	lwwd_repair_stop(d);
	/* The writer applies, publishes and answers what is queued: the API
	 * still takes requests meanwhile (writes are refused, "node shutting
	 * down"), and its contexts must outlive the answers. */
	lwwd_writer_stop(d);
	/* Its probes and recovery use the store and the checkpointer. */
	lwwd_clock_stop(d);
	lwwd_ckpt_stop(d);
	/* The worker answers the list, stats, peers and reload requests
	 * queued and refuses new ones; then the API's contexts stop. */
	lwwd_work_stop(d);
	lwwd_api_stop(d);
	lwwd_clock_free(d);
	lwwd_scrub_free(d);
	lwwd_work_free(d);
	/* The PUB (listening) socket is left to process exit: see api.c. */
	pthread_mutex_lock(&d->mtx);
	lww_store_close(d->store);
	d->store = NULL;
	pthread_mutex_unlock(&d->mtx);
	lwwd_ckpt_free(d);
	lwwd_writer_free(d);
	lww_trust_free(d->trust);
	lww_trust_free(d->clients);
	lww_replay_free(d->replay);
	free(d->peers);
	lww_key_wipe(&d->key);
	if (status == 0) {
		lwwd_log(LWWD_LOG_INFO, "stopped", "node=%016llx",
		         (unsigned long long) d->self);
	}
	lwwd_config_fini(&d->cfg);
	return status;
}
