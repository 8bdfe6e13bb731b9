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
 *
 * A dead refresh token (SPEC "OAuth2": the endpoint answered
 * invalid_grant -- revoked, a password changed, Google's 7-day limit
 * for apps in "testing") is one problem, not one per message: the relay
 * is "login needed", and the endpoint is not asked again until the
 * refresh token file changes (its identity: device, inode, mtime, size,
 * as stat(2) sees it, compared on the caller's thread, never the loop)
 * or the hold (token_cache_set_hold: [queue] retry_max) has passed.
 * The helper's answer is "error URL: invalid_grant[: description]"
 * (oauth2/oauth2.c answer()), URL the relay's oauth2_token_url: that
 * prefix, and nothing the endpoint could put in a description, says so.
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
/* Is r's refresh token dead (invalid_grant) and its file unchanged since,
 * within the hold?  Then why (n octets) says what the endpoint said and
 * the command to run; no endpoint is asked.  Stats the file: not on the
 * loop thread. */
bool token_login_needed(struct token_cache *c, const struct relay *r, char *why, size_t n);
/* Remember dead refresh tokens in dir (outboxd: SPOOL/rate), so that a
 * restart neither asks the endpoint with a token it refused nor tells the
 * postmaster again (NULL: in memory only, as outbox probe keeps them). */
void token_cache_set_state_dir(struct token_cache *c, const char *dir);
/* Was the postmaster told of r's dead refresh token (token_login_tell),
 * before a restart too, and not recovered since?  False while it is not
 * dead.  *since: when it was refused (0: it is not dead). */
bool token_login_told(struct token_cache *c, const struct relay *r, double *since);
/* Remember that the postmaster was told of r's dead token (until a token
 * is had again); call it once the notice is decided. */
void token_login_tell(struct token_cache *c, const struct relay *r);
/* How long a dead refresh token keeps the endpoint unasked when its file
 * does not change ([queue] retry_max), in seconds. */
void token_cache_set_hold(struct token_cache *c, double seconds);
/* The command that gives r a new refresh token, into out (n octets). */
const char *token_login_command(const struct relay *r, char *out, size_t n);
/* The smtp_client token hook (arg: the cache). */
char *token_hook(void *arg, const struct relay *r, bool fresh, struct err *e);

#endif
