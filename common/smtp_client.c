/*
 * smtp_client.c - opening an SMTP session to the upstream.  See
 * smtp_client.h.  smtp_open() reads top to bottom as the protocol runs.
 */
#include "smtp_client.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>

#include "auth.h"
#include "escape.h"
#include "log.h"

void smtp_client_init(struct smtp_client *s)
{
	memset(s, 0, sizeof *s);
	net_init(&s->net);
	smtp_reply_init(&s->reply);
}

int smtp_fail(struct smtp_client *s, enum smtp_stage st, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->fail_text, sizeof s->fail_text, fmt, ap);
	va_end(ap);
	s->fail_stage = st;
	s->fail_code = code;
	s->fail_hint = NULL;
	return -1;
}

enum smtp_verdict smtp_classify(enum smtp_stage st, int code)
{
	bool transaction = st == ST_MAIL || st == ST_RCPT || st == ST_DATA || st == ST_DOT;
	if (code / 100 == 2 || (code == 354 && st == ST_DATA))
		return V_OK;
	if (code == 421)
		return V_SESSION;
	if (transaction && ((code >= 500 && code <= 503) || code == 530))
		return V_SESSION;	/* our syntax or sequence, or our missing login: never the message's fault */
	if ((transaction || st == ST_LOCAL) && code / 100 == 5)
		return V_PERM;
	return V_TEMP;	/* 4xx; DNS, connect, greeting, EHLO, TLS, AUTH; no reply */
}

/* Does reply ("535 5.7.139 text", the code first) match?  code: exact,
 * or 4 / 5 for any of that class; status: the enhanced code right after
 * it, NULL for any; text: words in it (any case), NULL for any. */
static bool reply_matches(const char *reply, int code, int want, const char *status, const char *text)
{
	const char *p = reply;
	if (want >= 100 ? want != code : want != code / 100)
		return false;
	while (*p && *p != ' ' && *p != '-')	/* past the code */
		p++;
	while (*p == ' ' || *p == '-')
		p++;
	size_t sl = status ? strlen(status) : 0;
	if (status && (strncmp(p, status, sl) != 0 || (p[sl] != ' ' && p[sl] != '\0')))
		return false;
	return !text || strcasestr(reply, text);
}

/* Replies that report a provider's quota or rate limit (SPEC "Relays"),
 * matched as reply_matches() says on the whole reply (every line: a
 * provider may name the quota on a later one).  Keep outbox.conf(5)
 * QUOTA REPLIES in step. */
static const struct quota_reply {
	int code;
	const char *status;
	const char *text;
	unsigned hold;		/* seconds the relay is held back */
} quota_replies[] = {
	{ 550, "5.4.5", NULL, 3600 },			/* Gmail: daily sending or relay quota */
	{ 554, "5.2.0", "QuotaExceeded", 3600 },	/* Microsoft 365: SubmissionQuotaExceededException */
	{ 432, "4.3.2", NULL, 60 },			/* Microsoft 365: concurrent connections */
	{ 421, "4.7.0", NULL, 300 },			/* Gmail: try again later */
	{ 4, "4.7.28", NULL, 600 },			/* Gmail: unusual rate */
	{ 4, NULL, "rate limit", 300 },
	/* not "quota" alone: 452 4.2.2 is one recipient's full mailbox */
};

unsigned smtp_quota_hold(int code, const char *text)
{
	if (code < 400 || code > 599)
		return 0;
	for (size_t i = 0; i < ARRAY_LEN(quota_replies); i++) {
		const struct quota_reply *q = &quota_replies[i];
		if (reply_matches(text, code, q->code, q->status, q->text))
			return q->hold;
	}
	return 0;
}

/* What auth_once() puts after a final reply when the server first
 * answered the token with a 334 error (RFC 7628 3.2.2: base64 JSON,
 * e.g. Gmail's {"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}). */
#define TOKEN_ERROR "token error: "

/*
 * What to do about a refused login, by the provider's reply: the first
 * entry that matches (reply_matches) wins.  Keep outbox.conf(5) and
 * outboxd(8) in step.  The replies, as the providers send them:
 *  Microsoft 365, 5.7.139 and 5.7.3: "535 5.7.139 Authentication
 *   unsuccessful, basic authentication is disabled.", "535 5.7.139
 *   Authentication unsuccessful, SmtpClientAuthentication is disabled
 *   for the Tenant. Visit https://aka.ms/smtp_auth_disabled ...", "535
 *   5.7.3 Authentication unsuccessful" (the failure reply of [MS-SMTPNTLM]
 *   2.2.1.4; learn.microsoft.com/exchange/clients-and-mobile-in-exchange-
 *   online/authenticated-client-smtp-submission; the texts as quoted in
 *   rpremraj/mailR#107, nodemailer#1484, MailKit#700).
 *  Gmail (support.google.com/a/answer/3726730, "Gmail SMTP errors and
 *   codes"; the texts as quoted in nodemailer#1656 and others):
 *   "534-5.7.9 Application-specific password required. Learn more at /
 *   534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor",
 *   "535-5.7.8 Username and Password not accepted. For more information,
 *   go to / 535 5.7.8 https://support.google.com/mail/?p=BadCredentials",
 *   "534-5.7.14 <https://accounts.google.com/signin/continue?...> Please
 *   log in via your web browser and / 534-5.7.14 then try again.",
 *   "530 5.7.0 Authentication Required" (RFC 4954 6: "530 5.7.0
 *   Authentication required"; not Gmail's "530 5.7.0 Must issue a
 *   STARTTLS command first").
 *  A refused XOAUTH2 or OAUTHBEARER token: 334 and the error, then the
 *   final reply (Gmail: 535 5.7.8), which TOKEN_ERROR follows.
 */
static const struct auth_hint {
	int code;
	const char *status;
	const char *text;
	const char *hint;
} auth_hints[] = {
	{ 5, NULL, TOKEN_ERROR, "the access token was refused: outbox oauth2 login" },
	{ 535, "5.7.139", "basic authentication is disabled", "switch to OAuth2: outbox setup microsoft365" },
	{ 535, "5.7.139", "SmtpClientAuthentication is disabled",
	  "enable SMTP AUTH for the tenant (Exchange admin center, Settings, Mail flow): OAuth2 needs it too" },
	{ 535, "5.7.139", NULL, "basic authentication refused: switch to OAuth2: outbox setup microsoft365" },
	{ 535, "5.7.3", NULL, "enable Authenticated SMTP for the mailbox in the Microsoft 365 admin center, "
			      "or check the credentials" },
	{ 534, "5.7.9", NULL, "make an app password (Google account, Security, App passwords) and put it "
			      "in password_file" },
	{ 534, "5.7.14", NULL, "sign in to the account in a web browser once, then use an app password or "
			       "OAuth2: outbox setup gmail" },
	{ 535, "5.7.8", NULL, "check user and password_file" },
	{ 530, "5.7.0", "Authentication Required", "the server wants a login: set user and password_file "
						   "(or OAuth2)" },
};

const char *smtp_auth_hint(const char *reply)
{
	const char *r = reply ? reply : "";
	bool coded = isdigit((unsigned char)r[0]) && isdigit((unsigned char)r[1]) && isdigit((unsigned char)r[2]);
	int code = coded ? (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0') : 0;
	for (size_t i = 0; i < ARRAY_LEN(auth_hints); i++) {
		const struct auth_hint *h = &auth_hints[i];
		if (reply_matches(r, code, h->code, h->status, h->text))
			return h->hint;
	}
	return NULL;
}

const char *smtp_last_reply(const struct smtp_client *s, char *out, size_t n)
{
	return smtp_reply_line(&s->reply, out, n);
}

int smtp_send(struct smtp_client *s, const void *p, size_t n, enum smtp_stage st)
{
	struct err e;
	if (net_write(&s->net, p, n, &e) < 0)
		return smtp_fail(s, st, 0, "%s", e.msg);
	return 0;
}

/* Add the CRLF lines in p to the transcript, each after prefix, with
 * control characters escaped. */
static void transcribe(struct smtp_client *s, const char *prefix, const char *p, size_t n)
{
	char line[1100], safe[1100];
	while (s->transcript && n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t l = nl ? (size_t)(nl - p) + 1 : n;
		size_t t = l;
		while (t > 0 && (p[t - 1] == '\n' || p[t - 1] == '\r'))
			t--;
		snprintf(line, sizeof line, "%.*s", (int)(t < 1000 ? t : 1000), p);
		buf_printf(s->transcript, "%s%s\n", prefix, log_safe(line, safe, sizeof safe));
		p += l;
		n -= l;
	}
}

/* Read until the input holds a whole reply (its last line has no '-'
 * after the code); returns its length.  Each octet is looked at once,
 * and a reply is refused past SMTP_REPLY_MAX octets. */
static long reply_end(struct smtp_client *s, enum smtp_stage st)
{
	struct err e;
	size_t scanned = 0;	/* complete lines looked at so far */
	for (;;) {
		const char *in = s->net.in.data;
		size_t len = s->net.in.len;
		const char *nl;
		while (in && (nl = memchr(in + scanned, '\n', len - scanned))) {
			size_t start = scanned;
			scanned = (size_t)(nl - in) + 1;
			if (scanned - start < 5 || in[start + 3] != '-')
				return (long)scanned;
		}
		if (len - scanned > SMTP_REPLY_LINE_MAX)
			return smtp_fail(s, st, 0, "protocol error: reply line too long");
		if (scanned > SMTP_REPLY_MAX)
			return smtp_fail(s, st, 0, "protocol error: reply longer than %d octets",
					 SMTP_REPLY_MAX);
		if (net_fill(&s->net, &e) < 0)
			return smtp_fail(s, st, 0, "%s", e.msg);
	}
}

int smtp_read_reply(struct smtp_client *s, enum smtp_stage st)
{
	struct err e;
	size_t used;
	long n = reply_end(s, st);
	if (n < 0)
		return -1;
	if (smtp_reply_parse(s->net.in.data, (size_t)n, &s->reply, &used, &e) != 1)
		return smtp_fail(s, st, 0, "protocol error: %s", e.msg);
	transcribe(s, "S: ", s->net.in.data, used);
	buf_consume(&s->net.in, used);
	return 0;
}

/* Send one command line and read its reply; expect class cls (2 or 3). */
static int command(struct smtp_client *s, enum smtp_stage st, int cls, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int command(struct smtp_client *s, enum smtp_stage st, int cls, const char *fmt, ...)
{
	char line[1024], r[SMTP_REPLY_SHOWN + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line - 2)
		return smtp_fail(s, st, 0, "command longer than %zu octets", sizeof line - 3);
	memcpy(line + n, "\r\n", 3);
	const char *arg = st == ST_AUTH ? strchr(line + 5, ' ') : NULL;	/* AUTH arguments not shown */
	transcribe(s, "C: ", line, arg ? (size_t)(arg - line) : (size_t)n);
	if (smtp_send(s, line, (size_t)n + 2, st) < 0 || smtp_read_reply(s, st) < 0)
		return -1;
	if (s->reply.code / 100 != cls)
		return smtp_fail(s, st, s->reply.code, "%s", smtp_last_reply(s, r, sizeof r));
	return 0;
}

static int expect_reply(struct smtp_client *s, enum smtp_stage st, int cls)
{
	char r[SMTP_REPLY_SHOWN + 1];
	if (smtp_read_reply(s, st) < 0)
		return -1;
	if (s->reply.code / 100 != cls)
		return smtp_fail(s, st, s->reply.code, "%s", smtp_last_reply(s, r, sizeof r));
	return 0;
}

static void parse_ehlo(struct smtp_client *s)
{
	static const struct { const char *kw; unsigned bit; } exts[] = {
		{ "PIPELINING", EXT_PIPELINING }, { "SIZE", EXT_SIZE }, { "8BITMIME", EXT_8BITMIME },
		{ "SMTPUTF8", EXT_SMTPUTF8 }, { "STARTTLS", EXT_STARTTLS }, { "AUTH", EXT_AUTH },
		{ "CHUNKING", EXT_CHUNKING }, { "DSN", EXT_DSN },
	};
	char *text = xstrdup(s->reply.text.data ? s->reply.text.data : ""), *save = NULL;
	s->ext = 0;
	s->size_max = 0;
	s->auth_offer = 0;
	char *line = strtok_r(text, "\n", &save);	/* first line: the server's name */
	while ((line = strtok_r(NULL, "\n", &save))) {
		size_t kl = strcspn(line, " =");
		for (size_t i = 0; i < ARRAY_LEN(exts); i++) {
			if (strlen(exts[i].kw) != kl || strncasecmp(line, exts[i].kw, kl) != 0)
				continue;
			s->ext |= exts[i].bit;
			if (exts[i].bit == EXT_SIZE && line[kl])
				s->size_max = strtoull(line + kl + 1, NULL, 10);
			if (exts[i].bit == EXT_AUTH && line[kl])
				s->auth_offer |= sasl_parse_offer(line + kl + 1);
		}
	}
	free(text);
}

static int ehlo(struct smtp_client *s)
{
	if (command(s, ST_EHLO, 2, "EHLO %s", s->helo) < 0)
		return -1;
	parse_ehlo(s);
	return 0;
}

static int starttls(struct smtp_client *s, struct tls_client *t)
{
	struct err e;
	if (!(s->ext & EXT_STARTTLS))
		return smtp_fail(s, ST_STARTTLS, 0, "the server does not offer STARTTLS "
				 "(tls = starttls refuses to send in clear)");
	if (command(s, ST_STARTTLS, 2, "STARTTLS") < 0)
		return -1;
	if (net_start_tls(&s->net, t, s->host, &e) < 0)
		return smtp_fail(s, ST_TLS, 0, "%s", e.msg);
	return ehlo(s);
}

/* AUTH LOGIN: two challenges, user then password. */
static int auth_login(struct smtp_client *s, const char *user, const char *secret)
{
	struct buf b;
	int rc;
	buf_init(&b);
	base64_add(&b, user, strlen(user));
	rc = command(s, ST_AUTH, 3, "AUTH LOGIN %s", b.data);
	if (rc == 0) {
		buf_reset(&b);
		base64_add(&b, secret, strlen(secret));
		buf_add(&b, "\r\n", 2);
		rc = smtp_send(s, b.data, b.len, ST_AUTH);
		explicit_bzero(b.data, b.len);
		if (rc == 0)
			rc = expect_reply(s, ST_AUTH, 2);
	}
	buf_free(&b);
	return rc;
}

#define TOKEN_ERROR_MAX 200

/* The error a 334 carries after a refused token (base64 JSON), decoded
 * and escaped, within n octets; the text as it came if it is not base64. */
static void token_error(const struct smtp_reply *r, char *out, size_t n)
{
	const char *t = r->text.data ? r->text.data : "";
	unsigned char raw[TOKEN_ERROR_MAX * 2];
	size_t len = 0;
	if (mbedtls_base64_decode(raw, sizeof raw, &len, (const unsigned char *)t, strlen(t)) != 0) {
		len = strlen(t) < sizeof raw ? strlen(t) : sizeof raw;
		memcpy(raw, t, len);
	}
	esc_copy(out, n, (const char *)raw, len);
}

static int auth_once(struct smtp_client *s, const struct relay *r, unsigned mech, const char *secret)
{
	if (mech == SASL_LOGIN)
		return auth_login(s, r->user, secret);
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "AUTH %s ", sasl_name(mech));
	transcribe(s, "C: ", b.data, b.len - 1);	/* the response is not shown */
	sasl_initial_response(mech, r->user, secret, s->host, s->net.port, &b);
	buf_add(&b, "\r\n", 2);
	int rc = smtp_send(s, b.data, b.len, ST_AUTH);
	explicit_bzero(b.data, b.len);
	buf_free(&b);
	if (rc < 0 || smtp_read_reply(s, ST_AUTH) < 0)
		return -1;
	char detail[TOKEN_ERROR_MAX] = "";
	if (s->reply.code == 334) {	/* OAuth error details: answer empty, get the final reply */
		token_error(&s->reply, detail, sizeof detail);
		if (smtp_send(s, "\r\n", 2, ST_AUTH) < 0 || smtp_read_reply(s, ST_AUTH) < 0)
			return -1;
	}
	if (s->reply.code / 100 != 2) {
		char r[SMTP_REPLY_SHOWN + 1];
		return smtp_fail(s, ST_AUTH, s->reply.code, "%s%s%s%s", smtp_last_reply(s, r, sizeof r),
				 *detail ? " (" TOKEN_ERROR : "", detail, *detail ? ")" : "");
	}
	return 0;
}

/* The relay's secret: its OAuth2 access token (fresh: not the cached
 * one), or what password_file or password_command give. */
static char *get_secret(struct smtp_client *s, const struct relay *r, bool fresh, struct err *e)
{
	if (!*r->oauth2_token_url)
		return secret_get(r, e);
	if (!s->token) {
		err_set(e, "built-in OAuth2 is not available to this program");
		return NULL;
	}
	return s->token(s->token_arg, r, fresh, e);
}

/* The mechanism for r given the server's offer: with OAuth2, auto means
 * a token mechanism (XOAUTH2, which Gmail and Microsoft 365 take, then
 * OAUTHBEARER). */
static unsigned choose_mechanism(const struct smtp_client *s, const struct relay *r)
{
	if (*r->oauth2_token_url && r->auth == AUTH_AUTO) {
		unsigned m = sasl_choose(AUTH_XOAUTH2, s->auth_offer);
		return m ? m : sasl_choose(AUTH_OAUTHBEARER, s->auth_offer);
	}
	return sasl_choose(r->auth, s->auth_offer);
}

static int authenticate(struct smtp_client *s, const struct relay *r)
{
	struct err e;
	if (!*r->user || r->auth == AUTH_NONE)
		return 0;
	if (!s->net.tls && !r->plaintext_auth)
		return smtp_fail(s, ST_AUTH, 0, "refusing to send AUTH without TLS");
	unsigned mech = choose_mechanism(s, r);
	if (!mech)
		return smtp_fail(s, ST_AUTH, 0, "no usable AUTH mechanism offered (wanted %s%s)",
				 auth_mode_name(r->auth), *r->oauth2_token_url ? ", with an OAuth2 token" : "");
	char *secret = get_secret(s, r, false, &e);
	if (!secret)
		return smtp_fail(s, ST_AUTH, 0, "%s", e.msg);
	int rc = auth_once(s, r, mech, secret);
	secret_free(secret);
	if (rc < 0 && s->fail_code && (*r->password_command || *r->oauth2_token_url)) {
		/* a token may have expired: get a fresh one and try once more */
		if (!(secret = get_secret(s, r, true, &e)))
			return smtp_fail(s, ST_AUTH, 0, "%s", e.msg);
		rc = auth_once(s, r, mech, secret);
		secret_free(secret);
	}
	if (rc == 0)
		s->auth_used = sasl_name(mech);
	else if (s->fail_code && (s->fail_hint = smtp_auth_hint(s->fail_text))) {
		size_t l = strlen(s->fail_text);	/* the log line, probe and outbox queue say it */
		snprintf(s->fail_text + l, sizeof s->fail_text - l, "; what to do: %s", s->fail_hint);
	}
	return rc;
}

static int open_once(struct smtp_client *s, const struct relay *r, struct tls_client *t)
{
	struct err e;
	int timeout_ms = (int)(r->timeout > 86400 ? 86400000 : r->timeout * 1000);
	smtp_close(s);
	snprintf(s->host, sizeof s->host, "%s", r->host);
	if (!*s->helo)
		local_hostname(s->helo, sizeof s->helo);
	s->auth_used = NULL;
	if (net_connect(&s->net, r->host, (int)r->port, timeout_ms, &e) < 0)
		return smtp_fail(s, ST_CONNECT, 0, "%s", e.msg);
	snprintf(s->relay, sizeof s->relay, "%s[%s]:%d", relay_label(r), s->net.addr, s->net.port);
	if (r->tls == TLS_IMPLICIT && net_start_tls(&s->net, t, s->host, &e) < 0) {
		smtp_fail(s, ST_TLS, 0, "%s", e.msg);
		goto fail;
	}
	if (expect_reply(s, ST_GREETING, 2) < 0 || ehlo(s) < 0)
		goto fail;
	if (r->tls == TLS_STARTTLS && starttls(s, t) < 0)
		goto fail;
	if (authenticate(s, r) < 0) {
		s->auth_failed = true;
		goto fail;
	}
	s->auth_failed = false;
	s->open = true;
	s->fail_text[0] = '\0';	/* whatever ended the previous session is over */
	s->fail_code = 0;
	return 0;
fail:
	if (s->fail_stage != ST_TLS && s->fail_stage != ST_CONNECT && s->net.fd >= 0)
		(void)smtp_send(s, "QUIT\r\n", 6, s->fail_stage);
	net_close(&s->net);
	s->open = false;
	return -1;
}

int smtp_open(struct smtp_client *s, const struct relay *r, struct tls_client *t)
{
	if (open_once(s, r, t) == 0)
		return 0;
	/* mbedTLS 3.6.6 refused a TLS 1.2 server's RSA-PSS signature
	 * (tls_compat.h): once more, and from now on, without RSA-PSS */
	if (s->fail_stage != ST_TLS || !tls_client_fall_back(t, &s->net))
		return -1;
	log_notice("relay %s: %s; trying TLS 1.2 without RSA-PSS signatures, the workaround for "
		   "mbedTLS 3.6.6 (outboxd(8))", s->relay, s->fail_text);
	return open_once(s, r, t);
}

void smtp_quit(struct smtp_client *s)
{
	if (s->open && smtp_send(s, "QUIT\r\n", 6, ST_LOCAL) == 0)
		(void)smtp_read_reply(s, ST_LOCAL);
	smtp_close(s);
}

void smtp_close(struct smtp_client *s)
{
	net_close(&s->net);
	s->open = false;
}

void smtp_client_free(struct smtp_client *s)
{
	smtp_close(s);
	smtp_reply_free(&s->reply);
}
