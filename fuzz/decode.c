/*
 * decode.c - every wire decoder on arbitrary bytes: no crash, no leak, no
 * read out of bounds; and whatever a decoder accepts re-encodes to exactly
 * the same bytes (every value has one encoding), so decode-encode-decode
 * is the identity. The decode-and-compare steps are tests/reencode.h,
 * shared with the codec bit-flip test.
 */
#include <string.h>

#include "../tests/reencode.h"
#include "codec.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const reenc_fn msgs[] = {
	    reenc_batch,     reenc_heartbeat, reenc_request,  reenc_reply,
	    reenc_tree_req,  reenc_tree_rep,  reenc_leaf_req, reenc_leaf_rep,
	    reenc_clock_req, reenc_clock_rep, reenc_push_req, reenc_push_rep,
	    reenc_hello,
	};
	lww_buf b = LWW_BUF_INIT;
	uint8_t type;

	FUZZ_CHECK(reenc_entry(data, size, &b) != REENC_DIFFERS);
	if (lww_msg_peek(data, size, &type) == LWW_OK) {
		for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
			FUZZ_CHECK(msgs[i](data, size, &b) != REENC_DIFFERS);
		}
	}
	lww_buf_fini(&b);
	return 0;
}
