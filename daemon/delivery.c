/*
 * delivery.c - the delivery worker pool.
 *
 * The loop hands message IDs to the job queues (jobs.c); each relay has
 * its `workers` threads (upstreams.c routes and fails over between
 * relays), each running a plain, blocking SMTP client (smtp_client.c) with a
 * timeout on every read and write, keeps its upstream session open
 * for the next message, and reports each message's outcome back to the
 * loop through a uv_async handle.  Workers read the queue file
 * themselves and record results in it (attempt.c), so no disk wait ever
 * happens on the loop thread.  The transactions themselves, with DATA
 * or BDAT, are in transfer.c.
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
#include "delivery.h"
#include "relay_notice.h"

#define SESSION_IDLE_S 10
#define RIPEN_EVERY 16	/* messages a busy worker delivers between spare fsyncs */

/* ---- sessions ---- */

static bool session_usable(struct worker *w, struct job *j, bool waited)
{
	struct smtp_client *s = &w->smtp;
	if (s->open && w->session_conf != j->conf) {
		smtp_quit(s);	/* the configuration changed: new session */
	}
	if (s->open && waited && !session_reset(w))
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
	cmdq_reset(&w->cmdq);
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

/* After an attempt: a 421 or a broken connection ends the session. */
static void session_after(struct worker *w)
{
	struct smtp_client *s = &w->smtp;
	if (s->open && (s->net.fd < 0 || s->reply.code == 421 || (s->fail_code == 0 && *s->fail_text)))
		smtp_close(s);
}

/* Deliver job j (and, on the same session, what else is queued).  The
 * caller keeps ownership of j, unless this returns false: j went on to
 * another relay's queue. */
static bool deliver(struct worker *w, struct job *j, bool waited)
{
	struct attempt cur;
	if (!attempt_load(w, j, &cur))
		return true;
	struct upstream *to = upstream_for(w, j, cur.env.sender);
	if (to) {	/* another relay's */
		attempt_free(&cur);
		push_job(w->pool, to, j);
		return false;
	}
	double until;
	char why[300];
	switch (upstream_admit(w, j, &until, why, sizeof why)) {
	case ADMIT_GO:
		break;
	case ADMIT_MOVED:
		attempt_free(&cur);
		return false;
	case ADMIT_LATER:
		attempt_postpone(w, &cur, until, why);
		return true;
	}
	w->smtp.fail_text[0] = '\0';
	w->smtp.fail_code = 0;
	if (!session_usable(w, j, waited) && session_open(w, j) < 0) {
		w->login_needed = login_needed(w, j);
		struct smtp_client failed = w->smtp;	/* (its texts, for the deferral) */
		if (upstream_failed(w, j)) {	/* at the next relay at once */
			attempt_free(&cur);
			return false;
		}
		fail_from_session(&cur, &failed);	/* always temporary */
		attempt_close(w, &cur, j);
		return true;
	}
	if (!attempt_fits(w, &cur))
		attempt_close(w, &cur, j);
	else if (chunking_usable(w, job_relay(j)))
		transfer_chunked(w, j, &cur);
	else
		transfer_pipelined(w, j, &cur);
	session_after(w);
	if (w->quota_hold) {
		upstream_hold(w, w->quota_hold, w->quota_reply);
		w->quota_hold = 0;
	}
	return true;
}

/* ---- the worker thread ---- */

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

static void worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->pool;
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
		bool kept = deliver(w, j, w->smtp.open && now_mono() - w->last_used > 2.0);
		w->last_used = now_mono();
		if (kept)
			job_free(j);
		ripen_spares(w);
	}
	smtp_quit(&w->smtp);
	smtp_client_free(&w->smtp);
	free(w->chunk);
	buf_free(&w->body);
	cmdq_free(&w->cmdq);
	if (w->session_conf)
		config_unref(w->session_conf);
	if (w->tls_conf) {
		tls_client_free(&w->tls);
		config_unref(w->tls_conf);
	}
	uv_mutex_lock(&p->mu);
	p->running--;
	w->up->nworkers--;
	w->exited = true;
	uv_mutex_unlock(&p->mu);
	uv_async_send(&p->async);
}

int worker_start(struct pool *p, struct upstream *up)
{
	struct worker *w = xcalloc(1, sizeof *w);
	w->pool = p;
	w->up = up;
	w->idx = p->next_idx++;
	w->rnd_state = (unsigned)(now_real() * 1000) ^ (unsigned)(w->idx * 7919);
	w->chunk = xmalloc(BODY_CHUNK);
	buf_init(&w->body);
	buf_init(&w->cmdq.out);
	smtp_client_init(&w->smtp);
	w->smtp.token = token_hook;	/* the relays with oauth2_token_url */
	w->smtp.token_arg = p->d->tokens;
	if (uv_thread_create(&w->thread, worker_main, w) != 0) {
		log_err("relay %s: cannot start a delivery worker", relay_label(up->relay));
		smtp_client_free(&w->smtp);
		free(w->chunk);
		free(w);
		return -1;
	}
	up->nworkers++;
	p->running++;
	w->next = p->workers;
	p->workers = w;
	return 0;
}

/* Loop thread: join the workers that left, free them and the removed
 * relays they leave behind. */
static void reap_workers(struct pool *p)
{
	for (;;) {
		struct worker *gone = NULL;
		uv_mutex_lock(&p->mu);
		for (struct worker **pw = &p->workers; *pw; pw = &(*pw)->next)
			if ((*pw)->exited) {
				gone = *pw;
				*pw = gone->next;
				break;
			}
		uv_mutex_unlock(&p->mu);
		if (!gone)
			break;
		uv_thread_join(&gone->thread);
		free(gone);
	}
	upstreams_reap(p);
}

/* ---- the loop side ---- */

static void on_results(uv_async_t *h)
{
	struct pool *p = h->data;
	struct daemon *d = p->d;
	uv_mutex_lock(&p->mu);
	struct delivery_result *r = p->results;
	p->results = NULL;
	size_t running = p->running;
	uv_mutex_unlock(&p->mu);
	/* the list is newest first: handle oldest first */
	struct delivery_result *rev = NULL;
	while (r) {
		struct delivery_result *n = r->next;
		r->next = rev;
		rev = r;
		r = n;
	}
	for (r = rev; r;) {
		struct delivery_result *n = r->next;
		p->hooks->result(d, r);
		free(r);
		r = n;
	}
	upstreams_notices(p, relay_notice_send);	/* a relay that needs a login: told once */
	reap_workers(p);
	if (p->stopping && running == 0)
		d->part_stopped(d);
	else
		p->hooks->ready(d);
}

int pool_start(struct daemon *d, const struct pool_hooks *hooks, struct err *e)
{
	struct pool *p = xcalloc(1, sizeof *p);
	p->d = d;
	p->hooks = hooks;
	p->store = &d->store;
	uv_mutex_init(&p->mu);
	uv_async_init(d->loop, &p->async, on_results);
	p->async.data = p;
	d->pool = p;
	upstreams_configure(p, d->conf);
	if (p->running == 0)
		return err_set(e, "cannot start the delivery workers");
	return 0;
}

void pool_reconfigure(struct daemon *d)
{
	if (d->pool && !d->pool->stopping)
		upstreams_configure(d->pool, d->conf);
}

size_t pool_size(const struct daemon *d)
{
	if (!d->pool)
		return 0;
	uv_mutex_lock(&d->pool->mu);
	size_t n = d->pool->nworkers;
	uv_mutex_unlock(&d->pool->mu);
	return n;
}

void pool_submit(struct daemon *d, const char *id, unsigned tries, uint32_t next_try)
{
	struct pool *p = d->pool;
	struct job *j = xcalloc(1, sizeof *j);
	memcpy(j->id, id, QID_LEN);
	j->tries = tries;
	j->next_try = next_try;
	j->conf = config_ref(d->conf);
	uv_mutex_lock(&p->mu);
	push_job_locked(p, p->entry, j);	/* routed by the first worker to read it */
	uv_mutex_unlock(&p->mu);
}

void pool_stop(struct daemon *d)
{
	struct pool *p = d->pool;
	if (!p)
		return;
	uv_mutex_lock(&p->mu);
	p->stopping = true;
	for (struct upstream *up = p->ups; up; up = up->next)
		uv_cond_broadcast(&up->cv);
	uv_mutex_unlock(&p->mu);
	uv_async_send(&p->async);
}

size_t pool_sessions(const struct daemon *d, struct pool_sessions *out, size_t max)
{
	size_t n = 0;
	if (!d->pool)
		return 0;
	uv_mutex_lock(&d->pool->mu);
	for (struct upstream *up = d->pool->ups; up && n < max; up = up->next, n++) {
		snprintf(out[n].relay, sizeof out[n].relay, "%s", relay_label(up->relay));
		out[n].opened = up->sessions_opened;
		for (int i = 0; i <= ST_LOCAL; i++)
			out[n].failed[i] = up->sessions_failed[i];
	}
	uv_mutex_unlock(&d->pool->mu);
	return n;
}

bool pool_cancel(struct daemon *d, const char *id)
{
	return d->pool && take_job(d->pool, id);
}

bool pool_stopped(const struct daemon *d)
{
	struct pool *p = d->pool;
	if (!p)
		return true;
	uv_mutex_lock(&p->mu);
	bool done = p->stopping && p->running == 0;
	uv_mutex_unlock(&p->mu);
	return done;
}

static void on_async_closed(uv_handle_t *h)
{
	(void)h;
}

/* After the loop: join the workers if they are gone, free what is left. */
void pool_free(struct daemon *d)
{
	struct pool *p = d->pool;
	if (!p)
		return;
	if (pool_stopped(d)) {
		reap_workers(p);
		upstreams_free(p);
		for (struct delivery_result *r = p->results, *n; r; r = n) {
			n = r->next;
			free(r);
		}
		uv_mutex_destroy(&p->mu);
		free(p);
	}
	d->pool = NULL;
}

void pool_close_handle(struct daemon *d)
{
	if (d->pool)
		token_watch_close(d->pool);
	if (d->pool && !uv_is_closing((uv_handle_t *)&d->pool->async))
		uv_close((uv_handle_t *)&d->pool->async, on_async_closed);
}

