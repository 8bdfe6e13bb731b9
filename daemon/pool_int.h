/*
 * pool_int.h - private to the delivery pool's files: the pool itself,
 * each relay's upstream (its workers, queue and health) and each
 * worker.  delivery.c owns the pool and its loop side, worker.c the
 * worker threads, jobs.c the queues, upstreams.c routing, failover and
 * admission, relay_state.c what is told about the relays.  The engine
 * (transfer.c) and the attempt (attempt.c) do not see this.
 *
 * Threads: a struct worker belongs to its thread; struct pool and
 * struct upstream fields are guarded by pool.mu except conf, loop,
 * hooks and watches (loop thread only).
 */
#ifndef OUTBOXD_POOL_INT_H
#define OUTBOXD_POOL_INT_H

#include <uv.h>

#include "../common/config.h"
#include "../common/queue.h"
#include "../common/smtp_client.h"
#include "pool.h"
#include "rate.h"

struct job;
struct transfer;
struct token_watch;

/* One relay's workers, its queue of jobs and its health (upstreams.c).
 * Known by the relay's name across reloads. */
struct upstream {
	struct upstream *next;
	char name[RELAY_NAME_MAX + 1];	/* "" for [relay] */
	struct config *conf;	/* the newest configuration with this relay (a reference) */
	const struct relay *relay;	/* in conf */
	struct job *head, *tail;
	size_t queued;
	uv_cond_t cv;		/* its workers wait here */
	size_t nworkers;	/* running */
	size_t want;		/* its relay's workers; 0 once removed: the rest leave */
	bool removed;		/* not in the configuration any more */
	double down_until;	/* wall clock: after a connection-level failure */
	char down_why[400];	/* that failure (without its hint), or the quota reply */
	unsigned failures;	/* such failures in a row: the backoff grows */
	struct worker *trying;	/* its trial session (upstreams.c), or NULL */
	uv_cond_t tried;	/* the trial's end: the workers waiting for it */
	double proven_at;	/* wall clock: a session last opened (its login worked) */
	/* OAuth2: the token endpoint refused the refresh token (tokens.h) */
	bool login_needed;
	double login_since;	/* wall clock */
	bool notified;		/* the postmaster was told (until it is up again) */
	bool notice_due;	/* ... and is to be, by the loop (upstreams_notices) */
	uint64_t sessions_opened;
	uint64_t sessions_failed[ST_LOCAL + 1];
	struct rate rate;	/* its max_rate */
	uint64_t rate_n, rate_per;	/* what rate is (to be) opened with */
	bool rate_stale;		/* they changed: the next worker to count a send
					 * opens the file (never the loop: upstreams.c) */
};

struct worker {
	struct pool *pool;
	struct upstream *up;	/* the relay it works for */
	struct worker *next;	/* all of the pool's */
	bool exited;		/* its thread has returned (pool.mu): join it */
	bool retired;		/* left its relay's count as one too many (jobs.c pop_job) */
	uv_thread_t thread;
	int idx;
	struct smtp_client smtp;
	struct config *session_conf;	/* the config the open session was made with */
	struct tls_client tls;
	struct config *tls_conf;
	unsigned rnd_state;
	double last_used;	/* monotonic: end of the last delivery */
	struct transfer *xfer;	/* the session's transaction engine */
	size_t share;		/* the BDAT batch in the making may hold this many (batch_share) */
	unsigned since_ripen;	/* messages since this worker last ripened spares */
	bool login_needed;	/* the session failed for a dead refresh token (tokens.h) */
	bool login_told;	/* ... of which the postmaster was told, before a restart too */
	double login_since;	/* ... refused then (wall clock) */
	bool login_noticed;	/* upstream_failed decided the postmaster's notice */
};

struct pool {
	const struct pool_hooks *hooks;	/* loop thread */
	uv_loop_t *loop;
	struct config *conf;	/* loop thread: the newest (a reference), for new jobs */
	const struct store *store;
	struct token_cache *tokens;	/* the relays' OAuth2 tokens (common/tokens.h) */
	uv_mutex_t mu;
	struct upstream *ups;	/* one per relay, and removed ones until their workers left */
	struct upstream *entry;	/* new jobs wait here: the first relay that takes any sender */
	size_t queued;		/* jobs in all queues */
	struct delivery_result *results;
	bool stopping;
	bool ripening;		/* a worker runs store_ripen_spares() */
	size_t nworkers;	/* workers wanted, all relays */
	size_t running;		/* threads running */
	struct worker *workers;
	int next_idx;
	uv_async_t async;
	struct token_watch *watches;	/* loop thread: the refresh token files' (relay_state.c) */
};

/* worker.c: start one worker for up (pool.mu held). */
int worker_start(struct pool *p, struct upstream *up);

/* A uniform number in [0, 1) from w's own generator. */
static inline double worker_rnd(struct worker *w)
{
	return (double)rand_r(&w->rnd_state) / ((double)RAND_MAX + 1.0);
}

#endif
