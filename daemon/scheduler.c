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
#include "pool.h"	/* struct delivery_result only */
#include "scheduler.h"

static struct qentry *E(struct scheduler *s, qref r)
{
	return qindex_get(s->q, r);
}

/* An entry's next try in 1/256 s. */
static uint64_t key_of(const struct qentry *e)
{
	return (uint64_t)e->next_try << 8 | e->frac;
}

static uint64_t heap_key(struct scheduler *s, uint32_t pos)
{
	return key_of(E(s, s->heap[pos]));
}

static void heap_set(struct scheduler *s, uint32_t pos, qref r)
{
	s->heap[pos] = r;
	E(s, r)->link = pos;
}

static void heap_up(struct scheduler *s, uint32_t i)
{
	qref r = s->heap[i];
	uint64_t key = key_of(E(s, r));
	while (i > 0 && heap_key(s, (i - 1) / 2) > key) {
		heap_set(s, i, s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(s, i, r);
}

static void heap_down(struct scheduler *s, uint32_t i)
{
	qref r = s->heap[i];
	uint64_t key = key_of(E(s, r));
	for (;;) {
		uint32_t l = 2 * i + 1, m = l;
		if (l >= s->nheap)
			break;
		if (l + 1 < s->nheap && heap_key(s, l + 1) < heap_key(s, l))
			m = l + 1;
		if (heap_key(s, m) >= key)
			break;
		heap_set(s, i, s->heap[m]);
		i = m;
	}
	heap_set(s, i, r);
}

static void heap_push(struct scheduler *s, qref r)
{
	if (s->nheap == s->heap_cap) {
		s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
		s->heap = xrealloc(s->heap, (size_t)s->heap_cap * sizeof *s->heap);
	}
	qindex_set_state(s->q, r, QE_DEFERRED);
	heap_set(s, s->nheap++, r);
	heap_up(s, s->nheap - 1);
}

static qref heap_pop(struct scheduler *s)
{
	qref top = s->heap[0];
	if (--s->nheap > 0) {
		heap_set(s, 0, s->heap[s->nheap]);
		heap_down(s, 0);
	}
	return top;
}

/* Take an entry out of the heap, wherever it is. */
static void heap_remove(struct scheduler *s, qref r)
{
	uint32_t pos = E(s, r)->link;
	if (--s->nheap > pos) {	/* the last one fills the hole, then goes up or down */
		heap_set(s, pos, s->heap[s->nheap]);
		if (pos > 0 && heap_key(s, (pos - 1) / 2) > heap_key(s, pos))
			heap_up(s, pos);
		else
			heap_down(s, pos);
	}
}

static void lane_push(struct scheduler *s, unsigned lane, qref r)
{
	struct qentry *e = E(s, r);
	qindex_set_state(s->q, r, QE_READY);
	e->link = 0;
	if (s->lane[lane].tail)
		E(s, s->lane[lane].tail)->link = r;
	else
		s->lane[lane].head = r;
	s->lane[lane].tail = r;
}

static qref lane_pop(struct scheduler *s, unsigned lane)
{
	qref r = s->lane[lane].head;
	if (r) {
		s->lane[lane].head = E(s, r)->link;
		if (!s->lane[lane].head)
			s->lane[lane].tail = 0;
	}
	return r;
}

/* Take an entry out of whichever lane holds it (a walk: operator
 * actions are rare). */
static void lane_remove(struct scheduler *s, qref r)
{
	for (unsigned l = 0; l <= LANE_REPORTS; l++) {
		qref prev = 0;
		for (qref q = s->lane[l].head; q; prev = q, q = E(s, q)->link) {
			if (q != r)
				continue;
			if (prev)
				E(s, prev)->link = E(s, q)->link;
			else
				s->lane[l].head = E(s, q)->link;
			if (s->lane[l].tail == r)
				s->lane[l].tail = prev;
			return;
		}
	}
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct scheduler *s)
{
	if (s->nheap == 0 || s->stopping) {
		uv_timer_stop(&s->timer);
		return;
	}
	double wait = (double)heap_key(s, 0) / 256 - now_real();
	uv_timer_start(&s->timer, on_timer, wait > 0 ? (uint64_t)(wait * 1000) + 1 : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct scheduler *s = t->data;
	uint64_t now = (uint64_t)(now_real() * 256);
	while (s->nheap && heap_key(s, 0) <= now)
		lane_push(s, LANE_BACKLOG, heap_pop(s));
	arm_timer(s);
	sched_dispatch(s);
}

void sched_init(struct scheduler *s, uv_loop_t *loop, struct queue_index *q, const struct sched_hooks *hooks)
{
	s->q = q;
	s->hooks = hooks;
	uv_timer_init(loop, &s->timer);
	s->timer.data = s;
}

void sched_new(struct scheduler *s, qref r)
{
	lane_push(s, LANE_NEW, r);
}

/* warn: no recipient failed, the message is late: a delayed report. */
static void start_bounce(struct scheduler *s, qref r, bool warn)
{
	qindex_set_state(s->q, r, QE_BOUNCING);
	s->bouncing++;
	s->unchecked++;
	if (s->hooks->bounce)
		s->hooks->bounce(s->hooks->arg, r, warn);
}

void sched_found(struct scheduler *s, qref r)
{
	struct qentry *e = E(s, r);
	if (e->state == QE_HELD)
		return;	/* until released */
	if (e->state == QE_BOUNCING) {	/* a crash interrupted its report: finish it */
		start_bounce(s, r, false);
		return;
	}
	if (e->next_try <= now_real()) {
		lane_push(s, LANE_BACKLOG, r);
		return;
	}
	bool first = s->nheap == 0 || key_of(e) < heap_key(s, 0);
	heap_push(s, r);
	if (first)
		arm_timer(s);
}

/* The next ready message, the lanes taking turns. */
static qref next_ready(struct scheduler *s)
{
	for (unsigned i = 0; i < NLANES; i++) {
		unsigned lane = (s->turn + i) % NLANES;
		qref r = lane_pop(s, lane);
		if (r) {
			s->turn = (lane + 1) % NLANES;
			return r;
		}
	}
	return 0;
}

void sched_dispatch(struct scheduler *s)
{
	if (s->stopping)
		return;
	/* the pool's size, not [relay] workers: a reload does not change it */
	size_t limit = s->hooks->workers(s->hooks->arg) * SCHED_INFLIGHT_PER_WORKER;
	qref r;
	bool gate = s->unchecked || s->walking;
	if (!gate)
		while ((r = lane_pop(s, LANE_REPORTS)))
			lane_push(s, LANE_BACKLOG, r);
	while (s->inflight < limit && (r = next_ready(s))) {
		struct qentry *e = E(s, r);
		if (gate && qid_is_bounce(e->id)) {
			lane_push(s, LANE_REPORTS, r);	/* until no report is half made */
			continue;
		}
		char id[QID_LEN + 1];
		qindex_set_state(s->q, r, QE_ACTIVE);
		s->inflight++;
		qid_format(e->id, id);
		/* the name has the next try rounded up to the second */
		s->hooks->submit(s->hooks->arg, id, e->tries, e->next_try + (e->frac != 0));
	}
}

size_t sched_flush_all(struct scheduler *s)
{
	s->hooks->flush_relays(s->hooks->arg);	/* before they are handed out: held relays too go now */
	return sched_due_now(s);
}

size_t sched_due_now(struct scheduler *s)
{
	size_t n = s->nheap;
	for (uint32_t i = 0; i < s->nheap; i++)	/* next_try stays: it names the file */
		lane_push(s, LANE_BACKLOG, s->heap[i]);
	s->nheap = 0;
	arm_timer(s);
	sched_dispatch(s);
	return n;
}

void sched_result(struct scheduler *s, const struct delivery_result *res)
{
	uint64_t id = qid_value(res->id);
	qref r = qindex_find(s->q, id);
	if (s->inflight)
		s->inflight--;
	if (!r)
		return;
	if (res->done) {
		qindex_remove(s->q, r);	/* (remembered while the indexer walks) */
		return;
	}
	struct qentry *e = E(s, r);
	double sec = floor(res->next_try), frac = ceil((res->next_try - sec) * 256);
	e->tries = res->tries;
	e->next_try = (uint32_t)sec;
	e->frac = (uint8_t)(frac > 255 ? 255 : frac);
	if (res->bouncing || (res->warn && e->state == QE_ACTIVE)) {
		if (e->state != QE_ACTIVE)
			log_info("%s: the %s asked during its attempt is not done: a report about it is "
				 "queued", res->id, e->state == QE_ACTIVE_HOLD ? "hold" : "delete");
		start_bounce(s, r, !res->bouncing);
		return;
	}
	if (e->state == QE_ACTIVE_HOLD || e->state == QE_ACTIVE_DELETE) {
		enum sched_action a = e->state == QE_ACTIVE_HOLD ? SA_HOLD : SA_DELETE;
		qindex_set_state(s->q, r, QE_HELD);	/* out of the schedule while the file is done */
		if (s->hooks->later)
			s->hooks->later(s->hooks->arg, r, a);
		return;
	}
	heap_push(s, r);
	arm_timer(s);
}

void sched_file_name(struct scheduler *s, qref r, char name[QNAME_MAX])
{
	struct qentry *e = E(s, r);
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
static bool detach(struct scheduler *s, qref r, enum qstate to)
{
	struct qentry *e = E(s, r);
	char id[QID_LEN + 1];
	if (e->state == QE_READY)
		lane_remove(s, r);
	else if (e->state == QE_DEFERRED)
		heap_remove(s, r);
	if (active(e)) {
		qid_format(e->id, id);
		if (!s->hooks->cancel(s->hooks->arg, id))
			return false;
		s->inflight--;
	}
	qindex_set_state(s->q, r, to);
	arm_timer(s);
	return true;
}

enum sched_answer sched_act(struct scheduler *s, qref r, enum sched_action a)
{
	struct qentry *e = E(s, r);
	if (e->state == QE_BOUNCING)
		return SA_BUSY;	/* bounce.c has its file until sched_bounced() */
	switch (a) {
	case SA_HOLD:
		if (e->state == QE_HELD || e->state == QE_ACTIVE_HOLD)
			return SA_UNCHANGED;
		if (detach(s, r, QE_HELD))
			return SA_NOW;
		qindex_set_state(s->q, r, QE_ACTIVE_HOLD);
		return SA_LATER;
	case SA_DELETE:
		if (e->state == QE_ACTIVE_DELETE)
			return SA_UNCHANGED;
		if (detach(s, r, QE_HELD))	/* held until its file is gone */
			return SA_NOW;
		qindex_set_state(s->q, r, QE_ACTIVE_DELETE);
		return SA_LATER;
	case SA_RELEASE:
		if (e->state == QE_ACTIVE_HOLD) {
			qindex_set_state(s->q, r, QE_ACTIVE);	/* the hold had not happened yet */
			return SA_UNCHANGED;
		}
		return e->state == QE_HELD ? SA_NOW : SA_UNCHANGED;
	case SA_FLUSH:
		if (e->state != QE_DEFERRED)
			return SA_UNCHANGED;
		heap_remove(s, r);
		lane_push(s, LANE_BACKLOG, r);
		arm_timer(s);
		sched_dispatch(s);
		return SA_NOW;
	}
	return SA_UNCHANGED;
}

/* The file of a held message was renamed back: it is due now. */
void sched_released(struct scheduler *s, qref r)
{
	if (E(s, r)->state != QE_HELD)
		return;
	lane_push(s, LANE_BACKLOG, r);
	sched_dispatch(s);
}

void sched_bounced(struct scheduler *s, qref r, bool keep)
{
	if (s->bouncing)
		s->bouncing--;
	if (keep) {
		heap_push(s, r);
		arm_timer(s);
	} else {
		qindex_remove(s->q, r);
	}
	sched_dispatch(s);
}

void sched_bounce_checked(struct scheduler *s)
{
	if (s->unchecked && --s->unchecked == 0)
		sched_dispatch(s);
}

void sched_walking(struct scheduler *s, bool on)
{
	s->walking = on;
	if (!on)
		sched_dispatch(s);
}

void sched_deleted(struct scheduler *s, qref r)
{
	qindex_remove(s->q, r);
}

void sched_stop(struct scheduler *s)
{
	s->stopping = true;
	uv_timer_stop(&s->timer);
}

void sched_close(struct scheduler *s)
{
	if (!uv_is_closing((uv_handle_t *)&s->timer))
		uv_close((uv_handle_t *)&s->timer, NULL);
}

void sched_free(struct scheduler *s)
{
	free(s->heap);
	s->heap = NULL;
	s->nheap = s->heap_cap = 0;
}
