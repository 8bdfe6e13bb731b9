/*
 * sendmail_args.h - the sendmail command's arguments, as Sendmail and
 * Postfix sendmail(1) take them (sendmail_args.c).  The parser is pure:
 * it reads argv and fills struct sendmail_opts; it prints nothing, so
 * that its callers (and the unit tests) decide what a usage error shows.
 */
#ifndef OUTBOX_SENDMAIL_ARGS_H
#define OUTBOX_SENDMAIL_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/queue.h"

enum sendmail_mode {
	SM_SEND,	/* -bm, the default: read a message and submit it */
	SM_INIT,	/* -bi, -I: newaliases */
	SM_LIST,	/* -bp: mailq */
	SM_FLUSH,	/* -q, -qID, -q30m: retry what waits */
	SM_SMTP,	/* -bs: SMTP on stdin and stdout */
};

struct sendmail_opts {
	enum sendmail_mode mode;
	bool t, i, verbose;
	const char *from;	/* -f / -r; NULL when not given */
	const char *fullname;	/* -F */
	const char *conf;	/* -C */
	const char *qarg;	/* what follows -q: an ID, an interval, Rsite, or "" */
	char **rcpt;		/* the arguments after the options: a tail of argv */
	int nrcpt;
	unsigned ignored;	/* flags accepted and ignored (the table in sendmail_args.c) */
	/* the DSN request (RFC 3461): -N for every recipient (NOTIFY_*, 0
	 * when not given), -R, -V as given (text; NULL when not given) */
	unsigned notify;
	enum dsn_ret ret;
	const char *envid;
};

/* A flag that is accepted and has no effect, and why (outbox(1) has the
 * same list). */
struct sendmail_ignored {
	const char *flag;	/* "-oem"; "-o" for every other -oX */
	bool value;		/* takes a value: -B 8BITMIME or -B8BITMIME */
	const char *why;
};
extern const struct sendmail_ignored sendmail_ignored[];

/* -V's text as the ENVID parameter's xtext, appended to out. */
void sendmail_envid_xtext(const char *envid, struct buf *out);

/* 0, or 64 (EX_USAGE) with *what and *arg saying what was wrong. */
int sendmail_parse_args(int argc, char **argv, struct sendmail_opts *o, const char **what,
			const char **arg);

#endif
