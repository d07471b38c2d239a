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

/* With --clients, the largest API request the node reads past its first
 * bytes unless it is signed by a listed client key: anything larger from
 * anyone else is dropped and its connection closed, with no reply,
 * signature check or decoding. Every request but a write of a large value
 * fits (a signed lookup of the largest key is about 1.2 KiB). nng 1.5
 * limits message size per socket, not per connection, so a listed
 * client keeps LWW_MSG_MAX. */
#define LWW_API_UNAUTH_MAX (64 * 1024)

/* An API connection that has sent no request this many milliseconds
 * after it was accepted (after the SP handshake, which nng itself times
 * out after 10 s) is closed: it holds a socket and nng's buffers for
 * nothing. A client that connects and then sends pays nothing. */
#define LWW_API_FIRST_REQUEST_MS 10000

/* The largest encoded stamped entry: flags, stamp (hlc, node), then key
 * and value, each after its uvarint length (at most 10 bytes). */
#define LWW_ENTRY_ENCODED_MAX (1 + 8 + 8 + 10 + LWW_KEY_MAX + 10 + LWW_VAL_MAX)

/* What every message keeps free for its own header and counts and the
 * signed envelope around it (98 bytes), beyond the entries or summaries
 * it carries. So a message may carry LWW_MSG_MAX - LWW_MSG_HEADROOM bytes
 * of them, and one entry of the largest size always fits: gossip, the
 * log, repair and the API can all move every entry the store accepts. */
#define LWW_MSG_HEADROOM 1024
_Static_assert(LWW_ENTRY_ENCODED_MAX + LWW_MSG_HEADROOM <= LWW_MSG_MAX,
               "one entry of the largest size fits in a message");

/* A delta batch (gossip) or bulk load holds at most this many entries. */
#define LWW_BATCH_ENTRIES_MAX 4096

/* A batch is flushed once its encoded entries reach this many bytes. */
#define LWW_BATCH_BYTES_TARGET (256 * 1024)

/* Anti-entropy repair (node/repair.c). A leaf request names leaves until
 * their summaries reach LWW_SYNC_REQUEST_BYTES_TARGET, and a leaf reply
 * takes entries until they reach LWW_SYNC_REPLY_BYTES_TARGET, so that a
 * large catch-up is many small steps. Either still carries its first leaf
 * or entry whatever its size, up to LWW_MSG_MAX - LWW_MSG_HEADROOM: an
 * entry of the largest size travels alone. */
#define LWW_SYNC_REQUEST_BYTES_TARGET (1024 * 1024)
#define LWW_SYNC_REPLY_BYTES_TARGET   (1024 * 1024)
_Static_assert(LWW_SYNC_REQUEST_BYTES_TARGET <=
                       LWW_MSG_MAX - LWW_MSG_HEADROOM &&
                   LWW_SYNC_REPLY_BYTES_TARGET <=
                       LWW_MSG_MAX - LWW_MSG_HEADROOM,
               "repair targets leave room for the envelope");

/* A repair round skips a leaf where the peer makes no progress (its reply
 * carries none of what differs there); after this many such leaves it
 * gives up on that peer until the next round. */
#define LWW_SYNC_STALLED_LEAVES_MAX 16

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
