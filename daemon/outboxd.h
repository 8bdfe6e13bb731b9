/*
 * outboxd.h - the daemon's main context and the interfaces between its
 * parts (listeners, SMTP server sessions, the worker pool); the index,
 * the scheduler and the indexer have headers of their own.
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
#include "index.h"
#include "indexer.h"
#include "scheduler.h"


struct daemon;

/* delivery.c: the worker pool. */
struct pool;
int pool_start(struct daemon *d, struct err *e);
/* The number of worker threads (fixed at start). */
size_t pool_size(const struct daemon *d);
/* Hand one message to the workers (loop thread): its ID, and the tries
 * and next try its file's name says (qname_format). */
void pool_submit(struct daemon *d, const char *id, unsigned tries, uint32_t next_try);
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
	struct indexer *indexer;	/* the start-up walk (indexer.c) */
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
