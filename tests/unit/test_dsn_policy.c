/* What the sender asked (RFC 3461) decides what the end of an attempt
 * reports (daemon/attempt.c's policy): a failure only for NOTIFY empty
 * or with FAILURE, a relayed notice for NOTIFY=SUCCESS through a relay
 * without DSN, a delay warning only for NOTIFY empty or with DELAY;
 * and every local failure's reason opens with its exact code. */
#include "unit.h"
#include "../../common/dsn.h"
#include "../../common/util.h"
#include "../../daemon/attempt.h"

static struct config conf;

static void make(struct attempt *a, const char *sender, const unsigned *notify, size_t n)
{
	static const char *const addr[] = { "a@x", "b@x", "c@x", "d@x" };
	memset(a, 0, sizeof *a);
	a->fd = -1;
	a->conf = &conf;
	snprintf(a->id, sizeof a->id, "m1");
	envelope_init(&a->env);
	a->env.sender = xstrdup(sender);
	a->env.arrival = now_real();
	for (size_t i = 0; i < n; i++) {
		envelope_add_rcpt(&a->env, addr[i]);
		a->env.rcpt[i].notify = notify[i];
	}
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

/* A failure is reported for NOTIFY not given or with FAILURE, never
 * for NEVER or a NOTIFY without FAILURE; it is counted either way. */
static void failure_report_follows_notify(void **state)
{
	(void)state;
	static const struct { unsigned notify; bool report; } c[] = {
		{ 0, true },
		{ NOTIFY_FAILURE, true },
		{ NOTIFY_FAILURE | NOTIFY_SUCCESS, true },
		{ NOTIFY_NEVER, false },
		{ NOTIFY_SUCCESS, false },
		{ NOTIFY_DELAY, false },
		{ NOTIFY_SUCCESS | NOTIFY_DELAY, false },
	};
	for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
		struct attempt a;
		struct attempt_tally t;
		make(&a, "s@x", &c[k].notify, 1);
		set_result(&a, 0, OUT_BOUNCED, "550 5.1.1 no");
		attempt_settle(&a, now_real(), &t);
		assert_int_equal(t.bounced, 1);
		if (t.bouncing != c[k].report)
			fail_msg("NOTIFY %#x: report %d", c[k].notify, t.bouncing);
		attempt_free(&a);
	}
}

/* A recipient the relay took: a relayed notice is due for NOTIFY with
 * SUCCESS on a session without DSN, never with DSN (the relay reports)
 * nor to the null sender. */
static void relayed_notice_due(void **state)
{
	(void)state;
	static const struct { unsigned notify, ext; const char *sender; bool due; } c[] = {
		{ NOTIFY_SUCCESS, 0, "s@x", true },
		{ NOTIFY_SUCCESS | NOTIFY_FAILURE, EXT_8BITMIME, "s@x", true },
		{ NOTIFY_SUCCESS, EXT_DSN, "s@x", false },
		{ NOTIFY_FAILURE | NOTIFY_SUCCESS, EXT_DSN, "s@x", false },
		{ NOTIFY_FAILURE, 0, "s@x", false },
		{ 0, 0, "s@x", false },
		{ NOTIFY_SUCCESS, 0, "", false },
	};
	for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
		struct attempt a;
		struct attempt_tally t;
		make(&a, c[k].sender, &c[k].notify, 1);
		assert_true(attempt_fits(&a, c[k].ext, 0));	/* the session's extensions */
		set_result(&a, 0, OUT_SENT, "250 2.0.0 ok");
		attempt_settle(&a, now_real(), &t);
		assert_int_equal(t.sent, 1);
		if (t.bouncing != c[k].due)
			fail_msg("case %zu: relayed notice due %d", k, t.bouncing);
		attempt_free(&a);
	}
}

/* The delay warning counts only pending recipients that let it go. */
static void delay_warning_follows_notify(void **state)
{
	(void)state;
	static const struct { unsigned notify[2]; unsigned warnable; } c[] = {
		{ { 0, 0 }, 2 },
		{ { NOTIFY_DELAY, NOTIFY_FAILURE }, 1 },
		{ { NOTIFY_FAILURE, NOTIFY_SUCCESS }, 0 },
		{ { NOTIFY_NEVER, NOTIFY_DELAY | NOTIFY_SUCCESS }, 1 },
	};
	for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
		struct attempt a;
		struct attempt_tally t;
		make(&a, "s@x", c[k].notify, 2);
		set_result(&a, 0, OUT_DEFERRED, "451 4.7.1 later");
		attempt_settle(&a, now_real(), &t);	/* b@x: not attempted */
		assert_int_equal(t.pending, 2);
		assert_int_equal(t.warnable, c[k].warnable);
		attempt_free(&a);
	}
}

static void status_of_reason(const char *why, enum dsn_action act, const char *want)
{
	char st[16];
	dsn_status_of(why, act, st);
	assert_string_equal(st, want);
}

/* Local failures carry their exact codes to the report's Status
 * (RFC 3463, RFC 6531), expiry X.4.7 of class 4. */
static void local_reasons_have_codes(void **state)
{
	(void)state;
	static const unsigned none[1] = { 0 };
	struct attempt a;
	struct attempt_tally t;
	make(&a, "s@x", none, 1);
	a.size = 9000;
	assert_false(attempt_fits(&a, EXT_SIZE, 4000));
	status_of_reason(a.res[0].why, DSN_FAILED, "5.3.4");
	assert_string_equal(a.res[0].why, "5.3.4 message size 9000 exceeds the upstream's limit of 4000");
	attempt_free(&a);
	make(&a, "s@x", none, 1);
	a.env.flags = ENV_SMTPUTF8;
	assert_false(attempt_fits(&a, EXT_8BITMIME, 0));
	status_of_reason(a.res[0].why, DSN_FAILED, "5.6.7");
	attempt_free(&a);
	make(&a, "s@x", none, 1);
	a.env.flags = ENV_8BITMIME;
	assert_false(attempt_fits(&a, EXT_SMTPUTF8, 0));
	status_of_reason(a.res[0].why, DSN_FAILED, "5.6.3");
	attempt_free(&a);
	make(&a, "s@x", none, 1);
	a.env.arrival = now_real() - 6 * 86400.0;
	set_result(&a, 0, OUT_DEFERRED, "451 4.7.1 greylisted");
	attempt_settle(&a, now_real(), &t);
	assert_int_equal(a.res[0].state, OUT_BOUNCED);
	assert_string_equal(a.res[0].why, "4.4.7 message expired after 5d in the queue: 451 4.7.1 greylisted");
	status_of_reason(a.res[0].why, DSN_FAILED, "4.4.7");
	attempt_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(failure_report_follows_notify, setup),
		cmocka_unit_test_setup(relayed_notice_due, setup),
		cmocka_unit_test_setup(delay_warning_follows_notify, setup),
		cmocka_unit_test_setup(local_reasons_have_codes, setup),
	};
	return cmocka_run_group_tests_name("dsn_policy", tests, NULL, NULL);
}
