/* Queue IDs (common/qid.c): unique across threads, and their text form
 * and value round-trip. */
#include "unit.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "../../common/queue.h"

/* IDs from several threads at once: every one different. */
#define ID_THREADS 4
#define IDS_EACH 20000
struct id_maker {
	struct store *s;
	uint64_t *out;
};

static void *make_ids(void *arg)
{
	struct id_maker *m = arg;
	char id[QID_LEN + 1];
	for (int i = 0; i < IDS_EACH; i++) {
		store_new_id(m->s, id);
		m->out[i] = qid_value(id);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void ids_unique(void **state)
{
	(void)state;
	struct store s = { 0 };
	uint64_t *all = calloc(ID_THREADS * IDS_EACH, sizeof *all);
	pthread_t t[ID_THREADS];
	struct id_maker m[ID_THREADS];
	for (int i = 0; i < ID_THREADS; i++) {
		m[i] = (struct id_maker){ &s, all + i * IDS_EACH };
		assert_int_equal(pthread_create(&t[i], NULL, make_ids, &m[i]), 0);
	}
	for (int i = 0; i < ID_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < ID_THREADS; i++)	/* each thread's in order */
		for (int j = 1; j < IDS_EACH; j++)
			assert_true(m[i].out[j] > m[i].out[j - 1]);
	qsort(all, ID_THREADS * IDS_EACH, sizeof *all, cmp_u64);
	for (int i = 1; i < ID_THREADS * IDS_EACH; i++)
		assert_true(all[i] != all[i - 1]);
	free(all);
	/* seeded past a change an hour ahead (the clock went back while
	 * outboxd was down): new IDs still come after it */
	struct timespec later = { .tv_sec = time(NULL) + 3600, .tv_nsec = 0 };
	char id[QID_LEN + 1], seed[QID_LEN + 1];
	qid_seed(&s, &later);
	snprintf(seed, sizeof seed, "%08lX", (unsigned long)later.tv_sec);
	store_new_id(&s, id);
	assert_true(strncmp(id, seed, 8) >= 0);
	assert_false(qid_is_bounce(qid_value(id)));
}

static void ids(void **state)
{
	(void)state;
	struct store s = { 0 };
	char a[QID_LEN + 1], b[QID_LEN + 1];
	store_new_id(&s, a);
	store_new_id(&s, b);
	assert_true(qid_valid(a));
	assert_string_not_equal(a, b);
	assert_false(qid_valid("../etc/passwd"));
	assert_false(qid_valid("0123456789abcdef"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ids), cmocka_unit_test(ids_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
