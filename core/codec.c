/*
 * codec.c - encoders and bounds-checked decoders for the wire formats.
 * See codec.h for the layouts.
 */
#include <string.h>

#include "codec.h"
#include "limits.h"

/* Offsets of the u32 count in messages built incrementally. */
#define BATCH_COUNT_OFF 10 /* ver type seq:u64 */
#define LOAD_COUNT_OFF  3  /* ver type op */
#define LIST_COUNT_OFF  4  /* ver type op status */
#define LIST_MORE       1  /* list reply flags */
#define LIST_DAMAGED    2

int
lww_op_writes(int op)
{
	return op == LWW_OP_ADD || op == LWW_OP_REMOVE || op == LWW_OP_LOAD;
}

lww_err
lww_msg_peek(const uint8_t *p, size_t n, uint8_t *type)
{
	if (n < 2) {
		return LWW_EPROTO;
	}
	if (p[0] != LWW_WIRE_VERSION) {
		return LWW_EVERSION;
	}
	*type = p[1];
	return LWW_OK;
}

static lww_err
rd_header(lww_rd *r, uint8_t want)
{
	uint8_t type;
	lww_err rv;

	if ((rv = lww_msg_peek(r->p, r->len, &type)) != LWW_OK) {
		return rv;
	}
	if (type != want) {
		return LWW_EUNKNOWN;
	}
	r->off = 2;
	return LWW_OK;
}

static lww_err
put_header(lww_buf *b, uint8_t type)
{
	uint8_t hdr[2] = {LWW_WIRE_VERSION, type};
	return lww_buf_put(b, hdr, 2);
}

/* Key and value of an entry or item, after its flags (and stamp). */
static lww_err
rd_kv(lww_rd *r, lww_entry *e)
{
	size_t len;
	lww_err rv;

	if ((rv = lww_rd_len(r, LWW_KEY_MAX, &len)) != LWW_OK) {
		return rv == LWW_ETOOBIG ? LWW_EKEYSIZE : LWW_EPROTO;
	}
	if (len < LWW_KEY_MIN) {
		return LWW_EKEYSIZE;
	}
	if ((rv = lww_rd_bytes(r, len, &e->key)) != LWW_OK) {
		return rv;
	}
	e->klen = len;
	e->val = NULL;
	e->vlen = 0;
	if (lww_entry_is_tombstone(e)) {
		return LWW_OK;
	}
	if ((rv = lww_rd_len(r, LWW_VAL_MAX, &len)) != LWW_OK) {
		return rv == LWW_ETOOBIG ? LWW_EVALSIZE : LWW_EPROTO;
	}
	if ((rv = lww_rd_bytes(r, len, &e->val)) != LWW_OK) {
		return rv;
	}
	e->vlen = len;
	return LWW_OK;
}

/* One entry (stamped) or item (unstamped) at the reader's position. */
static lww_err
rd_entry(lww_rd *r, int stamped, lww_entry *e)
{
	lww_err rv;

	if (lww_rd_u8(r, &e->flags) != LWW_OK) {
		return LWW_EPROTO;
	}
	if ((e->flags & ~LWW_ENTRY_FLAGS_KNOWN) != 0) {
		return LWW_EPROTO;
	}
	e->hlc = 0;
	e->node = 0;
	if (stamped) {
		if ((rv = lww_rd_u64(r, &e->hlc)) != LWW_OK ||
		    (rv = lww_rd_u64(r, &e->node)) != LWW_OK) {
			return rv;
		}
	}
	return rd_kv(r, e);
}

static lww_err
put_entry(lww_buf *b, const lww_entry *e, int stamped)
{
	size_t mark = b->len;
	lww_err rv;

	if (lww_entry_check(e) != LWW_OK) {
		return LWW_EINVAL;
	}
	if ((rv = lww_buf_put_u8(b, e->flags)) != LWW_OK) {
		goto fail;
	}
	if (stamped && ((rv = lww_buf_put_u64(b, e->hlc)) != LWW_OK ||
	                (rv = lww_buf_put_u64(b, e->node)) != LWW_OK)) {
		goto fail;
	}
	if ((rv = lww_buf_put_lbytes(b, e->key, e->klen)) != LWW_OK) {
		goto fail;
	}
	if (!lww_entry_is_tombstone(e) &&
	    (rv = lww_buf_put_lbytes(b, e->val, e->vlen)) != LWW_OK) {
		goto fail;
	}
	return LWW_OK;
fail:
	b->len = mark;
	return rv;
}

/* Validates `count` entries at the reader and records where they are. */
static lww_err
rd_entries(lww_rd *r, uint32_t count, int stamped, lww_entries *out)
{
	size_t start = r->off;
	lww_entry e;
	lww_err rv;

	for (uint32_t i = 0; i < count; i++) {
		if ((rv = rd_entry(r, stamped, &e)) != LWW_OK) {
			return rv;
		}
	}
	out->p = r->p + start;
	out->n = r->off - start;
	out->count = count;
	out->stamped = stamped;
	return LWW_OK;
}

/* The run of stamped entries that ends a batch or leaf reply: a count
 * over LWW_BATCH_ENTRIES_MAX is refused before any entry is read, and no
 * byte may follow the last entry. */
static lww_err
rd_last_entries(lww_rd *r, uint32_t count, lww_entries *out)
{
	lww_err rv;

	if (count > LWW_BATCH_ENTRIES_MAX) {
		return LWW_ETOOBIG;
	}
	if ((rv = rd_entries(r, count, 1, out)) != LWW_OK) {
		return rv;
	}
	return lww_rd_end(r);
}

int
lww_entries_next(const lww_entries *es, size_t *off, lww_entry *e)
{
	lww_rd r;

	if (*off >= es->n) {
		return 0;
	}
	lww_rd_init(&r, es->p, es->n);
	r.off = *off;
	if (rd_entry(&r, es->stamped, e) != LWW_OK) {
		return 0; /* not reached for a validated run */
	}
	*off = r.off;
	return 1;
}

lww_err
lww_entry_encode(lww_buf *b, const lww_entry *e)
{
	return put_entry(b, e, 1);
}

lww_err
lww_entry_decode(const uint8_t *p, size_t n, lww_entry *e)
{
	lww_entry tmp;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_entry(&r, 1, &tmp)) != LWW_OK) {
		return rv;
	}
	if ((rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	*e = tmp;
	return LWW_OK;
}

static size_t
uvarint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t
lww_entry_size(const lww_entry *e)
{
	size_t n = 1 + 8 + 8 + uvarint_size(e->klen) + e->klen;
	if (!lww_entry_is_tombstone(e)) {
		n += uvarint_size(e->vlen) + e->vlen;
	}
	return n;
}

/* The u32 count at `off` of a message under construction (0 if the
 * message is not that long yet). */
static uint32_t
count_at(const lww_buf *b, size_t off)
{
	return b->len < off + 4 ? 0 : lww_get_u32le(b->p + off);
}

/* Increments the u32 count at `off` of a message under construction. */
static lww_err
bump_count(lww_buf *b, size_t off, uint32_t max)
{
	uint32_t c;

	if (b->len < off + 4) {
		return LWW_EINVAL;
	}
	c = lww_get_u32le(b->p + off);
	if (c >= max) {
		return LWW_ETOOBIG;
	}
	lww_put_u32le(b->p + off, c + 1);
	return LWW_OK;
}

static lww_err
counted_add(lww_buf *b, size_t off, uint32_t max, const lww_entry *e,
            int stamped)
{
	lww_err rv;

	if (b->len < off + 4) {
		return LWW_EINVAL;
	}
	if (lww_get_u32le(b->p + off) >= max) {
		return LWW_ETOOBIG;
	}
	if ((rv = put_entry(b, e, stamped)) != LWW_OK) {
		return rv;
	}
	return bump_count(b, off, max);
}

lww_err
lww_batch_begin(lww_buf *b, uint64_t seq)
{
	lww_err rv;

	lww_buf_reset(b);
	if ((rv = put_header(b, LWW_MSG_BATCH)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, seq)) != LWW_OK ||
	    (rv = lww_buf_put_u32(b, 0)) != LWW_OK) {
		lww_buf_reset(b);
	}
	return rv;
}

lww_err
lww_batch_add(lww_buf *b, const lww_entry *e)
{
	return counted_add(b, BATCH_COUNT_OFF, LWW_BATCH_ENTRIES_MAX, e, 1);
}

uint32_t
lww_batch_count(const lww_buf *b)
{
	return count_at(b, BATCH_COUNT_OFF);
}

lww_err
lww_batch_decode(const uint8_t *p, size_t n, lww_batch *out)
{
	lww_batch tmp;
	uint32_t count;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_BATCH)) != LWW_OK) {
		return rv;
	}
	if ((rv = lww_rd_u64(&r, &tmp.seq)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &count)) != LWW_OK) {
		return rv;
	}
	if ((rv = rd_last_entries(&r, count, &tmp.entries)) != LWW_OK) {
		return rv;
	}
	*out = tmp;
	return LWW_OK;
}

lww_err
lww_heartbeat_encode(lww_buf *b, const lww_heartbeat *hb)
{
	size_t mark = b->len;
	lww_err rv;

	if ((rv = put_header(b, LWW_MSG_HEARTBEAT)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, hb->seq)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, hb->hlc)) != LWW_OK ||
	    (hb->proof &&
	     (rv = lww_buf_put(b, hb->nonce, sizeof(hb->nonce))) != LWW_OK)) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_heartbeat_decode(const uint8_t *p, size_t n, lww_heartbeat *out)
{
	lww_heartbeat tmp;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	memset(&tmp, 0, sizeof(tmp));
	if ((rv = rd_header(&r, LWW_MSG_HEARTBEAT)) != LWW_OK ||
	    (rv = lww_rd_u64(&r, &tmp.seq)) != LWW_OK ||
	    (rv = lww_rd_u64(&r, &tmp.hlc)) != LWW_OK) {
		return rv;
	}
	if (lww_rd_left(&r) > 0) {
		const uint8_t *q;
		if ((rv = lww_rd_bytes(&r, sizeof(tmp.nonce), &q)) != LWW_OK) {
			return rv;
		}
		tmp.proof = 1;
		memcpy(tmp.nonce, q, sizeof(tmp.nonce));
	}
	if ((rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	*out = tmp;
	return LWW_OK;
}

static lww_err
check_key(size_t klen)
{
	return (klen < LWW_KEY_MIN || klen > LWW_KEY_MAX) ? LWW_EKEYSIZE
	                                                  : LWW_OK;
}

lww_err
lww_req_encode(lww_buf *b, const lww_req *r)
{
	size_t mark = b->len;
	lww_err rv;

	switch (r->op) {
	case LWW_OP_ADD:
		if (r->vlen > LWW_VAL_MAX) {
			return LWW_EVALSIZE;
		}
		/* fall through */
	case LWW_OP_REMOVE:
	case LWW_OP_LOOKUP:
		if ((rv = check_key(r->klen)) != LWW_OK) {
			return rv;
		}
		break;
	case LWW_OP_LIST:
		if (r->klen > LWW_KEY_MAX || r->alen > LWW_KEY_MAX) {
			return LWW_EKEYSIZE;
		}
		if (r->limit < 1 || r->limit > LWW_LIST_LIMIT_MAX) {
			return LWW_EINVAL;
		}
		break;
	case LWW_OP_STATS:
	case LWW_OP_PEERS:
	case LWW_OP_RELOAD:
		break;
	default:
		/* LOAD is built with lww_load_begin/lww_load_add. */
		return LWW_EINVAL;
	}
	if ((rv = put_header(b, LWW_MSG_REQUEST)) != LWW_OK ||
	    (rv = lww_buf_put_u8(b, r->op)) != LWW_OK) {
		goto fail;
	}
	switch (r->op) {
	case LWW_OP_ADD:
		if ((rv = lww_buf_put_lbytes(b, r->key, r->klen)) != LWW_OK ||
		    (rv = lww_buf_put_lbytes(b, r->val, r->vlen)) != LWW_OK) {
			goto fail;
		}
		break;
	case LWW_OP_REMOVE:
	case LWW_OP_LOOKUP:
		if ((rv = lww_buf_put_lbytes(b, r->key, r->klen)) != LWW_OK) {
			goto fail;
		}
		break;
	case LWW_OP_LIST:
		if ((rv = lww_buf_put_lbytes(b, r->key, r->klen)) != LWW_OK ||
		    (rv = lww_buf_put_lbytes(b, r->after, r->alen)) != LWW_OK ||
		    (rv = lww_buf_put_uvarint(b, r->limit)) != LWW_OK) {
			goto fail;
		}
		break;
	default:
		break;
	}
	return LWW_OK;
fail:
	b->len = mark;
	return rv;
}

/* A key of klen in [min, LWW_KEY_MAX]: LWW_EKEYSIZE if out of range. */
static lww_err
rd_key(lww_rd *r, size_t min, const uint8_t **key, size_t *klen)
{
	size_t len;
	lww_err rv;

	if ((rv = lww_rd_len(r, LWW_KEY_MAX, &len)) != LWW_OK) {
		return rv == LWW_ETOOBIG ? LWW_EKEYSIZE : LWW_EPROTO;
	}
	if (len < min) {
		return LWW_EKEYSIZE;
	}
	if ((rv = lww_rd_bytes(r, len, key)) != LWW_OK) {
		return rv;
	}
	*klen = len;
	return LWW_OK;
}

lww_err
lww_req_decode(const uint8_t *p, size_t n, lww_req *out)
{
	lww_req tmp;
	uint64_t v;
	uint32_t count;
	lww_rd r;
	lww_err rv;

	memset(&tmp, 0, sizeof(tmp));
	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_REQUEST)) != LWW_OK ||
	    (rv = lww_rd_u8(&r, &tmp.op)) != LWW_OK) {
		return rv;
	}
	switch (tmp.op) {
	case LWW_OP_ADD:
		if ((rv = rd_key(&r, LWW_KEY_MIN, &tmp.key, &tmp.klen)) !=
		    LWW_OK) {
			return rv;
		}
		if ((rv = lww_rd_len(&r, LWW_VAL_MAX, &tmp.vlen)) != LWW_OK) {
			return rv == LWW_ETOOBIG ? LWW_EVALSIZE : LWW_EPROTO;
		}
		if ((rv = lww_rd_bytes(&r, tmp.vlen, &tmp.val)) != LWW_OK) {
			return rv;
		}
		break;
	case LWW_OP_REMOVE:
	case LWW_OP_LOOKUP:
		if ((rv = rd_key(&r, LWW_KEY_MIN, &tmp.key, &tmp.klen)) !=
		    LWW_OK) {
			return rv;
		}
		break;
	case LWW_OP_LIST:
		if ((rv = rd_key(&r, 0, &tmp.key, &tmp.klen)) != LWW_OK ||
		    (rv = rd_key(&r, 0, &tmp.after, &tmp.alen)) != LWW_OK) {
			return rv;
		}
		if (lww_rd_uvarint(&r, LWW_LIST_LIMIT_MAX, &v) != LWW_OK ||
		    v < 1) {
			return LWW_EPROTO;
		}
		tmp.limit = (uint32_t) v;
		break;
	case LWW_OP_STATS:
	case LWW_OP_PEERS:
	case LWW_OP_RELOAD:
		break;
	case LWW_OP_LOAD:
		if ((rv = lww_rd_u32(&r, &count)) != LWW_OK) {
			return rv;
		}
		if (count < 1) {
			return LWW_EPROTO;
		}
		if (count > LWW_BATCH_ENTRIES_MAX) {
			return LWW_ETOOBIG;
		}
		if ((rv = rd_entries(&r, count, 0, &tmp.items)) != LWW_OK) {
			return rv;
		}
		break;
	default:
		return LWW_EUNKNOWN;
	}
	if ((rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	*out = tmp;
	return LWW_OK;
}

lww_err
lww_load_begin(lww_buf *b)
{
	lww_err rv;

	lww_buf_reset(b);
	if ((rv = put_header(b, LWW_MSG_REQUEST)) != LWW_OK ||
	    (rv = lww_buf_put_u8(b, LWW_OP_LOAD)) != LWW_OK ||
	    (rv = lww_buf_put_u32(b, 0)) != LWW_OK) {
		lww_buf_reset(b);
	}
	return rv;
}

lww_err
lww_load_add(lww_buf *b, const lww_entry *e)
{
	return counted_add(b, LOAD_COUNT_OFF, LWW_BATCH_ENTRIES_MAX, e, 0);
}

uint32_t
lww_load_count(const lww_buf *b)
{
	return count_at(b, LOAD_COUNT_OFF);
}

static lww_err
put_rep_header(lww_buf *b, uint8_t op, uint8_t status)
{
	lww_err rv;
	if ((rv = put_header(b, LWW_MSG_REPLY)) != LWW_OK ||
	    (rv = lww_buf_put_u8(b, op)) != LWW_OK) {
		return rv;
	}
	return lww_buf_put_u8(b, status);
}

lww_err
lww_rep_encode(lww_buf *b, const lww_rep *r)
{
	size_t mark = b->len;
	size_t mlen;
	lww_err rv;

	/* op 0 answers a request whose op could not be read: errors only. */
	if (r->status > LWW_ERR_LAST || r->op > LWW_OP_LAST ||
	    (r->op == 0 && r->status == LWW_OK)) {
		return LWW_EINVAL;
	}
	if (r->op == LWW_OP_LIST && r->status == LWW_OK) {
		return LWW_EINVAL; /* built with lww_list_begin/add/end */
	}
	if ((rv = put_rep_header(b, r->op, r->status)) != LWW_OK) {
		goto fail;
	}
	if (r->status != LWW_OK) {
		/* Messages are truncated, never refused: an error must reach
		 * the client. */
		mlen = r->msglen > LWW_ERRMSG_MAX ? LWW_ERRMSG_MAX : r->msglen;
		if ((rv = lww_buf_put_lbytes(b, r->msg, mlen)) != LWW_OK) {
			goto fail;
		}
		return LWW_OK;
	}
	switch (r->op) {
	case LWW_OP_ADD:
	case LWW_OP_REMOVE:
	case LWW_OP_LOAD:
		if ((rv = lww_buf_put_u64(b, r->hlc)) != LWW_OK ||
		    (rv = lww_buf_put_u64(b, r->node)) != LWW_OK ||
		    (rv = lww_buf_put_u32(b, r->count)) != LWW_OK) {
			goto fail;
		}
		break;
	case LWW_OP_LOOKUP:
		if ((rv = lww_entry_encode(b, &r->entry)) != LWW_OK) {
			goto fail;
		}
		break;
	case LWW_OP_STATS:
	case LWW_OP_PEERS:
		if (r->textlen > LWW_JSON_MAX) {
			rv = LWW_ETOOBIG;
			goto fail;
		}
		if ((rv = lww_buf_put_lbytes(b, r->text, r->textlen)) !=
		    LWW_OK) {
			goto fail;
		}
		break;
	default:
		break;
	}
	return LWW_OK;
fail:
	b->len = mark;
	return rv;
}

lww_err
lww_rep_decode(const uint8_t *p, size_t n, lww_rep *out)
{
	const uint8_t *bytes;
	lww_rep tmp;
	uint32_t count;
	uint8_t flags;
	lww_rd r;
	lww_err rv;

	memset(&tmp, 0, sizeof(tmp));
	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_REPLY)) != LWW_OK ||
	    (rv = lww_rd_u8(&r, &tmp.op)) != LWW_OK ||
	    (rv = lww_rd_u8(&r, &tmp.status)) != LWW_OK) {
		return rv;
	}
	if (tmp.op > LWW_OP_LAST) {
		return LWW_EUNKNOWN;
	}
	if (tmp.status > LWW_ERR_LAST || (tmp.op == 0 && tmp.status == 0)) {
		return LWW_EPROTO;
	}
	if (tmp.status != LWW_OK) {
		if (lww_rd_lbytes(&r, LWW_ERRMSG_MAX, &bytes, &tmp.msglen) !=
		    LWW_OK) {
			return LWW_EPROTO;
		}
		tmp.msg = (const char *) bytes;
		goto end;
	}
	switch (tmp.op) {
	case LWW_OP_ADD:
	case LWW_OP_REMOVE:
	case LWW_OP_LOAD:
		if ((rv = lww_rd_u64(&r, &tmp.hlc)) != LWW_OK ||
		    (rv = lww_rd_u64(&r, &tmp.node)) != LWW_OK ||
		    (rv = lww_rd_u32(&r, &tmp.count)) != LWW_OK) {
			return rv;
		}
		break;
	case LWW_OP_LOOKUP:
		if ((rv = rd_entry(&r, 1, &tmp.entry)) != LWW_OK) {
			return rv;
		}
		break;
	case LWW_OP_LIST:
		if ((rv = lww_rd_u32(&r, &count)) != LWW_OK) {
			return rv;
		}
		if (count > LWW_LIST_LIMIT_MAX) {
			return LWW_ETOOBIG;
		}
		if ((rv = rd_entries(&r, count, 1, &tmp.entries)) != LWW_OK ||
		    (rv = lww_rd_u8(&r, &flags)) != LWW_OK) {
			return rv;
		}
		/* Bit 0: more; bit 1: a count of damaged records follows
		 * (absent when none, so older clients read such a reply). */
		if ((flags & ~(LIST_MORE | LIST_DAMAGED)) != 0) {
			return LWW_EPROTO;
		}
		tmp.more = flags & LIST_MORE;
		if ((flags & LIST_DAMAGED) &&
		    ((rv = lww_rd_u32(&r, &tmp.damaged)) != LWW_OK ||
		     tmp.damaged == 0)) {
			return rv != LWW_OK ? rv : LWW_EPROTO;
		}
		break;
	case LWW_OP_STATS:
	case LWW_OP_PEERS:
		if (lww_rd_lbytes(&r, LWW_JSON_MAX, &bytes, &tmp.textlen) !=
		    LWW_OK) {
			return LWW_EPROTO;
		}
		tmp.text = (const char *) bytes;
		break;
	default:
		break;
	}
end:
	if ((rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	*out = tmp;
	return LWW_OK;
}

lww_err
lww_list_begin(lww_buf *b)
{
	lww_err rv;

	lww_buf_reset(b);
	if ((rv = put_rep_header(b, LWW_OP_LIST, LWW_OK)) != LWW_OK ||
	    (rv = lww_buf_put_u32(b, 0)) != LWW_OK) {
		lww_buf_reset(b);
	}
	return rv;
}

lww_err
lww_list_add(lww_buf *b, const lww_entry *e)
{
	return counted_add(b, LIST_COUNT_OFF, LWW_LIST_LIMIT_MAX, e, 1);
}

lww_err
lww_list_end(lww_buf *b, int more, uint32_t damaged)
{
	uint8_t flags = (more ? LIST_MORE : 0) | (damaged ? LIST_DAMAGED : 0);
	lww_err rv = lww_buf_put_u8(b, flags);

	if (rv == LWW_OK && damaged != 0) {
		rv = lww_buf_put_u32(b, damaged);
	}
	return rv;
}

/* ---- anti-entropy repair ---- */

#define LEAF_REQ_COUNT_OFF 2 /* ver type */
#define LEAF_REP_DONE_OFF  2
#define LEAF_REP_COUNT_OFF 6
#define PUSH_REQ_COUNT_OFF 2
#define TREE_LEVELS        8 /* the digest tree's depth (digest.h) */

static int
tree_index_ok(uint8_t level, uint32_t idx)
{
	return (idx >> (4 * level)) == 0;
}

lww_err
lww_tree_req_encode(lww_buf *b, uint8_t level, const uint32_t *idx,
                    uint32_t count)
{
	size_t mark = b->len;
	lww_err rv;

	if (level >= TREE_LEVELS || count > LWW_SYNC_NODES_MAX) {
		return LWW_EINVAL;
	}
	for (uint32_t i = 0; i < count; i++) {
		if (!tree_index_ok(level, idx[i])) {
			return LWW_EINVAL;
		}
	}
	if ((rv = put_header(b, LWW_MSG_TREE_REQ)) != LWW_OK ||
	    (rv = lww_buf_put_u8(b, level)) != LWW_OK ||
	    (rv = lww_buf_put_u32(b, count)) != LWW_OK) {
		goto fail;
	}
	for (uint32_t i = 0; i < count; i++) {
		if ((rv = lww_buf_put_u32(b, idx[i])) != LWW_OK) {
			goto fail;
		}
	}
	return LWW_OK;
fail:
	b->len = mark;
	return rv;
}

lww_err
lww_tree_req_decode(const uint8_t *p, size_t n, lww_tree_req *out)
{
	lww_tree_req tmp;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_TREE_REQ)) != LWW_OK ||
	    (rv = lww_rd_u8(&r, &tmp.level)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &tmp.count)) != LWW_OK) {
		return rv;
	}
	if (tmp.level >= TREE_LEVELS || tmp.count > LWW_SYNC_NODES_MAX) {
		return LWW_EPROTO;
	}
	if ((rv = lww_rd_bytes(&r, (size_t) tmp.count * 4, &tmp.idx)) !=
	        LWW_OK ||
	    (rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	for (uint32_t i = 0; i < tmp.count; i++) {
		if (!tree_index_ok(tmp.level, lww_get_u32le(tmp.idx + 4 * i))) {
			return LWW_EPROTO;
		}
	}
	*out = tmp;
	return LWW_OK;
}

uint32_t
lww_tree_req_index(const lww_tree_req *r, uint32_t i)
{
	return lww_get_u32le(r->idx + 4 * (size_t) i);
}

lww_err
lww_tree_rep_encode(lww_buf *b, uint8_t level, const uint8_t *hashes,
                    uint32_t count)
{
	size_t mark = b->len;
	lww_err rv;

	if (level >= TREE_LEVELS || count > LWW_SYNC_NODES_MAX) {
		return LWW_EINVAL;
	}
	if ((rv = put_header(b, LWW_MSG_TREE_REP)) != LWW_OK ||
	    (rv = lww_buf_put_u8(b, level)) != LWW_OK ||
	    (rv = lww_buf_put_u32(b, count)) != LWW_OK ||
	    (rv = lww_buf_put(b, hashes,
	                      (size_t) count * 16 * LWW_SYNC_HASH)) != LWW_OK) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_tree_rep_decode(const uint8_t *p, size_t n, lww_tree_rep *out)
{
	lww_tree_rep tmp;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_TREE_REP)) != LWW_OK ||
	    (rv = lww_rd_u8(&r, &tmp.level)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &tmp.count)) != LWW_OK) {
		return rv;
	}
	if (tmp.level >= TREE_LEVELS || tmp.count > LWW_SYNC_NODES_MAX) {
		return LWW_EPROTO;
	}
	if ((rv = lww_rd_bytes(&r, (size_t) tmp.count * 16 * LWW_SYNC_HASH,
	                       &tmp.hashes)) != LWW_OK ||
	    (rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	*out = tmp;
	return LWW_OK;
}

void
lww_sync_summary(uint8_t out[LWW_SYNC_SUMMARY], uint32_t bucket,
                 const uint8_t hash[LWW_SYNC_HASH])
{
	lww_put_u32le(out, bucket);
	memcpy(out + 4, hash, LWW_SYNC_HASH);
}

/* Starts a message of `type` with `nzero` u32 zeros (its counts). */
static lww_err
begin_counted(lww_buf *b, uint8_t type, int nzero)
{
	lww_err rv;

	lww_buf_reset(b);
	if ((rv = put_header(b, type)) != LWW_OK) {
		return rv;
	}
	for (int i = 0; i < nzero; i++) {
		if ((rv = lww_buf_put_u32(b, 0)) != LWW_OK) {
			lww_buf_reset(b);
			return rv;
		}
	}
	return LWW_OK;
}

lww_err
lww_leaf_req_begin(lww_buf *b)
{
	return begin_counted(b, LWW_MSG_LEAF_REQ, 1);
}

lww_err
lww_leaf_pp_req_begin(lww_buf *b)
{
	return begin_counted(b, LWW_MSG_LEAF_PP_REQ, 1);
}

lww_err
lww_leaf_req_add(lww_buf *b, uint32_t leaf, const uint8_t *sums, uint32_t nsum)
{
	size_t mark = b->len;
	lww_err rv;

	if (b->len < LEAF_REQ_COUNT_OFF + 4 || leaf >= LWW_SYNC_LEAVES_MAX ||
	    (nsum > 0 && sums == NULL)) {
		return LWW_EINVAL;
	}
	if (lww_get_u32le(b->p + LEAF_REQ_COUNT_OFF) >= LWW_SYNC_LEAVES_MAX) {
		return LWW_ETOOBIG;
	}
	if ((rv = lww_buf_put_u32(b, leaf)) != LWW_OK ||
	    (rv = lww_buf_put_u32(b, nsum)) != LWW_OK ||
	    (rv = lww_buf_put(b, sums, (size_t) nsum * LWW_SYNC_SUMMARY)) !=
	        LWW_OK) {
		b->len = mark;
		return rv;
	}
	return bump_count(b, LEAF_REQ_COUNT_OFF, LWW_SYNC_LEAVES_MAX);
}

uint32_t
lww_leaf_req_count(const lww_buf *b)
{
	return count_at(b, LEAF_REQ_COUNT_OFF);
}

/* One leaf of a request at the reader. */
static lww_err
rd_leaf(lww_rd *r, uint32_t *leaf, uint32_t *nsum, const uint8_t **sums)
{
	uint32_t l, ns;
	lww_err rv;

	if ((rv = lww_rd_u32(r, &l)) != LWW_OK ||
	    (rv = lww_rd_u32(r, &ns)) != LWW_OK) {
		return rv;
	}
	if (l >= LWW_SYNC_LEAVES_MAX ||
	    ns > lww_rd_left(r) / LWW_SYNC_SUMMARY) {
		return LWW_EPROTO;
	}
	if ((rv = lww_rd_bytes(r, (size_t) ns * LWW_SYNC_SUMMARY, sums)) !=
	    LWW_OK) {
		return rv;
	}
	*leaf = l;
	*nsum = ns;
	return LWW_OK;
}

lww_err
lww_leaf_req_decode(const uint8_t *p, size_t n, lww_leaf_req *out)
{
	lww_leaf_req tmp;
	size_t start;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	tmp.push = n >= 2 && p[1] == LWW_MSG_LEAF_PP_REQ;
	if ((rv = rd_header(&r, tmp.push ? LWW_MSG_LEAF_PP_REQ
	                                 : LWW_MSG_LEAF_REQ)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &tmp.count)) != LWW_OK) {
		return rv;
	}
	if (tmp.count > LWW_SYNC_LEAVES_MAX) {
		return LWW_EPROTO;
	}
	start = r.off;
	for (uint32_t i = 0; i < tmp.count; i++) {
		uint32_t leaf, nsum;
		const uint8_t *sums;
		if ((rv = rd_leaf(&r, &leaf, &nsum, &sums)) != LWW_OK) {
			return rv;
		}
	}
	if ((rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	tmp.p = p + start;
	tmp.n = n - start;
	*out = tmp;
	return LWW_OK;
}

int
lww_leaf_req_next(const lww_leaf_req *r, size_t *off, uint32_t *leaf,
                  uint32_t *nsum, const uint8_t **sums)
{
	lww_rd rd;

	if (*off >= r->n) {
		return 0;
	}
	lww_rd_init(&rd, r->p, r->n);
	rd.off = *off;
	if (rd_leaf(&rd, leaf, nsum, sums) != LWW_OK) {
		return 0; /* not reached for a validated request */
	}
	*off = rd.off;
	return 1;
}

lww_err
lww_leaf_rep_begin(lww_buf *b)
{
	return begin_counted(b, LWW_MSG_LEAF_REP, 2);
}

lww_err
lww_leaf_pp_rep_begin(lww_buf *b)
{
	return begin_counted(b, LWW_MSG_LEAF_PP_REP, 2);
}

lww_err
lww_leaf_pp_rep_end(lww_buf *b, const uint8_t *want, uint32_t nwant)
{
	size_t mark = b->len;
	lww_err rv;

	if (b->len < LEAF_REP_COUNT_OFF + 4 || b->p[1] != LWW_MSG_LEAF_PP_REP ||
	    nwant > LWW_MSG_PAYLOAD_MAX / LWW_SYNC_SUMMARY ||
	    (nwant > 0 && want == NULL)) {
		return LWW_EINVAL;
	}
	if ((rv = lww_buf_put_u32(b, nwant)) != LWW_OK ||
	    (rv = lww_buf_put(b, want, (size_t) nwant * LWW_SYNC_SUMMARY)) !=
	        LWW_OK) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_leaf_rep_add(lww_buf *b, const lww_entry *e)
{
	return counted_add(b, LEAF_REP_COUNT_OFF, LWW_BATCH_ENTRIES_MAX, e, 1);
}

void
lww_leaf_rep_set_done(lww_buf *b, uint32_t done)
{
	if (b->len >= LEAF_REP_DONE_OFF + 4) {
		lww_put_u32le(b->p + LEAF_REP_DONE_OFF, done);
	}
}

void
lww_leaf_rep_truncate(lww_buf *b, size_t len, uint32_t count)
{
	if (len >= LEAF_REP_COUNT_OFF + 4 && len <= b->len) {
		b->len = len;
		lww_put_u32le(b->p + LEAF_REP_COUNT_OFF, count);
	}
}

uint32_t
lww_leaf_rep_count(const lww_buf *b)
{
	return count_at(b, LEAF_REP_COUNT_OFF);
}

lww_err
lww_leaf_rep_decode(const uint8_t *p, size_t n, lww_leaf_rep *out)
{
	lww_leaf_rep tmp;
	uint32_t count;
	lww_rd r;
	lww_err rv;

	int pp = n >= 2 && p[1] == LWW_MSG_LEAF_PP_REP;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, pp ? LWW_MSG_LEAF_PP_REP : LWW_MSG_LEAF_REP)) !=
	        LWW_OK ||
	    (rv = lww_rd_u32(&r, &tmp.done)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &count)) != LWW_OK) {
		return rv;
	}
	if (tmp.done > LWW_SYNC_LEAVES_MAX) {
		return LWW_EPROTO;
	}
	tmp.nwant = 0;
	tmp.want = NULL;
	if (!pp) {
		rv = rd_last_entries(&r, count, &tmp.entries);
	} else if (count > LWW_BATCH_ENTRIES_MAX) {
		rv = LWW_ETOOBIG;
	} else if ((rv = rd_entries(&r, count, 1, &tmp.entries)) == LWW_OK &&
	           (rv = lww_rd_u32(&r, &tmp.nwant)) == LWW_OK) {
		/* Checked against what is left before multiplying. */
		if (tmp.nwant > lww_rd_left(&r) / LWW_SYNC_SUMMARY) {
			rv = LWW_EPROTO;
		} else if ((rv = lww_rd_bytes(
		                &r, (size_t) tmp.nwant * LWW_SYNC_SUMMARY,
		                &tmp.want)) == LWW_OK) {
			rv = lww_rd_end(&r);
		}
	}
	if (rv != LWW_OK) {
		return rv;
	}
	*out = tmp;
	return LWW_OK;
}

lww_err
lww_push_req_begin(lww_buf *b)
{
	return begin_counted(b, LWW_MSG_PUSH_REQ, 1);
}

lww_err
lww_push_req_add(lww_buf *b, const lww_entry *e)
{
	return counted_add(b, PUSH_REQ_COUNT_OFF, LWW_BATCH_ENTRIES_MAX, e, 1);
}

uint32_t
lww_push_req_count(const lww_buf *b)
{
	return count_at(b, PUSH_REQ_COUNT_OFF);
}

lww_err
lww_push_req_decode(const uint8_t *p, size_t n, lww_entries *out)
{
	lww_entries tmp;
	uint32_t count;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_PUSH_REQ)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &count)) != LWW_OK) {
		return rv;
	}
	/* An empty push is no request anyone sends. */
	if (count == 0) {
		return LWW_EPROTO;
	}
	if ((rv = rd_last_entries(&r, count, &tmp)) != LWW_OK) {
		return rv;
	}
	*out = tmp;
	return LWW_OK;
}

lww_err
lww_push_rep_encode(lww_buf *b, uint32_t taken)
{
	size_t mark = b->len;
	lww_err rv;

	if ((rv = put_header(b, LWW_MSG_PUSH_REP)) != LWW_OK ||
	    (rv = lww_buf_put_u32(b, taken)) != LWW_OK) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_push_rep_decode(const uint8_t *p, size_t n, uint32_t *taken)
{
	uint32_t t;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_PUSH_REP)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &t)) != LWW_OK ||
	    (rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	if (t > LWW_BATCH_ENTRIES_MAX) {
		return LWW_EPROTO;
	}
	*taken = t;
	return LWW_OK;
}

/* ---- client authentication ---- */

lww_err
lww_auth_encode(lww_buf *b, uint64_t ts_ms,
                const uint8_t nonce[LWW_NONCE_BYTES], const uint8_t *req,
                size_t reqlen)
{
	size_t mark = b->len;
	lww_err rv;

	if ((rv = put_header(b, LWW_MSG_AUTH)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, ts_ms)) != LWW_OK ||
	    (rv = lww_buf_put(b, nonce, LWW_NONCE_BYTES)) != LWW_OK ||
	    (rv = lww_buf_put(b, req, reqlen)) != LWW_OK) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_auth_decode(const uint8_t *p, size_t n, lww_auth *out)
{
	lww_auth tmp;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_AUTH)) != LWW_OK ||
	    (rv = lww_rd_u64(&r, &tmp.ts_ms)) != LWW_OK ||
	    (rv = lww_rd_bytes(&r, LWW_NONCE_BYTES, &tmp.nonce)) != LWW_OK) {
		return rv;
	}
	tmp.reqlen = lww_rd_left(&r);
	if (tmp.reqlen < 2) {
		return LWW_EPROTO; /* too short to be a message */
	}
	tmp.req = p + r.off;
	*out = tmp;
	return LWW_OK;
}

lww_err
lww_clock_req_encode(lww_buf *b, uint64_t t1)
{
	size_t mark = b->len;
	lww_err rv;

	if ((rv = put_header(b, LWW_MSG_CLOCK_REQ)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, t1)) != LWW_OK) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_clock_req_decode(const uint8_t *p, size_t n, uint64_t *t1)
{
	uint64_t tmp;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_CLOCK_REQ)) != LWW_OK ||
	    (rv = lww_rd_u64(&r, &tmp)) != LWW_OK ||
	    (rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	*t1 = tmp;
	return LWW_OK;
}

lww_err
lww_clock_rep_encode(lww_buf *b, const lww_clock_probe *c)
{
	size_t mark = b->len;
	lww_err rv;

	if ((rv = put_header(b, LWW_MSG_CLOCK_REP)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, c->t1)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, c->t2)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, c->t3)) != LWW_OK ||
	    (rv = lww_buf_put_u64(b, c->refused)) != LWW_OK) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_clock_rep_decode(const uint8_t *p, size_t n, lww_clock_probe *out)
{
	lww_clock_probe tmp;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_CLOCK_REP)) != LWW_OK ||
	    (rv = lww_rd_u64(&r, &tmp.t1)) != LWW_OK ||
	    (rv = lww_rd_u64(&r, &tmp.t2)) != LWW_OK ||
	    (rv = lww_rd_u64(&r, &tmp.t3)) != LWW_OK ||
	    (rv = lww_rd_u64(&r, &tmp.refused)) != LWW_OK ||
	    (rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	*out = tmp;
	return LWW_OK;
}

lww_err
lww_batch_peek_seq(const uint8_t *p, size_t n, uint64_t *seq)
{
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_BATCH)) != LWW_OK) {
		return rv;
	}
	return lww_rd_u64(&r, seq);
}

/* ---- the gossip link ---- */
#define LINK_COUNT_OFF 2 /* ver type count:u32 */
#define IHAVE_REC      16
#define GRAFT_REC      24

static lww_err
link_begin(lww_buf *b, uint8_t type)
{
	size_t mark = b->len;
	lww_err rv;

	if ((rv = put_header(b, type)) != LWW_OK ||
	    (rv = lww_buf_put_u32(b, 0)) != LWW_OK) {
		b->len = mark;
	}
	return rv;
}

uint32_t
lww_link_count(const lww_buf *b)
{
	return count_at(b, LINK_COUNT_OFF);
}

/* Appends one fixed-size record to an IHAVE or GRAFT under construction. */
static lww_err
link_add(lww_buf *b, const uint8_t *rec, size_t n)
{
	size_t mark = b->len;
	lww_err rv;

	if (b->len < LINK_COUNT_OFF + 4) {
		return LWW_EINVAL;
	}
	if (count_at(b, LINK_COUNT_OFF) >= LWW_LINK_RECORDS_MAX) {
		return LWW_ETOOBIG;
	}
	if ((rv = lww_buf_put(b, rec, n)) != LWW_OK) {
		return rv;
	}
	if ((rv = bump_count(b, LINK_COUNT_OFF, LWW_LINK_RECORDS_MAX)) !=
	    LWW_OK) {
		b->len = mark;
	}
	return rv;
}

/* A whole IHAVE or GRAFT: 1..LWW_LINK_RECORDS_MAX records of `size`. */
static lww_err
link_decode(const uint8_t *p, size_t n, uint8_t type, size_t size,
            lww_link_recs *out)
{
	const uint8_t *recs;
	uint32_t count;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, type)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &count)) != LWW_OK) {
		return rv;
	}
	if (count == 0 || count > LWW_LINK_RECORDS_MAX) {
		return LWW_EPROTO;
	}
	if ((rv = lww_rd_bytes(&r, (size_t) count * size, &recs)) != LWW_OK ||
	    (rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	out->count = count;
	out->p = recs;
	out->n = (size_t) count * size;
	return LWW_OK;
}

lww_err
lww_ihave_begin(lww_buf *b)
{
	return link_begin(b, LWW_MSG_IHAVE);
}

lww_err
lww_ihave_add(lww_buf *b, uint64_t origin, uint64_t seq)
{
	uint8_t rec[IHAVE_REC];

	lww_put_u64le(rec, origin);
	lww_put_u64le(rec + 8, seq);
	return link_add(b, rec, sizeof(rec));
}

lww_err
lww_ihave_decode(const uint8_t *p, size_t n, lww_link_recs *out)
{
	return link_decode(p, n, LWW_MSG_IHAVE, IHAVE_REC, out);
}

void
lww_ihave_at(const lww_link_recs *r, uint32_t i, uint64_t *origin,
             uint64_t *seq)
{
	const uint8_t *q = r->p + (size_t) i * IHAVE_REC;

	*origin = lww_get_u64le(q);
	*seq = lww_get_u64le(q + 8);
}

lww_err
lww_graft_begin(lww_buf *b)
{
	return link_begin(b, LWW_MSG_GRAFT);
}

lww_err
lww_graft_add(lww_buf *b, uint64_t origin, uint64_t from, uint64_t to)
{
	uint8_t rec[GRAFT_REC];

	if (from > to) {
		return LWW_EINVAL;
	}
	lww_put_u64le(rec, origin);
	lww_put_u64le(rec + 8, from);
	lww_put_u64le(rec + 16, to);
	return link_add(b, rec, sizeof(rec));
}

lww_err
lww_graft_decode(const uint8_t *p, size_t n, lww_link_recs *out)
{
	lww_link_recs tmp;
	lww_err rv;

	if ((rv = link_decode(p, n, LWW_MSG_GRAFT, GRAFT_REC, &tmp)) !=
	    LWW_OK) {
		return rv;
	}
	for (uint32_t i = 0; i < tmp.count; i++) {
		const uint8_t *q = tmp.p + (size_t) i * GRAFT_REC;
		if (lww_get_u64le(q + 8) > lww_get_u64le(q + 16)) {
			return LWW_EPROTO;
		}
	}
	*out = tmp;
	return LWW_OK;
}

void
lww_graft_at(const lww_link_recs *r, uint32_t i, uint64_t *origin,
             uint64_t *from, uint64_t *to)
{
	const uint8_t *q = r->p + (size_t) i * GRAFT_REC;

	*origin = lww_get_u64le(q);
	*from = lww_get_u64le(q + 8);
	*to = lww_get_u64le(q + 16);
}

lww_err
lww_hello_encode(lww_buf *b, const uint8_t nonce[LWW_HELLO_NONCE_BYTES])
{
	size_t mark = b->len;
	lww_err rv;

	if ((rv = put_header(b, LWW_MSG_HELLO)) != LWW_OK ||
	    (rv = lww_buf_put(b, nonce, LWW_HELLO_NONCE_BYTES)) != LWW_OK) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_hello_decode(const uint8_t *p, size_t n,
                 uint8_t nonce[LWW_HELLO_NONCE_BYTES])
{
	const uint8_t *q;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_HELLO)) != LWW_OK ||
	    (rv = lww_rd_bytes(&r, LWW_HELLO_NONCE_BYTES, &q)) != LWW_OK ||
	    (rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	memcpy(nonce, q, LWW_HELLO_NONCE_BYTES);
	return LWW_OK;
}

lww_err
lww_prune_encode(lww_buf *b)
{
	return put_header(b, LWW_MSG_PRUNE);
}

lww_err
lww_prune_decode(const uint8_t *p, size_t n)
{
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_PRUNE)) != LWW_OK) {
		return rv;
	}
	return lww_rd_end(&r);
}

lww_err
lww_bundle_begin(lww_buf *b)
{
	return link_begin(b, LWW_MSG_BUNDLE);
}

lww_err
lww_bundle_add(lww_buf *b, const uint8_t *m, size_t n)
{
	size_t mark = b->len;
	lww_err rv;

	if (n < 2 || m[1] == LWW_MSG_BUNDLE || b->len < LINK_COUNT_OFF + 4) {
		return LWW_EINVAL;
	}
	if (count_at(b, LINK_COUNT_OFF) >= LWW_BUNDLE_MAX ||
	    n > LWW_MSG_MAX - 4 - b->len) {
		return LWW_ETOOBIG;
	}
	if ((rv = lww_buf_put_u32(b, (uint32_t) n)) != LWW_OK ||
	    (rv = lww_buf_put(b, m, n)) != LWW_OK ||
	    (rv = bump_count(b, LINK_COUNT_OFF, LWW_BUNDLE_MAX)) != LWW_OK) {
		b->len = mark;
	}
	return rv;
}

lww_err
lww_bundle_decode(const uint8_t *p, size_t n, lww_link_recs *out)
{
	const uint8_t *start;
	uint32_t count;
	lww_rd r;
	lww_err rv;

	lww_rd_init(&r, p, n);
	if ((rv = rd_header(&r, LWW_MSG_BUNDLE)) != LWW_OK ||
	    (rv = lww_rd_u32(&r, &count)) != LWW_OK) {
		return rv;
	}
	if (count == 0 || count > LWW_BUNDLE_MAX) {
		return LWW_EPROTO;
	}
	start = p + r.off;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *m;
		uint32_t len;
		if ((rv = lww_rd_u32(&r, &len)) != LWW_OK ||
		    (rv = lww_rd_bytes(&r, len, &m)) != LWW_OK) {
			return LWW_EPROTO;
		}
		if (len < 2 || m[1] == LWW_MSG_BUNDLE) {
			return LWW_EPROTO;
		}
	}
	if ((rv = lww_rd_end(&r)) != LWW_OK) {
		return rv;
	}
	out->count = count;
	out->p = start;
	out->n = (size_t) (p + n - start);
	return LWW_OK;
}

int
lww_bundle_next(const lww_link_recs *r, size_t *off, const uint8_t **m,
                size_t *n)
{
	uint32_t len;

	/* Validated as a whole (lww_bundle_decode): the lengths add up. */
	if (*off + 4 > r->n) {
		return 0;
	}
	len = lww_get_u32le(r->p + *off);
	*m = r->p + *off + 4;
	*n = len;
	*off += 4 + (size_t) len;
	return 1;
}
