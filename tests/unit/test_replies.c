/* A provider's whole reply (smtp_reply_line: every line, joined,
 * bounded, printable) and the tables that read it: quota replies and
 * the hints for a refused login (smtp_auth_hint). */
#include "unit.h"
#include "../../common/escape.h"
#include "../../common/smtp.h"
#include "../../common/smtp_client.h"

/* in (a whole reply, CRLF lines) as smtp_reply_line gives it within n octets. */
static const char *joined(const char *in, char *out, size_t n)
{
	struct smtp_reply r;
	struct err e;
	size_t used = 0;
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_parse(in, strlen(in), &r, &used, &e), 1);
	assert_int_equal(used, strlen(in));
	smtp_reply_line(&r, out, n);
	smtp_reply_free(&r);
	return out;
}

static void every_line_is_kept(void **state)
{
	(void)state;
	char out[SMTP_REPLY_SHOWN + 1];
	/* Exim's reply to BDAT LAST: its queue ID is on the last line */
	assert_string_equal(joined("250-472 byte chunk, total 472\r\n250 OK id=1abc-000123-XY\r\n", out, sizeof out),
			    "250 472 byte chunk, total 472 OK id=1abc-000123-XY");
	/* spaces around a line's text are not the server's words */
	assert_string_equal(joined("250-  472 byte chunk \r\n250 \t OK id=1 \r\n", out, sizeof out),
			    "250 472 byte chunk OK id=1");
	/* Gmail: the enhanced code repeated on each line is said once */
	assert_string_equal(joined("535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
				   "535 5.7.8  https://support.google.com/mail/?p=BadCredentials x1 - gsmtp\r\n",
				   out, sizeof out),
			    "535 5.7.8 Username and Password not accepted. For more information, go to "
			    "https://support.google.com/mail/?p=BadCredentials x1 - gsmtp");
	assert_string_equal(joined("550-5.1.1 The email account that you tried to reach does not exist.\r\n"
				   "550-5.1.1 Please try double-checking the recipient's email address.\r\n"
				   "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser - gsmtp\r\n", out, sizeof out),
			    "550 5.1.1 The email account that you tried to reach does not exist. Please try "
			    "double-checking the recipient's email address. "
			    "https://support.google.com/mail/?p=NoSuchUser - gsmtp");
	/* another enhanced code on a later line is the server's word: it stays */
	assert_string_equal(joined("550-5.1.1 no such user\r\n550 5.7.1 and policy\r\n", out, sizeof out),
			    "550 5.1.1 no such user 5.7.1 and policy");
	/* empty lines and a bare code add no spaces */
	assert_string_equal(joined("250-\r\n250-first\r\n250\r\n", out, sizeof out), "250 first");
	assert_string_equal(joined("354\r\n", out, sizeof out), "354");
	/* no line of its own: nothing but the code */
	assert_string_equal(joined("451 4.7.1 Try later\r\n", out, sizeof out), "451 4.7.1 Try later");
}

/* Controls and malformed UTF-8 from the server are escaped, never passed. */
static void it_stays_printable(void **state)
{
	(void)state;
	char out[SMTP_REPLY_SHOWN + 1];
	assert_string_equal(joined("550-a\x1b[31mred\r\n550 b\rc\xff\r\n", out, sizeof out),
			    "550 a\\x1B[31mred b\\x0Dc\\xFF");
}

/* Over the bound: cut at a character boundary, "..." says so, and the
 * last line (the queue ID) is kept when it is short. */
static void it_is_bounded(void **state)
{
	(void)state;
	char out[SMTP_REPLY_SHOWN + 1];
	struct buf in;
	buf_init(&in);
	for (int i = 0; i < 40; i++)
		buf_printf(&in, "250-line %02d of a server that says a great deal about itself today\r\n", i);
	buf_adds(&in, "250 OK id=1abc-000123-XY\r\n");
	joined(in.data, out, sizeof out);
	assert_true(strlen(out) <= SMTP_REPLY_SHOWN);
	assert_true(strlen(out) > SMTP_REPLY_SHOWN - 20);
	assert_true(strncmp(out, "250 line 00 of", 14) == 0);
	assert_non_null(strstr(out, "... OK id=1abc-000123-XY"));
	assert_string_equal(out + strlen(out) - 20, "OK id=1abc-000123-XY");

	/* one long line of 2-octet characters: no half character before "..." */
	buf_reset(&in);
	buf_adds(&in, "550 ");
	for (int i = 0; i < 700; i++)
		buf_adds(&in, "\xc3\xa9");
	buf_adds(&in, "\r\n");
	for (size_t n = 40; n < 50; n++) {
		joined(in.data, out, n);
		size_t l = strlen(out);
		assert_true(l < n && l >= n - 4);
		assert_string_equal(out + l - 3, "...");
		assert_int_equal(esc_char_len((const unsigned char *)out, l), 1);	/* "5" */
		for (size_t i = 4; i < l - 3; i += 2)
			assert_int_equal(esc_char_len((const unsigned char *)out + i, l - 3 - i), 2);
	}
	/* escapes are never cut in half */
	buf_reset(&in);
	buf_adds(&in, "550 ");
	for (int i = 0; i < 300; i++)
		buf_adds(&in, "\x01");
	buf_adds(&in, "\r\n");
	for (size_t n = 40; n < 48; n++) {
		joined(in.data, out, n);
		size_t l = strlen(out);
		assert_string_equal(out + l - 3, "...");
		assert_true((l - 3 - 4) % 4 == 0);	/* whole "\x01"s after "550 " */
	}
	/* tiny buffers still hold a string */
	assert_string_equal(joined("250-abc\r\n250 def\r\n", out, 8), "250 ...");
	assert_string_equal(joined("250-abc\r\n250 def\r\n", out, 1), "");
	buf_free(&in);
}

/* The quota table sees every line: Microsoft may name the quota after
 * the first. */
static void quota_on_a_later_line(void **state)
{
	(void)state;
	char out[SMTP_REPLY_SHOWN + 1];
	joined("554-5.2.0 STOREDRV.Submission.Exception:\r\n"
	       "554 5.2.0 SubmissionQuotaExceededException; Failed to process message\r\n", out, sizeof out);
	assert_int_equal(smtp_quota_hold(554, out), 3600);
	assert_int_equal(smtp_quota_hold(554, "554 5.2.0 STOREDRV.Submission.Exception:"), 0);	/* line 1 alone */
}

/* The hint for a refused login, from the replies as the providers send
 * them (sources in smtp_client.c). */
static void auth_hints(void **state)
{
	(void)state;
	static const struct { const char *reply, *hint; } c[] = {
		{ "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
		  "[BM1P287CA0015.INDP287.PROD.OUTLOOK.COM]", "switch to OAuth2: outbox setup microsoft365" },
		{ "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
		  "Visit https://aka.ms/smtp_auth_disabled for more information.", "enable SMTP AUTH for the tenant" },
		{ "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security "
		  "defaults policy.", "basic authentication refused: switch to OAuth2" },
		{ "535 5.7.3 Authentication unsuccessful [BN3PR03CA0067.namprd03.prod.outlook.com]",
		  "enable Authenticated SMTP for the mailbox" },
		{ "534 5.7.9 Application-specific password required. Learn more at "
		  "https://support.google.com/mail/?p=InvalidSecondFactor z8 - gsmtp", "make an app password" },
		{ "534 5.7.14 <https://accounts.google.com/signin/continue?x> Please log in via your web browser "
		  "and then try again. Learn more at https://support.google.com/mail/answer/78754 - gsmtp",
		  "sign in to the account in a web browser" },
		{ "535 5.7.8 Username and Password not accepted. For more information, go to "
		  "https://support.google.com/mail/?p=BadCredentials x1 - gsmtp", "check user and password_file" },
		{ "535 5.7.8 Authentication credentials invalid", "check user and password_file" },
		{ "530 5.7.0 Authentication Required. Learn more at https://support.google.com/mail/?p=WantAuthError",
		  "the server wants a login" },
		/* XOAUTH2: the token refused (334 and its error, then 535), not the password */
		{ "535 5.7.8 Username and Password not accepted. (token error: {\"status\":\"400\",\"schemes\":"
		  "\"Bearer\",\"scope\":\"https://mail.google.com/\"})", "the access token was refused: outbox oauth2 login" },
		/* unknown, or not about the login: no hint */
		{ "530 5.7.0 Must issue a STARTTLS command first.", NULL },
		{ "535 5.7.1 something else", NULL },
		{ "535 5.7.1390 not the same code", NULL },
		{ "550 5.1.1 <a@r.example>: user unknown", NULL },
		{ "connect to smtp.example:587: Connection refused", NULL },
		{ "", NULL },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		const char *h = smtp_auth_hint(c[i].reply);
		if (!c[i].hint != !h || (h && strncmp(h, c[i].hint, strlen(c[i].hint)) != 0))
			fail_msg("%s: got %s, want %s", c[i].reply, h ? h : "(none)", c[i].hint ? c[i].hint : "(none)");
	}
	assert_null(smtp_auth_hint(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_line_is_kept), cmocka_unit_test(it_stays_printable),
		cmocka_unit_test(it_is_bounded), cmocka_unit_test(quota_on_a_later_line),
		cmocka_unit_test(auth_hints),
	};
	return cmocka_run_group_tests_name("replies", tests, NULL, NULL);
}
