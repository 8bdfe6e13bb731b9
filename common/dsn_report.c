/*
 * dsn_report.c - a delivery status notification put together (dsn.h
 * dsn_build): the report's header, the words (dsn_words.c), its
 * delivery-status part and what it attaches of the original.
 *
 * Text that comes from outside (an upstream's reply, an address, a
 * decoded ENVID or ORCPT) goes in only through dsn_one_line(); the
 * attached header section is normalised to CRLF lines within 998
 * octets; a message returned whole (RET=FULL) goes as the queue holds
 * it.  The boundary is checked against everything the report holds.
 */
#include "dsn_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* "Original-Recipient: rfc822; <address>" from ORCPT as given: the
 * address type, then the address decoded from xtext (RFC 3461 section
 * 6.3 d, RFC 3464 section 2.3.1). */
static void original_recipient(const char *orcpt, struct buf *b)
{
	const char *semi = strchr(orcpt, ';');
	struct buf addr, type;
	buf_init(&addr);
	buf_init(&type);
	buf_add(&type, orcpt, semi ? (size_t)(semi - orcpt) : 0);
	buf_addc(&type, '\0');
	dsn_xtext_decode(semi ? semi + 1 : orcpt, &addr);
	buf_adds(b, "Original-Recipient: ");
	dsn_one_line(b, semi && *type.data ? type.data : "rfc822", 32);
	buf_adds(b, "; ");
	dsn_one_line(b, addr.data, DSN_REPLY_MAX);
	buf_adds(b, "\r\n");
	buf_free(&addr);
	buf_free(&type);
}

static const char *action_name(enum dsn_action a)
{
	return a == DSN_FAILED ? "failed" : a == DSN_RELAYED ? "relayed" : "delayed";
}

/* One recipient's block, its fields in the order of RFC 3464 section 2.3. */
static void status_rcpt(const struct dsn_rcpt *r, const char *summary_of, struct buf *b)
{
	char st[16];
	dsn_status_of(r->reply, r->action, st);
	buf_adds(b, "\r\n");
	if (r->orcpt)
		original_recipient(r->orcpt, b);
	buf_printf(b, "Final-Recipient: %s; ", dsn_ascii(r->addr) ? "rfc822" : "utf-8");
	dsn_one_line(b, r->addr, DSN_REPLY_MAX);
	buf_printf(b, "\r\nAction: %s\r\nStatus: %s\r\n", action_name(r->action), st);
	if (r->remote_mta && *r->remote_mta) {
		buf_adds(b, "Remote-MTA: dns; ");
		dsn_one_line(b, r->remote_mta, 255);
		buf_adds(b, "\r\n");
	}
	if (r->reply && *r->reply) {
		bool smtp = isdigit((unsigned char)r->reply[0]) && isdigit((unsigned char)r->reply[1]);
		buf_adds(b, smtp ? "Diagnostic-Code: smtp; " : "Diagnostic-Code: x-outbox; ");
		dsn_one_line(b, r->reply, DSN_REPLY_MAX);
		buf_adds(b, "\r\n");
	}
	if (summary_of)	/* an extension field (RFC 3464 section 2.4) */
		buf_printf(b, "X-Outbox-Queue-ID: %s\r\n", summary_of);
}

/* Per-message fields (RFC 3464 section 2.2, in its order), then a block
 * per recipient.  A summary's per-message fields are the report's
 * alone: the message of each recipient is named in its block. */
static void status_part(const struct dsn_input *in, struct buf *b)
{
	char when[64];
	const struct dsn_message *m = &in->msg[0];
	if (in->nmsg == 1 && m->envid) {
		struct buf id;
		buf_init(&id);
		dsn_xtext_decode(m->envid, &id);
		buf_adds(b, "Original-Envelope-Id: ");
		dsn_one_line(b, id.data, DSN_REPLY_MAX);
		buf_adds(b, "\r\n");
		buf_free(&id);
	}
	buf_printf(b, "Reporting-MTA: dns; %s\r\n", in->reporting_mta);
	if (in->nmsg == 1) {
		dsn_date(m->arrival, when, sizeof when);
		buf_printf(b, "Arrival-Date: %s\r\nX-Outbox-Queue-ID: %s\r\n", when, m->queue_id);
	}
	for (size_t k = 0; k < in->nmsg; k++)
		for (size_t i = 0; i < in->msg[k].nrcpt; i++)
			status_rcpt(&in->msg[k].rcpt[i], in->nmsg > 1 ? in->msg[k].queue_id : NULL, b);
}

/* The original header section, up to its end: each line ends in CRLF
 * (a bare CR or LF is a line end too) and a line over 998 octets is
 * folded (CRLF and a space), so the attachment holds to RFC 5322 even
 * if the queue file did not. */
static void attach_headers(const char *h, size_t n, struct buf *out)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < n && h[i + 1] == '\n')
				i++;
			if (col == 0)
				return;	/* an empty line: the header section ends */
			buf_adds(out, "\r\n");
			col = 0;
			continue;
		}
		if (c == '\0')
			continue;
		if (col >= 997) {
			buf_adds(out, "\r\n ");
			col = 1;
		}
		buf_addc(out, c);
		col++;
	}
	if (col)
		buf_adds(out, "\r\n");
}

static bool holds(const char *p, size_t n, const char *s)
{
	return p && memmem(p, n, s, strlen(s)) != NULL;
}

/* A boundary that occurs in none of the parts. */
static void choose_boundary(const struct dsn_input *in, const struct buf *parts, char out[80])
{
	for (unsigned long long k = in->rnd;; k = k * 6364136223846793005ULL + 1442695040888963407ULL) {
		snprintf(out, 80, "=_outbox_%s_%016llx", in->msg[0].queue_id, k);
		bool taken = holds(parts->data, parts->len, out);
		for (size_t m = 0; m < in->nmsg && !taken; m++)
			taken = holds(in->msg[m].headers, in->msg[m].headers_len, out)
				|| holds(in->msg[m].content, in->msg[m].content_len, out);
		if (!taken)
			return;
	}
}

static void report_header(const struct dsn_input *in, bool global, const char *boundary, struct buf *out)
{
	char date[64], count[48] = "";
	dsn_date(in->now, date, sizeof date);
	if (in->nmsg > 1)
		snprintf(count, sizeof count, " (%zu messages)", in->nmsg);
	buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <", in->from_domain);
	dsn_one_line(out, in->sender, DSN_REPLY_MAX);
	buf_printf(out, ">\r\nSubject: %s%s\r\nDate: %s\r\nMessage-ID: <%016llx.%s@%s>\r\n", dsn_subject(in), count,
		   date, in->rnd, in->msg[0].queue_id, in->from_domain);
	buf_printf(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
			"Content-Type: multipart/report; report-type=%s;\r\n"
			"\tboundary=\"%s\"\r\n\r\n"
			"This is a MIME-formatted delivery status notification.\r\n\r\n",
		   global ? "global-delivery-status" : "delivery-status", boundary);
}

static bool eight_bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* The third part: the whole message (RET=FULL) or its header section. */
static void attach_original(const struct dsn_input *in, bool global, const char *boundary, struct buf *out)
{
	const struct dsn_message *m = &in->msg[0];
	struct buf part;
	buf_init(&part);
	bool whole = dsn_returns_whole(in, m);
	if (whole)
		buf_add(&part, m->content, m->content_len);
	else
		attach_headers(m->headers, m->headers_len, &part);
	const char *type = whole ? (global ? "message/global" : "message/rfc822")
				 : (global ? "message/global-headers" : "text/rfc822-headers");
	buf_printf(out, "\r\n--%s\r\nContent-Type: %s\r\n%s\r\n", boundary, type,
		   eight_bit(part.data, part.len) ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	buf_add(out, part.data, part.len);
	if (part.len >= 2 && memcmp(part.data + part.len - 2, "\r\n", 2) != 0)
		buf_adds(out, "\r\n");	/* the boundary's CRLF is its own */
	buf_free(&part);
}

void dsn_build(const struct dsn_input *in, struct buf *out)
{
	bool global = dsn_is_global(in);
	struct buf text, status;
	buf_init(&text);
	buf_init(&status);
	dsn_explanation(in, &text);
	status_part(in, &status);
	struct buf both;
	buf_init(&both);
	buf_add(&both, text.data, text.len);
	buf_add(&both, status.data, status.len);
	char boundary[80];
	choose_boundary(in, &both, boundary);
	report_header(in, global, boundary, out);
	bool ascii = dsn_ascii(text.data);
	buf_printf(out, "--%s\r\nContent-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n",
		   boundary, ascii ? "us-ascii" : "utf-8", ascii ? "7bit" : "8bit");
	buf_add(out, text.data, text.len);
	buf_printf(out, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary,
		   global ? "message/global-delivery-status" : "message/delivery-status");
	buf_add(out, status.data, status.len);
	if (in->nmsg == 1)
		attach_original(in, global, boundary, out);
	buf_printf(out, "\r\n--%s--\r\n", boundary);
	buf_free(&text);
	buf_free(&status);
	buf_free(&both);
}
