/*
 * envelope.c - keys, trust files and signed envelopes. See envelope.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "codec.h"
#include "envelope.h"
#include "limits.h"

#define LWW_STR_(x) #x
#define LWW_STR(x)  LWW_STR_(x)
#include "limits.h"

#define SECRET_MAGIC  "lww-secret-key-v1 "
#define SEED_BYTES    crypto_sign_SEEDBYTES
#define SEED_TEXT_LEN 44

struct lww_trust {
	size_t n;
	lww_peer *peers;
};

lww_err
lww_key_generate(lww_key *k)
{
	if (crypto_sign_keypair(k->pk, k->sk) != 0) {
		return LWW_EINVAL;
	}
	return LWW_OK;
}

void
lww_key_wipe(lww_key *k)
{
	sodium_memzero(k->sk, sizeof(k->sk));
}

uint64_t
lww_node_id(const uint8_t pk[LWW_PK_BYTES])
{
	uint8_t h[crypto_generichash_BYTES_MIN];

	crypto_generichash(h, sizeof(h), pk, LWW_PK_BYTES, NULL, 0);
	return lww_get_u64le(h);
}

lww_err
lww_pk_to_text(const uint8_t pk[LWW_PK_BYTES], char *out, size_t outlen)
{
	if (outlen < LWW_PK_TEXT_LEN + 1) {
		return LWW_EINVAL;
	}
	sodium_bin2base64(out, outlen, pk, LWW_PK_BYTES,
	                  sodium_base64_VARIANT_ORIGINAL);
	return LWW_OK;
}

static lww_err
b64_decode(const char *s, size_t n, uint8_t *out, size_t outlen)
{
	size_t got;
	const char *end;

	if (sodium_base642bin(out, outlen, s, n, NULL, &got, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got != outlen || end != s + n) {
		return LWW_ESYNTAX;
	}
	return LWW_OK;
}

lww_err
lww_pk_from_text(const char *s, size_t n, uint8_t pk[LWW_PK_BYTES])
{
	uint8_t tmp[LWW_PK_BYTES];

	if (n != LWW_PK_TEXT_LEN || b64_decode(s, n, tmp, sizeof(tmp))) {
		return LWW_ESYNTAX;
	}
	memcpy(pk, tmp, sizeof(tmp));
	return LWW_OK;
}

/* Writes all of buf to a new file (O_EXCL) with `mode`. */
static lww_err
write_new(const char *path, const char *buf, size_t n, mode_t mode)
{
	size_t off = 0;
	int fd, e;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) <
	    0) {
		return lww_err_from_errno(errno);
	}
	while (off < n) {
		ssize_t w = write(fd, buf + off, n - off);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			goto fail;
		}
		off += (size_t) w;
	}
	if (fsync(fd) != 0) {
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	return LWW_OK;
fail:
	e = errno;
	if (fd >= 0) {
		close(fd);
	}
	unlink(path);
	return lww_err_from_errno(e);
}

lww_err
lww_key_save(const lww_key *k, const char *path)
{
	char secret[sizeof(SECRET_MAGIC) + SEED_TEXT_LEN + 2];
	char pub[LWW_PK_TEXT_LEN + 2];
	char *pubpath;
	size_t plen;
	lww_err rv;

	if (path == NULL || *path == '\0') {
		return LWW_EINVAL;
	}
	plen = strlen(path);
	if ((pubpath = malloc(plen + 5)) == NULL) {
		return LWW_ENOMEM;
	}
	memcpy(pubpath, path, plen);
	memcpy(pubpath + plen, ".pub", 5);

	/* The seed is the first half of libsodium's secret key. */
	memcpy(secret, SECRET_MAGIC, sizeof(SECRET_MAGIC) - 1);
	sodium_bin2base64(secret + sizeof(SECRET_MAGIC) - 1, SEED_TEXT_LEN + 1,
	                  k->sk, SEED_BYTES, sodium_base64_VARIANT_ORIGINAL);
	strcat(secret, "\n");
	lww_pk_to_text(k->pk, pub, sizeof(pub));
	strcat(pub, "\n");

	if (access(pubpath, F_OK) == 0) {
		rv = LWW_EEXIST;
		goto out;
	}
	if ((rv = write_new(path, secret, strlen(secret), 0600)) != LWW_OK) {
		goto out;
	}
	if ((rv = write_new(pubpath, pub, strlen(pub), 0644)) != LWW_OK) {
		unlink(path);
	}
out:
	sodium_memzero(secret, sizeof(secret));
	free(pubpath);
	return rv;
}

/* Reads a whole small file into a NUL-terminated heap buffer. */
static lww_err
read_file(const char *path, size_t max, char **out, size_t *n, struct stat *st)
{
	char *buf = NULL;
	size_t off = 0;
	int fd, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return lww_err_from_errno(errno);
	}
	if (fstat(fd, st) != 0) {
		goto fail;
	}
	if (!S_ISREG(st->st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((size_t) st->st_size > max) {
		close(fd);
		return LWW_ETOOBIG;
	}
	if ((buf = malloc((size_t) st->st_size + 1)) == NULL) {
		close(fd);
		return LWW_ENOMEM;
	}
	while (off < (size_t) st->st_size) {
		ssize_t r = read(fd, buf + off, (size_t) st->st_size - off);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			goto fail;
		}
		if (r == 0) {
			break;
		}
		off += (size_t) r;
	}
	close(fd);
	buf[off] = '\0';
	*out = buf;
	*n = off;
	return LWW_OK;
fail:
	e = errno;
	free(buf);
	close(fd);
	return lww_err_from_errno(e);
}

lww_err
lww_key_load(const char *path, lww_key *k)
{
	uint8_t seed[SEED_BYTES];
	const size_t mlen = sizeof(SECRET_MAGIC) - 1;
	struct stat st;
	char *text;
	size_t n;
	lww_err rv;

	if ((rv = read_file(path, LWW_KEY_FILE_MAX, &text, &n, &st)) !=
	    LWW_OK) {
		return rv == LWW_ETOOBIG ? LWW_ESYNTAX : rv;
	}
	if ((st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
		rv = LWW_EPERM;
		goto out;
	}
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) {
		n--;
	}
	if (n != mlen + SEED_TEXT_LEN || memcmp(text, SECRET_MAGIC, mlen) ||
	    b64_decode(text + mlen, SEED_TEXT_LEN, seed, sizeof(seed))) {
		rv = LWW_ESYNTAX;
		goto out;
	}
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	rv = LWW_OK;
out:
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(text, n);
	free(text);
	return rv;
}

lww_err
lww_envelope_seal(const lww_key *k, const uint8_t *payload, size_t n,
                  lww_buf *out)
{
	size_t start = out->len;
	uint8_t hdr[2] = {LWW_WIRE_VERSION, LWW_MSG_ENVELOPE};
	lww_err rv;

	if (n > LWW_MSG_MAX - LWW_ENVELOPE_OVERHEAD) {
		return LWW_ETOOBIG;
	}
	if ((rv = lww_buf_reserve(out, LWW_ENVELOPE_OVERHEAD + n)) != LWW_OK) {
		return rv;
	}
	lww_buf_put(out, hdr, 2);
	lww_buf_put(out, k->pk, LWW_PK_BYTES);
	lww_buf_put(out, payload, n);
	crypto_sign_detached(out->p + out->len, NULL, out->p + start,
	                     out->len - start, k->sk);
	out->len += LWW_SIG_BYTES;
	return LWW_OK;
}

lww_err
lww_envelope_open(const uint8_t *p, size_t n, const lww_trust *trust,
                  lww_envelope *out)
{
	const lww_peer *peer;
	uint8_t type;
	lww_err rv;

	if ((rv = lww_msg_peek(p, n, &type)) != LWW_OK) {
		return rv;
	}
	if (type != LWW_MSG_ENVELOPE || n < LWW_ENVELOPE_OVERHEAD) {
		return LWW_EPROTO;
	}
	/* Cheap checks first: an unknown signer costs a table lookup. */
	peer = trust != NULL ? lww_trust_find_pk(trust, p + 2) : NULL;
	if (trust != NULL && peer == NULL) {
		return LWW_EUNTRUSTED;
	}
	if (crypto_sign_verify_detached(p + n - LWW_SIG_BYTES, p,
	                                n - LWW_SIG_BYTES, p + 2) != 0) {
		return LWW_EBADSIG;
	}
	out->pk = p + 2;
	out->payload = p + 2 + LWW_PK_BYTES;
	out->plen = n - LWW_ENVELOPE_OVERHEAD;
	out->peer = peer;
	return LWW_OK;
}

void
lww_trust_free(lww_trust *t)
{
	if (t != NULL) {
		free(t->peers);
		free(t);
	}
}

size_t
lww_trust_count(const lww_trust *t)
{
	return t ? t->n : 0;
}

const lww_peer *
lww_trust_at(const lww_trust *t, size_t i)
{
	return (t && i < t->n) ? &t->peers[i] : NULL;
}

const lww_peer *
lww_trust_find_pk(const lww_trust *t, const uint8_t pk[LWW_PK_BYTES])
{
	for (size_t i = 0; t && i < t->n; i++) {
		if (sodium_memcmp(t->peers[i].pk, pk, LWW_PK_BYTES) == 0) {
			return &t->peers[i];
		}
	}
	return NULL;
}

const lww_peer *
lww_trust_find_node(const lww_trust *t, uint64_t node)
{
	for (size_t i = 0; t && i < t->n; i++) {
		if (t->peers[i].node == node) {
			return &t->peers[i];
		}
	}
	return NULL;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int
is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Splits one line (without its '\n') into at most 4 fields, stopping at
 * '#'. Returns the number of fields. */
static size_t
split_fields(const char *s, size_t n, const char *f[4], size_t fl[4])
{
	size_t i = 0, nf = 0;

	while (i < n && s[i] != '#') {
		size_t start;
		while (i < n && is_space(s[i])) {
			i++;
		}
		if (i >= n || s[i] == '#') {
			break;
		}
		start = i;
		while (i < n && !is_space(s[i]) && s[i] != '#') {
			i++;
		}
		if (nf < 4) {
			f[nf] = s + start;
			fl[nf] = i - start;
		}
		nf++;
	}
	return nf;
}

static lww_err
parse_line(const char *s, size_t n, lww_peer *p, const char **why)
{
	const char *f[4];
	size_t fl[4];
	size_t nf = split_fields(s, n, f, fl);

	memset(p, 0, sizeof(*p));
	if (nf < 2) {
		*why = "expected NAME PUBLICKEY";
		return LWW_ESYNTAX;
	}
	if (nf > 3) {
		*why = "too many fields (expected NAME PUBLICKEY [ro])";
		return LWW_ESYNTAX;
	}
	if (fl[0] > LWW_TRUST_NAME_MAX) {
		*why = "name longer than 64 characters";
		return LWW_ESYNTAX;
	}
	for (size_t i = 0; i < fl[0]; i++) {
		if (!is_name_char(f[0][i])) {
			*why = "name may only hold A-Z a-z 0-9 . _ -";
			return LWW_ESYNTAX;
		}
	}
	if (lww_pk_from_text(f[1], fl[1], p->pk) != LWW_OK) {
		*why = "public key is not 44 characters of base64";
		return LWW_ESYNTAX;
	}
	if (nf == 3) {
		if (fl[2] != 2 || memcmp(f[2], "ro", 2) != 0) {
			*why = "unknown flag (only 'ro' is known)";
			return LWW_ESYNTAX;
		}
		p->flags |= LWW_PEER_RO;
	}
	memcpy(p->name, f[0], fl[0]);
	p->name[fl[0]] = '\0';
	p->node = lww_node_id(p->pk);
	return LWW_OK;
}

lww_err
lww_trust_parse(const char *text, size_t n, lww_trust **out, char *err,
                size_t errlen)
{
	lww_trust *t;
	size_t off = 0, line = 0, cap = 0;
	const char *why = NULL;
	lww_err rv = LWW_OK;

	if (n > LWW_TRUST_FILE_MAX) {
		snprintf(err, errlen, "file larger than %d bytes",
		         LWW_TRUST_FILE_MAX);
		return LWW_ETOOBIG;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		return LWW_ENOMEM;
	}
	while (off < n) {
		const char *s = text + off;
		const char *nl = memchr(s, '\n', n - off);
		size_t len = nl ? (size_t) (nl - s) : n - off;
		const char *f[4];
		size_t fl[4];
		lww_peer p;

		off += len + (nl != NULL);
		line++;
		if (memchr(s, '\0', len) != NULL) {
			why = "NUL byte in line";
			rv = LWW_ESYNTAX;
			break;
		}
		if (split_fields(s, len, f, fl) == 0) {
			continue;
		}
		if ((rv = parse_line(s, len, &p, &why)) != LWW_OK) {
			break;
		}
		for (size_t i = 0; i < t->n; i++) {
			if (strcmp(t->peers[i].name, p.name) == 0) {
				why = "name listed twice";
			} else if (memcmp(t->peers[i].pk, p.pk, LWW_PK_BYTES) ==
			           0) {
				why = "public key listed twice";
			} else if (t->peers[i].node == p.node) {
				why = "two keys with one node id";
			}
			if (why != NULL) {
				rv = LWW_ESYNTAX;
				break;
			}
		}
		if (rv != LWW_OK) {
			break;
		}
		if (t->n == LWW_TRUST_PEERS_MAX) {
			why = "more than " LWW_STR(LWW_TRUST_PEERS_MAX) " keys";
			rv = LWW_ETOOBIG;
			break;
		}
		if (t->n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			lww_peer *np = realloc(t->peers, ncap * sizeof(*np));
			if (np == NULL) {
				rv = LWW_ENOMEM;
				why = "out of memory";
				break;
			}
			t->peers = np;
			cap = ncap;
		}
		t->peers[t->n++] = p;
	}
	if (rv != LWW_OK) {
		snprintf(err, errlen, "line %zu: %s", line, why);
		lww_trust_free(t);
		return rv;
	}
	*out = t;
	return LWW_OK;
}

lww_err
lww_trust_load(const char *path, lww_trust **out, char *err, size_t errlen)
{
	struct stat st;
	char *text;
	size_t n;
	lww_err rv;

	if ((rv = read_file(path, LWW_TRUST_FILE_MAX, &text, &n, &st)) !=
	    LWW_OK) {
		snprintf(err, errlen, "%s", lww_strerror(rv));
		return rv;
	}
	rv = lww_trust_parse(text, n, out, err, errlen);
	free(text);
	return rv;
}
