/*
 * scheduler.h - when each queued message is tried.
 *
 * A message in the index is in exactly one place: a ready lane (to be
 * handed to the workers), in flight (a worker has it), or the deferred
 * heap (waiting for its next try, one timer for the earliest).  Two
 * ready lanes take turns: new mail, and the backlog (what the start-up
 * walk found and retries that came due), so new mail is not queued
 * behind a million old messages.  At most SCHED_INFLIGHT_PER_WORKER jobs
 * per worker are handed out at a time, so a busy worker always finds a
 * next message to pipeline behind the current one, or a batch to send
 * with BDAT (delivery.c BATCH_MAX).  Loop thread only.
 */
#ifndef OUTBOXD_SCHEDULER_H
#define OUTBOXD_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../common/queue.h"
#include "index.h"

#define SCHED_INFLIGHT_PER_WORKER 40

enum { LANE_NEW, LANE_BACKLOG, NLANES };

struct scheduler {
	struct { qref head, tail; } lane[NLANES];
	unsigned turn;		/* the lane to take from next */
	qref *heap;		/* deferred entries by next_try */
	uint32_t nheap, heap_cap;
	uv_timer_t timer;
	size_t inflight;
};

struct daemon;
struct delivery_result;	/* pool.h */

void sched_init(struct daemon *d);
/* A message just committed. */
void sched_new(struct daemon *d, qref r);
/* A message the start-up walk found (its next_try and tries set). */
void sched_found(struct daemon *d, qref r);
void sched_result(struct daemon *d, const struct delivery_result *r);
void sched_dispatch(struct daemon *d);
/* Every deferred message is due now (sendmail -q); how many were
 * waiting.  Their files' names keep the old schedule. */
size_t sched_flush_all(struct daemon *d);
void sched_stop(struct daemon *d);
/* After the loop: the memory of the heap (the entries belong to the index). */
void sched_free(struct daemon *d);

#endif
