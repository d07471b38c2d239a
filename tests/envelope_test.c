/* envelope_test.c - keys, key files, trust files and signed envelopes:
 * only the trusted key over exactly the signed bytes is accepted. */
#include <sodium.h>

#include "testutil.h"

#include "envelope.h"
#include "err.h"

static int
setup(void **state)
{
	(void) state;
	return sodium_init() < 0 ? -1 : 0;
}

static lww_trust *
trust_of(const lww_key *k, const char *name)
{
	char line[256], pk[LWW_PK_TEXT_LEN + 1], err[128];
	lww_trust *t = NULL;

	lww_pk_to_text(k->pk, pk, sizeof(pk));
	snprintf(line, sizeof(line), "%s %s\n", name, pk);
	assert_ok(lww_trust_parse(line, strlen(line), &t, err, sizeof(err)));
	return t;
}

static void
test_seal_open(void **state)
{
	lww_key k;
	lww_buf b = LWW_BUF_INIT;
	lww_envelope env;
	lww_trust *t;
	(void) state;

	assert_ok(lww_key_generate(&k));
	t = trust_of(&k, "n1");
	assert_ok(lww_envelope_seal(&k, (const uint8_t *) "payload", 7, &b));
	assert_int_equal(b.len, 7 + LWW_ENVELOPE_OVERHEAD);
	assert_ok(lww_envelope_open(b.p, b.len, t, &env));
	assert_int_equal(env.plen, 7);
	assert_memory_equal(env.payload, "payload", 7);
	assert_string_equal(env.peer->name, "n1");
	assert_true(env.peer->node == lww_node_id(k.pk));
	lww_trust_free(t);
	lww_buf_fini(&b);
}

static void
test_tampering_is_refused(void **state)
{
	lww_key k;
	lww_buf b = LWW_BUF_INIT;
	lww_envelope env;
	lww_trust *t;
	uint8_t *m;
	(void) state;

	assert_ok(lww_key_generate(&k));
	t = trust_of(&k, "n1");
	assert_ok(lww_envelope_seal(&k, (const uint8_t *) "abcdefgh", 8, &b));
	m = malloc(b.len + 1);
	/* Every truncation. */
	for (size_t len = 0; len < b.len; len++) {
		memcpy(m, b.p, len);
		assert_int_not_equal(lww_envelope_open(m, len, t, &env),
		                     LWW_OK);
	}
	/* Every bit flip: header, signer, payload, signature. */
	for (size_t i = 0; i < b.len * 8; i++) {
		memcpy(m, b.p, b.len);
		m[i / 8] ^= (uint8_t) (1u << (i % 8));
		assert_int_not_equal(lww_envelope_open(m, b.len, t, &env),
		                     LWW_OK);
	}
	/* A trailing byte breaks the signature. */
	memcpy(m, b.p, b.len);
	m[b.len] = 0;
	assert_err(lww_envelope_open(m, b.len + 1, t, &env), LWW_EBADSIG);
	/* A flipped signature byte is a bad signature, specifically. */
	memcpy(m, b.p, b.len);
	m[b.len - 1] ^= 1;
	assert_err(lww_envelope_open(m, b.len, t, &env), LWW_EBADSIG);
	free(m);
	lww_trust_free(t);
	lww_buf_fini(&b);
}

static void
test_untrusted_and_impersonation(void **state)
{
	lww_key a, mallory;
	lww_buf b = LWW_BUF_INIT;
	lww_envelope env;
	lww_trust *t;
	(void) state;

	assert_ok(lww_key_generate(&a));
	assert_ok(lww_key_generate(&mallory));
	t = trust_of(&a, "a");
	assert_ok(lww_envelope_seal(&mallory, (const uint8_t *) "x", 1, &b));
	assert_err(lww_envelope_open(b.p, b.len, t, &env), LWW_EUNTRUSTED);
	/* Without a trust set any intact signature opens, naming no peer. */
	assert_ok(lww_envelope_open(b.p, b.len, NULL, &env));
	assert_null(env.peer);
	assert_memory_equal(env.pk, mallory.pk, LWW_PK_BYTES);
	/* Mallory writes a's public key into the header: bad signature. */
	memcpy(b.p + 2, a.pk, LWW_PK_BYTES);
	assert_err(lww_envelope_open(b.p, b.len, t, &env), LWW_EBADSIG);
	assert_err(lww_envelope_open(b.p, b.len, NULL, &env), LWW_EBADSIG);
	lww_trust_free(t);
	lww_buf_fini(&b);
}

static void
test_node_id_and_text(void **state)
{
	lww_key a, b;
	char text[LWW_PK_TEXT_LEN + 1];
	uint8_t pk[LWW_PK_BYTES];
	(void) state;

	assert_ok(lww_key_generate(&a));
	assert_ok(lww_key_generate(&b));
	assert_true(lww_node_id(a.pk) == lww_node_id(a.pk));
	assert_true(lww_node_id(a.pk) != lww_node_id(b.pk));
	assert_ok(lww_pk_to_text(a.pk, text, sizeof(text)));
	assert_int_equal(strlen(text), LWW_PK_TEXT_LEN);
	assert_ok(lww_pk_from_text(text, strlen(text), pk));
	assert_memory_equal(pk, a.pk, LWW_PK_BYTES);
	assert_err(lww_pk_from_text(text, strlen(text) - 1, pk), LWW_ESYNTAX);
	text[3] = '*';
	assert_err(lww_pk_from_text(text, strlen(text), pk), LWW_ESYNTAX);
	assert_err(lww_pk_to_text(a.pk, text, LWW_PK_TEXT_LEN), LWW_EINVAL);
}

static void
test_key_files(void **state)
{
	char *dir = tu_tmpdir();
	char path[512], pub[600], line[128], pktext[LWW_PK_TEXT_LEN + 1];
	lww_key k, k2;
	struct stat st;
	FILE *f;
	(void) state;

	snprintf(path, sizeof(path), "%s/node.key", dir);
	snprintf(pub, sizeof(pub), "%s.pub", path);
	assert_ok(lww_key_generate(&k));
	assert_ok(lww_key_save(&k, path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The .pub file holds the public key text on one line. */
	f = fopen(pub, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	lww_pk_to_text(k.pk, pktext, sizeof(pktext));
	assert_int_equal(strlen(line), LWW_PK_TEXT_LEN + 1);
	assert_memory_equal(line, pktext, LWW_PK_TEXT_LEN);
	/* Load gives the same key pair. */
	assert_ok(lww_key_load(path, &k2));
	assert_memory_equal(k.pk, k2.pk, LWW_PK_BYTES);
	assert_memory_equal(k.sk, k2.sk, LWW_SK_BYTES);
	/* Never overwritten. */
	assert_err(lww_key_save(&k, path), LWW_EEXIST);
	/* Refused when readable by others. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_err(lww_key_load(path, &k2), LWW_EPERM);
	assert_int_equal(chmod(path, 0600), 0);
	/* Missing and garbled files. */
	snprintf(pub, sizeof(pub), "%s/missing", dir);
	assert_err(lww_key_load(pub, &k2), LWW_ENOENT);
	f = fopen(path, "w");
	fputs("lww-secret-key-v1 not-base64\n", f);
	fclose(f);
	assert_err(lww_key_load(path, &k2), LWW_ESYNTAX);
	lww_key_wipe(&k);
	for (size_t i = 0; i < LWW_SK_BYTES; i++) {
		assert_int_equal(k.sk[i], 0);
	}
	tu_rmdir(dir);
}

static void
expect_trust_error(const char *text, const char *want)
{
	char err[128] = "";
	lww_trust *t = NULL;

	assert_err(lww_trust_parse(text, strlen(text), &t, err, sizeof(err)),
	           LWW_ESYNTAX);
	assert_null(t);
	if (strstr(err, want) == NULL) {
		fail_msg("error '%s' does not contain '%s'", err, want);
	}
}

static void
test_trust_file(void **state)
{
	lww_key a, b;
	char pa[LWW_PK_TEXT_LEN + 1], pb[LWW_PK_TEXT_LEN + 1];
	char text[1024], err[128];
	lww_trust *t = NULL;
	(void) state;

	assert_ok(lww_key_generate(&a));
	assert_ok(lww_key_generate(&b));
	lww_pk_to_text(a.pk, pa, sizeof(pa));
	lww_pk_to_text(b.pk, pb, sizeof(pb));
	snprintf(text, sizeof(text),
	         "# fleet\n\n  alpha %s   # the first\nbeta\t%s ro\n", pa, pb);
	assert_ok(lww_trust_parse(text, strlen(text), &t, err, sizeof(err)));
	assert_int_equal(lww_trust_count(t), 2);
	assert_string_equal(lww_trust_at(t, 0)->name, "alpha");
	assert_int_equal(lww_trust_at(t, 0)->flags, 0);
	assert_int_equal(lww_trust_at(t, 1)->flags, LWW_PEER_RO);
	assert_ptr_equal(lww_trust_find_pk(t, b.pk), lww_trust_at(t, 1));
	assert_ptr_equal(lww_trust_find_node(t, lww_node_id(a.pk)),
	                 lww_trust_at(t, 0));
	assert_null(lww_trust_find_node(t, 12345));
	assert_null(lww_trust_at(t, 2));
	lww_trust_free(t);
	lww_trust_free(NULL);

	snprintf(text, sizeof(text), "alpha %s\nalpha %s\n", pa, pb);
	expect_trust_error(text, "line 2: name listed twice");
	snprintf(text, sizeof(text), "alpha %s\nbeta %s\n", pa, pa);
	expect_trust_error(text, "line 2: public key listed twice");
	expect_trust_error("# c\nalpha\n", "line 2: expected NAME PUBLICKEY");
	expect_trust_error("alpha notakey\n", "line 1: public key");
	snprintf(text, sizeof(text), "al/pha %s\n", pa);
	expect_trust_error(text, "line 1: name may only");
	snprintf(text, sizeof(text), "alpha %s rw\n", pa);
	expect_trust_error(text, "line 1: unknown flag");
	snprintf(text, sizeof(text), "alpha %s ro extra\n", pa);
	expect_trust_error(text, "line 1: too many fields");
	{
		char nul[] = "alpha\0x\n";
		char e2[64];
		assert_err(
		    lww_trust_parse(nul, sizeof(nul) - 1, &t, e2, sizeof(e2)),
		    LWW_ESYNTAX);
	}
	/* An empty file is a valid, empty trust set. */
	assert_ok(lww_trust_parse("", 0, &t, err, sizeof(err)));
	assert_int_equal(lww_trust_count(t), 0);
	lww_trust_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seal_open),
	    cmocka_unit_test(test_tampering_is_refused),
	    cmocka_unit_test(test_untrusted_and_impersonation),
	    cmocka_unit_test(test_node_id_and_text),
	    cmocka_unit_test(test_key_files),
	    cmocka_unit_test(test_trust_file),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
