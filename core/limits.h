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

/* A secret key file: one line of text, so anything larger is not one. */
#define LWW_KEY_FILE_MAX 4096

/* What a leaf request or reply, a list page or any other message may
 * carry inside its envelope and header. */
#define LWW_MSG_PAYLOAD_MAX (LWW_MSG_MAX - LWW_MSG_HEADROOM)

/* A tree request names at most this many nodes, a leaf request or reply
 * at most this many leaves: a tree reply of LWW_SYNC_NODES_MAX nodes
 * (16 short hashes each) fits in a message (node/repair.c checks). */
#define LWW_SYNC_NODES_MAX  4096
#define LWW_SYNC_LEAVES_MAX 65536

/* The largest write-ahead log record: a batch of one group (at most one
 * message of local writes and one of remote ones), with room to spare. */
#define LWW_WAL_RECORD_MAX (2 * LWW_MSG_MAX + 64)

/* Damaged log segments kept aside under distinct names (NAME.damaged,
 * NAME.damaged.1, ...); past that one stays where it is, and is found
 * again at the next start. */
#define LWW_WAL_DAMAGED_KEPT_MAX 100

/* Readers of the store at once (LMDB's reader table): every thread that
 * reads, with room to spare; a reader beyond it gets MDB_READERS_FULL. */
#define LWW_STORE_READERS_MAX 512

/* ---- the node (node/) ---- */

/* API requests served at once (one nng context each); more wait in nng. */
#define LWW_API_CONTEXTS 128

/* Damaged records a list page names (all are counted). */
#define LWW_LIST_DAMAGED_NAMED_MAX 8

/* Ops the writer takes into one group (one log record, one fsync). */
#define LWW_GROUP_OPS_MAX 1024

/* Remote batches queued for the writer; beyond it they are dropped (repair
 * brings them later), so a flood cannot grow memory without bound. */
#define LWW_QUEUE_REMOTE_MAX 4096

/* Logged entries that start a checkpoint under load, and the entries put
 * into the store per transaction (LMDB reuses freed pages only two
 * commits later, so one huge transaction would grow the file). */
#define LWW_CKPT_ENTRIES     65536
#define LWW_CKPT_TXN_ENTRIES 4096

/* Logged writes held in memory while a checkpoint runs: beyond either, the
 * writer waits for it, so memory stays bounded when the disk is slow. */
#define LWW_MEM_ENTRIES_MAX (1u << 18)
#define LWW_MEM_BYTES_MAX   ((size_t) 256 << 20)

/* Gossip messages queued by the link socket (gossip.c): to send (nng
 * hands each to its connection's queue of two at once), and received
 * before the receive callback takes them. */
#define LWW_GOSSIP_SENDBUF 8192
#define LWW_GOSSIP_RECVBUF 1024

/* The gossip link (codec.h): records in one IHAVE or GRAFT (one per
 * trusted origin fits), messages in one bundle. */
#define LWW_LINK_RECORDS_MAX LWW_TRUST_PEERS_MAX
#define LWW_BUNDLE_MAX       4096
/* Bytes of recent batches a node keeps to answer grafts, and how many. */
#define LWW_GOSSIP_CACHE_BYTES   ((size_t) 16 << 20)
#define LWW_GOSSIP_CACHE_BATCHES 8192
/* Batches of one origin a relay tracks above the last it holds without a
 * gap (core/seen.h): a larger jump counts the rest as lost. */
#define LWW_SEEN_WINDOW 256

/* Signed client requests remembered against replay (within the freshness
 * window). */
#define LWW_NONCES_MAX 262144

/* Keys a scrub step checks at least, and keys queued for a scrub check
 * (a full queue drops the request: the next pass finds the key). */
#define LWW_SCRUB_STEP_KEYS 64
#define LWW_SCRUB_QUEUE_MAX 64

/* A key as a log line shows it (quoted or hex, cut with its length). */
#define LWW_LOG_KEY_MAX 160

/* Default refusal horizon for remote stamps ahead of our wall clock. */
#define LWW_MAX_DRIFT_MS_DEFAULT 1000

#endif /* LWW_LIMITS_H */
