/*
 * smtp_commands.c - the commands of the SMTP server session
 * (smtp_commands.h): EHLO and HELO, MAIL and RCPT with their ESMTP
 * parameters, DATA, RSET and the rest, and the transaction they build.
 *
 * Invariants:
 *  - a transaction (s->env) holds only what passed every check: each
 *    address addr_check()ed once rewritten and aliased, at most
 *    [queue] max_recipients of them; a refused RCPT is taken back whole;
 *  - a refused command changes nothing of the transaction;
 *  - after MAX_BAD_COMMANDS refusals the session ends with 421.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/address.h"
#include "../common/dsnparam.h"
#include "../common/log.h"
#include "../common/rewrite.h"
#include "../common/units.h"
#include "outboxd.h"
#include "smtp_commands.h"
#include "smtp_conn.h"

#define MAX_BAD_COMMANDS 20

/* ---- the transaction ---- */

static void add_rcpt(const char *addr, void *arg)
{
	struct session *s = arg;
	for (size_t i = 0; i < s->env.nrcpt; i++)
		if (strcasecmp(s->env.rcpt[i].addr, addr) == 0)
			return;	/* the same recipient twice gets one copy */
	envelope_add_rcpt(&s->env, addr);
}

/* ---- room on the spool ---- */

/* Below [queue] min_free (with need octets more to come), or after a
 * write that failed for want of room: the client gets 452 4.3.1 until
 * there is room (the intake says so in the log, once each way). */
static bool no_room(struct session *s, uint64_t need)
{
	return !intake_room(&s->d->intake, need);
}

/* Did the intake fail for want of room (below min_free, ENOSPC, EIO)? */
/* ---- commands ---- */

static void cmd_helo(struct session *s, const char *arg, bool esmtp)
{
	char size[32];
	if (!*arg) {
		sess_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	sess_tx_reset(s);
	snprintf(s->helo, sizeof s->helo, "%s", sess_helo_name_ok(arg) ? arg : "unknown");
	s->esmtp = esmtp;
	if (!esmtp) {
		sess_reply(s, "250 %s", s->d->hostname);
		return;
	}
	snprintf(size, sizeof size, "%llu", (unsigned long long)s->d->conf->queue.max_message_size);
	sess_reply(s, "250-%s", s->d->hostname);
	sess_reply(s, "250-PIPELINING");
	sess_reply(s, "250-SIZE %s", size);
	sess_reply(s, "250-8BITMIME");
	sess_reply(s, "250-SMTPUTF8");
	sess_reply(s, "250-ENHANCEDSTATUSCODES");
	sess_reply(s, "250-DSN");
	sess_reply(s, "250 HELP");
}

/* A parameter refused: 555 for one we do not know (RFC 5321 4.1.1.11),
 * 501 for a bad value or a second one (RFC 3461 4: a syntax error). */
#define UNSUPPORTED "555 5.5.4 Unsupported parameter"

/* ESMTP parameters of MAIL FROM (SIZE, BODY, SMTPUTF8; RET and ENVID
 * into m); returns 0 or sends the error reply. */
static int mail_params(struct session *s, const char *p, struct dsn_mail_req *m)
{
	char tmp[SMTP_CMD_LINE_MAX];
	snprintf(tmp, sizeof tmp, "%s", p);
	char *save = NULL;
	const char *why;
	for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		size_t k;
		enum dsn_take dsn = dsn_mail_param(t, m, &why);
		if (dsn == DSN_BAD) {
			sess_reply(s, "501 5.5.4 %s", why);
			return -1;
		} else if (dsn == DSN_TAKEN) {
			continue;
		} else if ((k = prefix_ci(t, "SIZE="))) {
			uint64_t v;
			if (parse_uint(t + k, UINT64_MAX, &v) < 0) {
				sess_reply(s, "501 5.5.4 Bad SIZE parameter");
				return -1;
			}
			s->declared_size = v;
		} else if ((k = prefix_ci(t, "BODY="))) {
			if (strcasecmp(t + k, "7BIT") != 0 && strcasecmp(t + k, "8BITMIME") != 0) {
				sess_reply(s, "501 5.5.4 Bad BODY parameter");
				return -1;
			}
		} else if (strcasecmp(t, "SMTPUTF8") == 0) {
			s->smtputf8 = true;
		} else {
			sess_reply(s, UNSUPPORTED);
			return -1;
		}
	}
	if (s->declared_size > s->d->conf->queue.max_message_size) {
		sess_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return -1;
	}
	return 0;
}

/* A MAIL refused once its parameters were read: they go with it. */
static void mail_undo(struct session *s, struct dsn_mail_req *m)
{
	s->smtputf8 = false;
	s->declared_size = 0;
	dsn_mail_req_free(m);
}

static void cmd_mail(struct session *s, const char *arg)
{
	char addr[ADDR_MAX + 1];
	const char *params;
	struct err e;
	size_t k = prefix_ci(arg, "FROM:");
	if (!s->helo[0]) {
		sess_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_tx) {
		sess_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (!k) {
		sess_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (smtp_path_parse(arg + k, true, addr, sizeof addr, &params, &e) < 0) {
		sess_reply(s, "501 5.1.7 Bad sender address syntax: %s", e.msg);
		return;
	}
	struct dsn_mail_req m = { .ret = RET_UNSET };
	if (*params && (!s->esmtp || mail_params(s, params, &m) < 0)) {
		if (!s->esmtp)
			sess_reply(s, "555 5.5.4 Parameters need EHLO");
		mail_undo(s, &m);
		return;
	}
	if (no_room(s, s->declared_size)) {
		sess_reply(s, NO_ROOM);
		mail_undo(s, &m);
		return;
	}
	char *sender = sender_rewrite(s->d->conf, addr, NULL);
	if (*sender && addr_check(sender, &e) < 0) {
		free(sender);
		sess_reply(s, "553 5.1.7 Error: sender address once qualified: %s", e.msg);
		mail_undo(s, &m);
		return;
	}
	envelope_init(&s->env);
	s->env.sender = sender;
	s->env.ret = m.ret;
	s->env.envid = m.envid;	/* the envelope's now */
	s->in_tx = true;
	sess_reply(s, "250 2.1.0 Ok");
}

/* ESMTP parameters of RCPT TO (NOTIFY and ORCPT into r); returns 0 or
 * sends the error reply. */
static int rcpt_params(struct session *s, const char *p, struct dsn_rcpt_req *r)
{
	char tmp[SMTP_CMD_LINE_MAX];
	snprintf(tmp, sizeof tmp, "%s", p);
	char *save = NULL;
	const char *why;
	if (!s->esmtp) {
		sess_reply(s, "555 5.5.4 Parameters need EHLO");
		return -1;
	}
	for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		enum dsn_take dsn = dsn_rcpt_param(t, r, &why);
		if (dsn == DSN_BAD)
			sess_reply(s, "501 5.5.4 %s", why);
		else if (dsn == DSN_NOT_OURS)
			sess_reply(s, UNSUPPORTED);
		if (dsn != DSN_TAKEN)
			return -1;
	}
	return 0;
}

/* The recipients from index from on (one RCPT, aliases expanded) carry
 * its DSN request. */
static void rcpt_dsn(struct session *s, size_t from, const struct dsn_rcpt_req *r)
{
	for (size_t i = from; i < s->env.nrcpt; i++) {
		s->env.rcpt[i].notify = r->notify;
		s->env.rcpt[i].orcpt = r->orcpt ? xstrdup(r->orcpt) : NULL;
	}
}

static void cmd_rcpt(struct session *s, const char *arg)
{
	char addr[ADDR_MAX + 1];
	const char *params;
	struct err e;
	size_t k = prefix_ci(arg, "TO:");
	if (!s->in_tx) {
		sess_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!k) {
		sess_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (smtp_path_parse(arg + k, false, addr, sizeof addr, &params, &e) < 0) {
		sess_reply(s, "501 5.1.3 Bad recipient address syntax: %s", e.msg);
		return;
	}
	struct dsn_rcpt_req r = { 0 };
	if (*params && rcpt_params(s, params, &r) < 0) {
		dsn_rcpt_req_free(&r);
		return;
	}
	size_t before = s->env.nrcpt;
	bool bad = rcpt_expand(s->d->conf, addr, add_rcpt, s, &e) < 0;
	/* or qualified or aliased beyond what a queue file takes */
	for (size_t i = before; i < s->env.nrcpt && !bad; i++)
		bad = addr_check(s->env.rcpt[i].addr, &e) < 0;
	bool too_many = s->env.nrcpt > s->d->conf->queue.max_recipients;
	if (bad || too_many)
		while (s->env.nrcpt > before)	/* take this RCPT back whole */
			free(s->env.rcpt[--s->env.nrcpt].addr);
	if (bad)
		sess_reply(s, "553 5.1.3 Error: recipient address once qualified: %s", e.msg);
	else if (too_many)
		sess_reply(s, "452 4.5.3 Error: too many recipients");
	else
		sess_reply(s, "250 2.1.5 Ok");
	if (!bad && !too_many)
		rcpt_dsn(s, before, &r);
	dsn_rcpt_req_free(&r);
}


static void cmd_data(struct session *s, const char *arg)
{
	struct err e;
	if (*arg) {
		sess_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_tx) {
		sess_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->env.nrcpt == 0) {
		sess_reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (no_room(s, s->declared_size)) {
		sess_reply(s, NO_ROOM);
		return;
	}
	struct origin o = { .way = s->is_unix ? WAY_SOCKET : WAY_TCP, .uid = s->uid,
			    .login = s->login, .helo = s->helo, .peer = s->is_unix ? "" : s->peer,
			    .esmtp = s->esmtp, .smtputf8 = s->smtputf8 };
	if (intake_begin(&s->d->intake, &s->intake, &s->env, &o, &e) < 0) {
		log_err("%s: cannot queue: %s", s->peer, e.msg);
		sess_reply(s, sess_no_room_after(s, &e) ? NO_ROOM : "451 4.3.0 Error: queue file write error");
		return;
	}
	s->writing = true;
	data_reader_init(&s->dr);
	s->state = S_DATA;
	sess_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_rset(struct session *s)
{
	sess_tx_reset(s);
	sess_reply(s, "250 2.0.0 Ok");
}

void sess_dispatch(struct session *s, char *line)
{
	static const struct {
		const char *verb;
		int kind;
	} verbs[] = {
		{ "EHLO", 1 }, { "HELO", 2 }, { "MAIL", 3 }, { "RCPT", 4 }, { "DATA", 5 },
		{ "RSET", 6 }, { "NOOP", 7 }, { "QUIT", 8 }, { "VRFY", 9 }, { "HELP", 10 },
		{ "EXPN", 11 }, { "STARTTLS", 12 }, { "AUTH", 12 }, { "BDAT", 12 }, { "ETRN", 12 },
	};
	size_t vlen = strcspn(line, " ");
	const char *arg = line + vlen;
	while (*arg == ' ')
		arg++;
	int kind = 0;
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (strlen(verbs[i].verb) == vlen && strncasecmp(line, verbs[i].verb, vlen) == 0)
			kind = verbs[i].kind;
	switch (kind) {
	case 1: cmd_helo(s, arg, true); return;
	case 2: cmd_helo(s, arg, false); return;
	case 3: cmd_mail(s, arg); break;
	case 4: cmd_rcpt(s, arg); break;
	case 5: cmd_data(s, arg); return;
	case 6: cmd_rset(s); return;
	case 7: sess_reply(s, "250 2.0.0 Ok"); return;
	case 8:
		sess_reply(s, "221 2.0.0 Bye");
		sess_flush(s);
		sess_close(s);
		return;
	case 9: sess_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message"); return;
	case 10: sess_reply(s, "214 2.0.0 See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY"); return;
	case 11: sess_reply(s, "502 5.5.1 EXPN not available"); break;
	case 12: sess_reply(s, "502 5.5.1 Error: command not implemented"); break;
	default: sess_reply(s, "500 5.5.2 Error: command not recognized"); break;
	}
	if (s->bad_commands >= MAX_BAD_COMMANDS) {
		sess_reply(s, "421 4.7.0 %s Error: too many errors", s->d->hostname);
		sess_flush(s);
		sess_close(s);
	}
}
