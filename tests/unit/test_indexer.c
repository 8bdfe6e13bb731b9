/* test_indexer.c - the start-up walk (daemon/indexer.h), alone on a real
 * spool and a real uv loop: its end belongs to the loop.  The thread
 * finishing is not the walk finishing: until the loop has taken the last
 * batch (and logged the end), indexer_stopped() says no, so a stop cannot
 * close the indexer's handle between the two and lose that turn. */
#include "unit.h"

#include <unistd.h>
#include <uv.h>

#include "../../common/queue.h"
#include "../../common/util.h"
#include "../../daemon/index.h"
#include "../../daemon/indexer.h"
#include "../../daemon/scheduler.h"
#include "spool_env.h"

/* The scheduler's hooks: nothing is due in these tests (an empty spool). */
static void h_submit(void *arg, const char *id, unsigned tries, uint32_t next_try)
{
	(void)arg, (void)id, (void)tries, (void)next_try;
	fail_msg("nothing to deliver");
}
static bool h_cancel(void *arg, const char *id)
{
	(void)arg, (void)id;
	return false;
}
static size_t h_workers(void *arg)
{
	(void)arg;
	return 1;
}
static void h_none(void *arg)
{
	(void)arg;
}
static void h_later(void *arg, qref r, enum sched_action a)
{
	(void)arg, (void)r, (void)a;
}
static void h_bounce(void *arg, qref r, bool warn)
{
	(void)arg, (void)r, (void)warn;
}

struct told {
	int indexed, stopped;
};
static void on_indexed(void *arg)
{
	((struct told *)arg)->indexed++;
}
static void on_stopped(void *arg)
{
	((struct told *)arg)->stopped++;
}

static void walk_end_is_the_loops(bool stop_first)
{
	char dir[64];
	make_spool(dir, "/tmp/outbox-unit-ix-");
	struct store st;
	struct err e;
	assert_int_equal(store_open(&st, dir, true, &e), 0);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct queue_index q;
	qindex_init(&q);
	struct sched_hooks hooks = { NULL, h_submit, h_cancel, h_workers, h_none, h_later, h_bounce };
	struct scheduler s;
	sched_init(&s, &loop, &q, &hooks);
	struct told told = { 0 };
	struct indexer_env env = { &loop, &st, &q, &s, &told, on_indexed, on_stopped };
	struct indexer *x = NULL;
	assert_int_equal(indexer_start(&x, &env, &e), 0);
	if (stop_first)
		indexer_stop(x);
	/* the thread walks an empty spool and ends; the loop has not run */
	for (int i = 0; i < 10000 && !indexer_walk_ended(x); i++)
		usleep(1000);
	assert_true(indexer_walk_ended(x));
	assert_false(indexer_stopped(x));
	assert_int_equal(told.stopped, 0);
	for (int i = 0; i < 10000 && !told.stopped; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_int_equal(told.stopped, 1);
	assert_int_equal(told.indexed, stop_first ? 0 : 1);	/* a stopped walk is no index */
	assert_true(indexer_stopped(x));
	indexer_close(x);
	sched_stop(&s);
	sched_close(&s);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	indexer_free(x);
	sched_free(&s);
	qindex_free(&q);
	store_close(&st);
	remove_spool(dir);
}

static void end_taken_by_the_loop(void **state)
{
	(void)state;
	walk_end_is_the_loops(false);
}

static void stopped_walk_taken_by_the_loop(void **state)
{
	(void)state;
	walk_end_is_the_loops(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(end_taken_by_the_loop),
		cmocka_unit_test(stopped_walk_taken_by_the_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
