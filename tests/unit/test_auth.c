/* test_auth.c - SASL offers, the mechanism choice and initial responses,
 * splitting password_command, and running it within its time limit. */
#include "unit.h"
#include <signal.h>
#include <sys/time.h>
#include "../../common/auth.h"
#include "../../common/util.h"

static void offers_and_choice(void **state)
{
	(void)state;
	unsigned gmail = sasl_parse_offer("LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH");
	assert_int_equal(gmail, SASL_PLAIN | SASL_LOGIN | SASL_XOAUTH2 | SASL_OAUTHBEARER);
	assert_int_equal(sasl_parse_offer("cram-md5 login"), SASL_LOGIN);
	/* auto: password mechanisms first, PLAIN before LOGIN */
	assert_int_equal(sasl_choose(AUTH_AUTO, gmail), SASL_PLAIN);
	assert_int_equal(sasl_choose(AUTH_AUTO, SASL_LOGIN | SASL_XOAUTH2), SASL_LOGIN);
	/* a server that takes only tokens: OAUTHBEARER, else XOAUTH2 */
	assert_int_equal(sasl_choose(AUTH_AUTO, SASL_XOAUTH2 | SASL_OAUTHBEARER), SASL_OAUTHBEARER);
	assert_int_equal(sasl_choose(AUTH_AUTO, SASL_XOAUTH2), SASL_XOAUTH2);
	assert_int_equal(sasl_choose(AUTH_AUTO, 0), 0);
	/* named: that one or nothing */
	assert_int_equal(sasl_choose(AUTH_XOAUTH2, gmail), SASL_XOAUTH2);
	assert_int_equal(sasl_choose(AUTH_LOGIN, SASL_PLAIN), 0);
	assert_string_equal(sasl_name(SASL_OAUTHBEARER), "OAUTHBEARER");
}

static void initial_responses(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b);
	sasl_initial_response(SASL_PLAIN, "user", "pass", "h", 587, &b);
	assert_string_equal(b.data, "AHVzZXIAcGFzcw==");	/* \0user\0pass */
	buf_reset(&b);
	sasl_initial_response(SASL_XOAUTH2, "u@x", "tok", "h", 587, &b);
	assert_string_equal(b.data, "dXNlcj11QHgBYXV0aD1CZWFyZXIgdG9rAQE="); /* user=u@x^Aauth=Bearer tok^A^A */
	buf_free(&b);
}

static void command_splitting(void **state)
{
	(void)state;
	char **argv = split_command("/usr/bin/pass show 'mail/gmail token' \"a b\" c\\ d");
	assert_non_null(argv);
	assert_string_equal(argv[0], "/usr/bin/pass");
	assert_string_equal(argv[2], "mail/gmail token");
	assert_string_equal(argv[3], "a b");
	assert_string_equal(argv[4], "c d");
	assert_null(argv[5]);
	free_argv(argv);
	assert_null(split_command("echo 'unbalanced"));
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal interrupting the wait for output (EINTR) must not turn it
 * into a read that blocks for as long as the command likes. */
static void command_timeout_holds_across_a_signal(void **state)
{
	(void)state;
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval once = { .it_value = { .tv_usec = 200000 } };
	setitimer(ITIMER_REAL, &once, NULL);
	char *argv[] = { "sh", "-c", "sleep 20", NULL }, *out = NULL;
	struct err e;
	double t0 = now_mono();
	assert_int_equal(run_capture(argv, 1, &out, &e), -1);
	assert_non_null(strstr(e.msg, "timed out after 1 s"));
	assert_true(now_mono() - t0 < 10);	/* not the command's 20 s */
	signal(SIGALRM, SIG_DFL);
}

/* A command that closes its output and lives on is killed at the limit:
 * its exit is not waited for without one. */
static void command_that_lingers_is_killed(void **state)
{
	(void)state;
	char *argv[] = { "sh", "-c", "echo token; exec >&-; sleep 20", NULL }, *out = NULL;
	struct err e;
	double t0 = now_mono();
	assert_int_equal(run_capture(argv, 1, &out, &e), -1);
	assert_non_null(strstr(e.msg, "timed out after 1 s"));
	assert_true(now_mono() - t0 < 10);
	/* one that exits at once is not made to wait */
	char *quick[] = { "sh", "-c", "echo ya29.token", NULL };
	assert_int_equal(run_capture(quick, 5, &out, &e), 0);
	assert_string_equal(out, "ya29.token\n");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(offers_and_choice),
		cmocka_unit_test(initial_responses),
		cmocka_unit_test(command_splitting),
		cmocka_unit_test(command_timeout_holds_across_a_signal),
		cmocka_unit_test(command_that_lingers_is_killed),
	};
	return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
