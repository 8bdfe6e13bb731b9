/*
 * escape.c - text from outside made safe for a log line or a terminal
 * (escape.h).
 */
#include "escape.h"

#include <stdio.h>

#include "util.h"

/* The length of the UTF-8 sequence s[0] starts, and its smallest code
 * point (to refuse overlong forms); 0 if s[0] starts none. */
static size_t utf8_lead(unsigned char c, unsigned *min)
{
	if (c >= 0xc2 && c <= 0xdf)
		return *min = 0x80, 2;
	if (c >= 0xe0 && c <= 0xef)
		return *min = 0x800, 3;
	if (c >= 0xf0 && c <= 0xf4)
		return *min = 0x10000, 4;
	return 0;
}

size_t esc_char_len(const unsigned char *s, size_t n)
{
	if (s[0] >= 0x20 && s[0] < 0x7f)
		return 1;
	unsigned min = 0;
	size_t len = utf8_lead(s[0], &min);
	if (len == 0 || len > n)
		return 0;
	unsigned cp = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
		return 0;	/* overlong, out of range, a surrogate, or a C1 control */
	return len;
}

size_t esc_copy(char *out, size_t cap, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t k = esc_char_len(u + i, n - i);
		size_t need = k ? k : 4;
		if (o + need >= cap)
			break;
		if (k)
			for (size_t j = 0; j < k; j++)
				out[o++] = (char)u[i + j];
		else
			o += (size_t)snprintf(out + o, 5, "\\x%02X", u[i]);
		i += k ? k : 1;
	}
	out[o] = '\0';
	return o;
}

void esc_buf(struct buf *b, const char *s, size_t n, bool json)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t k = esc_char_len(u + i, n - i);
		if (k) {
			size_t run = 0;	/* a run of showable characters at once */
			while (i + run < n && (k = esc_char_len(u + i + run, n - i - run)))
				run += k;
			buf_add(b, u + i, run);
			i += run;
			continue;
		}
		buf_printf(b, "%s\\x%02X", json ? "\\" : "", u[i]);
		i++;
	}
}
