/* test_scheduler.c - the scheduler's operations (daemon/scheduler.h),
 * alone, against a fake pool: what it hands out and in which order (two
 * lanes taking turns, the cap per worker, reports held back while one
 * is half made), when a deferred message comes due, the operator
 * actions' answers, and what a worker's result does.  Every test
 * asserts on what the fake pool and hooks received. */
#include "unit.h"

#include <math.h>
#include <uv.h>

#include "../../common/queue.h"
#include "../../common/util.h"
#include "../../daemon/index.h"
#include "../../daemon/pool.h"
#include "../../daemon/scheduler.h"

#define MAXCALLS 512

/* What the scheduler told the pool and the other hooks. */
struct fake {
	size_t workers;
	bool cancel_ok;		/* the job was not started: pool_cancel takes it back */
	uint64_t submitted[MAXCALLS];
	unsigned tries[MAXCALLS];
	uint32_t next_try[MAXCALLS];
	size_t nsub;
	uint64_t cancelled[MAXCALLS];
	size_t ncancel;
	size_t flushed;
	qref later[MAXCALLS];
	enum sched_action later_a[MAXCALLS];
	size_t nlater;
	qref bounced[MAXCALLS];
	bool bounce_warn[MAXCALLS];
	size_t nbounce;
};

static void f_submit(void *arg, const char *id, unsigned tries, uint32_t next_try)
{
	struct fake *f = arg;
	assert_true(f->nsub < MAXCALLS);
	f->tries[f->nsub] = tries;
	f->next_try[f->nsub] = next_try;
	f->submitted[f->nsub++] = qid_value(id);
}

static bool f_cancel(void *arg, const char *id)
{
	struct fake *f = arg;
	f->cancelled[f->ncancel++] = qid_value(id);
	return f->cancel_ok;
}

static size_t f_workers(void *arg)
{
	return ((struct fake *)arg)->workers;
}

static void f_flush(void *arg)
{
	((struct fake *)arg)->flushed++;
}

static void f_later(void *arg, qref r, enum sched_action a)
{
	struct fake *f = arg;
	f->later_a[f->nlater] = a;
	f->later[f->nlater++] = r;
}

static void f_bounce(void *arg, qref r, bool warn)
{
	struct fake *f = arg;
	f->bounce_warn[f->nbounce] = warn;
	f->bounced[f->nbounce++] = r;
}

struct fixture {
	uv_loop_t loop;
	struct queue_index q;
	struct scheduler s;
	struct fake f;
	struct sched_hooks hooks;
};

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof *x);
	assert_non_null(x);
	uv_loop_init(&x->loop);
	qindex_init(&x->q);
	x->hooks = (struct sched_hooks){ &x->f, f_submit, f_cancel, f_workers, f_flush, f_later, f_bounce };
	x->f.workers = 1;
	sched_init(&x->s, &x->loop, &x->q, &x->hooks);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;
	sched_stop(&x->s);
	sched_close(&x->s);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	sched_free(&x->s);
	qindex_free(&x->q);
	free(x);
	return 0;
}

#define REPORT(n) (0xF000000000000000ULL | (n))

static qref add(struct fixture *x, uint64_t id)
{
	bool added;
	qref r = qindex_add(&x->q, id, &added);
	assert_true(r && added);
	return r;
}

/* A message just committed. */
static qref add_new(struct fixture *x, uint64_t id)
{
	qref r = add(x, id);
	sched_new(&x->s, r);
	return r;
}

/* A message the start-up walk found, due at next_try. */
static qref add_found(struct fixture *x, uint64_t id, uint32_t next_try, uint16_t tries)
{
	qref r = add(x, id);
	qindex_get(&x->q, r)->next_try = next_try;
	qindex_get(&x->q, r)->tries = tries;
	sched_found(&x->s, r);
	return r;
}

/* A worker's outcome for id. */
static void result(struct fixture *x, uint64_t id, bool done, double next_try, unsigned tries)
{
	struct delivery_result res = { .done = done, .next_try = next_try, .tries = (uint16_t)tries };
	qid_format(id, res.id);
	sched_result(&x->s, &res);
}

static uint8_t state_of(struct fixture *x, uint64_t id)
{
	qref r = qindex_find(&x->q, id);
	assert_true(r);
	return qindex_get(&x->q, r)->state;
}

static void new_mail_takes_turns_with_backlog(void **state)
{
	struct fixture *x = *state;
	uint32_t past = (uint32_t)now_real() - 60;
	for (uint64_t id = 1; id <= 100; id++)
		add_found(x, id, past, 1);
	sched_dispatch(&x->s);
	/* one worker: SCHED_INFLIGHT_PER_WORKER out, the backlog in its order */
	assert_int_equal(x->f.nsub, SCHED_INFLIGHT_PER_WORKER);
	for (size_t i = 0; i < x->f.nsub; i++)
		assert_int_equal(x->f.submitted[i], i + 1);
	assert_int_equal(x->f.tries[0], 1);
	assert_int_equal(x->f.next_try[0], past);
	for (uint64_t id = 1001; id <= 1003; id++)
		add_new(x, id);
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, SCHED_INFLIGHT_PER_WORKER);	/* at the cap: nothing more */
	for (uint64_t id = 1; id <= 4; id++)
		result(x, id, true, 0, 0);
	sched_dispatch(&x->s);
	/* new mail is not queued behind the 60 waiting: the lanes take turns */
	uint64_t want[] = { 1001, 41, 1002, 42 };
	assert_int_equal(x->f.nsub, SCHED_INFLIGHT_PER_WORKER + 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(x->f.submitted[SCHED_INFLIGHT_PER_WORKER + i], want[i]);
	assert_int_equal(qindex_find(&x->q, 1), 0);	/* done: it left the index */
	assert_int_equal(qindex_count_by_state(&x->q, QE_ACTIVE), SCHED_INFLIGHT_PER_WORKER);
	assert_int_equal(qindex_count_by_state(&x->q, QE_READY), 100 - (SCHED_INFLIGHT_PER_WORKER + 2) + 1);
}

static void inflight_capped_per_worker(void **state)
{
	struct fixture *x = *state;
	x->f.workers = 0;	/* no pool yet: nothing is handed out */
	for (uint64_t id = 1; id <= 200; id++)
		add_new(x, id);
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 0);
	x->f.workers = 3;
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 3 * SCHED_INFLIGHT_PER_WORKER);
	result(x, 5, true, 0, 0);
	result(x, 6, false, now_real() + 3600, 1);
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 3 * SCHED_INFLIGHT_PER_WORKER + 2);
	sched_dispatch(&x->s);	/* again: still at the cap */
	assert_int_equal(x->f.nsub, 3 * SCHED_INFLIGHT_PER_WORKER + 2);
	assert_int_equal(x->s.inflight, 3 * SCHED_INFLIGHT_PER_WORKER);
	assert_int_equal(state_of(x, 6), QE_DEFERRED);
}

/* Deferred messages come due on the timer, earliest first. */
static void deferred_come_due_in_order(void **state)
{
	struct fixture *x = *state;
	double now = now_real();
	for (uint64_t id = 1; id <= 20; id++)
		add_new(x, id);
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 20);
	/* due in 10..200 ms, in an order not their IDs' */
	for (uint64_t id = 1; id <= 20; id++)
		result(x, id, false, now + 0.01 * (double)((id * 7) % 20 + 1), 2);
	assert_int_equal(qindex_count_by_state(&x->q, QE_DEFERRED), 20);
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 20);	/* not yet due */
	uv_run(&x->loop, UV_RUN_DEFAULT);	/* the timer fires until the heap is empty */
	assert_true(now_real() >= now + 0.2);
	assert_int_equal(x->f.nsub, 40);
	for (size_t i = 20; i < 40; i++) {
		uint64_t id = x->f.submitted[i];
		assert_int_equal((id * 7) % 20 + 1, i - 20 + 1);	/* earliest first */
		assert_int_equal(x->f.tries[i], 2);
		/* the name's second is rounded up */
		assert_int_equal(x->f.next_try[i], (uint32_t)ceil(now + 0.01 * (double)(i - 19)));
	}
}

static void found_later_waits_for_timer(void **state)
{
	struct fixture *x = *state;
	uint32_t later = (uint32_t)now_real() + 3600;
	add_found(x, 1, later, 3);
	add_found(x, 2, later - 1800, 3);
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 0);
	assert_true(uv_is_active((uv_handle_t *)&x->s.timer));
	assert_int_equal(sched_flush_all(&x->s), 2);	/* sendmail -q */
	assert_int_equal(x->f.flushed, 1);
	assert_int_equal(x->f.nsub, 2);
	assert_false(uv_is_active((uv_handle_t *)&x->s.timer));
	char name[QNAME_MAX], want[QNAME_MAX];
	sched_file_name(&x->s, qindex_find(&x->q, 1), name);	/* next_try stays: it names the file */
	qname_format(want, "0000000000000001", later, 3);
	assert_string_equal(name, want);
}

static void hold_release_ready(void **state)
{
	struct fixture *x = *state;
	x->f.workers = 0;
	qref r = add_new(x, 1);
	add_new(x, 2);
	assert_int_equal(sched_act(&x->s, r, SA_HOLD), SA_NOW);
	assert_int_equal(state_of(x, 1), QE_HELD);
	assert_int_equal(sched_act(&x->s, r, SA_HOLD), SA_UNCHANGED);
	assert_int_equal(sched_act(&x->s, r, SA_FLUSH), SA_UNCHANGED);
	x->f.workers = 1;
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 1);	/* the held one stays */
	assert_int_equal(x->f.submitted[0], 2);
	assert_int_equal(x->f.ncancel, 0);	/* it was not the pool's */
	assert_int_equal(sched_act(&x->s, r, SA_RELEASE), SA_NOW);
	sched_released(&x->s, r);	/* the caller renamed its file */
	assert_int_equal(x->f.nsub, 2);
	assert_int_equal(x->f.submitted[1], 1);
	assert_int_equal(sched_act(&x->s, r, SA_RELEASE), SA_UNCHANGED);
}

/* A job the pool has not started is taken back; one a worker has
 * waits for its attempt's end. */
static void hold_delete_active(void **state)
{
	struct fixture *x = *state;
	qref a = add_new(x, 1), b = add_new(x, 2), c = add_new(x, 3);
	sched_dispatch(&x->s);
	assert_int_equal(x->s.inflight, 3);
	x->f.cancel_ok = true;
	assert_int_equal(sched_act(&x->s, a, SA_HOLD), SA_NOW);
	assert_int_equal(x->f.ncancel, 1);
	assert_int_equal(x->f.cancelled[0], 1);
	assert_int_equal(x->s.inflight, 2);
	assert_int_equal(state_of(x, 1), QE_HELD);
	x->f.cancel_ok = false;	/* the workers have the others */
	assert_int_equal(sched_act(&x->s, b, SA_HOLD), SA_LATER);
	assert_int_equal(x->f.cancelled[1], 2);
	assert_int_equal(state_of(x, 2), QE_ACTIVE_HOLD);
	assert_int_equal(sched_act(&x->s, b, SA_HOLD), SA_UNCHANGED);
	assert_int_equal(sched_act(&x->s, b, SA_RELEASE), SA_UNCHANGED);	/* the hold had not happened */
	assert_int_equal(state_of(x, 2), QE_ACTIVE);
	assert_int_equal(sched_act(&x->s, b, SA_HOLD), SA_LATER);
	assert_int_equal(sched_act(&x->s, c, SA_DELETE), SA_LATER);
	assert_int_equal(sched_act(&x->s, c, SA_DELETE), SA_UNCHANGED);
	assert_int_equal(x->s.inflight, 2);
	assert_int_equal(x->f.nlater, 0);
	result(x, 2, false, now_real() + 60, 1);
	result(x, 3, false, now_real() + 60, 1);
	assert_int_equal(x->f.nlater, 2);	/* now the file's part */
	assert_int_equal(x->f.later[0], b);
	assert_int_equal(x->f.later_a[0], SA_HOLD);
	assert_int_equal(x->f.later[1], c);
	assert_int_equal(x->f.later_a[1], SA_DELETE);
	assert_int_equal(state_of(x, 2), QE_HELD);	/* out of the schedule meanwhile */
	assert_int_equal(state_of(x, 3), QE_HELD);
	assert_int_equal(x->s.nheap, 0);
	assert_int_equal(x->s.inflight, 0);
	sched_deleted(&x->s, c);
	assert_int_equal(qindex_find(&x->q, 3), 0);
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 3);	/* nothing handed out again */
}

static void flush_and_delete_deferred(void **state)
{
	struct fixture *x = *state;
	uint32_t later = (uint32_t)now_real() + 3600;
	qref a = add_found(x, 1, later, 1), b = add_found(x, 2, later + 1, 1);
	add_found(x, 3, later + 2, 1);
	assert_int_equal(sched_act(&x->s, b, SA_FLUSH), SA_NOW);
	assert_int_equal(x->f.nsub, 1);
	assert_int_equal(x->f.submitted[0], 2);
	assert_int_equal(sched_act(&x->s, b, SA_FLUSH), SA_UNCHANGED);	/* in flight */
	assert_int_equal(sched_act(&x->s, a, SA_DELETE), SA_NOW);	/* out of the heap */
	assert_int_equal(x->s.nheap, 1);
	assert_int_equal(state_of(x, 1), QE_HELD);
	assert_int_equal(x->f.ncancel, 0);
	sched_deleted(&x->s, a);
	assert_int_equal(sched_due_now(&x->s), 1);
	assert_int_equal(x->f.nsub, 2);
	assert_int_equal(x->f.submitted[1], 3);
	assert_int_equal(x->f.flushed, 0);	/* due now keeps the relays' holds */
}

/* A message whose report is being queued: every action waits. */
static void actions_busy_while_bouncing(void **state)
{
	struct fixture *x = *state;
	qref r = add_new(x, 1);
	sched_dispatch(&x->s);
	struct delivery_result res = { .bouncing = true, .next_try = now_real() + 60, .tries = 1 };
	qid_format(1, res.id);
	sched_result(&x->s, &res);
	assert_int_equal(x->f.nbounce, 1);
	assert_int_equal(x->f.bounced[0], r);
	assert_false(x->f.bounce_warn[0]);
	assert_int_equal(state_of(x, 1), QE_BOUNCING);
	enum sched_action all[] = { SA_HOLD, SA_RELEASE, SA_DELETE, SA_FLUSH };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(sched_act(&x->s, r, all[i]), SA_BUSY);
	assert_int_equal(x->f.ncancel, 0);
	sched_bounced(&x->s, r, true);	/* recipients pending: its next try */
	assert_int_equal(state_of(x, 1), QE_DEFERRED);
	assert_int_equal(sched_act(&x->s, r, SA_HOLD), SA_NOW);
}

/* No report goes out while a QE_BOUNCING message is unchecked or the
 * start-up walk runs (a crash may have left its earlier copy). */
static void reports_wait_for_unchecked(void **state)
{
	struct fixture *x = *state;
	uint32_t past = (uint32_t)now_real() - 10;
	sched_walking(&x->s, true);
	qref old = add(x, 1);
	qindex_set_state(&x->q, old, QE_BOUNCING);	/* the walk found a half-made report */
	sched_found(&x->s, old);
	assert_int_equal(x->f.nbounce, 1);	/* bounce.c finishes it */
	add_found(x, REPORT(7), past, 0);
	add_new(x, REPORT(8));
	add_new(x, 2);
	sched_dispatch(&x->s);
	assert_int_equal(x->f.nsub, 1);	/* the ordinary message only */
	assert_int_equal(x->f.submitted[0], 2);
	sched_walking(&x->s, false);
	assert_int_equal(x->f.nsub, 1);	/* one is still unchecked */
	sched_bounce_checked(&x->s);
	assert_int_equal(x->f.nsub, 3);
	assert_true(x->f.submitted[1] == REPORT(7) || x->f.submitted[1] == REPORT(8));
	assert_true(x->f.submitted[2] == REPORT(7) || x->f.submitted[2] == REPORT(8));
	assert_int_not_equal(x->f.submitted[1], x->f.submitted[2]);
	sched_bounced(&x->s, old, false);	/* no recipient pending: it left */
	assert_int_equal(qindex_find(&x->q, 1), 0);
	assert_int_equal(x->s.bouncing, 0);
}

static void result_done_deferred_warn(void **state)
{
	struct fixture *x = *state;
	qref a = add_new(x, 1), b = add_new(x, 2);
	add_new(x, 3);
	sched_dispatch(&x->s);
	double next = floor(now_real()) + 600.5;
	result(x, 1, false, next, 4);
	struct qentry *e = qindex_get(&x->q, a);
	assert_int_equal(e->state, QE_DEFERRED);
	assert_int_equal(e->tries, 4);
	assert_int_equal(e->next_try, (uint32_t)floor(next));
	assert_int_equal(e->frac, 128);
	assert_true(uv_is_active((uv_handle_t *)&x->s.timer));
	char name[QNAME_MAX], want[QNAME_MAX];
	sched_file_name(&x->s, a, name);
	qname_format(want, "0000000000000001", (uint32_t)floor(next) + 1, 4);	/* rounded up */
	assert_string_equal(name, want);
	struct delivery_result late = { .warn = true, .next_try = next, .tries = 5 };
	qid_format(2, late.id);
	sched_result(&x->s, &late);
	assert_int_equal(x->f.nbounce, 1);	/* a "still trying" report */
	assert_int_equal(x->f.bounced[0], b);
	assert_true(x->f.bounce_warn[0]);
	assert_int_equal(qindex_get(&x->q, b)->state, QE_BOUNCING);
	result(x, 3, true, 0, 0);
	assert_int_equal(qindex_find(&x->q, 3), 0);
	assert_int_equal(x->s.inflight, 0);
	assert_int_equal(x->q.count, 2);
	result(x, 99, true, 0, 0);	/* unknown (deleted meanwhile): ignored */
	assert_int_equal(x->q.count, 2);
}

static void nothing_after_stop(void **state)
{
	struct fixture *x = *state;
	add_found(x, 1, (uint32_t)now_real() + 3600, 1);
	sched_stop(&x->s);
	assert_false(uv_is_active((uv_handle_t *)&x->s.timer));
	add_new(x, 2);
	sched_dispatch(&x->s);
	assert_int_equal(sched_due_now(&x->s), 1);
	assert_int_equal(x->f.nsub, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(new_mail_takes_turns_with_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(inflight_capped_per_worker, setup, teardown),
		cmocka_unit_test_setup_teardown(deferred_come_due_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(found_later_waits_for_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(hold_release_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(hold_delete_active, setup, teardown),
		cmocka_unit_test_setup_teardown(flush_and_delete_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(actions_busy_while_bouncing, setup, teardown),
		cmocka_unit_test_setup_teardown(reports_wait_for_unchecked, setup, teardown),
		cmocka_unit_test_setup_teardown(result_done_deferred_warn, setup, teardown),
		cmocka_unit_test_setup_teardown(nothing_after_stop, setup, teardown),
	};
	return cmocka_run_group_tests_name("scheduler", tests, NULL, NULL);
}
