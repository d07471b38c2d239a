/*
 * limits.h - every size limit of lww, in one place.
 *
 * Decoders, the store, the node and the client all check against these
 * names; nothing else in the tree spells a limit as a literal. Wire formats
 * are versioned, so a later release can raise a limit by raising a version.
 */
#ifndef LWW_LIMITS_H
#define LWW_LIMITS_H

/* A key is 1..LWW_KEY_MAX bytes, binary-safe. */
#define LWW_KEY_MIN 1
#define LWW_KEY_MAX 1024

/* A value is 0..LWW_VAL_MAX bytes, binary-safe. */
#define LWW_VAL_MAX (1024 * 1024)

/* Largest encoded message on any socket (API, gossip, repair). One entry
 * with the largest key and value must fit with room for headers and the
 * signature; nng refuses anything larger before allocating it. */
#define LWW_MSG_MAX (2 * 1024 * 1024)

/* A delta batch (gossip) or bulk load holds at most this many entries. */
#define LWW_BATCH_ENTRIES_MAX 4096

/* A batch is flushed once its encoded entries reach this many bytes. */
#define LWW_BATCH_BYTES_TARGET (256 * 1024)

/* A list reply carries at most this many entries; the client follows the
 * continuation for more. */
#define LWW_LIST_LIMIT_MAX 1000

/* An error message carried in a reply. */
#define LWW_ERRMSG_MAX 256

/* A trust or clients file: lines, and the length of a peer's name. */
#define LWW_TRUST_PEERS_MAX 1024
#define LWW_TRUST_NAME_MAX  64
#define LWW_TRUST_FILE_MAX  (1024 * 1024)

/* JSON text carried in stats and peers replies. */
#define LWW_JSON_MAX (256 * 1024)

/* Default refusal horizon for remote stamps ahead of our wall clock. */
#define LWW_MAX_DRIFT_MS_DEFAULT 1000

#endif /* LWW_LIMITS_H */
