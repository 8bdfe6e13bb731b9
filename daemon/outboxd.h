/*
 * outboxd.h - the daemon's main context and the interfaces between its
 * parts (listeners, SMTP server sessions, the in-memory queue index).
 *
 * Invariant: all of struct daemon is touched only from the libuv loop
 * thread; work on other threads (fsync, delivery) gets copies and
 * reports back through libuv callbacks.  This is the only mutable state
 * of the daemon besides the logger's settings.
 */
#ifndef OUTBOXD_H
#define OUTBOXD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../common/config.h"
#include "../common/queue.h"


struct daemon;

/* One queued message as the daemon remembers it: small on purpose, the
 * envelope stays on disk until a worker needs it. */
struct qentry {
	char id[QID_LEN + 1];
	uint8_t state;		/* QE_* */
	uint16_t tries;
	uint32_t npending;	/* recipients not yet done */
	uint64_t size;
	double arrival;
	double next_try;	/* monotonic seconds, when deferred */
	struct qentry *hnext;	/* hash chain */
	struct qentry *rnext;	/* ready FIFO */
	size_t heap_idx;	/* position in the deferred heap */
};

enum { QE_READY, QE_DEFERRED, QE_ACTIVE, QE_HELD };

struct queue_index {
	struct qentry **buckets;
	size_t nbuckets;
	size_t count;
};

void qindex_init(struct queue_index *q);
void qindex_free(struct queue_index *q);
struct qentry *qindex_add(struct queue_index *q, const char *id, const struct envelope *env,
			  uint64_t size);
struct qentry *qindex_find(const struct queue_index *q, const char *id);
void qindex_remove(struct queue_index *q, struct qentry *e);

/* scheduler.c: which message goes to a worker when.  Ready messages
 * wait in a FIFO, deferred ones in a heap ordered by next_try with one
 * timer for the earliest; at most SCHED_INFLIGHT_PER_WORKER jobs per
 * worker are handed out at a time, so a busy worker always finds a next
 * message to pipeline behind the current one, or a batch to send with
 * BDAT (delivery.c BATCH_MAX). */
#define SCHED_INFLIGHT_PER_WORKER 40

struct scheduler {
	struct qentry *ready_head, *ready_tail;
	struct qentry **heap;
	size_t nheap, heap_cap;
	uv_timer_t timer;
	size_t inflight;
};

struct delivery_result {
	char id[QID_LEN + 1];
	bool done;		/* nothing pending: the message left the queue */
	double retry_in;	/* seconds, when not done */
	unsigned npending;
	struct delivery_result *next;
};

void sched_init(struct daemon *d);
void sched_ready(struct daemon *d, struct qentry *e);
void sched_result(struct daemon *d, const struct delivery_result *r);
void sched_dispatch(struct daemon *d);
void sched_stop(struct daemon *d);
/* After the loop: the memory of the heap (the entries belong to the index). */
void sched_free(struct daemon *d);

/* delivery.c: the worker pool. */
struct pool;
int pool_start(struct daemon *d, struct err *e);
/* The number of worker threads (fixed at start). */
size_t pool_size(const struct daemon *d);
/* Hand one message to the workers (loop thread). */
void pool_submit(struct daemon *d, const char *id, unsigned tries);
/* Workers finish the message in hand and exit; done() runs on the loop
 * when the last one has. */
void pool_stop(struct daemon *d);
bool pool_stopped(const struct daemon *d);
void pool_free(struct daemon *d);
void pool_close_handle(struct daemon *d);

struct daemon;
struct session;
struct listener;

struct daemon {
	uv_loop_t *loop;
	struct config *conf;
	const char *conf_path;
	int verbose;
	struct store store;
	struct queue_index queue;
	struct scheduler sched;
	struct pool *pool;
	char hostname[256];
	struct listener *listeners;
	struct session *sessions;	/* doubly linked, all live sessions */
	size_t nsessions;
	size_t max_sessions;		/* MAX_SESSIONS, or fewer if file descriptors are short */
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t grace;		/* shutdown grace period */
	bool stopping;
	uint64_t received;		/* messages accepted since start */
	bool spool_full;		/* new mail refused for want of room (smtp_session.c) */
};

/* listen.c */
int listeners_start(struct daemon *d, struct err *e);
void listeners_stop(struct daemon *d);

/* smtp_session.c */
void session_accept(struct daemon *d, uv_stream_t *server, bool is_unix);
/* Close sessions with 421: those between commands now; with force also
 * those still receiving a message (a commit in flight always finishes). */
void sessions_shutdown(struct daemon *d, bool force);
/* Called when a session or the worker pool has gone; the daemon may
 * finish stopping. */
void daemon_maybe_finish(struct daemon *d);

#endif
