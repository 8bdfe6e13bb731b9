/*
 * outboxd.h - the daemon's main context, struct daemon.  Each part of
 * the daemon shows what it offers in a header of its own: index.h,
 * scheduler.h, indexer.h, intake.h, pool.h, sessions.h, listen.h.  The
 * scheduler, the indexer, the intake and the pool do not see this
 * struct: each gets a handle of what it uses (struct scheduler with its
 * sched_hooks, struct indexer_env, struct intake_ctx, struct pool_env
 * with its pool_hooks), wired in outboxd.c; the views of the whole
 * (control, metrics, notify) and the ways in still take it.
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
#include "intake.h"
#include "scheduler.h"


struct session;
struct listener;
struct pool;
struct indexer;
struct pickup;
struct control;

/* Counted since the start, for outbox status (recipients). */
#define LATENCY_BUCKETS 12		/* metrics.c latency_le[] */
#define STATS_RELAYS 64	/* relays counted apart (removed ones too), at most */

struct relay_stats {
	char relay[64];			/* relay_label() */
	uint64_t sent, deferred, bounced;
};

struct daemon_stats {
	double started;			/* wall clock */
	uint64_t reloads;		/* configurations loaded by SIGHUP */
	struct intake_counts intake;	/* messages received, by way in */
	uint64_t sent, deferred, bounced;
	struct relay_stats by_relay[STATS_RELAYS];
	size_t nrelays;
	uint64_t latency[LATENCY_BUCKETS];	/* sent recipients by delay since arrival, cumulative */
	double latency_sum;
	char last_reply[200];		/* the last attempt's last reason */
	double last_at;			/* when; 0: no attempt yet */
	uint64_t oldest_id;		/* the oldest message when metrics.c last looked */
	double oldest_at;		/* when (monotonic); 0: never */
};

struct daemon {
	uv_loop_t *loop;
	struct config *conf;
	const char *conf_path;
	int verbose;
	struct store store;
	struct queue_index queue;
	struct scheduler sched;
	struct intake_ctx intake;	/* the one way into the queue (intake.h) */
	struct indexer *indexer;	/* the start-up walk (indexer.c) */
	struct pickup *pickup;		/* the pickup directory (pickup.c) */
	struct pool *pool;
	struct control *control;	/* the control socket's connections (control.h) */
	char hostname[256];
	struct listener *listeners;
	struct session *sessions;	/* doubly linked, all live sessions */
	size_t nsessions;
	size_t max_sessions;		/* MAX_SESSIONS, or fewer if file descriptors are short */
	uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
	uv_timer_t grace;		/* shutdown grace period */
	bool stopping;
	bool reloading;			/* a SIGHUP's configuration is being read */
	bool reload_again;		/* ... and another SIGHUP came meanwhile */
	struct daemon_stats stats;	/* for outbox status and metrics */
	struct metrics_file *metrics;	/* [log] metrics_file (metrics.c) */
	struct bounces *bounces;	/* reports gathered per address (bounce.c) */
	struct token_cache *tokens;	/* OAuth2 access tokens of the relays (common/tokens.c) */
	uv_timer_t notify_timer;	/* systemd STATUS= (notify.c) */
	bool notify_timer_on;
	/* Each part of the daemon calls it when its part of a stop is done
	 * (a session closed, the pool or the indexer or the pickup watcher
	 * finished): the daemon exits once all are (outboxd.c). */
	void (*part_stopped)(struct daemon *d);
};

#endif
