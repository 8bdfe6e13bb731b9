/*
 * device.c - `outbox oauth2 login --device` (oauth2.h): the device
 * authorization grant (RFC 8628).  Google's device flow refuses Gmail's
 * scope (invalid_scope): that answer says to use --browser.
 */
#include "oauth2.h"

#include <curl/curl.h>
#include <string.h>
#include <unistd.h>

#include "../common/auth.h"
#include "http.h"

/* The device authorization request: its answer, or NULL with e. */
static json_t *device_request(const struct relay *r, const char *url, struct err *e)
{
	struct buf form, body;
	long status = 0;
	char code[64];
	buf_init(&form);
	buf_init(&body);
	form_add(&form, "client_id", r->oauth2_client_id);
	if (*oauth2_scope(r))
		form_add(&form, "scope", oauth2_scope(r));
	int rc = http_post(r, url, form.data, &status, &body, e);
	form_free(&form);
	json_t *j = rc == 0 ? oauth2_answer(url, status, &body, code, sizeof code, e) : NULL;
	buf_free(&body);
	if (!j && rc == 0 && strcmp(code, "invalid_scope") == 0) {
		/* Google's device flow allows a few scopes, not https://mail.google.com/
		 * (developers.google.com/identity/protocols/oauth2/limited-input-device,
		 * "Allowed scopes") */
		struct err first = *e;
		err_set(e, "%.300s -- this provider's device flow does not allow the scope %.100s "
			   "(Google's does not allow Gmail's): run outbox oauth2 login --browser",
			first.msg, oauth2_scope(r));
	}
	if (j && (!json_str(j, "device_code") || !json_str(j, "user_code")
		  || (!json_str(j, "verification_uri") && !json_str(j, "verification_url")))) {
		err_set(e, "%s: the answer lacks device_code, user_code or verification_uri", url);
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* One poll of the token endpoint: 1 done (refresh token in *out), 0
 * pending (*interval may grow), -1 failed with e. */
static int poll_once(const struct relay *r, const char *device_code, long *interval, char **out, struct err *e)
{
	struct buf form, body;
	long status = 0;
	buf_init(&form);
	buf_init(&body);
	form_add(&form, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
	form_add(&form, "device_code", device_code);
	int rc = form_add_client(&form, r, e);
	if (rc == 0)
		rc = http_post(r, r->oauth2_token_url, form.data, &status, &body, e);
	form_free(&form);
	if (rc < 0) {
		buf_free(&body);
		return -1;
	}
	json_t *j = json_loads(body.data ? body.data : "", 0, NULL);
	const char *error = j ? json_str(j, "error") : NULL;
	int result;
	if (status == 200 && j && json_str(j, "refresh_token") && !token_ok(json_str(j, "refresh_token"))) {
		err_set(e, "%s: the refresh_token has characters RFC 6749 does not allow: refused",
			r->oauth2_token_url);
		result = -1;
	} else if (status == 200 && j && json_str(j, "refresh_token")) {
		*out = xstrdup(json_str(j, "refresh_token"));
		result = 1;
	} else if (error && strcmp(error, "authorization_pending") == 0) {
		result = 0;
	} else if (error && strcmp(error, "slow_down") == 0) {
		*interval += 5;	/* RFC 8628 section 3.5 */
		result = 0;
	} else {
		json_decref(oauth2_answer(r->oauth2_token_url, status == 200 ? 400 : status, &body, NULL, 0, e));
		if (status == 200)
			err_set(e, "%s: approved, but no refresh_token came (is offline access in the scope?)",
				r->oauth2_token_url);
		result = -1;
	}
	json_decref(j);
	form_free(&body);
	return result;
}

static void show_code(const struct relay *r, json_t *dev, FILE *out)
{
	const char *uri = json_str(dev, "verification_uri_complete");
	fprintf(out, "To let outbox send mail as %s through relay %s, open\n\n    %s\n\nand enter the code\n\n"
		     "    %s\n\n", r->user, relay_label(r),
		json_str(dev, "verification_uri") ? json_str(dev, "verification_uri")
						  : json_str(dev, "verification_url"),
		json_str(dev, "user_code"));
	if (uri)
		fprintf(out, "(or open %s)\n\n", uri);
	fprintf(out, "Waiting for the approval...\n");
	fflush(out);
}

/* Poll until approved, refused or expired: the refresh token or NULL with e. */
static char *wait_approval(const struct relay *r, json_t *dev, struct err *e)
{
	long interval = (long)json_integer_value(json_object_get(dev, "interval"));
	json_int_t expires_in = json_integer_value(json_object_get(dev, "expires_in"));
	if (interval <= 0)
		interval = 5;
	double deadline = now_real() + (double)(expires_in > 0 ? expires_in : 900);
	char *refresh_token = NULL;
	int rc = 0;
	while (rc == 0) {
		if (now_real() > deadline) {
			err_set(e, "the code expired before it was approved: run outbox oauth2 login again");
			return NULL;
		}
		sleep((unsigned)interval);
		rc = poll_once(r, json_str(dev, "device_code"), &interval, &refresh_token, e);
	}
	return rc > 0 ? refresh_token : NULL;
}

int oauth2_device_login(const struct relay *r, FILE *out, struct err *e)
{
	char url[512];
	if (!*oauth2_device_url(r, url, sizeof url))
		return err_set(e, "no device authorization endpoint known for %s: set oauth2_device_url%s",
			       r->oauth2_token_url, *r->oauth2_auth_url ? ", or use --browser" : "");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	json_t *dev = device_request(r, url, e);
	char *refresh_token = NULL;
	if (dev) {
		show_code(r, dev, out);
		refresh_token = wait_approval(r, dev, e);
		json_decref(dev);
	}
	curl_global_cleanup();
	if (!refresh_token)
		return -1;
	return oauth2_login_done(r, refresh_token, out, e);
}
