/*
 * upstreams.c - a worker group and job queue per relay, routing by
 * sender, and failover (upstreams.h; SPEC "Relays").
 *
 * New jobs wait at the entry: the first relay (by priority) that takes
 * any sender.  The first worker to read a job's envelope routes it
 * (relay_route: the relays whose senders match most specifically, in
 * priority order) and hands it to the queue of the first relay on its
 * route that is not down.  When a worker cannot open a session (DNS,
 * TCP, TLS, greeting, EHLO, AUTH, a 421, a timeout: anything before a
 * transaction began) its relay is down for the backoff of [queue]
 * retry_min..retry_max, growing with each such failure in a row, and
 * the job moves at once to the next relay of its route that is not
 * down; with none left it is deferred as usual.  A session that opens
 * brings the relay back.  A reply to a recipient, whatever it says, is
 * final for the attempt: the job does not move.
 *
 * Trial session: once a relay that was down may be tried again (its
 * backoff over, or cleared by a flush), and whenever no session to it
 * opened in the last PROVEN_S (at the start, after a quiet spell: its
 * login is not known to work), one worker without a session opens one
 * (up->trying) while the relay's other workers wait for its outcome: up
 * again, all go; down again, their messages wait or move.  So a relay
 * refusing AUTH gets one login per backoff, never one per worker at
 * once: a wrong password does not become a burst of failed logins that
 * makes the provider lock the account (SPEC "Providers").  Every way a
 * trial ends (upstream_up, upstream_failed) wakes the waiters.
 *
 * Login needed: a session that failed for a dead OAuth2 refresh token
 * (tokens.h, w->login_needed) puts the relay in that state until a
 * session opens again; the postmaster is told once (up->notice_due,
 * sent by the loop: relay_state.c), not again until the relay was up.
 *
 * An operator's flush (pool_flush_relays) clears every relay's hold
 * after a quota or rate reply and every backoff, and says so in the log:
 * "flush means now", as Postfix's flush retries dead destinations.
 *
 * A reload (upstreams_configure) keeps each relay's upstream by name,
 * adds the new ones, starts or retires workers to the relay's
 * `workers`, marks the vanished ones removed (their workers leave after
 * the message in hand), and puts every waiting job back at the entry,
 * unrouted, under the new configuration: nothing is lost and nothing
 * goes where the new file does not send it.  Fields under pool.mu.
 */
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/retry.h"
#include "../common/tokens.h"
#include "jobs.h"
#include "pool_int.h"
#include "relay_state.h"
#include "upstreams.h"

#define PROVEN_S 60	/* a session opened this recently: the relay's login works, no trial */

static struct upstream *find_locked(struct pool *p, const char *name)
{
	for (struct upstream *up = p->ups; up; up = up->next)
		if (!up->removed && strcmp(up->name, name) == 0)
			return up;
	return NULL;
}

static bool is_down(const struct upstream *up, double now)
{
	return up && up->down_until > now;
}

/* The first hop from `from` on j's route whose relay is up; -1 if none. */
static int next_up_hop(struct pool *p, const struct job *j, unsigned from, double now)
{
	for (unsigned h = from; h < j->nroute; h++) {
		struct upstream *up = find_locked(p, j->conf->relays[j->route[h]]->name);
		if (up && !is_down(up, now))
			return (int)h;
	}
	return -1;
}

struct upstream *upstream_for(struct worker *w, struct job *j, const char *sender)
{
	struct pool *p = w->pool;
	double now = now_real();
	uv_mutex_lock(&p->mu);
	if (!j->routed) {
		j->nroute = (uint8_t)relay_route((const struct relay *const *)j->conf->relays, j->conf->nrelays,
						 sender, j->route);
		if (j->nroute == 0) {	/* (the config has a relay for any sender) */
			j->route[0] = 0;
			j->nroute = 1;
		}
		int h = next_up_hop(p, j, 0, now);
		j->hop = (uint8_t)(h < 0 ? 0 : h);	/* all down: it waits for the first (upstream_admit) */
		j->routed = true;
	}
	struct upstream *to = find_locked(p, job_relay(j)->name);
	if (!to) {	/* removed by a reload since it was routed: from the entry again */
		j->routed = false;
		to = p->entry;
	}
	uv_mutex_unlock(&p->mu);
	return to == w->up ? NULL : to;
}

/* The trial session of up, if w holds it, has ended: wake the waiters. */
static void trial_over_locked(struct worker *w)
{
	if (w->up->trying == w)
		w->up->trying = NULL;
	uv_cond_broadcast(&w->up->tried);
}

/* Is a new session to up a trial: down before, or not proven lately? */
static bool needs_trial_locked(const struct upstream *up, double now)
{
	return up->failures > 0 || now - up->proven_at > PROVEN_S;
}

/* Must w wait for another worker's trial session to its relay? */
static bool trial_by_another_locked(const struct worker *w, double now)
{
	const struct upstream *up = w->up;
	return up->trying && up->trying != w && !w->smtp.open && needs_trial_locked(up, now);
}

/* w may go: it opens the trial session if one is needed and none runs
 * (a worker with a session open needs none). */
static void trial_take_locked(struct worker *w, double now)
{
	struct upstream *up = w->up;
	if (needs_trial_locked(up, now) && !up->trying && !w->smtp.open)
		up->trying = w;
}

/* A session failed for a dead refresh token (locked): the relay needs a
 * login; true when it did not before (the log says so once).  The
 * postmaster's notice is decided here, once (*noticed), unless it was
 * told before a restart and the token has not worked since (told). */
static bool login_needed_locked(struct upstream *up, double now, const struct worker *w, bool *noticed)
{
	if (up->login_needed)
		return false;
	up->login_needed = true;
	up->login_since = w->login_since > 0 ? w->login_since : now;
	if (!up->notified) {
		up->notified = true;
		up->notice_due = *noticed = !w->login_told;
	}
	return true;
}

bool upstream_failed(struct worker *w, struct job *j)
{
	struct pool *p = w->pool;
	struct upstream *up = w->up;
	const struct config *c = j->conf;
	double now = now_real();
	uv_mutex_lock(&p->mu);
	up->failures++;
	/* the reply alone: what to do is the hint table's (relay_state.c) */
	const char *cut = strstr(w->smtp.fail_text, "; what to do: ");
	snprintf(up->down_why, sizeof up->down_why, "%.*s",
		 (int)(cut ? cut - w->smtp.fail_text : (ptrdiff_t)strlen(w->smtp.fail_text)), w->smtp.fail_text);
	w->login_noticed = false;
	bool newly_login = w->login_needed && login_needed_locked(up, now, w, &w->login_noticed);
	double wait = retry_delay(c->queue.retry_min, c->queue.retry_max, up->failures, worker_rnd(w));
	unsigned quota = smtp_quota_hold(w->smtp.fail_code, w->smtp.fail_text);	/* "421 4.7.0 ..." */
	if (quota > wait)
		wait = quota;
	if (up->down_until < now + wait)
		up->down_until = now + wait;
	int h = j->routed ? next_up_hop(p, j, j->hop + 1u, now) : -1;
	struct upstream *to = h >= 0 ? find_locked(p, j->conf->relays[j->route[h]]->name) : NULL;
	char from[64], next[64], id[QID_LEN + 1];
	unsigned failures = up->failures;
	snprintf(from, sizeof from, "%s", relay_label(up->relay));
	snprintf(next, sizeof next, "%s", to ? relay_label(to->relay) : "");
	memcpy(id, j->id, sizeof id);
	trial_over_locked(w);
	bool moved = to != NULL;
	if (to) {
		j->hop = (uint8_t)h;
		push_job_locked(p, to, j);	/* (j is the next worker's from here) */
	}
	uv_mutex_unlock(&p->mu);
	if (newly_login)	/* (the text names the command to run) */
		log_err("relay %s: %s; its mail waits (deferred, never bounced)", from, w->smtp.fail_text);
	const char *hint = w->login_needed ? NULL : smtp_auth_hint(w->smtp.fail_text);
	log_warn("relay %s: down for %.0f s (%u failure%s in a row)%s%s", from, wait, failures,
		 failures == 1 ? "" : "s", hint ? ": " : "", hint ? hint : "");
	if (moved)
		log_info("%s: tried at relay %s instead", id, next);
	return moved;
}

void upstream_up(struct worker *w)
{
	struct upstream *up = w->up;
	uv_mutex_lock(&w->pool->mu);
	bool was_down = up->failures > 0;
	char label[64];
	snprintf(label, sizeof label, "%s", relay_label(up->relay));
	up->failures = 0;
	up->down_until = 0;
	up->proven_at = now_real();
	up->login_needed = up->notified = up->notice_due = false;	/* a new failure is news again */
	trial_over_locked(w);
	uv_mutex_unlock(&w->pool->mu);
	if (was_down)
		log_notice("relay %s: up again", label);
}

void upstream_hold(struct worker *w, unsigned hold, const char *reply)
{
	struct upstream *up = w->up;
	char label[64];
	uv_mutex_lock(&w->pool->mu);
	snprintf(label, sizeof label, "%s", relay_label(up->relay));
	if (up->down_until < now_real() + hold)
		up->down_until = now_real() + hold;
	snprintf(up->down_why, sizeof up->down_why, "%s", reply);
	uv_mutex_unlock(&w->pool->mu);
	log_warn("relay %s: held back for %u s after a quota or rate reply (%s)", label, hold, reply);
}

/* Open up's max_rate counter as configured (locked, a worker's thread:
 * the file is read and rewritten).  The relay's name is the file's. */
static void rate_reopen_locked(struct pool *p, struct upstream *up)
{
	rate_close(&up->rate);
	char *path = xasprintf("%s/rate/%s", p->store->spool, *up->name ? up->name : "default");
	rate_open(&up->rate, up->rate_n ? path : NULL, up->rate_n, up->rate_per);
	free(path);
	up->rate_stale = false;
}

/* The relay's max_rate slot: 0 and taken, or the seconds to the next. */
static double rate_slot_locked(struct pool *p, struct upstream *up, double now)
{
	if (up->rate_stale)
		rate_reopen_locked(p, up);
	double t = rate_next(&up->rate, now);
	if (t <= now) {
		rate_take(&up->rate, now);
		return 0;
	}
	return t - now;
}

enum admit upstream_admit(struct worker *w, struct job *j, double *until, char *why, size_t n)
{
	struct pool *p = w->pool;
	struct upstream *up = w->up;
	uv_mutex_lock(&p->mu);
	for (;;) {
		double now = now_real();
		if (is_down(up, now)) {
			int h = next_up_hop(p, j, j->hop + 1u, now);
			if (h >= 0) {	/* the next relay of its route takes it now */
				j->hop = (uint8_t)h;
				push_job_locked(p, find_locked(p, job_relay(j)->name), j);
				uv_mutex_unlock(&p->mu);
				return ADMIT_MOVED;
			}
			*until = up->down_until;
			snprintf(why, n, "delivery temporarily suspended: relay %s %s: %s", relay_label(up->relay),
				 up->failures ? "is down" : "is held back", up->down_why);
			break;
		}
		if (trial_by_another_locked(w, now)) {
			if (p->stopping) {
				*until = now;
				snprintf(why, n, "delivery temporarily suspended: relay %s is being tried again",
					 relay_label(up->relay));
				break;
			}
			uv_cond_timedwait(&up->tried, &p->mu, 1000000000ULL);	/* (a stop ends the wait) */
			continue;
		}
		double wait = rate_slot_locked(p, up, now);
		if (wait == 0) {
			trial_take_locked(w, now);
			uv_mutex_unlock(&p->mu);
			return ADMIT_GO;
		}
		if (wait > RATE_WAIT_S || p->stopping) {
			*until = now + wait;
			snprintf(why, n, "delivery temporarily suspended: relay %s is at its max_rate %s",
				 relay_label(up->relay), up->relay->max_rate);
			break;
		}
		uv_mutex_unlock(&p->mu);
		uv_sleep((unsigned)(wait * 1000) + 1);
		uv_mutex_lock(&p->mu);
	}
	uv_mutex_unlock(&p->mu);
	return ADMIT_LATER;
}

bool upstream_admit_now(struct worker *w)
{
	uv_mutex_lock(&w->pool->mu);
	double now = now_real();
	bool go = !is_down(w->up, now) && rate_slot_locked(w->pool, w->up, now) == 0;
	uv_mutex_unlock(&w->pool->mu);
	return go;
}

void pool_flush_relays(struct pool *p, long uid)
{
	if (!p)
		return;
	struct buf said;	/* the log lines, written once the lock is let go */
	buf_init(&said);
	char who[48] = "flush";
	if (uid >= 0)
		snprintf(who, sizeof who, "flush by uid %ld", uid);
	uv_mutex_lock(&p->mu);
	double now = now_real();
	for (struct upstream *up = p->ups; up; up = up->next) {
		if (up->removed || !is_down(up, now))
			continue;
		if (up->failures)	/* the count stays: a new failure backs off longer still */
			buf_printf(&said, "%s: relay %s: down after %u failed session%s: cleared, one session "
					  "is tried now\n", who, relay_label(up->relay), up->failures,
				   up->failures == 1 ? "" : "s");
		else
			buf_printf(&said, "%s: relay %s: hold after a quota or rate reply cleared, tried now\n",
				   who, relay_label(up->relay));
		up->down_until = 0;
	}
	uv_mutex_unlock(&p->mu);
	for (char *l = said.data, *next; l && *l; l = next) {
		next = strchr(l, '\n');
		*next++ = '\0';
		log_notice("%s", l);
	}
	buf_free(&said);
}

/* up's max_rate counter, when its relay's changed, to be opened anew by
 * the next worker that counts a send (rate_slot_locked): the loop does
 * not read or write the file. */
static void rate_configure(struct upstream *up)
{
	const struct relay *r = up->relay;
	if (up->rate_n == r->rate_n && up->rate_per == r->rate_per)
		return;
	up->rate_n = r->rate_n;
	up->rate_per = r->rate_per;
	up->rate_stale = true;
}

static struct upstream *upstream_new(const struct relay *r)
{
	struct upstream *up = xcalloc(1, sizeof *up);
	up->rate.fd = -1;
	snprintf(up->name, sizeof up->name, "%s", r->name);
	uv_cond_init(&up->cv);
	uv_cond_init(&up->tried);
	return up;
}

/* Every waiting job, from every queue, back to the entry under c. */
static void requeue_all_locked(struct pool *p, struct config *c)
{
	struct job *all = NULL, **tail = &all;
	for (struct upstream *up = p->ups; up; up = up->next) {
		*tail = up->head;
		if (up->head)
			tail = &up->tail->next;
		p->queued -= up->queued;
		up->head = up->tail = NULL;
		up->queued = 0;
	}
	for (struct job *j = all, *next; j; j = next) {
		next = j->next;
		if (j->conf != c) {
			config_unref(j->conf);
			j->conf = config_ref(c);
		}
		j->routed = false;
		j->hop = 0;
		push_job_locked(p, p->entry, j);
	}
}

void upstreams_configure(struct pool *p, struct config *c)
{
	uv_mutex_lock(&p->mu);
	for (struct upstream *up = p->ups; up; up = up->next)
		up->removed = true;	/* until c names it */
	struct upstream **tail = &p->ups;
	while (*tail)
		tail = &(*tail)->next;
	p->entry = NULL;
	p->nworkers = 0;
	for (size_t i = 0; i < c->nrelays; i++) {
		const struct relay *r = c->relays[i];
		struct upstream *up = NULL;
		for (struct upstream *u = p->ups; u && !up; u = u->next)
			if (u->removed && strcmp(u->name, r->name) == 0)
				up = u;
		if (!up) {
			up = upstream_new(r);
			*tail = up;
			tail = &up->next;
		}
		up->removed = false;
		if (up->conf)
			config_unref(up->conf);
		up->conf = config_ref(c);
		up->relay = r;
		rate_configure(up);
		up->want = (size_t)r->workers;
		p->nworkers += up->want;
		if (!p->entry && r->npatterns == 0)
			p->entry = up;
	}
	for (struct upstream *up = p->ups; up; up = up->next)
		if (up->removed)
			up->want = 0;
	requeue_all_locked(p, c);
	uv_mutex_unlock(&p->mu);
	token_cache_set_hold(p->tokens, (double)c->queue.retry_max);
	token_watch_configure(p, c);
	for (struct upstream *up = p->ups; up; up = up->next)
		if (!up->removed)
			log_info("relay %s: %zu delivery workers for %s:%llu", relay_label(up->relay), up->want,
				 up->relay->host, (unsigned long long)up->relay->port);
}

static void upstream_free(struct upstream *up)
{
	uv_cond_destroy(&up->cv);
	uv_cond_destroy(&up->tried);
	rate_close(&up->rate);
	if (up->conf)
		config_unref(up->conf);
	free(up);
}

void upstreams_reap(struct pool *p)
{
	uv_mutex_lock(&p->mu);
	for (struct upstream **pp = &p->ups; *pp;) {
		struct upstream *up = *pp;
		if (up->removed && up->nworkers == 0 && up->queued == 0) {
			*pp = up->next;
			upstream_free(up);
		} else {
			pp = &up->next;
		}
	}
	uv_mutex_unlock(&p->mu);
}

void upstreams_free(struct pool *p)
{
	for (struct upstream *up = p->ups, *next; up; up = next) {
		next = up->next;
		for (struct job *j = up->head, *n; j; j = n) {
			n = j->next;
			job_free(j);
		}
		upstream_free(up);
	}
	p->ups = NULL;
}
