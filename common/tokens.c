/*
 * tokens.c - the OAuth2 access token cache (tokens.h).
 */
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "auth.h"
#include "log.h"

#define HELPER_TIMEOUT_S 90

struct cached {
	struct cached *next;
	char *relay, *token_url, *client_id;	/* what it is for */
	char *token;
	double expires;		/* wall clock */
};

struct token_cache {
	uv_mutex_t mu;
	char *conf_path;
	struct cached *list;
};

struct token_cache *token_cache_new(const char *conf_path)
{
	struct token_cache *c = xcalloc(1, sizeof *c);
	uv_mutex_init(&c->mu);
	c->conf_path = xstrdup(conf_path ? conf_path : "");
	return c;
}

void token_cache_free(struct token_cache *c)
{
	if (!c)
		return;
	for (struct cached *t = c->list, *n; t; t = n) {
		n = t->next;
		free(t->relay);
		free(t->token_url);
		free(t->client_id);
		secret_free(t->token);
		free(t);
	}
	uv_mutex_destroy(&c->mu);
	free(c->conf_path);
	free(c);
}

static struct cached *entry_for(struct token_cache *c, const struct relay *r)
{
	for (struct cached *t = c->list; t; t = t->next)
		if (strcmp(t->relay, r->name) == 0 && strcmp(t->token_url, r->oauth2_token_url) == 0
		    && strcmp(t->client_id, r->oauth2_client_id) == 0)
			return t;
	struct cached *t = xcalloc(1, sizeof *t);
	t->relay = xstrdup(r->name);
	t->token_url = xstrdup(r->oauth2_token_url);
	t->client_id = xstrdup(r->oauth2_client_id);
	t->next = c->list;
	c->list = t;
	return t;
}

/* The helper's answer into t: its notes logged, its token kept. */
static int take_answer(const struct relay *r, struct cached *t, char *out, struct err *e)
{
	int rc = err_set(e, "outbox-oauth2 gave no answer");
	for (char *line = out, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strncmp(line, "note ", 5) == 0) {
			log_info("relay %s: %s", relay_label(r), line + 5);
		} else if (strncmp(line, "error ", 6) == 0) {
			rc = err_set(e, "%.*s", (int)sizeof e->msg - 1, line + 6);
		} else if (strncmp(line, "ok ", 3) == 0) {
			char *end;
			long secs = strtol(line + 3, &end, 10);
			if (end == line + 3 || *end != ' ' || !end[1])
				return err_set(e, "outbox-oauth2 gave a malformed answer");
			secret_free(t->token);
			t->token = xstrdup(end + 1);
			t->expires = now_real() + (double)(secs > 0 ? secs : 3600);
			log_info("relay %s: OAuth2 access token obtained, valid for %ld s", relay_label(r),
				 secs > 0 ? secs : 3600);
			rc = 0;
		}
	}
	return rc;
}

static int fetch(struct token_cache *c, const struct relay *r, struct cached *t, struct err *e)
{
	char path[4200];
	if (helper_path("oauth2", path, sizeof path) < 0)
		return err_set(e, "cannot find the outbox-oauth2 helper");
	char *argv[] = { path, "-C", c->conf_path, "token", *r->name ? r->name : "default", NULL };
	char *out = NULL;
	if (run_capture(argv, HELPER_TIMEOUT_S, &out, e) < 0)
		return -1;
	int rc = take_answer(r, t, out, e);
	secret_free(out);
	return rc;
}

char *token_get(struct token_cache *c, const struct relay *r, bool fresh, struct err *e)
{
	char *out = NULL;
	uv_mutex_lock(&c->mu);
	struct cached *t = entry_for(c, r);
	bool usable = t->token && !fresh && t->expires - now_real() > OAUTH2_REFRESH_AHEAD_S;
	if (usable || fetch(c, r, t, e) == 0)
		out = xstrdup(t->token);
	uv_mutex_unlock(&c->mu);
	return out;
}

char *token_hook(void *arg, const struct relay *r, bool fresh, struct err *e)
{
	return token_get(arg, r, fresh, e);
}
