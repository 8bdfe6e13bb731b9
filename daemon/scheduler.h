/*
 * scheduler.h - when each queued message is tried.
 *
 * A message in the index is in exactly one place: a ready lane (to be
 * handed to the workers), in flight (a worker has it), or the deferred
 * heap (waiting for its next try, one timer for the earliest).  Two
 * ready lanes take turns: new mail, and the backlog (what the start-up
 * walk found and retries that came due), so new mail is not queued
 * behind a million old messages.  A report (a bounce, ID from
 * qid_bounce) is not handed out while any QE_BOUNCING message is not
 * yet checked by bounce.c: at start-up that finishes the reports a
 * crash interrupted before their earlier copy can be sent (queue.c
 * BOUNCES).  At most SCHED_INFLIGHT_PER_WORKER jobs
 * per worker are handed out at a time, so a busy worker always finds a
 * next message to pipeline behind the current one, or a batch to send
 * with BDAT (delivery.c BATCH_MAX).
 *
 * The scheduler sees the index (index.h) and, through struct
 * sched_hooks, whoever carries the work out: the pool (hand a job out,
 * take one back, its size), the operator actions' file half and the
 * reports.  It knows nothing else of the daemon, so it is tested alone
 * (tests/unit/test_scheduler.c, with a fake pool).  Loop thread only.
 */
#ifndef OUTBOXD_SCHEDULER_H
#define OUTBOXD_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../common/queue.h"
#include "index.h"

#define SCHED_INFLIGHT_PER_WORKER 40

enum { LANE_NEW, LANE_BACKLOG, NLANES, LANE_REPORTS = NLANES };

/* Operator actions (the control server's, scheduler.c). */
enum sched_action { SA_HOLD, SA_RELEASE, SA_DELETE, SA_FLUSH };
enum sched_answer {
	SA_NOW,		/* done in memory; the caller does the file's part (rename, unlink) */
	SA_LATER,	/* a worker has it: hooks.later runs when the attempt ends */
	SA_UNCHANGED,	/* nothing to do (already held, not deferred, ...) */
	SA_BUSY,	/* a report about it is being queued (QE_BOUNCING): ask again later */
};

/* What the scheduler asks of the rest of the daemon; each gets arg. */
struct sched_hooks {
	void *arg;
	/* Hand one message to the workers: its ID, and the tries and next
	 * try its file's name says (qname_format).  (pool_submit) */
	void (*submit)(void *arg, const char *id, unsigned tries, uint32_t next_try);
	/* Take back the job of id if no worker has started it: true if so.
	 * (pool_cancel) */
	bool (*cancel)(void *arg, const char *id);
	/* The number of workers (0: none yet, nothing is handed out).
	 * (pool_size) */
	size_t (*workers)(void *arg);
	/* Every relay held back or down is tried at once (pool_flush_relays). */
	void (*flush_relays)(void *arg);
	/* An action that waited for an attempt's end, now to be done on the
	 * file (operator.c op_later); r is QE_HELD meanwhile. */
	void (*later)(void *arg, qref r, enum sched_action a);
	/* A message's failed recipients need a report (bounce.c
	 * bounce_start); warn: none failed, it is late. */
	void (*bounce)(void *arg, qref r, bool warn);
};

struct scheduler {
	struct queue_index *q;	/* the index it schedules (not its own) */
	const struct sched_hooks *hooks;
	bool stopping;		/* sched_stop: nothing more is handed out */
	/* the ready lanes, and reports waiting while unchecked > 0 */
	struct { qref head, tail; } lane[NLANES + 1];
	size_t bouncing;	/* messages in QE_BOUNCING */
	size_t unchecked;	/* of those, not yet checked by bounce.c: reports wait */
	bool walking;		/* the start-up walk runs: it may find more */
	unsigned turn;		/* the lane to take from next */
	qref *heap;		/* deferred entries by next_try */
	uint32_t nheap, heap_cap;
	uv_timer_t timer;
	size_t inflight;	/* handed out, not yet reported back */
};

struct delivery_result;	/* pool.h */

/* Its timer on loop; hooks must outlive it. */
void sched_init(struct scheduler *s, uv_loop_t *loop, struct queue_index *q, const struct sched_hooks *hooks);
/* A message just committed. */
void sched_new(struct scheduler *s, qref r);
/* A message the start-up walk found (its next_try and tries set). */
void sched_found(struct scheduler *s, qref r);
void sched_result(struct scheduler *s, const struct delivery_result *r);
void sched_dispatch(struct scheduler *s);
/* Every deferred message is due now (SIGUSR1), and every relay held
 * back or down is tried at once (pool_flush_relays); how many were
 * waiting.  Their files' names keep the old schedule. */
size_t sched_flush_all(struct scheduler *s);
/* The same, but relays keep their holds and backoffs (a relay that
 * waited for an OAuth2 login got its token: relay_state.c). */
size_t sched_due_now(struct scheduler *s);
/* An operator action on one message.  Hold and delete take it out of
 * its lane or the heap (a job the pool has not started is taken back);
 * release and flush make it due now.  For SA_NOW the caller then does
 * the file's part: rename for hold and release, unlink for delete, and
 * calls sched_released() or sched_deleted() once it is done. */
enum sched_answer sched_act(struct scheduler *s, qref r, enum sched_action a);
void sched_released(struct scheduler *s, qref r);
/* The report about a QE_BOUNCING message is queued and its recipients
 * marked failed: it waits for its next try if some are pending (keep),
 * else it has left the queue. */
void sched_bounced(struct scheduler *s, qref r, bool keep);
/* bounce.c has checked a QE_BOUNCING message (is its report queued
 * from before a crash?): while any is unchecked, no report is sent. */
void sched_bounce_checked(struct scheduler *s);
/* The start-up walk begins (on) or ends: reports wait meanwhile. */
void sched_walking(struct scheduler *s, bool on);
void sched_deleted(struct scheduler *s, qref r);
/* The name of the message's file now (queue.c FILE NAME). */
void sched_file_name(struct scheduler *s, qref r, char name[QNAME_MAX]);
/* The daemon stops: nothing more is handed out, the timer stops. */
void sched_stop(struct scheduler *s);
/* The timer's handle is closed (after sched_stop). */
void sched_close(struct scheduler *s);
/* After the loop: the memory of the heap (the entries belong to the index). */
void sched_free(struct scheduler *s);

#endif
