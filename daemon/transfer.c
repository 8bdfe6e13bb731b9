/*
 * transfer.c - the SMTP transactions on an open upstream session.
 *
 * With DATA (transfer_pipelined):
 *   MAIL FROM, RCPT TO..., DATA      (one write with PIPELINING)
 *   354 -> the message, dot-stuffed, lines kept within 998 octets, ".",
 *          followed in the same write by the next queued message's
 *          MAIL/RCPT/DATA when there is one (RFC 2920 allows it), so a
 *          busy session costs one round trip per message
 *   reply to "." -> every accepted recipient gets that result
 * Without PIPELINING each command waits for its reply.
 *
 * With BDAT (transfer_chunked, when the upstream offers CHUNKING and
 * PIPELINING and [relay] chunking is on): see CHUNKING below; a batch of
 * messages costs one round trip.
 *
 * Either way a finished message is recorded (attempt_close) while the
 * upstream works on the next, and anything that breaks the session
 * (network, TLS, timeout, 421) defers what is not yet recorded.
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

/* MAIL and RCPT... for a, appended to out; returns the count. */
static size_t mail_rcpt_commands(struct worker *w, struct attempt *a, struct buf *out)
{
	size_t n = 1;
	buf_printf(out, "MAIL FROM:<%s>", a->env.sender);
	if (w->smtp.ext & EXT_SIZE)
		buf_printf(out, " SIZE=%llu", (unsigned long long)a->size);
	if ((a->env.flags & ENV_8BITMIME) && (w->smtp.ext & EXT_8BITMIME))
		buf_adds(out, " BODY=8BITMIME");
	if (a->env.flags & ENV_SMTPUTF8)
		buf_adds(out, " SMTPUTF8");
	buf_adds(out, "\r\n");
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		buf_printf(out, "RCPT TO:<%s>\r\n", a->env.rcpt[i].addr);
		n++;
	}
	return n;
}

/* MAIL, RCPT... and DATA for a, appended to out; returns the count. */
static size_t envelope_commands(struct worker *w, struct attempt *a, struct buf *out)
{
	size_t n = mail_rcpt_commands(w, a, out);
	buf_adds(out, "DATA\r\n");
	return n + 1;
}

/* The reply just read, to MAIL: true when it took the sender, else every
 * recipient gets the reply as its result. */
static bool mail_result(struct attempt *a, const struct smtp_client *s)
{
	char line[600];
	if (s->reply.code / 100 == 2)
		return true;
	set_all(a, smtp_failure_is_permanent(ST_MAIL, s->reply.code) ? RCPT_FAILED : 'T',
		smtp_last_reply(s, line, sizeof line));
	return false;
}

/* The reply just read, to the RCPT of recipient i. */
static void rcpt_result(struct attempt *a, size_t i, const struct smtp_client *s, size_t *taken)
{
	char line[600];
	if (s->reply.code / 100 == 2) {
		a->accepted[i] = true;
		(*taken)++;
	} else {
		set_result(a, i, smtp_failure_is_permanent(ST_RCPT, s->reply.code) ? RCPT_FAILED : 'T',
			   smtp_last_reply(s, line, sizeof line));
	}
}

/* Read the replies to MAIL and RCPT...; false on a session failure.
 * *taken counts the recipients accepted (a->accepted). */
static bool mail_rcpt_replies(struct worker *w, struct attempt *a, size_t *taken)
{
	struct smtp_client *s = &w->smtp;
	*taken = 0;
	if (smtp_read_reply(s, ST_MAIL) < 0)
		return false;
	bool mail_ok = mail_result(a, s);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		if (smtp_read_reply(s, ST_RCPT) < 0)
			return false;
		if (mail_ok)
			rcpt_result(a, i, s, taken);
	}
	return true;
}

/* The reply just read applies to every accepted recipient (end of
 * data: "." or the last BDAT; or a refused DATA / BDAT). */
static void result_for_accepted(struct worker *w, struct attempt *a, enum smtp_stage st)
{
	char line[600];
	struct smtp_client *s = &w->smtp;
	smtp_last_reply(s, line, sizeof line);
	char what = s->reply.code / 100 == 2 ? RCPT_SENT
		  : smtp_failure_is_permanent(st, s->reply.code) ? RCPT_FAILED : 'T';
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->accepted[i])
			set_result(a, i, what, line);
}

/* Read the replies to MAIL, RCPT... and DATA.  True when the server is
 * now waiting for the message (354) and at least one recipient took. */
static bool envelope_replies(struct worker *w, struct attempt *a)
{
	struct smtp_client *s = &w->smtp;
	size_t taken;
	if (!mail_rcpt_replies(w, a, &taken) || smtp_read_reply(s, ST_DATA) < 0)
		return false;
	if (s->reply.code == 354 && taken > 0)
		return true;
	if (s->reply.code == 354) {	/* nobody to send to, yet the server waits: end it */
		if (smtp_send(s, ".\r\n", 3, ST_DOT) == 0)
			(void)smtp_read_reply(s, ST_DOT);
		return false;
	}
	result_for_accepted(w, a, ST_DATA);
	return false;
}

/* Send the message body (and, pipelined behind it, tail); returns -1 on
 * a session failure. */
static int send_body(struct worker *w, struct attempt *a, const struct buf *tail)
{
	struct stuffer st;
	struct buf out = w->out;	/* the worker's, reused from message to message */
	char *chunk = w->chunk;
	off_t off = (off_t)a->body_off;
	int rc = 0;
	stuffer_init(&st);
	buf_reset(&out);
	for (;;) {
		ssize_t r = pread(a->fd, chunk, BODY_CHUNK, off);
		if (r < 0) {
			rc = smtp_fail(&w->smtp, ST_LOCAL, 0, "reading the queue file: %s", strerror(errno));
			break;
		}
		if (r > 0) {
			stuffer_feed(&st, chunk, (size_t)r, &out);
			off += r;
		}
		if (r == 0 || (uint64_t)(off - (off_t)a->body_off) >= a->size) {
			stuffer_end(&st, &out);
			if (tail)
				buf_add(&out, tail->data, tail->len);
		}
		if (out.len && smtp_send(&w->smtp, out.data, out.len, ST_DOT) < 0) {
			rc = -1;
			break;
		}
		buf_reset(&out);
		if (r == 0 || (uint64_t)(off - (off_t)a->body_off) >= a->size)
			break;
	}
	if (rc == 0 && st.lines_broken)
		log_info("%s: %llu lines over %d octets were broken", a->job->id,
			 (unsigned long long)st.lines_broken, SMTP_LINE_OUT_MAX);
	if (out.cap > 4 * BODY_CHUNK) {	/* do not keep a huge buffer around */
		buf_free(&out);
	}
	w->out = out;
	return rc;
}

static void dot_reply(struct worker *w, struct attempt *a)
{
	if (smtp_read_reply(&w->smtp, ST_DOT) == 0)
		result_for_accepted(w, a, ST_DOT);
}

/* MAIL, RCPT... and DATA one at a time, for a server without
 * PIPELINING.  True when the server waits for the message. */
static bool envelope_one_by_one(struct worker *w, struct attempt *a)
{
	struct smtp_client *s = &w->smtp;
	struct buf cmds;
	size_t taken = 0;
	bool ok = false;
	buf_init(&cmds);
	envelope_commands(w, a, &cmds);
	char *cmd = cmds.data, *end;
	/* MAIL */
	end = strstr(cmd, "\r\n") + 2;
	if (smtp_send(s, cmd, (size_t)(end - cmd), ST_MAIL) < 0 || smtp_read_reply(s, ST_MAIL) < 0
	    || !mail_result(a, s))
		goto out;
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		cmd = end;
		end = strstr(cmd, "\r\n") + 2;
		if (smtp_send(s, cmd, (size_t)(end - cmd), ST_RCPT) < 0 || smtp_read_reply(s, ST_RCPT) < 0)
			goto out;
		rcpt_result(a, i, s, &taken);
	}
	if (taken == 0) {
		if (smtp_send(s, "RSET\r\n", 6, ST_LOCAL) == 0)
			(void)smtp_read_reply(s, ST_LOCAL);
		goto out;
	}
	if (smtp_send(s, "DATA\r\n", 6, ST_DATA) < 0 || smtp_read_reply(s, ST_DATA) < 0)
		goto out;
	ok = s->reply.code == 354;
	if (!ok)
		result_for_accepted(w, a, ST_DATA);
out:
	buf_free(&cmds);
	return ok;
}

/* The next queued message that can go on this session now, loaded into
 * a; messages this upstream cannot take are finished on the way.  False
 * when there is none (or the next was made under another configuration:
 * it needs a new session). */
static bool take_fitting(struct worker *w, const struct config *conf, struct attempt *a)
{
	for (;;) {
		struct job *nj = try_pop_job(w->pool);	/* NULL once the pool stops */
		if (!nj)
			return false;
		if (nj->conf != conf) {
			push_back_job(w->pool, nj);
			return false;
		}
		if (!attempt_load(w, nj, a)) {
			job_free(nj);
			continue;
		}
		if (attempt_fits(w, a))
			return true;
		attempt_finish(w, a);
		attempt_free(a);
		job_free(nj);
	}
}

/* The next message to pipeline behind the current one, its envelope
 * commands in ahead. */
static bool take_next(struct worker *w, const struct config *conf, struct attempt *next,
		      struct buf *ahead)
{
	if (!take_fitting(w, conf, next))
		return false;
	buf_reset(ahead);
	envelope_commands(w, next, ahead);
	return true;
}

/*
 * Deliver first, then, while the session is busy, whatever else is
 * queued: each next envelope goes out behind the previous message's
 * final ".", and the bookkeeping of a finished message (status bytes,
 * unlink, log) is done while the next message is on the wire.
 */
void transfer_pipelined(struct worker *w, struct job *j, struct attempt *first)
{
	struct attempt cur = *first, next, done;
	struct buf ahead;
	bool have_done = false, ready;
	bool pipelining = w->smtp.ext & EXT_PIPELINING;
	unsigned chain = 1;
	buf_init(&ahead);
	if (pipelining) {
		envelope_commands(w, &cur, &ahead);
		ready = smtp_send(&w->smtp, ahead.data, ahead.len, ST_MAIL) == 0 && envelope_replies(w, &cur);
	} else {
		ready = envelope_one_by_one(w, &cur);
	}
	for (;;) {
		bool have_next = false, body_sent = false;
		if (ready) {
			have_next = pipelining && take_next(w, j->conf, &next, &ahead);
			body_sent = send_body(w, &cur, have_next ? &ahead : NULL) == 0;
		}
		if (have_done) {	/* while the upstream works on cur */
			attempt_close(w, &done, j);
			have_done = false;
		}
		if (body_sent)
			dot_reply(w, &cur);
		if (!have_next) {
			attempt_close(w, &cur, j);
			break;
		}
		if (session_broken(&w->smtp) || w->smtp.reply.code == 421) {
			attempt_close(w, &cur, j);
			attempt_close(w, &next, j);	/* deferred with the session's reason */
			break;
		}
		ready = envelope_replies(w, &next);
		done = cur;
		have_done = true;
		cur = next;
		chain++;
	}
	log_debug("worker %d: %u messages in one pipelined run", w->idx, chain);
	buf_free(&ahead);
}

/* ---- CHUNKING (RFC 3030) ----
 * A message goes as MAIL, RCPT..., BDAT <n> LAST and its n octets (CRLF
 * lines kept within 998 octets as with DATA, but not dot-stuffed); a
 * body over BODY_CHUNK is sent as several BDATs.  No reply is needed
 * before the octets (a server that refused every recipient still reads
 * them, and refuses the BDAT), so up to BATCH_MAX messages (BATCH_BYTES)
 * go out together, and their replies are read in order: MAIL, each
 * RCPT, each BDAT.  The first refused BDAT, else the last one's reply,
 * is every accepted recipient's result.  Replies are a few lines per
 * message, so the server cannot block on writing them while we write. */

bool chunking_usable(const struct worker *w, const struct config *c)
{
	unsigned need = EXT_CHUNKING | EXT_PIPELINING;
	return c->relay.chunking && (w->smtp.ext & need) == need;
}

/* Append a's commands and octets to out, writing out whenever it holds
 * BODY_CHUNK or more.  -1 on a session failure. */
static int chunked_message(struct worker *w, struct attempt *a, struct buf *out)
{
	struct stuffer st;
	struct buf *body = &w->out;
	off_t off = (off_t)a->body_off;
	uint64_t left = a->size;
	bool last = false;
	stuffer_init(&st);
	st.chunked = true;
	buf_reset(body);
	mail_rcpt_commands(w, a, out);
	a->nbdat = 0;
	while (!last) {
		size_t want = left < BODY_CHUNK ? (size_t)left : BODY_CHUNK;
		ssize_t r = want ? pread(a->fd, w->chunk, want, off) : 0;
		if (r < 0)
			return smtp_fail(&w->smtp, ST_LOCAL, 0, "reading the queue file: %s", strerror(errno));
		stuffer_feed(&st, w->chunk, (size_t)r, body);
		off += r;
		left -= (uint64_t)r;
		last = r == 0 || left == 0;
		if (last)
			stuffer_end(&st, body);
		if (body->len >= BODY_CHUNK || last) {
			buf_printf(out, "BDAT %zu%s\r\n", body->len, last ? " LAST" : "");
			buf_add(out, body->data, body->len);
			buf_reset(body);
			a->nbdat++;
		}
		if (out->len >= BODY_CHUNK) {
			if (smtp_send(&w->smtp, out->data, out->len, ST_DOT) < 0)
				return -1;
			buf_reset(out);
		}
	}
	if (st.lines_broken)
		log_info("%s: %llu lines over %d octets were broken", a->job->id,
			 (unsigned long long)st.lines_broken, SMTP_LINE_OUT_MAX);
	return 0;
}

/* Read a chunked message's replies and record its results. */
static void chunked_replies(struct worker *w, struct attempt *a)
{
	size_t taken;
	if (!mail_rcpt_replies(w, a, &taken))
		return;
	for (unsigned i = 0; i < a->nbdat; i++) {
		if (smtp_read_reply(&w->smtp, ST_DOT) < 0)
			return;
		if (w->smtp.reply.code / 100 != 2 || i + 1 == a->nbdat)
			result_for_accepted(w, a, ST_DOT);	/* keeps the first result */
	}
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
	struct buf out;
	buf_init(&out);
	batch[0] = *first;
	for (;;) {
		size_t share = 1 + batch_share(w->pool, BATCH_MAX - 1);	/* batch[0] is taken */
		uint64_t bytes = batch[0].size;
		bool failed = chunked_message(w, &batch[0], &out) < 0;
		while (!failed && nb < share && bytes < BATCH_BYTES && take_fitting(w, j->conf, &batch[nb])) {
			bytes += batch[nb].size;
			failed = chunked_message(w, &batch[nb++], &out) < 0;
		}
		if (!failed && out.len)
			(void)smtp_send(&w->smtp, out.data, out.len, ST_DOT);
		buf_reset(&out);
		if (have_held)
			attempt_close(w, &held, j);
		for (size_t i = 0; i < nb; i++) {
			if (!session_broken(&w->smtp))
				chunked_replies(w, &batch[i]);
			if (i + 1 < nb)
				attempt_close(w, &batch[i], j);
		}
		held = batch[nb - 1];
		have_held = true;
		total += (unsigned)nb;
		batches++;
		if (session_broken(&w->smtp) || w->smtp.reply.code == 421
		    || !take_fitting(w, j->conf, &batch[0]))
			break;
		nb = 1;
	}
	attempt_close(w, &held, j);
	log_debug("worker %d: %u messages in %u BDAT batches", w->idx, total, batches);
	buf_free(&out);
	free(batch);
}
