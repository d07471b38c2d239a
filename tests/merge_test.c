/* merge_test.c - the convergence property against a tiny reference model.
 *
 * Each schedule draws random writes to a few keys (small stamp ranges, so
 * equal stamps with different contents happen), then delivers them to
 * three real stores, each in its own random order, with duplicates, in
 * random transaction sizes. Every store must then hold, for every key,
 * exactly the model's winner (the maximum under the total order), and the
 * three digest roots must be equal. The seed is printed on failure;
 * LWW_MERGE_SEED and LWW_MERGE_SCHEDULES reproduce or extend a run. */
#include <inttypes.h>
#include <sodium.h>

#include "testutil.h"

#include "digest.h"
#include "err.h"
#include "store.h"
#include "ref_order.h"

#define NSTORES 3
#define MAXOPS  12
#define MAXKEYS 4

static uint64_t g_seed;
static int g_schedule;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fail_msg("%s failed; reproduce with "                  \
			         "LWW_MERGE_SEED=%" PRIu64 " (schedule %d)",   \
			         #cond, g_seed, g_schedule);                   \
		}                                                              \
	} while (0)

typedef struct op {
	char key[24];
	lww_entry e;
} op;

static const char *const vals[] = {"", "a", "b", "ab", "ba"};

static int
setup(void **state)
{
	(void) state;
	return sodium_init() < 0 ? -1 : 0;
}

static uint64_t
env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	return (v && *v) ? strtoull(v, NULL, 10) : def;
}

static void
deliver(lww_store *s, op *ops, int n, uint64_t *rng)
{
	int order[2 * MAXOPS], m = 0;

	/* Every op once, some twice, shuffled (Fisher-Yates). */
	for (int i = 0; i < n; i++) {
		order[m++] = i;
		if (tu_below(rng, 3) == 0) {
			order[m++] = i;
		}
	}
	for (int i = m - 1; i > 0; i--) {
		int j = (int) tu_below(rng, (uint64_t) i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < m;) {
		int len = 1 + (int) tu_below(rng, 4);
		lww_txn *t;
		CHECK(lww_store_begin(s, &t) == LWW_OK);
		for (; len > 0 && i < m; len--, i++) {
			CHECK(lww_txn_apply(t, &ops[order[i]].e, NULL) ==
			      LWW_OK);
		}
		CHECK(lww_txn_commit(t) == LWW_OK);
	}
}

static void
test_random_schedules_converge(void **state)
{
	uint64_t schedules = env_u64("LWW_MERGE_SCHEDULES", 10000);
	char *dirs[NSTORES];
	lww_store *st[NSTORES];
	lww_store_opts o = {.nosync = 1};
	lww_buf vb = LWW_BUF_INIT;
	(void) state;

	g_seed = env_u64("LWW_MERGE_SEED", (uint64_t) time(NULL));
	printf("merge: %" PRIu64 " schedules, seed %" PRIu64 "\n", schedules,
	       g_seed);
	for (int i = 0; i < NSTORES; i++) {
		dirs[i] = tu_tmpdir();
		assert_ok(lww_store_open(dirs[i], &o, &st[i]));
	}
	for (g_schedule = 0; (uint64_t) g_schedule < schedules; g_schedule++) {
		uint64_t rng =
		    g_seed * 0x9E3779B97F4A7C15u + (uint64_t) g_schedule + 1;
		int nkeys = 1 + (int) tu_below(&rng, MAXKEYS);
		int nops = 1 + (int) tu_below(&rng, MAXOPS);
		op ops[MAXOPS];
		const lww_entry *model[MAXKEYS] = {NULL};

		for (int i = 0; i < nops; i++) {
			int k = (int) tu_below(&rng, (uint64_t) nkeys);
			const char *v = vals[tu_below(&rng, 5)];
			snprintf(ops[i].key, sizeof(ops[i].key), "s%d/k%d",
			         g_schedule, k);
			ops[i].e = (lww_entry){(const uint8_t *) ops[i].key,
			                       strlen(ops[i].key),
			                       (const uint8_t *) v,
			                       strlen(v),
			                       1 + tu_below(&rng, 3),
			                       1 + tu_below(&rng, 2),
			                       0};
			if (tu_below(&rng, 4) == 0) {
				ops[i].e.flags = LWW_ENTRY_TOMBSTONE;
				ops[i].e.val = NULL;
				ops[i].e.vlen = 0;
			}
			/* The model: the maximum under the total order. */
			if (model[k] == NULL ||
			    ref_order_wins(&ops[i].e, model[k])) {
				model[k] = &ops[i].e;
			}
		}
		for (int s = 0; s < NSTORES; s++) {
			deliver(st[s], ops, nops, &rng);
		}
		for (int k = 0; k < nkeys; k++) {
			char key[24];
			snprintf(key, sizeof(key), "s%d/k%d", g_schedule, k);
			for (int s = 0; s < NSTORES; s++) {
				lww_entry got;
				lww_err rv =
				    lww_store_get(st[s], (const uint8_t *) key,
				                  strlen(key), &vb, &got);
				if (model[k] == NULL) {
					CHECK(rv == LWW_ENOTFOUND);
					continue;
				}
				CHECK(rv == LWW_OK);
				got.key = model[k]->key;
				CHECK(ref_order_cmp(&got, model[k]) == 0);
				CHECK(got.flags == model[k]->flags);
			}
		}
		if (g_schedule % 1000 == 999 ||
		    (uint64_t) g_schedule == schedules - 1) {
			lww_digest r0, r;
			CHECK(lww_store_digest(st[0], 0, 0, &r0) == LWW_OK);
			for (int s = 1; s < NSTORES; s++) {
				CHECK(lww_store_digest(st[s], 0, 0, &r) ==
				      LWW_OK);
				CHECK(memcmp(r.h, r0.h, LWW_DIGEST_BYTES) == 0);
			}
		}
	}
	lww_buf_fini(&vb);
	for (int i = 0; i < NSTORES; i++) {
		lww_store_close(st[i]);
		tu_rmdir(dirs[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random_schedules_converge),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
