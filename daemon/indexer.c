/*
 * indexer.c - the start-up index, built on a thread of its own
 * (indexer.h).
 *
 * The thread fills batches of BATCH_SIZE found messages and queues them
 * for the loop, at most MAX_BATCHES at a time (it waits when the loop
 * is behind, so memory stays bounded); the loop takes them in its async
 * callback, at most DRAIN_BATCHES per turn so that sockets are served
 * between turns.  While the walk runs the index remembers the IDs
 * removed from it (qindex_track_removals), so that a message delivered
 * meanwhile is not brought back by a late find.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "outboxd.h"
#include "indexer.h"
#include "notify.h"

#define BATCH_SIZE 4096
#define MAX_BATCHES 16
#define DRAIN_BATCHES 4

struct batch {
	struct batch *next;
	size_t n;
	struct qfound f[BATCH_SIZE];
};

struct indexer {
	struct daemon *d;
	uv_thread_t thread;
	uv_async_t async;
	uv_mutex_t mu;
	uv_cond_t cv;		/* room in the batch queue */
	struct batch *head, *tail;	/* guarded by mu, as are nbatches and ended */
	size_t nbatches;
	bool ended;		/* the thread posted its last batch */
	atomic_bool stop;
	bool running;		/* loop side: the walk is not complete */
	bool joined;
	double started;
	size_t found;		/* loop side: new entries added */
	size_t moved, quarantined;	/* the walk's counts, set before ended */
};

static void post(struct indexer *x, struct batch *b)
{
	uv_mutex_lock(&x->mu);
	while (x->nbatches >= MAX_BATCHES && !atomic_load(&x->stop))
		uv_cond_wait(&x->cv, &x->mu);
	if (b) {
		if (x->tail)
			x->tail->next = b;
		else
			x->head = b;
		x->tail = b;
		x->nbatches++;
	}
	uv_mutex_unlock(&x->mu);
	uv_async_send(&x->async);
}

static void walk_main(void *arg)
{
	struct indexer *x = arg;
	struct err e;
	struct store_walk *w = store_walk_begin(&x->d->store, &e);
	struct batch *b = NULL;
	if (!w)
		log_err("cannot index the queue: %s", e.msg);
	while (w && !atomic_load(&x->stop)) {
		if (!b)
			b = xcalloc(1, sizeof *b);
		int rc = store_walk_next(w, &b->f[b->n]);
		if (rc == 0)
			break;
		if (rc == 1 && ++b->n == BATCH_SIZE) {
			post(x, b);
			b = NULL;
		}
	}
	if (b && b->n)
		post(x, b);
	else
		free(b);
	uv_mutex_lock(&x->mu);
	if (w)
		store_walk_counts(w, &x->moved, &x->quarantined);
	x->ended = true;
	uv_mutex_unlock(&x->mu);
	store_walk_end(w);
	uv_async_send(&x->async);
}

/* Loop side: one batch into the index and the scheduler. */
static void take(struct indexer *x, const struct batch *b)
{
	struct daemon *d = x->d;
	for (size_t i = 0; i < b->n; i++) {
		const struct qfound *f = &b->f[i];
		bool added;
		if (qindex_was_removed(&d->queue, f->id))
			continue;	/* delivered since the walk saw it */
		qref r = qindex_add(&d->queue, f->id, &added);
		if (!added)
			continue;	/* new mail, already known */
		struct qentry *e = qindex_get(&d->queue, r);
		e->tries = f->tries;
		e->next_try = f->next_try;
		if (f->held)
			e->state = QE_HELD;
		if (f->bouncing)
			e->state = QE_BOUNCING;
		sched_found(d, r);
		x->found++;
	}
}

static void finish(struct indexer *x)
{
	x->running = false;
	qindex_track_removals(&x->d->queue, false);
	sched_walking(x->d, false);	/* reports may go now (scheduler.h) */
	if (atomic_load(&x->stop)) {
		log_info("queue indexing stopped after %zu messages", x->found);
		return;
	}
	log_info("queue indexed: %zu messages found in %.2f s, %zu in the queue%s", x->found,
		 now_mono() - x->started, x->d->queue.count,
		 x->quarantined ? " (some files moved to corrupt/, see above)" : "");
	notify_ready(x->d);	/* the sockets listen and the queue is loaded */
}

static void on_batches(uv_async_t *h)
{
	struct indexer *x = h->data;
	uv_mutex_lock(&x->mu);
	struct batch *list = NULL, **tail = &list;
	for (int i = 0; i < DRAIN_BATCHES && x->head; i++) {
		struct batch *b = x->head;
		x->head = b->next;
		if (!x->head)
			x->tail = NULL;
		x->nbatches--;
		b->next = NULL;
		*tail = b;
		tail = &b->next;
	}
	bool more = x->head != NULL, ended = x->ended;
	uv_mutex_unlock(&x->mu);
	uv_cond_signal(&x->cv);
	for (struct batch *b = list, *n; b; b = n) {
		n = b->next;
		if (!x->d->stopping)
			take(x, b);
		free(b);
	}
	if (more)
		uv_async_send(&x->async);	/* the rest after the sockets had a turn */
	else if (ended && x->running)
		finish(x);
	if (ended && !more)
		x->d->part_stopped(x->d);
	sched_dispatch(x->d);
}

int indexer_start(struct daemon *d, struct err *e)
{
	struct indexer *x = xcalloc(1, sizeof *x);
	x->d = d;
	x->running = true;
	sched_walking(d, true);
	x->started = now_mono();
	atomic_init(&x->stop, false);
	qindex_track_removals(&d->queue, true);
	uv_mutex_init(&x->mu);
	uv_cond_init(&x->cv);
	uv_async_init(d->loop, &x->async, on_batches);
	x->async.data = x;
	d->indexer = x;
	if (uv_thread_create(&x->thread, walk_main, x) != 0) {
		x->joined = true;
		x->ended = true;
		return err_set(e, "cannot start the queue indexer thread");
	}
	return 0;
}

bool indexer_running(const struct daemon *d)
{
	return d->indexer && d->indexer->running;
}

void indexer_stop(struct daemon *d)
{
	struct indexer *x = d->indexer;
	if (!x)
		return;
	uv_mutex_lock(&x->mu);
	atomic_store(&x->stop, true);
	uv_mutex_unlock(&x->mu);
	uv_cond_broadcast(&x->cv);
}

bool indexer_stopped(const struct daemon *d)
{
	struct indexer *x = d->indexer;
	if (!x)
		return true;
	uv_mutex_lock(&x->mu);
	bool ended = x->ended;
	uv_mutex_unlock(&x->mu);
	return ended;
}

void indexer_close(struct daemon *d)
{
	if (d->indexer && !uv_is_closing((uv_handle_t *)&d->indexer->async))
		uv_close((uv_handle_t *)&d->indexer->async, NULL);
}

void indexer_free(struct daemon *d)
{
	struct indexer *x = d->indexer;
	if (!x || !indexer_stopped(d))
		return;	/* still walking: left to the exit */
	if (!x->joined)
		uv_thread_join(&x->thread);
	for (struct batch *b = x->head, *n; b; b = n) {
		n = b->next;
		free(b);
	}
	if (x->running)
		qindex_track_removals(&d->queue, false);
	uv_mutex_destroy(&x->mu);
	uv_cond_destroy(&x->cv);
	free(x);
	d->indexer = NULL;
}
