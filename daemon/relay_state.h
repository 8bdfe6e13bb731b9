/*
 * relay_state.h - what the pool tells about its relays (relay_state.c;
 * pool.h pool_relay_states), and the loop side of "login needed": the
 * postmaster's notice and the watch on the refresh token files.  Loop
 * thread.
 */
#ifndef OUTBOXD_RELAY_STATE_H
#define OUTBOXD_RELAY_STATE_H

#include <stdbool.h>

struct config;
struct pool;

/* The relays whose postmaster notice is due (login needed), each
 * handed to hooks.login_notice (the relay's label, the command to run,
 * the endpoint's answer) once, outside the lock. */
void upstreams_notices(struct pool *p);
/* Watch the refresh token file of each relay of c that has one (again,
 * after a reload), or stop; a change ends a relay's wait for a login
 * and makes its mail due (pool_hooks.due_now). */
void token_watch_configure(struct pool *p, const struct config *c);
void token_watch_close(struct pool *p);
/* Relay name's refresh token file changed: when its relay waits for a
 * login, its backoff ends (one trial session: a login).  True if so
 * (the caller makes its mail due). */
bool upstreams_token_changed(struct pool *p, const char *name);

#endif
