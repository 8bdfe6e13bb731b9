/*
 * oauth2.h - built-in OAuth2 for relays (SPEC "OAuth2"): access tokens
 * from a refresh token (RFC 6749 section 6), and the device
 * authorization grant (RFC 8628) that `outbox oauth2 login` uses to get
 * the first refresh token.
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

/* A refresh_token grant for r: the access token (free with
 * secret_free) and its lifetime; a rotated refresh token is stored, and
 * what happened to it is a line in notes.  0, or -1 with e (which
 * quotes only the endpoint's error and error_description). */
int oauth2_refresh(const struct relay *r, char **token, long *seconds, struct buf *notes, struct err *e);

/* The device flow for r: ask for a code, print where to enter it to out,
 * poll until the user approves (or refuses, or the code expires), then
 * store the refresh token (oauth2_store_token).  0 or -1 with e. */
int oauth2_device_login(const struct relay *r, FILE *out, struct err *e);

/* The endpoints and scope a relay uses: its own, else the known ones for
 * Google's and Microsoft's token URLs, else "" (out has n octets). */
const char *oauth2_device_url(const struct relay *r, char *out, size_t n);
const char *oauth2_scope(const struct relay *r);

/* Replace path with text + "\n": tmp, fsync, rename, directory fsync.
 * The new file takes the replaced one's owner and group (as far as this
 * process may give them: all of it as root, else the group when it is
 * one of the writer's) and its mode, less anything for others; when
 * there was none (or a link), it is the writer's, mode 0600. */
int oauth2_store_token(const char *path, const char *text, struct err *e);

#endif
