/*
 * pool.h - the delivery worker pool (delivery.c), as the rest of the
 * daemon sees it: start it, hand it a message, stop it.  Its insides
 * are pool_int.h (the pool, its upstreams and workers), jobs.h,
 * upstreams.h and relay_state.h, private to the pool's files; the
 * transaction engine (transfer.h) and the attempt (attempt.h) are
 * values the workers use.  Loop thread only.
 */
#ifndef OUTBOXD_POOL_H
#define OUTBOXD_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../common/queue.h"
#include "../common/smtp_client.h"

struct config;
struct err;
struct pool;
struct store;
struct token_cache;

/* A worker's outcome for one message. */
struct delivery_result {
	char id[QID_LEN + 1];
	bool done;		/* nothing pending: the message left the queue */
	bool bouncing;		/* recipients failed: a report is to be queued (bounce.c) */
	bool warn;		/* waiting past [queue] delay_warning: a "still trying" report */
	double next_try;	/* wall-clock time, when not done */
	uint16_t tries;		/* attempts so far, when not done */
	uint16_t sent, deferred, bounced;	/* recipients, in this attempt */
	char last_reply[200];	/* the upstream's (or the local) reason, printable; "" if none */
	char relay[64];		/* relay_label() of the relay it was tried at; "" if none */
	double delay;		/* seconds since the message's arrival, at the attempt's end */
	struct delivery_result *next;
};

/* What the pool tells whoever hands it work (the scheduler), on the
 * loop thread, each with arg: each outcome, then once the outcomes of a
 * turn are told, that workers may take more; that the waiting mail is
 * due now (a relay that waited for a login has one: relay_state.c);
 * that a relay needs a new login and the postmaster is to be told
 * (once per failure: relay_notice.h); that the last worker has left
 * after pool_stop. */
struct pool_hooks {
	void *arg;
	void (*result)(void *arg, const struct delivery_result *r);
	void (*ready)(void *arg);
	void (*due_now)(void *arg);
	void (*login_notice)(void *arg, const char *relay, const char *command, const char *why);
	void (*stopped)(void *arg);
};

/* What the pool works with, besides the configuration: its loop, the
 * spool the workers read and mark, the relays' OAuth2 tokens.  Each
 * must outlive the pool. */
struct pool_env {
	uv_loop_t *loop;
	const struct store *store;
	struct token_cache *tokens;
};

/* *pp is the pool, even when it fails (-1 with e: no worker started). */
int pool_start(struct pool **pp, const struct pool_env *env, struct config *conf,
	       const struct pool_hooks *hooks, struct err *e);
/* The configuration changed (SIGHUP): relays added, removed or changed,
 * their workers started or retired; waiting messages are routed again;
 * new jobs take conf. */
void pool_reconfigure(struct pool *p, struct config *conf);
/* The number of workers wanted, all relays (0 for no pool). */
size_t pool_size(struct pool *p);
/* Hand one message to the workers: its ID, and the tries and next try
 * its file's name says (qname_format). */
void pool_submit(struct pool *p, const char *id, unsigned tries, uint32_t next_try);
/* Workers finish the message in hand and exit; hooks.stopped runs
 * when the last one has. */
void pool_stop(struct pool *p);
bool pool_stopped(struct pool *p);
/* Upstream sessions the workers of each relay opened, and those that
 * failed by the step that failed (smtp_client.h enum smtp_stage); how
 * many relays were filled in (at most max).  Loop thread. */
struct pool_sessions {
	char relay[64];		/* relay_label() */
	uint64_t opened;
	uint64_t failed[ST_LOCAL + 1];
};
size_t pool_sessions(struct pool *p, struct pool_sessions *out, size_t max);
/* An operator's flush (outbox flush, sendmail -q, SIGUSR1): every relay
 * held back (a quota or rate reply) or down (its backoff after failed
 * sessions) is tried at once, and the log says so, naming uid (-1: a
 * signal).  A relay that was down gets one trial session first
 * (upstreams.c): one new login, not one per waiting message. */
void pool_flush_relays(struct pool *p, long uid);
/* Each relay's state, for outbox status and the metrics (relay_state.c):
 * how many were filled in (at most max).  Loop thread. */
enum relay_condition { RELAY_OK, RELAY_DOWN, RELAY_HELD, RELAY_LOGIN_NEEDED };
struct relay_state {
	char relay[64];		/* relay_label() */
	char command[80];	/* RELAY_LOGIN_NEEDED: what to run, "outbox oauth2 login NAME" */
	enum relay_condition state;
	double until;		/* wall clock: down or held until (0: the next message tries it) */
	double since;		/* RELAY_LOGIN_NEEDED: since when */
	unsigned failures;	/* failed sessions in a row */
	char why[400];		/* the reply or reason, printable: for admins only */
	char hint[160];		/* what to do about that reply (smtp_auth_hint), or "" */
};
size_t pool_relay_states(struct pool *p, struct relay_state *out, size_t max);
/* "ok", "down", "held", "login_needed" (the metric's label). */
const char *relay_condition_name(enum relay_condition c);
/* Take back the job of id if no worker has started it: true if so. */
bool pool_cancel(struct pool *p, const char *id);
/* After the loop (p may be NULL). */
void pool_free(struct pool *p);
void pool_close_handle(struct pool *p);

#endif
