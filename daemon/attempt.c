/*
 * attempt.c - one message's delivery attempt: loading its queue file,
 * the per-recipient results (struct rcpt_result: sent, deferred or
 * bounced, as smtp_classify() says), the key=value log line per
 * recipient, and recording the results: status bytes and fdatasync
 * while recipients remain, the file removed (kept as a spare, see
 * queue.c) when none do, then the outcome posted to the loop.
 *
 * Invariant: a recipient gets at most one result per attempt
 * (set_result keeps the first), and a recipient already sent or bounced
 * in the queue file is never touched again.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../common/address.h"
#include "../common/log.h"
#include "../common/retry.h"
#include "../common/units.h"
#include "delivery.h"
#include "spool_log.h"

#define LOAD_RETRY_S 60	/* a queue file that could not be read, for a passing reason */

static double rnd01(struct worker *w)
{
	return (double)rand_r(&w->rnd_state) / ((double)RAND_MAX + 1.0);
}

void attempt_free(struct attempt *a)
{
	if (a->fd >= 0)
		close(a->fd);
	for (size_t i = 0; i < a->env.nrcpt && a->res; i++)
		free(a->res[i].why);
	free(a->res);
	envelope_free(&a->env);
	memset(a, 0, sizeof *a);
	a->fd = -1;
}

/* Load the queue file; false when there is nothing to do. */
bool attempt_load(struct worker *w, struct job *j, struct attempt *a)
{
	struct err e;
	memset(a, 0, sizeof *a);
	a->fd = -1;
	a->job = j;
	a->started = now_real();
	qname_format(a->name, j->id, j->next_try, j->tries);
	if (store_load(w->pool->store, a->name, &a->env, &a->body_off, &a->fd, &a->size, &e) < 0) {
		bool gone = errno == ENOENT;	/* deleted meanwhile: nothing left to do */
		bool bad = store_load_error_is_permanent(errno);
		if (bad)	/* retrying would never help: aside for a human */
			spool_quarantine(w->pool->store, a->name, e.msg);
		else if (!gone)
			log_err("%s: cannot read queue file: %s", j->id, e.msg);
		struct delivery_result r = { .done = gone || bad, .tries = (uint16_t)j->tries,
					     .next_try = now_real() + LOAD_RETRY_S };
		memcpy(r.id, j->id, sizeof r.id);
		post_result(w->pool, &r);
		return false;
	}
	if (envelope_pending(&a->env) == 0) {	/* done before a crash, not yet removed */
		struct delivery_result r = { .done = true };
		memcpy(r.id, j->id, sizeof r.id);
		if (store_remove(w->pool->store, a->name, a->body_off + a->size, &e) < 0)
			log_err("%s: %s", j->id, e.msg);
		post_result(w->pool, &r);
		attempt_free(a);
		return false;
	}
	a->res = xcalloc(a->env.nrcpt, sizeof *a->res);
	return true;
}

void set_result(struct attempt *a, size_t i, enum outcome what, const char *why)
{
	struct rcpt_result *r = &a->res[i];
	if (r->state != OUT_NONE)
		return;
	r->state = what;
	free(r->why);
	r->why = xstrdup(why);
}

/* What a reply (or, with code 0, a failure without one) means for the
 * recipients it answers: the one classifier decides; a session error
 * defers (the session is closed by the caller). */
enum outcome outcome_of(enum smtp_stage st, int code)
{
	switch (smtp_classify(st, code)) {
	case V_OK: return OUT_SENT;
	case V_PERM: return OUT_BOUNCED;
	default: return OUT_DEFERRED;
	}
}

/* Every pending recipient without a result yet gets one. */
void set_all(struct attempt *a, enum outcome what, const char *why)
{
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].status == RCPT_PENDING)
			set_result(a, i, what, why);
}

/* The session's failure, classified, for every recipient left. */
void fail_from_session(struct attempt *a, const struct smtp_client *s)
{
	enum outcome o = outcome_of(s->fail_stage, s->fail_code);
	set_all(a, o == OUT_BOUNCED ? OUT_BOUNCED : OUT_DEFERRED, s->fail_text);
}

static void log_recipient(struct worker *w, struct attempt *a, size_t i, const char *status,
			  const char *extra)
{
	char to[ADDR_MAX * 4 + 1], why[SMTP_REPLY_SHOWN + 500];
	const struct smtp_client *s = &w->smtp;
	char relay[320];
	if (*s->relay)
		snprintf(relay, sizeof relay, "%s", s->relay);
	else
		snprintf(relay, sizeof relay, "%s:%llu", relay_label(job_relay(a->job)),
			 (unsigned long long)job_relay(a->job)->port);
	log_info("%s: to=<%s> relay=%s tls=%s delay=%.2f tries=%u status=%s (%s)%s", a->job->id,
		 log_safe(a->env.rcpt[i].addr, to, sizeof to), relay,
		 *s->net.tls_version ? s->net.tls_version : "none",
		 now_real() - a->env.arrival, a->job->tries + 1, status,
		 log_safe(a->res[i].why ? a->res[i].why : "", why, sizeof why), extra);
}

/* Does recipient i's failure get a report (a bounce)?  To the sender;
 * for a message with the null sender (a report itself), one to [address]
 * postmaster unless it went to the postmaster: never a loop. */
static bool wants_report(const struct attempt *a, const struct config *c, size_t i)
{
	if (*a->env.sender)
		return true;
	return *c->address.postmaster && strcasecmp(a->env.rcpt[i].addr, c->address.postmaster) != 0;
}

/* Write the results to the queue file, log them, tell the loop. */
void attempt_finish(struct worker *w, struct attempt *a)
{
	struct err e;
	const struct config *c = a->job->conf;
	bool expired = now_real() - a->env.arrival > (double)c->queue.lifetime;
	unsigned pending = 0, nsent = 0, ndeferred = 0, nbounced = 0;
	char last[200] = "";
	double retry_in = retry_delay(c->queue.retry_min, c->queue.retry_max, a->job->tries + 1, rnd01(w));
	char next[48], dur[32];
	snprintf(next, sizeof next, " next=+%s", format_duration((uint64_t)(retry_in + 0.5), dur, sizeof dur));
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		struct rcpt_result *r = &a->res[i];
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		if (r->state == OUT_NONE)
			set_result(a, i, OUT_DEFERRED, "not attempted");
		if (r->state == OUT_DEFERRED && expired) {
			char *why = xasprintf("message expired after %s in the queue: %s",
					      format_duration(c->queue.lifetime, dur, sizeof dur), r->why);
			free(r->why);
			r->why = why;
			r->state = OUT_BOUNCED;
		}
		if (r->why)
			(void)log_safe(r->why, last, sizeof last);
		if (r->state == OUT_DEFERRED) {
			pending++;
			ndeferred++;
			log_recipient(w, a, i, "deferred", next);
			continue;
		}
		*(r->state == OUT_SENT ? &nsent : &nbounced) += 1;
		log_recipient(w, a, i, r->state == OUT_SENT ? "sent" : "bounced", "");
	}
	bool bouncing = false;
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].status == RCPT_PENDING && a->res[i].state == OUT_BOUNCED && wants_report(a, c, i))
			bouncing = true;
	for (size_t i = 0; i < a->env.nrcpt && (pending > 0 || bouncing); i++) {
		/* the file stays: record the final results in it */
		enum outcome o = a->res[i].state;
		char st = o == OUT_SENT ? RCPT_SENT : wants_report(a, c, i) ? RCPT_BOUNCING : RCPT_FAILED;
		if (a->env.rcpt[i].status == RCPT_PENDING && o != OUT_DEFERRED
		    && store_set_status(a->fd, &a->env.rcpt[i], st, &e) < 0)
			log_err("%s: %s", a->job->id, e.msg);
	}
	bool warn = pending && c->queue.delay_warning && !bouncing && *a->env.sender
		    && now_real() - a->env.arrival >= (double)c->queue.delay_warning
		    && !store_warned(w->pool->store, a->job->id);
	struct delivery_result r = { .done = pending == 0 && !bouncing, .bouncing = bouncing, .warn = warn,
				     .next_try = now_real() + retry_in,
				     .tries = (uint16_t)(a->job->tries + 1 > 65535 ? 65535 : a->job->tries + 1) };
	memcpy(r.id, a->job->id, sizeof r.id);
	r.sent = (uint16_t)nsent;
	r.deferred = (uint16_t)ndeferred;
	r.bounced = (uint16_t)nbounced;
	snprintf(r.last_reply, sizeof r.last_reply, "%s", last);
	if (a->job->routed)
		snprintf(r.relay, sizeof r.relay, "%s", relay_label(job_relay(a->job)));
	r.delay = now_real() - a->env.arrival;
	if (pending == 0 && !bouncing) {
		/* Every recipient is final: the file goes.  Without a directory
		 * fsync a power loss may bring it back, and then its status
		 * bytes (synced below only when it stays) would resend it:
		 * the "crash between the upstream's 250 and the local record"
		 * case that SPEC allows. */
		if (store_remove(w->pool->store, a->name, a->body_off + a->size, &e) < 0)
			log_err("%s: %s", a->job->id, e.msg);
		else
			log_info("%s: removed", a->job->id);
	} else {
		if (fdatasync(a->fd) < 0)
			log_err("%s: fdatasync: %s", a->job->id, strerror(errno));
		/* the schedule goes into the name, for the next start */
		/* (also when only a report is left: its ID comes from the tries in the name) */
		if (store_note_retry(w->pool->store, a->name, (uint32_t)ceil(r.next_try), r.tries, &e) < 0)
			log_err("%s: %s", a->job->id, e.msg);
		/* the last replies, for outbox queue and for the report */
		const char **why = xcalloc(a->env.nrcpt, sizeof *why);
		for (size_t i = 0; i < a->env.nrcpt; i++)
			if (a->env.rcpt[i].status == RCPT_PENDING && (a->res[i].state == OUT_DEFERRED
								       || (a->res[i].state == OUT_BOUNCED
									   && wants_report(a, c, i))))
				why[i] = a->res[i].why ? a->res[i].why : "";
		store_note_reasons(w->pool->store, a->job->id, &a->env, why, w->smtp.relay);
		free(why);
		/* a report is due: the name says so, durably, before it is queued */
		if (bouncing && store_set_mark(w->pool->store, a->name, 'B', &e) < 0)
			log_err("%s: %s", a->job->id, e.msg);
	}
	post_result(w->pool, &r);
}

void attempt_postpone(struct worker *w, struct attempt *a, double until, const char *why)
{
	struct err e;
	char next[48], dur[32];
	double in = until - now_real();
	unsigned n = 0;
	snprintf(next, sizeof next, " next=+%s", format_duration((uint64_t)(in > 0 ? in + 0.5 : 0), dur, sizeof dur));
	set_all(a, OUT_DEFERRED, why);	/* as Postfix logs "delivery temporarily suspended" */
	const char **reasons = xcalloc(a->env.nrcpt, sizeof *reasons);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		log_recipient(w, a, i, "deferred", next);
		reasons[i] = why;
		n++;
	}
	if (store_note_retry(w->pool->store, a->name, (uint32_t)ceil(until), a->job->tries, &e) < 0)
		log_err("%s: %s", a->job->id, e.msg);
	store_note_reasons(w->pool->store, a->job->id, &a->env, reasons, "");
	free(reasons);
	/* not an attempt: its tries stay, and so does its backoff */
	struct delivery_result r = { .next_try = until, .tries = (uint16_t)a->job->tries,
				     .deferred = (uint16_t)n };
	memcpy(r.id, a->job->id, sizeof r.id);
	snprintf(r.last_reply, sizeof r.last_reply, "%s", why);
	if (a->job->routed)
		snprintf(r.relay, sizeof r.relay, "%s", relay_label(job_relay(a->job)));
	post_result(w->pool, &r);
	attempt_free(a);
}

/* Can this upstream take this message at all?  Sets a permanent result
 * when it cannot. */
bool attempt_fits(struct worker *w, struct attempt *a)
{
	const struct smtp_client *s = &w->smtp;
	char why[300];
	if ((s->ext & EXT_SIZE) && s->size_max && a->size > s->size_max) {
		snprintf(why, sizeof why, "message size %llu exceeds the upstream's limit of %llu",
			 (unsigned long long)a->size, (unsigned long long)s->size_max);
		set_all(a, OUT_BOUNCED, why);
		return false;
	}
	if ((a->env.flags & ENV_8BITMIME) && !(s->ext & EXT_8BITMIME)) {
		set_all(a, OUT_BOUNCED, "message has 8-bit content and the upstream lacks 8BITMIME");
		return false;
	}
	if ((a->env.flags & ENV_SMTPUTF8) && !(s->ext & EXT_SMTPUTF8)) {
		set_all(a, OUT_BOUNCED, "message needs SMTPUTF8 and the upstream lacks it");
		return false;
	}
	return true;
}

/* Record an attempt's results and free it (and its job unless it is
 * the caller's). */
void attempt_close(struct worker *w, struct attempt *a, const struct job *caller_job)
{
	if (session_broken(&w->smtp))
		fail_from_session(a, &w->smtp);
	attempt_finish(w, a);
	if (a->job != caller_job)
		job_free(a->job);
	attempt_free(a);
}
