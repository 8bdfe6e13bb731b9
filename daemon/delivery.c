/*
 * delivery.c - the delivery worker pool.
 *
 * The loop hands message IDs to a job queue (jobs.c); each of [relay] workers
 * threads runs a plain, blocking SMTP client (smtp_client.c) with a
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
#include "delivery.h"

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

static int session_open(struct worker *w, struct job *j)
{
	struct err e;
	if (w->tls_conf != j->conf && j->conf->relay.tls != TLS_NONE) {	/* CA bundle loaded once per config */
		tls_client_free(&w->tls);
		if (w->tls_conf)
			config_unref(w->tls_conf);
		w->tls_conf = config_ref(j->conf);
		if (tls_client_init(&w->tls, j->conf->relay.ca_file, j->conf->relay.verify, &e) < 0) {
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
	if (smtp_open(&w->smtp, j->conf, &w->tls) < 0) {
		w->pool->sessions_failed[w->smtp.fail_stage <= ST_LOCAL ? w->smtp.fail_stage : ST_LOCAL]++;
		log_warn("relay %s: %s", *w->smtp.relay ? w->smtp.relay : j->conf->relay.host,
			 w->smtp.fail_text);
		return -1;
	}
	w->pool->sessions_opened++;
	log_debug("worker %d: session open to %s tls=%s auth=%s", w->idx, w->smtp.relay,
		  w->smtp.net.tls ? w->smtp.net.tls_version : "none",
		  w->smtp.auth_used ? w->smtp.auth_used : "none");
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
 * caller keeps ownership of j. */
static void deliver(struct worker *w, struct job *j, bool waited)
{
	struct attempt cur;
	if (!attempt_load(w, j, &cur))
		return;
	w->smtp.fail_text[0] = '\0';
	w->smtp.fail_code = 0;
	if (!session_usable(w, j, waited) && session_open(w, j) < 0) {
		fail_from_session(&cur, &w->smtp);	/* always temporary */
		attempt_close(w, &cur, j);
		return;
	}
	if (!attempt_fits(w, &cur))
		attempt_close(w, &cur, j);
	else if (chunking_usable(w, j->conf))
		transfer_chunked(w, j, &cur);
	else
		transfer_pipelined(w, j, &cur);
	session_after(w);
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
	bool go = !p->ripening && (p->queued == 0 || ++w->since_ripen >= RIPEN_EVERY);
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
		struct job *j = pop_job(p, w->smtp.open ? SESSION_IDLE_S : -1, &timed_out);
		if (!j) {
			if (!timed_out)
				break;	/* pop_job returns nothing else only when stopping */
			if (w->smtp.open) {
				log_debug("worker %d: closing idle session to %s", w->idx, w->smtp.relay);
				smtp_quit(&w->smtp);
			}
			continue;
		}
		deliver(w, j, w->smtp.open && now_mono() - w->last_used > 2.0);
		w->last_used = now_mono();
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
	uv_mutex_unlock(&p->mu);
	uv_async_send(&p->async);
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
	uv_cond_init(&p->cv);
	uv_async_init(d->loop, &p->async, on_results);
	p->async.data = p;
	p->nworkers = (size_t)d->conf->relay.workers;
	p->workers = xcalloc(p->nworkers, sizeof *p->workers);
	d->pool = p;
	for (size_t i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		w->pool = p;
		w->idx = (int)i;
		w->rnd_state = (unsigned)(now_real() * 1000) ^ (unsigned)(i * 7919);
		w->chunk = xmalloc(BODY_CHUNK);
		buf_init(&w->body);
		buf_init(&w->cmdq.out);
		smtp_client_init(&w->smtp);
		p->running++;
		if (uv_thread_create(&w->thread, worker_main, w) != 0) {
			p->running--;
			return err_set(e, "cannot start delivery worker %zu", i);
		}
	}
	log_info("%zu delivery workers for %s:%llu", p->nworkers, d->conf->relay.host,
		 (unsigned long long)d->conf->relay.port);
	return 0;
}

size_t pool_size(const struct daemon *d)
{
	return d->pool ? d->pool->nworkers : 0;
}

void pool_submit(struct daemon *d, const char *id, unsigned tries, uint32_t next_try)
{
	struct pool *p = d->pool;
	struct job *j = xcalloc(1, sizeof *j);
	memcpy(j->id, id, QID_LEN);
	j->tries = tries;
	j->next_try = next_try;
	j->conf = config_ref(d->conf);
	push_job(p, j);
}

void pool_stop(struct daemon *d)
{
	struct pool *p = d->pool;
	if (!p)
		return;
	uv_mutex_lock(&p->mu);
	p->stopping = true;
	uv_mutex_unlock(&p->mu);
	uv_cond_broadcast(&p->cv);
	uv_async_send(&p->async);
}

void pool_sessions(const struct daemon *d, struct pool_sessions *out)
{
	memset(out, 0, sizeof *out);
	if (!d->pool)
		return;
	out->opened = d->pool->sessions_opened;
	for (int i = 0; i <= ST_LOCAL; i++)
		out->failed[i] = d->pool->sessions_failed[i];
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
		for (size_t i = 0; i < p->nworkers; i++)
			uv_thread_join(&p->workers[i].thread);
		for (struct job *j = p->head, *n; j; j = n) {
			n = j->next;
			job_free(j);
		}
		for (struct delivery_result *r = p->results, *n; r; r = n) {
			n = r->next;
			free(r);
		}
		free(p->workers);
		uv_mutex_destroy(&p->mu);
		uv_cond_destroy(&p->cv);
		free(p);
	}
	d->pool = NULL;
}

void pool_close_handle(struct daemon *d)
{
	if (d->pool && !uv_is_closing((uv_handle_t *)&d->pool->async))
		uv_close((uv_handle_t *)&d->pool->async, on_async_closed);
}

