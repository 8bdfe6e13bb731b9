/*
 * transfer.c - the SMTP transactions on an open upstream session, on one
 * command queue (struct cmdq, delivery.h).
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
 *  - A finished message is recorded (attempt_close) while the upstream
 *    works on the next.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "delivery.h"

#define BATCH_MAX 8		/* messages in one BDAT batch: also the most a crash can duplicate per worker */
#define BATCH_BYTES (1024 * 1024)	/* a batch takes no more messages once this big */

/* ---- the queue ---- */

void cmdq_reset(struct cmdq *q)
{
	buf_reset(&q->out);
	q->head = q->n = 0;
	q->open = q->open_now = false;
}

void cmdq_free(struct cmdq *q)
{
	buf_free(&q->out);
	free(q->q);
	memset(q, 0, sizeof *q);
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
static void flush(struct worker *w)
{
	struct cmdq *q = &w->cmdq;
	if (q->out.len && !session_broken(&w->smtp))
		(void)smtp_send(&w->smtp, q->out.data, q->out.len, ST_MAIL);
	buf_reset(&q->out);
}

/* Break the session: it is closed after this attempt, and everything
 * not yet recorded is deferred with this reason. */
static void break_session(struct worker *w, enum smtp_stage st, const char *what)
{
	char r[SMTP_REPLY_SHOWN + 1];
	smtp_fail(&w->smtp, st, 0, "%s: %s", what, smtp_last_reply(&w->smtp, r, sizeof r));
}

static void on_reply(struct worker *w, const struct expect *x);

/* Read the oldest outstanding reply and apply it.  A session failure
 * drops every expectation: nothing more is read on this session. */
static void read_one(struct worker *w)
{
	struct cmdq *q = &w->cmdq;
	flush(w);
	struct expect x = q->q[q->head];
	if (session_broken(&w->smtp) || smtp_read_reply(&w->smtp, stage_of(x.kind)) < 0) {
		q->head = q->n = 0;
		return;
	}
	q->head++;
	if (--q->n == 0) {
		q->head = 0;
		q->open = q->open_now;	/* every reply is in: known exactly */
	}
	on_reply(w, &x);
	if (session_broken(&w->smtp))
		q->head = q->n = 0;
}

static void read_all(struct worker *w)
{
	while (w->cmdq.n > 0)
		read_one(w);
}

/* Read the replies that belong to a (and the RSET before it). */
static void read_for(struct worker *w, const struct attempt *a)
{
	while (w->cmdq.n > 0 && w->cmdq.q[w->cmdq.head].a == a)
		read_one(w);
}

/* Queue one expectation for the command(s) just added to out; without
 * PIPELINING the command goes now and its reply is read. */
static void expect(struct worker *w, enum cmd_kind kind, struct attempt *a, size_t rcpt, bool last)
{
	struct cmdq *q = &w->cmdq;
	if (q->head + q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->q = xrealloc(q->q, q->cap * sizeof *q->q);
	}
	q->q[q->head + q->n++] = (struct expect){ .kind = kind, .a = a, .rcpt = rcpt, .last = last };
	if (!(w->smtp.ext & EXT_PIPELINING))
		read_all(w);
}

/* ---- each command and the handler of its reply ---- */

/* RSET: a transaction may be open; a refusal ends the session. */
static void send_rset(struct worker *w, struct attempt *a)
{
	buf_adds(&w->cmdq.out, "RSET\r\n");
	w->cmdq.open = false;
	expect(w, C_RSET, a, 0, false);
}

static void rset_reply(struct worker *w)
{
	if (w->smtp.reply.code / 100 == 2)
		w->cmdq.open_now = false;
	else
		break_session(w, ST_LOCAL, "RSET refused");
}

bool session_reset(struct worker *w)
{
	send_rset(w, NULL);
	read_all(w);
	return !session_broken(&w->smtp);
}

static void send_mail(struct worker *w, struct attempt *a)
{
	struct buf *out = &w->cmdq.out;
	if (w->cmdq.open)
		send_rset(w, a);
	buf_printf(out, "MAIL FROM:<%s>", a->env.sender);
	if (w->smtp.ext & EXT_SIZE)
		buf_printf(out, " SIZE=%llu", (unsigned long long)a->size);
	if ((a->env.flags & ENV_8BITMIME) && (w->smtp.ext & EXT_8BITMIME))
		buf_adds(out, " BODY=8BITMIME");
	if (a->env.flags & ENV_SMTPUTF8)
		buf_adds(out, " SMTPUTF8");
	buf_adds(out, "\r\n");
	w->cmdq.open = true;	/* until a reply says otherwise */
	expect(w, C_MAIL, a, 0, false);
}

/* What the reply just read means for the recipients it answers; a
 * provider's quota or rate reply defers (whatever its code) and holds
 * the relay back after this run (w->quota_hold). */
static enum outcome reply_outcome(struct worker *w, enum smtp_stage st, const char *line)
{
	unsigned hold = smtp_quota_hold(w->smtp.reply.code, line);
	if (!hold)
		return outcome_of(st, w->smtp.reply.code);
	if (hold > w->quota_hold) {
		w->quota_hold = hold;
		snprintf(w->quota_reply, sizeof w->quota_reply, "%s", line);
	}
	return OUT_DEFERRED;
}

static void mail_reply(struct worker *w, struct attempt *a)
{
	char line[SMTP_REPLY_SHOWN + 1];
	const struct smtp_client *s = &w->smtp;
	enum smtp_verdict v = smtp_classify(ST_MAIL, s->reply.code);
	if (v == V_SESSION)
		return break_session(w, ST_MAIL, "MAIL refused as a protocol error");
	a->mail_ok = v == V_OK;
	if (a->mail_ok)
		w->cmdq.open_now = true;
	else	/* every recipient gets the reply as its result */
		set_all(a, reply_outcome(w, ST_MAIL, smtp_last_reply(s, line, sizeof line)), line);
}

static void send_rcpt(struct worker *w, struct attempt *a, size_t i)
{
	buf_printf(&w->cmdq.out, "RCPT TO:<%s>\r\n", a->env.rcpt[i].addr);
	expect(w, C_RCPT, a, i, false);
}

static void rcpt_reply(struct worker *w, struct attempt *a, size_t i)
{
	char line[SMTP_REPLY_SHOWN + 1];
	const struct smtp_client *s = &w->smtp;
	enum smtp_verdict v = smtp_classify(ST_RCPT, s->reply.code);
	if (!a->mail_ok) {	/* refusals are the expected sequel; a 2xx is not */
		if (v == V_OK)
			break_session(w, ST_RCPT, "recipient accepted without a sender");
		return;
	}
	if (v == V_SESSION)
		return break_session(w, ST_RCPT, "RCPT refused as a protocol error");
	if (v == V_OK) {
		a->res[i].accepted = true;
		a->taken++;
		return;
	}
	set_result(a, i, reply_outcome(w, ST_RCPT, smtp_last_reply(s, line, sizeof line)), line);
}

/* The reply just read applies to every accepted recipient: the end of
 * data, or a refused DATA or BDAT. */
static void result_for_accepted(struct worker *w, struct attempt *a, enum smtp_stage st)
{
	char line[SMTP_REPLY_SHOWN + 1];
	const struct smtp_client *s = &w->smtp;
	enum outcome o = reply_outcome(w, st, smtp_last_reply(s, line, sizeof line));
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->res[i].accepted)
			set_result(a, i, o, line);
}

/* MAIL, then RCPT for every pending recipient (without PIPELINING only
 * while the sender is taken). */
static void send_envelope(struct worker *w, struct attempt *a)
{
	a->mail_ok = a->data_go = false;
	a->taken = 0;
	send_mail(w, a);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (!(w->smtp.ext & EXT_PIPELINING) && (!a->mail_ok || session_broken(&w->smtp)))
			return;
		if (a->env.rcpt[i].status == RCPT_PENDING)
			send_rcpt(w, a, i);
	}
}

/* DATA (without PIPELINING only when a recipient was accepted). */
static void send_data(struct worker *w, struct attempt *a)
{
	if (!(w->smtp.ext & EXT_PIPELINING) && (a->taken == 0 || session_broken(&w->smtp)))
		return;
	buf_adds(&w->cmdq.out, "DATA\r\n");
	expect(w, C_DATA, a, 0, false);
}

static void data_reply(struct worker *w, struct attempt *a)
{
	const struct smtp_client *s = &w->smtp;
	enum smtp_verdict v = smtp_classify(ST_DATA, s->reply.code);
	if (s->reply.code == 354) {
		if (a->taken == 0)
			return break_session(w, ST_DATA, "the server wants data but took no recipient");
		a->data_go = true;
		return;
	}
	if (a->taken == 0)
		return;	/* refused, as it should be */
	if (v == V_SESSION || v == V_OK)
		return break_session(w, ST_DATA, "unexpected reply to DATA");
	result_for_accepted(w, a, ST_DATA);
}

static void dot_reply(struct worker *w, struct attempt *a)
{
	const struct smtp_client *s = &w->smtp;
	w->cmdq.open_now = false;	/* any reply to the final "." ends the transaction */
	if (smtp_classify(ST_DOT, s->reply.code) == V_SESSION)
		return break_session(w, ST_DOT, "end of data refused as a protocol error");
	result_for_accepted(w, a, ST_DOT);
}

/* A BDAT's reply: the first refused one, else the LAST one's, is every
 * accepted recipient's result; a refused one leaves the transaction
 * state unknown, a LAST taken ends it. */
static void bdat_reply(struct worker *w, struct attempt *a, bool last)
{
	const struct smtp_client *s = &w->smtp;
	enum smtp_verdict v = smtp_classify(ST_DOT, s->reply.code);
	if (a->taken == 0)
		return;	/* no recipient: refusals expected */
	if (v == V_SESSION)
		return break_session(w, ST_DOT, "BDAT refused as a protocol error");
	if (v == V_OK && last)
		w->cmdq.open_now = false;
	if (v != V_OK || last)
		result_for_accepted(w, a, ST_DOT);	/* keeps the first result */
}

static void on_reply(struct worker *w, const struct expect *x)
{
	switch (x->kind) {
	case C_RSET: rset_reply(w); break;
	case C_MAIL: mail_reply(w, x->a); break;
	case C_RCPT: rcpt_reply(w, x->a, x->rcpt); break;
	case C_DATA: data_reply(w, x->a); break;
	case C_DOT: dot_reply(w, x->a); break;
	case C_BDAT: bdat_reply(w, x->a, x->last); break;
	}
}

/* ---- the message octets ---- */

/* Read a's message from its queue file and queue it encoded: for DATA
 * dot-stuffed and ended with ".", for BDAT as BDAT commands of about
 * BODY_CHUNK octets each.  Lines are kept within 998 octets either way
 * (the stuffer).  What is queued is written whenever it reaches
 * BODY_CHUNK; the end stays queued, so what follows goes in the same
 * write. */
static void queue_message(struct worker *w, struct attempt *a, bool chunked)
{
	struct cmdq *q = &w->cmdq;
	struct stuffer st;
	struct buf *enc = chunked ? &w->body : &q->out;
	off_t off = (off_t)a->body_off;
	uint64_t left = a->size;
	bool last = false;
	stuffer_init(&st);
	st.chunked = chunked;
	buf_reset(&w->body);
	while (!last && !session_broken(&w->smtp)) {
		size_t want = left < BODY_CHUNK ? (size_t)left : BODY_CHUNK;
		ssize_t r = want ? pread(a->fd, w->chunk, want, off) : 0;
		if (r < 0) {
			smtp_fail(&w->smtp, ST_LOCAL, 0, "reading the queue file: %s", strerror(errno));
			break;
		}
		stuffer_feed(&st, w->chunk, (size_t)r, enc);
		off += r;
		left -= (uint64_t)r;
		last = r == 0 || left == 0;
		if (last)
			stuffer_end(&st, enc);
		if (chunked && (enc->len >= BODY_CHUNK || last)) {
			buf_printf(&q->out, "BDAT %zu%s\r\n", enc->len, last ? " LAST" : "");
			buf_add(&q->out, enc->data, enc->len);
			buf_reset(enc);
			expect(w, C_BDAT, a, 0, last);
		}
		if (!chunked && last) {
			q->open = false;	/* any reply to the "." ends the transaction */
			expect(w, C_DOT, a, 0, false);
		}
		if (q->out.len >= BODY_CHUNK)
			flush(w);
	}
	if (st.lines_broken)
		log_info("%s: %llu lines over %d octets were broken", a->job->id,
			 (unsigned long long)st.lines_broken, SMTP_LINE_OUT_MAX);
	if (w->body.cap > 4 * BODY_CHUNK)
		buf_free(&w->body);	/* do not keep a huge buffer around */
	if (q->out.cap > 4 * BODY_CHUNK && q->out.len == 0)
		buf_free(&q->out);
}

/* ---- choosing the next message ---- */

/* The next queued message that can go on this session now, loaded into
 * a; messages this upstream cannot take are finished on the way.  False
 * when there is none (or the next was made under another configuration:
 * it needs a new session). */
static bool take_fitting(struct worker *w, const struct config *conf, struct attempt *a)
{
	for (;;) {
		struct job *nj = try_pop_job(w);	/* NULL once the pool stops */
		if (!nj)
			return false;
		if (nj->conf != conf) {
			push_back_job(w, nj);
			return false;
		}
		if (!attempt_load(w, nj, a)) {
			job_free(nj);
			continue;
		}
		struct upstream *to = upstream_for(w, nj, a->env.sender);
		if (to) {	/* another relay's (upstreams.c) */
			attempt_free(a);
			push_job(w->pool, to, nj);
			continue;
		}
		if (!upstream_admit_now(w)) {	/* held back or over max_rate: not on this run */
			attempt_free(a);
			push_back_job(w, nj);
			return false;
		}
		if (attempt_fits(w, a))
			return true;
		attempt_finish(w, a);
		attempt_free(a);
		job_free(nj);
	}
}

static bool session_ends(const struct worker *w)
{
	return session_broken(&w->smtp) || w->smtp.reply.code == 421;
}

/*
 * DATA: deliver first, then, while the session is busy, whatever else
 * is queued: each next envelope goes out behind the previous message's
 * final ".", and the bookkeeping of a finished message (status bytes,
 * unlink, log) is done while the next message is on the wire.  An
 * attempt is copied (done = cur) only when no reply is outstanding.
 */
void transfer_pipelined(struct worker *w, struct job *j, struct attempt *first)
{
	struct attempt cur = *first, next, done;
	bool have_done = false;
	bool pipelining = w->smtp.ext & EXT_PIPELINING;
	unsigned chain = 1;
	send_envelope(w, &cur);
	send_data(w, &cur);
	read_all(w);
	for (;;) {
		bool have_next = false;
		if (cur.data_go && !session_broken(&w->smtp)) {
			queue_message(w, &cur, false);
			have_next = pipelining && !session_broken(&w->smtp) && take_fitting(w, j->conf, &next);
			if (have_next) {
				send_envelope(w, &next);
				send_data(w, &next);
			}
			flush(w);
		}
		if (have_done) {	/* while the upstream works on cur */
			attempt_close(w, &done, j);
			have_done = false;
		}
		read_all(w);	/* cur's "." (and next's envelope) */
		if (!have_next || session_ends(w)) {
			attempt_close(w, &cur, j);
			if (have_next)
				attempt_close(w, &next, j);	/* deferred with the session's reason */
			break;
		}
		done = cur;
		have_done = true;
		cur = next;
		chain++;
	}
	log_debug("worker %d: %u messages in one pipelined run", w->idx, chain);
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

bool chunking_usable(const struct worker *w, const struct relay *r)
{
	unsigned need = EXT_CHUNKING | EXT_PIPELINING;
	return r->chunking && (w->smtp.ext & need) == need;
}

static void queue_chunked(struct worker *w, struct attempt *a)
{
	send_envelope(w, a);
	queue_message(w, a, true);
}

/* Deliver first (loaded, fits) and whatever else is queued, in batches.
 * Each message's results are recorded as soon as its replies are read,
 * while the upstream still works on the rest of the batch; the last
 * one's wait until the next batch is on the wire.  So at most two
 * accepted messages per worker are unrecorded at any time (the
 * duplicates a crash can cause), as with DATA. */
void transfer_chunked(struct worker *w, struct job *j, struct attempt *first)
{
	struct attempt *batch = xcalloc(BATCH_MAX, sizeof *batch), held;
	size_t nb = 1;
	bool have_held = false;
	unsigned total = 0, batches = 0;
	batch[0] = *first;
	for (;;) {
		size_t share = 1 + batch_share(w, BATCH_MAX - 1);	/* batch[0] is taken */
		uint64_t bytes = batch[0].size;
		queue_chunked(w, &batch[0]);
		while (!session_broken(&w->smtp) && nb < share && bytes < BATCH_BYTES
		       && take_fitting(w, j->conf, &batch[nb])) {
			bytes += batch[nb].size;
			queue_chunked(w, &batch[nb++]);
		}
		flush(w);
		if (have_held)
			attempt_close(w, &held, j);
		for (size_t i = 0; i < nb; i++) {
			read_for(w, &batch[i]);
			if (i + 1 < nb)
				attempt_close(w, &batch[i], j);
		}
		held = batch[nb - 1];	/* no reply outstanding: safe to copy */
		have_held = true;
		total += (unsigned)nb;
		batches++;
		if (session_ends(w) || !take_fitting(w, j->conf, &batch[0]))
			break;
		nb = 1;
	}
	attempt_close(w, &held, j);
	log_debug("worker %d: %u messages in %u BDAT batches", w->idx, total, batches);
	free(batch);
}
