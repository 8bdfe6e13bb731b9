/*
 * delivery.c - the delivery worker pool (pool.h), its loop side.
 *
 * The loop hands message IDs to the job queues (jobs.c); each relay has
 * its `workers` threads (worker.c; upstreams.c routes and fails over
 * between relays), each running a plain, blocking SMTP client
 * (smtp_client.c) with a timeout on every read and write, and reporting
 * each message's outcome back to the loop through a uv_async handle,
 * which hands it to the hooks (the scheduler).  Workers read the queue
 * file themselves and record results in it (attempt.c), so no disk wait
 * ever happens on the loop thread.
 *
 * Here: starting, resizing and stopping the workers, joining the ones
 * that left, the results' hand-over, the pool's counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "jobs.h"
#include "pool_int.h"
#include "relay_state.h"
#include "upstreams.h"

/* Start the workers each upstream wants (after upstreams_configure),
 * and wake the ones too many: they notice and leave. */
static void start_workers(struct pool *p)
{
	uv_mutex_lock(&p->mu);
	for (struct upstream *up = p->ups; up; up = up->next) {
		while (!p->stopping && up->nworkers < up->want && worker_start(p, up) == 0)
			;
		uv_cond_broadcast(&up->cv);
	}
	uv_mutex_unlock(&p->mu);
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
	const struct pool_hooks *k = p->hooks;
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
		k->result(k->arg, r);
		free(r);
		r = n;
	}
	upstreams_notices(p);	/* a relay that needs a login: told once */
	reap_workers(p);
	if (p->stopping && running == 0)
		k->stopped(k->arg);
	else
		k->ready(k->arg);
}

int pool_start(struct pool **pp, const struct pool_env *env, struct config *conf,
	       const struct pool_hooks *hooks, struct err *e)
{
	struct pool *p = xcalloc(1, sizeof *p);
	p->hooks = hooks;
	p->loop = env->loop;
	p->store = env->store;
	p->tokens = env->tokens;
	p->conf = config_ref(conf);
	uv_mutex_init(&p->mu);
	uv_async_init(p->loop, &p->async, on_results);
	p->async.data = p;
	*pp = p;
	upstreams_configure(p, conf);
	start_workers(p);
	if (p->running == 0)
		return err_set(e, "cannot start the delivery workers");
	return 0;
}

void pool_reconfigure(struct pool *p, struct config *conf)
{
	if (!p || p->stopping)
		return;
	config_unref(p->conf);
	p->conf = config_ref(conf);
	upstreams_configure(p, conf);
	start_workers(p);
}

size_t pool_size(struct pool *p)
{
	if (!p)
		return 0;
	uv_mutex_lock(&p->mu);
	size_t n = p->nworkers;
	uv_mutex_unlock(&p->mu);
	return n;
}

void pool_submit(struct pool *p, const char *id, unsigned tries, uint32_t next_try)
{
	struct job *j = xcalloc(1, sizeof *j);
	memcpy(j->id, id, QID_LEN);
	j->tries = tries;
	j->next_try = next_try;
	j->conf = config_ref(p->conf);
	uv_mutex_lock(&p->mu);
	push_job_locked(p, p->entry, j);	/* routed by the first worker to read it */
	uv_mutex_unlock(&p->mu);
}

void pool_stop(struct pool *p)
{
	if (!p)
		return;
	uv_mutex_lock(&p->mu);
	p->stopping = true;
	for (struct upstream *up = p->ups; up; up = up->next)
		uv_cond_broadcast(&up->cv);
	uv_mutex_unlock(&p->mu);
	uv_async_send(&p->async);
}

size_t pool_sessions(struct pool *p, struct pool_sessions *out, size_t max)
{
	size_t n = 0;
	if (!p)
		return 0;
	uv_mutex_lock(&p->mu);
	for (struct upstream *up = p->ups; up && n < max; up = up->next, n++) {
		snprintf(out[n].relay, sizeof out[n].relay, "%s", relay_label(up->relay));
		out[n].opened = up->sessions_opened;
		for (int i = 0; i <= ST_LOCAL; i++)
			out[n].failed[i] = up->sessions_failed[i];
	}
	uv_mutex_unlock(&p->mu);
	return n;
}

bool pool_cancel(struct pool *p, const char *id)
{
	return p && take_job(p, id);
}

bool pool_stopped(struct pool *p)
{
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
void pool_free(struct pool *p)
{
	if (!p)
		return;
	if (pool_stopped(p)) {
		reap_workers(p);
		upstreams_free(p);
		for (struct delivery_result *r = p->results, *n; r; r = n) {
			n = r->next;
			free(r);
		}
		uv_mutex_destroy(&p->mu);
		config_unref(p->conf);
		free(p);
	}
}

void pool_close_handle(struct pool *p)
{
	if (!p)
		return;
	token_watch_close(p);
	if (!uv_is_closing((uv_handle_t *)&p->async))
		uv_close((uv_handle_t *)&p->async, on_async_closed);
}

