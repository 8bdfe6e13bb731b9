/* The attempt's outcome rules (daemon/attempt.c), as values: what a
 * reply means for a recipient, the first result stays, a session's
 * failure never bounces, what the session cannot take bounces at once,
 * and how an attempt ends (not attempted, expired, whose failure gets a
 * report). */
#include "unit.h"
#include "../../common/util.h"
#include "../../daemon/attempt.h"

static struct config conf;

/* An attempt of a message from sender to n recipients, arrived at arrival. */
static void make(struct attempt *a, const char *sender, const char *const *rcpt, size_t n, double arrival)
{
	memset(a, 0, sizeof *a);
	a->fd = -1;
	a->conf = &conf;
	snprintf(a->id, sizeof a->id, "m1");
	envelope_init(&a->env);
	a->env.sender = xstrdup(sender);
	a->env.arrival = arrival;
	for (size_t i = 0; i < n; i++)
		envelope_add_rcpt(&a->env, rcpt[i]);
	a->res = xcalloc(n, sizeof *a->res);
}

static int setup(void **state)
{
	(void)state;
	memset(&conf, 0, sizeof conf);
	conf.queue.lifetime = 5 * 86400;
	conf.address.postmaster = (char *)"postmaster@example.org";
	return 0;
}

static void reply_meanings(void **state)
{
	(void)state;
	assert_int_equal(outcome_of(ST_RCPT, 250), OUT_SENT);
	assert_int_equal(outcome_of(ST_DATA, 354), OUT_SENT);
	assert_int_equal(outcome_of(ST_RCPT, 451), OUT_DEFERRED);
	assert_int_equal(outcome_of(ST_RCPT, 550), OUT_BOUNCED);
	assert_int_equal(outcome_of(ST_DOT, 554), OUT_BOUNCED);
	/* our own syntax or sequence, a closing server: never the message's */
	assert_int_equal(outcome_of(ST_MAIL, 503), OUT_DEFERRED);
	assert_int_equal(outcome_of(ST_RCPT, 500), OUT_DEFERRED);
	assert_int_equal(outcome_of(ST_DOT, 421), OUT_DEFERRED);
	/* no reply at all, or a failure before any transaction */
	assert_int_equal(outcome_of(ST_DOT, 0), OUT_DEFERRED);
	assert_int_equal(outcome_of(ST_AUTH, 535), OUT_DEFERRED);
}

static void first_result_stays(void **state)
{
	(void)state;
	static const char *const r[] = { "a@x", "b@x", "c@x" };
	struct attempt a;
	make(&a, "s@x", r, 3, now_real());
	a.env.rcpt[2].status = RCPT_SENT;	/* done in an earlier attempt */
	set_result(&a, 0, OUT_DEFERRED, "451 later");
	set_result(&a, 0, OUT_SENT, "250 ok");
	set_all(&a, OUT_BOUNCED, "554 no");
	assert_int_equal(a.res[0].state, OUT_DEFERRED);
	assert_string_equal(a.res[0].why, "451 later");
	assert_int_equal(a.res[1].state, OUT_BOUNCED);
	assert_int_equal(a.res[2].state, OUT_NONE);	/* never touched again */
	attempt_free(&a);
}

static void session_failure_defers(void **state)
{
	(void)state;
	static const char *const r[] = { "a@x", "b@x" };
	struct smtp_client s;
	struct attempt a;
	smtp_client_init(&s);
	make(&a, "s@x", r, 2, now_real());
	smtp_fail(&s, ST_DOT, 0, "lost connection with the server");
	fail_from_session(&a, &s);
	assert_int_equal(a.res[0].state, OUT_DEFERRED);
	assert_string_equal(a.res[1].why, "lost connection with the server");
	attempt_free(&a);
	/* a permanent reply recorded as the failure does bounce */
	make(&a, "s@x", r, 2, now_real());
	smtp_fail(&s, ST_RCPT, 550, "550 5.1.1 unknown");
	fail_from_session(&a, &s);
	assert_int_equal(a.res[0].state, OUT_BOUNCED);
	attempt_free(&a);
	smtp_client_free(&s);
}

static void what_the_session_cannot_take(void **state)
{
	(void)state;
	static const char *const r[] = { "a@x" };
	struct attempt a;
	make(&a, "s@x", r, 1, now_real());
	a.size = 2000;
	assert_true(attempt_fits(&a, EXT_SIZE, 2000));
	assert_true(attempt_fits(&a, 0, 1000));	/* no SIZE offered: not known */
	assert_int_equal(a.res[0].state, OUT_NONE);
	assert_false(attempt_fits(&a, EXT_SIZE, 1000));
	assert_int_equal(a.res[0].state, OUT_BOUNCED);
	assert_non_null(strstr(a.res[0].why, "exceeds the upstream's limit of 1000"));
	attempt_free(&a);
	make(&a, "s@x", r, 1, now_real());
	a.env.flags = ENV_8BITMIME;
	assert_false(attempt_fits(&a, EXT_SMTPUTF8, 0));
	assert_int_equal(a.res[0].state, OUT_BOUNCED);
	assert_non_null(strstr(a.res[0].why, "8BITMIME"));
	attempt_free(&a);
	make(&a, "s@x", r, 1, now_real());
	a.env.flags = ENV_SMTPUTF8;
	assert_false(attempt_fits(&a, EXT_8BITMIME, 0));
	assert_non_null(strstr(a.res[0].why, "SMTPUTF8"));
	attempt_free(&a);
}

static void settle(void **state)
{
	(void)state;
	static const char *const r[] = { "a@x", "b@x", "c@x", "d@x" };
	struct attempt a;
	struct attempt_tally t;
	double now = now_real();
	make(&a, "s@x", r, 4, now - 60);
	set_result(&a, 0, OUT_SENT, "250 ok");
	set_result(&a, 1, OUT_DEFERRED, "451 later");
	set_result(&a, 2, OUT_BOUNCED, "550 unknown");
	attempt_settle(&a, now, &t);	/* d@x: no reply this time */
	assert_int_equal(a.res[3].state, OUT_DEFERRED);
	assert_string_equal(a.res[3].why, "not attempted");
	assert_int_equal(t.sent, 1);
	assert_int_equal(t.deferred, 2);
	assert_int_equal(t.pending, 2);
	assert_int_equal(t.bounced, 1);
	assert_true(t.bouncing);
	attempt_free(&a);
	/* past the lifetime a deferral bounces, its reason kept */
	make(&a, "s@x", r, 1, now - 6 * 86400.0);
	set_result(&a, 0, OUT_DEFERRED, "451 later");
	attempt_settle(&a, now, &t);
	assert_int_equal(a.res[0].state, OUT_BOUNCED);
	assert_non_null(strstr(a.res[0].why, "message expired after"));
	assert_non_null(strstr(a.res[0].why, "451 later"));
	assert_int_equal(t.pending, 0);
	assert_true(t.bouncing);
	attempt_free(&a);
}

/* A report's failure gets a report only to the postmaster, and never
 * when it was to the postmaster: no loop. */
static void null_sender_reports(void **state)
{
	(void)state;
	static const char *const r[] = { "a@x", "Postmaster@example.org" };
	struct attempt a;
	struct attempt_tally t;
	make(&a, "", r, 2, now_real());
	set_result(&a, 1, OUT_BOUNCED, "550 no");
	set_result(&a, 0, OUT_SENT, "250 ok");
	attempt_settle(&a, now_real(), &t);
	assert_false(t.bouncing);
	assert_int_equal(t.bounced, 1);
	attempt_free(&a);
	make(&a, "", r, 2, now_real());
	set_result(&a, 0, OUT_BOUNCED, "550 no");
	attempt_settle(&a, now_real(), &t);
	assert_true(t.bouncing);
	attempt_free(&a);
	conf.address.postmaster = (char *)"";	/* no postmaster: no report at all */
	make(&a, "", r, 2, now_real());
	set_result(&a, 0, OUT_BOUNCED, "550 no");
	attempt_settle(&a, now_real(), &t);
	assert_false(t.bouncing);
	attempt_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(reply_meanings, setup),
		cmocka_unit_test_setup(first_result_stays, setup),
		cmocka_unit_test_setup(session_failure_defers, setup),
		cmocka_unit_test_setup(what_the_session_cannot_take, setup),
		cmocka_unit_test_setup(settle, setup),
		cmocka_unit_test_setup(null_sender_reports, setup),
	};
	return cmocka_run_group_tests_name("attempt", tests, NULL, NULL);
}
