/*
 * mime.c - encodings for the composer (mime.h).
 */
#include "mime.h"

#include <string.h>

#include "../../common/auth.h"

bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		unsigned c = *p++;
		size_t more;
		unsigned min, v;
		if (c == 0)
			return false;
		if (c < 0x80)
			continue;
		if (c >= 0xC2 && c <= 0xDF) { more = 1; min = 0x80; v = c & 0x1F; }
		else if (c >= 0xE0 && c <= 0xEF) { more = 2; min = 0x800; v = c & 0x0F; }
		else if (c >= 0xF0 && c <= 0xF4) { more = 3; min = 0x10000; v = c & 0x07; }
		else return false;
		if ((size_t)(end - p) < more)
			return false;
		for (size_t i = 0; i < more; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false;
			v = (v << 6) | (p[i] & 0x3F);
		}
		if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
			return false;
		p += more;
	}
	return true;
}

bool is_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

bool text_needs_qp(const char *s, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
			return true;
		if (c == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
			return true;
		if (c == '\n' || c == '\r') {
			if (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
				return true;
			col = 0;
		} else if (++col > 998) {
			return true;
		}
	}
	return n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t');
}

static const char hex[] = "0123456789ABCDEF";

void qp_encode(struct buf *out, const char *s, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;	/* the LF ends the line */
		if (c == '\n') {
			buf_adds(out, "\r\n");
			col = 0;
			continue;
		}
		bool at_eol = i + 1 >= n || s[i + 1] == '\n' || (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n');
		bool plain = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
		size_t w = plain ? 1 : 3;
		if (col + w > 75) {	/* a soft break keeps lines within 76 */
			buf_adds(out, "=\r\n");
			col = 0;
		}
		if (plain) {
			buf_addc(out, (char)c);
		} else {
			buf_addc(out, '=');
			buf_addc(out, hex[c >> 4]);
			buf_addc(out, hex[c & 15]);
		}
		col += w;
	}
	if (col)
		buf_adds(out, "\r\n");
}

void base64_lines(struct buf *out, const void *p, size_t n)
{
	const unsigned char *d = p;
	for (size_t i = 0; i < n; i += 57) {	/* 57 octets make 76 characters */
		base64_add(out, d + i, n - i < 57 ? n - i : 57);
		buf_adds(out, "\r\n");
	}
}

void filename_param(struct buf *out, const char *param, const char *name)
{
	size_t n = strlen(name);
	bool plain = is_ascii(name, n) && n < 60;
	for (size_t i = 0; plain && i < n; i++)
		if (name[i] < 0x20 || name[i] == '"' || name[i] == '\\' || name[i] == 0x7f)
			plain = false;
	if (plain) {
		buf_printf(out, ";\r\n\t%s=\"%s\"", param, name);
		return;
	}
	buf_printf(out, ";\r\n\t%s*=UTF-8''", param);	/* RFC 2231 section 4 */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$&+-.^_`|~", c))
			buf_addc(out, (char)c);
		else
			buf_printf(out, "%%%c%c", hex[c >> 4], hex[c & 15]);
	}
}
