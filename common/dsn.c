/*
 * dsn.c - delivery status notifications (dsn.h): what the report's parts
 * share -- a reply's enhanced status, ENVID/ORCPT decoded, the date,
 * which recipients and messages a report holds and how each is returned
 * (dsn_int.h).  The report is put together by dsn_report.c, its words by
 * dsn_words.c; both stand on this.
 *
 * Text that comes from outside (an upstream's reply, an address, a
 * decoded ENVID or ORCPT) goes in only through dsn_one_line(); the
 * attached header section is normalised to CRLF lines within 998
 * octets; a message returned whole (RET=FULL) goes as the queue holds
 * it.  The boundary is checked against everything the report holds.
 */
#include "dsn_int.h"
#include "dsnparam.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void dsn_one_line(struct buf *out, const char *s, size_t max)
{
	size_t start = out->len, n = 0;
	bool space = false;
	for (; s && *s && n < max; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c == 0x7f) {	/* control characters and spaces */
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
	if (s && *s && out->len > start) {	/* cut: not in the middle of a character */
		size_t p = out->len;
		while (p > start && ((unsigned char)out->data[p - 1] & 0xC0) == 0x80)
			p--;
		unsigned char lead = p > start ? (unsigned char)out->data[p - 1] : 0;
		size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
		if (lead >= 0xC0 && out->len - (p - 1) < want)
			out->len = p - 1;
	}
	buf_reserve(out, 1);
	out->data[out->len] = '\0';
}

/* An enhanced status code (RFC 3463) at p: class 2, 4 or 5, then a
 * space or the end; its length, or 0. */
static int enhanced_at(const char *p, unsigned *a, unsigned *b, unsigned *c)
{
	int used = 0;
	if (!isdigit((unsigned char)p[0]) || p[1] != '.')
		return 0;
	if (sscanf(p, "%1u.%3u.%3u%n", a, b, c, &used) != 3 || !(*a == 2 || *a == 4 || *a == 5))
		return 0;
	return p[used] == '\0' || p[used] == ' ' ? used : 0;
}

void dsn_status_of(const char *reply, enum dsn_action action, char out[16])
{
	const char *p = reply ? reply : "";
	int cls = action == DSN_DELAYED ? 4 : action == DSN_RELAYED ? 2 : 5;
	unsigned a, b, c;
	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2])) {
		p += 3;	/* a reply: its code follows the reply code */
		while (*p == ' ' || *p == '-')
			p++;
	}
	if (enhanced_at(p, &a, &b, &c)) {
		/* news of success is of class 2 and nothing else is */
		if ((action == DSN_RELAYED) == (a == 2)) {
			snprintf(out, 16, "%u.%u.%u", a, b, c);
			return;
		}
	}
	snprintf(out, 16, "%d.0.0", cls);
}

void dsn_xtext_decode(const char *s, struct buf *out)
{
	size_t n = s ? strlen(s) : 0;
	if (n && xtext_decode(s, n, out) < 0)
		buf_add(out, s, n);	/* not xtext (the queue file's checks let none by) */
	buf_reserve(out, 1);
	out->data[out->len] = '\0';
}

void dsn_date(double t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

bool dsn_ascii(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

char *dsn_subject_of(const char *h, size_t n)
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

bool dsn_has(const struct dsn_input *in, const struct dsn_message *m, enum dsn_action a)
{
	for (size_t k = 0; k < in->nmsg; k++) {
		const struct dsn_message *msg = &in->msg[k];
		for (size_t i = 0; (!m || m == msg) && i < msg->nrcpt; i++)
			if (msg->rcpt[i].action == a)
				return true;
	}
	return false;
}

bool dsn_returns_whole(const struct dsn_input *in, const struct dsn_message *m)
{
	return in->nmsg == 1 && m->ret == RET_FULL && m->content && m->size <= m->size_max
	       && dsn_has(in, m, DSN_FAILED);
}

static bool decoded_ascii(const char *xtext)
{
	struct buf d;
	buf_init(&d);
	dsn_xtext_decode(xtext, &d);
	bool ascii = dsn_ascii(d.data);
	buf_free(&d);
	return ascii;
}

static bool message_global(const struct dsn_input *in, const struct dsn_message *m)
{
	if (m->utf8 || !decoded_ascii(m->envid))
		return true;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!dsn_ascii(m->rcpt[i].addr) || !dsn_ascii(m->rcpt[i].reply) || !decoded_ascii(m->rcpt[i].orcpt))
			return true;
	if (in->nmsg > 1) {	/* a summary quotes each Subject */
		char *subj = dsn_subject_of(m->headers, m->headers_len);
		bool ascii = dsn_ascii(subj);
		free(subj);
		if (!ascii)
			return true;
	}
	return false;
}

bool dsn_is_global(const struct dsn_input *in)
{
	for (size_t k = 0; k < in->nmsg; k++)
		if (message_global(in, &in->msg[k]))
			return true;
	return !dsn_ascii(in->sender);
}
