/*
 * oauth2.h - built-in OAuth2 for relays (SPEC "OAuth2"): access tokens
 * from a refresh token (RFC 6749 section 6), and the device
 * authorization grant (RFC 8628) that `outbox oauth2 login` uses to get
 * the first refresh token.
 *
 * HTTPS through libcurl, the endpoint's certificate always verified
 * (against the relay's ca_file when set, else the system bundle), https
 * only, redirects not followed; JSON through jansson.  Linked into
 * outboxd and the outbox-oauth2 and outbox-probe helpers only: the
 * sendmail command never loads libcurl.
 *
 * Invariants: no token or secret is ever logged or put in an error
 * message (errors quote only the endpoint's "error" and
 * "error_description"); a rotated refresh token replaces the file with
 * tmp, fsync, rename and a directory fsync, mode 0600.
 */
#ifndef OUTBOX_OAUTH2_H
#define OUTBOX_OAUTH2_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "../common/relay.h"
#include "../common/util.h"

#define OAUTH2_REFRESH_AHEAD_S 120	/* a cached token this close to expiry is renewed */

/* Access tokens by relay, for any thread (a mutex; one fetch at a time). */
struct oauth2_cache;
struct oauth2_cache *oauth2_cache_new(void);
void oauth2_cache_free(struct oauth2_cache *c);
/* An access token for r (free with secret_free): the cached one unless
 * it is about to expire or fresh is set, else one from the token
 * endpoint; a rotated refresh token is stored.  NULL with e. */
char *oauth2_access_token(struct oauth2_cache *c, const struct relay *r, bool fresh, struct err *e);
/* The smtp_client token hook (arg: the cache). */
char *oauth2_token_hook(void *arg, const struct relay *r, bool fresh, struct err *e);

/* The device flow for r: ask for a code, print where to enter it to out,
 * poll until the user approves (or refuses, or the code expires), then
 * store the refresh token (owner uid/gid when not -1).  0 or -1 with e. */
int oauth2_device_login(const struct relay *r, FILE *out, uid_t uid, gid_t gid, struct err *e);

/* The endpoints and scope a relay uses: its own, else the known ones for
 * Google's and Microsoft's token URLs, else "" (out has n octets). */
const char *oauth2_device_url(const struct relay *r, char *out, size_t n);
const char *oauth2_scope(const struct relay *r);

/* Replace path with text + "\n": tmp, fsync, rename, directory fsync,
 * mode 0600, owned by uid/gid when not -1. */
int oauth2_store_token(const char *path, const char *text, uid_t uid, gid_t gid, struct err *e);

#endif
