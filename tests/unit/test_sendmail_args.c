/* The sendmail command's argument parser (tool/sendmail_args.c): the
 * argument lists real programs send, every ignored flag, and malformed
 * lists (exit 64 naming the bad argument). */
#include "unit.h"
#include <sysexits.h>
#include "../../tool/sendmail_args.h"

#define MAXARGS 32

/* Parse a NULL-terminated list of arguments (argv[0] added). */
static int parse(struct sendmail_opts *o, const char **what, const char **arg, char **argv,
		 const char *const *args)
{
	int argc = 0;
	argv[argc++] = "sendmail";
	while (*args && argc < MAXARGS - 1)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	return sendmail_parse_args(argc, argv, o, what, arg);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void real_callers(void **state)
{
	(void)state;
	struct sendmail_opts o;
	const char *what, *arg;
	char *argv[MAXARGS];
	/* Debian cron */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root")), 0);
	assert_string_equal(o.fullname, "CronDaemon");
	assert_true(o.i);
	assert_false(o.t);
	assert_int_equal(o.nrcpt, 1);
	assert_string_equal(o.rcpt[0], "root");
	assert_int_equal(o.ignored, 2);
	/* PHP's mail() */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-t", "-i")), 0);
	assert_true(o.t && o.i);
	assert_int_equal(o.nrcpt, 0);
	/* mutt */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-oem", "-oi", "--", "a@x.example", "-b@y.example")), 0);
	assert_true(o.i);
	assert_int_equal(o.nrcpt, 2);
	assert_string_equal(o.rcpt[1], "-b@y.example");	/* after --, a recipient */
	/* git send-email, s-nail */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-i", "a@x.example", "b@y.example")), 0);
	assert_int_equal(o.nrcpt, 2);
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-i", "-r", "me@x.example", "--", "a@x.example")), 0);
	assert_string_equal(o.from, "me@x.example");
	/* -f with and without a space; the null sender both ways */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-fme@x.example", "a@x.example")), 0);
	assert_string_equal(o.from, "me@x.example");
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-f", "", "a@x.example")), 0);
	assert_string_equal(o.from, "");
	assert_int_equal(o.nrcpt, 1);
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-f", "<>", "a@x.example")), 0);
	assert_string_equal(o.from, "<>");
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-odi", "-oi", "-v", "a@x.example")), 0);
	assert_true(o.verbose && o.i);
	assert_null(o.from);
	/* options stop at the first recipient; a lone "-" is one */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("a@x.example", "-t")), 0);
	assert_false(o.t);
	assert_int_equal(o.nrcpt, 2);
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-", "a@x.example")), 0);
	assert_int_equal(o.nrcpt, 2);
}

static void modes(void **state)
{
	(void)state;
	struct sendmail_opts o;
	const char *what, *arg;
	char *argv[MAXARGS];
	static const struct { const char *flag; enum sendmail_mode mode; } cases[] = {
		{ "-bm", SM_SEND }, { "-bi", SM_INIT }, { "-I", SM_INIT }, { "-bp", SM_LIST },
		{ "-bs", SM_SMTP }, { "-q", SM_FLUSH }, { "-q30m", SM_FLUSH },
		{ "-q6B0EDD3A10AD6006", SM_FLUSH }, { "-qRexample.org", SM_FLUSH },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(parse(&o, &what, &arg, argv, ARGS(cases[i].flag)), 0);
		assert_int_equal(o.mode, cases[i].mode);
	}
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-C", "/etc/x.conf", "-bs")), 0);
	assert_string_equal(o.conf, "/etc/x.conf");
	assert_int_equal(o.mode, SM_SMTP);
}

/* Every flag of the table is taken (a valued one glued and apart) and
 * changes nothing. */
static void ignored_flags(void **state)
{
	(void)state;
	struct sendmail_opts o;
	const char *what, *arg;
	char *argv[MAXARGS];
	size_t n = 0;
	for (const struct sendmail_ignored *f = sendmail_ignored; f->flag; f++, n++) {
		assert_non_null(f->why);
		char glued[32];
		snprintf(glued, sizeof glued, "%s%s", f->flag, f->value ? "value" : "");
		assert_int_equal(parse(&o, &what, &arg, argv, ARGS(glued, "a@x.example")), 0);
		assert_int_equal(o.ignored, 1);
		assert_int_equal(o.nrcpt, 1);
		assert_string_equal(o.rcpt[0], "a@x.example");
		assert_false(o.t || o.i || o.verbose || o.from || o.fullname || o.conf);
		assert_int_equal(o.mode, SM_SEND);
		if (f->value) {
			assert_int_equal(parse(&o, &what, &arg, argv, ARGS(f->flag, "value", "a@x.example")), 0);
			assert_int_equal(o.nrcpt, 1);
			assert_string_equal(o.rcpt[0], "a@x.example");	/* the value is not a recipient */
		}
	}
	assert_true(n >= 20);
	/* any other -oX, glued value or not */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-oQ/var/spool/mqueue", "-o7", "-oA/etc/aliases", "a@x.example")), 0);
	assert_int_equal(o.ignored, 3);
	assert_int_equal(o.nrcpt, 1);
}

static void malformed(void **state)
{
	(void)state;
	struct sendmail_opts o;
	const char *what, *arg;
	char *argv[MAXARGS];
	static const char *const unknown[] = { "-x", "-bd", "-bt", "-bv", "-ba", "-T", "-tt", "-ix",
					       "-vv", "-o", "-bmx", "-Z", "--help", "-b" };
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		int rc = parse(&o, &what, &arg, argv, ARGS("-i", unknown[i], "a@x.example"));
		if (rc != EX_USAGE)
			fail_msg("%s: taken", unknown[i]);
		assert_string_equal(what, "unknown option");
		assert_ptr_equal(arg, argv[2]);
	}
	/* a value missing at the end */
	static const char *const needs[] = { "-f", "-r", "-F", "-C", "-B", "-N", "-R", "-V", "-L", "-O", "-X", "-h" };
	for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++) {
		assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-i", needs[i])), EX_USAGE);
		assert_string_equal(what, "option needs a value");
		assert_string_equal(arg, needs[i]);
	}
	/* two senders are one too many (Sendmail says so too) */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-f", "a@x.example", "-rb@x.example", "c@x.example")), EX_USAGE);
	assert_string_equal(what, "more than one sender");
	/* nothing at all is a send with no recipients: the caller says so */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("--")), 0);
	assert_int_equal(o.nrcpt, 0);
}

/* -N, -R, -V (RFC 3461, as Postfix's sendmail takes them): no longer
 * ignored, and a bad value is a usage error naming it. */
static void dsn_flags(void **state)
{
	(void)state;
	struct sendmail_opts o;
	const char *what, *arg;
	char *argv[MAXARGS];
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-i", "r@x.example")), 0);
	assert_int_equal(o.notify, 0);
	assert_int_equal(o.ret, RET_UNSET);
	assert_null(o.envid);
	assert_int_equal(parse(&o, &what, &arg, argv,
			       ARGS("-N", "success,failure", "-R", "hdrs", "-V", "abc", "r@x.example")), 0);
	assert_int_equal(o.notify, NOTIFY_SUCCESS | NOTIFY_FAILURE);
	assert_int_equal(o.ret, RET_HDRS);
	assert_string_equal(o.envid, "abc");
	assert_int_equal(o.ignored, 0);
	assert_int_equal(o.nrcpt, 1);
	assert_string_equal(o.rcpt[0], "r@x.example");
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-Nnever", "-RFULL", "-Va b+c", "r@x.example")), 0);
	assert_int_equal(o.notify, NOTIFY_NEVER);
	assert_int_equal(o.ret, RET_FULL);
	struct buf b;
	buf_init(&b);
	sendmail_envid_xtext(o.envid, &b);
	assert_string_equal(b.data, "a+20b+2Bc");	/* sent as xtext */
	buf_free(&b);
	for (const struct sendmail_ignored *f = sendmail_ignored; f->flag; f++)
		if (f->flag[1] == 'N' || f->flag[1] == 'R' || f->flag[1] == 'V')
			fail_msg("%s still in the ignored table", f->flag);
	char plus31[32], plus32[33];
	memset(plus31, '+', 31);	/* 93 characters once encoded */
	plus31[31] = '\0';
	memset(plus32, '+', 32);	/* 96: over ENVID's 94 */
	plus32[32] = '\0';
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-V", plus31, "r@x.example")), 0);
	const char *const bad[][2] = {
		{ "-N", "bogus" }, { "-N", "never,success" }, { "-N", "success,,delay" }, { "-N", "" },
		{ "-R", "headers" }, { "-R", "" }, { "-V", "" }, { "-V", "a\tb" }, { "-V", "caf\xc3\xa9" },
		{ "-V", plus32 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse(&o, &what, &arg, argv, ARGS(bad[i][0], bad[i][1], "r@x.example")) != EX_USAGE)
			fail_msg("%s %s: taken", bad[i][0], bad[i][1]);
		assert_ptr_equal(arg, argv[2]);	/* the value is named */
	}
	/* glued, the argument itself (found by fuzz_sendmail_args) */
	assert_int_equal(parse(&o, &what, &arg, argv, ARGS("-Nbogus", "r@x.example")), EX_USAGE);
	assert_ptr_equal(arg, argv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_callers), cmocka_unit_test(modes),
		cmocka_unit_test(ignored_flags), cmocka_unit_test(malformed), cmocka_unit_test(dsn_flags),
	};
	return cmocka_run_group_tests_name("sendmail_args", tests, NULL, NULL);
}
