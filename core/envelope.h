/*
 * envelope.h - Ed25519 keys, node ids, trust files and signed envelopes.
 *
 * A node's identity is an Ed25519 key pair (libsodium). Its 64-bit node id
 * is derived from the public key (the first 8 bytes of BLAKE2b-128 of it,
 * little-endian), so two nodes cannot share one.
 *
 * A signed envelope carries any message from its signer:
 *   ver:u8 type=ENVELOPE:u8 signer_pk:32 payload sig:64
 * and the signature covers every byte before it, exactly as sent, so the
 * envelope stays verifiable wherever it travels. lww_envelope_open does the
 * cheap checks first (size, version, is the signer trusted), then verifies;
 * only then may the caller parse the payload.
 *
 * Key files: FILE holds "lww-secret-key-v1 <base64 seed>" (mode 0600, owner
 * only, refused otherwise); FILE.pub one line, the public key in base64,
 * which is what a trust file lists.
 *
 * Trust files: one "NAME PUBLICKEY [ro]" a line; '#' starts a comment; blank
 * lines are ignored. Names are 1..64 of [A-Za-z0-9._-]. A name or a key
 * listed twice, or two keys with one node id, is an error.
 *
 * Functions that read or write files are the only I/O here besides LMDB.
 * Nothing here is thread-unsafe except sharing one lww_trust while freeing
 * it; a trust set is immutable once parsed, so readers may share it.
 */
#ifndef LWW_ENVELOPE_H
#define LWW_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define LWW_PK_BYTES          32
#define LWW_SK_BYTES          64
#define LWW_SIG_BYTES         64
#define LWW_PK_TEXT_LEN       44 /* base64 of 32 bytes, with padding */
#define LWW_ENVELOPE_OVERHEAD (2 + LWW_PK_BYTES + LWW_SIG_BYTES)

#if defined(__GNUC__)
#define LWW_MUST_CHECK __attribute__((warn_unused_result))
#else
#define LWW_MUST_CHECK
#endif

typedef struct lww_key {
	uint8_t pk[LWW_PK_BYTES];
	uint8_t sk[LWW_SK_BYTES];
} lww_key;

/* Generates a new key pair. sodium_init() must have been called. */
lww_err lww_key_generate(lww_key *k);

/* Wipes the secret key from memory (sodium_memzero). */
void lww_key_wipe(lww_key *k);

/* The node id of a public key. */
uint64_t lww_node_id(const uint8_t pk[LWW_PK_BYTES]);

/* Writes the public key as base64 text and a NUL into out (at least
 * LWW_PK_TEXT_LEN + 1 bytes, else LWW_EINVAL). */
lww_err lww_pk_to_text(const uint8_t pk[LWW_PK_BYTES], char *out,
                       size_t outlen);

/* Parses base64 text of exactly LWW_PK_TEXT_LEN characters. LWW_ESYNTAX
 * otherwise. */
lww_err lww_pk_from_text(const char *s, size_t n, uint8_t pk[LWW_PK_BYTES]);

/* Saves the key pair: `path` (secret, created with mode 0600, never
 * overwritten: LWW_EEXIST) and `path`.pub. LWW_EIO on other failures, with
 * no file left behind. */
lww_err lww_key_save(const lww_key *k, const char *path);

/* Loads a secret key file. LWW_ENOENT if missing, LWW_EPERM if readable by
 * group or others or not owned by the effective user, LWW_ESYNTAX if it does
 * not parse, LWW_EIO otherwise. *k is written only on success. */
lww_err lww_key_load(const char *path, lww_key *k);

/* Signs payload into an envelope appended to out. */
lww_err lww_envelope_seal(const lww_key *k, const uint8_t *payload, size_t n,
                          lww_buf *out);

/* A trusted peer (or client). */
#define LWW_PEER_RO 0x01u /* a read-only client */

typedef struct lww_peer {
	char name[65];
	uint8_t pk[LWW_PK_BYTES];
	uint64_t node;
	unsigned flags;
} lww_peer;

typedef struct lww_trust lww_trust;

/* Parses trust-file text. On error returns LWW_ESYNTAX (or LWW_ENOMEM,
 * LWW_ETOOBIG) and writes "line N: what is wrong" into err. The caller frees
 * *out with lww_trust_free. */
lww_err lww_trust_parse(const char *text, size_t n, lww_trust **out, char *err,
                        size_t errlen);

/* Reads and parses a trust file; errors as lww_trust_parse, plus
 * LWW_ENOENT and LWW_EIO. */
lww_err lww_trust_load(const char *path, lww_trust **out, char *err,
                       size_t errlen);

void lww_trust_free(lww_trust *t);
size_t lww_trust_count(const lww_trust *t);
const lww_peer *lww_trust_at(const lww_trust *t, size_t i);
const lww_peer *lww_trust_find_pk(const lww_trust *t,
                                  const uint8_t pk[LWW_PK_BYTES]);
const lww_peer *lww_trust_find_node(const lww_trust *t, uint64_t node);

typedef struct lww_envelope {
	const uint8_t *pk;
	const uint8_t *payload;
	size_t plen;
	const lww_peer *peer; /* the trusted signer */
} lww_envelope;

/* Opens an envelope: LWW_EPROTO if too short or not an envelope,
 * LWW_EVERSION, LWW_EUNTRUSTED if the signer is not in `trust`, LWW_EBADSIG
 * if the signature does not cover exactly these bytes. With trust NULL any
 * signer is accepted whose signature verifies (out->peer is then NULL):
 * the bytes are intact, but nothing is said about who sent them. *out
 * borrows from p and trust, and is written only on LWW_OK. */
LWW_MUST_CHECK lww_err lww_envelope_open(const uint8_t *p, size_t n,
                                         const lww_trust *trust,
                                         lww_envelope *out);

#endif /* LWW_ENVELOPE_H */
