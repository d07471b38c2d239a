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
 *   hbeat    ver type=HEARTBEAT seq:u64 hlc:u64
 *   request  ver type=REQUEST op:u8 body (see lww_req)
 *   reply    ver type=REPLY op:u8 status:u8 body (see lww_rep)
 *   item     flags:u8 key:lb [val:lb unless tombstone]   (unstamped, load)
 * The signed envelope that wraps gossip is in envelope.h.
 */
#ifndef LWW_CODEC_H
#define LWW_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "entry.h"
#include "err.h"

#define LWW_WIRE_VERSION 1

/* Message types. Values never change; new ones are appended. */
enum lww_msg_type {
	LWW_MSG_BATCH = 0x01,
	LWW_MSG_HEARTBEAT = 0x02,
	/* 0x10..0x1f: anti-entropy repair */
	LWW_MSG_REQUEST = 0x20,
	LWW_MSG_REPLY = 0x21,
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
};
#define LWW_OP_LAST LWW_OP_LOAD

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

/* Heartbeat: a node's latest batch sequence and clock, once a second. */
typedef struct lww_heartbeat {
	uint64_t seq;
	uint64_t hlc;
} lww_heartbeat;

lww_err lww_heartbeat_encode(lww_buf *b, const lww_heartbeat *hb);
lww_err lww_heartbeat_decode(const uint8_t *p, size_t n, lww_heartbeat *out);

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
 *   LIST    entries, more (non-zero: call again with after = last key)
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
	const char *text;
	size_t textlen;
} lww_rep;

lww_err lww_rep_encode(lww_buf *b, const lww_rep *r);
lww_err lww_rep_decode(const uint8_t *p, size_t n, lww_rep *out);

/* Starts a LIST reply; add entries with lww_list_add, then lww_list_end. */
lww_err lww_list_begin(lww_buf *b);
lww_err lww_list_add(lww_buf *b, const lww_entry *e);
lww_err lww_list_end(lww_buf *b, int more);

#endif /* LWW_CODEC_H */
