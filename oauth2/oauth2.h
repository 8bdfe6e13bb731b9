/*
 * oauth2.h - built-in OAuth2 for relays (SPEC "OAuth2"): access tokens
 * from a refresh token (RFC 6749 section 6) or, for Microsoft 365
 * app-only access, from the client's secret alone (client_credentials,
 * section 4.4); and the two ways `outbox oauth2 login` gets the first
 * refresh token: the authorization code grant with PKCE and a loopback
 * redirect (RFC 7636, RFC 8252; browser.c), which Google wants, and the
 * device authorization grant (RFC 8628; device.c).  What is known of
 * Google's and Microsoft's endpoints is known.c, HTTPS http.c.
 *
 * HTTPS through libcurl, the endpoint's certificate always verified
 * (against the relay's ca_file when set, else the system bundle), https
 * only, redirects not followed; JSON through jansson.  Linked into
 * the outbox-oauth2 helper only: the
 * sendmail command never loads libcurl, and outboxd runs the helper for
 * its tokens (common/tokens.h).
 *
 * Invariants: no token or secret is ever logged or put in an error
 * message (errors quote only the endpoint's "error" and
 * "error_description", escaped); a token that is not 1*VSCHAR (RFC 6749
 * appendix A: printable ASCII) is refused, never passed on; a rotated
 * refresh token replaces the file with tmp, fsync, rename and a
 * directory fsync, and the new file keeps the old one's owner, group
 * and mode (so that a token rotated by whoever runs this stays
 * outboxd's to read); a new one is the writer's, 0600.
 */
#ifndef OUTBOX_OAUTH2_H
#define OUTBOX_OAUTH2_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "../common/relay.h"
#include "../common/util.h"

enum oauth2_login { OAUTH2_LOGIN_BROWSER, OAUTH2_LOGIN_DEVICE };

/* An access token for r by its oauth2_grant (free it with secret_free)
 * and its lifetime; what happened to a rotated refresh token is a line
 * in notes.  0, or -1 with e (which quotes only the endpoint's error and
 * error_description). */
int oauth2_access_token(const struct relay *r, char **token, long *seconds, struct buf *notes, struct err *e);
/* The two grants: refresh_token (a rotated refresh token is stored) ... */
int oauth2_refresh(const struct relay *r, char **token, long *seconds, struct buf *notes, struct err *e);
/* ... and client_credentials (r's client secret, no refresh token). */
int oauth2_client_credentials(const struct relay *r, char **token, long *seconds, struct err *e);

/* The device flow for r: ask for a code, print where to enter it to out,
 * poll until the user approves (or refuses, or the code expires), then
 * store the refresh token (oauth2_store_token).  0 or -1 with e; an
 * invalid_scope answer (Google's for Gmail) says to use --browser. */
int oauth2_device_login(const struct relay *r, FILE *out, struct err *e);

/* The browser login for r: listen on 127.0.0.1, print the authorization
 * URL to out, take the redirect from the browser or a pasted address
 * from in (a descriptor; -1 none), whichever comes first, check its
 * state, exchange the code with the PKCE verifier, store the refresh
 * token.  0 or -1 with e. */
int oauth2_browser_login(const struct relay *r, int in, FILE *out, struct err *e);

/* The endpoints and scope a relay uses: its own, else the known ones for
 * Google's and Microsoft's (known.c says where each comes from), else ""
 * (out has n octets). */
const char *oauth2_device_url(const struct relay *r, char *out, size_t n);
const char *oauth2_auth_url(const struct relay *r, char *out, size_t n);
const char *oauth2_scope(const struct relay *r);
/* Is r's provider Google (by its token URL, authorization URL or scope)? */
bool oauth2_is_google(const struct relay *r);
/* The login r's provider allows: Google the browser, Microsoft the
 * device; another the browser when it has an authorization URL. */
enum oauth2_login oauth2_login_default(const struct relay *r);

/* The end of a login: refresh_token stored (oauth2_store_token) and
 * freed, where it is said on out.  0 or -1 with e. */
int oauth2_login_done(const struct relay *r, char *refresh_token, FILE *out, struct err *e);

/* Replace path with text + "\n": tmp, fsync, rename, directory fsync.
 * The new file takes the replaced one's owner and group (as far as this
 * process may give them: all of it as root, else the group when it is
 * one of the writer's) and its mode, less anything for others; when
 * there was none (or a link), it is the writer's, mode 0600. */
int oauth2_store_token(const char *path, const char *text, struct err *e);

#endif
