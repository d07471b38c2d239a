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
/* The header's check, and version 1's records: integrity against the
 * disk only, so a fixed key. */
static const uint8_t zero_key[crypto_shorthash_KEYBYTES] = {0};

#define KEY_AT    8  /* in a version 2 header */
#define HCHECK_AT 24 /* in a version 2 header */

struct lww_wal {
	int fd;
	uint8_t key[crypto_shorthash_KEYBYTES];
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
	/* Secret from clients: their bytes cannot form a record. */
	randombytes_buf(w->key, sizeof(w->key));
	memcpy(hdr + KEY_AT, w->key, sizeof(w->key));
	crypto_shorthash(hdr + HCHECK_AT, hdr, HCHECK_AT, zero_key);
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
	             0600);
	if (w->fd < 0 || write_all(w->fd, &iov, 1) != 0 ||
	    fdatasync(w->fd) != 0 || sync_dir(path) != 0) {
		e = errno;
		if (w->fd >= 0) {
			close(w->fd);
			unlink(path);
		}
		sodium_memzero(w->key, sizeof(w->key));
		free(w);
		return lww_err_from_errno(e);
	}
	w->size = LWW_WAL_HEADER;
	*out = w;
	return LWW_OK;
}

/* Writes len:u32le lencheck:u32le at p, for a record at offset off. */
static void
len_check(uint8_t *p, const uint8_t *key, uint32_t len, uint64_t off)
{
	uint8_t in[12], h[crypto_shorthash_BYTES];

	lww_put_u32le(in, len);
	lww_put_u64le(in + 4, off);
	crypto_shorthash(h, in, sizeof(in), key);
	memcpy(p, in, 4);
	memcpy(p + 4, h, 4);
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
	len_check(hdr, w->key, (uint32_t) n, w->size);
	crypto_shorthash(hdr + 8, p, n, w->key);
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
		sodium_memzero(w->key, sizeof(w->key));
		free(w);
	}
}

/* Reads up to n bytes at off; returns how many (short only at the end). */
static ssize_t
pread_full(int fd, uint8_t *p, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t) (off + got));
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

/* A window on the segment: offsets only move forward, and any whole
 * record fits, so each byte is read about twice at most. */
typedef struct win {
	int fd;
	uint64_t size; /* of the file, at the start */
	uint8_t *buf;
	size_t cap;
	uint64_t start; /* file offset of buf[0] */
	size_t len;
	/* The segment's format. */
	unsigned version;
	size_t rec_hdr;
	uint8_t key[crypto_shorthash_KEYBYTES];
	uint64_t hashed; /* payload bytes hashed */
} win;

/* Points *p at bytes [off, off + n) of the file; off + n <= size and
 * n <= cap. */
static lww_err
win_get(win *w, uint64_t off, size_t n, const uint8_t **p)
{
	if (off < w->start || off + n > w->start + w->len) {
		uint64_t rest = w->size - off;
		size_t want = rest < w->cap ? (size_t) rest : w->cap;
		ssize_t r = pread_full(w->fd, w->buf, want, off);
		if (r < 0) {
			w->len = 0;
			return lww_err_from_errno(errno);
		}
		w->start = off;
		w->len = (size_t) r;
		if ((size_t) r < n) {
			return LWW_EIO; /* the file shrank while we read it */
		}
	}
	*p = w->buf + (off - w->start);
	return LWW_OK;
}

/* *len gets the size of the whole record at off (header included), or
 * 0 if the bytes there are not one. */
static lww_err
record_at(win *w, uint64_t off, size_t *len)
{
	uint8_t check[crypto_shorthash_BYTES], lc[8];
	const uint8_t *p;
	size_t hdr = w->rec_hdr;
	uint32_t n;
	lww_err rv;

	*len = 0;
	if (w->size - off < hdr) {
		return LWW_OK;
	}
	if ((rv = win_get(w, off, hdr, &p)) != LWW_OK) {
		return rv;
	}
	n = lww_get_u32le(p);
	if (n == 0 || n > LWW_WAL_RECORD_MAX || n > w->size - off - hdr) {
		return LWW_OK;
	}
	if (w->version >= 2) {
		/* The length's own check first, so that a wrong offset
		 * almost never costs a payload's hash. */
		len_check(lc, w->key, n, off);
		if (memcmp(lc + 4, p + 4, 4) != 0) {
			return LWW_OK;
		}
	}
	if ((rv = win_get(w, off, hdr + n, &p)) != LWW_OK) {
		return rv;
	}
	w->hashed += n;
	crypto_shorthash(check, p + hdr, n, w->key);
	if (memcmp(check, p + hdr - sizeof(check), sizeof(check)) == 0) {
		*len = hdr + (size_t) n;
	}
	return LWW_OK;
}

/* *next gets the first offset >= from where a whole record starts, or
 * the file's size if there is none. Byte by byte: a damaged length
 * says nothing of where the next record is, and trusting it could step
 * over whole records. */
static lww_err
next_record(win *w, uint64_t from, uint64_t *next)
{
	for (uint64_t off = from; off < w->size; off++) {
		size_t len;
		lww_err rv = record_at(w, off, &len);
		if (rv != LWW_OK) {
			return rv;
		}
		if (len > 0) {
			*next = off;
			return LWW_OK;
		}
	}
	*next = w->size;
	return LWW_OK;
}

/* Reads the header: sets w's format and *hdr_len, and *bad if the header
 * is not whole (then the format is a guess: version 1 if its version
 * byte says so, else version 2 with the key where it would be). */
static lww_err
read_header(win *w, size_t *hdr_len, int *bad)
{
	uint8_t h[crypto_shorthash_BYTES];
	const uint8_t *p;
	size_t have =
	    w->size < LWW_WAL_HEADER ? (size_t) w->size : LWW_WAL_HEADER;
	int magic;
	lww_err rv;

	if ((rv = win_get(w, 0, have, &p)) != LWW_OK) {
		return rv;
	}
	magic = memcmp(p, wal_magic, sizeof(wal_magic)) == 0 && p[6] == 0;
	*bad = 0;
	if (p[7] == 1) {
		w->version = 1;
		w->rec_hdr = LWW_WAL_V1_RECORD_HDR;
		memcpy(w->key, zero_key, sizeof(w->key));
		*hdr_len = LWW_WAL_V1_HEADER;
		*bad = !magic;
		return LWW_OK;
	}
	w->version = LWW_WAL_VERSION;
	w->rec_hdr = LWW_WAL_RECORD_HDR;
	*hdr_len = LWW_WAL_HEADER;
	if (have < LWW_WAL_HEADER) {
		*bad = 1;
		return LWW_OK;
	}
	memcpy(w->key, p + KEY_AT, sizeof(w->key));
	crypto_shorthash(h, p, HCHECK_AT, zero_key);
	if (!magic || memcmp(h, p + HCHECK_AT, sizeof(h)) != 0 ||
	    p[7] < LWW_WAL_VERSION) {
		*bad = 1;
	} else if (p[7] > LWW_WAL_VERSION) {
		/* Whole, and not ours: a newer release wrote it. */
		return LWW_EVERSION;
	}
	return LWW_OK;
}

lww_err
lww_wal_replay(const char *path, unsigned flags, lww_wal_fn fn, void *arg,
               lww_wal_info *info)
{
	lww_wal_info in;
	win w;
	const uint8_t *p;
	struct stat st;
	size_t hdr_len;
	uint64_t off;
	int bad;
	lww_err rv = LWW_OK;

	memset(&in, 0, sizeof(in));
	memset(&w, 0, sizeof(w));
	if ((w.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rv = lww_err_from_errno(errno);
		goto out;
	}
	if (fstat(w.fd, &st) != 0) {
		rv = lww_err_from_errno(errno);
		goto out;
	}
	w.size = (uint64_t) st.st_size;
	if (w.size < LWW_WAL_V1_HEADER) {
		/* A segment whose creation did not finish holds nothing. */
		in.ignored = w.size;
		goto out;
	}
	w.cap = 2 * (LWW_WAL_RECORD_HDR + LWW_WAL_RECORD_MAX);
	if (w.size < w.cap) {
		w.cap = (size_t) w.size;
	}
	if ((w.buf = malloc(w.cap)) == NULL) {
		rv = LWW_ENOMEM;
		goto out;
	}
	if ((rv = read_header(&w, &hdr_len, &bad)) != LWW_OK) {
		goto out;
	}
	if (bad && w.size <= hdr_len) {
		/* Nothing after it: the creation was cut short (the header
		 * is synced before any record is written). */
		in.ignored = w.size;
		goto out;
	}
	/* A bad header was synced, then damaged: damage, up to the first
	 * whole record. */
	in.version = bad ? 0 : w.version;
	off = bad ? 0 : hdr_len;
	while (off < w.size) {
		uint64_t next = w.size;
		size_t len = 0;

		if (off > 0 && (rv = record_at(&w, off, &len)) != LWW_OK) {
			break;
		}
		if (len > 0) {
			if ((rv = win_get(&w, off, len, &p)) != LWW_OK) {
				break;
			}
			rv = fn(p + w.rec_hdr, len - w.rec_hdr, arg);
			if (rv == LWW_ECORRUPT) {
				/* Whole, yet not what was written: damage. */
				next = off + len;
				goto damage;
			}
			if (rv != LWW_OK) {
				break;
			}
			in.records++;
			in.record_bytes += len;
			off += len;
			continue;
		}
		rv = next_record(&w, off > 0 ? off + 1 : hdr_len, &next);
		if (rv != LWW_OK) {
			break;
		}
		if (next == w.size && off > 0) {
			in.ignored = w.size - off; /* the torn tail */
			break;
		}
	damage:
		if (in.damaged++ == 0) {
			in.damaged_at = off;
		}
		in.damaged_bytes += next - off;
		if (!(flags & LWW_WAL_SKIP_DAMAGED)) {
			rv = LWW_ECORRUPT;
			break;
		}
		rv = LWW_OK;
		off = next;
	}
out:
	in.hashed = w.hashed;
	free(w.buf);
	if (w.fd >= 0) {
		close(w.fd);
	}
	sodium_memzero(w.key, sizeof(w.key));
	if (info != NULL) {
		*info = in;
	}
	return rv;
}
