/*
 * jobs.c - the delivery pool's job queue and its result list (any
 * thread): the loop appends jobs (pool_submit), workers take them from
 * the head, a share at a time so that one worker does not take a batch
 * while others idle, and post each message's outcome for the loop.
 * Every field they touch is guarded by pool.mu.
 */
#include <stdlib.h>
#include <string.h>

#include "delivery.h"

/* Unlink the first job; the caller holds p->mu. */
static struct job *take_head_locked(struct pool *p)
{
	struct job *j = NULL;
	if (p->head && !p->stopping) {
		j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
	}
	return j;
}

struct job *pop_job(struct pool *p, int wait_s, bool *timed_out)
{
	struct job *j;
	*timed_out = false;
	uv_mutex_lock(&p->mu);
	while (!p->head && !p->stopping) {
		if (wait_s < 0) {
			uv_cond_wait(&p->cv, &p->mu);
		} else if (uv_cond_timedwait(&p->cv, &p->mu, (uint64_t)wait_s * 1000000000ULL) != 0) {
			*timed_out = true;
			break;
		}
	}
	j = take_head_locked(p);
	uv_mutex_unlock(&p->mu);
	return j;
}

/* How many messages a worker's next batch may take: its share of what
 * is queued, so one worker does not take it all while others idle. */
size_t batch_share(struct pool *p, size_t max)
{
	uv_mutex_lock(&p->mu);
	size_t n = 1 + p->queued / p->nworkers;
	uv_mutex_unlock(&p->mu);
	return n < max ? n : max;
}

struct job *try_pop_job(struct pool *p)
{
	uv_mutex_lock(&p->mu);
	struct job *j = take_head_locked(p);
	uv_mutex_unlock(&p->mu);
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

/* Put a job back at the head of the queue (another worker may take it). */
void push_back_job(struct pool *p, struct job *j)
{
	uv_mutex_lock(&p->mu);
	j->next = p->head;
	p->head = j;
	if (!p->tail)
		p->tail = j;
	p->queued++;
	uv_mutex_unlock(&p->mu);
	uv_cond_signal(&p->cv);
}

/* Append a job at the tail (pool_submit). */
void push_job(struct pool *p, struct job *j)
{
	uv_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	uv_mutex_unlock(&p->mu);
	uv_cond_signal(&p->cv);
}

/* Unlink the job of id if it is still queued (pool_cancel). */
bool take_job(struct pool *p, const char *id)
{
	struct job *prev = NULL, *j;
	uv_mutex_lock(&p->mu);
	for (j = p->head; j && memcmp(j->id, id, QID_LEN) != 0; prev = j, j = j->next)
		;
	if (j) {
		if (prev)
			prev->next = j->next;
		else
			p->head = j->next;
		if (p->tail == j)
			p->tail = prev;
		p->queued--;
	}
	uv_mutex_unlock(&p->mu);
	if (j)
		job_free(j);
	return j != NULL;
}
