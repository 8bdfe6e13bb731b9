/* SMTP pieces: reply parsing, the DATA reader (smuggling), dot-stuffing,
 * line-ending normalization of local input. */
#include "unit.h"
#include "../../common/smtp.h"
#include "../../common/smtp_client.h"

static void replies(void **state)
{
	(void)state;
	struct smtp_reply r;
	struct err e;
	size_t used;
	smtp_reply_init(&r);
	const char *one = "250 2.1.0 Ok\r\nextra";
	assert_int_equal(smtp_reply_parse(one, strlen(one), &r, &used, &e), 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enh, "2.1.0");
	assert_string_equal(r.text.data, "Ok");
	assert_int_equal(used, 14);

	const char *multi = "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n";
	assert_int_equal(smtp_reply_parse(multi, strlen(multi), &r, &used, &e), 1);
	assert_int_equal(r.lines, 4);
	assert_string_equal(r.text.data, "mx.example\nPIPELINING\nSIZE 1000\n8BITMIME");
	assert_int_equal(used, strlen(multi));

	/* incomplete: need more */
	assert_int_equal(smtp_reply_parse("250-a\r\n250", 10, &r, &used, &e), 0);
	assert_int_equal(smtp_reply_parse("25", 2, &r, &used, &e), 0);
	/* bare code and LF-only endings are accepted */
	assert_int_equal(smtp_reply_parse("354\n", 4, &r, &used, &e), 1);
	assert_int_equal(r.code, 354);
	char line[128];
	assert_int_equal(smtp_reply_parse("451 4.7.1 Try later\r\n", 21, &r, &used, &e), 1);
	assert_string_equal(smtp_reply_line(&r, line, sizeof line), "451 4.7.1 Try later");
	assert_int_equal(smtp_reply_parse("550 no enhanced code\r\n", 22, &r, &used, &e), 1);
	assert_string_equal(r.enh, "");
	assert_string_equal(smtp_reply_line(&r, line, sizeof line), "550 no enhanced code");

	const char *bad[] = { "hello\r\n", "2500 x\r\n", "250x\r\n", "099 x\r\n", "650 x\r\n",
			      "250-a\r\n251 b\r\n", "25a x\r\n" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (smtp_reply_parse(bad[i], strlen(bad[i]), &r, &used, &e) != -1)
			fail_msg("accepted reply '%s'", bad[i]);
	char huge[SMTP_REPLY_LINE_MAX + 10];
	memset(huge, 'a', sizeof huge);
	memcpy(huge, "250 ", 4);
	assert_int_equal(smtp_reply_parse(huge, sizeof huge, &r, &used, &e), -1);
	smtp_reply_free(&r);
}

/* Feed in pieces of every size; the result must not depend on them. */
static void feed_all(const char *in, size_t n, size_t chunk, struct buf *out, size_t *used, bool *done,
		     struct data_reader *d)
{
	data_reader_init(d);
	*used = 0;
	*done = false;
	while (*used < n && !*done) {
		size_t k = n - *used < chunk ? n - *used : chunk;
		*used += data_reader_feed(d, in + *used, k, out, done);
	}
}

static void check_data(const char *in, size_t n, const char *expect, bool expect_done, size_t expect_used)
{
	for (size_t chunk = 1; chunk <= n + 1; chunk++) {
		struct buf out;
		struct data_reader d;
		size_t used;
		bool done;
		buf_init(&out);
		buf_adds(&out, "");
		feed_all(in, n, chunk, &out, &used, &done, &d);
		if (done != expect_done || strcmp(out.data, expect) != 0 || (expect_done && used != expect_used))
			fail_msg("chunk %zu: got done=%d used=%zu '%s'", chunk, done, used, out.data);
		buf_free(&out);
	}
}

static void data_reader(void **state)
{
	(void)state;
#define CHECK(in, exp, done, used) check_data(in, sizeof(in) - 1, exp, done, used)
	CHECK("hello\r\n.\r\n", "hello\r\n", true, 10);
	CHECK(".\r\n", "", true, 3);
	CHECK("a\r\n.\r\nMAIL FROM:<x>\r\n", "a\r\n", true, 6);		/* pipelined rest */
	CHECK("..leading\r\n.\r\n", ".leading\r\n", true, 14);		/* unstuffing */
	CHECK("a\r\n..\r\n.\r\n", "a\r\n.\r\n", true, 10);
	/* bare LF and bare CR never end data, and become CRLF */
	CHECK("a\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, 10);
	CHECK("a\r\n.\nb\r\n.\r\n", "a\r\n\r\nb\r\n", true, 11);
	CHECK("a\r.\rb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, 10);
	CHECK("a\n.\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, 11);
	CHECK("a\r\n.\r.\r\n", "a\r\n\r\n.\r\n", false, 0);		/* ".\r." is not the end */
	CHECK("x\r\r\n.\r\n", "x\r\n\r\n", true, 7);
	/* NUL dropped */
	check_data("a\0b\r\n.\r\n", 8, "ab\r\n", true, 8);
	/* no end yet */
	CHECK("partial\r\n", "partial\r\n", false, 0);
#undef CHECK
	struct data_reader d;
	struct buf out;
	bool done;
	buf_init(&out);
	data_reader_init(&d);
	data_reader_feed(&d, "\xc3\xa9\r\n", 4, &out, &done);
	assert_true(d.eight_bit);
	buf_free(&out);
}

static void long_lines(void **state)
{
	(void)state;
	size_t n = SMTP_TEXT_LINE_MAX + 1;
	char *line = malloc(n + 6);
	memset(line, 'x', n);
	memcpy(line + n, "\r\n.\r\n", 5);
	struct data_reader d;
	struct buf out;
	bool done;
	buf_init(&out);
	data_reader_init(&d);
	data_reader_feed(&d, line, n + 5, &out, &done);
	assert_true(done);
	assert_true(d.line_too_long);
	data_reader_init(&d);
	buf_reset(&out);
	data_reader_feed(&d, line + 1, n + 4, &out, &done);	/* exactly at the limit */
	assert_true(done);
	assert_false(d.line_too_long);
	free(line);
	buf_free(&out);
}

static void dotstuff(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out);
	const char *m = ".a\r\nb\r\n.\r\n..c\r\n";
	smtp_dotstuff(m, strlen(m), &out);
	assert_string_equal(out.data, "..a\r\nb\r\n..\r\n...c\r\n.\r\n");
	buf_reset(&out);
	smtp_dotstuff("no newline", 10, &out);
	assert_string_equal(out.data, "no newline\r\n.\r\n");
	buf_reset(&out);
	smtp_dotstuff("", 0, &out);
	assert_string_equal(out.data, ".\r\n");
	/* round trip through the DATA reader gives the original back */
	const char *orig = "x\r\n.\r\n..\r\n.y\r\nend\r\n";
	buf_reset(&out);
	smtp_dotstuff(orig, strlen(orig), &out);
	struct data_reader d;
	struct buf back;
	bool done;
	buf_init(&back);
	buf_adds(&back, "");
	data_reader_init(&d);
	size_t used = data_reader_feed(&d, out.data, out.len, &back, &done);
	assert_true(done);
	assert_int_equal(used, out.len);
	assert_string_equal(back.data, orig);
	buf_free(&back);
	buf_free(&out);
}

static void local_line_endings(void **state)
{
	(void)state;
	struct buf out;
	bool ended;
	buf_init(&out);
	buf_adds(&out, "");
	const char *in = "a\nb\r\nc\rd";
	normalize_crlf(in, strlen(in), &out, false, &ended);
	assert_string_equal(out.data, "a\r\nb\r\nc\r\nd");
	assert_false(ended);
	buf_reset(&out);
	in = "a\n.\nb\n";
	size_t used = normalize_crlf(in, strlen(in), &out, true, &ended);
	assert_true(ended);
	assert_int_equal(used, 4);
	assert_string_equal(out.data, "a\r\n");
	buf_reset(&out);
	normalize_crlf(in, strlen(in), &out, false, &ended);
	assert_false(ended);
	assert_string_equal(out.data, "a\r\n.\r\nb\r\n");
	buf_reset(&out);
	normalize_crlf("a\n..\n", 5, &out, true, &ended);	/* ".." is not a lone dot */
	assert_false(ended);
	assert_string_equal(out.data, "a\r\n..\r\n");
	buf_free(&out);
}

/* The relay encoder: stuffing, line limit, the same result in any chunking. */
static void stuff_all(const char *in, size_t n, size_t chunk, struct buf *out)
{
	struct stuffer st;
	stuffer_init(&st);
	for (size_t i = 0; i < n; i += chunk)
		stuffer_feed(&st, in + i, n - i < chunk ? n - i : chunk, out);
	stuffer_end(&st, out);
}

static void relay_encoding(void **state)
{
	(void)state;
	struct buf a, b;
	buf_init(&a);
	buf_init(&b);
	const char *m = "Subject: x\r\n\r\n.dot\r\n..\r\nplain\r\n";
	stuff_all(m, strlen(m), 1000, &a);
	assert_string_equal(a.data, "Subject: x\r\n\r\n..dot\r\n...\r\nplain\r\n.\r\n");
	buf_reset(&a);
	stuff_all("no end", 6, 1000, &a);
	assert_string_equal(a.data, "no end\r\n.\r\n");

	/* a 3000-octet header and body line with 2-octet characters */
	struct buf msg;
	buf_init(&msg);
	buf_adds(&msg, "Subject: ");
	for (int i = 0; i < 1500; i++)
		buf_adds(&msg, "\xc3\xa9");
	buf_adds(&msg, "\r\n\r\n");
	for (int i = 0; i < 1500; i++)
		buf_adds(&msg, i == 700 ? "." : "\xc3\xa9");
	buf_adds(&msg, "\r\n");
	buf_reset(&a);
	stuff_all(msg.data, msg.len, msg.len, &a);
	for (size_t chunk = 1; chunk < 50; chunk += 7) {
		buf_reset(&b);
		stuff_all(msg.data, msg.len, chunk, &b);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len);
	}
	size_t line = 0, breaks = 0;
	for (size_t i = 0; i < a.len; i++) {
		if (a.data[i] == '\n') {
			assert_true(line <= 999);	/* 998 + CR */
			line = 0;
			breaks++;
			continue;
		}
		if (line == 0 && i > 0)	/* no line starts inside a UTF-8 character */
			assert_true(((unsigned char)a.data[i] & 0xC0) != 0x80);
		line++;
	}
	assert_true(breaks >= 8);
	/* header continuation lines start with a space (folding) */
	assert_non_null(strstr(a.data, "\r\n \xc3\xa9"));
	buf_free(&a);
	buf_free(&b);
	buf_free(&msg);
}

/* BDAT: the same line rules, but no dot-stuffing and no final "." */
static void relay_encoding_chunked(void **state)
{
	(void)state;
	struct buf a;
	struct stuffer st;
	buf_init(&a);
	stuffer_init(&st);
	st.chunked = true;
	const char *m = "Subject: x\r\n\r\n.dot\r\n.\r\nno end";
	stuffer_feed(&st, m, strlen(m), &a);
	stuffer_end(&st, &a);
	assert_string_equal(a.data, "Subject: x\r\n\r\n.dot\r\n.\r\nno end\r\n");
	buf_reset(&a);
	stuffer_init(&st);
	st.chunked = true;
	for (int i = 0; i < 1200; i++)
		stuffer_feed(&st, i == 0 ? "." : "x", 1, &a);
	stuffer_end(&st, &a);
	assert_int_equal(a.len, 1200 + 3 + 2);	/* folded once (still the header), CRLF at the end */
	assert_memory_equal(a.data, ".xx", 3);
	assert_memory_equal(a.data + 995, "\r\n ", 3);
	buf_free(&a);
}

/* The longest line in a, CR LF not counted. */
static size_t longest_line(const struct buf *a)
{
	size_t line = 0, most = 0;
	for (size_t i = 0; i < a->len; i++) {
		if (a->data[i] == '\r' || a->data[i] == '\n') {
			line = 0;
			continue;
		}
		if (++line > most)
			most = line;
	}
	return most;
}

/* Raw 8-bit data has no character boundaries: a run of 0x80-0xBF
 * octets is still broken at 998, in the header and the body, with DATA
 * and BDAT; a line that gets a stuffed dot stays within 998 too. */
static void no_line_over_998_ever(void **state)
{
	(void)state;
	struct buf msg, a;
	buf_init(&msg);
	buf_init(&a);
	buf_adds(&msg, "X-Raw: ");
	for (int i = 0; i < 3000; i++)
		buf_addc(&msg, (char)(0x80 + i % 64));
	buf_adds(&msg, "\r\n\r\n.");
	for (int i = 0; i < 3000; i++)
		buf_addc(&msg, (char)0xBF);
	buf_adds(&msg, "\r\n.");
	for (int i = 0; i < 997; i++)
		buf_addc(&msg, 'd');
	buf_adds(&msg, "\r\n");
	for (int chunked = 0; chunked < 2; chunked++) {
		for (size_t chunk = 1; chunk <= msg.len; chunk = chunk * 3 + 1) {
			struct stuffer st;
			stuffer_init(&st);
			st.chunked = chunked;
			buf_reset(&a);
			for (size_t i = 0; i < msg.len; i += chunk)
				stuffer_feed(&st, msg.data + i, msg.len - i < chunk ? msg.len - i : chunk, &a);
			stuffer_end(&st, &a);
			assert_true(longest_line(&a) <= SMTP_LINE_OUT_MAX);
			assert_true(st.lines_broken >= 6);
		}
	}
	buf_free(&msg);
	buf_free(&a);
}

/* The one table of quota and rate replies: they defer and hold the
 * relay back; a recipient's own failure (a full mailbox, an unknown
 * user) and greylisting are not in it. */
static void quota_replies(void **state)
{
	(void)state;
	static const struct { int code; const char *text; bool quota; } c[] = {
		{ 550, "550 5.4.5 Daily user sending quota exceeded.", true },
		{ 550, "550-5.4.5 Daily SMTP relay limit exceeded for user.", true },
		{ 554, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed", true },
		{ 432, "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", true },
		{ 421, "421 4.7.0 Try again later, closing connection.", true },
		{ 421, "421-4.7.28 Our system has detected an unusual rate of unsolicited mail", true },
		{ 451, "451 4.7.1 Rate limit exceeded, try later", true },
		{ 452, "452 4.2.2 The email account has exceeded its quota", false },	/* one mailbox */
		{ 554, "554 5.2.0 STOREDRV.Deliver; delivery failed", false },
		{ 552, "552 5.2.2 Mailbox quota exceeded", false },	/* the recipient's: it bounces */
		{ 550, "550 5.1.1 <a@r.example>: user unknown", false },
		{ 550, "550 5.4.50 nothing", false },
		{ 451, "451 4.7.1 greylisted, try again", false },
		{ 250, "250 2.0.0 quota fine", false },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
		if ((smtp_quota_hold(c[i].code, c[i].text) > 0) != c[i].quota)
			fail_msg("%s: %u", c[i].text, smtp_quota_hold(c[i].code, c[i].text));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(relay_encoding_chunked),
		cmocka_unit_test(replies), cmocka_unit_test(data_reader), cmocka_unit_test(long_lines),
		cmocka_unit_test(dotstuff), cmocka_unit_test(local_line_endings),
		cmocka_unit_test(relay_encoding), cmocka_unit_test(no_line_over_998_ever),
		cmocka_unit_test(quota_replies),
	};
	return cmocka_run_group_tests_name("smtp", tests, NULL, NULL);
}
