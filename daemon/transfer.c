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
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "transfer.h"

/* ---- the command queue ----
 * Every command written to the upstream is queued with what its reply
 * means; replies are read in order and each is applied by the handler
 * of its kind.  Without PIPELINING a command is written and its reply
 * read before the next one is queued.  The queue lives as long as the
 * session. */
enum cmd_kind { C_RSET, C_MAIL, C_RCPT, C_DATA, C_DOT, C_BDAT };

struct expect {
	enum cmd_kind kind;
	struct attempt *a;	/* the message it belongs to (C_RSET: the one it precedes) */
	size_t rcpt;		/* C_RCPT: the recipient's index */
	bool last;		/* C_BDAT: BDAT ... LAST */
};

struct cmdq {
	struct buf out;		/* queued octets not yet written */
	struct expect *q;
	size_t head, n, cap;	/* q[head .. head+n) await their replies */
	bool open;		/* the server has (or, with replies outstanding, may
				 * have) a mail transaction open: RSET before MAIL */
	bool open_now;		/* the same, from the replies read so far */
};

struct transfer {
	struct smtp_client *s;	/* the caller's */
	struct cmdq cmdq;
	char *chunk;		/* BODY_CHUNK octets read from a queue file */
	struct buf body;	/* encoded message octets (a BDAT chunk in the making) */
	/* during a run */
	const struct transfer_source *src;
	struct transfer_result *res;
};

struct transfer *transfer_new(struct smtp_client *s)
{
	struct transfer *t = xcalloc(1, sizeof *t);
	t->s = s;
	t->chunk = xmalloc(BODY_CHUNK);
	buf_init(&t->body);
	buf_init(&t->cmdq.out);
	return t;
}

void transfer_reset(struct transfer *t)
{
	struct cmdq *q = &t->cmdq;
	buf_reset(&q->out);
	q->head = q->n = 0;
	q->open = q->open_now = false;
}

void transfer_free(struct transfer *t)
{
	if (!t)
		return;
	buf_free(&t->cmdq.out);
	free(t->cmdq.q);
	buf_free(&t->body);
	free(t->chunk);
	free(t);
}

/* A network or local failure (no reply code) leaves the session unusable. */
static bool session_broken(const struct smtp_client *s)
{
	return s->fail_text[0] && s->fail_code == 0;
}

static enum smtp_stage stage_of(enum cmd_kind k)
{
	static const enum smtp_stage st[] = {
		[C_RSET] = ST_LOCAL, [C_MAIL] = ST_MAIL, [C_RCPT] = ST_RCPT,
		[C_DATA] = ST_DATA, [C_DOT] = ST_DOT, [C_BDAT] = ST_DOT,
	};
	return st[k];
}

/* Write what is queued. */
static void flush(struct transfer *t)
{
	struct cmdq *q = &t->cmdq;
	if (q->out.len && !session_broken(t->s))
		(void)smtp_send(t->s, q->out.data, q->out.len, ST_MAIL);
	buf_reset(&q->out);
}

/* Break the session: it is closed after this attempt, and everything
 * not yet recorded is deferred with this reason. */
static void break_session(struct transfer *t, enum smtp_stage st, const char *what)
{
	char r[SMTP_REPLY_SHOWN + 1];
	smtp_fail(t->s, st, 0, "%s: %s", what, smtp_last_reply(t->s, r, sizeof r));
}

static void on_reply(struct transfer *t, const struct expect *x);

/* Read the oldest outstanding reply and apply it.  A session failure
 * drops every expectation: nothing more is read on this session. */
static void read_one(struct transfer *t)
{
	struct cmdq *q = &t->cmdq;
	flush(t);
	struct expect x = q->q[q->head];
	if (session_broken(t->s) || smtp_read_reply(t->s, stage_of(x.kind)) < 0) {
		q->head = q->n = 0;
		return;
	}
	q->head++;
	if (--q->n == 0) {
		q->head = 0;
		q->open = q->open_now;	/* every reply is in: known exactly */
	}
	on_reply(t, &x);
	if (session_broken(t->s))
		q->head = q->n = 0;
}

static void read_all(struct transfer *t)
{
	while (t->cmdq.n > 0)
		read_one(t);
}

/* Read the replies that belong to a (and the RSET before it). */
static void read_for(struct transfer *t, const struct attempt *a)
{
	while (t->cmdq.n > 0 && t->cmdq.q[t->cmdq.head].a == a)
		read_one(t);
}

/* Queue one expectation for the command(s) just added to out; without
 * PIPELINING the command goes now and its reply is read. */
static void expect(struct transfer *t, enum cmd_kind kind, struct attempt *a, size_t rcpt, bool last)
{
	struct cmdq *q = &t->cmdq;
	if (q->head + q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->q = xrealloc(q->q, q->cap * sizeof *q->q);
	}
	q->q[q->head + q->n++] = (struct expect){ .kind = kind, .a = a, .rcpt = rcpt, .last = last };
	if (!(t->s->ext & EXT_PIPELINING))
		read_all(t);
}

/* ---- each command and the handler of its reply ---- */

/* RSET: a transaction may be open; a refusal ends the session. */
static void send_rset(struct transfer *t, struct attempt *a)
{
	buf_adds(&t->cmdq.out, "RSET\r\n");
	t->cmdq.open = false;
	expect(t, C_RSET, a, 0, false);
}

static void rset_reply(struct transfer *t)
{
	if (t->s->reply.code / 100 == 2)
		t->cmdq.open_now = false;
	else
		break_session(t, ST_LOCAL, "RSET refused");
}

bool transfer_rset(struct transfer *t)
{
	send_rset(t, NULL);
	read_all(t);
	return !session_broken(t->s);
}

static void send_mail(struct transfer *t, struct attempt *a)
{
	struct buf *out = &t->cmdq.out;
	if (t->cmdq.open)
		send_rset(t, a);
	buf_printf(out, "MAIL FROM:<%s>", a->env.sender);
	if (t->s->ext & EXT_SIZE)
		buf_printf(out, " SIZE=%llu", (unsigned long long)a->size);
	if ((a->env.flags & ENV_8BITMIME) && (t->s->ext & EXT_8BITMIME))
		buf_adds(out, " BODY=8BITMIME");
	if (a->env.flags & ENV_SMTPUTF8)
		buf_adds(out, " SMTPUTF8");
	buf_adds(out, "\r\n");
	t->cmdq.open = true;	/* until a reply says otherwise */
	expect(t, C_MAIL, a, 0, false);
}

/* What the reply just read means for the recipients it answers; a
 * provider's quota or rate reply defers (whatever its code) and holds
 * the relay back after this run (transfer_result.quota_hold). */
static enum outcome reply_outcome(struct transfer *t, enum smtp_stage st, const char *line)
{
	struct transfer_result *res = t->res;
	unsigned hold = smtp_quota_hold(t->s->reply.code, line);
	if (!hold)
		return outcome_of(st, t->s->reply.code);
	if (hold > res->quota_hold) {
		res->quota_hold = hold;
		snprintf(res->quota_reply, sizeof res->quota_reply, "%s", line);
	}
	return OUT_DEFERRED;
}

static void mail_reply(struct transfer *t, struct attempt *a)
{
	char line[SMTP_REPLY_SHOWN + 1];
	const struct smtp_client *s = t->s;
	enum smtp_verdict v = smtp_classify(ST_MAIL, s->reply.code);
	if (v == V_SESSION)
		return break_session(t, ST_MAIL, "MAIL refused as a protocol error");
	a->mail_ok = v == V_OK;
	if (a->mail_ok)
		t->cmdq.open_now = true;
	else	/* every recipient gets the reply as its result */
		set_all(a, reply_outcome(t, ST_MAIL, smtp_last_reply(s, line, sizeof line)), line);
}

static void send_rcpt(struct transfer *t, struct attempt *a, size_t i)
{
	buf_printf(&t->cmdq.out, "RCPT TO:<%s>\r\n", a->env.rcpt[i].addr);
	expect(t, C_RCPT, a, i, false);
}

static void rcpt_reply(struct transfer *t, struct attempt *a, size_t i)
{
	char line[SMTP_REPLY_SHOWN + 1];
	const struct smtp_client *s = t->s;
	enum smtp_verdict v = smtp_classify(ST_RCPT, s->reply.code);
	if (!a->mail_ok) {	/* refusals are the expected sequel; a 2xx is not */
		if (v == V_OK)
			break_session(t, ST_RCPT, "recipient accepted without a sender");
		return;
	}
	if (v == V_SESSION)
		return break_session(t, ST_RCPT, "RCPT refused as a protocol error");
	if (v == V_OK) {
		a->res[i].accepted = true;
		a->taken++;
		return;
	}
	set_result(a, i, reply_outcome(t, ST_RCPT, smtp_last_reply(s, line, sizeof line)), line);
}

/* The reply just read applies to every accepted recipient: the end of
 * data, or a refused DATA or BDAT. */
static void result_for_accepted(struct transfer *t, struct attempt *a, enum smtp_stage st)
{
	char line[SMTP_REPLY_SHOWN + 1];
	const struct smtp_client *s = t->s;
	enum outcome o = reply_outcome(t, st, smtp_last_reply(s, line, sizeof line));
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->res[i].accepted)
			set_result(a, i, o, line);
}

/* MAIL, then RCPT for every pending recipient (without PIPELINING only
 * while the sender is taken). */
static void send_envelope(struct transfer *t, struct attempt *a)
{
	a->mail_ok = a->data_go = false;
	a->taken = 0;
	send_mail(t, a);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (!(t->s->ext & EXT_PIPELINING) && (!a->mail_ok || session_broken(t->s)))
			return;
		if (a->env.rcpt[i].status == RCPT_PENDING)
			send_rcpt(t, a, i);
	}
}

/* DATA (without PIPELINING only when a recipient was accepted). */
static void send_data(struct transfer *t, struct attempt *a)
{
	if (!(t->s->ext & EXT_PIPELINING) && (a->taken == 0 || session_broken(t->s)))
		return;
	buf_adds(&t->cmdq.out, "DATA\r\n");
	expect(t, C_DATA, a, 0, false);
}

static void data_reply(struct transfer *t, struct attempt *a)
{
	const struct smtp_client *s = t->s;
	enum smtp_verdict v = smtp_classify(ST_DATA, s->reply.code);
	if (s->reply.code == 354) {
		if (a->taken == 0)
			return break_session(t, ST_DATA, "the server wants data but took no recipient");
		a->data_go = true;
		return;
	}
	if (a->taken == 0)
		return;	/* refused, as it should be */
	if (v == V_SESSION || v == V_OK)
		return break_session(t, ST_DATA, "unexpected reply to DATA");
	result_for_accepted(t, a, ST_DATA);
}

static void dot_reply(struct transfer *t, struct attempt *a)
{
	const struct smtp_client *s = t->s;
	t->cmdq.open_now = false;	/* any reply to the final "." ends the transaction */
	if (smtp_classify(ST_DOT, s->reply.code) == V_SESSION)
		return break_session(t, ST_DOT, "end of data refused as a protocol error");
	result_for_accepted(t, a, ST_DOT);
}

/* A BDAT's reply: the first refused one, else the LAST one's, is every
 * accepted recipient's result; a refused one leaves the transaction
 * state unknown, a LAST taken ends it. */
static void bdat_reply(struct transfer *t, struct attempt *a, bool last)
{
	const struct smtp_client *s = t->s;
	enum smtp_verdict v = smtp_classify(ST_DOT, s->reply.code);
	if (a->taken == 0)
		return;	/* no recipient: refusals expected */
	if (v == V_SESSION)
		return break_session(t, ST_DOT, "BDAT refused as a protocol error");
	if (v == V_OK && last)
		t->cmdq.open_now = false;
	if (v != V_OK || last)
		result_for_accepted(t, a, ST_DOT);	/* keeps the first result */
}

static void on_reply(struct transfer *t, const struct expect *x)
{
	switch (x->kind) {
	case C_RSET: rset_reply(t); break;
	case C_MAIL: mail_reply(t, x->a); break;
	case C_RCPT: rcpt_reply(t, x->a, x->rcpt); break;
	case C_DATA: data_reply(t, x->a); break;
	case C_DOT: dot_reply(t, x->a); break;
	case C_BDAT: bdat_reply(t, x->a, x->last); break;
	}
}

/* ---- the message octets ---- */

/* Read a's message from its queue file and queue it encoded: for DATA
 * dot-stuffed and ended with ".", for BDAT as BDAT commands of about
 * BODY_CHUNK octets each.  Lines are kept within 998 octets either way
 * (the stuffer).  What is queued is written whenever it reaches
 * BODY_CHUNK; the end stays queued, so what follows goes in the same
 * write. */
static void queue_message(struct transfer *t, struct attempt *a, bool chunked)
{
	struct cmdq *q = &t->cmdq;
	struct stuffer st;
	struct buf *enc = chunked ? &t->body : &q->out;
	off_t off = (off_t)a->body_off;
	uint64_t left = a->size;
	bool last = false;
	stuffer_init(&st);
	st.chunked = chunked;
	buf_reset(&t->body);
	while (!last && !session_broken(t->s)) {
		size_t want = left < BODY_CHUNK ? (size_t)left : BODY_CHUNK;
		ssize_t r = want ? pread(a->fd, t->chunk, want, off) : 0;
		if (r < 0) {
			smtp_fail(t->s, ST_LOCAL, 0, "reading the queue file: %s", strerror(errno));
			break;
		}
		stuffer_feed(&st, t->chunk, (size_t)r, enc);
		off += r;
		left -= (uint64_t)r;
		last = r == 0 || left == 0;
		if (last)
			stuffer_end(&st, enc);
		if (chunked && (enc->len >= BODY_CHUNK || last)) {
			buf_printf(&q->out, "BDAT %zu%s\r\n", enc->len, last ? " LAST" : "");
			buf_add(&q->out, enc->data, enc->len);
			buf_reset(enc);
			expect(t, C_BDAT, a, 0, last);
		}
		if (!chunked && last) {
			q->open = false;	/* any reply to the "." ends the transaction */
			expect(t, C_DOT, a, 0, false);
		}
		if (q->out.len >= BODY_CHUNK)
			flush(t);
	}
	if (st.lines_broken)
		log_info("%s: %llu lines over %d octets were broken", a->id,
			 (unsigned long long)st.lines_broken, SMTP_LINE_OUT_MAX);
	if (t->body.cap > 4 * BODY_CHUNK)
		buf_free(&t->body);	/* do not keep a huge buffer around */
	if (q->out.cap > 4 * BODY_CHUNK && q->out.len == 0)
		buf_free(&q->out);
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
	if (session_broken(t->s))
		fail_from_session(a, t->s);
	t->src->done(t->src->arg, a);
}

static bool session_ends(const struct transfer *t)
{
	return session_broken(t->s) || t->s->reply.code == 421;
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
		if (cur.data_go && !session_broken(t->s)) {
			queue_message(t, &cur, false);
			have_next = pipelining && !session_broken(t->s) && take_next(t, &next, 0);
			if (have_next) {
				send_envelope(t, &next);
				send_data(t, &next);
			}
			flush(t);
		}
		if (have_done) {	/* while the upstream works on cur */
			hand_back(t, &done);
			have_done = false;
		}
		read_all(t);	/* cur's "." (and next's envelope) */
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

/* Deliver first (loaded, fits) and whatever else is queued, in batches.
 * Each message's results are recorded as soon as its replies are read,
 * while the upstream still works on the rest of the batch; the last
 * one's wait until the next batch is on the wire.  So at most two
 * accepted messages per worker are unrecorded at any time (the
 * duplicates a crash can cause), as with DATA. */
static void run_chunked(struct transfer *t, struct attempt *first)
{
	struct attempt *batch = xcalloc(BATCH_MAX, sizeof *batch), held;
	size_t nb = 1;
	bool have_held = false;
	batch[0] = *first;
	for (;;) {
		uint64_t bytes = batch[0].size;
		queue_chunked(t, &batch[0]);
		while (!session_broken(t->s) && nb < BATCH_MAX && bytes < BATCH_BYTES
		       && take_next(t, &batch[nb], nb)) {
			bytes += batch[nb].size;
			queue_chunked(t, &batch[nb++]);
		}
		flush(t);
		if (have_held)
			hand_back(t, &held);
		for (size_t i = 0; i < nb; i++) {
			read_for(t, &batch[i]);
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
