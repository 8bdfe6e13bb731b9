/* Address syntax, SMTP path parsing and [aliases]/[senders] rewriting. */
#include "unit.h"
#include "../../common/address.h"
#include "../../common/rewrite.h"
#include "../../common/config.h"

static void valid_addresses(void **state)
{
	(void)state;
	const char *ok[] = { "a@b.example", "root", "first.last+tag@sub.example.org",
			     "\"john doe\"@example.org", "\"a\\\"b\"@example.org", "user@[192.0.2.1]",
			     "user@[IPv6:2001:db8::1]", "jörg@bücher.example", "o'brien@example.org",
			     "x@a-b.example", "postmaster" };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (addr_check(ok[i], NULL) != 0)
			fail_msg("rejected %s", ok[i]);
}

static void invalid_addresses(void **state)
{
	(void)state;
	char longlocal[80], longaddr[300];
	memset(longlocal, 'a', 65); strcpy(longlocal + 65, "@x.example");
	memset(longaddr, 'a', 60); longaddr[60] = '@';
	for (int i = 61; i < 290; i += 10) memcpy(longaddr + i, "abcdefghi.", 10);
	strcpy(longaddr + 291, "example");
	const char *bad[] = { "", "a b@example.org", "a@b@c", "@example.org", "a@", ".a@example.org",
			      "a.@example.org", "a..b@example.org", "a@-x.example", "a@x-.example",
			      "a@x..example", "a\r\n@example.org", "a@exa\nmple.org", "<a@b.example>",
			      "a@b.example>", "\"unterminated@example.org", "a@[1.2.3.4", "tab\there@x.example",
			      "a@ex ample.org", longlocal, longaddr, "a@[1 2]" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct err e;
		if (addr_check(bad[i], &e) == 0)
			fail_msg("accepted bad address #%zu '%s'", i, bad[i]);
	}
}

static void paths(void **state)
{
	(void)state;
	char out[300];
	const char *params;
	struct err e;
	assert_int_equal(smtp_path_parse("<a@b.example>", false, out, sizeof out, &params, &e), 0);
	assert_string_equal(out, "a@b.example");
	assert_string_equal(params, "");
	assert_int_equal(smtp_path_parse(" <a@b.example> SIZE=100 BODY=8BITMIME", false, out, sizeof out, &params, &e), 0);
	assert_string_equal(out, "a@b.example");
	assert_string_equal(params, "SIZE=100 BODY=8BITMIME");
	assert_int_equal(smtp_path_parse("<>", true, out, sizeof out, &params, &e), 0);
	assert_string_equal(out, "");
	assert_int_equal(smtp_path_parse("<>", false, out, sizeof out, &params, &e), -1);
	assert_int_equal(smtp_path_parse("<@relay.example,@r2.example:u@d.example>", false, out, sizeof out, &params, &e), 0);
	assert_string_equal(out, "u@d.example");
	assert_int_equal(smtp_path_parse("a@b.example", false, out, sizeof out, &params, &e), 0);
	assert_string_equal(out, "a@b.example");
	assert_int_equal(smtp_path_parse("<\"x>y\"@b.example>", false, out, sizeof out, &params, &e), 0);
	assert_string_equal(out, "\"x>y\"@b.example");
	const char *bad[] = { "<a@b.example", "<a@b.example>junk", "<a b@c.example>", "<a@b.example\r>",
			      "<@nocolon>", "<a@@b>" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (smtp_path_parse(bad[i], true, out, sizeof out, &params, &e) == 0)
			fail_msg("accepted path '%s'", bad[i]);
}

static struct config *conf(void)
{
	FILE *f = fopen("/tmp/outbox-unit-addr.conf", "w");
	fputs("[address]\ndomain = host.example\n[aliases]\nroot = admin@example.org, ops\n"
	      "[senders]\n* = server1@example.org\nwww-data = web@example.org\n", f);
	fclose(f);
	struct buf errors;
	buf_init(&errors);
	struct config *c = config_load("/tmp/outbox-unit-addr.conf", 0, &errors);
	if (!c)
		fail_msg("%s", errors.data);
	buf_free(&errors);
	remove("/tmp/outbox-unit-addr.conf");
	return c;
}

static void collect(const char *a, void *arg)
{
	char *out = arg;
	strcat(out, a);
	strcat(out, ";");
}

static void rewriting(void **state)
{
	(void)state;
	struct config *c = conf();
	char *s;
	s = sender_rewrite(c, NULL, "www-data"); assert_string_equal(s, "web@example.org"); free(s);
	s = sender_rewrite(c, NULL, "alice"); assert_string_equal(s, "server1@example.org"); free(s);
	s = sender_rewrite(c, "root", "alice"); assert_string_equal(s, "server1@example.org"); free(s);
	s = sender_rewrite(c, "me@else.example", "alice"); assert_string_equal(s, "me@else.example"); free(s);
	s = sender_rewrite(c, "", "alice"); assert_string_equal(s, ""); free(s);
	char out[512] = "";
	struct err e;
	assert_int_equal(rcpt_expand(c, "root", collect, out, &e), 0);
	assert_string_equal(out, "admin@example.org;ops@host.example;");
	out[0] = '\0';
	assert_int_equal(rcpt_expand(c, "ROOT", collect, out, &e), 0);
	assert_string_equal(out, "admin@example.org;ops@host.example;");
	out[0] = '\0';
	assert_int_equal(rcpt_expand(c, "bob", collect, out, &e), 0);
	assert_string_equal(out, "bob@host.example;");
	out[0] = '\0';
	assert_int_equal(rcpt_expand(c, "root@elsewhere.example", collect, out, &e), 0);
	assert_string_equal(out, "root@elsewhere.example;");
	config_free(c);
}

static struct config *conf_text(const char *text, struct buf *errors)
{
	FILE *f = fopen("/tmp/outbox-unit-alias.conf", "w");
	fputs(text, f);
	fclose(f);
	struct config *c = config_load("/tmp/outbox-unit-alias.conf", CONF_CLIENT, errors);
	remove("/tmp/outbox-unit-alias.conf");
	return c;
}

/* Aliases of aliases are followed; a loop or too deep a chain is a
 * configuration error naming it. */
static void alias_chains(void **state)
{
	(void)state;
	struct buf errors;
	struct err e;
	char out[512] = "";
	buf_init(&errors);
	struct config *c = conf_text("[address]\ndomain = host.example\n[aliases]\n"
				     "root = ops, boss@example.org\nops = alice, bob@example.org\n"
				     "alice = alice@example.net\n", &errors);
	if (!c)
		fail_msg("%s", errors.data);
	assert_int_equal(rcpt_expand(c, "root", collect, out, &e), 0);
	assert_string_equal(out, "alice@example.net;bob@example.org;boss@example.org;");
	config_free(c);
	c = conf_text("[aliases]\nroot = ops\nops = admin, root\n", &errors);
	assert_null(c);
	assert_non_null(strstr(errors.data, "alias loop: root -> ops -> root"));
	buf_reset(&errors);
	c = conf_text("[aliases]\na1 = a2\na2 = a3\na3 = a4\na4 = a5\na5 = a6\na6 = a7\n"
		      "a7 = a8\na8 = a9\na9 = end@example.org\n", &errors);
	assert_null(c);
	assert_non_null(strstr(errors.data, "nested deeper than 8"));
	buf_free(&errors);
}

static void utf8(void **state)
{
	(void)state;
	assert_true(addr_needs_utf8("jörg@example.org"));
	assert_false(addr_needs_utf8("jorg@example.org"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_addresses), cmocka_unit_test(invalid_addresses),
		cmocka_unit_test(paths), cmocka_unit_test(rewriting), cmocka_unit_test(alias_chains), cmocka_unit_test(utf8),
	};
	return cmocka_run_group_tests_name("address", tests, NULL, NULL);
}
