/*
 * control_act.c - the operator's actions on the control socket (FLUSH,
 * DELETE, HOLD, RELEASE), STATUS and METRICS.  control_int.h has the
 * threads; operator.h does each action's two halves (and the actions
 * that wait for an attempt's end).
 *
 * An action runs in three phases: the pool checks who the peer is (and
 * reads the owner of a message found at the start whose owner is not
 * known yet); the loop does the scheduler's part (op_begin); the pool
 * does the file's part (op_file: rename for hold and release, unlink for
 * delete); the loop ends it (op_done) and tells the client and the log.
 * A FLUSH of everything walks only what the peer may act on: an admin's
 * is the scheduler's flush of the deferred heap, a user's walks that
 * user's chain in the index.  An admin's flush (only: a provider's hold
 * is not any user's to lift) also clears every relay's hold and backoff
 * first (pool.h pool_flush_relays), as Postfix's flush forgets dead
 * destinations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/units.h"
#include "control_int.h"
#include "metrics.h"
#include "outboxd.h"
#include "pool.h"

static const char *verb_name(enum verb v)
{
	static const char *const n[] = { "queue", "show", "flush", "delete", "hold", "release", "status",
					 "metrics" };
	return n[v];
}

/* ---- FLUSH of everything the peer may act on ---- */

static void flush_all_done(struct ctl *c)
{
	struct daemon *d = c->d;
	size_t n = 0;
	if (c->admin) {
		pool_flush_relays(d->pool, c->uid);	/* (logged with the uid; sched_flush_all's finds none left) */
		n = sched_flush_all(&d->sched);
	} else {
		struct queue_index *q = &d->queue;
		uint32_t uid = ctl_peer_quid(c);
		for (qref r = uid == QUID_UNKNOWN ? 0 : qindex_first_of(q, uid), next; r; r = next) {
			next = qindex_next_of(q, r);	/* (a flush does not move it between chains) */
			if (qindex_get(q, r)->state == QE_DEFERRED && sched_act(&d->sched, r, SA_FLUSH) == SA_NOW)
				n++;
		}
	}
	log_info("flush asked by uid %ld: %zu messages due now", c->uid, n);	/* one line, however many */
	ctl_end(c);
}

/* ---- actions on named messages ---- */

static void check_work(struct ctl *c)
{
	c->admin = ctl_check_admin(c->uid);
	for (size_t i = 0; i < c->nitems; i++)
		c->items[i].allowed = ctl_may_see(c, &c->items[i]);
}

static void files_work(struct ctl *c)
{
	for (size_t i = 0; i < c->nitems; i++)
		op_file(&c->d->store, &c->items[i].op);
}

/* Loop: one item's outcome, told to the client and the log. */
static void tell(struct ctl *c, struct item *it)
{
	const struct op *o = &it->op;
	char id[QID_LEN + 1];
	qid_format(it->id, id);
	if (!it->allowed) {
		ctl_put(&c->out, 2, "outbox: %s: not in the queue", id);
		c->exit_code = 1;
	} else if (o->file_op && o->file_rc < 0) {
		ctl_put(&c->out, 2, "outbox: %s: %s failed: %s", id, verb_name(c->verb), o->why);
		log_err("%s: %s by uid %ld failed: %s", id, verb_name(c->verb), c->uid, o->why);
		c->exit_code = 1;
	} else if (o->answer == SA_BUSY) {
		ctl_put(&c->out, 2, "outbox: %s: a report about it is being queued; try again in a moment", id);
		c->exit_code = 75;
	} else if (o->answer == SA_UNCHANGED) {
		ctl_put(&c->out, 1, "%s: %s", id, c->verb == V_FLUSH ? "not waiting for a retry"
				: c->verb == V_RELEASE ? "not held" : "already so");
	} else if (o->answer == SA_LATER) {
		ctl_put(&c->out, 1, "%s: in delivery now; %s when this attempt ends", id,
			c->verb == V_HOLD ? "held" : "deleted");
		log_info("%s: %s asked by uid %ld, once its attempt ends", id, verb_name(c->verb), c->uid);
	} else {
		static const char *const done[] = { [V_FLUSH] = "due now", [V_DELETE] = "deleted",
						    [V_HOLD] = "held", [V_RELEASE] = "released" };
		ctl_put(&c->out, 1, "%s: %s", id, done[c->verb]);
		log_info("%s: %s by uid %ld", id, done[c->verb], c->uid);
	}
}

static void after_files(struct ctl *c)
{
	for (size_t i = 0; i < c->nitems; i++) {
		if (c->items[i].allowed)
			op_done(c->d, c->items[i].id, &c->items[i].op);
		tell(c, &c->items[i]);
	}
	ctl_end(c);
}

/* Loop: the scheduler's part of each allowed item. */
static void after_check(struct ctl *c)
{
	static const enum sched_action act[] = { [V_FLUSH] = SA_FLUSH, [V_DELETE] = SA_DELETE,
						 [V_HOLD] = SA_HOLD, [V_RELEASE] = SA_RELEASE };
	bool any = false;
	if (c->verb == V_FLUSH && c->admin)	/* before they are handed out: held relays go now too */
		pool_flush_relays(c->d->pool, c->uid);
	for (size_t i = 0; i < c->nitems; i++) {
		struct item *it = &c->items[i];
		qref r = it->allowed ? qindex_find(&c->d->queue, it->id) : 0;
		it->allowed = r != 0;
		it->op.a = act[c->verb];
		if (r && op_begin(c->d, r, &it->op))
			any = true;
	}
	if (any)
		ctl_work(c, files_work, after_files);
	else
		after_files(c);
}

void ctl_start_action(struct ctl *c, char **args, int nargs)
{
	if (c->verb == V_FLUSH && nargs == 0) {
		c->all = true;
		ctl_with_admin(c, flush_all_done);
		return;
	}
	c->items = xcalloc((size_t)nargs, sizeof *c->items);
	for (int i = 0; i < nargs; i++) {
		struct item *it = &c->items[c->nitems++];
		if (!qid_valid(args[i])) {
			ctl_put(&c->out, 2, "outbox: %.40s: not a queue ID", args[i]);
			c->exit_code = 64;
			ctl_end(c);
			return;
		}
		it->id = qid_value(args[i]);
		qref r = qindex_find(&c->d->queue, it->id);
		if (r)
			ctl_item_of(c, r, it);
		else
			qid_format(it->id, it->name);
	}
	ctl_work(c, check_work, after_check);
}

/* ---- STATUS: counts for everyone; the last upstream reply (it may name
 * another user's recipient) for root and outboxd's group only.  So for
 * the relays: each one's name and state (ok, paused, held back, login
 * needed: with the command to run) for everyone, the reply that paused
 * it and what to do about it (smtp_auth_hint) for admins only ---- */

/* The endpoint's answer in a login-needed reason ("login needed (run
 * `...`): URL: invalid_grant ..."): the command is said apart. */
static const char *endpoint_said(const char *why)
{
	const char *p = strstr(why, "): ");
	return p ? p + 3 : why;
}

static void clock_text(double t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(out, n, "%H:%M", &tm);
}

/* One relay's status line (text). */
static void relay_line(struct ctl *c, const struct relay_state *s)
{
	char until[32] = "", since[32] = "", when[48] = ", tried again with its next message";
	if (s->until > 0) {
		clock_text(s->until, until, sizeof until);
		snprintf(when, sizeof when, " until %s", until);
	}
	clock_text(s->since, since, sizeof since);
	const char *hint = c->admin && *s->hint ? s->hint : NULL;
	switch (s->state) {
	case RELAY_OK:
		ctl_put(&c->out, 1, "relay %s: ok", s->relay);
		break;
	case RELAY_LOGIN_NEEDED:
		ctl_put(&c->out, 1, "relay %s: login needed since %s: run `%s`%s%s%s", s->relay, since, s->command,
			c->admin ? " (the token endpoint said: " : "", c->admin ? endpoint_said(s->why) : "",
			c->admin ? ")" : "");
		break;
	case RELAY_DOWN:
		ctl_put(&c->out, 1, "relay %s: paused%s after %u failed session%s%s%s%s%s", s->relay, when, s->failures,
			s->failures == 1 ? "" : "s", c->admin ? ": " : "", c->admin ? s->why : "",
			hint ? " -- " : "", hint ? hint : "");
		break;
	case RELAY_HELD:
		ctl_put(&c->out, 1, "relay %s: held back%s after a quota or rate reply%s%s", s->relay, when,
			c->admin ? ": " : "", c->admin ? s->why : "");
		break;
	}
}

static void relays_json(struct ctl *c, struct buf *b, const struct relay_state *rs, size_t n)
{
	buf_adds(b, ",\"relays\":[");
	for (size_t i = 0; i < n; i++) {
		const struct relay_state *s = &rs[i];
		buf_adds(b, i ? ",{\"relay\":" : "{\"relay\":");
		ctl_json_str(b, s->relay);
		buf_printf(b, ",\"state\":\"%s\",\"failures\":%u", relay_condition_name(s->state), s->failures);
		if (s->until > 0)
			buf_printf(b, ",\"until\":%.0f", s->until);
		if (s->state == RELAY_LOGIN_NEEDED) {
			buf_printf(b, ",\"since\":%.0f,\"command\":", s->since);
			ctl_json_str(b, s->command);
		}
		if (c->admin && s->state != RELAY_OK) {
			buf_adds(b, ",\"reply\":");
			ctl_json_str(b, s->state == RELAY_LOGIN_NEEDED ? endpoint_said(s->why) : s->why);
			if (*s->hint) {
				buf_adds(b, ",\"hint\":");
				ctl_json_str(b, s->hint);
			}
		}
		buf_adds(b, "}");
	}
	buf_adds(b, "]");
}

static void status_json(struct ctl *c, const struct qcounts *n)
{
	struct daemon *d = c->d;
	const struct daemon_stats *st = &d->stats;
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "{\"up\":true,\"version\":\"%s\",\"pid\":%ld,\"uptime\":%.0f,\"reloads\":%llu,"
		   "\"queue\":{\"total\":%zu,\"queued\":%zu,\"deferred\":%zu,\"active\":%zu,\"held\":%zu},"
		   "\"since_start\":{\"received\":%llu,\"sent\":%llu,\"deferred\":%llu,\"bounced\":%llu},"
		   "\"last_result\":", OUTBOX_VERSION, (long)getpid(), now_real() - st->started,
		   (unsigned long long)st->reloads,
		   n->total, n->queued, n->deferred, n->active, n->held,
		   (unsigned long long)d->stats.intake.received, (unsigned long long)st->sent,
		   (unsigned long long)st->deferred, (unsigned long long)st->bounced);
	if (st->last_at > 0 && c->admin) {
		buf_printf(&b, "{\"at\":%.3f,\"reply\":", st->last_at);
		ctl_json_str(&b, st->last_reply);
		buf_adds(&b, "}");
	} else if (st->last_at > 0) {
		buf_printf(&b, "{\"at\":%.3f}", st->last_at);
	} else {
		buf_adds(&b, "null");
	}
	struct relay_state rs[RELAYS_MAX];
	relays_json(c, &b, rs, pool_relay_states(d->pool, rs, RELAYS_MAX));
	buf_adds(&b, "}");
	ctl_put(&c->out, 1, "%s", b.data);
	buf_free(&b);
}

static void status_done(struct ctl *c)
{
	struct daemon *d = c->d;
	struct qcounts n = qindex_counts(&d->queue);	/* kept, not counted: O(1) */
	const struct daemon_stats *st = &d->stats;
	if (c->json) {
		status_json(c, &n);
		ctl_end(c);
		return;
	}
	char up[32], last[64] = "";
	if (st->last_at > 0)
		ctl_time_text(st->last_at, last, sizeof last);
	ctl_put(&c->out, 1, "outboxd %s is running (pid %ld), up %s", OUTBOX_VERSION, (long)getpid(),
		format_duration((uint64_t)(now_real() - st->started), up, sizeof up));
	ctl_put(&c->out, 1, "queue: %zu messages: %zu queued, %zu deferred, %zu in delivery, %zu held",
		n.total, n.queued, n.deferred, n.active, n.held);
	ctl_put(&c->out, 1, "since start: %llu received, %llu sent, %llu deferred, %llu bounced",
		(unsigned long long)d->stats.intake.received, (unsigned long long)st->sent,
		(unsigned long long)st->deferred, (unsigned long long)st->bounced);
	if (st->last_at <= 0)
		ctl_put(&c->out, 1, "last upstream result: none yet");
	else if (c->admin)
		ctl_put(&c->out, 1, "last upstream result: %s at %s", st->last_reply, last);
	else
		ctl_put(&c->out, 1, "last upstream result: at %s (the reply is shown to root and group %s)",
			last, d->conf->queue.user);
	struct relay_state rs[RELAYS_MAX];
	size_t nrs = pool_relay_states(d->pool, rs, RELAYS_MAX);
	for (size_t i = 0; i < nrs; i++)
		relay_line(c, &rs[i]);
	ctl_end(c);
}

void ctl_start_status(struct ctl *c)
{
	ctl_with_admin(c, status_done);
}

/* ---- METRICS: the same text as [log] metrics_file ---- */

void ctl_do_metrics(struct ctl *c)
{
	struct buf b;
	buf_init(&b);
	metrics_render(c->d, &b);
	for (char *p = b.data, *nl; p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		ctl_put(&c->out, 1, "%.*s", (int)(nl - p), p);
	}
	buf_free(&b);
	ctl_end(c);
}
