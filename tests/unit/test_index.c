/* test_index.c - the daemon's in-memory index (daemon/index.h): lookup,
 * the counts by state kept without recounting, and the chains by
 * submitting uid that make a user's request cost what that user owns. */
#include "unit.h"

#include "../../daemon/index.h"

/* The counts the index keeps, against a count of every live entry. */
static void assert_counts(const struct queue_index *q)
{
	size_t n[QE_NSTATES] = { 0 }, total = 0;
	for (qref r = 1; r < qindex_end(q); r++) {
		if (!qindex_live(q, r))
			continue;
		n[qindex_get(q, r)->state]++;
		total++;
	}
	assert_int_equal(total, q->count);
	for (int s = 0; s < QE_NSTATES; s++)
		assert_int_equal(n[s], qindex_count_by_state(q, (enum qstate)s));
	struct qcounts c = qindex_counts(q);
	assert_int_equal(c.total, total);
	assert_int_equal(c.queued, n[QE_READY]);
	assert_int_equal(c.deferred, n[QE_DEFERRED]);
	assert_int_equal(c.held, n[QE_HELD]);
	assert_int_equal(c.active, n[QE_ACTIVE] + n[QE_ACTIVE_HOLD] + n[QE_ACTIVE_DELETE] + n[QE_BOUNCING]);
	/* qindex_next visits the same entries, in the array's order */
	size_t seen = 0;
	qref last = 0;
	for (qref r = qindex_next(q, 0); r; r = qindex_next(q, r)) {
		assert_true(qindex_live(q, r) && r > last);
		last = r;
		seen++;
	}
	assert_int_equal(seen, total);
}

/* uid's chain, walked both ways, holds exactly the live entries of uid. */
static void assert_chain(const struct queue_index *q, uint32_t uid)
{
	size_t walked = 0, want = 0;
	qref prev = 0;
	for (qref r = qindex_first_of(q, uid); r; r = qindex_next_of(q, r)) {
		assert_true(qindex_live(q, r));
		assert_int_equal(qindex_get(q, r)->uid, uid);
		assert_int_equal(qindex_get(q, r)->uprev, prev);
		prev = r;
		walked++;
	}
	for (qref r = 1; r < qindex_end(q); r++)
		want += qindex_live(q, r) && qindex_get(q, r)->uid == uid;
	assert_int_equal(walked, want);
	assert_int_equal(qindex_count_of(q, uid), want);
}

static void add_find_remove(void **state)
{
	struct queue_index q;
	bool added;
	(void)state;
	qindex_init(&q);
	for (uint64_t id = 1; id <= 5000; id++)
		assert_true(qindex_add(&q, id * 7919, &added) && added);
	assert_true(qindex_add(&q, 7919, &added) && !added);
	assert_int_equal(q.count, 5000);
	for (uint64_t id = 1; id <= 5000; id += 2)
		qindex_remove(&q, qindex_find(&q, id * 7919));
	for (uint64_t id = 1; id <= 5000; id++)
		assert_int_equal(qindex_find(&q, id * 7919) != 0, id % 2 == 0);
	assert_counts(&q);
	qindex_free(&q);
}

static void counts_follow_every_change(void **state)
{
	struct queue_index q;
	bool added;
	(void)state;
	qindex_init(&q);
	unsigned seed = 1;
	for (int step = 0; step < 20000; step++) {
		seed = seed * 1103515245 + 12345;
		uint64_t id = (seed >> 8) % 600 + 1;
		qref r = qindex_find(&q, id);
		if (!r)
			qindex_add(&q, id, &added);
		else if (seed % 5 == 0)
			qindex_remove(&q, r);
		else
			qindex_set_state(&q, r, (uint8_t)((seed >> 4) % QE_NSTATES));
	}
	assert_counts(&q);
	qindex_free(&q);
}

static void chains_by_uid(void **state)
{
	struct queue_index q;
	bool added;
	(void)state;
	qindex_init(&q);
	for (uint64_t id = 1; id <= 3000; id++) {
		qref r = qindex_add(&q, id, &added);
		if (id % 3)	/* every third stays unknown, as a message found at the start */
			qindex_set_uid(&q, r, (uint32_t)(1000 + id % 100));	/* 100 users: the uid table grows */
	}
	assert_int_equal(qindex_count_of(&q, QUID_UNKNOWN), 1000);
	for (uint64_t id = 1; id <= 3000; id += 7)	/* from the head, the middle, the tail */
		qindex_remove(&q, qindex_find(&q, id));
	for (uint64_t id = 3; id <= 3000; id += 3) {	/* the owners read */
		qref r = qindex_find(&q, id);
		if (r)
			qindex_set_uid(&q, r, QUID_NONE);
	}
	qref again = qindex_add(&q, 1, &added);	/* a freed entry used again */
	assert_true(added);
	qindex_set_uid(&q, again, 1001);
	qindex_set_uid(&q, again, 1001);	/* the same: nothing moves */
	assert_int_equal(qindex_count_of(&q, QUID_UNKNOWN), 0);
	for (uint32_t uid = 1000; uid < 1100; uid++)
		assert_chain(&q, uid);
	assert_chain(&q, QUID_NONE);
	assert_int_equal(qindex_first_of(&q, 4242), 0);
	assert_counts(&q);
	qindex_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_find_remove),
		cmocka_unit_test(counts_follow_every_change),
		cmocka_unit_test(chains_by_uid),
	};
	return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
