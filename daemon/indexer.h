/*
 * indexer.h - the start-up index of the queue, built while the daemon
 * already takes and delivers new mail.
 *
 * A thread walks the spool by name (store_walk: no queue file is
 * opened) and hands the messages it finds to the loop in batches; the
 * loop adds each to the index and the scheduler.  New mail committed
 * meanwhile is in the index already (an ID found twice is added once),
 * and a message delivered and removed meanwhile is remembered until the
 * walk ends, so a late find does not bring it back.  The log says when
 * the index is complete.
 */
#ifndef OUTBOXD_INDEXER_H
#define OUTBOXD_INDEXER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "index.h"

struct err;
struct indexer;
struct scheduler;
struct store;

/* What the indexer works with (each outlives it), and what it tells,
 * with arg, on the loop thread: the walk is complete (the daemon is
 * ready); after indexer_stop, its part of the stop is done. */
struct indexer_env {
	uv_loop_t *loop;
	struct store *store;
	struct queue_index *queue;	/* what it finds goes here ... */
	struct scheduler *sched;	/* ... and to the scheduler (sched_found) */
	void *arg;
	void (*indexed)(void *arg);
	void (*stopped)(void *arg);
};

/* *xp is the indexer, even when it fails (-1 with e). */
int indexer_start(struct indexer **xp, const struct indexer_env *env, struct err *e);
/* Is a batch of the owners' read (after the walk) on the thread pool? */
bool indexer_busy(const struct indexer *x);
/* Is the walk still going? */
bool indexer_running(const struct indexer *x);
/* Stop the walk (SIGTERM): the thread ends after its current entry. */
void indexer_stop(struct indexer *x);
/* After indexer_stop: has the thread ended, and the loop taken its end
 * (the walk's last log line written)?  Loop thread. */
bool indexer_stopped(struct indexer *x);
/* Has the walk's thread posted its last batch?  Any thread; the loop may
 * not have taken it yet (indexer_stopped). */
bool indexer_walk_ended(struct indexer *x);
/* Close the loop handle; free everything once the thread has ended. */
void indexer_close(struct indexer *x);
/* After the loop (x may be NULL). */
void indexer_free(struct indexer *x);

#endif
