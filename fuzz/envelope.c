/*
 * envelope.c - signed envelopes are accepted only when signed by a trusted
 * key over exactly the bytes received.
 *
 * Input: mode:u8 nmut:u8 (pos:u16 xor:u8)*nmut payload. The payload is
 * sealed by the trusted key (mode bit 0 clear) or by an untrusted one, then
 * the mutations are applied. The envelope must open if and only if it was
 * signed by the trusted key and no byte changed. The raw input, taken as
 * an envelope, must never open (nobody here can forge a signature).
 */
#include <string.h>

#include <sodium.h>

#include "envelope.h"
#include "fuzz.h"

static lww_key trusted, stranger;
static lww_trust *trust;

static void
init(void)
{
	uint8_t seed[32];
	char line[128], pk[LWW_PK_TEXT_LEN + 1], err[64];

	FUZZ_CHECK(sodium_init() >= 0);
	memset(seed, 1, sizeof(seed));
	crypto_sign_seed_keypair(trusted.pk, trusted.sk, seed);
	memset(seed, 2, sizeof(seed));
	crypto_sign_seed_keypair(stranger.pk, stranger.sk, seed);
	lww_pk_to_text(trusted.pk, pk, sizeof(pk));
	snprintf(line, sizeof(line), "trusted %s\n", pk);
	FUZZ_CHECK(lww_trust_parse(line, strlen(line), &trust, err,
	                           sizeof(err)) == LWW_OK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lww_buf env = LWW_BUF_INIT;
	lww_envelope e;
	uint8_t *orig;
	size_t off = 2, nmut;
	int changed, signer_trusted;
	lww_err rv;

	if (trust == NULL) {
		init();
	}
	FUZZ_CHECK(lww_envelope_open(data, size, trust, &e) != LWW_OK);
	if (size < 2) {
		return 0;
	}
	nmut = data[1];
	if (nmut * 3 > size - 2) {
		return 0;
	}
	off += nmut * 3;
	signer_trusted = (data[0] & 1) == 0;
	if (lww_envelope_seal(signer_trusted ? &trusted : &stranger, data + off,
	                      size - off, &env) != LWW_OK) {
		return 0;
	}
	orig = malloc(env.len);
	FUZZ_CHECK(orig != NULL);
	memcpy(orig, env.p, env.len);
	for (size_t i = 0; i < nmut; i++) {
		const uint8_t *m = data + 2 + 3 * i;
		size_t pos = ((size_t) m[0] | ((size_t) m[1] << 8)) % env.len;
		env.p[pos] ^= m[2];
	}
	/* Optionally drop the last byte or add one: bit 1 and bit 2. */
	if ((data[0] & 2) && env.len > 0) {
		env.len--;
	}
	if (data[0] & 4) {
		FUZZ_CHECK(lww_buf_put_u8(&env, data[0]) == LWW_OK);
	}
	changed = env.len != size - off + LWW_ENVELOPE_OVERHEAD ||
	          memcmp(env.p, orig, env.len) != 0;
	rv = lww_envelope_open(env.p, env.len, trust, &e);
	if (rv == LWW_OK) {
		FUZZ_CHECK(signer_trusted && !changed);
		FUZZ_CHECK(e.plen == size - off);
		FUZZ_CHECK(memcmp(e.payload, data + off, e.plen) == 0);
		FUZZ_CHECK(memcmp(e.pk, trusted.pk, LWW_PK_BYTES) == 0);
	} else {
		FUZZ_CHECK(!signer_trusted || changed);
	}
	free(orig);
	lww_buf_fini(&env);
	return 0;
}
