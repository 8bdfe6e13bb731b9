/*
 * attempt.c - one message's delivery attempt, a value (attempt.h):
 * loading its queue file, the per-recipient results (struct
 * rcpt_result: sent, deferred or bounced, as smtp_classify() says), the
 * key=value log line per recipient, and recording the results: status
 * bytes and fdatasync while recipients remain, the file removed (kept
 * as a spare, see queue.c) when none do.  The outcome is returned
 * (struct delivery_result) for the caller to report; nothing here knows
 * the pool or its workers.
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
#include "attempt.h"
#include "pool.h"
#include "spool_log.h"

#define LOAD_RETRY_S 60	/* a queue file that could not be read, for a passing reason */

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

static void result_init(struct delivery_result *r, const char *id)
{
	memset(r, 0, sizeof *r);
	memcpy(r->id, id, sizeof r->id);
}

/* Does a recipient of env wait for a report (B) or a relayed notice (R)? */
static bool report_unqueued(const struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].status == RCPT_BOUNCING || env->rcpt[i].status == RCPT_RELAYED)
			return true;
	return false;
}

bool attempt_load(const struct store *s, const char *id, unsigned tries, uint32_t next_try,
		  const struct config *conf, struct attempt *a, struct delivery_result *r)
{
	struct err e;
	memset(a, 0, sizeof *a);
	a->fd = -1;
	snprintf(a->id, sizeof a->id, "%s", id);
	a->tries = tries;
	a->conf = conf;
	qname_format(a->name, id, next_try, tries);
	result_init(r, a->id);
	if (store_load(s, a->name, &a->env, &a->body_off, &a->fd, &a->size, &e) < 0) {
		bool gone = errno == ENOENT;	/* deleted meanwhile: nothing left to do */
		bool bad = store_load_error_is_permanent(errno);
		if (bad)	/* retrying would never help: aside for a human */
			spool_quarantine(s, a->name, e.msg);
		else if (!gone)
			log_err("%s: cannot read queue file: %s", id, e.msg);
		r->done = gone || bad;
		r->tries = (uint16_t)tries;
		r->next_try = now_real() + LOAD_RETRY_S;
		return false;
	}
	if (report_unqueued(&a->env) && qname_mark(a->name) != 'B') {
		/* B or R statuses with no B mark: a crash between the two in
		 * an older version's order (record_kept); the report is due */
		log_warn("%s: a report was due and its mark lost: it is queued now", id);
		if (store_set_mark(s, a->name, 'B', &e) < 0)
			log_err("%s: %s", id, e.msg);
		r->bouncing = true;
		r->tries = (uint16_t)tries;
		r->next_try = now_real() + LOAD_RETRY_S;
		attempt_free(a);
		return false;
	}
	if (envelope_pending(&a->env) == 0) {	/* done before a crash, not yet removed */
		r->done = true;
		if (store_remove(s, a->name, a->body_off + a->size, &e) < 0)
			log_err("%s: %s", id, e.msg);
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
	return outcome_of_verdict(smtp_classify(st, code));
}

enum outcome outcome_of_verdict(enum smtp_verdict v)
{
	switch (v) {
	case V_OK: return OUT_SENT;
	case V_PERM: return OUT_BOUNCED;
	default: return OUT_DEFERRED;
	}
}

void attempt_apply(struct attempt *a, size_t which, enum smtp_verdict v, const char *why)
{
	enum outcome o = outcome_of_verdict(v);
	if (which == RES_ALL)
		set_all(a, o, why);
	for (size_t i = 0; which == RES_ACCEPTED && i < a->env.nrcpt; i++)
		if (a->res[i].accepted)
			set_result(a, i, o, why);
	if (which < a->env.nrcpt)
		set_result(a, which, o, why);
	for (size_t i = 0; which == RES_POSTPONED && i < a->env.nrcpt; i++)
		if (a->res[i].postponed && a->res[i].state == OUT_NONE)
			a->res[i].state = o;	/* why: its own reply, kept */
	for (size_t i = 0; which == RES_POSTPONED && i < a->env.nrcpt; i++)
		a->res[i].postponed = false;
	if (which == RES_POSTPONED)
		a->postponed = 0;
}

void attempt_postpone_rcpt(struct attempt *a, size_t i, const char *why)
{
	struct rcpt_result *r = &a->res[i];
	if (r->state != OUT_NONE || r->postponed)
		return;
	r->postponed = true;
	free(r->why);
	r->why = xstrdup(why);
	a->postponed++;
}

void set_all(struct attempt *a, enum outcome what, const char *why)
{
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].status == RCPT_PENDING)
			set_result(a, i, what, why);
}

void fail_from_session(struct attempt *a, const struct smtp_client *s)
{
	enum outcome o = outcome_of(s->fail_stage, s->fail_code);
	set_all(a, o == OUT_BOUNCED ? OUT_BOUNCED : OUT_DEFERRED, s->fail_text);
}

bool attempt_fits(struct attempt *a, unsigned ext, uint64_t size_max)
{
	char why[300];
	a->ext = ext;
	if ((ext & EXT_SIZE) && size_max && a->size > size_max) {
		snprintf(why, sizeof why, "5.3.4 message size %llu exceeds the upstream's limit of %llu",
			 (unsigned long long)a->size, (unsigned long long)size_max);
		set_all(a, OUT_BOUNCED, why);
		return false;
	}
	if ((a->env.flags & ENV_8BITMIME) && !(ext & EXT_8BITMIME)) {
		set_all(a, OUT_BOUNCED, "5.6.3 message has 8-bit content and the upstream lacks 8BITMIME");
		return false;
	}
	if ((a->env.flags & ENV_SMTPUTF8) && !(ext & EXT_SMTPUTF8)) {
		set_all(a, OUT_BOUNCED, "5.6.7 message needs SMTPUTF8 and the upstream lacks it");
		return false;
	}
	return true;
}

static void log_recipient(const struct attempt_site *site, const struct attempt *a, size_t i,
			  const char *status, const char *extra)
{
	char to[ADDR_MAX * 4 + 1], why[SMTP_REPLY_SHOWN + 500];
	char relay[320] = "";
	if (*site->peer)
		snprintf(relay, sizeof relay, "%s", site->peer);
	else if (a->relay)
		snprintf(relay, sizeof relay, "%s:%llu", relay_label(a->relay), (unsigned long long)a->relay->port);
	log_info("%s: to=<%s> relay=%s tls=%s delay=%.2f tries=%u status=%s (%s)%s", a->id,
		 log_safe(a->env.rcpt[i].addr, to, sizeof to), relay, *site->tls ? site->tls : "none",
		 now_real() - a->env.arrival, a->tries + 1, status,
		 log_safe(a->res[i].why ? a->res[i].why : "", why, sizeof why), extra);
}

/* Does recipient i's failure get a report (a bounce)?  Not when its
 * NOTIFY is NEVER or lacks FAILURE (RFC 3461 section 4.1; the failure
 * is still logged and counted).  To the sender; for a message with the
 * null sender (a report itself), one to [address] postmaster unless it
 * went to the postmaster: never a loop. */
static bool wants_report(const struct attempt *a, size_t i)
{
	unsigned notify = a->env.rcpt[i].notify;
	if (notify && !(notify & NOTIFY_FAILURE))
		return false;
	if (*a->env.sender)
		return true;
	const char *pm = a->conf->address.postmaster;
	return *pm && strcasecmp(a->env.rcpt[i].addr, pm) != 0;
}

/* Does recipient i, taken by the relay, get our "relayed" notice?  When
 * its NOTIFY has SUCCESS and the relay does not offer DSN (with DSN the
 * parameters went on and the relay reports), to a sender that is not
 * the null one. */
static bool wants_relayed(const struct attempt *a, size_t i)
{
	return (a->env.rcpt[i].notify & NOTIFY_SUCCESS) && !(a->ext & EXT_DSN) && *a->env.sender;
}

/* Does recipient i, still pending, let a delay warning go?  Without
 * NOTIFY (the default) or with DELAY in it. */
static bool wants_delay(const struct attempt *a, size_t i)
{
	unsigned notify = a->env.rcpt[i].notify;
	return notify == 0 || (notify & NOTIFY_DELAY);
}

void attempt_settle(struct attempt *a, double now, struct attempt_tally *t)
{
	const struct config *c = a->conf;
	bool expired = now - a->env.arrival > (double)c->queue.lifetime;
	char dur[32];
	memset(t, 0, sizeof *t);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		struct rcpt_result *r = &a->res[i];
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		if (r->state == OUT_NONE)
			set_result(a, i, OUT_DEFERRED, "not attempted");
		if (r->state == OUT_DEFERRED && expired) {
			char *why = xasprintf("4.4.7 message expired after %s in the queue: %s",
					      format_duration(c->queue.lifetime, dur, sizeof dur), r->why);
			free(r->why);
			r->why = why;
			r->state = OUT_BOUNCED;
		}
		if (r->state == OUT_DEFERRED)
			t->pending++, t->deferred++, t->warnable += wants_delay(a, i);
		else
			*(r->state == OUT_SENT ? &t->sent : &t->bounced) += 1;
		if ((r->state == OUT_BOUNCED && wants_report(a, i)) || (r->state == OUT_SENT && wants_relayed(a, i)))
			t->bouncing = true;
	}
}

/* The queue file stays: each final result goes into it (B for a failure
 * to report, R for a relayed notice due), the schedule into its name,
 * the last replies beside it (those the report quotes), and a B mark
 * when a report is due (qrecord.c BOUNCES). */
static void record_kept(const struct attempt_site *site, struct attempt *a, const struct delivery_result *r)
{
	struct err e;
	/* the schedule goes into the name, for the next start (also when
	 * only a report is left: its ID comes from the tries in the name);
	 * and when a report is due, the B mark, durably (the bucket's
	 * fsync), BEFORE any status says B or R: a crash between leaves a
	 * .B name over Q statuses (bounce.c finds nothing to report and
	 * the recipients are tried again), never a B or R that no name
	 * points at (qrecord.c BOUNCES) */
	if (store_note_retry(site->store, a->name, (uint32_t)ceil(r->next_try), r->tries, &e) < 0)
		log_err("%s: %s", a->id, e.msg);
	if (r->bouncing && store_set_mark(site->store, a->name, 'B', &e) < 0)
		log_err("%s: %s", a->id, e.msg);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		enum outcome o = a->res[i].state;
		char st = o == OUT_SENT ? (wants_relayed(a, i) ? RCPT_RELAYED : RCPT_SENT)
			  : wants_report(a, i) ? RCPT_BOUNCING : RCPT_FAILED;
		if (a->env.rcpt[i].status == RCPT_PENDING && o != OUT_DEFERRED
		    && store_set_status(a->fd, &a->env.rcpt[i], st, &e) < 0)
			log_err("%s: %s", a->id, e.msg);
	}
	if (fdatasync(a->fd) < 0)
		log_err("%s: fdatasync: %s", a->id, strerror(errno));
	/* the last replies, for outbox queue and for the report */
	const char **why = xcalloc(a->env.nrcpt, sizeof *why);
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].status == RCPT_PENDING
		    && (a->res[i].state == OUT_DEFERRED || (a->res[i].state == OUT_BOUNCED && wants_report(a, i))
			|| (a->res[i].state == OUT_SENT && wants_relayed(a, i))))
			why[i] = a->res[i].why ? a->res[i].why : "";
	store_note_reasons(site->store, a->id, &a->env, why, site->peer);
	free(why);
}

/* What the log says of recipient i's notice when it is not the default:
 * a failure the sender asked not to hear of, a relayed notice due. */
static const char *dsn_note(const struct attempt *a, size_t i)
{
	if (a->res[i].state == OUT_BOUNCED && *a->env.sender && !wants_report(a, i))
		return " dsn=none (NOTIFY)";
	if (a->res[i].state == OUT_SENT && wants_relayed(a, i))
		return " dsn=relayed";
	return "";
}

void attempt_finish(const struct attempt_site *site, struct attempt *a, struct delivery_result *r)
{
	struct err e;
	const struct config *c = a->conf;
	struct attempt_tally t;
	char last[200] = "", next[48], dur[32];
	double retry_in = retry_delay(c->queue.retry_min, c->queue.retry_max, a->tries + 1, site->rnd);
	snprintf(next, sizeof next, " next=+%s", format_duration((uint64_t)(retry_in + 0.5), dur, sizeof dur));
	attempt_settle(a, now_real(), &t);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		const struct rcpt_result *rr = &a->res[i];
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		if (rr->why)
			(void)log_safe(rr->why, last, sizeof last);
		log_recipient(site, a, i, rr->state == OUT_DEFERRED ? "deferred" : rr->state == OUT_SENT ? "sent" : "bounced",
			      rr->state == OUT_DEFERRED ? next : dsn_note(a, i));
	}
	result_init(r, a->id);
	r->done = t.pending == 0 && !t.bouncing;
	r->bouncing = t.bouncing;
	r->warn = t.warnable && c->queue.delay_warning && !t.bouncing && *a->env.sender
		  && now_real() - a->env.arrival >= (double)c->queue.delay_warning && !store_warned(site->store, a->id);
	r->next_try = now_real() + retry_in;
	r->tries = (uint16_t)(a->tries + 1 > 65535 ? 65535 : a->tries + 1);
	r->sent = (uint16_t)t.sent;
	r->deferred = (uint16_t)t.deferred;
	r->bounced = (uint16_t)t.bounced;
	snprintf(r->last_reply, sizeof r->last_reply, "%s", last);
	if (a->relay)
		snprintf(r->relay, sizeof r->relay, "%s", relay_label(a->relay));
	r->delay = now_real() - a->env.arrival;
	if (!r->done) {
		record_kept(site, a, r);
		return;
	}
	/* Every recipient is final: the file goes.  Without a directory
	 * fsync a power loss may bring it back, and then its status bytes
	 * (synced above only when it stays) would resend it: the "crash
	 * between the upstream's 250 and the local record" case that SPEC
	 * allows. */
	if (store_remove(site->store, a->name, a->body_off + a->size, &e) < 0)
		log_err("%s: %s", a->id, e.msg);
	else
		log_info("%s: removed", a->id);
}

void attempt_postpone(const struct attempt_site *site, struct attempt *a, double until, const char *why,
		      struct delivery_result *r)
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
		log_recipient(site, a, i, "deferred", next);
		reasons[i] = why;
		n++;
	}
	if (store_note_retry(site->store, a->name, (uint32_t)ceil(until), a->tries, &e) < 0)
		log_err("%s: %s", a->id, e.msg);
	store_note_reasons(site->store, a->id, &a->env, reasons, "");
	free(reasons);
	/* not an attempt: its tries stay, and so does its backoff */
	result_init(r, a->id);
	r->next_try = until;
	r->tries = (uint16_t)a->tries;
	r->deferred = (uint16_t)n;
	snprintf(r->last_reply, sizeof r->last_reply, "%s", why);
	if (a->relay)
		snprintf(r->relay, sizeof r->relay, "%s", relay_label(a->relay));
	attempt_free(a);
}
