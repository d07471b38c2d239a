/*
 * hlc.c - arbitrary sequences of wall-clock readings (jumps back, huge
 * jumps forward), local events and remote observations: issued stamps
 * strictly increase, a refused observation changes nothing, and no stamp
 * beyond max drift is ever let in.
 *
 * Input: drift:u16, then records op:u8 value:u64 (little-endian).
 */
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "hlc.h"

static uint64_t
wall_of(void *arg)
{
	return *(uint64_t *) arg;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t wall = 0, prev = 0, s;
	lww_hlc c;
	size_t off = 2;

	if (size < 2) {
		return 0;
	}
	lww_hlc_init(&c, wall_of, &wall, (uint64_t) data[0] | data[1] << 8);
	for (; size - off >= 9; off += 9) {
		uint8_t op = data[off] % 4;
		uint64_t v = lww_get_u64le(data + off + 1);
		uint64_t before = c.last;
		lww_err rv;

		switch (op) {
		case 0: /* the wall clock jumps anywhere, also back */
			wall = v;
			break;
		case 1: /* a small step, forward or back */
			wall += (int8_t) (v & 0xff);
			break;
		case 2: /* a local event */
			rv = lww_hlc_now(&c, &s);
			if (rv == LWW_OK) {
				FUZZ_CHECK(s > prev && s > before);
				FUZZ_CHECK(c.last == s);
				prev = s;
			} else {
				FUZZ_CHECK(rv == LWW_EOVERFLOW);
				FUZZ_CHECK(before == UINT64_MAX);
				FUZZ_CHECK(c.last == before);
			}
			break;
		case 3: { /* a stamp from a peer */
			uint64_t w =
			    wall > LWW_HLC_WALL_MAX ? LWW_HLC_WALL_MAX : wall;
			int beyond = lww_hlc_wall(v) > w &&
			             lww_hlc_wall(v) - w > c.max_drift;
			rv = lww_hlc_observe(&c, v);
			if (beyond) {
				FUZZ_CHECK(rv == LWW_EDRIFT);
				FUZZ_CHECK(c.last == before);
			} else {
				FUZZ_CHECK(rv == LWW_OK);
				FUZZ_CHECK(c.last == (v > before ? v : before));
			}
			break;
		}
		}
	}
	return 0;
}
