/*
 * headers.c - header parsing, address lists and generated fields.
 * See headers.h.
 */
#include "headers.h"


#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include "address.h"

/* Length of the field name at p (printable, no colon), or 0. */
static size_t field_name_len(const char *p, const char *end)
{
	const char *q = p;
	while (q < end && *q > 32 && *q < 127 && *q != ':')
		q++;
	return (q < end && *q == ':' && q > p) ? (size_t)(q - p) : 0;
}

void headers_parse(const char *msg, size_t len, struct header_list *h)
{
	const char *p = msg, *end = msg + len;
	memset(h, 0, sizeof *h);
	h->body_off = len;
	while (p < end) {
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
			h->body_off = (size_t)(p + 2 - msg);
			return;
		}
		size_t nl = field_name_len(p, end);
		if (nl == 0) {
			h->body_off = (size_t)(p - msg);	/* not a header: body starts */
			return;
		}
		const char *q = p;
		for (;;) {	/* the field runs on over folded lines */
			const char *lf = memchr(q, '\n', (size_t)(end - q));
			q = lf ? lf + 1 : end;
			if (q >= end || (*q != ' ' && *q != '\t'))
				break;
		}
		h->v = xrealloc(h->v, (h->n + 1) * sizeof *h->v);
		struct header *f = &h->v[h->n++];
		f->start = p;
		f->len = (size_t)(q - p);
		f->name_len = nl;
		f->value = p + nl + 1;
		f->value_len = f->len - nl - 1;
		p = q;
	}
}

void headers_free(struct header_list *h)
{
	free(h->v);
	memset(h, 0, sizeof *h);
}

bool header_is(const struct header *f, const char *name)
{
	return strlen(name) == f->name_len && strncasecmp(f->start, name, f->name_len) == 0;
}

const struct header *headers_find(const struct header_list *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (header_is(&h->v[i], name))
			return &h->v[i];
	return NULL;
}

/* One mailbox: the angle address if there was one, else the plain text. */
static int emit(struct buf *plain, struct buf *angle, bool had_angle,
		void (*add)(const char *, void *), void *arg, struct err *e)
{
	const char *a = had_angle ? angle->data : trim(plain->data ? plain->data : (char *)"");
	int rc = 0;
	const char *ew = a ? strstr(a, "=?") : NULL;
	if (had_angle && (!a || !*a))
		rc = err_set(e, "an empty address <> in an address list");
	else if (ew && strstr(ew + 2, "?="))	/* a display name without its <address> */
		rc = err_set(e, "an encoded word is not an address (RFC 2047 5): %s", a);
	else if (a && *a) {
		if (addr_check(a, e) < 0)
			rc = -1;
		else
			add(a, arg);
	}
	buf_reset(plain);
	buf_reset(angle);
	return rc;
}

int addrlist_parse(const char *v, size_t len, void (*add)(const char *addr, void *arg),
		   void *arg, struct err *e)
{
	struct buf plain, angle;
	bool in_angle = false, had_angle = false, quoted = false;
	int depth = 0, rc = 0;
	buf_init(&plain);
	buf_init(&angle);
	buf_adds(&plain, "");
	buf_adds(&angle, "");
	for (size_t i = 0; i < len && rc == 0; i++) {
		char c = v[i];
		struct buf *cur = in_angle ? &angle : &plain;
		if (c == '\r' || c == '\n')
			c = ' ';	/* unfold */
		if (depth > 0) {	/* inside a comment */
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (quoted) {
			if (c == '\\' && i + 1 < len) {
				buf_addc(cur, c);
				c = v[++i];
			} else if (c == '"') {
				quoted = false;
			}
			buf_addc(cur, c);
			continue;
		}
		switch (c) {
		case '"': quoted = true; buf_addc(cur, c); break;
		case '(': depth = 1; break;
		case '<':
			if (in_angle)
				rc = err_set(e, "'<' inside an angle address");
			in_angle = true;
			had_angle = true;
			buf_reset(&angle);
			break;
		case '>':
			if (!in_angle)
				rc = err_set(e, "'>' without a '<' before it");
			in_angle = false;
			break;
		case ':':	/* group name, or a source route inside <> */
			if (in_angle && (angle.len == 0 || angle.data[0] != '@'))
				rc = err_set(e, "':' inside an angle address that is no source route");
			else if (in_angle)
				buf_reset(&angle);	/* <@a.example,@b.example:user@c.example> */
			else
				buf_reset(&plain);
			break;
		case ',': case ';':
			if (in_angle) {
				buf_addc(cur, c);
				break;
			}
			rc = emit(&plain, &angle, had_angle, add, arg, e);
			had_angle = false;
			break;
		default:
			if (in_angle && (c == ' ' || c == '\t'))
				break;
			buf_addc(cur, c);
		}
	}
	if (rc == 0 && (quoted || in_angle || depth))
		rc = err_set(e, "unbalanced quote, comment or angle bracket in address list");
	if (rc == 0)
		rc = emit(&plain, &angle, had_angle, add, arg, e);
	buf_free(&plain);
	buf_free(&angle);
	return rc;
}

void header_add_date(struct buf *out, double when)
{
	char date[64];
	time_t t = (time_t)when;
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_printf(out, "Date: %s\r\n", date);
}

void header_add_message_id(struct buf *out, const char *domain)
{
	unsigned char rnd[8] = { 0 };
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		memset(rnd, 0, sizeof rnd);	/* time and pid still make it unique */
	buf_printf(out, "Message-ID: <%lx.%ld.", (unsigned long)time(NULL), (long)getpid());
	for (size_t i = 0; i < sizeof rnd; i++)
		buf_printf(out, "%02x", rnd[i]);
	buf_printf(out, "@%s>\r\n", addr_is_domain(domain) ? domain : "localhost");
}

static bool ascii_only(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

/* The length of the UTF-8 character that starts with c. */
static size_t char_len(unsigned char c)
{
	return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

/* An octet as it stands in a Q-encoded word (RFC 2047 section 4.2 and
 * the stricter rules of 5(3) for a phrase): 1 or 3 characters. */
static size_t q_width(unsigned char c)
{
	return isalnum(c) || c == ' ' || c == '!' || c == '*' || c == '+' || c == '-' || c == '/' ? 1 : 3;
}

void header_words(struct buf *out, const char *s, size_t col)
{
	size_t n = strlen(s);
	if (ascii_only(s, n) && col + n <= 76 && !strstr(s, "=?")) {
		buf_adds(out, s);
		return;
	}
	/* encoded words of at most 75 characters: 63 between "=?UTF-8?Q?" and "?=" */
	size_t i = 0;
	bool first = true;
	while (i < n) {
		size_t take = 0, width = 0;
		while (i + take < n) {
			size_t l = char_len((unsigned char)s[i + take]), w = 0;
			for (size_t k = 0; k < l && i + take + k < n; k++)
				w += q_width((unsigned char)s[i + take + k]);
			if (width + w > 63)
				break;
			take += l;
			width += w;
		}
		if (take == 0)
			take = 1;	/* (a stray octet) */
		if (i + take > n)
			take = n - i;
		buf_adds(out, first ? "=?UTF-8?Q?" : "\r\n =?UTF-8?Q?");
		for (size_t k = i; k < i + take; k++) {
			unsigned char c = (unsigned char)s[k];
			if (c == ' ')
				buf_addc(out, '_');
			else if (q_width(c) == 1)
				buf_addc(out, (char)c);
			else
				buf_printf(out, "=%02X", c);
		}
		buf_adds(out, "?=");
		first = false;
		i += take;
	}
}

void header_display_name(struct buf *out, const char *s)
{
	size_t n = strlen(s);
	if (!ascii_only(s, n)) {
		header_words(out, s, 0);
		return;
	}
	buf_addc(out, '"');	/* always quoted: valid whatever it holds */
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			continue;	/* no controls, no line breaks */
		if (s[i] == '"' || s[i] == '\\')
			buf_addc(out, '\\');
		buf_addc(out, s[i]);
	}
	buf_addc(out, '"');
}

void header_add_from(struct buf *out, const char *name, const char *addr)
{
	buf_adds(out, "From: ");
	if (name && *name) {
		header_display_name(out, name);
		buf_addc(out, ' ');
	}
	buf_printf(out, "<%s>\r\n", addr);
}

static bool is_resent(const struct header_list *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].name_len > 7 && strncasecmp(h->v[i].start, "Resent-", 7) == 0)
			return true;
	return false;
}

int headers_envelope(const struct header_list *h, void (*add)(const char *addr, void *arg),
		     void *arg, struct buf *kept, struct err *e)
{
	static const char *const plain[] = { "To", "Cc", "Bcc" };
	static const char *const resent[] = { "Resent-To", "Resent-Cc", "Resent-Bcc" };
	const char *const *fields = is_resent(h) ? resent : plain;
	for (size_t i = 0; i < h->n; i++) {
		const struct header *f = &h->v[i];
		bool is_rcpt = false;
		for (size_t j = 0; j < 3; j++)
			is_rcpt |= header_is(f, fields[j]);
		if (add && is_rcpt && addrlist_parse(f->value, f->value_len, add, arg, e) < 0)
			return err_set(e, "%.*s: %s", (int)f->name_len, f->start, e->msg);
		if (!header_is(f, "Bcc") && !header_is(f, "Resent-Bcc"))
			buf_add(kept, f->start, f->len);
	}
	return 0;
}
