/*
 * scheduler.c - when each queued message is tried.
 *
 * A message is in exactly one of: the ready FIFO (to be handed out),
 * in flight (a worker has it), or the deferred heap (waiting for
 * next_try).  New and restored messages enter the FIFO; a worker's
 * result either removes the message (done) or defers it by the delay
 * the worker computed with retry_delay().  Loop thread only.
 */
#include <stdlib.h>

#include "../common/log.h"
#include "outboxd.h"

static void heap_swap(struct scheduler *s, size_t a, size_t b)
{
	struct qentry *t = s->heap[a];
	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->heap_idx = a;
	s->heap[b]->heap_idx = b;
}

static void heap_push(struct scheduler *s, struct qentry *e)
{
	if (s->nheap == s->heap_cap) {
		s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
		s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
	}
	size_t i = s->nheap++;
	s->heap[i] = e;
	e->heap_idx = i;
	while (i > 0 && s->heap[(i - 1) / 2]->next_try > s->heap[i]->next_try) {
		heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static struct qentry *heap_pop(struct scheduler *s)
{
	struct qentry *top = s->heap[0];
	heap_swap(s, 0, --s->nheap);
	for (size_t i = 0;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->nheap && s->heap[l]->next_try < s->heap[m]->next_try)
			m = l;
		if (r < s->nheap && s->heap[r]->next_try < s->heap[m]->next_try)
			m = r;
		if (m == i)
			break;
		heap_swap(s, i, m);
		i = m;
	}
	return top;
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct daemon *d)
{
	struct scheduler *s = &d->sched;
	if (s->nheap == 0 || d->stopping) {
		uv_timer_stop(&s->timer);
		return;
	}
	double wait = s->heap[0]->next_try - now_mono();
	uv_timer_start(&s->timer, on_timer, wait > 0 ? (uint64_t)(wait * 1000) + 1 : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	struct scheduler *s = &d->sched;
	double now = now_mono();
	while (s->nheap && s->heap[0]->next_try <= now) {
		struct qentry *e = heap_pop(s);
		sched_ready(d, e);
	}
	arm_timer(d);
	sched_dispatch(d);
}

void sched_init(struct daemon *d)
{
	uv_timer_init(d->loop, &d->sched.timer);
	d->sched.timer.data = d;
}

void sched_ready(struct daemon *d, struct qentry *e)
{
	struct scheduler *s = &d->sched;
	e->state = QE_READY;
	e->rnext = NULL;
	if (s->ready_tail)
		s->ready_tail->rnext = e;
	else
		s->ready_head = e;
	s->ready_tail = e;
}

void sched_dispatch(struct daemon *d)
{
	struct scheduler *s = &d->sched;
	if (!d->pool || d->stopping)
		return;
	/* the pool's size, not [relay] workers: a reload does not change it */
	size_t limit = pool_size(d) * SCHED_INFLIGHT_PER_WORKER;
	while (s->ready_head && s->inflight < limit) {
		struct qentry *e = s->ready_head;
		s->ready_head = e->rnext;
		if (!s->ready_head)
			s->ready_tail = NULL;
		e->state = QE_ACTIVE;
		s->inflight++;
		pool_submit(d, e->id, e->tries);
	}
}

void sched_result(struct daemon *d, const struct delivery_result *r)
{
	struct scheduler *s = &d->sched;
	struct qentry *e = qindex_find(&d->queue, r->id);
	if (s->inflight)
		s->inflight--;
	if (!e)
		return;
	if (r->done) {
		qindex_remove(&d->queue, e);
		return;
	}
	e->tries++;
	e->npending = r->npending;
	e->state = QE_DEFERRED;
	e->next_try = now_mono() + r->retry_in;
	heap_push(s, e);
	arm_timer(d);
}

void sched_stop(struct daemon *d)
{
	uv_timer_stop(&d->sched.timer);
	uv_close((uv_handle_t *)&d->sched.timer, NULL);
}

void sched_free(struct daemon *d)
{
	free(d->sched.heap);
	d->sched.heap = NULL;
	d->sched.nheap = d->sched.heap_cap = 0;
}
