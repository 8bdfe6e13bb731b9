/*
 * browser.c - `outbox oauth2 login --browser` (oauth2.h): the
 * authorization code grant (RFC 6749 section 4.1) with PKCE (RFC 7636,
 * S256) and a loopback redirect (RFC 8252 section 7.3), as Google wants
 * of desktop and command-line programs
 * (developers.google.com/identity/protocols/oauth2/native-app) and as
 * Microsoft's identity platform takes it
 * (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
 *
 * Invariants: the redirect is taken only with this login's state (a
 * wrong or missing one fails the login: it is another login's, or
 * forged); the code is exchanged only with this login's verifier and
 * redirect_uri; the verifier, the code and the tokens are never printed;
 * what the provider or the browser sent is escaped before it reaches the
 * terminal, and the page the browser gets quotes none of it.
 */
#include "oauth2.h"

#include <curl/curl.h>
#include <string.h>

#include "../common/auth.h"
#include "../common/log.h"
#include "http.h"
#include "loopback.h"
#include "pkce.h"

#define LOGIN_WAIT_S 600	/* for the user to approve in the browser */
#define CODE_MAX 2048		/* an authorization code, at most */

struct login {
	char verifier[PKCE_VERIFIER_LEN + 1];
	char challenge[PKCE_CHALLENGE_LEN + 1];
	char state[32];
	char redirect_uri[64];
};

static void param(struct buf *url, const char *key, const char *value)
{
	char *v = curl_easy_escape(NULL, value, 0);
	buf_printf(url, "&%s=%s", key, v ? v : "");
	curl_free(v);
}

/* The authorization request (RFC 6749 4.1.1, RFC 7636 4.3) for r. */
static char *auth_request(const struct relay *r, const char *endpoint, const struct login *g)
{
	struct buf url;
	buf_init(&url);
	buf_printf(&url, "%s%cresponse_type=code", endpoint, strchr(endpoint, '?') ? '&' : '?');
	param(&url, "client_id", r->oauth2_client_id);
	param(&url, "redirect_uri", g->redirect_uri);
	if (*oauth2_scope(r))
		param(&url, "scope", oauth2_scope(r));
	param(&url, "state", g->state);
	param(&url, "code_challenge", g->challenge);
	param(&url, "code_challenge_method", "S256");
	if (oauth2_is_google(r)) {
		/* Google gives a refresh token only to access_type=offline, and
		 * again after the first consent only with prompt=consent
		 * (developers.google.com/identity/protocols/oauth2/native-app,
		 * "Step 2", access_type and prompt) */
		param(&url, "access_type", "offline");
		param(&url, "prompt", "consent");
	}
	if (*r->user)
		param(&url, "login_hint", r->user);
	return url.data;
}

/* The code exchanged at the token endpoint (RFC 6749 4.1.3, RFC 7636
 * 4.5): the refresh token, or NULL with e. */
static char *exchange(const struct relay *r, const struct login *g, const char *code, struct err *e)
{
	struct buf form;
	buf_init(&form);
	form_add(&form, "grant_type", "authorization_code");
	form_add(&form, "code", code);
	form_add(&form, "redirect_uri", g->redirect_uri);
	form_add(&form, "code_verifier", g->verifier);
	json_t *j = token_request(r, &form, e);
	if (!j)
		return NULL;
	const char *refresh = json_str(j, "refresh_token");
	char *out = NULL;
	if (!refresh || !*refresh)
		err_set(e, "%s: the code was taken, but no refresh_token came (Google gives one with "
			   "access_type=offline and prompt=consent, which were %s; Microsoft with the "
			   "offline_access scope)", r->oauth2_token_url, oauth2_is_google(r) ? "sent" : "not sent");
	else if (!token_ok(refresh))
		err_set(e, "%s: the refresh_token has characters RFC 6749 does not allow: refused",
			r->oauth2_token_url);
	else
		out = xstrdup(refresh);
	json_decref(j);
	return out;
}

/* The redirect's query checked (RFC 6749 4.1.2: state, then code or
 * error): the code into code, or -1 with e. */
static int check_redirect(const char *query, const struct login *g, char *code, struct err *e)
{
	char state[64], error[128], desc[300], s1[200], s2[400];
	int has_state = query_get(query, "state", state, sizeof state);
	if (query_get(query, "error", error, sizeof error) > 0) {
		if (query_get(query, "error_description", desc, sizeof desc) <= 0)
			*desc = '\0';
		return err_set(e, "the provider refused: %s%s%s", log_safe(error, s1, sizeof s1),
			       *desc ? ": " : "", *desc ? log_safe(desc, s2, sizeof s2) : "");
	}
	if (has_state <= 0 || strcmp(state, g->state) != 0)
		return err_set(e, "the redirect's state is %s: it is not this login's (an old or forged "
				  "redirect): refused; run outbox oauth2 login again",
			       has_state > 0 ? "wrong" : "missing");
	if (query_get(query, "code", code, CODE_MAX) <= 0)
		return err_set(e, "the redirect has no code");
	return 0;
}

static int prepare(struct login *g, int port, struct err *e)
{
	if (pkce_random(g->verifier, 32, e) < 0 || pkce_random(g->state, 16, e) < 0
	    || pkce_challenge(g->verifier, g->challenge, e) < 0)
		return -1;
	snprintf(g->redirect_uri, sizeof g->redirect_uri, "http://127.0.0.1:%d/", port);
	return 0;
}

static void instructions(const struct relay *r, const char *url, FILE *out)
{
	fprintf(out, "To let outbox send mail as %s through relay %s, open this address in a browser\n"
		     "and approve:\n\n    %s\n\n"
		     "The browser is then sent back to this program. If the browser runs on another\n"
		     "machine, that last page fails to load there: copy its address from the address\n"
		     "bar and paste it here, then press Enter.\n\nWaiting...\n",
		 r->user, relay_label(r), url);
	fflush(out);
}

/* Wait for the redirect and exchange its code: the refresh token, or
 * NULL with e; the browser (when it came that way) answered. */
static char *take_code(const struct relay *r, struct loopback *l, const struct login *g, struct err *e)
{
	int conn;
	char *query = loopback_next(l, now_real() + LOGIN_WAIT_S, &conn, e);
	if (!query)
		return NULL;
	char *code = xmalloc(CODE_MAX), *refresh = NULL;
	if (check_redirect(query, g, code, e) == 0)
		refresh = exchange(r, g, code, e);
	loopback_answer(conn, refresh != NULL, refresh ? "You may close this window." :
			"See the terminal where outbox oauth2 login runs.");
	explicit_bzero(code, CODE_MAX);
	explicit_bzero(query, strlen(query));
	free(code);
	free(query);
	return refresh;
}

int oauth2_browser_login(const struct relay *r, int in, FILE *out, struct err *e)
{
	char endpoint[512];
	if (!*oauth2_auth_url(r, endpoint, sizeof endpoint))
		return err_set(e, "no authorization endpoint known for %s: set oauth2_auth_url, or use --device",
			       r->oauth2_token_url);
	struct loopback l;
	struct login g;
	if (loopback_open(&l, in, e) < 0)
		return -1;
	char *refresh = NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (prepare(&g, l.port, e) == 0) {
		char *url = auth_request(r, endpoint, &g);
		instructions(r, url, out);
		free(url);
		refresh = take_code(r, &l, &g, e);
	}
	curl_global_cleanup();
	loopback_close(&l);
	explicit_bzero(&g, sizeof g);
	if (!refresh)
		return -1;
	return oauth2_login_done(r, refresh, out, e);
}
