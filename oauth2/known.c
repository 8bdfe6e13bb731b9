/*
 * known.c - what outbox knows of Google's and Microsoft's OAuth2
 * endpoints (oauth2.h): the defaults a relay's empty oauth2_* keys take,
 * and which login each provider allows.  Every default names where it
 * comes from; a relay's explicit key always wins.
 *
 * A provider is recognised by its token URL, else by the authorization
 * URL, else by the scope (which names the provider's mail service):
 * so a relay pointed at a stand-in with Google's scope is handled as
 * Google (the tests' authorization server, tests/integration).
 */
#include "oauth2.h"

#include <stdio.h>
#include <string.h>

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

#define GOOGLE_SCOPE "https://mail.google.com/"

static bool google_token_url(const struct relay *r)
{
	return has_prefix(r->oauth2_token_url, "https://oauth2.googleapis.com/")
	       || has_prefix(r->oauth2_token_url, "https://accounts.google.com/");
}


bool oauth2_is_google(const struct relay *r)
{
	return google_token_url(r) || has_prefix(r->oauth2_auth_url, "https://accounts.google.com/")
	       || strstr(r->oauth2_scope, GOOGLE_SCOPE) != NULL;
}

static bool is_microsoft(const struct relay *r)
{
	return has_prefix(r->oauth2_token_url, "https://login.microsoftonline.com/")
	       || strstr(r->oauth2_scope, "https://outlook.office.com/") != NULL
	       || strstr(r->oauth2_scope, "https://outlook.office365.com/") != NULL;
}

/* A Microsoft token URL https://login.microsoftonline.com/TENANT/oauth2/v2.0/token
 * with its last segment replaced by leaf, or "" when it is not one. */
static const char *microsoft_endpoint(const struct relay *r, const char *leaf, char *out, size_t n)
{
	const char *t = r->oauth2_token_url, *tail = "/oauth2/v2.0/token";
	size_t lt = strlen(t), ltail = strlen(tail);
	if (has_prefix(t, "https://login.microsoftonline.com/") && lt > ltail
	    && strcmp(t + lt - ltail, tail) == 0)
		snprintf(out, n, "%.*s/oauth2/v2.0/%s", (int)(lt - ltail), t, leaf);
	else
		snprintf(out, n, "%s", "");
	return out;
}

/* own when set, else Google's endpoint for Google's token URL, else
 * Microsoft's ms_leaf beside its token URL, else "". */
static const char *endpoint(const struct relay *r, const char *own, const char *google, const char *ms_leaf,
			    char *out, size_t n)
{
	if (*own)
		snprintf(out, n, "%s", own);
	else if (google_token_url(r))
		snprintf(out, n, "%s", google);
	else
		microsoft_endpoint(r, ms_leaf, out, n);
	return out;
}

const char *oauth2_device_url(const struct relay *r, char *out, size_t n)
{
	/* Google: developers.google.com/identity/protocols/oauth2/limited-input-device,
	 * "Step 1: Request device and user codes" (but see oauth2_login_default).
	 * Microsoft: learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code,
	 * "Device authorization request": /{tenant}/oauth2/v2.0/devicecode */
	return endpoint(r, r->oauth2_device_url, "https://oauth2.googleapis.com/device/code", "devicecode", out, n);
}

const char *oauth2_auth_url(const struct relay *r, char *out, size_t n)
{
	/* Google: developers.google.com/identity/protocols/oauth2/native-app ("OAuth
	 * 2.0 for Mobile & Desktop Apps"), "Step 2: Send a request to Google's OAuth
	 * 2.0 server".  Microsoft: learn.microsoft.com/entra/identity-platform/
	 * v2-oauth2-auth-code-flow ("OAuth 2.0 authorization code flow"), "Request
	 * an authorization code": /{tenant}/oauth2/v2.0/authorize, the token URL's
	 * tenant */
	return endpoint(r, r->oauth2_auth_url, "https://accounts.google.com/o/oauth2/v2/auth", "authorize", out, n);
}

const char *oauth2_scope(const struct relay *r)
{
	if (*r->oauth2_scope)
		return r->oauth2_scope;
	if (r->oauth2_grant == OAUTH2_CLIENT_CREDENTIALS)
		/* learn.microsoft.com/exchange/client-developer/legacy-protocols/
		 * how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
		 * ("Authenticate an IMAP, POP or SMTP connection using OAuth"), "Use
		 * client credentials grant flow": the resource's .default, as the
		 * client credentials flow (v2-oauth2-client-creds-grant-flow) wants */
		return "https://outlook.office365.com/.default";
	if (google_token_url(r))
		/* developers.google.com/workspace/gmail/imap/xoauth2-protocol: the
		 * full mail scope is the one SMTP with XOAUTH2 takes */
		return GOOGLE_SCOPE;
	if (has_prefix(r->oauth2_token_url, "https://login.microsoftonline.com/"))
		/* the same Microsoft page, "Get an access token": SMTP AUTH is
		 * https://outlook.office.com/SMTP.Send; offline_access for a
		 * refresh token */
		return "https://outlook.office.com/SMTP.Send offline_access";
	return "";
}

enum oauth2_login oauth2_login_default(const struct relay *r)
{
	char url[512];
	/* Google's device flow allows "a limited set of scopes", not Gmail's
	 * (developers.google.com/identity/protocols/oauth2/limited-input-device,
	 * "Allowed scopes"; the answer is invalid_scope), and Google asks even a
	 * command-line tool to use the desktop flow (the same page, "Alternatives") */
	if (oauth2_is_google(r))
		return OAUTH2_LOGIN_BROWSER;
	/* Microsoft's device code flow takes the SMTP scope (the Microsoft page
	 * above, "Get an access token", lists it) and needs no listener */
	if (is_microsoft(r))
		return OAUTH2_LOGIN_DEVICE;
	return *oauth2_auth_url(r, url, sizeof url) ? OAUTH2_LOGIN_BROWSER : OAUTH2_LOGIN_DEVICE;
}
