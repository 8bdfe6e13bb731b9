/*
 * http.h - what every OAuth2 grant of the helper shares (the files of oauth2/
 * only, not a public interface): an HTTPS POST of a form to an endpoint,
 * the endpoint's JSON answer or its error, the client's credentials in
 * a request, and the RFC 6749 token syntax.
 *
 * Invariants: HTTPS only, the certificate always verified (the relay's
 * ca_file, else the system bundle), no redirect followed, an answer
 * read to BODY_MAX at most; a form holding a secret is wiped by
 * form_free; an error quotes the endpoint's "error" and
 * "error_description" only, escaped, never a token or anything else
 * it said.
 */
#ifndef OUTBOX_OAUTH2_HTTP_H
#define OUTBOX_OAUTH2_HTTP_H

#include <jansson.h>
#include <stdbool.h>

#include "../common/relay.h"
#include "../common/util.h"

/* POST form to url, verified as r says: the HTTP status and the body. */
int http_post(const struct relay *r, const char *url, const char *form, long *status, struct buf *body,
	      struct err *e);

/* Add key=value to f, the value percent-escaped. */
void form_add(struct buf *f, const char *key, const char *value);
/* Wipe and free f (a form or an answer: either may hold a secret). */
void form_free(struct buf *f);
/* client_id, and client_secret when r has a secret file: 0 or -1 with e. */
int form_add_client(struct buf *form, const struct relay *r, struct err *e);

/* The endpoint's JSON object when status is 200, else NULL with e
 * naming its "error" and "error_description" (escaped); the "error"
 * code is copied to code (n octets; "" without one) when code is not
 * NULL. */
json_t *oauth2_answer(const char *url, long status, const struct buf *body, char *code, size_t n,
		      struct err *e);

/* form, with r's client added, POSTed to r's token endpoint: its
 * answer (oauth2_answer), or NULL with e; form and answer wiped. */
json_t *token_request(const struct relay *r, struct buf *form, struct err *e);

/* The string member key of j, or NULL. */
const char *json_str(json_t *j, const char *key);

/* Is t a token as RFC 6749 appendix A allows (1*VSCHAR, %x20-7E)? */
bool token_ok(const char *t);

#endif
