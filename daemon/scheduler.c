/*
 * scheduler.c - when each queued message is tried (scheduler.h).
 *
 * New mail enters LANE_NEW; messages found at start enter the backlog
 * lane when due, else the heap; a worker's result either removes the
 * message (done) or defers it to the next try the worker computed with
 * retry_delay() and wrote into the file's name.  Times are wall-clock
 * seconds, as in the names, so a restart keeps the schedule.
 */
#include <math.h>
#include <stdlib.h>

#include "../common/log.h"
#include "outboxd.h"
#include "pool.h"

static struct qentry *E(struct daemon *d, qref r)
{
	return qindex_get(&d->queue, r);
}

/* An entry's next try in 1/256 s. */
static uint64_t key_of(const struct qentry *e)
{
	return (uint64_t)e->next_try << 8 | e->frac;
}

static uint64_t heap_key(struct daemon *d, uint32_t pos)
{
	return key_of(E(d, d->sched.heap[pos]));
}

static void heap_set(struct daemon *d, uint32_t pos, qref r)
{
	d->sched.heap[pos] = r;
	E(d, r)->link = pos;
}

static void heap_up(struct daemon *d, uint32_t i)
{
	struct scheduler *s = &d->sched;
	qref r = s->heap[i];
	uint64_t key = key_of(E(d, r));
	while (i > 0 && heap_key(d, (i - 1) / 2) > key) {
		heap_set(d, i, s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(d, i, r);
}

static void heap_down(struct daemon *d, uint32_t i)
{
	struct scheduler *s = &d->sched;
	qref r = s->heap[i];
	uint64_t key = key_of(E(d, r));
	for (;;) {
		uint32_t l = 2 * i + 1, m = l;
		if (l >= s->nheap)
			break;
		if (l + 1 < s->nheap && heap_key(d, l + 1) < heap_key(d, l))
			m = l + 1;
		if (heap_key(d, m) >= key)
			break;
		heap_set(d, i, s->heap[m]);
		i = m;
	}
	heap_set(d, i, r);
}

static void heap_push(struct daemon *d, qref r)
{
	struct scheduler *s = &d->sched;
	if (s->nheap == s->heap_cap) {
		s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
		s->heap = xrealloc(s->heap, (size_t)s->heap_cap * sizeof *s->heap);
	}
	qindex_set_state(&d->queue, r, QE_DEFERRED);
	heap_set(d, s->nheap++, r);
	heap_up(d, s->nheap - 1);
}

static qref heap_pop(struct daemon *d)
{
	struct scheduler *s = &d->sched;
	qref top = s->heap[0];
	if (--s->nheap > 0) {
		heap_set(d, 0, s->heap[s->nheap]);
		heap_down(d, 0);
	}
	return top;
}

/* Take an entry out of the heap, wherever it is. */
static void heap_remove(struct daemon *d, qref r)
{
	struct scheduler *s = &d->sched;
	uint32_t pos = E(d, r)->link;
	if (--s->nheap > pos) {	/* the last one fills the hole, then goes up or down */
		heap_set(d, pos, s->heap[s->nheap]);
		if (pos > 0 && heap_key(d, (pos - 1) / 2) > heap_key(d, pos))
			heap_up(d, pos);
		else
			heap_down(d, pos);
	}
}

static void lane_push(struct daemon *d, unsigned lane, qref r)
{
	struct scheduler *s = &d->sched;
	struct qentry *e = E(d, r);
	qindex_set_state(&d->queue, r, QE_READY);
	e->link = 0;
	if (s->lane[lane].tail)
		E(d, s->lane[lane].tail)->link = r;
	else
		s->lane[lane].head = r;
	s->lane[lane].tail = r;
}

static qref lane_pop(struct daemon *d, unsigned lane)
{
	struct scheduler *s = &d->sched;
	qref r = s->lane[lane].head;
	if (r) {
		s->lane[lane].head = E(d, r)->link;
		if (!s->lane[lane].head)
			s->lane[lane].tail = 0;
	}
	return r;
}

/* Take an entry out of whichever lane holds it (a walk: operator
 * actions are rare). */
static void lane_remove(struct daemon *d, qref r)
{
	struct scheduler *s = &d->sched;
	for (unsigned l = 0; l <= LANE_REPORTS; l++) {
		qref prev = 0;
		for (qref q = s->lane[l].head; q; prev = q, q = E(d, q)->link) {
			if (q != r)
				continue;
			if (prev)
				E(d, prev)->link = E(d, q)->link;
			else
				s->lane[l].head = E(d, q)->link;
			if (s->lane[l].tail == r)
				s->lane[l].tail = prev;
			return;
		}
	}
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct daemon *d)
{
	struct scheduler *s = &d->sched;
	if (s->nheap == 0 || d->stopping) {
		uv_timer_stop(&s->timer);
		return;
	}
	double wait = (double)heap_key(d, 0) / 256 - now_real();
	uv_timer_start(&s->timer, on_timer, wait > 0 ? (uint64_t)(wait * 1000) + 1 : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	struct scheduler *s = &d->sched;
	uint64_t now = (uint64_t)(now_real() * 256);
	while (s->nheap && heap_key(d, 0) <= now)
		lane_push(d, LANE_BACKLOG, heap_pop(d));
	arm_timer(d);
	sched_dispatch(d);
}

void sched_init(struct daemon *d)
{
	uv_timer_init(d->loop, &d->sched.timer);
	d->sched.timer.data = d;
}

void sched_new(struct daemon *d, qref r)
{
	lane_push(d, LANE_NEW, r);
}

/* warn: no recipient failed, the message is late: a delayed report. */
static void start_bounce(struct daemon *d, qref r, bool warn)
{
	qindex_set_state(&d->queue, r, QE_BOUNCING);
	d->sched.bouncing++;
	d->sched.unchecked++;
	if (d->sched.bounce)
		d->sched.bounce(d, r, warn);
}

void sched_found(struct daemon *d, qref r)
{
	struct qentry *e = E(d, r);
	if (e->state == QE_HELD)
		return;	/* until released */
	if (e->state == QE_BOUNCING) {	/* a crash interrupted its report: finish it */
		start_bounce(d, r, false);
		return;
	}
	if (e->next_try <= now_real()) {
		lane_push(d, LANE_BACKLOG, r);
		return;
	}
	bool first = d->sched.nheap == 0 || key_of(e) < heap_key(d, 0);
	heap_push(d, r);
	if (first)
		arm_timer(d);
}

/* The next ready message, the lanes taking turns. */
static qref next_ready(struct daemon *d)
{
	struct scheduler *s = &d->sched;
	for (unsigned i = 0; i < NLANES; i++) {
		unsigned lane = (s->turn + i) % NLANES;
		qref r = lane_pop(d, lane);
		if (r) {
			s->turn = (lane + 1) % NLANES;
			return r;
		}
	}
	return 0;
}

void sched_dispatch(struct daemon *d)
{
	struct scheduler *s = &d->sched;
	if (!d->pool || d->stopping)
		return;
	/* the pool's size, not [relay] workers: a reload does not change it */
	size_t limit = pool_size(d) * SCHED_INFLIGHT_PER_WORKER;
	qref r;
	bool gate = s->unchecked || s->walking;
	if (!gate)
		while ((r = lane_pop(d, LANE_REPORTS)))
			lane_push(d, LANE_BACKLOG, r);
	while (s->inflight < limit && (r = next_ready(d))) {
		struct qentry *e = E(d, r);
		if (gate && qid_is_bounce(e->id)) {
			lane_push(d, LANE_REPORTS, r);	/* until no report is half made */
			continue;
		}
		char id[QID_LEN + 1];
		qindex_set_state(&d->queue, r, QE_ACTIVE);
		s->inflight++;
		qid_format(e->id, id);
		/* the name has the next try rounded up to the second */
		pool_submit(d, id, e->tries, e->next_try + (e->frac != 0));
	}
}

size_t sched_flush_all(struct daemon *d)
{
	pool_flush_relays(d, -1);	/* before they are handed out: held relays too go now */
	return sched_due_now(d);
}

size_t sched_due_now(struct daemon *d)
{
	struct scheduler *s = &d->sched;
	size_t n = s->nheap;
	for (uint32_t i = 0; i < s->nheap; i++)	/* next_try stays: it names the file */
		lane_push(d, LANE_BACKLOG, s->heap[i]);
	s->nheap = 0;
	arm_timer(d);
	sched_dispatch(d);
	return n;
}

void sched_result(struct daemon *d, const struct delivery_result *res)
{
	struct scheduler *s = &d->sched;
	uint64_t id = qid_value(res->id);
	qref r = qindex_find(&d->queue, id);
	if (s->inflight)
		s->inflight--;
	if (!r)
		return;
	if (res->done) {
		qindex_remove(&d->queue, r);	/* (remembered while the indexer walks) */
		return;
	}
	struct qentry *e = E(d, r);
	double sec = floor(res->next_try), frac = ceil((res->next_try - sec) * 256);
	e->tries = res->tries;
	e->next_try = (uint32_t)sec;
	e->frac = (uint8_t)(frac > 255 ? 255 : frac);
	if (res->bouncing || (res->warn && e->state == QE_ACTIVE)) {
		if (e->state != QE_ACTIVE)
			log_info("%s: the %s asked during its attempt is not done: a report about it is "
				 "queued", res->id, e->state == QE_ACTIVE_HOLD ? "hold" : "delete");
		start_bounce(d, r, !res->bouncing);
		return;
	}
	if (e->state == QE_ACTIVE_HOLD || e->state == QE_ACTIVE_DELETE) {
		enum sched_action a = e->state == QE_ACTIVE_HOLD ? SA_HOLD : SA_DELETE;
		qindex_set_state(&d->queue, r, QE_HELD);	/* out of the schedule while the file is done */
		if (s->later)
			s->later(d, r, a);
		return;
	}
	heap_push(d, r);
	arm_timer(d);
}

void sched_file_name(struct daemon *d, qref r, char name[QNAME_MAX])
{
	struct qentry *e = E(d, r);
	char id[QID_LEN + 1];
	qid_format(e->id, id);
	qname_format(name, id, e->next_try + (e->frac != 0), e->tries);	/* as sched_dispatch names it */
}

static bool active(const struct qentry *e)
{
	return e->state == QE_ACTIVE || e->state == QE_ACTIVE_HOLD || e->state == QE_ACTIVE_DELETE;
}

/* Out of the lanes, the heap or the pool's queue, into the state given;
 * false when a worker has started on it. */
static bool detach(struct daemon *d, qref r, enum qstate to)
{
	struct qentry *e = E(d, r);
	char id[QID_LEN + 1];
	if (e->state == QE_READY)
		lane_remove(d, r);
	else if (e->state == QE_DEFERRED)
		heap_remove(d, r);
	if (active(e)) {
		qid_format(e->id, id);
		if (!pool_cancel(d, id))
			return false;
		d->sched.inflight--;
	}
	qindex_set_state(&d->queue, r, to);
	arm_timer(d);
	return true;
}

enum sched_answer sched_act(struct daemon *d, qref r, enum sched_action a)
{
	struct qentry *e = E(d, r);
	if (e->state == QE_BOUNCING)
		return SA_BUSY;	/* bounce.c has its file until sched_bounced() */
	switch (a) {
	case SA_HOLD:
		if (e->state == QE_HELD || e->state == QE_ACTIVE_HOLD)
			return SA_UNCHANGED;
		if (detach(d, r, QE_HELD))
			return SA_NOW;
		qindex_set_state(&d->queue, r, QE_ACTIVE_HOLD);
		return SA_LATER;
	case SA_DELETE:
		if (e->state == QE_ACTIVE_DELETE)
			return SA_UNCHANGED;
		if (detach(d, r, QE_HELD))	/* held until its file is gone */
			return SA_NOW;
		qindex_set_state(&d->queue, r, QE_ACTIVE_DELETE);
		return SA_LATER;
	case SA_RELEASE:
		if (e->state == QE_ACTIVE_HOLD) {
			qindex_set_state(&d->queue, r, QE_ACTIVE);	/* the hold had not happened yet */
			return SA_UNCHANGED;
		}
		return e->state == QE_HELD ? SA_NOW : SA_UNCHANGED;
	case SA_FLUSH:
		if (e->state != QE_DEFERRED)
			return SA_UNCHANGED;
		heap_remove(d, r);
		lane_push(d, LANE_BACKLOG, r);
		arm_timer(d);
		sched_dispatch(d);
		return SA_NOW;
	}
	return SA_UNCHANGED;
}

/* The file of a held message was renamed back: it is due now. */
void sched_released(struct daemon *d, qref r)
{
	if (E(d, r)->state != QE_HELD)
		return;
	lane_push(d, LANE_BACKLOG, r);
	sched_dispatch(d);
}

void sched_bounced(struct daemon *d, qref r, bool keep)
{
	struct scheduler *s = &d->sched;
	if (s->bouncing)
		s->bouncing--;
	if (keep) {
		heap_push(d, r);
		arm_timer(d);
	} else {
		qindex_remove(&d->queue, r);
	}
	sched_dispatch(d);
}

void sched_bounce_checked(struct daemon *d)
{
	if (d->sched.unchecked && --d->sched.unchecked == 0)
		sched_dispatch(d);
}

void sched_walking(struct daemon *d, bool on)
{
	d->sched.walking = on;
	if (!on)
		sched_dispatch(d);
}

void sched_deleted(struct daemon *d, qref r)
{
	qindex_remove(&d->queue, r);
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
