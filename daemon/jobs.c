/*
 * jobs.c - the delivery pool's job queues and its result list
 * (jobs.h; any thread).  Each relay's upstream has a queue; the loop appends new
 * jobs to the entry's (pool_submit), workers take them from the head of
 * their own relay's queue, a share at a time so that one worker does
 * not take a batch while others idle, and post each message's outcome
 * for the loop.  Every field they touch is guarded by pool.mu.
 */
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "pool_int.h"

/* Unlink the first job of up; the caller holds p->mu. */
static struct job *take_head_locked(struct pool *p, struct upstream *up)
{
	struct job *j = NULL;
	if (up->head && !p->stopping) {
		j = up->head;
		up->head = j->next;
		if (!up->head)
			up->tail = NULL;
		up->queued--;
		p->queued--;
	}
	return j;
}

/* One worker too many for its relay (fewer wanted, or removed). */
static bool retiring(const struct worker *w)
{
	return w->up->nworkers > w->up->want;
}

struct job *pop_job(struct worker *w, int wait_s, bool *timed_out)
{
	struct pool *p = w->pool;
	struct upstream *up = w->up;
	*timed_out = false;
	uv_mutex_lock(&p->mu);
	while (!up->head && !p->stopping && !retiring(w)) {
		if (wait_s < 0) {
			uv_cond_wait(&up->cv, &p->mu);
		} else if (uv_cond_timedwait(&up->cv, &p->mu, (uint64_t)wait_s * 1000000000ULL) != 0) {
			*timed_out = true;
			break;
		}
	}
	struct job *j = retiring(w) ? NULL : take_head_locked(p, up);
	if (!j && retiring(w)) {
		/* this one goes: it leaves the count now, under the lock, so
		 * that the relay's other workers do not all take themselves
		 * for the one too many and leave it with none */
		*timed_out = false;
		up->nworkers--;
		w->retired = true;
	}
	uv_mutex_unlock(&p->mu);
	return j;
}

/* How many messages a worker's next batch may take: its share of what
 * is queued for its relay, so one worker does not take it all while
 * others idle. */
size_t batch_share(struct worker *w, size_t max)
{
	uv_mutex_lock(&w->pool->mu);
	size_t n = 1 + w->up->queued / (w->up->nworkers ? w->up->nworkers : 1);
	uv_mutex_unlock(&w->pool->mu);
	return n < max ? n : max;
}

struct job *try_pop_job(struct worker *w)
{
	uv_mutex_lock(&w->pool->mu);
	struct job *j = retiring(w) ? NULL : take_head_locked(w->pool, w->up);
	uv_mutex_unlock(&w->pool->mu);
	return j;
}

void post_result(struct pool *p, const struct delivery_result *r)
{
	struct delivery_result *c = xmalloc(sizeof *c);
	*c = *r;
	uv_mutex_lock(&p->mu);
	c->next = p->results;
	p->results = c;
	uv_mutex_unlock(&p->mu);
	uv_async_send(&p->async);
}

void job_free(struct job *j)
{
	config_unref(j->conf);
	free(j);
}

/* Put a job back at the head of w's queue (another worker may take it). */
void push_back_job(struct worker *w, struct job *j)
{
	struct upstream *up = w->up;
	uv_mutex_lock(&w->pool->mu);
	j->next = up->head;
	up->head = j;
	if (!up->tail)
		up->tail = j;
	up->queued++;
	w->pool->queued++;
	uv_mutex_unlock(&w->pool->mu);
	uv_cond_signal(&up->cv);
}

/* Append a job at the tail of up's queue; p->mu held. */
void push_job_locked(struct pool *p, struct upstream *up, struct job *j)
{
	j->next = NULL;
	if (up->tail)
		up->tail->next = j;
	else
		up->head = j;
	up->tail = j;
	up->queued++;
	p->queued++;
	uv_cond_signal(&up->cv);
}

void push_job(struct pool *p, struct upstream *up, struct job *j)
{
	uv_mutex_lock(&p->mu);
	push_job_locked(p, up, j);
	uv_mutex_unlock(&p->mu);
}

/* Unlink the job of id if it is still queued anywhere (pool_cancel). */
bool take_job(struct pool *p, const char *id)
{
	struct job *j = NULL;
	uv_mutex_lock(&p->mu);
	for (struct upstream *up = p->ups; up && !j; up = up->next) {
		struct job *prev = NULL;
		for (j = up->head; j && memcmp(j->id, id, QID_LEN) != 0; prev = j, j = j->next)
			;
		if (!j)
			continue;
		if (prev)
			prev->next = j->next;
		else
			up->head = j->next;
		if (up->tail == j)
			up->tail = prev;
		up->queued--;
		p->queued--;
	}
	uv_mutex_unlock(&p->mu);
	if (j)
		job_free(j);
	return j != NULL;
}
