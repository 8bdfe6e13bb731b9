/*
 * relay_state.c - what the pool tells about its relays (relay_state.h,
 * pool.h pool_relay_states: ok, down, held back, login needed), and the loop
 * side of "login needed" (SPEC "OAuth2"): the postmaster's one notice,
 * and the watch on each refresh token file's directory that ends the
 * wait as soon as a new login wrote the file.
 *
 * The watch (uv_fs_event on the directory: the file itself is replaced
 * by a rename, so a watch on its inode would go deaf) only ends the
 * relay's backoff and makes the deferred mail due; whether the file did
 * change is decided by the token cache on a worker thread (tokens.h:
 * its identity against the one refused), so an event for something else
 * costs one stat, no request to the endpoint.  Without a watch (the
 * directory cannot be watched) the relay's trial at each backoff notices
 * the change instead, later.  Loop thread, but for the functions that
 * say otherwise; upstream fields under pool.mu.
 */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/tokens.h"
#include "pool_int.h"
#include "relay_state.h"

struct token_watch {
	uv_fs_event_t ev;
	struct pool *pool;
	char relay[RELAY_NAME_MAX + 1];	/* the upstream's name ("" for [relay]) */
	char *base;			/* the file's name in the directory watched */
	struct token_watch *next;
};

const char *relay_condition_name(enum relay_condition c)
{
	static const char *const n[] = { [RELAY_OK] = "ok", [RELAY_DOWN] = "down", [RELAY_HELD] = "held",
					 [RELAY_LOGIN_NEEDED] = "login_needed" };
	return n[c];
}

static enum relay_condition condition_locked(const struct upstream *up, double now)
{
	if (up->login_needed)
		return RELAY_LOGIN_NEEDED;
	if (up->failures > 0)
		return RELAY_DOWN;
	return up->down_until > now ? RELAY_HELD : RELAY_OK;
}

size_t pool_relay_states(struct pool *p, struct relay_state *out, size_t max)
{
	size_t n = 0;
	if (!p)
		return 0;
	double now = now_real();
	uv_mutex_lock(&p->mu);
	for (struct upstream *up = p->ups; up && n < max; up = up->next) {
		if (up->removed)
			continue;
		struct relay_state *s = &out[n++];
		memset(s, 0, sizeof *s);
		snprintf(s->relay, sizeof s->relay, "%s", relay_label(up->relay));
		s->state = condition_locked(up, now);
		s->until = up->down_until > now ? up->down_until : 0;
		s->since = up->login_since;
		s->failures = up->failures;
		if (s->state == RELAY_OK)
			continue;
		snprintf(s->why, sizeof s->why, "%s", up->down_why);
		if (s->state == RELAY_LOGIN_NEEDED)
			token_login_command(up->relay, s->command, sizeof s->command);
		const char *hint = s->state == RELAY_DOWN ? smtp_auth_hint(up->down_why) : NULL;
		snprintf(s->hint, sizeof s->hint, "%s", hint ? hint : "");
	}
	uv_mutex_unlock(&p->mu);
	return n;
}

void upstreams_notices(struct pool *p)
{
	for (;;) {
		char relay[64], command[80], why[400];
		bool due = false;
		uv_mutex_lock(&p->mu);
		for (struct upstream *up = p->ups; up && !due; up = up->next) {
			if (!up->notice_due)
				continue;
			up->notice_due = false;
			due = true;
			snprintf(relay, sizeof relay, "%s", relay_label(up->relay));
			token_login_command(up->relay, command, sizeof command);
			snprintf(why, sizeof why, "%s", up->down_why);
		}
		uv_mutex_unlock(&p->mu);
		if (!due)
			return;
		p->hooks->login_notice(p->hooks->arg, relay, command, why);
	}
}

bool upstreams_token_changed(struct pool *p, const char *name)
{
	bool ends = false;
	char label[64] = "";
	uv_mutex_lock(&p->mu);
	for (struct upstream *up = p->ups; up; up = up->next) {
		if (up->removed || strcmp(up->name, name) != 0 || !up->login_needed || up->down_until <= now_real())
			continue;
		up->down_until = 0;	/* its failures stay: one trial session */
		ends = true;
		snprintf(label, sizeof label, "%s", relay_label(up->relay));
	}
	uv_mutex_unlock(&p->mu);
	if (ends)
		log_notice("relay %s: its refresh token file changed: tried again now", label);
	return ends;
}

/* ---- the watch ---- */

static void on_token_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct token_watch *tw = h->data;
	(void)events;
	if (status < 0 || (filename && strcmp(filename, tw->base) != 0))
		return;
	if (upstreams_token_changed(tw->pool, tw->relay))
		tw->pool->hooks->due_now(tw->pool->hooks->arg);	/* (the scheduler's) */
}

static void on_watch_closed(uv_handle_t *h)
{
	struct token_watch *tw = h->data;
	free(tw->base);
	free(tw);
}

void token_watch_close(struct pool *p)
{
	for (struct token_watch *tw = p->watches, *next; tw; tw = next) {
		next = tw->next;
		uv_close((uv_handle_t *)&tw->ev, on_watch_closed);
	}
	p->watches = NULL;
}

static void watch_one(struct pool *p, const struct relay *r)
{
	char *dir = xstrdup(r->oauth2_refresh_token_file), *base = xstrdup(r->oauth2_refresh_token_file);
	struct token_watch *tw = xcalloc(1, sizeof *tw);
	tw->pool = p;
	snprintf(tw->relay, sizeof tw->relay, "%s", r->name);
	tw->base = xstrdup(basename(base));
	uv_fs_event_init(p->loop, &tw->ev);
	tw->ev.data = tw;
	const char *where = dirname(dir);
	int rc = uv_fs_event_start(&tw->ev, on_token_event, where, 0);
	if (rc < 0)
		log_warn("relay %s: cannot watch %s (%s): a new OAuth2 login is noticed at the relay's next try",
			 relay_label(r), where, uv_strerror(rc));
	tw->next = p->watches;
	p->watches = tw;
	free(dir);
	free(base);
}

void token_watch_configure(struct pool *p, const struct config *c)
{
	token_watch_close(p);
	for (size_t i = 0; i < c->nrelays; i++)
		if (*c->relays[i]->oauth2_token_url && *c->relays[i]->oauth2_refresh_token_file)
			watch_one(p, c->relays[i]);
}
