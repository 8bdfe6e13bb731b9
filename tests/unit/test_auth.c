/* test_auth.c - SASL offers, the mechanism choice and initial responses,
 * and splitting password_command. */
#include "unit.h"
#include "../../common/auth.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(offers_and_choice),
		cmocka_unit_test(initial_responses),
		cmocka_unit_test(command_splitting),
	};
	return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
