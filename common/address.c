/*
 * address.c - address syntax, SMTP path parsing and rewriting.
 * See address.h.  The syntax check is deliberately strict about what
 * could hurt (controls, brackets, over-long parts) and lenient about
 * what local programs really send (bare local names, UTF-8).
 */
#include "address.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


static bool is_atext(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* dot-atom or quoted-string, exactly the n octets at p. */
static bool local_part_ok(const char *p, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	if (p[0] == '"') {
		if (n < 2 || p[n - 1] != '"')
			return false;
		for (size_t i = 1; i < n - 1; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c == '\\') {
				if (++i >= n - 1 || (unsigned char)p[i] < 0x20 || p[i] == 0x7f)
					return false;
			} else if (c == '"' || c < 0x20 || c == 0x7f) {
				return false;
			}
		}
		return true;
	}
	if (p[0] == '.' || p[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '.') {
			if (p[i + 1] == '.')
				return false;
		} else if (!is_atext((unsigned char)p[i])) {
			return false;
		}
	}
	return true;
}

static bool domain_ok(const char *d, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	if (d[0] == '[') {	/* address literal */
		if (n < 3 || d[n - 1] != ']')
			return false;
		for (size_t i = 1; i < n - 1; i++) {
			unsigned char c = (unsigned char)d[i];
			if (c <= 0x20 || c >= 0x7f || c == '[' || c == ']' || c == '\\')
				return false;
		}
		return true;
	}
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!(isalnum(c) || c == '-' || c == '_' || c >= 0x80))
			return false;
		if (label == 0 && c == '-')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && d[n - 1] != '-';
}

bool addr_is_domain(const char *d)
{
	return domain_ok(d, strlen(d));
}

bool addr_is_local_name(const char *a)
{
	return local_part_ok(a, strlen(a)) && a[0] != '"';
}

/* The '@' that separates local part and domain (not one inside quotes). */
const char *addr_path_end(const char *p, size_t n)
{
	bool quoted = false;
	for (size_t i = 0; i < n; i++) {
		if (quoted && p[i] == '\\' && i + 1 < n)
			i++;
		else if (p[i] == '"')
			quoted = !quoted;
		else if (p[i] == '>' && !quoted)
			return p + i;
	}
	return NULL;
}

const char *addr_at(const char *a)
{
	const char *at = NULL;
	bool quoted = false;
	for (const char *p = a; *p; p++) {
		if (quoted && *p == '\\' && p[1]) {
			p++;
		} else if (*p == '"') {
			quoted = !quoted;
		} else if (*p == '@' && !quoted) {
			at = p;
		}
	}
	return at;
}

int addr_check(const char *a, struct err *e)
{
	size_t n = strlen(a);
	if (n == 0)
		return err_set(e, "empty address");
	if (n > ADDR_MAX)
		return err_set(e, "address longer than %d octets", ADDR_MAX);
	const char *at = addr_at(a);
	if (!at) {
		if (!local_part_ok(a, n))
			return err_set(e, "bad address syntax");
		return 0;
	}
	if (!local_part_ok(a, (size_t)(at - a)))
		return err_set(e, "bad local part in address");
	if (!domain_ok(at + 1, strlen(at + 1)))
		return err_set(e, "bad domain in address");
	return 0;
}

int addr_list_check(const char *list, struct err *e)
{
	char tmp[ADDR_MAX + 1];
	const char *p = list;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0 || n > ADDR_MAX)
			return err_set(e, n ? "address too long" : "empty address in list");
		memcpy(tmp, p, n);
		tmp[n] = '\0';
		if (addr_check(tmp, e) < 0)
			return -1;
		p = strchr(p, ',');
		if (!p)
			return 0;
		p++;
	}
}

bool addr_needs_utf8(const char *a)
{
	for (; *a; a++)
		if ((unsigned char)*a >= 0x80)
			return true;
	return false;
}

int smtp_path_parse(const char *arg, bool allow_null, char *out, size_t n,
		    const char **params, struct err *e)
{
	const char *p = arg, *end;
	while (*p == ' ')
		p++;
	if (*p == '<') {
		p++;
		if (*p == '@') {	/* source route: <@a,@b:user@c> */
			const char *colon = strchr(p, ':');
			if (!colon)
				return err_set(e, "bad source route");
			p = colon + 1;
		}
		end = p;
		bool quoted = false;
		for (; *end && (quoted || *end != '>'); end++) {
			if (quoted && *end == '\\' && end[1])
				end++;
			else if (*end == '"')
				quoted = !quoted;
		}
		if (*end != '>')
			return err_set(e, "missing '>' in address");
	} else {
		end = p + strcspn(p, " ");
	}
	size_t len = (size_t)(end - p);
	if (len == 0 && !allow_null)
		return err_set(e, "empty address not allowed here");
	if (len >= n || len > ADDR_MAX)
		return err_set(e, "address too long");
	memcpy(out, p, len);
	out[len] = '\0';
	if (len && addr_check(out, e) < 0)
		return -1;
	if (*end == '>')
		end++;
	if (*end && *end != ' ')
		return err_set(e, "garbage after address");
	while (*end == ' ')
		end++;
	*params = end;
	return 0;
}
