/*
 * upstreams.h - a worker group and job queue per relay (upstreams.c):
 * routing by sender, failover, admission (holds, backoff, max_rate,
 * the trial session), the relays' configuration across reloads.
 * Worker threads but for what says "loop thread"; fields under pool.mu.
 */
#ifndef OUTBOXD_UPSTREAMS_H
#define OUTBOXD_UPSTREAMS_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct job;
struct pool;
struct upstream;
struct worker;

/* Loop thread: make the upstreams match c's relays (start, reload):
 * jobs waiting anywhere go back to the entry, unrouted, under c; each
 * upstream's `want` says how many workers it is to have (the caller
 * starts them). */
void upstreams_configure(struct pool *p, struct config *c);
/* Where j goes: routes it from its sender if it is not yet; NULL when
 * it stays with w.  A job for elsewhere is the caller's to hand on with
 * push_job. */
struct upstream *upstream_for(struct worker *w, struct job *j, const char *sender);
/* w's session to its relay failed before any transaction: the relay
 * is down for a while; true when j moved on to its next relay (the
 * caller lets go of it), false when none is left (it is deferred). */
bool upstream_failed(struct worker *w, struct job *j);
void upstream_up(struct worker *w);
/* May j go at w's relay now?  ADMIT_MOVED: it went on to the next relay
 * of its route (the caller lets go of it); ADMIT_LATER: not before
 * *until (held back, down, or over max_rate), why says so.  A slot of
 * max_rate is taken when it may go; a wait of up to RATE_WAIT_S is
 * slept here. */
enum admit { ADMIT_GO, ADMIT_MOVED, ADMIT_LATER };
#define RATE_WAIT_S 2.0
enum admit upstream_admit(struct worker *w, struct job *j, double *until, char *why, size_t n);
/* The same for the next message of a run on an open session, without
 * waiting or moving: true (a slot taken) or false. */
bool upstream_admit_now(struct worker *w);
/* A quota or rate reply: the relay takes no message for hold seconds. */
void upstream_hold(struct worker *w, unsigned hold, const char *reply);
/* Loop thread: free the removed upstreams whose workers all left. */
void upstreams_reap(struct pool *p);
void upstreams_free(struct pool *p);

#endif
