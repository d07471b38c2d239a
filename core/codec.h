/*
 * codec.h - the versioned binary wire formats of lww.
 *
 * Every message starts with two bytes: the format version (LWW_WIRE_VERSION)
 * and a message type. Types are unique across all sockets, so a message
 * sent to the wrong socket is recognised as such. Decoders validate the
 * whole message before returning (lengths against the named limits, entry
 * flags, counts, no trailing bytes) and return LWW_EPROTO, LWW_EVERSION,
 * LWW_EUNKNOWN, LWW_EKEYSIZE or LWW_EVALSIZE otherwise; they never
 * allocate. Decoded structures borrow from the input bytes, which must
 * outlive them.
 *
 * Layouts (integers little-endian; "v" is a uvarint; "lb" is v + bytes):
 *   entry    flags:u8 hlc:u64 node:u64 key:lb [val:lb unless tombstone]
 *   batch    ver type=BATCH seq:u64 count:u32 entry*count
 *   hbeat    ver type=HEARTBEAT seq:u64 hlc:u64 [nonce:16]
 *   hello    ver type=HELLO nonce:16
 *   ihave    ver type=IHAVE count:u32 (origin:u64 seq:u64)*count
 *   prune    ver type=PRUNE
 *   graft    ver type=GRAFT count:u32 (origin:u64 from:u64 to:u64)*count
 *   bundle   ver type=BUNDLE count:u32 (len:u32 message)*count
 *   request  ver type=REQUEST op:u8 body (see lww_req)
 *   reply    ver type=REPLY op:u8 status:u8 body (see lww_rep)
 *   item     flags:u8 key:lb [val:lb unless tombstone]   (unstamped, load)
 *   treereq  ver type=TREE_REQ level:u8 count:u32 index:u32*count
 *   treerep  ver type=TREE_REP level:u8 count:u32 (16 x hash:8)*count
 *   leafreq  ver type=LEAF_REQ count:u32
 *            (leaf:u32 nsum:u32 (bucket:u32 digest:u64)*nsum)*count
 *   leafrep  ver type=LEAF_REP done:u32 count:u32 entry*count
 *   leafppq  ver type=LEAF_PP_REQ, then as leafreq
 *   leafppp  ver type=LEAF_PP_REP done:u32 count:u32 entry*count
 *            nwant:u32 (bucket:u32 digest:u64)*nwant
 *   pushreq  ver type=PUSH_REQ count:u32 entry*count
 *   pushrep  ver type=PUSH_REP taken:u32
 *   clockreq ver type=CLOCK_REQ t1:u64
 *   clockrep ver type=CLOCK_REP t1:u64 t2:u64 t3:u64 refused:u64
 *   auth     ver type=AUTH ts_ms:u64 nonce:16 request (signed by a client,
 *            inside an envelope)
 * The signed envelope that wraps gossip is in envelope.h.
 */
#ifndef LWW_CODEC_H
#define LWW_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "entry.h"
#include "err.h"
#include "limits.h"

#define LWW_WIRE_VERSION 1

/* Message types. Values never change; new ones are appended. */
enum lww_msg_type {
	LWW_MSG_BATCH = 0x01,
	LWW_MSG_HEARTBEAT = 0x02,
	/* 0x03..0x0f: the gossip link between neighbours (gossip.c) */
	LWW_MSG_IHAVE = 0x03,
	LWW_MSG_PRUNE = 0x04,
	LWW_MSG_GRAFT = 0x05,
	LWW_MSG_BUNDLE = 0x06,
	LWW_MSG_HELLO = 0x07,
	/* 0x10..0x1f: anti-entropy repair */
	LWW_MSG_TREE_REQ = 0x10,
	LWW_MSG_TREE_REP = 0x11,
	LWW_MSG_LEAF_REQ = 0x12,
	LWW_MSG_LEAF_REP = 0x13,
	LWW_MSG_CLOCK_REQ = 0x14,
	LWW_MSG_CLOCK_REP = 0x15,
	LWW_MSG_LEAF_PP_REQ = 0x16, /* a LEAF_REQ that also asks what to push */
	LWW_MSG_LEAF_PP_REP = 0x17,
	LWW_MSG_PUSH_REQ = 0x18,
	LWW_MSG_PUSH_REP = 0x19,
	LWW_MSG_REQUEST = 0x20,
	LWW_MSG_REPLY = 0x21,
	LWW_MSG_AUTH = 0x22,
	LWW_MSG_ENVELOPE = 0x30,
};

/* API operations. */
enum lww_op {
	LWW_OP_ADD = 1,
	LWW_OP_REMOVE = 2,
	LWW_OP_LOOKUP = 3,
	LWW_OP_LIST = 4,
	LWW_OP_STATS = 5,
	LWW_OP_PEERS = 6,
	LWW_OP_LOAD = 7,
	LWW_OP_RELOAD = 8,
};
#define LWW_OP_LAST LWW_OP_RELOAD

/* Non-zero for operations that change the store. */
int lww_op_writes(int op);

/* Reads the version and type of any message. LWW_EPROTO if shorter than two
 * bytes, LWW_EVERSION for an unknown version. */
lww_err lww_msg_peek(const uint8_t *p, size_t n, uint8_t *type);

/* A validated run of `count` encoded entries (or load items). */
typedef struct lww_entries {
	const uint8_t *p;
	size_t n;
	uint32_t count;
	int stamped; /* 1: entries; 0: unstamped load items (hlc = node = 0) */
} lww_entries;

/* Iteration over a validated run: returns 1 and fills *e while entries
 * remain, else 0. `off` starts at 0. */
int lww_entries_next(const lww_entries *es, size_t *off, lww_entry *e);

/* Appends one stamped entry. lww_entry_check must pass (LWW_EINVAL else). */
lww_err lww_entry_encode(lww_buf *b, const lww_entry *e);
/* Decodes exactly one entry from all n bytes. */
lww_err lww_entry_decode(const uint8_t *p, size_t n, lww_entry *e);
/* Encoded size of one stamped entry. */
size_t lww_entry_size(const lww_entry *e);

/* Delta batch: the unit of gossip. */
typedef struct lww_batch {
	uint64_t seq;
	lww_entries entries;
} lww_batch;

/* Starts a batch in an empty buffer; add entries with lww_batch_add. */
lww_err lww_batch_begin(lww_buf *b, uint64_t seq);
/* Appends one entry. LWW_ETOOBIG when the batch already has
 * LWW_BATCH_ENTRIES_MAX entries; LWW_EINVAL if the entry fails its check. */
lww_err lww_batch_add(lww_buf *b, const lww_entry *e);
/* Number of entries in a batch under construction. */
uint32_t lww_batch_count(const lww_buf *b);
lww_err lww_batch_decode(const uint8_t *p, size_t n, lww_batch *out);

/* Heartbeat: a node's latest batch sequence and clock, once a second to
 * every neighbour, signed (in an envelope). One with proof set answers
 * the HELLO its receiver sent on that connection: it carries the
 * receiver's nonce, so a heartbeat recorded elsewhere and replayed does
 * not make a connection pass for a trusted node (gossip.c). */
#define LWW_HELLO_NONCE_BYTES 16
typedef struct lww_heartbeat {
	uint64_t seq;
	uint64_t hlc;
	int proof;
	uint8_t nonce[LWW_HELLO_NONCE_BYTES];
} lww_heartbeat;

lww_err lww_heartbeat_encode(lww_buf *b, const lww_heartbeat *hb);
lww_err lww_heartbeat_decode(const uint8_t *p, size_t n, lww_heartbeat *out);

/* The sequence number of an encoded batch, read without decoding it (a
 * relay drops a copy it has seen before checking its signature). */
lww_err lww_batch_peek_seq(const uint8_t *p, size_t n, uint64_t *seq);

/* ---- the gossip link (Plumtree, gossip.c) ----
 * Between two neighbours, unsigned (the link is the neighbour's, known by
 * its signed heartbeat); what they carry is only a hint: a batch itself
 * is always checked against its origin's signature.
 *   IHAVE  "I hold origin's batches up to seq" (lazy announcements and the
 *          per-second summary); 1..LWW_LINK_RECORDS_MAX records.
 *   PRUNE  "stop pushing batches to me; announce them".
 *   GRAFT  "push batches to me again, and send origin's from..to"
 *          (inclusive, from <= to); 1..LWW_LINK_RECORDS_MAX records.
 *   BUNDLE several messages (never a bundle) in one, 1..LWW_BUNDLE_MAX,
 *          each at least 2 bytes. */
typedef struct lww_link_recs {
	uint32_t count;
	const uint8_t *p; /* count records, validated */
	size_t n;         /* their bytes */
} lww_link_recs;

lww_err lww_ihave_begin(lww_buf *b);
/* LWW_ETOOBIG when the message holds LWW_LINK_RECORDS_MAX records. */
lww_err lww_ihave_add(lww_buf *b, uint64_t origin, uint64_t seq);
lww_err lww_ihave_decode(const uint8_t *p, size_t n, lww_link_recs *out);
void lww_ihave_at(const lww_link_recs *r, uint32_t i, uint64_t *origin,
                  uint64_t *seq);
lww_err lww_graft_begin(lww_buf *b);
/* LWW_EINVAL if from > to; LWW_ETOOBIG when full. */
lww_err lww_graft_add(lww_buf *b, uint64_t origin, uint64_t from, uint64_t to);
lww_err lww_graft_decode(const uint8_t *p, size_t n, lww_link_recs *out);
void lww_graft_at(const lww_link_recs *r, uint32_t i, uint64_t *origin,
                  uint64_t *from, uint64_t *to);
/* Records in a message under construction (IHAVE, GRAFT, BUNDLE). */
uint32_t lww_link_count(const lww_buf *b);
/* HELLO: the first message on every new gossip connection, unsigned: "to
 * be taken for a trusted node here, send a heartbeat with this nonce". */
lww_err lww_hello_encode(lww_buf *b,
                         const uint8_t nonce[LWW_HELLO_NONCE_BYTES]);
lww_err lww_hello_decode(const uint8_t *p, size_t n,
                         uint8_t nonce[LWW_HELLO_NONCE_BYTES]);
lww_err lww_prune_encode(lww_buf *b);
lww_err lww_prune_decode(const uint8_t *p, size_t n);

lww_err lww_bundle_begin(lww_buf *b);
/* Appends message m (not a bundle, at least 2 bytes: LWW_EINVAL);
 * LWW_ETOOBIG when full or when it would pass LWW_MSG_MAX bytes. */
lww_err lww_bundle_add(lww_buf *b, const uint8_t *m, size_t n);
/* Validates a whole bundle. */
lww_err lww_bundle_decode(const uint8_t *p, size_t n, lww_link_recs *out);
/* Iterates a validated bundle: 1 with the next message, else 0. off starts
 * at 0. */
int lww_bundle_next(const lww_link_recs *r, size_t *off, const uint8_t **m,
                    size_t *n);

/* API request. Which fields are used depends on op:
 *   ADD     key, val
 *   REMOVE  key
 *   LOOKUP  key
 *   LIST    key = prefix (may be empty), after = continuation (exclusive,
 *           may be empty), limit 1..LWW_LIST_LIMIT_MAX
 *   STATS, PEERS  nothing
 *   LOAD    items: 1..LWW_BATCH_ENTRIES_MAX unstamped items */
typedef struct lww_req {
	uint8_t op;
	const uint8_t *key;
	size_t klen;
	const uint8_t *val;
	size_t vlen;
	const uint8_t *after;
	size_t alen;
	uint32_t limit;
	lww_entries items;
} lww_req;

lww_err lww_req_encode(lww_buf *b, const lww_req *r);
lww_err lww_req_decode(const uint8_t *p, size_t n, lww_req *out);

/* Client authentication: a request wrapped with the client's wall-clock
 * time and a random nonce, then sealed in an envelope by the client's key,
 * so a node can refuse unlisted keys, stale requests and replays. */
#define LWW_NONCE_BYTES 16

typedef struct lww_auth {
	uint64_t ts_ms;
	const uint8_t *nonce; /* LWW_NONCE_BYTES */
	const uint8_t *req;   /* the wrapped request message */
	size_t reqlen;
} lww_auth;

lww_err lww_auth_encode(lww_buf *b, uint64_t ts_ms,
                        const uint8_t nonce[LWW_NONCE_BYTES],
                        const uint8_t *req, size_t reqlen);
/* Validates the wrapper only; the request inside is decoded on its own. */
lww_err lww_auth_decode(const uint8_t *p, size_t n, lww_auth *out);

/* Starts a LOAD request; add items with lww_load_add. */
lww_err lww_load_begin(lww_buf *b);
/* Appends one item (hlc and node ignored). LWW_ETOOBIG when full. */
lww_err lww_load_add(lww_buf *b, const lww_entry *e);
uint32_t lww_load_count(const lww_buf *b);

/* API reply. status is an lww_err; op is the request's, or 0 in an error
 * reply to a request whose op could not be read. When status != LWW_OK,
 * msg holds a one-line message (may be empty). When LWW_OK, by op:
 *   ADD, REMOVE, LOAD  hlc, node: the stamp of the (last) write;
 *                      count: writes applied (LOAD)
 *   LOOKUP  entry
 *   LIST    entries, more (non-zero: call again with after = last key),
 *           damaged (records skipped because they failed their check)
 *   STATS, PEERS  text: JSON */
typedef struct lww_rep {
	uint8_t op;
	uint8_t status;
	const char *msg;
	size_t msglen;
	uint64_t hlc;
	uint64_t node;
	uint32_t count;
	lww_entry entry;
	lww_entries entries;
	uint8_t more;
	uint32_t damaged;
	const char *text;
	size_t textlen;
} lww_rep;

lww_err lww_rep_encode(lww_buf *b, const lww_rep *r);
lww_err lww_rep_decode(const uint8_t *p, size_t n, lww_rep *out);

/* Starts a LIST reply; add entries with lww_list_add, then lww_list_end. */
lww_err lww_list_begin(lww_buf *b);
lww_err lww_list_add(lww_buf *b, const lww_entry *e);
/* Ends a LIST reply; damaged counts the records the page skipped. */
lww_err lww_list_end(lww_buf *b, int more, uint32_t damaged);

/* ---- anti-entropy repair ----
 * A repair session walks the hash tree (digest.h) of two stores: the
 * asking node sends TREE_REQ for nodes at `level` and gets, for each, the
 * first LWW_SYNC_HASH bytes of its 16 children's hashes. At the stored
 * leaves it sends LEAF_REQ: per differing leaf, a summary (bucket and the
 * first 8 bytes of the entry hash) of every entry it has there; the peer
 * answers with its entries whose summary the asker lacks. A reply may stop
 * early (done < count: only the first `done` leaves were served); the
 * asker sends the rest again.
 *
 * Push-pull: LEAF_PP_REQ is a LEAF_REQ whose LEAF_PP_REP also lists
 * ("wants"), for the `done` leaves only, the request's summaries the peer
 * does not hold, so the asker sends those entries in PUSH_REQs, which the
 * peer answers with PUSH_REP: how many it queued for its writer. A peer
 * that predates these types refuses LEAF_PP_REQ; the asker then falls back
 * to LEAF_REQ (pull only). */
#define LWW_SYNC_HASH    8
#define LWW_SYNC_SUMMARY 12 /* bucket:u32 + digest:u64 */

typedef struct lww_tree_req {
	uint8_t level;
	uint32_t count;
	const uint8_t *idx; /* count little-endian u32 */
} lww_tree_req;

/* Encodes a request for the children of `count` nodes at `level`
 * (level < 8, each index < 16^level). LWW_EINVAL otherwise. */
lww_err lww_tree_req_encode(lww_buf *b, uint8_t level, const uint32_t *idx,
                            uint32_t count);
lww_err lww_tree_req_decode(const uint8_t *p, size_t n, lww_tree_req *out);
uint32_t lww_tree_req_index(const lww_tree_req *r, uint32_t i);

typedef struct lww_tree_rep {
	uint8_t level;
	uint32_t count;
	const uint8_t *hashes; /* count * 16 * LWW_SYNC_HASH bytes */
} lww_tree_rep;

/* hashes: count * 16 * LWW_SYNC_HASH bytes, node by node. */
lww_err lww_tree_rep_encode(lww_buf *b, uint8_t level, const uint8_t *hashes,
                            uint32_t count);
lww_err lww_tree_rep_decode(const uint8_t *p, size_t n, lww_tree_rep *out);

/* Writes one summary (LWW_SYNC_SUMMARY bytes) of an entry: its bucket and
 * the first LWW_SYNC_HASH bytes of its entry hash. */
void lww_sync_summary(uint8_t out[LWW_SYNC_SUMMARY], uint32_t bucket,
                      const uint8_t hash[LWW_SYNC_HASH]);

typedef struct lww_leaf_req {
	int push; /* a LEAF_PP_REQ: the reply is a LEAF_PP_REP */
	uint32_t count;
	const uint8_t *p; /* the validated leaves */
	size_t n;
} lww_leaf_req;

lww_err lww_leaf_req_begin(lww_buf *b);
/* Starts a LEAF_PP_REQ instead (same body). */
lww_err lww_leaf_pp_req_begin(lww_buf *b);
/* Appends a leaf (< LWW_SYNC_LEAVES_MAX) with nsum summaries (nsum *
 * LWW_SYNC_SUMMARY bytes made by lww_sync_summary). */
lww_err lww_leaf_req_add(lww_buf *b, uint32_t leaf, const uint8_t *sums,
                         uint32_t nsum);
uint32_t lww_leaf_req_count(const lww_buf *b);
/* Decodes a LEAF_REQ or a LEAF_PP_REQ (out->push tells which). */
lww_err lww_leaf_req_decode(const uint8_t *p, size_t n, lww_leaf_req *out);
/* Iterates the leaves of a validated request: returns 1 with the leaf,
 * its summary count and its summaries, else 0. off starts at 0. */
int lww_leaf_req_next(const lww_leaf_req *r, size_t *off, uint32_t *leaf,
                      uint32_t *nsum, const uint8_t **sums);

typedef struct lww_leaf_rep {
	uint32_t done; /* leaves of the request fully served */
	lww_entries entries;
	/* LEAF_PP_REP only (else 0, NULL): summaries of the request the
	 * peer lacks, nwant * LWW_SYNC_SUMMARY bytes. */
	uint32_t nwant;
	const uint8_t *want;
} lww_leaf_rep;

lww_err lww_leaf_rep_begin(lww_buf *b);
/* Starts a LEAF_PP_REP: add entries as to a LEAF_REP, then end it with
 * lww_leaf_pp_rep_end. */
lww_err lww_leaf_pp_rep_begin(lww_buf *b);
/* Appends the wants (nwant * LWW_SYNC_SUMMARY bytes) that end a
 * LEAF_PP_REP; no entry may be added after. */
lww_err lww_leaf_pp_rep_end(lww_buf *b, const uint8_t *want, uint32_t nwant);
/* LWW_ETOOBIG after LWW_BATCH_ENTRIES_MAX entries. */
lww_err lww_leaf_rep_add(lww_buf *b, const lww_entry *e);
void lww_leaf_rep_set_done(lww_buf *b, uint32_t done);
/* Cuts a reply under construction back to `len` bytes holding `count`
 * entries (a length and count it had before). */
void lww_leaf_rep_truncate(lww_buf *b, size_t len, uint32_t count);
uint32_t lww_leaf_rep_count(const lww_buf *b);
/* Decodes a LEAF_REP or a LEAF_PP_REP. */
lww_err lww_leaf_rep_decode(const uint8_t *p, size_t n, lww_leaf_rep *out);

/* PUSH_REQ: 1..LWW_BATCH_ENTRIES_MAX entries the asker sends the peer. */
lww_err lww_push_req_begin(lww_buf *b);
/* LWW_ETOOBIG after LWW_BATCH_ENTRIES_MAX entries. */
lww_err lww_push_req_add(lww_buf *b, const lww_entry *e);
uint32_t lww_push_req_count(const lww_buf *b);
lww_err lww_push_req_decode(const uint8_t *p, size_t n, lww_entries *out);
/* PUSH_REP: how many of the pushed entries the peer took. */
lww_err lww_push_rep_encode(lww_buf *b, uint32_t taken);
lww_err lww_push_rep_decode(const uint8_t *p, size_t n, uint32_t *taken);

/* ---- clock probes (on the sync socket) ----
 * NTP-style: the asker sends its wall clock t1; the peer answers with t1
 * echoed, its wall clock t2 at receipt and t3 at reply, and how many
 * entries stamped by the asker it has refused as beyond max drift (so the
 * origin learns that its writes did not replicate). See skew.h. */
typedef struct lww_clock_probe {
	uint64_t t1, t2, t3;
	uint64_t refused;
} lww_clock_probe;

/* CLOCK_REQ carries only t1; CLOCK_REP all fields. */
lww_err lww_clock_req_encode(lww_buf *b, uint64_t t1);
lww_err lww_clock_req_decode(const uint8_t *p, size_t n, uint64_t *t1);
lww_err lww_clock_rep_encode(lww_buf *b, const lww_clock_probe *c);
lww_err lww_clock_rep_decode(const uint8_t *p, size_t n, lww_clock_probe *out);

#endif /* LWW_CODEC_H */
