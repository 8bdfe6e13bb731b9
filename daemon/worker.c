/*
 * worker.c - a delivery worker's thread: it takes its relay's jobs,
 * keeps its upstream session open for the next message, and runs the
 * transaction engine (transfer.c) on it.
 *
 * Every message, the first of a session and each later one the engine
 * asks for, goes the one way of fitting(): load its queue file
 * (attempt.c), route it by sender (a job for another relay goes there),
 * admit it (holds, backoff, max_rate: upstreams.c), for the first open
 * or check the session, and see that the session can take it (SIZE,
 * 8BITMIME, SMTPUTF8).  Each finished message is recorded by the
 * attempt and its outcome posted to the loop (jobs.c post_result); a
 * quota reply or a session's end the engine reports is applied here.
 *
 * A session idle for SESSION_IDLE_S is closed with QUIT; a session
 * reused after waiting is checked with RSET first; a session made under
 * an older configuration (before SIGHUP) is replaced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/tokens.h"
#include "attempt.h"
#include "jobs.h"
#include "pool_int.h"
#include "transfer.h"
#include "upstreams.h"

#define SESSION_IDLE_S 10
#define RIPEN_EVERY 16	/* messages a busy worker delivers between spare fsyncs */

/* ---- the attempts' records ---- */

static struct attempt_site site_of(struct worker *w)
{
	return (struct attempt_site){ .store = w->pool->store, .peer = w->smtp.relay,
				      .tls = w->smtp.net.tls_version, .rnd = worker_rnd(w) };
}

/* A finished attempt: its results recorded, its outcome posted, it and
 * its job freed. */
static void record(struct worker *w, struct attempt *a)
{
	struct attempt_site site = site_of(w);
	struct delivery_result r;
	attempt_finish(&site, a, &r);
	post_result(w->pool, &r);
	job_free(a->job);
	attempt_free(a);
}

/* ---- sessions ---- */

static bool session_usable(struct worker *w, struct job *j, bool waited)
{
	struct smtp_client *s = &w->smtp;
	if (s->open && w->session_conf != j->conf)
		smtp_quit(s);	/* the configuration changed: new session */
	if (s->open && waited && !transfer_rset(w->xfer))
		smtp_close(s);	/* the server may have dropped it meanwhile */
	return s->open;
}

/* Does j's relay wait for an OAuth2 login (its refresh token refused,
 * the file unchanged: tokens.h)?  Then the session failed for that. */
static bool login_needed(struct worker *w, struct job *j)
{
	char why[sizeof w->smtp.fail_text];
	if (!token_login_needed(w->smtp.token_arg, job_relay(j), why, sizeof why))
		return false;
	w->login_told = token_login_told(w->smtp.token_arg, job_relay(j), &w->login_since);
	if (w->smtp.fail_stage != ST_AUTH || w->smtp.fail_code != 0 || strcmp(why, w->smtp.fail_text) != 0)
		smtp_fail(&w->smtp, ST_AUTH, 0, "%s", why);
	return true;
}

static int session_open(struct worker *w, struct job *j)
{
	struct err e;
	const struct relay *r = job_relay(j);
	if (token_login_needed(w->smtp.token_arg, r, w->smtp.fail_text, sizeof w->smtp.fail_text)) {
		/* no session, no request to the endpoint: the file has not changed */
		w->smtp.fail_stage = ST_AUTH;
		w->smtp.fail_code = 0;
		return -1;
	}
	if (w->tls_conf != j->conf && r->tls != TLS_NONE) {	/* CA bundle loaded once per config */
		tls_client_free(&w->tls);
		if (w->tls_conf)
			config_unref(w->tls_conf);
		w->tls_conf = config_ref(j->conf);
		if (tls_client_init(&w->tls, r->ca_file, r->verify, &e) < 0) {
			tls_client_free(&w->tls);
			config_unref(w->tls_conf);
			w->tls_conf = NULL;
			return smtp_fail(&w->smtp, ST_TLS, 0, "%s", e.msg);
		}
	}
	if (w->session_conf)
		config_unref(w->session_conf);
	w->session_conf = config_ref(j->conf);
	transfer_reset(w->xfer);
	if (smtp_open(&w->smtp, r, &w->tls) < 0) {
		uv_mutex_lock(&w->pool->mu);
		w->up->sessions_failed[w->smtp.fail_stage <= ST_LOCAL ? w->smtp.fail_stage : ST_LOCAL]++;
		uv_mutex_unlock(&w->pool->mu);
		log_warn("relay %s: %s", *w->smtp.relay ? w->smtp.relay : relay_label(r), w->smtp.fail_text);
		return -1;
	}
	uv_mutex_lock(&w->pool->mu);
	w->up->sessions_opened++;
	uv_mutex_unlock(&w->pool->mu);
	upstream_up(w);
	log_info("worker %d: session open to %s tls=%s%s%s auth=%s", w->idx, w->smtp.relay,
		 w->smtp.net.tls ? w->smtp.net.tls_version : "none", w->smtp.net.tls ? " cipher=" : "",
		 w->smtp.net.tls ? w->smtp.net.tls_cipher : "", w->smtp.auth_used ? w->smtp.auth_used : "none");
	return 0;
}

/* A session for a's relay, open and checked; false when none could be
 * had: a's job moved on to the next relay of its route, or a was
 * deferred with the failure. */
static bool session_ready(struct worker *w, struct attempt *a, bool waited)
{
	struct job *j = a->job;
	w->smtp.fail_text[0] = '\0';
	w->smtp.fail_code = 0;
	if (session_usable(w, j, waited) || session_open(w, j) == 0)
		return true;
	w->login_needed = login_needed(w, j);
	struct config *conf = config_ref(j->conf);	/* j may be another worker's after upstream_failed */
	const struct relay *r = job_relay(j);
	struct smtp_client failed = w->smtp;	/* (its texts, for the deferral) */
	bool moved = upstream_failed(w, j);
	if (w->login_noticed)	/* this worker decided the notice: not again, after a restart either */
		token_login_tell(w->smtp.token_arg, r);
	config_unref(conf);
	if (moved) {	/* at the next relay at once */
		attempt_free(a);
		return false;
	}
	fail_from_session(a, &failed);	/* always temporary */
	record(w, a);
	return false;
}

/* ---- the next fitting message ---- */

/* May a's job go at w's relay now?  The first message of a session may
 * wait (a max_rate slot), move on, or be postponed; a later one goes
 * now or goes back to the queue for the next session. */
static bool admitted(struct worker *w, struct attempt *a, bool first)
{
	struct job *j = a->job;
	double until;
	char why[300];
	if (!first) {
		if (upstream_admit_now(w))
			return true;
		attempt_free(a);	/* held back or over max_rate: not on this run */
		push_back_job(w, j);
		return false;
	}
	switch (upstream_admit(w, j, &until, why, sizeof why)) {
	case ADMIT_GO:
		return true;
	case ADMIT_MOVED:	/* (its job is the next relay's) */
		attempt_free(a);
		return false;
	case ADMIT_LATER:
		break;
	}
	struct attempt_site site = site_of(w);
	struct delivery_result r;
	attempt_postpone(&site, a, until, why, &r);
	post_result(w->pool, &r);
	job_free(j);
	return false;
}

enum fit {
	FIT_GO,		/* a is loaded and fits the session: deliver it */
	FIT_DONE,	/* j was dealt with (done, recorded, moved or postponed): take another */
	FIT_STOP,	/* j went back to the queue: no more on this session */
};

/* The one way from a job to a message on the session: load, route,
 * admit, (first: the session), fits.  j is a's (or dealt with) after. */
static enum fit fitting(struct worker *w, struct job *j, struct attempt *a, bool first, bool waited)
{
	struct delivery_result r;
	if (!attempt_load(w->pool->store, j->id, j->tries, j->next_try, j->conf, a, &r)) {
		post_result(w->pool, &r);
		job_free(j);
		return FIT_DONE;
	}
	a->job = j;
	struct upstream *to = upstream_for(w, j, a->env.sender);
	if (to) {	/* another relay's (upstreams.c) */
		attempt_free(a);
		push_job(w->pool, to, j);
		return FIT_DONE;
	}
	a->relay = job_relay(j);
	if (!admitted(w, a, first))
		return first ? FIT_DONE : FIT_STOP;
	if (first && !session_ready(w, a, waited))
		return FIT_DONE;
	if (attempt_fits(a, w->smtp.ext, w->smtp.size_max))
		return FIT_GO;
	record(w, a);	/* bounced: this upstream can never take it */
	return FIT_DONE;
}

/* The engine's source: the next queued message that fits this session
 * (made under the same configuration, within the worker's share of a
 * BDAT batch). */
static bool source_next(void *arg, struct attempt *a, size_t batched)
{
	struct worker *w = arg;
	if (batched == 1)	/* a batch begins: its share of what waits */
		w->share = 1 + batch_share(w, BATCH_MAX - 1);
	if (batched > 0 && batched >= w->share)
		return false;
	for (;;) {
		struct job *j = try_pop_job(w);	/* NULL once the pool stops */
		if (!j)
			return false;
		if (j->conf != w->session_conf) {	/* it needs a new session */
			push_back_job(w, j);
			return false;
		}
		enum fit f = fitting(w, j, a, false, false);
		if (f != FIT_DONE)
			return f == FIT_GO;
	}
}

static void source_done(void *arg, struct attempt *a)
{
	record(arg, a);
}

/* Deliver first and whatever else fits on the session; then what the
 * session taught: its end, a quota reply. */
static void run_session(struct worker *w, struct attempt *first)
{
	struct smtp_client *s = &w->smtp;
	const struct transfer_source src = { source_next, source_done, w };
	struct transfer_result res;
	bool chunked = transfer_chunked(s, first->relay);
	transfer_run(w->xfer, first, &src, chunked, &res);
	if (chunked)
		log_debug("worker %d: %u messages in %u BDAT batches", w->idx, res.messages, res.batches);
	else
		log_debug("worker %d: %u messages in one pipelined run", w->idx, res.messages);
	if (s->open && (s->net.fd < 0 || res.session_ends))
		smtp_close(s);
	if (res.quota_hold)
		upstream_hold(w, res.quota_hold, res.quota_reply);
}

/* ---- the thread ---- */

/* Delivered files become spares only after an fsync of the bucket they
 * left (queue.c SPARE FILES); a worker does those fsyncs when it is
 * about to idle, and every RIPEN_EVERY of its messages under load, so
 * that commits rewrite spares instead of creating files (an inode
 * allocation on ext4 costs about what the file's fsync does).  One
 * worker at a time. */
static void ripen_spares(struct worker *w)
{
	struct pool *p = w->pool;
	uv_mutex_lock(&p->mu);
	bool go = !p->ripening && (w->up->queued == 0 || ++w->since_ripen >= RIPEN_EVERY);
	if (go) {
		p->ripening = true;
		w->since_ripen = 0;
	}
	uv_mutex_unlock(&p->mu);
	if (!go)
		return;
	store_ripen_spares(p->store);
	uv_mutex_lock(&p->mu);
	p->ripening = false;
	uv_mutex_unlock(&p->mu);
}

static void worker_exit(struct worker *w)
{
	struct pool *p = w->pool;
	smtp_quit(&w->smtp);
	smtp_client_free(&w->smtp);
	transfer_free(w->xfer);
	if (w->session_conf)
		config_unref(w->session_conf);
	if (w->tls_conf) {
		tls_client_free(&w->tls);
		config_unref(w->tls_conf);
	}
	uv_mutex_lock(&p->mu);
	p->running--;
	if (!w->retired)
		w->up->nworkers--;
	w->exited = true;
	uv_mutex_unlock(&p->mu);
	uv_async_send(&p->async);
}

static void worker_main(void *arg)
{
	struct worker *w = arg;
	bool timed_out;
	for (;;) {
		struct job *j = pop_job(w, w->smtp.open ? SESSION_IDLE_S : -1, &timed_out);
		if (!j) {
			if (!timed_out)
				break;	/* pop_job returns nothing else only when stopping */
			if (w->smtp.open) {
				log_debug("worker %d: closing idle session to %s", w->idx, w->smtp.relay);
				smtp_quit(&w->smtp);
			}
			continue;
		}
		struct attempt a;
		bool waited = w->smtp.open && now_mono() - w->last_used > 2.0;
		if (fitting(w, j, &a, true, waited) == FIT_GO)
			run_session(w, &a);
		w->last_used = now_mono();
		ripen_spares(w);
	}
	worker_exit(w);
}

int worker_start(struct pool *p, struct upstream *up)
{
	struct worker *w = xcalloc(1, sizeof *w);
	w->pool = p;
	w->up = up;
	w->idx = p->next_idx++;
	w->rnd_state = (unsigned)(now_real() * 1000) ^ (unsigned)(w->idx * 7919);
	smtp_client_init(&w->smtp);
	w->xfer = transfer_new(&w->smtp);
	w->smtp.token = token_hook;	/* the relays with oauth2_token_url */
	w->smtp.token_arg = p->tokens;
	if (uv_thread_create(&w->thread, worker_main, w) != 0) {
		log_err("relay %s: cannot start a delivery worker", relay_label(up->relay));
		smtp_client_free(&w->smtp);
		transfer_free(w->xfer);
		free(w);
		return -1;
	}
	up->nworkers++;
	p->running++;
	w->next = p->workers;
	p->workers = w;
	return 0;
}
