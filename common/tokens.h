/*
 * tokens.h - OAuth2 access tokens for the relays, as outboxd and outbox
 * probe use them (SPEC "OAuth2").  A token is fetched by the helper
 * outbox-oauth2 (`token RELAY`: oauth2/oauth2.c, libcurl), run like a
 * password_command, so that outboxd itself never loads libcurl and its
 * TLS library (they would triple its idle memory); it is cached per
 * relay until OAUTH2_REFRESH_AHEAD_S before it expires, and renewed
 * when fresh is asked (AUTH refused the cached one).
 *
 * The helper answers one line, "ok SECONDS TOKEN", or "error TEXT";
 * lines "note TEXT" before it are logged (a rotated refresh token
 * stored, or not).  No token is ever logged.  Any thread.
 */
#ifndef OUTBOX_TOKENS_H
#define OUTBOX_TOKENS_H

#include <stdbool.h>

#include "relay.h"
#include "util.h"

#define OAUTH2_REFRESH_AHEAD_S 120	/* a cached token this close to expiry is renewed */

struct token_cache;
/* conf_path: the configuration the helper reads (outboxd's). */
struct token_cache *token_cache_new(const char *conf_path);
void token_cache_free(struct token_cache *c);
/* An access token for r (free with secret_free), or NULL with e. */
char *token_get(struct token_cache *c, const struct relay *r, bool fresh, struct err *e);
/* The smtp_client token hook (arg: the cache). */
char *token_hook(void *arg, const struct relay *r, bool fresh, struct err *e);

#endif
