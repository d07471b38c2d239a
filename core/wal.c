/*
 * wal.c - write-ahead log segments; see wal.h.
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"

static const uint8_t wal_magic[6] = {'L', 'W', 'W', 'W', 'A', 'L'};
/* Integrity, not secrecy: a fixed key. */
static const uint8_t wal_key[crypto_shorthash_KEYBYTES] = {0};

struct lww_wal {
	int fd;
	uint64_t size;      /* end of the last whole record */
	_Atomic int broken; /* a failed append or sync: no more use */
};

/* write(2) all of iov, retrying short writes. */
static int
write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		while (n > 0 && (size_t) w >= iov->iov_len) {
			w -= (ssize_t) iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *) iov->iov_base + w;
			iov->iov_len -= (size_t) w;
		}
	}
	return 0;
}

/* Makes the directory entry of path durable. */
static int
sync_dir(const char *path)
{
	char *dir = strdup(path), *slash;
	int fd, rc;

	if (dir == NULL) {
		errno = ENOMEM;
		return -1;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		strcpy(dir, ".");
	} else if (slash == dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0) {
		return -1;
	}
	rc = fsync(fd);
	close(fd);
	return rc;
}

lww_err
lww_wal_create(const char *path, lww_wal **out)
{
	uint8_t hdr[LWW_WAL_HEADER] = {0};
	struct iovec iov = {hdr, sizeof(hdr)};
	lww_wal *w;
	int e;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		return LWW_ENOMEM;
	}
	memcpy(hdr, wal_magic, sizeof(wal_magic));
	hdr[7] = LWW_WAL_VERSION;
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
	             0600);
	if (w->fd < 0 || write_all(w->fd, &iov, 1) != 0 ||
	    fdatasync(w->fd) != 0 || sync_dir(path) != 0) {
		e = errno;
		if (w->fd >= 0) {
			close(w->fd);
			unlink(path);
		}
		free(w);
		return lww_err_from_errno(e);
	}
	w->size = LWW_WAL_HEADER;
	*out = w;
	return LWW_OK;
}

lww_err
lww_wal_append(lww_wal *w, const uint8_t *p, size_t n)
{
	uint8_t hdr[LWW_WAL_RECORD_HDR];
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *) p, n}};
	int e;

	if (w->broken) {
		return LWW_EIO;
	}
	if (n == 0 || n > LWW_WAL_RECORD_MAX) {
		return LWW_EINVAL;
	}
	lww_put_u32le(hdr, (uint32_t) n);
	crypto_shorthash(hdr + 4, p, n, wal_key);
	if (write_all(w->fd, iov, 2) == 0) {
		w->size += sizeof(hdr) + n;
		return LWW_OK;
	}
	e = errno;
	/* Never leave a torn record before later ones. */
	if (ftruncate(w->fd, (off_t) w->size) != 0) {
		w->broken = 1;
	}
	return lww_err_from_errno(e);
}

lww_err
lww_wal_sync(lww_wal *w)
{
	if (w->broken) {
		return LWW_EIO;
	}
	if (fdatasync(w->fd) != 0) {
		/* After a failed fsync the page cache cannot be trusted. */
		w->broken = 1;
		return lww_err_from_errno(errno);
	}
	return LWW_OK;
}

uint64_t
lww_wal_size(const lww_wal *w)
{
	return w->size;
}

void
lww_wal_close(lww_wal *w)
{
	if (w != NULL) {
		close(w->fd);
		free(w);
	}
}

/* Reads up to n bytes; returns how many (short only at the end). */
static ssize_t
read_full(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			return -1;
		}
		if (r == 0) {
			break;
		}
		got += (size_t) r;
	}
	return (ssize_t) got;
}

lww_err
lww_wal_replay(const char *path, lww_wal_fn fn, void *arg, lww_wal_info *info)
{
	uint8_t hdr[LWW_WAL_RECORD_HDR], check[crypto_shorthash_BYTES];
	uint8_t *buf = NULL;
	lww_wal_info in = {0, 0};
	struct stat st;
	uint64_t off = LWW_WAL_HEADER;
	lww_err rv = LWW_OK;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return lww_err_from_errno(errno);
	}
	if (fstat(fd, &st) != 0 ||
	    (r = read_full(fd, hdr, LWW_WAL_HEADER)) < 0) {
		rv = lww_err_from_errno(errno);
		goto out;
	}
	if (r < LWW_WAL_HEADER || memcmp(hdr, wal_magic, 6) != 0 ||
	    hdr[6] != 0) {
		/* A segment whose creation did not finish holds nothing. */
		rv = r < LWW_WAL_HEADER && st.st_size < LWW_WAL_HEADER
		         ? LWW_OK
		         : LWW_ECORRUPT;
		in.ignored = (uint64_t) st.st_size;
		goto out;
	}
	if (hdr[7] != LWW_WAL_VERSION) {
		rv = LWW_EVERSION;
		goto out;
	}
	for (size_t cap = 0;;) {
		uint32_t n;
		if ((r = read_full(fd, hdr, sizeof(hdr))) < 0) {
			rv = lww_err_from_errno(errno);
			break;
		}
		if (r < (ssize_t) sizeof(hdr)) {
			break;
		}
		n = lww_get_u32le(hdr);
		if (n == 0 || n > LWW_WAL_RECORD_MAX) {
			break;
		}
		if (n > cap) {
			/* Grown as records need, not to the largest at once. */
			uint8_t *nb = realloc(buf, n);
			if (nb == NULL) {
				rv = LWW_ENOMEM;
				break;
			}
			buf = nb;
			cap = n;
		}
		if ((r = read_full(fd, buf, n)) < 0) {
			rv = lww_err_from_errno(errno);
			break;
		}
		if ((size_t) r < n) {
			break;
		}
		crypto_shorthash(check, buf, n, wal_key);
		if (memcmp(check, hdr + 4, sizeof(check)) != 0) {
			break;
		}
		if ((rv = fn(buf, n, arg)) != LWW_OK) {
			break;
		}
		in.records++;
		off += sizeof(hdr) + n;
	}
	if ((uint64_t) st.st_size > off) {
		in.ignored = (uint64_t) st.st_size - off;
	}
out:
	free(buf);
	close(fd);
	if (info != NULL) {
		*info = in;
	}
	return rv;
}
