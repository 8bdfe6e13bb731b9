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
#include "relay_notice.h"
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
	start_workers(p);
	if (p->running == 0)
		return err_set(e, "cannot start the delivery workers");
	return 0;
}

void pool_reconfigure(struct daemon *d)
{
	if (d->pool && !d->pool->stopping) {
		upstreams_configure(d->pool, d->conf);
		start_workers(d->pool);
	}
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

