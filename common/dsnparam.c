/*
 * dsnparam.c - the syntax of the DSN request, RFC 3461 section 4
 * (dsnparam.h).
 *
 * Owns: xtext (check, decode, encode), the keywords of NOTIFY and RET,
 * the checks of ENVID and ORCPT with their length limits, and taking
 * one MAIL or RCPT parameter with its duplicate rule.  Every way in uses
 * these (daemon/smtp_commands.c, daemon/pickup.c, tool/sendmail_args.c)
 * and the queue record checks what it reads back with them (qrecord.c),
 * so a value that is accepted anywhere is accepted everywhere.
 *
 * INVARIANT (dsnparam.h): what is accepted is printable US-ASCII
 * without space.
 */
#include "dsnparam.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;	/* RFC 3461 4: upper case only */
}

static bool xchar(unsigned char c)
{
	return c >= '!' && c <= '~' && c != '+' && c != '=';
}

/* The octet at p[*i] decoded, *i moved on; -1 if malformed. */
static int xtext_next(const char *p, size_t n, size_t *i)
{
	unsigned char c = (unsigned char)p[*i];
	if (xchar(c)) {
		++*i;
		return c;
	}
	if (c != '+' || n - *i < 3)
		return -1;
	int h = hexval(p[*i + 1]), l = hexval(p[*i + 2]);
	if (h < 0 || l < 0)
		return -1;
	*i += 3;
	return h * 16 + l;
}

bool xtext_valid(const char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		int c = xtext_next(p, n, &i);
		if (c < 0x20 || c > 0x7e)	/* also -1 */
			return false;
	}
	return true;
}

int xtext_decode(const char *p, size_t n, struct buf *out)
{
	if (!xtext_valid(p, n))
		return -1;
	for (size_t i = 0; i < n;)
		buf_addc(out, (char)xtext_next(p, n, &i));
	return 0;
}

void xtext_encode(const char *p, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (xchar(c))
			buf_addc(out, (char)c);
		else
			buf_printf(out, "+%02X", c);
	}
}

static const struct {
	const char *name;
	unsigned bit;
} notify_words[] = {
	{ "SUCCESS", NOTIFY_SUCCESS }, { "FAILURE", NOTIFY_FAILURE }, { "DELAY", NOTIFY_DELAY },
};

unsigned dsn_notify_parse(const char *v)
{
	if (strcasecmp(v, "NEVER") == 0)
		return NOTIFY_NEVER;
	unsigned mask = 0;
	for (const char *p = v;;) {
		size_t n = strcspn(p, ","), i;
		for (i = 0; i < ARRAY_LEN(notify_words); i++)
			if (strlen(notify_words[i].name) == n
			    && strncasecmp(p, notify_words[i].name, n) == 0)
				break;
		if (i == ARRAY_LEN(notify_words) || (mask & notify_words[i].bit))
			return 0;	/* unknown, empty, NEVER in a list, or twice */
		mask |= notify_words[i].bit;
		if (!p[n])
			return mask;
		p += n + 1;
	}
}

bool dsn_notify_valid(unsigned notify)
{
	unsigned others = NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY;
	return notify == NOTIFY_NEVER || (notify && (notify & ~others) == 0);
}

const char *dsn_notify_format(unsigned notify, char out[DSN_NOTIFY_TEXT_MAX])
{
	out[0] = '\0';
	if (notify == NOTIFY_NEVER) {
		strcpy(out, "NEVER");
		return out;
	}
	for (size_t i = 0; i < ARRAY_LEN(notify_words); i++)
		if (notify & notify_words[i].bit) {
			if (out[0])
				strcat(out, ",");
			strcat(out, notify_words[i].name);
		}
	return out;
}

enum dsn_ret dsn_ret_parse(const char *v)
{
	if (strcasecmp(v, "FULL") == 0)
		return RET_FULL;
	if (strcasecmp(v, "HDRS") == 0)
		return RET_HDRS;
	return RET_UNSET;
}

const char *dsn_ret_name(enum dsn_ret r)
{
	return r == RET_FULL ? "FULL" : r == RET_HDRS ? "HDRS" : "";
}

bool dsn_envid_valid(const char *v)
{
	size_t n = strlen(v);
	return n > 0 && n <= DSN_ENVID_VALUE_MAX && xtext_valid(v, n);
}

bool dsn_orcpt_valid(const char *v)
{
	size_t n = strlen(v), t = strspn(v, "abcdefghijklmnopqrstuvwxyz"
					  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
	if (n > DSN_ORCPT_VALUE_MAX || t == 0 || t > DSN_ADDR_TYPE_MAX || v[t] != ';')
		return false;
	return n > t + 1 && xtext_valid(v + t + 1, n - t - 1);
}

enum dsn_take dsn_mail_param(const char *param, struct dsn_mail_req *m, const char **why)
{
	size_t k;
	if ((k = prefix_ci(param, "RET="))) {
		enum dsn_ret r = dsn_ret_parse(param + k);
		if (m->ret != RET_UNSET || r == RET_UNSET) {
			*why = m->ret != RET_UNSET ? "Duplicate RET parameter" : "Bad RET parameter syntax";
			return DSN_BAD;
		}
		m->ret = r;
		return DSN_TAKEN;
	}
	if ((k = prefix_ci(param, "ENVID="))) {
		if (m->envid || !dsn_envid_valid(param + k)) {
			*why = m->envid ? "Duplicate ENVID parameter" : "Bad ENVID parameter syntax";
			return DSN_BAD;
		}
		m->envid = xstrdup(param + k);
		return DSN_TAKEN;
	}
	return DSN_NOT_OURS;
}

enum dsn_take dsn_rcpt_param(const char *param, struct dsn_rcpt_req *r, const char **why)
{
	size_t k;
	if ((k = prefix_ci(param, "NOTIFY="))) {
		unsigned n = dsn_notify_parse(param + k);
		if (r->notify || !n) {
			*why = r->notify ? "Duplicate NOTIFY parameter" : "Bad NOTIFY parameter syntax";
			return DSN_BAD;
		}
		r->notify = n;
		return DSN_TAKEN;
	}
	if ((k = prefix_ci(param, "ORCPT="))) {
		if (r->orcpt || !dsn_orcpt_valid(param + k)) {
			*why = r->orcpt ? "Duplicate ORCPT parameter" : "Bad ORCPT parameter syntax";
			return DSN_BAD;
		}
		r->orcpt = xstrdup(param + k);
		return DSN_TAKEN;
	}
	return DSN_NOT_OURS;
}

void dsn_mail_req_free(struct dsn_mail_req *m)
{
	free(m->envid);
	*m = (struct dsn_mail_req){ .ret = RET_UNSET };
}

void dsn_rcpt_req_free(struct dsn_rcpt_req *r)
{
	free(r->orcpt);
	*r = (struct dsn_rcpt_req){ 0 };
}
