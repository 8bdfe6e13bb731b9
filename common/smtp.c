/*
 * smtp.c - reply parsing, DATA reading, dot-stuffing, line endings.
 * See smtp.h for the invariants these functions keep.
 */
#include "smtp.h"

#include "escape.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->text);
}

void smtp_reply_free(struct smtp_reply *r)
{
	buf_free(&r->text);
	smtp_reply_init(r);
}

/* "x.y.z" at p (class 2, 4 or 5); returns its length or 0. */
static size_t enhanced_code(const char *p, size_t n, char cls)
{
	size_t i = 0;
	if (n < 5 || p[0] != cls || p[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < n && isdigit((unsigned char)p[i]) && i - start < 3)
			i++;
		if (i == start)
			return 0;
		if (part == 0) {
			if (i >= n || p[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && p[i] != ' ')
		return 0;
	return i;
}

int smtp_reply_parse(const char *in, size_t len, struct smtp_reply *r, size_t *consumed,
		     struct err *e)
{
	size_t pos = 0;
	buf_reset(&r->text);
	r->lines = 0;
	r->enh[0] = '\0';
	for (;;) {
		const char *nl = memchr(in + pos, '\n', len - pos);
		if (!nl) {
			if (len - pos > SMTP_REPLY_LINE_MAX)
				return err_set(e, "reply line too long");
			return 0;
		}
		const char *line = in + pos;
		size_t l = (size_t)(nl - line);
		if (l > 0 && line[l - 1] == '\r')
			l--;
		if (l < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1])
		    || !isdigit((unsigned char)line[2]) || line[0] < '2' || line[0] > '5'
		    || (l > 3 && line[3] != ' ' && line[3] != '-'))
			return err_set(e, "malformed reply line");
		int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (r->lines && code != r->code)
			return err_set(e, "reply code changed within a multi-line reply");
		r->code = code;
		const char *text = l > 4 ? line + 4 : line + l;
		size_t tl = l > 4 ? l - 4 : 0;
		size_t el = enhanced_code(text, tl, line[0]);
		if (el && r->lines == 0 && el < sizeof r->enh) {
			memcpy(r->enh, text, el);
			r->enh[el] = '\0';
		}
		if (el && r->enh[0] && el == strlen(r->enh) && memcmp(text, r->enh, el) == 0) {
			/* the first line's enhanced code, repeated: stripped (another one stays) */
			text += el;
			tl -= el;
			while (tl && *text == ' ')
				text++, tl--;
		}
		if (r->lines++)
			buf_addc(&r->text, '\n');
		buf_add(&r->text, text, tl);
		pos = (size_t)(nl - in) + 1;
		if (l == 3 || line[3] == ' ') {
			*consumed = pos;
			return 1;
		}
	}
}

/* The longest cut of s[0..len) within max octets that ends at a
 * character boundary: not inside a UTF-8 sequence nor an "\xHH" escape. */
static size_t boundary(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t p = max;
	while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80)
		p--;
	for (size_t q = p > 3 ? p - 3 : 0; q < p; q++)
		if (s[q] == '\\' && s[q + 1] == 'x') {
			p = q;
			break;
		}
	return p;
}

size_t smtp_reply_join(const struct smtp_reply *r, struct buf *out)
{
	const char *t = r->text.data ? r->text.data : "";
	size_t last = 0;
	buf_printf(out, "%03d%s%s", r->code, r->enh[0] ? " " : "", r->enh);
	for (;;) {
		t += strspn(t, " \t");
		size_t l = strcspn(t, "\n"), shown = l;
		while (shown > 0 && (t[shown - 1] == ' ' || t[shown - 1] == '\t'))
			shown--;
		if (shown > 0) {
			buf_addc(out, ' ');
			last = out->len;
			esc_buf(out, t, shown, false);
		}
		if (!t[l])
			return last ? last : out->len;
		t += l + 1;
	}
}

const char *smtp_reply_line(const struct smtp_reply *r, char *out, size_t n)
{
	struct buf b;
	if (n == 0)
		return out;
	buf_init(&b);
	size_t last = smtp_reply_join(r, &b);
	size_t room = n - 1, tail = b.len - last;
	if (b.len <= room) {
		memcpy(out, b.data, b.len + 1);
	} else if (last > 0 && tail + 4 <= room / 2) {	/* "head... last line" */
		size_t h = boundary(b.data, b.len, room - tail - 4);
		snprintf(out, n, "%.*s... %s", (int)h, b.data, b.data + last);
	} else {
		size_t h = boundary(b.data, b.len, room >= 3 ? room - 3 : 0);
		snprintf(out, n, "%.*s...", (int)h, b.data);
	}
	buf_free(&b);
	return out;
}

void data_reader_init(struct data_reader *d)
{
	memset(d, 0, sizeof *d);
	d->bol = true;
}

static void end_line(struct data_reader *d, struct buf *out)
{
	buf_add(out, "\r\n", 2);
	d->line_len = 0;
	d->dot_only = false;
}

/* Octets that need the state machine; everything else is copied in runs. */
static bool data_special(unsigned char c)
{
	return c == '\r' || c == '\n' || c == '\0' || c == '.' || c >= 0x80;
}

size_t data_reader_feed(struct data_reader *d, const char *in, size_t n, struct buf *out,
			bool *done)
{
	*done = false;
	buf_reserve(out, n + n / 16 + 4);
	for (size_t i = 0; i < n; i++) {
		/* fast path: a run of plain octets in the middle of a line */
		if (!d->cr && !d->bol && !d->dot_only) {
			size_t j = i;
			while (j < n && !data_special((unsigned char)in[j]))
				j++;
			if (j > i) {
				if (d->line_len + (j - i) > SMTP_TEXT_LINE_MAX)
					d->line_too_long = true;
				d->line_len += j - i;
				buf_add(out, in + i, j - i);
				i = j;
				if (i == n)
					break;
			}
		}
		char c = in[i];
		if (d->cr) {
			d->cr = false;
			if (c == '\n') {	/* CRLF: the end of a real line */
				if (d->dot_only) {
					*done = true;
					return i + 1;
				}
				end_line(d, out);
				d->bol = true;
				continue;
			}
			end_line(d, out);	/* bare CR */
			d->bare_fixed++;
		}
		if (c == '\r') {
			d->cr = true;
			continue;
		}
		if (d->bol) {
			d->bol = false;
			if (c == '.') {		/* leading dot: stuffing, or the end */
				d->dot_only = true;
				continue;
			}
		}
		d->dot_only = false;
		if (c == '\n') {		/* bare LF: a line break, never the end */
			end_line(d, out);
			d->bare_fixed++;
		} else if (c == '\0') {
			d->nul_dropped++;
		} else {
			if ((unsigned char)c >= 0x80)
				d->eight_bit = true;
			if (++d->line_len > SMTP_TEXT_LINE_MAX)
				d->line_too_long = true;
			buf_addc(out, c);
		}
	}
	return n;
}

size_t normalize_crlf(const char *in, size_t n, struct buf *out, bool dot_ends, bool *ended)
{
	size_t i = 0, line_start = out->len;
	*ended = false;
	while (i < n) {
		char c = in[i++];
		if (c != '\r' && c != '\n') {
			buf_addc(out, c);
			continue;
		}
		if (c == '\r' && i < n && in[i] == '\n')
			i++;
		if (dot_ends && out->len - line_start == 1 && out->data[line_start] == '.') {
			out->len = line_start;
			out->data[out->len] = '\0';
			*ended = true;
			return i;
		}
		buf_add(out, "\r\n", 2);
		line_start = out->len;
	}
	if (dot_ends && out->len - line_start == 1 && out->data[line_start] == '.') {
		out->len = line_start;	/* "." at the very end without a newline */
		out->data[out->len] = '\0';
		*ended = true;
	}
	return i;
}

void stuffer_init(struct stuffer *st)
{
	memset(st, 0, sizeof *st);
	st->bol = true;
	st->in_header = true;
	st->max_line = SMTP_LINE_OUT_MAX;
}

/* Before octet c: does the line break here? */
static bool break_before(const struct stuffer *st, unsigned char c)
{
	if (!st->max_line || st->line_len < st->max_line - STUFFER_BREAK_SLACK)
		return false;
	return (c & 0xC0) != 0x80 || st->line_len >= st->max_line;
}

void stuffer_feed(struct stuffer *st, const char *p, size_t n, struct buf *out)
{
	size_t lim = st->max_line ? st->max_line - STUFFER_BREAK_SLACK : SIZE_MAX;
	buf_reserve(out, n + n / 64 + 16);
	for (size_t i = 0; i < n; i++) {
		/* fast path: copy the rest of a line that stays within the limit */
		if (!st->bol && st->line_len < lim) {
			size_t room = lim - st->line_len, run = 0;
			while (run < room && i + run < n && p[i + run] != '\r' && p[i + run] != '\n')
				run++;
			if (run > 0) {
				buf_add(out, p + i, run);
				st->line_len += run;
				st->cr = false;
				i += run;
				if (i == n)
					break;
			}
		}
		unsigned char c = (unsigned char)p[i];
		if (c == '\n') {
			if (st->line_len == 0 && st->bol)
				st->in_header = false;	/* the empty line */
			buf_addc(out, '\n');
			st->bol = true;
			st->line_len = 0;
			st->cr = false;
			continue;
		}
		if (c == '\r') {
			buf_addc(out, '\r');
			st->cr = true;
			continue;
		}
		if (break_before(st, c)) {
			buf_add(out, st->in_header ? "\r\n " : "\r\n", st->in_header ? 3 : 2);
			st->line_len = st->in_header ? 1 : 0;
			st->bol = !st->in_header;
			st->lines_broken++;
		}
		if (st->bol && c == '.' && !st->chunked) {
			buf_addc(out, '.');
			st->line_len++;
		}
		st->bol = false;
		st->cr = false;
		buf_addc(out, (char)c);
		st->line_len++;
	}
}

void stuffer_end(struct stuffer *st, struct buf *out)
{
	if (!st->bol)
		buf_add(out, "\r\n", 2);
	if (!st->chunked)
		buf_add(out, ".\r\n", 3);
	st->bol = true;
}

void smtp_dotstuff(const char *msg, size_t len, struct buf *out)
{
	struct stuffer st;
	stuffer_init(&st);
	st.max_line = 0;
	stuffer_feed(&st, msg, len, out);
	stuffer_end(&st, out);
}
