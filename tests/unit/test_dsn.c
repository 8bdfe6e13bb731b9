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
					.nrcpt = n, .headers = HEADERS, .headers_len = sizeof HEADERS - 1,
					.size_max = 35 << 20 };
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
		/* a local reason opens with its code (attempt.c) */
		{ "4.4.7 message expired after 5d in the queue: 451 4.7.1 greylisted", DSN_FAILED, "4.4.7" },
		{ "5.3.4 message size 9000 exceeds the upstream's limit of 4000", DSN_FAILED, "5.3.4" },
		{ "5.6.7 message needs SMTPUTF8 and the upstream lacks it", DSN_FAILED, "5.6.7" },
		{ "5.6.3 message has 8-bit content and the upstream lacks 8BITMIME", DSN_FAILED, "5.6.3" },
		{ "5.3.4", DSN_FAILED, "5.3.4" },
		{ "5.3.4x", DSN_FAILED, "5.0.0" },
		/* news of success is of class 2, and only it */
		{ "250 2.1.5 ok", DSN_RELAYED, "2.1.5" },
		{ "250 ok queued", DSN_RELAYED, "2.0.0" },
		{ "550 5.1.1 odd", DSN_RELAYED, "2.0.0" },
		{ "250 2.1.5 ok", DSN_FAILED, "5.0.0" },
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
		{ "a@r.example", DSN_FAILED, "550 5.1.1 <a@r.example>: Recipient address rejected", "mx.r.example", NULL },
		{ "b@r.example", DSN_FAILED, "4.4.7 message expired after 5d in the queue: 451 4.7.1 later", "", NULL },
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
	/* RFC 3464 section 2.2: the extension field after Arrival-Date */
	assert_non_null(strstr(p2, "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.org\r\n"
				   "Arrival-Date: "));
	assert_non_null(strstr(p2, "\r\nX-Outbox-Queue-ID: 6B0E000000000A01\r\n\r\nFinal-Recipient"));
	assert_null(strstr(p2, "Original-Envelope-Id"));
	assert_null(strstr(p2, "Original-Recipient"));
	assert_non_null(strstr(p2, "\r\n\r\nFinal-Recipient: rfc822; a@r.example\r\nAction: failed\r\n"
				   "Status: 5.1.1\r\nRemote-MTA: dns; mx.r.example\r\n"
				   "Diagnostic-Code: smtp; 550 5.1.1 <a@r.example>: Recipient address rejected\r\n"));
	/* expired: X.4.7, a persistent transient code (RFC 3463) */
	assert_non_null(strstr(p2, "Final-Recipient: rfc822; b@r.example\r\nAction: failed\r\nStatus: 4.4.7\r\n"
				   "Diagnostic-Code: x-outbox; 4.4.7 message expired after 5d"));
	assert_null(strstr(p2, "b@r.example\r\nAction: failed\r\nStatus: 4.4.7\r\nRemote-MTA"));
	/* the body of the original is never in it */
	assert_null(strstr(b.data, "\r\n\r\nbody"));
	buf_free(&b);
}

static void delayed_report(void **state)
{
	(void)state;
	struct dsn_rcpt r[] = { { "a@r.example", DSN_DELAYED, "451 4.7.1 greylisted", "mx.r.example", NULL } };
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
		{ "a@r.example", DSN_FAILED, "550 5.1.1 no\r\nBcc: victim@x.example\r\n\r\n--=_outbox_fake--", "mx\r\nX: y", NULL },
		{ "j\xc3\xb6rg@r.example", DSN_FAILED, longreply, "", NULL },
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
	/* RFC 6533, RFC 6522: the global form names its second part */
	assert_non_null(strstr(b.data, "multipart/report; report-type=global-delivery-status;\r\n"));
	assert_non_null(strstr(b.data, "Content-Type: message/global-delivery-status"));
	assert_non_null(strstr(b.data, "Content-Type: message/global-headers\r\n\r\nSubject: x\r\n"));
	assert_null(strstr(b.data, "rfc822-headers"));
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
	struct dsn_rcpt r[] = { { "a@r.example", DSN_FAILED, "550 5.1.1 no", "", NULL } };
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
	struct dsn_rcpt r1[] = { { "a@r.example", DSN_FAILED, "550 5.1.1 no such user", "mx.r.example", NULL } };
	struct dsn_rcpt r2[] = { { "b@r.example", DSN_FAILED, "554 5.7.1 refused", "mx.r.example", NULL },
				 { "c@r.example", DSN_FAILED, "550 5.2.2 mailbox full", "mx.r.example", NULL } };
	static const char h2[] = "From: app@example.org\r\nSubject: second\r\n\tfolded\r\n\r\nbody\r\n";
	struct dsn_message m[] = {
		{ .queue_id = "6B0E000000000A01", .arrival = 1800000000, .rcpt = r1, .nrcpt = 1, .headers = HEADERS,
		  .headers_len = sizeof HEADERS - 1 },
		{ .queue_id = "6B0E000000000B02", .arrival = 1800000050, .rcpt = r2, .nrcpt = 2, .headers = h2,
		  .headers_len = sizeof h2 - 1 },
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


/* ---- RFC 3461: relayed notices, RET, ENVID, ORCPT (issue 23) ---- */

/* Every byte of a relayed notice: a relay without DSN took a
 * NOTIFY=SUCCESS recipient; the sender gave ENVID and ORCPT (xtext). */
static void relayed_notice_every_byte(void **state)
{
	(void)state;
	struct dsn_rcpt r[] = { { "a@r.example", DSN_RELAYED, "250 2.0.0 Ok: queued as 4XyZ", "smtp.r.example",
				  "rfc822;A+2Bb@r.example" } };
	struct dsn_input in = input(r, 1);
	one_msg.envid = "QQ+2B314159";
	one_msg.ret = RET_FULL;		/* only a failure returns the message */
	one_msg.content = "From: App <app@example.org>\r\n\r\nbody\r\n";
	one_msg.content_len = strlen(one_msg.content);
	one_msg.size = one_msg.content_len;
	one_msg.size_max = 1000;
	struct buf b;
	buf_init(&b);
	dsn_build(&in, &b);
	static const char want[] =
		"From: Mail Delivery System <MAILER-DAEMON@example.org>\r\n"
		"To: <app@example.org>\r\n"
		"Subject: Successful Mail Delivery Report\r\n"
		"Date: Fri, 15 Jan 2027 08:01:40 +0000\r\n"
		"Message-ID: <0000000000001234.6B0E000000000A01@example.org>\r\n"
		"Auto-Submitted: auto-replied\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/report; report-type=delivery-status;\r\n"
		"\tboundary=\"=_outbox_6B0E000000000A01_0000000000001234\"\r\n"
		"\r\n"
		"This is a MIME-formatted delivery status notification.\r\n"
		"\r\n"
		"--=_outbox_6B0E000000000A01_0000000000001234\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n"
		"Content-Transfer-Encoding: 7bit\r\n"
		"\r\n"
		"This is the mail system at relay.example.org.\r\n"
		"\r\n"
		"Your message was passed on to the recipients below by a relay that does not\r\n"
		"offer delivery status notifications (DSN). You asked to be told of\r\n"
		"the delivery (NOTIFY=SUCCESS); the relay cannot tell, so this is the\r\n"
		"last notice this system can give: it was relayed. The relay's reply is\r\n"
		"given after each address.\r\n"
		"\r\n"
		"  <a@r.example>:\r\n"
		"    250 2.0.0 Ok: queued as 4XyZ\r\n"
		"\r\n"
		"The message arrived on Fri, 15 Jan 2027 08:00:00 +0000\r\n"
		"(queue ID 6B0E000000000A01).\r\n"
		"Its header section is attached; the message itself is not.\r\n"
		"\r\n"
		"--=_outbox_6B0E000000000A01_0000000000001234\r\n"
		"Content-Type: message/delivery-status\r\n"
		"\r\n"
		"Original-Envelope-Id: QQ+314159\r\n"
		"Reporting-MTA: dns; relay.example.org\r\n"
		"Arrival-Date: Fri, 15 Jan 2027 08:00:00 +0000\r\n"
		"X-Outbox-Queue-ID: 6B0E000000000A01\r\n"
		"\r\n"
		"Original-Recipient: rfc822; A+b@r.example\r\n"
		"Final-Recipient: rfc822; a@r.example\r\n"
		"Action: relayed\r\n"
		"Status: 2.0.0\r\n"
		"Remote-MTA: dns; smtp.r.example\r\n"
		"Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4XyZ\r\n"
		"\r\n"
		"--=_outbox_6B0E000000000A01_0000000000001234\r\n"
		"Content-Type: text/rfc822-headers\r\n"
		"\r\n"
		"From: App <app@example.org>\r\n"
		"To: a@r.example\r\n"
		"Subject: report\r\n"
		"\r\n"
		"--=_outbox_6B0E000000000A01_0000000000001234--\r\n";
	if (strcmp(b.data, want) != 0)
		fail_msg("the notice differs:\n%s", b.data);
	buf_free(&b);
}

static const char WHOLE[] = "From: App <app@example.org>\r\nSubject: report\r\n\r\n"
			    "line one\r\n..dot-stuffed? no: as queued\r\n\xc3\xa9t\xc3\xa9 8-bit\r\n";

/* The part after the last delimiter before the closing one. */
static const char *last_part(const struct buf *b, const char *bd, size_t *len)
{
	char sep[90], closing[100];
	snprintf(sep, sizeof sep, "\r\n--%s\r\n", bd);
	snprintf(closing, sizeof closing, "\r\n--%s--\r\n", bd);
	const char *p = NULL;
	for (const char *q = strstr(b->data, sep); q; q = strstr(q + 1, sep))
		p = q + strlen(sep);
	assert_non_null(p);
	*len = (size_t)(b->data + b->len - strlen(closing) - p);
	return p;
}

/* RET=FULL and a failure: the whole message, byte for byte, as
 * message/rfc822 (8bit, for its body is). */
static void ret_full_returns_the_message(void **state)
{
	(void)state;
	struct dsn_rcpt r[] = { { "a@r.example", DSN_FAILED, "550 5.1.1 no such user", "mx.r.example", NULL } };
	struct dsn_input in = input(r, 1);
	one_msg.ret = RET_FULL;
	one_msg.content = WHOLE;
	one_msg.content_len = sizeof WHOLE - 1;
	one_msg.size = sizeof WHOLE - 1;
	one_msg.size_max = sizeof WHOLE - 1;	/* at the limit: still whole */
	struct buf b;
	char bd[80];
	buf_init(&b);
	dsn_build(&in, &b);
	boundary_of(&b, bd, sizeof bd);
	size_t len;
	const char *p = last_part(&b, bd, &len);
	static const char head[] = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n";
	assert_true(len == strlen(head) + sizeof WHOLE - 1);
	assert_memory_equal(p, head, strlen(head));
	assert_memory_equal(p + strlen(head), WHOLE, sizeof WHOLE - 1);
	assert_non_null(strstr(b.data, "The message is attached whole, as you asked (RET=FULL).\r\n"));
	buf_free(&b);
}

/* RET=FULL over max_message_size: the header section and why; RET=HDRS
 * or none: the header section. */
static void ret_full_too_big_and_hdrs(void **state)
{
	(void)state;
	struct dsn_rcpt r[] = { { "a@r.example", DSN_FAILED, "550 5.1.1 no such user", "mx.r.example", NULL } };
	static const enum dsn_ret rets[] = { RET_FULL, RET_HDRS, RET_UNSET };
	for (size_t k = 0; k < 3; k++) {
		struct dsn_input in = input(r, 1);
		one_msg.ret = rets[k];
		one_msg.size = 5000;
		one_msg.size_max = 4000;
		one_msg.content = NULL;	/* bounce_report.c reads none over the limit */
		if (rets[k] != RET_FULL) {
			one_msg.content = WHOLE;	/* even if given, not attached */
			one_msg.content_len = sizeof WHOLE - 1;
			one_msg.size = 10;
		}
		struct buf b;
		char bd[80];
		buf_init(&b);
		dsn_build(&in, &b);
		check_lines(&b);
		boundary_of(&b, bd, sizeof bd);
		size_t len;
		const char *p = last_part(&b, bd, &len);
		static const char want[] = "Content-Type: text/rfc822-headers\r\n\r\n" "From: App <app@example.org>\r\n"
					   "To: a@r.example\r\nSubject: report\r\n";
		assert_true(len == sizeof want - 1);
		assert_memory_equal(p, want, sizeof want - 1);
		bool said = strstr(b.data, "you asked for it whole (RET=FULL), but it is 5000 octets, and a\r\n"
					   "report returning it must fit in 4000 ([queue] max_message_size).\r\n") != NULL;
		assert_true(said == (rets[k] == RET_FULL));
		assert_null(strstr(b.data, "line one"));
		buf_free(&b);
	}
}

/* A message that needed SMTPUTF8: the global form throughout (RFC
 * 6533), RET=FULL as message/global, ORCPT decoded. */
static void global_report(void **state)
{
	(void)state;
	static const char utf8msg[] = "From: =?utf-8?q?J=C3=B6rg?= <j\xc3\xb6rg@example.org>\r\nSubject: x\r\n\r\nbody\r\n";
	struct dsn_rcpt r[] = { { "b@r.example", DSN_FAILED, "550 5.1.1 no", "mx.r.example", "rfc822;b+2Bx@r.example" } };
	struct dsn_input in = input(r, 1);
	in.sender = "j\xc3\xb6rg@example.org";
	one_msg.utf8 = true;
	one_msg.ret = RET_FULL;
	one_msg.headers = utf8msg;	/* (up to its empty line) */
	one_msg.headers_len = sizeof utf8msg - 1;
	one_msg.content = utf8msg;
	one_msg.content_len = sizeof utf8msg - 1;
	one_msg.size = sizeof utf8msg - 1;
	one_msg.size_max = 1000;
	struct buf b;
	char bd[80], sep[90];
	build_checked(&in, &b, bd, sep);
	assert_non_null(strstr(b.data, "To: <j\xc3\xb6rg@example.org>\r\n"));
	assert_non_null(strstr(b.data, "Content-Type: multipart/report; report-type=global-delivery-status;\r\n"));
	assert_non_null(strstr(b.data, sep));
	char want[400];
	snprintf(want, sizeof want, "%sContent-Type: message/global-delivery-status\r\n\r\nReporting-MTA:", sep);
	assert_non_null(strstr(b.data, want));
	assert_non_null(strstr(b.data, "Original-Recipient: rfc822; b+x@r.example\r\nFinal-Recipient: rfc822; b@r.example\r\n"));
	snprintf(want, sizeof want, "%sContent-Type: message/global\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", sep);
	const char *p = strstr(b.data, want);
	assert_non_null(p);
	assert_memory_equal(p + strlen(want), utf8msg, sizeof utf8msg - 1);
	assert_null(strstr(b.data, "report-type=delivery-status"));
	assert_null(strstr(b.data, "message/rfc822"));
	/* the headers alone: message/global-headers */
	buf_free(&b);
	one_msg.ret = RET_HDRS;
	build_checked(&in, &b, bd, sep);
	snprintf(want, sizeof want, "%sContent-Type: message/global-headers\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		 "From: =?utf-8?q?J=C3=B6rg?= <j\xc3\xb6rg@example.org>\r\nSubject: x\r\n\r\n--%s--\r\n", sep, bd);
	assert_non_null(strstr(b.data, want));
	assert_null(strstr(b.data, "body"));
	buf_free(&b);
}

/* A report that tells of failures and relayed recipients together. */
static void failed_and_relayed(void **state)
{
	(void)state;
	struct dsn_rcpt r[] = { { "a@r.example", DSN_FAILED, "550 5.1.1 no", "mx", NULL },
				{ "b@r.example", DSN_RELAYED, "250 ok", "mx", NULL } };
	struct dsn_input in = input(r, 2);
	struct buf b;
	char bd[80], sep[90];
	build_checked(&in, &b, bd, sep);
	assert_non_null(strstr(b.data, "\r\nSubject: Undelivered Mail Returned to Sender\r\n"));
	const char *f = strstr(b.data, "could not be delivered"), *rl = strstr(b.data, "passed on to the recipients");
	assert_true(f && rl && f < rl);
	assert_non_null(strstr(b.data, "Final-Recipient: rfc822; a@r.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
	assert_non_null(strstr(b.data, "Final-Recipient: rfc822; b@r.example\r\nAction: relayed\r\nStatus: 2.0.0\r\n"));
	buf_free(&b);
}

static void xtext(void **state)
{
	(void)state;
	static const struct { const char *in, *want; } c[] = {
		{ "QQ+2B314159", "QQ+314159" }, { "a+3Db", "a=b" }, { "+", "+" }, { "+4", "+4" }, { "+zz", "+zz" },
		{ "", "" }, { "a b", "a b" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		struct buf b;
		buf_init(&b);
		dsn_xtext_decode(c[i].in, &b);
		assert_string_equal(b.data, c[i].want);
		buf_free(&b);
	}
}

int main(void)
{
	setenv("TZ", "UTC", 1);	/* the dates of the byte-for-byte notice */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_codes), cmocka_unit_test(failed_report),
		cmocka_unit_test(delayed_report), cmocka_unit_test(hostile_input),
		cmocka_unit_test(attached_headers), cmocka_unit_test(summary_report),
		cmocka_unit_test(relayed_notice_every_byte), cmocka_unit_test(ret_full_returns_the_message),
		cmocka_unit_test(ret_full_too_big_and_hdrs), cmocka_unit_test(global_report),
		cmocka_unit_test(failed_and_relayed), cmocka_unit_test(xtext),
	};
	return cmocka_run_group_tests_name("dsn", tests, NULL, NULL);
}
