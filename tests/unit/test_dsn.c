/* The delivery status notification (common/dsn.c): its bytes, its
 * structure (RFC 3464), and what hostile replies and headers cannot do
 * to it. */
#include "unit.h"
#include <stdlib.h>
#include "../../common/dsn.h"

static const char HEADERS[] = "From: App <app@example.org>\r\nTo: a@r.example\r\nSubject: report\r\n";

static struct dsn_message one_msg;

static struct dsn_input input(const struct dsn_rcpt *r, size_t n)
{
	one_msg = (struct dsn_message){ .queue_id = "6B0E000000000A01", .arrival = 1800000000, .rcpt = r,
					.nrcpt = n, .headers = HEADERS, .headers_len = sizeof HEADERS - 1 };
	return (struct dsn_input){
		.reporting_mta = "relay.example.org", .from_domain = "example.org",
		.sender = "app@example.org", .now = 1800000100, .msg = &one_msg, .nmsg = 1,
		.lifetime = "5d", .rnd = 0x1234,
	};
}

static void status_codes(void **state)
{
	(void)state;
	char st[16];
	static const struct { const char *reply; enum dsn_action a; const char *want; } c[] = {
		{ "550 5.1.1 <a@r.example>: user unknown", DSN_FAILED, "5.1.1" },
		{ "550-5.7.1 first line", DSN_FAILED, "5.7.1" },
		{ "554 too bad", DSN_FAILED, "5.0.0" },
		{ "message expired after 5d in the queue: 451 4.7.1 greylisted", DSN_FAILED, "5.0.0" },
		{ "451 4.7.1 try later", DSN_DELAYED, "4.7.1" },
		{ "550 5.1.1x not a code", DSN_FAILED, "5.0.0" },
		{ "", DSN_DELAYED, "4.0.0" },
		{ "550 9.9.9 odd", DSN_FAILED, "5.0.0" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		dsn_status_of(c[i].reply, c[i].a, st);
		if (strcmp(st, c[i].want) != 0)
			fail_msg("%s: %s", c[i].reply, st);
	}
}

/* Every line ends in CRLF and is under 999 octets; no bare CR or LF. */
static void check_lines(const struct buf *b)
{
	const char *p = b->data, *end = b->data + b->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(nl);
		assert_true(nl > p - 1 && nl[-1] == '\r');
		assert_true(nl - p - 1 <= 998);
		assert_null(memchr(p, '\r', (size_t)(nl - 1 - p)));
		p = nl + 1;
	}
}

static const char *boundary_of(const struct buf *b, char *out, size_t n)
{
	const char *q = strstr(b->data, "boundary=\"");
	assert_non_null(q);
	q += 10;
	snprintf(out, n, "%.*s", (int)(strchr(q, '"') - q), q);
	return out;
}

/* The report, its lines checked, its boundary and delimiter line. */
static void build_checked(const struct dsn_input *in, struct buf *b, char bd[80], char sep[90])
{
	buf_init(b);
	dsn_build(in, b);
	check_lines(b);
	boundary_of(b, bd, 80);
	snprintf(sep, 90, "\r\n--%s\r\n", bd);
}

static void failed_report(void **state)
{
	(void)state;
	struct dsn_rcpt r[] = {
		{ "a@r.example", DSN_FAILED, "550 5.1.1 <a@r.example>: Recipient address rejected", "mx.r.example" },
		{ "b@r.example", DSN_FAILED, "message expired after 5d in the queue: 451 4.7.1 later", "" },
	};
	struct dsn_input in = input(r, 2);
	struct buf b;
	char bd[80], sep[90];
	build_checked(&in, &b, bd, sep);
	assert_int_equal(strncmp(b.data, "From: Mail Delivery System <MAILER-DAEMON@example.org>\r\n"
				 "To: <app@example.org>\r\nSubject: Undelivered Mail Returned to Sender\r\n", 124), 0);
	assert_non_null(strstr(b.data, "\r\nAuto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(b.data, "Content-Type: multipart/report; report-type=delivery-status;\r\n"));
	/* three parts, in order, and the closing boundary last */
	const char *p1 = strstr(b.data, sep), *p2 = p1 ? strstr(p1 + 1, sep) : NULL;
	const char *p3 = p2 ? strstr(p2 + 1, sep) : NULL;
	assert_non_null(p3);
	assert_int_equal(strncmp(p1 + strlen(sep), "Content-Type: text/plain; charset=us-ascii\r\n", 44), 0);
	assert_int_equal(strncmp(p2 + strlen(sep), "Content-Type: message/delivery-status\r\n", 39), 0);
	assert_int_equal(strncmp(p3 + strlen(sep), "Content-Type: text/rfc822-headers\r\n\r\nFrom: App", 46), 0);
	char closing[100];
	snprintf(closing, sizeof closing, "\r\n--%s--\r\n", bd);
	assert_string_equal(b.data + b.len - strlen(closing), closing);
	/* the words, and the per-recipient fields */
	assert_non_null(strstr(p1, "could not be delivered"));
	assert_non_null(strstr(p1, "  <a@r.example>:\r\n    550 5.1.1 <a@r.example>: Recipient address rejected\r\n"));
	assert_non_null(strstr(p2, "Reporting-MTA: dns; relay.example.org\r\nX-Outbox-Queue-ID: 6B0E000000000A01\r\n"
				   "Arrival-Date: "));
	assert_non_null(strstr(p2, "\r\n\r\nFinal-Recipient: rfc822; a@r.example\r\nAction: failed\r\n"
				   "Status: 5.1.1\r\nRemote-MTA: dns; mx.r.example\r\n"
				   "Diagnostic-Code: smtp; 550 5.1.1 <a@r.example>: Recipient address rejected\r\n"));
	assert_non_null(strstr(p2, "Final-Recipient: rfc822; b@r.example\r\nAction: failed\r\nStatus: 5.0.0\r\n"
				   "Diagnostic-Code: x-outbox; message expired after 5d"));
	assert_null(strstr(p2, "b@r.example\r\nAction: failed\r\nStatus: 5.0.0\r\nRemote-MTA"));
	/* the body of the original is never in it */
	assert_null(strstr(b.data, "\r\n\r\nbody"));
	buf_free(&b);
}

static void delayed_report(void **state)
{
	(void)state;
	struct dsn_rcpt r[] = { { "a@r.example", DSN_DELAYED, "451 4.7.1 greylisted", "mx.r.example" } };
	struct dsn_input in = input(r, 1);
	struct buf b;
	buf_init(&b);
	dsn_build(&in, &b);
	check_lines(&b);
	assert_non_null(strstr(b.data, "\r\nSubject: Delayed Mail (still being retried)\r\n"));
	assert_non_null(strstr(b.data, "Action: delayed\r\nStatus: 4.7.1\r\n"));
	assert_non_null(strstr(b.data, "until 5d after it"));
	buf_free(&b);
}

/* A reply with CR LF and a fake boundary, headers that hold the
 * boundary the report would choose, a long reply with UTF-8. */
static void hostile_input(void **state)
{
	(void)state;
	char longreply[3000];
	memset(longreply, 'x', sizeof longreply);
	memcpy(longreply, "550 5.7.1 ", 10);
	for (size_t i = 10; i + 2 < sizeof longreply; i += 7)
		memcpy(longreply + i, "\xc3\xa9", 2);	/* é, at every seventh octet */
	longreply[sizeof longreply - 1] = '\0';
	struct dsn_rcpt r[] = {
		{ "a@r.example", DSN_FAILED, "550 5.1.1 no\r\nBcc: victim@x.example\r\n\r\n--=_outbox_fake--", "mx\r\nX: y" },
		{ "j\xc3\xb6rg@r.example", DSN_FAILED, longreply, "" },
	};
	char headers[300];
	snprintf(headers, sizeof headers, "Subject: x\r\nX-Trap: =_outbox_6B0E000000000A01_%016llx\r\n", 0x1234ULL);
	struct dsn_input in = input(r, 2);
	one_msg.headers = headers;
	one_msg.headers_len = strlen(headers);
	struct buf b;
	buf_init(&b);
	dsn_build(&in, &b);
	check_lines(&b);
	char bd[80];
	boundary_of(&b, bd, sizeof bd);
	assert_string_not_equal(bd, "=_outbox_6B0E000000000A01_0000000000001234");	/* taken by the headers */
	assert_null(strstr(b.data, "\r\nBcc: victim"));		/* the CR LF became spaces */
	assert_non_null(strstr(b.data, "550 5.1.1 no Bcc: victim@x.example --=_outbox_fake--"));
	assert_non_null(strstr(b.data, "Remote-MTA: dns; mx X: y\r\n"));
	assert_non_null(strstr(b.data, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"));
	assert_non_null(strstr(b.data, "Content-Type: message/global-delivery-status"));
	assert_non_null(strstr(b.data, "Final-Recipient: utf-8; j\xc3\xb6rg@r.example\r\n"));
	/* the long reply is cut at a character boundary */
	const char *d = strstr(b.data, "Diagnostic-Code: smtp; 550 5.7.1 ");
	assert_non_null(d);
	const char *eol = strstr(d, "\r\n");
	unsigned char last = (unsigned char)eol[-1];
	assert_true(last < 0x80 || (eol[-2] & 0xE0) == 0xC0);
	buf_free(&b);
}

/* The attached header section: bare LF and CR become CRLF, a long line
 * is folded, and nothing after the first empty line is attached. */
static void attached_headers(void **state)
{
	(void)state;
	static char h[2300];
	strcpy(h, "X-A: a\nX-B: b\rX-Long: ");
	memset(h + strlen(h), 'y', 2000);
	strcat(h, "\r\n\r\nthe body, never attached\r\n");
	struct dsn_rcpt r[] = { { "a@r.example", DSN_FAILED, "550 5.1.1 no", "" } };
	struct dsn_input in = input(r, 1);
	one_msg.headers = h;
	one_msg.headers_len = strlen(h);
	struct buf b;
	buf_init(&b);
	dsn_build(&in, &b);
	check_lines(&b);
	assert_non_null(strstr(b.data, "text/rfc822-headers\r\n\r\nX-A: a\r\nX-B: b\r\nX-Long: yyy"));
	assert_non_null(strstr(b.data, "yyy\r\n yyy"));	/* folded */
	assert_null(strstr(b.data, "the body"));
	buf_free(&b);
}

/* Several messages of one sender in one report: two parts (no header
 * section: RFC 3462 allows one), each recipient's block naming its
 * message, each message's Subject and queue ID in the words. */
static void summary_report(void **state)
{
	(void)state;
	struct dsn_rcpt r1[] = { { "a@r.example", DSN_FAILED, "550 5.1.1 no such user", "mx.r.example" } };
	struct dsn_rcpt r2[] = { { "b@r.example", DSN_FAILED, "554 5.7.1 refused", "mx.r.example" },
				 { "c@r.example", DSN_FAILED, "550 5.2.2 mailbox full", "mx.r.example" } };
	static const char h2[] = "From: app@example.org\r\nSubject: second\r\n\tfolded\r\n\r\nbody\r\n";
	struct dsn_message m[] = {
		{ "6B0E000000000A01", 1800000000, r1, 1, HEADERS, sizeof HEADERS - 1 },
		{ "6B0E000000000B02", 1800000050, r2, 2, h2, sizeof h2 - 1 },
	};
	struct dsn_input in = input(r1, 1);
	in.msg = m;
	in.nmsg = 2;
	struct buf b;
	char bd[80], sep[90];
	build_checked(&in, &b, bd, sep);
	assert_non_null(strstr(b.data, "\r\nSubject: Undelivered Mail Returned to Sender (2 messages)\r\n"));
	const char *p1 = strstr(b.data, sep), *p2 = p1 ? strstr(p1 + 1, sep) : NULL;
	assert_non_null(p2);
	assert_null(strstr(p2 + 1, sep));			/* two parts */
	assert_null(strstr(b.data, "text/rfc822-headers"));
	assert_null(strstr(b.data, "body"));
	assert_non_null(strstr(p1, "Message 1 of 2 (queue ID 6B0E000000000A01), arrived on "));
	assert_non_null(strstr(p1, "Subject: report\r\n  <a@r.example>:\r\n    550 5.1.1 no such user\r\n"));
	assert_non_null(strstr(p1, "Message 2 of 2 (queue ID 6B0E000000000B02)"));
	assert_non_null(strstr(p1, "Subject: second folded\r\n  <b@r.example>:\r\n    554 5.7.1 refused\r\n"
				   "  <c@r.example>:\r\n"));
	/* the per-message fields are the report's; each block names its message */
	assert_non_null(strstr(p2, "Content-Type: message/delivery-status\r\n\r\n"
				   "Reporting-MTA: dns; relay.example.org\r\n\r\nFinal-Recipient: rfc822; a@r.example\r\n"));
	assert_non_null(strstr(p2, "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
				   "X-Outbox-Queue-ID: 6B0E000000000A01\r\n\r\nFinal-Recipient: rfc822; b@r.example\r\n"));
	assert_non_null(strstr(p2, "Status: 5.2.2\r\nRemote-MTA: dns; mx.r.example\r\n"
				   "Diagnostic-Code: smtp; 550 5.2.2 mailbox full\r\nX-Outbox-Queue-ID: 6B0E000000000B02\r\n"));
	assert_null(strstr(p2, "Arrival-Date"));
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_codes), cmocka_unit_test(failed_report),
		cmocka_unit_test(delayed_report), cmocka_unit_test(hostile_input),
		cmocka_unit_test(attached_headers), cmocka_unit_test(summary_report),
	};
	return cmocka_run_group_tests_name("dsn", tests, NULL, NULL);
}
