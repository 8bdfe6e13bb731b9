/* Header parsing, address lists (sendmail -t) and generated fields. */
#include "unit.h"
#include "../../common/headers.h"

static void parse(void **state)
{
	(void)state;
	const char *m = "From: a@b.example\r\nSubject: long\r\n folded\r\nTo: c@d.example\r\n\r\nbody: not a header\r\n";
	struct header_list h;
	headers_parse(m, strlen(m), &h);
	assert_int_equal(h.n, 3);
	assert_true(header_is(&h.v[1], "subject"));
	assert_int_equal(h.v[1].len, strlen("Subject: long\r\n folded\r\n"));
	assert_string_equal(m + h.body_off, "body: not a header\r\n");
	assert_non_null(headers_find(&h, "TO"));
	assert_null(headers_find(&h, "Cc"));
	headers_free(&h);
	/* no header at all: all body */
	m = "just text\r\n";
	headers_parse(m, strlen(m), &h);
	assert_int_equal(h.n, 0);
	assert_int_equal(h.body_off, 0);
	headers_free(&h);
	/* headers without an empty line */
	m = "Subject: x\r\n";
	headers_parse(m, strlen(m), &h);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.body_off, strlen(m));
	headers_free(&h);
}

static void collect(const char *a, void *arg)
{
	strcat(arg, a);
	strcat(arg, ";");
}

static void address_lists(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } cases[] = {
		{ "a@b.example", "a@b.example;" },
		{ " a@b.example , c@d.example ", "a@b.example;c@d.example;" },
		{ "\"Doe, John\" <jd@x.example>, Ann <ann@y.example>", "jd@x.example;ann@y.example;" },
		{ "jd@x.example (John, the (nested) one)", "jd@x.example;" },
		{ "friends: a@b.example, c@d.example;, e@f.example", "a@b.example;c@d.example;e@f.example;" },
		{ "undisclosed-recipients:;", "" },
		{ "\"quoted local\"@x.example", "\"quoted local\"@x.example;" },
		{ "Name\r\n <folded@x.example>", "folded@x.example;" },
		{ "<@route.example:u@x.example>", "u@x.example;" },
		{ "root", "root;" },
		/* RFC 2047 encoded words in display names and group names */
		{ "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <jm@x.example>", "jm@x.example;" },
		{ "=?utf-8?B?w5Zyc3RlZA==?= <o@x.example>, =?ISO-8859-1?Q?Andr=E9?= <a@y.example>",
		  "o@x.example;a@y.example;" },
		{ "\"=?utf-8?q?Doe,_John?=\" <jd@x.example>", "jd@x.example;" },
		{ "=?utf-8?q?Die_Gruppe?=: a@b.example, =?utf-8?q?B=C3=A4r?= <c@d.example>;",
		  "a@b.example;c@d.example;" },
		{ "=?utf-8?q?x?= <e@f.example> (=?utf-8?q?a_comment?=)", "e@f.example;" },
		/* quoted local parts with specials, comments everywhere */
		{ "\"a,b<c>\"@x.example", "\"a,b<c>\"@x.example;" },
		{ "\"esc\\\"aped\"@x.example", "\"esc\\\"aped\"@x.example;" },
		{ "(c1) a@b.example (c2), (c3) <c@d.example> (c4)", "a@b.example;c@d.example;" },
		{ ",, a@b.example ,,", "a@b.example;" },
		{ "", "" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[512] = "";
		struct err e;
		if (addrlist_parse(cases[i].in, strlen(cases[i].in), collect, out, &e) < 0)
			fail_msg("case %zu: %s", i, e.msg);
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("case %zu: got '%s'", i, out);
	}
	const char *bad[] = { "John Doe", "<a@b.example", "\"open@x.example", "(open a@b.example",
			      "a b@c.example", "a@b.example>", "<a<b@c.example>>", "Name <>",
			      "a@b.example, <>", "x@y.example (unclosed \\)", "\"a\\",
			      "<a@b.example\r\nBcc: evil@x.example>", "a@b.example\x01",
			      "=?utf-8?q?no_address?=", "a@b.example, Ann <ann@>",
			      "friends: a@b.example, bad address@x.example;" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char out[512] = "";
		struct err e;
		if (addrlist_parse(bad[i], strlen(bad[i]), collect, out, &e) == 0)
			fail_msg("accepted '%s' as '%s'", bad[i], out);
	}
}

static void generated(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b);
	header_add_from(&b, "Cron \"Daemon\"\r\nBcc: evil@x.example", "root@h.example");
	assert_string_equal(b.data, "From: \"Cron \\\"Daemon\\\"Bcc: evil@x.example\" <root@h.example>\r\n");
	buf_reset(&b);
	header_add_from(&b, "Jörg", "j@h.example");
	assert_string_equal(b.data, "From: =?UTF-8?Q?J=C3=B6rg?= <j@h.example>\r\n");
	buf_reset(&b);
	header_add_from(&b, NULL, "j@h.example");
	assert_string_equal(b.data, "From: <j@h.example>\r\n");
	buf_reset(&b);
	header_add_message_id(&b, "h.example");
	assert_int_equal(strncmp(b.data, "Message-ID: <", 13), 0);
	assert_non_null(strstr(b.data, "@h.example>\r\n"));
	buf_reset(&b);
	header_add_date(&b, 0);
	assert_int_equal(strncmp(b.data, "Date: ", 6), 0);
	assert_non_null(strstr(b.data, " 1970 ") ? b.data : strstr(b.data, " 1969 "));
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse), cmocka_unit_test(address_lists), cmocka_unit_test(generated),
	};
	return cmocka_run_group_tests_name("headers", tests, NULL, NULL);
}
