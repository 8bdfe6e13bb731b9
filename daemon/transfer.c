/*
 * transfer.c - the SMTP transaction engine (transfer.h): the
 * transactions on an open upstream session, on one command queue.
 *
 * Each command is queued with the reply it expects; the replies are read
 * in order and applied by the handler of that kind, written below beside
 * the command it answers.  With PIPELINING the sender runs ahead (a whole
 * envelope, a batch of BDAT messages, the next envelope behind a final
 * "."); without it every command waits for its reply.
 *
 * With DATA (transfer_pipelined):
 *   [RSET] MAIL FROM, RCPT TO..., DATA
 *   354 -> the message, dot-stuffed, lines within 998 octets, ".",
 *          followed in the same write by the next queued message's
 *          envelope when there is one: one round trip per message
 *   reply to "." -> every accepted recipient gets that result
 * With BDAT (transfer_chunked, when the upstream offers CHUNKING and
 * PIPELINING and [relay] chunking is on): see CHUNKING below.
 *
 * Invariants:
 *  - A transaction that did not end with the reply to its final "."
 *    or to a successful BDAT LAST (MAIL refused, every recipient
 *    refused, DATA or a BDAT refused) leaves the server's transaction
 *    state unknown: the next MAIL on this session is preceded by a
 *    checked RSET (cmdq.open).  A refused RSET closes the session.
 *  - A reply that shows the session is unusable (421, or 500-503: our
 *    own syntax or sequence) breaks it: it is closed and every message
 *    not yet recorded is deferred, never bounced (smtp_classify).
 *  - A server that accepts a recipient without a sender, or asks for
 *    the message when no recipient was accepted, is confused about the
 *    transaction: the session is closed without sending anything more
 *    (a bare "." could deliver an empty message to somebody).
 *  - A finished message is handed back (transfer_source.done) while
 *    the upstream works on the next, exactly once, its results set.
 *
 * The engine knows its session and its source only: which message comes
 * next, and what a finished one means for the queue and the relay, are
 * the caller's (the pool's worker).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/dsnparam.h"
#include "../common/log.h"
#include "../common/smtp_pipe.h"
#include "transfer.h"

/* ---- the command queue ----
 * Every command written to the upstream is queued on the session's
 * command queue (smtp_pipe.h) with what its reply means; replies are
 * read in order, each judged once by the session layer, and applied by
 * the handler of its kind.  Without PIPELINING a command is written and
 * its reply read before the next one is queued. */
enum cmd_kind { C_RSET, C_MAIL, C_RCPT, C_DATA, C_DOT, C_BDAT };

struct transfer {
	struct smtp_client *s;	/* the caller's */
	struct smtp_pipe pipe;
	bool open;		/* the server has (or, with replies outstanding, may
				 * have) a mail transaction open: RSET before MAIL */
	bool open_now;		/* the same, from the replies read so far */
	/* during a run */
	const struct transfer_source *src;
	struct transfer_result *res;
};

struct transfer *transfer_new(struct smtp_client *s)
{
	struct transfer *t = xcalloc(1, sizeof *t);
	t->s = s;
	smtp_pipe_init(&t->pipe, s);
	return t;
}

void transfer_reset(struct transfer *t)
{
	smtp_pipe_reset(&t->pipe);
	t->open = t->open_now = false;
}

void transfer_free(struct transfer *t)
{
	if (!t)
		return;
	smtp_pipe_free(&t->pipe);
	free(t);
}

/* A network or local failure (no reply code) leaves the session unusable. */
static bool broken(const struct transfer *t)
{
	return t->s->fail_text[0] && t->s->fail_code == 0;
}

static void on_reply(struct transfer *t, const struct smtp_answer *ans);

/* Read the oldest outstanding reply and apply it.  A session failure
 * drops every expectation: nothing more is read on this session. */
static void read_one(struct transfer *t)
{
	struct smtp_answer ans;
	if (!smtp_pipe_read(&t->pipe, &ans))
		return;
	on_reply(t, &ans);
	if (ans.all_in)
		t->open = t->open_now;	/* every reply is in: known exactly */
}

static void read_all(struct transfer *t)
{
	while (t->pipe.n > 0)
		read_one(t);
}

/* Read the replies that belong to a (and the RSET before it). */
static void read_for(struct transfer *t, const struct attempt *a)
{
	while (t->pipe.n > 0 && t->pipe.q[t->pipe.head].ctx == a)
		read_one(t);
}

/* After a command is queued: without PIPELINING its reply is read now. */
static void sent(struct transfer *t)
{
	if (!(t->s->ext & EXT_PIPELINING))
		read_all(t);
}

#define EXPECT(k, stage, a, i) ((struct smtp_expect){ .kind = (k), .st = (stage), .ctx = (a), .arg = (i) })

/* Break the session over ans: it is closed after this attempt, and
 * everything not yet recorded is deferred with this reason. */
static void break_session(struct transfer *t, const struct smtp_answer *ans, const char *what)
{
	smtp_pipe_break(&t->pipe, ans, what);
}

/* The one place a reply becomes recipients' results (attempt_apply): a
 * provider's quota or rate reply defers, whatever its code, and holds
 * the relay back after this run (transfer_result.quota_hold). */
static void apply(struct transfer *t, struct attempt *a, size_t which, const struct smtp_answer *ans)
{
	struct transfer_result *res = t->res;
	if (ans->quota_hold > res->quota_hold) {
		res->quota_hold = ans->quota_hold;
		snprintf(res->quota_reply, sizeof res->quota_reply, "%.*s", (int)sizeof res->quota_reply - 1,
			 ans->line);
	}
	attempt_apply(a, which, ans->quota_hold ? V_TEMP : ans->v, ans->line);
}

/* ---- each command and the handler of its reply ---- */

/* RSET: a transaction may be open; a refusal ends the session. */
static void send_rset(struct transfer *t, struct attempt *a)
{
	t->open = false;
	smtp_pipe_cmd(&t->pipe, EXPECT(C_RSET, ST_LOCAL, a, 0), "RSET");
	sent(t);
}

static void rset_reply(struct transfer *t, const struct smtp_answer *ans)
{
	if (ans->code / 100 == 2)
		t->open_now = false;
	else
		break_session(t, ans, "RSET refused");
}

bool transfer_rset(struct transfer *t)
{
	send_rset(t, NULL);
	read_all(t);
	return !broken(t);
}

/* Append to the parameters p (n octets, NUL-terminated). */
static void param(char *p, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void param(char *p, size_t n, const char *fmt, ...)
{
	size_t len = strlen(p);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p + len, n - len, fmt, ap);
	va_end(ap);
}

/* The parameters of a's MAIL on this session. */
static void mail_params(const struct transfer *t, const struct attempt *a, char *p, size_t n)
{
	p[0] = '\0';
	if (t->s->ext & EXT_SIZE)
		param(p, n, " SIZE=%llu", (unsigned long long)a->size);
	if ((a->env.flags & ENV_8BITMIME) && (t->s->ext & EXT_8BITMIME))
		param(p, n, " BODY=8BITMIME");
	if (a->env.flags & ENV_SMTPUTF8)
		param(p, n, " SMTPUTF8");
	if (!(t->s->ext & EXT_DSN))
		return;	/* none of RFC 3461's: the report helper tells of "relayed" */
	if (a->env.ret != RET_UNSET)
		param(p, n, " RET=%s", a->env.ret == RET_FULL ? "FULL" : "HDRS");
	if (a->env.envid && dsn_envid_valid(a->env.envid))
		param(p, n, " ENVID=%s", a->env.envid);
}

/* The parameters of recipient r's RCPT on this session: RFC 3461's when
 * the relay offers DSN (the values as the intake took them; one that is
 * not valid xtext, impossible from the intake, is left out). */
static void rcpt_params(const struct transfer *t, const struct rcpt *r, char *p, size_t n)
{
	p[0] = '\0';
	if (!(t->s->ext & EXT_DSN))
		return;
	char notify[DSN_NOTIFY_TEXT_MAX];
	if (r->notify)
		param(p, n, " NOTIFY=%s", dsn_notify_format(r->notify, notify));
	if (r->orcpt && dsn_orcpt_valid(r->orcpt))
		param(p, n, " ORCPT=%s", r->orcpt);
}

static void send_mail(struct transfer *t, struct attempt *a)
{
	char params[SMTP_CMD_MAX / 2];
	mail_params(t, a, params, sizeof params);
	if (t->open)
		send_rset(t, a);
	t->open = true;	/* until a reply says otherwise */
	smtp_pipe_cmd(&t->pipe, EXPECT(C_MAIL, ST_MAIL, a, 0), "MAIL FROM:<%s>%s", a->env.sender, params);
	sent(t);
}

static void mail_reply(struct transfer *t, struct attempt *a, const struct smtp_answer *ans)
{
	if (ans->v == V_SESSION)
		return break_session(t, ans, "MAIL refused as a protocol error");
	a->mail_ok = ans->v == V_OK;
	if (a->mail_ok)
		t->open_now = true;
	else	/* every recipient gets the reply as its result */
		apply(t, a, RES_ALL, ans);
}

static void send_rcpt(struct transfer *t, struct attempt *a, size_t i)
{
	char params[SMTP_CMD_MAX / 2];
	rcpt_params(t, &a->env.rcpt[i], params, sizeof params);
	smtp_pipe_cmd(&t->pipe, EXPECT(C_RCPT, ST_RCPT, a, i), "RCPT TO:<%s>%s", a->env.rcpt[i].addr, params);
	sent(t);
}

/* "452 4.5.3 Too many recipients" (or a plain 452: RFC 5321 4.5.3.1.10),
 * not a provider's quota reply: the recipient goes in the next
 * transaction of the same message. */
static bool too_many_recipients(const struct smtp_answer *ans)
{
	if (ans->code != 452 || ans->quota_hold)
		return false;
	/* the text is optional (RFC 5321 4.2): a bare "452" has none */
	const char *enh = strnlen(ans->line, 4) == 4 ? ans->line + 4 : "";
	return !(enh[0] >= '0' && enh[0] <= '9') || strncmp(enh, "4.5.3", 5) == 0;
}

static void rcpt_reply(struct transfer *t, struct attempt *a, size_t i, const struct smtp_answer *ans)
{
	if (!a->mail_ok) {	/* refusals are the expected sequel; a 2xx is not */
		if (ans->v == V_OK)
			break_session(t, ans, "recipient accepted without a sender");
		return;
	}
	if (ans->v == V_SESSION)
		return break_session(t, ans, "RCPT refused as a protocol error");
	if (ans->v == V_OK) {
		a->res[i].accepted = true;
		a->taken++;
		return;
	}
	if (too_many_recipients(ans))
		return attempt_postpone_rcpt(a, i, ans->line);
	apply(t, a, i, ans);
}

/* MAIL, then RCPT for every pending recipient without a result yet (in
 * a later transaction of the message: those postponed in the last one;
 * without PIPELINING only while the sender is taken). */
static void send_envelope(struct transfer *t, struct attempt *a)
{
	a->mail_ok = a->data_go = false;
	a->taken = 0;
	send_mail(t, a);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (!(t->s->ext & EXT_PIPELINING) && (!a->mail_ok || broken(t)))
			return;
		if (a->env.rcpt[i].status == RCPT_PENDING && a->res[i].state == OUT_NONE)
			send_rcpt(t, a, i);
	}
}

/* DATA (without PIPELINING only when a recipient was accepted). */
static void send_data(struct transfer *t, struct attempt *a)
{
	if (!(t->s->ext & EXT_PIPELINING) && (a->taken == 0 || broken(t)))
		return;
	smtp_pipe_cmd(&t->pipe, EXPECT(C_DATA, ST_DATA, a, 0), "DATA");
	sent(t);
}

static void data_reply(struct transfer *t, struct attempt *a, const struct smtp_answer *ans)
{
	if (ans->code == 354) {
		if (a->taken == 0)
			return break_session(t, ans, "the server wants data but took no recipient");
		a->data_go = true;
		return;
	}
	if (a->taken == 0)
		return;	/* refused, as it should be */
	if (ans->v == V_SESSION || ans->v == V_OK)
		return break_session(t, ans, "unexpected reply to DATA");
	apply(t, a, RES_ACCEPTED, ans);
}

static void dot_reply(struct transfer *t, struct attempt *a, const struct smtp_answer *ans)
{
	t->open_now = false;	/* any reply to the final "." ends the transaction */
	if (ans->v == V_SESSION)
		return break_session(t, ans, "end of data refused as a protocol error");
	apply(t, a, RES_ACCEPTED, ans);
}

/* A BDAT's reply: the first refused one, else the LAST one's, is every
 * accepted recipient's result; a refused one leaves the transaction
 * state unknown, a LAST taken ends it. */
static void bdat_reply(struct transfer *t, struct attempt *a, const struct smtp_answer *ans)
{
	if (a->taken == 0)
		return;	/* no recipient: refusals expected */
	if (ans->v == V_SESSION)
		return break_session(t, ans, "BDAT refused as a protocol error");
	if (ans->v == V_OK && ans->x.last)
		t->open_now = false;
	if (ans->v != V_OK || ans->x.last)
		apply(t, a, RES_ACCEPTED, ans);	/* keeps the first result */
}

static void on_reply(struct transfer *t, const struct smtp_answer *ans)
{
	struct attempt *a = ans->x.ctx;
	switch ((enum cmd_kind)ans->x.kind) {
	case C_RSET: rset_reply(t, ans); break;
	case C_MAIL: mail_reply(t, a, ans); break;
	case C_RCPT: rcpt_reply(t, a, ans->x.arg, ans); break;
	case C_DATA: data_reply(t, a, ans); break;
	case C_DOT: dot_reply(t, a, ans); break;
	case C_BDAT: bdat_reply(t, a, ans); break;
	}
}

/* ---- the message octets ----
 * a's message from its queue file, encoded by the session layer: for
 * DATA dot-stuffed and ended with "." (any reply to it ends the
 * transaction), for BDAT as BDAT commands of about BODY_CHUNK octets
 * each.  The end stays queued, so what follows goes in the same write. */
static void queue_message(struct transfer *t, struct attempt *a, bool chunked)
{
	struct smtp_expect x = chunked ? EXPECT(C_BDAT, ST_DOT, a, 0) : EXPECT(C_DOT, ST_DOT, a, 0);
	if (!chunked)
		t->open = false;
	uint64_t broken = smtp_pipe_message(&t->pipe, a->fd, (off_t)a->body_off, a->size, chunked, x);
	if (broken)
		log_info("%s: %llu lines over %d octets were broken", a->id, (unsigned long long)broken,
			 SMTP_LINE_OUT_MAX);
	sent(t);
}

/* ---- the source ---- */

/* The next message from the source (batched: see transfer_source). */
static bool take_next(struct transfer *t, struct attempt *a, size_t batched)
{
	if (!t->src->next(t->src->arg, a, batched))
		return false;
	t->res->messages++;
	return true;
}

/* Hand a finished message back: what the session's failure left
 * without a result gets it. */
static void hand_back(struct transfer *t, struct attempt *a)
{
	if (broken(t))
		fail_from_session(a, t->s);
	t->src->done(t->src->arg, a);
}

static bool session_ends(const struct transfer *t)
{
	return broken(t) || t->s->reply.code == 421;
}

/* a's transaction is over: does it go again for the recipients it
 * postponed (RFC 5321 4.5.3.1.10)?  Only while each transaction makes
 * progress (a recipient it accepted was sent) and the session lasts;
 * else the postponed ones are deferred with their own reply. */
static bool another_round(struct transfer *t, struct attempt *a)
{
	bool progress = false;
	for (size_t i = 0; i < a->env.nrcpt; i++)
		progress |= a->res[i].accepted && a->res[i].state == OUT_SENT;
	if (a->postponed == 0 || !progress || session_ends(t)) {
		attempt_apply(a, RES_POSTPONED, V_TEMP, NULL);
		return false;
	}
	for (size_t i = 0; i < a->env.nrcpt; i++)
		a->res[i].accepted = a->res[i].postponed = false;
	a->postponed = 0;
	return true;
}

/*
 * DATA: deliver first, then, while the session is busy, whatever else
 * is queued: each next envelope goes out behind the previous message's
 * final ".", and the bookkeeping of a finished message (status bytes,
 * unlink, log) is done while the next message is on the wire.  An
 * attempt is copied (done = cur) only when no reply is outstanding.
 */
static void run_pipelined(struct transfer *t, struct attempt *first)
{
	struct attempt cur = *first, next, done;
	bool have_done = false;
	bool pipelining = t->s->ext & EXT_PIPELINING;
	send_envelope(t, &cur);
	send_data(t, &cur);
	read_all(t);
	for (;;) {
		bool have_next = false;
		if (cur.data_go && !broken(t)) {
			queue_message(t, &cur, false);
			have_next = pipelining && !broken(t) && cur.postponed == 0 && take_next(t, &next, 0);
			if (have_next) {
				send_envelope(t, &next);
				send_data(t, &next);
			}
			smtp_pipe_flush(&t->pipe);
		}
		if (have_done) {	/* while the upstream works on cur */
			hand_back(t, &done);
			have_done = false;
		}
		read_all(t);	/* cur's "." (and next's envelope) */
		if (!have_next && another_round(t, &cur)) {	/* the same message again, at once */
			send_envelope(t, &cur);
			send_data(t, &cur);
			read_all(t);
			continue;
		}
		if (!have_next || session_ends(t)) {
			hand_back(t, &cur);
			if (have_next)
				hand_back(t, &next);	/* deferred with the session's reason */
			break;
		}
		done = cur;
		have_done = true;
		cur = next;
	}
}

/* ---- CHUNKING (RFC 3030) ----
 * A message goes as MAIL, RCPT..., BDAT <n> LAST and its n octets (CRLF
 * lines kept within 998 octets as with DATA, but not dot-stuffed); a
 * body over BODY_CHUNK is sent as several BDATs.  No reply is needed
 * before the octets (a server that refused every recipient still reads
 * them, and refuses the BDAT), so up to BATCH_MAX messages (BATCH_BYTES)
 * go out together, and their replies are read in order.  Whether a
 * message's transaction ended is known only from its replies, so every
 * message after the first of a batch starts with RSET (cmdq.open).
 * Replies are a few lines per message, so the server cannot block on
 * writing them while we write. */

bool transfer_chunked(const struct smtp_client *s, const struct relay *r)
{
	unsigned need = EXT_CHUNKING | EXT_PIPELINING;
	return r->chunking && (s->ext & need) == need;
}

static void queue_chunked(struct transfer *t, struct attempt *a)
{
	send_envelope(t, a);
	queue_message(t, a, true);
}

/* a's further transactions for the recipients its last one postponed,
 * one at a time with nothing else outstanding. */
static void again_chunked(struct transfer *t, struct attempt *a)
{
	while (another_round(t, a)) {
		queue_chunked(t, a);
		read_all(t);
	}
}

/* Deliver first (loaded, fits) and whatever else is queued, in batches.
 * Each message's results are recorded as soon as its replies are read,
 * while the upstream still works on the rest of the batch; the last
 * one's wait until the next batch is on the wire.  So at most two
 * accepted messages per worker are unrecorded at any time (the
 * duplicates a crash can cause), as with DATA -- but for messages with
 * recipients the relay postponed (452), which are recorded after their
 * further rounds: a crash then may send again, besides those two, the
 * recipients taken in the first round of each (at most BATCH_MAX). */
static void run_chunked(struct transfer *t, struct attempt *first)
{
	struct attempt *batch = xcalloc(BATCH_MAX, sizeof *batch), held;
	size_t nb = 1;
	bool have_held = false;
	batch[0] = *first;
	for (;;) {
		uint64_t bytes = batch[0].size;
		queue_chunked(t, &batch[0]);
		while (!broken(t) && nb < BATCH_MAX && bytes < BATCH_BYTES
		       && take_next(t, &batch[nb], nb)) {
			bytes += batch[nb].size;
			queue_chunked(t, &batch[nb++]);
		}
		smtp_pipe_flush(&t->pipe);
		if (have_held)
			hand_back(t, &held);
		for (size_t i = 0; i < nb; i++) {
			read_for(t, &batch[i]);
			if (i + 1 < nb && batch[i].postponed == 0)
				hand_back(t, &batch[i]);
		}
		for (size_t i = 0; i < nb; i++) {	/* what a relay postponed, at once */
			if (batch[i].postponed == 0)
				continue;
			again_chunked(t, &batch[i]);
			if (i + 1 < nb)
				hand_back(t, &batch[i]);
		}
		held = batch[nb - 1];	/* no reply outstanding: safe to copy */
		have_held = true;
		t->res->batches++;
		if (session_ends(t) || !take_next(t, &batch[0], 0))
			break;
		nb = 1;
	}
	hand_back(t, &held);
	free(batch);
}

void transfer_run(struct transfer *t, struct attempt *first, const struct transfer_source *src,
		  bool chunked, struct transfer_result *res)
{
	memset(res, 0, sizeof *res);
	res->messages = 1;
	t->src = src;
	t->res = res;
	if (chunked)
		run_chunked(t, first);
	else
		run_pipelined(t, first);
	res->session_ends = session_ends(t);
	t->src = NULL;
	t->res = NULL;
}
