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
 *
 * UIDS: the walk reads names only, so what it finds has QUID_UNKNOWN as
 * its submitter.  Once the walk is complete (and the daemon ready), the
 * owners are read from the files in the background, UID_BATCH at a time
 * on the thread pool, one batch in flight (the intake's commits keep the
 * other threads), until the index's chain of unknown uids is empty: a
 * file that cannot be read gets QUID_NONE (only admins see it), so every
 * batch empties its part of the chain; a passing error (EMFILE, EIO, a
 * rename under way) leaves it unknown and the batch is tried again
 * UID_RETRY_MS later, QUID_NONE only after UID_ROUNDS batches in a row
 * made no progress.  Until then an ordinary user's
 * listing may miss messages found at the start (control.c says so).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "indexer.h"
#include "scheduler.h"
#include "spool_log.h"

#define BATCH_SIZE 4096
#define MAX_BATCHES 16
#define DRAIN_BATCHES 4
#define UID_BATCH 256

#define UID_RETRY_MS 5000
#define UID_ROUNDS 3	/* batches in a row without progress before giving up */

struct uid_item {
	uint64_t id;
	char name[QNAME_MAX];
	uint32_t uid;	/* read by the thread; QUID_UNKNOWN: a passing error */
};

struct batch {
	struct batch *next;
	size_t n;
	struct qfound f[BATCH_SIZE];
};

struct indexer {
	struct indexer_env env;	/* a copy */
	uv_thread_t thread;
	uv_async_t async;
	uv_mutex_t mu;
	uv_cond_t cv;		/* room in the batch queue */
	struct batch *head, *tail;	/* guarded by mu, as are nbatches and ended */
	size_t nbatches;
	bool ended;		/* the thread posted its last batch */
	atomic_bool stop;
	bool running;		/* loop side: the walk is not complete */
	bool end_taken;		/* loop side: the last batch and the end were taken
				 * (logged, env.stopped called): indexer_stopped */
	bool joined;
	double started;
	size_t found;		/* loop side: new entries added */
	size_t moved, quarantined;	/* the walk's counts, set before ended */
	uv_work_t uid_req;	/* the owners' read (UIDS) */
	bool uid_busy;
	uv_timer_t uid_timer;	/* a batch that made no progress is tried again later */
	unsigned uid_stuck;
	size_t nuid, uids_read;
	double uid_started;
	struct uid_item uid[UID_BATCH];
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
	struct err e, note;
	struct store_walk *w = store_walk_begin(x->env.store, &e);
	struct batch *b = NULL;
	if (!w)
		log_err("cannot index the queue: %s", e.msg);
	while (w && !atomic_load(&x->stop)) {
		if (!b)
			b = xcalloc(1, sizeof *b);
		enum walk_step step = store_walk_next(w, &b->f[b->n], &note);
		if (step == WALK_END)
			break;
		if (step == WALK_TROUBLE)
			log_err("%s", note.msg);
		if (step == WALK_UPGRADED)
			log_info("%s", note.msg);
		if (step == WALK_FOUND && ++b->n == BATCH_SIZE) {
			post(x, b);
			b = NULL;
		}
	}
	spool_log_news(x->env.store);	/* what the upgrade's fsyncs found */
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
	struct queue_index *q = x->env.queue;
	for (size_t i = 0; i < b->n; i++) {
		const struct qfound *f = &b->f[i];
		bool added;
		if (qindex_was_removed(q, f->id))
			continue;	/* delivered since the walk saw it */
		qref r = qindex_add(q, f->id, &added);
		if (!added)
			continue;	/* new mail, already known */
		struct qentry *e = qindex_get(q, r);
		e->tries = f->tries;
		e->next_try = f->next_try;
		if (f->held)
			qindex_set_state(q, r, QE_HELD);
		if (f->bouncing)
			qindex_set_state(q, r, QE_BOUNCING);
		sched_found(x->env.sched, r);
		x->found++;
	}
}

/* ---- UIDS ---- */

static void uid_work(uv_work_t *req)
{
	struct indexer *x = req->data;
	for (size_t i = 0; i < x->nuid; i++) {
		struct envelope env;
		struct err e;
		size_t off;
		uint64_t size;
		x->uid[i].uid = QUID_NONE;
		if (store_load(x->env.store, x->uid[i].name, &env, &off, NULL, &size, &e) < 0) {
			if (!store_load_error_is_permanent(errno) && x->uid_stuck < UID_ROUNDS)
				x->uid[i].uid = QUID_UNKNOWN;
			continue;
		}
		x->uid[i].uid = quid_of(env.uid);
		envelope_free(&env);
	}
}

static void uid_next(struct indexer *x);

static void uid_retry(uv_timer_t *t)
{
	uid_next(t->data);
}

static void uid_done(uv_work_t *req, int status)
{
	struct indexer *x = req->data;
	struct queue_index *q = x->env.queue;
	size_t known = 0;
	(void)status;
	x->uid_busy = false;
	for (size_t i = 0; i < x->nuid; i++) {
		qref r = qindex_find(q, x->uid[i].id);
		if (x->uid[i].uid == QUID_UNKNOWN)
			continue;	/* a passing error: again later */
		known++;
		if (r && qindex_get(q, r)->uid == QUID_UNKNOWN)
			qindex_set_uid(q, r, x->uid[i].uid);
	}
	x->uids_read += known;
	x->uid_stuck = known ? 0 : x->uid_stuck + 1;
	if (atomic_load(&x->stop))
		x->env.stopped(x->env.arg);
	else if (known)
		uid_next(x);
	else
		uv_timer_start(&x->uid_timer, uid_retry, UID_RETRY_MS, 0);
}

/* Loop: the next batch of the unknown chain, if any is left. */
static void uid_next(struct indexer *x)
{
	struct queue_index *q = x->env.queue;
	if (atomic_load(&x->stop) || x->uid_busy)
		return;
	x->nuid = 0;
	for (qref r = qindex_first_of(q, QUID_UNKNOWN); r && x->nuid < UID_BATCH; r = qindex_next_of(q, r)) {
		x->uid[x->nuid].id = qindex_get(q, r)->id;
		sched_file_name(x->env.sched, r, x->uid[x->nuid++].name);
	}
	if (!x->nuid) {
		if (x->uids_read)
			log_info("queue owners read: %zu messages in %.2f s", x->uids_read,
				 now_mono() - x->uid_started);
		return;
	}
	if (!x->uids_read)
		x->uid_started = now_mono();
	x->uid_busy = true;
	x->uid_req.data = x;
	uv_queue_work(x->env.loop, &x->uid_req, uid_work, uid_done);
}

static void finish(struct indexer *x)
{
	x->running = false;
	qindex_track_removals(x->env.queue, false);
	sched_walking(x->env.sched, false);	/* reports may go now (scheduler.h) */
	if (atomic_load(&x->stop)) {
		log_info("queue indexing stopped after %zu messages", x->found);
		return;
	}
	log_info("queue indexed: %zu messages found in %.2f s, %zu in the queue%s", x->found,
		 now_mono() - x->started, x->env.queue->count,
		 x->quarantined ? " (some files moved to corrupt/, see above)" : "");
	x->env.indexed(x->env.arg);	/* the sockets listen and the queue is loaded */
	uid_next(x);
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
		if (!atomic_load(&x->stop))
			take(x, b);
		free(b);
	}
	if (more)
		uv_async_send(&x->async);	/* the rest after the sockets had a turn */
	else if (ended && x->running)
		finish(x);
	if (ended && !more) {
		x->end_taken = true;
		x->env.stopped(x->env.arg);
	}
	sched_dispatch(x->env.sched);
}

int indexer_start(struct indexer **xp, const struct indexer_env *env, struct err *e)
{
	struct indexer *x = xcalloc(1, sizeof *x);
	x->env = *env;
	x->running = true;
	sched_walking(env->sched, true);
	x->started = now_mono();
	atomic_init(&x->stop, false);
	qindex_track_removals(env->queue, true);
	uv_mutex_init(&x->mu);
	uv_cond_init(&x->cv);
	uv_async_init(env->loop, &x->async, on_batches);
	x->async.data = x;
	uv_timer_init(env->loop, &x->uid_timer);
	x->uid_timer.data = x;
	*xp = x;
	if (uv_thread_create(&x->thread, walk_main, x) != 0) {
		x->joined = true;
		x->ended = x->end_taken = true;
		return err_set(e, "cannot start the queue indexer thread");
	}
	return 0;
}

bool indexer_busy(const struct indexer *x)
{
	return x && x->uid_busy;
}

bool indexer_running(const struct indexer *x)
{
	return x && x->running;
}

void indexer_stop(struct indexer *x)
{
	if (!x)
		return;
	uv_mutex_lock(&x->mu);
	atomic_store(&x->stop, true);
	uv_mutex_unlock(&x->mu);
	uv_cond_broadcast(&x->cv);
}

/* Loop side: not only has the thread ended, the loop has taken its end
 * (on_batches: the last batch, the log line, env.stopped).  The thread's
 * own flag alone would let a stop finish, and close the async handle,
 * between the thread's end and the loop's turn for it. */
bool indexer_stopped(struct indexer *x)
{
	return !x || x->end_taken;
}

bool indexer_walk_ended(struct indexer *x)
{
	uv_mutex_lock(&x->mu);
	bool ended = x->ended;
	uv_mutex_unlock(&x->mu);
	return ended;
}

void indexer_close(struct indexer *x)
{
	if (x && !uv_is_closing((uv_handle_t *)&x->async)) {
		uv_close((uv_handle_t *)&x->async, NULL);
		uv_close((uv_handle_t *)&x->uid_timer, NULL);
	}
}

void indexer_free(struct indexer *x)
{
	if (!x || !indexer_walk_ended(x))
		return;	/* still walking: left to the exit */
	if (!x->joined)
		uv_thread_join(&x->thread);
	for (struct batch *b = x->head, *n; b; b = n) {
		n = b->next;
		free(b);
	}
	if (x->running)
		qindex_track_removals(x->env.queue, false);
	uv_mutex_destroy(&x->mu);
	uv_cond_destroy(&x->cv);
	free(x);
}
