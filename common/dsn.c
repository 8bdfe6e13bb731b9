/*
 * dsn.c - delivery status notifications (dsn.h).
 *
 * Text that comes from outside (an upstream's reply, an address, the
 * original header section) goes in only through one_line() or as the
 * attached header section, whose lines are kept as they are; the
 * boundary is checked against everything the report holds.
 */
#include "dsn.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define REPLY_MAX 900	/* a reply quoted in the report, in octets: lines stay under 998 */

/* s on one line: control characters become spaces, runs of spaces one,
 * at most max octets (not in the middle of a UTF-8 character). */
static void one_line(struct buf *out, const char *s, size_t max)
{
	size_t start = out->len, n = 0;
	bool space = false;
	for (; s && *s && n < max; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f) {
			space = n > 0;
			continue;
		}
		if (c == ' ') {
			space = n > 0;
			continue;
		}
		if (space) {
			buf_addc(out, ' ');
			n++;
			space = false;
		}
		buf_addc(out, (char)c);
		n++;
	}
	if (*s && out->len > start) {	/* cut: not in the middle of a character */
		size_t p = out->len;
		while (p > start && ((unsigned char)out->data[p - 1] & 0xC0) == 0x80)
			p--;
		unsigned char lead = p > start ? (unsigned char)out->data[p - 1] : 0;
		size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
		if (lead >= 0xC0 && out->len - (p - 1) < want)
			out->len = p - 1;
	}
	out->data[out->len] = '\0';
}

void dsn_status_of(const char *reply, enum dsn_action action, char out[16])
{
	const char *p = reply ? reply : "";
	int cls = action == DSN_DELAYED ? 4 : 5;
	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2])) {
		p += 3;
		while (*p == ' ' || *p == '-')
			p++;
		unsigned a, b, c;
		int used = 0;
		if (sscanf(p, "%1u.%3u.%3u%n", &a, &b, &c, &used) == 3 && (a == 2 || a == 4 || a == 5)
		    && (p[used] == '\0' || p[used] == ' ')) {
			snprintf(out, 16, "%u.%u.%u", a == 2 ? (unsigned)cls : a, b, c);
			return;
		}
	}
	snprintf(out, 16, "%d.0.0", cls);
}

static void rfc5322_date(double t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static bool is_ascii(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* The Subject field of a header section, unfolded, or NULL. */
static char *subject_of(const char *h, size_t n)
{
	for (size_t i = 0; i < n;) {
		const char *eol = memchr(h + i, '\n', n - i);
		size_t len = eol ? (size_t)(eol - (h + i)) : n - i;
		if (len == 0 || (len == 1 && h[i] == '\r'))
			return NULL;	/* the header section ends */
		if (len >= 8 && strncasecmp(h + i, "Subject:", 8) == 0) {
			struct buf v;
			buf_init(&v);
			size_t j = i + 8;
			for (;;) {
				const char *e = memchr(h + j, '\n', n - j);
				size_t l = e ? (size_t)(e - (h + j)) : n - j;
				buf_add(&v, h + j, l);
				j += l + (e != NULL);
				if (j >= n || (h[j] != ' ' && h[j] != '\t'))
					break;
			}
			return v.data ? v.data : xstrdup("");
		}
		i += len + (eol != NULL);
	}
	return NULL;
}

static bool all_ascii(const struct dsn_input *in)
{
	for (size_t m = 0; m < in->nmsg; m++) {
		const struct dsn_message *msg = &in->msg[m];
		for (size_t i = 0; i < msg->nrcpt; i++)
			if (!is_ascii(msg->rcpt[i].addr) || !is_ascii(msg->rcpt[i].reply))
				return false;
		if (in->nmsg > 1) {	/* a summary quotes each Subject */
			char *subj = subject_of(msg->headers, msg->headers_len);
			bool ascii = is_ascii(subj);
			free(subj);
			if (!ascii)
				return false;
		}
	}
	return is_ascii(in->sender);
}

static void list_rcpts(const struct dsn_message *m, bool delayed, struct buf *b)
{
	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct dsn_rcpt *r = &m->rcpt[i];
		if ((r->action == DSN_DELAYED) != delayed)
			continue;
		buf_adds(b, "  <");
		one_line(b, r->addr, REPLY_MAX);
		buf_adds(b, ">:\r\n    ");
		one_line(b, *r->reply ? r->reply : "no reason given", REPLY_MAX);
		buf_adds(b, "\r\n");
	}
}

static void what_happened(const struct dsn_input *in, bool delayed, struct buf *b)
{
	bool one = in->nmsg == 1;
	if (delayed)
		buf_printf(b, "%s not been delivered yet to the recipients below.\r\n"
			      "Nothing needs to be done: %s tried again until %s after it\r\n"
			      "arrived, and you will hear again only if it fails for good.\r\n\r\n",
			   one ? "Your message has" : "Messages you sent have", one ? "it is" : "each is",
			   in->lifetime);
	else
		buf_printf(b, "%s could not be delivered to the recipients below, and\r\n"
			      "will not be tried again for them. The reason is given after each\r\n"
			      "address, as the receiving mail system gave it.\r\n\r\n",
			   one ? "Your message" : "Messages you sent");
}

/* The words for a human: what happened, to whom, and why. */
static void explanation(const struct dsn_input *in, bool delayed, struct buf *b)
{
	char when[64];
	buf_printf(b, "This is the mail system at %s.\r\n\r\n", in->reporting_mta);
	what_happened(in, delayed, b);
	if (in->nmsg == 1) {
		list_rcpts(&in->msg[0], delayed, b);
		rfc5322_date(in->msg[0].arrival, when, sizeof when);
		buf_printf(b, "\r\nThe message arrived on %s\r\n(queue ID %s). Its header section is attached;\r\n"
			      "the message itself is not.\r\n", when, in->msg[0].queue_id);
		return;
	}
	buf_printf(b, "These %zu messages are reported together, so that many failures\r\n"
		      "make one report.\r\n", in->nmsg);
	for (size_t m = 0; m < in->nmsg; m++) {
		const struct dsn_message *msg = &in->msg[m];
		char *subj = subject_of(msg->headers, msg->headers_len);
		rfc5322_date(msg->arrival, when, sizeof when);
		buf_printf(b, "\r\nMessage %zu of %zu (queue ID %s), arrived on %s\r\n", m + 1, in->nmsg,
			   msg->queue_id, when);
		buf_adds(b, "Subject: ");
		one_line(b, subj ? subj : "(none)", 200);
		buf_adds(b, "\r\n");
		free(subj);
		list_rcpts(msg, delayed, b);
	}
}

static void status_rcpt(const struct dsn_rcpt *r, const char *summary_of, struct buf *b)
{
	char st[16];
	dsn_status_of(r->reply, r->action, st);
	buf_printf(b, "\r\nFinal-Recipient: %s; ", is_ascii(r->addr) ? "rfc822" : "utf-8");
	one_line(b, r->addr, REPLY_MAX);
	buf_printf(b, "\r\nAction: %s\r\nStatus: %s\r\n", r->action == DSN_FAILED ? "failed" : "delayed", st);
	if (r->remote_mta && *r->remote_mta) {
		buf_adds(b, "Remote-MTA: dns; ");
		one_line(b, r->remote_mta, 255);
		buf_adds(b, "\r\n");
	}
	if (r->reply && *r->reply) {
		bool smtp = isdigit((unsigned char)r->reply[0]);
		buf_adds(b, smtp ? "Diagnostic-Code: smtp; " : "Diagnostic-Code: x-outbox; ");
		one_line(b, r->reply, REPLY_MAX);
		buf_adds(b, "\r\n");
	}
	if (summary_of)	/* an extension field (RFC 3464 section 2.4) */
		buf_printf(b, "X-Outbox-Queue-ID: %s\r\n", summary_of);
}

/* Per-message fields, then a block per recipient.  A summary's
 * per-message fields are the report's alone: the message of each
 * recipient is named in its block. */
static void status_part(const struct dsn_input *in, struct buf *b)
{
	char when[64];
	buf_printf(b, "Reporting-MTA: dns; %s\r\n", in->reporting_mta);
	if (in->nmsg == 1) {
		rfc5322_date(in->msg[0].arrival, when, sizeof when);
		buf_printf(b, "X-Outbox-Queue-ID: %s\r\nArrival-Date: %s\r\n", in->msg[0].queue_id, when);
	}
	for (size_t m = 0; m < in->nmsg; m++)
		for (size_t i = 0; i < in->msg[m].nrcpt; i++)
			status_rcpt(&in->msg[m].rcpt[i], in->nmsg > 1 ? in->msg[m].queue_id : NULL, b);
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

/* A boundary that occurs in none of the parts. */
static void choose_boundary(const struct dsn_input *in, const struct buf *parts, char out[80])
{
	for (unsigned long long k = in->rnd;; k = k * 6364136223846793005ULL + 1442695040888963407ULL) {
		snprintf(out, 80, "=_outbox_%s_%016llx", in->msg[0].queue_id, k);
		bool taken = strstr(parts->data ? parts->data : "", out) != NULL;
		for (size_t m = 0; m < in->nmsg && !taken; m++)
			taken = memmem(in->msg[m].headers, in->msg[m].headers_len, out, strlen(out)) != NULL;
		if (!taken)
			return;
	}
}

static bool all_delayed(const struct dsn_input *in)
{
	bool delayed = false;
	for (size_t m = 0; m < in->nmsg; m++)
		for (size_t i = 0; i < in->msg[m].nrcpt; i++) {
			if (in->msg[m].rcpt[i].action != DSN_DELAYED)
				return false;
			delayed = true;
		}
	return delayed;
}

static void report_header(const struct dsn_input *in, bool delayed, const char *boundary, struct buf *out)
{
	char date[64], count[48] = "";
	rfc5322_date(in->now, date, sizeof date);
	if (in->nmsg > 1)
		snprintf(count, sizeof count, " (%zu messages)", in->nmsg);
	buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n", in->from_domain,
		   in->sender);
	buf_printf(out, "Subject: %s%s\r\nDate: %s\r\nMessage-ID: <%016llx.%s@%s>\r\n",
		   delayed ? "Delayed Mail (still being retried)" : "Undelivered Mail Returned to Sender",
		   count, date, in->rnd, in->msg[0].queue_id, in->from_domain);
	buf_printf(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
			"Content-Type: multipart/report; report-type=delivery-status;\r\n"
			"\tboundary=\"%s\"\r\n\r\n"
			"This is a MIME-formatted delivery status notification.\r\n\r\n", boundary);
}

void dsn_build(const struct dsn_input *in, struct buf *out)
{
	bool delayed = all_delayed(in);
	struct buf text, status;
	buf_init(&text);
	buf_init(&status);
	explanation(in, delayed, &text);
	status_part(in, &status);
	struct buf both;
	buf_init(&both);
	buf_add(&both, text.data, text.len);
	buf_add(&both, status.data, status.len);
	char boundary[80];
	choose_boundary(in, &both, boundary);
	report_header(in, delayed, boundary, out);
	bool ascii = all_ascii(in);
	buf_printf(out, "--%s\r\nContent-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n",
		   boundary, ascii ? "us-ascii" : "utf-8", ascii ? "7bit" : "8bit");
	buf_add(out, text.data, text.len);
	buf_printf(out, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary,
		   ascii ? "message/delivery-status" : "message/global-delivery-status");
	buf_add(out, status.data, status.len);
	if (in->nmsg == 1) {
		buf_printf(out, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
		attach_headers(in->msg[0].headers, in->msg[0].headers_len, out);
	}
	buf_printf(out, "\r\n--%s--\r\n", boundary);
	buf_free(&text);
	buf_free(&status);
	buf_free(&both);
}
