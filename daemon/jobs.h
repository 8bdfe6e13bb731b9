/*
 * jobs.h - the delivery pool's jobs and their queues (jobs.c): a job is
 * a message handed to the pool, with its route once a worker read its
 * sender; each relay's upstream (pool_int.h) has a queue of them, and
 * the pool a list of results for the loop.  Any thread; every queue
 * and the result list are guarded by pool.mu.
 */
#ifndef OUTBOXD_JOBS_H
#define OUTBOXD_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/queue.h"

struct pool;
struct upstream;
struct worker;
struct delivery_result;

struct job {
	char id[QID_LEN + 1];
	unsigned tries;		/* attempts before this one */
	uint32_t next_try;	/* as the file's name says (qname_format) */
	struct config *conf;	/* the configuration when it was handed out */
	/* Its route (relay.h relay_route, indexes into conf->relays), set
	 * by the first worker that reads its sender, and the relay it is
	 * at: a connection-level failure moves it to the next. */
	bool routed;
	uint8_t nroute, hop;
	uint8_t route[RELAYS_MAX];
	struct job *next;
};

/* The relay a job is at (routed). */
static inline const struct relay *job_relay(const struct job *j)
{
	return j->conf->relays[j->route[j->hop]];
}

/* The next job of w's relay, waiting up to wait_s (-1: for ever); NULL
 * when the pool stops, the wait timed out (*timed_out), or the worker
 * is one too many for its relay (it leaves). */
struct job *pop_job(struct worker *w, int wait_s, bool *timed_out);
/* The same without waiting. */
struct job *try_pop_job(struct worker *w);
/* How many messages w's next batch may take: its share of what waits
 * for its relay, at most max. */
size_t batch_share(struct worker *w, size_t max);
void push_job(struct pool *p, struct upstream *up, struct job *j);
void push_job_locked(struct pool *p, struct upstream *up, struct job *j);
/* Back at the head of w's relay's queue (another worker may take it). */
void push_back_job(struct worker *w, struct job *j);
/* Unlink the job of id if it is still queued anywhere (pool_cancel). */
bool take_job(struct pool *p, const char *id);
void job_free(struct job *j);
/* A message's outcome, for the loop (pool_hooks.result). */
void post_result(struct pool *p, const struct delivery_result *r);

#endif
