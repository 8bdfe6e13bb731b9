/* The RFC 3461 parameter syntax (common/dsnparam.c): xtext, NOTIFY, RET,
 * ENVID, ORCPT, their limits, and the duplicate rule of the MAIL and
 * RCPT parameters. */
#include "unit.h"
#include "../../common/dsnparam.h"

static void xtext(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b);
	assert_int_equal(xtext_decode("a+2Bb+3Dc+20d", 13, &b), 0);
	assert_string_equal(b.data, "a+b=c d");
	buf_reset(&b);
	xtext_encode("a+b=c d\x7f\x01~", 10, &b);
	assert_string_equal(b.data, "a+2Bb+3Dc+20d+7F+01~");
	static const char *bad[] = {
		"a b", "a+", "a+2", "+2b", "+G0", "a=b", "+0A", "+0D", "+7F", "+80", "+00", "\x80", "\t",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		buf_reset(&b);
		if (xtext_valid(bad[i], strlen(bad[i])))
			fail_msg("xtext %s taken", bad[i]);
		assert_int_equal(xtext_decode(bad[i], strlen(bad[i]), &b), -1);
		assert_int_equal(b.len, 0);
	}
	assert_true(xtext_valid("", 0));
	/* every printable octet survives encode then decode */
	char all[95];
	for (int c = 0x20; c <= 0x7e; c++)
		all[c - 0x20] = (char)c;
	buf_reset(&b);
	xtext_encode(all, sizeof all, &b);
	assert_true(xtext_valid(b.data, b.len));
	struct buf d;
	buf_init(&d);
	assert_int_equal(xtext_decode(b.data, b.len, &d), 0);
	assert_memory_equal(d.data, all, sizeof all);
	buf_free(&d);
	buf_free(&b);
}

static void notify(void **state)
{
	(void)state;
	char t[DSN_NOTIFY_TEXT_MAX];
	assert_int_equal(dsn_notify_parse("NEVER"), NOTIFY_NEVER);
	assert_int_equal(dsn_notify_parse("never"), NOTIFY_NEVER);
	assert_int_equal(dsn_notify_parse("success"), NOTIFY_SUCCESS);
	assert_int_equal(dsn_notify_parse("Delay,Failure,SUCCESS"),
			 NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY);
	static const char *bad[] = {
		"", "NEVER,SUCCESS", "SUCCESS,NEVER", "SUCCESS,", ",SUCCESS", "SUCCESS,,FAILURE",
		"SUCCESS,SUCCESS", "SUCCES", "SUCCESSX", "SUCCESS FAILURE", "NEVERX",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (dsn_notify_parse(bad[i]))
			fail_msg("NOTIFY=%s taken", bad[i]);
	assert_string_equal(dsn_notify_format(NOTIFY_DELAY | NOTIFY_SUCCESS, t), "SUCCESS,DELAY");
	assert_string_equal(dsn_notify_format(NOTIFY_NEVER, t), "NEVER");
	assert_string_equal(dsn_notify_format(0, t), "");
	assert_true(dsn_notify_valid(NOTIFY_FAILURE | NOTIFY_DELAY));
	assert_false(dsn_notify_valid(NOTIFY_NEVER | NOTIFY_DELAY));
	assert_false(dsn_notify_valid(0));
	assert_false(dsn_notify_valid(0x10));
	/* every valid mask formats to a text that parses back to it */
	for (unsigned m = 0; m < 16; m++)
		if (dsn_notify_valid(m))
			assert_int_equal(dsn_notify_parse(dsn_notify_format(m, t)), m);
}

static void ret_envid_orcpt(void **state)
{
	(void)state;
	assert_int_equal(dsn_ret_parse("full"), RET_FULL);
	assert_int_equal(dsn_ret_parse("HDRS"), RET_HDRS);
	assert_int_equal(dsn_ret_parse("HEADERS"), RET_UNSET);
	assert_int_equal(dsn_ret_parse(""), RET_UNSET);
	assert_string_equal(dsn_ret_name(RET_HDRS), "HDRS");
	char v[DSN_ORCPT_MAX + 2];
	memset(v, 'x', sizeof v);
	v[DSN_ENVID_VALUE_MAX] = '\0';
	assert_true(dsn_envid_valid(v));	/* "ENVID=" + 94: 100, the limit */
	v[DSN_ENVID_VALUE_MAX] = 'x';
	v[DSN_ENVID_VALUE_MAX + 1] = '\0';
	assert_false(dsn_envid_valid(v));
	assert_false(dsn_envid_valid(""));
	assert_false(dsn_envid_valid("a b"));
	assert_true(dsn_orcpt_valid("rfc822;a@b.example"));
	assert_true(dsn_orcpt_valid("RFC822;a+2Bb@c"));
	assert_true(dsn_orcpt_valid("utf-8;a\\x{E9}@b"));	/* RFC 6533 utf-8-addr-xtext */
	static const char *bad[] = {
		"rfc822", "rfc822;", ";a@b", "rfc 822;a@b", "rfc822;a b", "rfc822;a+0Ab",
		"rfc_822;a@b", "rfc822;\xc3\xa9@b",	/* raw UTF-8 (utf-8-addr-unitext): refused */
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (dsn_orcpt_valid(bad[i]))
			fail_msg("ORCPT=%s taken", bad[i]);
	memcpy(v, "rfc822;", 7);
	memset(v + 7, 'a', sizeof v - 7);
	v[DSN_ORCPT_VALUE_MAX] = '\0';
	assert_true(dsn_orcpt_valid(v));
	v[DSN_ORCPT_VALUE_MAX] = 'a';
	v[DSN_ORCPT_VALUE_MAX + 1] = '\0';
	assert_false(dsn_orcpt_valid(v));
}

static void params(void **state)
{
	(void)state;
	struct dsn_mail_req m = { .ret = RET_UNSET };
	struct dsn_rcpt_req r = { 0 };
	const char *why = NULL;
	assert_int_equal(dsn_mail_param("SIZE=10", &m, &why), DSN_NOT_OURS);
	assert_int_equal(dsn_mail_param("ret=hdrs", &m, &why), DSN_TAKEN);
	assert_int_equal(m.ret, RET_HDRS);
	assert_int_equal(dsn_mail_param("RET=FULL", &m, &why), DSN_BAD);
	assert_string_equal(why, "Duplicate RET parameter");
	assert_int_equal(dsn_mail_param("ENVID=a b", &m, &why), DSN_BAD);
	assert_string_equal(why, "Bad ENVID parameter syntax");
	assert_int_equal(dsn_mail_param("envid=Q+2B1", &m, &why), DSN_TAKEN);
	assert_string_equal(m.envid, "Q+2B1");	/* kept as it came */
	assert_int_equal(dsn_mail_param("ENVID=x", &m, &why), DSN_BAD);
	assert_string_equal(why, "Duplicate ENVID parameter");
	dsn_mail_req_free(&m);
	assert_null(m.envid);
	assert_int_equal(dsn_mail_param("RET=", &m, &why), DSN_BAD);
	assert_string_equal(why, "Bad RET parameter syntax");

	assert_int_equal(dsn_rcpt_param("NOTIFYX=1", &r, &why), DSN_NOT_OURS);
	assert_int_equal(dsn_rcpt_param("NOTIFY=NEVER,DELAY", &r, &why), DSN_BAD);
	assert_string_equal(why, "Bad NOTIFY parameter syntax");
	assert_int_equal(dsn_rcpt_param("notify=failure,delay", &r, &why), DSN_TAKEN);
	assert_int_equal(r.notify, NOTIFY_FAILURE | NOTIFY_DELAY);
	assert_int_equal(dsn_rcpt_param("NOTIFY=NEVER", &r, &why), DSN_BAD);
	assert_string_equal(why, "Duplicate NOTIFY parameter");
	assert_int_equal(dsn_rcpt_param("ORCPT=rfc822", &r, &why), DSN_BAD);
	assert_string_equal(why, "Bad ORCPT parameter syntax");
	assert_int_equal(dsn_rcpt_param("orcpt=rfc822;a@b", &r, &why), DSN_TAKEN);
	assert_string_equal(r.orcpt, "rfc822;a@b");
	assert_int_equal(dsn_rcpt_param("ORCPT=rfc822;c@d", &r, &why), DSN_BAD);
	assert_string_equal(why, "Duplicate ORCPT parameter");
	dsn_rcpt_req_free(&r);
	assert_int_equal(r.notify, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(xtext), cmocka_unit_test(notify), cmocka_unit_test(ret_envid_orcpt),
		cmocka_unit_test(params),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
