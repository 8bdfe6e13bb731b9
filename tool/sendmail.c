/*
 * sendmail.c - the sendmail-compatible command (`sendmail`, `outbox
 * sendmail`).
 *
 * Reads a message on stdin (LF or CRLF), settles the envelope (-f/-r or
 * the user's [senders] address; recipients from the arguments and, with
 * -t, from To/Cc/Bcc with Bcc removed), adds Date:, Message-ID: and
 * From: when missing, and submits over the daemon's socket.  Exit 0 only
 * after the daemon's 250, which it sends once the message is fsync'd.
 * The daemon adds the Received: line that names the submitting user (it
 * knows the uid from SO_PEERCRED, which cannot be forged).  Only when
 * outboxd is not running is the message left in pickup/ instead
 * (pickup.c); a socket that refuses this user is exit 77 (submit.c).
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/address.h"
#include "../common/rewrite.h"
#include "../common/headers.h"
#include "../common/smtp.h"
#include "sendmail_args.h"
#include "tool.h"

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "sendmail: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "usage: sendmail [-t] [-i] [-f sender] [-F name] [-N dsn] [-R ret] [-V envid] [-v]"
			" [--] [recipient ...]"
			" | -bs | -q | -bi | -bp\n");
	return EX_USAGE;
}

static int read_stdin(struct buf *raw, uint64_t limit)
{
	for (;;) {
		buf_reserve(raw, 16384);	/* grows by doubling; small mail stays off mmap */
		ssize_t n = read(0, raw->data + raw->len, raw->cap - raw->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "sendmail: reading the message: %s\n", strerror(errno));
			return EX_IOERR;
		}
		if (n == 0)
			return 0;
		raw->len += (size_t)n;
		if (raw->len > limit + 65536) {
			fprintf(stderr, "sendmail: message larger than max_message_size\n");
			return EX_DATAERR;
		}
	}
}

struct rcpts {
	char **v;
	size_t n;
};

static void add_rcpt(const char *a, void *arg)
{
	struct rcpts *r = arg;
	r->v = xrealloc(r->v, (r->n + 1) * sizeof *r->v);
	r->v[r->n++] = xstrdup(a);
}

static const char *gecos_name(const struct passwd *pw)
{
	static char name[256];
	if (!pw || !pw->pw_gecos)
		return NULL;
	snprintf(name, sizeof name, "%.*s", (int)strcspn(pw->pw_gecos, ","), pw->pw_gecos);
	return name[0] ? name : NULL;
}

/* Build the message to submit: headers (some added), then the body. */
static int compose(const struct config *cf, const struct sendmail_opts *o, const char *msg, size_t len,
		   const char *sender, const struct passwd *pw, struct rcpts *r, struct buf *out)
{
	struct header_list h;
	char dom[256];
	int rc = 0;
	headers_parse(msg, len, &h);
	struct err e;
	if (headers_envelope(&h, o->t ? add_rcpt : NULL, r, out, &e) < 0) {
		fprintf(stderr, "sendmail: %s\n", e.msg);
		rc = EX_DATAERR;
	}
	if (rc == 0) {
		if (!headers_find(&h, "From"))
			header_add_from(out, o->fullname ? o->fullname : gecos_name(pw), *sender ? sender : "MAILER-DAEMON");
		if (!headers_find(&h, "Date"))
			header_add_date(out, now_real());
		if (!headers_find(&h, "Message-ID"))
			header_add_message_id(out, addr_domain(cf, dom, sizeof dom));
		buf_add(out, "\r\n", 2);
		size_t body = h.body_off;
		buf_add(out, msg + body, len - body);
	}
	headers_free(&h);
	return rc;
}

/* sendmail -q, -qID: what waits for a retry is tried now (the caller's
 * messages only, unless root or of outboxd's group: the daemon decides);
 * -q30m and other forms flush everything the caller may. */
static int flush_queue(const struct config *cf, const char *qarg)
{
	char *id = (char *)qarg;
	bool one = qarg && qid_valid(qarg);
	return control_request(cf, "FLUSH", one ? 1 : 0, one ? &id : NULL, false);
}

int sendmail_message(const struct config *cf, struct sendmail_opts *o, const char *raw, size_t rawlen)
{
	struct buf msg, out;
	struct rcpts r = { 0 };
	struct err e;
	bool ended;
	int rc = 0;
	struct passwd *pw = getpwuid(getuid());
	char login[64];
	if (pw && addr_is_local_name(pw->pw_name))
		snprintf(login, sizeof login, "%s", pw->pw_name);
	else
		snprintf(login, sizeof login, "uid%ld", (long)getuid());
	if (o->from && strcmp(o->from, "<>") == 0)
		o->from = "";
	for (const char *c = o->fullname; c && *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {	/* never into a header */
			fprintf(stderr, "sendmail: -F: a control character in the full name\n");
			return EX_DATAERR;
		}
	}
	if (o->from && *o->from && addr_check(o->from, &e) < 0) {
		fprintf(stderr, "sendmail: bad sender address %s: %s\n", o->from, e.msg);
		return EX_DATAERR;
	}
	for (int i = 0; i < o->nrcpt; i++) {
		if (addr_list_check(o->rcpt[i], &e) < 0) {
			fprintf(stderr, "sendmail: bad recipient address %s: %s\n", o->rcpt[i], e.msg);
			return EX_DATAERR;
		}
	}
	for (int i = 0; i < o->nrcpt; i++) {	/* "a@x, b@y" as one argument, as sendmail allows */
		char *copy = xstrdup(o->rcpt[i]), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			add_rcpt(trim(t), &r);
		free(copy);
	}
	buf_init(&msg);
	buf_init(&out);
	char *sender = sender_rewrite(cf, o->from, login);
	normalize_crlf(raw ? raw : "", rawlen, &msg, !o->i, &ended);
	rc = compose(cf, o, msg.data ? msg.data : "", msg.len, sender, pw, &r, &out);
	if (rc == 0 && r.n == 0) {
		fprintf(stderr, "sendmail: no recipients given%s\n", o->t ? " (none found in To, Cc or Bcc)" : "");
		rc = EX_USAGE;
	}
	if (rc == 0) {
		struct buf envid;
		buf_init(&envid);
		if (o->envid)
			sendmail_envid_xtext(o->envid, &envid);
		struct submission s = {
			.sender = sender, .rcpt = (const char *const *)r.v, .nrcpt = r.n,
			.msg = out.data, .len = out.len, .verbose = o->verbose,
			.ret = o->ret, .envid = o->envid ? envid.data : NULL, .notify = o->notify,
		};
		char id[QID_LEN + 1] = "", why[600];
		for (size_t i = 0; i < out.len; i++)
			if ((unsigned char)out.data[i] >= 0x80)
				s.eight_bit = true;
		s.smtputf8 = addr_needs_utf8(sender);
		for (size_t i = 0; i < r.n; i++)
			s.smtputf8 |= addr_needs_utf8(r.v[i]);
		rc = submit_smtp(cf, &s, id, why, sizeof why);
		if (rc && s.unreachable) {	/* outboxd down: leave it in pickup/ */
			char name[96];
			rc = pickup_write(cf, &s, name, sizeof name, why, sizeof why);
			if (!rc && o->verbose)
				fprintf(stderr, "sendmail: outboxd is not reachable; left in pickup/new/%s\n",
					name);
		}
		if (rc)
			fprintf(stderr, "sendmail: %s\n", why);
		else if (o->verbose && *id)
			fprintf(stderr, "sendmail: queued as %s\n", id);
		buf_free(&envid);
	}
	for (size_t i = 0; i < r.n; i++)
		free(r.v[i]);
	free(r.v);
	free(sender);
	buf_free(&msg);
	buf_free(&out);
	return rc;
}

int sendmail_main(int argc, char **argv, const char *conf_path)
{
	struct sendmail_opts o;
	const char *what, *bad_arg;
	struct buf raw;
	int rc = sendmail_parse_args(argc, argv, &o, &what, &bad_arg);
	if (rc)
		return usage_error(what, bad_arg);
	if (o.mode == SM_INIT)	/* newaliases: [aliases] is read by outboxd itself */
		return 0;
	struct config *cf = tool_config(o.conf ? o.conf : conf_path);
	if (o.mode == SM_LIST) {	/* = mailq */
		rc = control_request(cf, "QUEUE", 0, NULL, false);
		config_free(cf);
		return rc;
	}
	if (o.mode == SM_FLUSH || o.mode == SM_SMTP) {
		char why[600] = "";
		rc = o.mode == SM_FLUSH ? flush_queue(cf, o.qarg) : submit_session(cf, 0, 1, why, sizeof why);
		if (rc && *why)
			fprintf(stderr, "sendmail: %s\n", why);
		config_free(cf);
		return rc;
	}
	buf_init(&raw);
	rc = read_stdin(&raw, cf->queue.max_message_size);
	if (rc == 0)
		rc = sendmail_message(cf, &o, raw.data, raw.len);
	buf_free(&raw);
	config_free(cf);
	return rc;
}
