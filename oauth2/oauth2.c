/*
 * oauth2.c - access tokens and the device flow over HTTPS (oauth2.h).
 */
#include "oauth2.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/auth.h"
#include "../common/log.h"

#define BODY_MAX (64 * 1024)	/* an endpoint's answer, at most */
#define HTTP_TIMEOUT_S 60

/* ---- HTTPS ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	if (b->len + size * n > BODY_MAX)
		return 0;	/* too long: the transfer fails */
	buf_add(b, p, size * n);
	return size * n;
}

/* POST form to url, verified as the relay says; the status and body. */
static int post(const struct relay *r, const char *url, const char *form, long *status, struct buf *body,
		struct err *e)
{
	CURL *h = curl_easy_init();
	if (!h)
		return err_set(e, "cannot start an HTTPS client");
	char errbuf[CURL_ERROR_SIZE] = "";
	long timeout = r->timeout && r->timeout < HTTP_TIMEOUT_S ? (long)r->timeout : HTTP_TIMEOUT_S;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (*r->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, r->ca_file);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "outbox");
	CURLcode rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK)
		return err_set(e, "%s: %s", url, *errbuf ? errbuf : curl_easy_strerror(rc));
	buf_adds(body, "");
	return 0;
}

/* key=value&... with the values escaped; secrets wiped by form_free. */
static void form_add(struct buf *f, const char *key, const char *value)
{
	char *v = curl_easy_escape(NULL, value, 0);
	buf_printf(f, "%s%s=%s", f->len ? "&" : "", key, v ? v : "");
	if (v) {
		explicit_bzero(v, strlen(v));
		curl_free(v);
	}
}

static void form_free(struct buf *f)
{
	if (f->data)
		explicit_bzero(f->data, f->len);
	buf_free(f);
}

/* The endpoint's JSON answer, or NULL with e: its "error" and
 * "error_description", never anything else it says. */
static json_t *answer(const char *url, long status, const struct buf *body, struct err *e)
{
	json_t *j = json_loads(body->data ? body->data : "", 0, NULL);
	if (status == 200 && json_is_object(j))
		return j;
	const char *code = j ? json_string_value(json_object_get(j, "error")) : NULL;
	const char *desc = j ? json_string_value(json_object_get(j, "error_description")) : NULL;
	char safe[300];
	if (code)
		err_set(e, "%s: %s%s%s", url, log_safe(code, safe, 100), desc ? ": " : "",
			desc ? log_safe(desc, safe + 100, 200) : "");
	else
		err_set(e, "%s: HTTP %ld without an OAuth2 answer", url, status);
	json_decref(j);
	return NULL;
}

static const char *str(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* Is t a token as RFC 6749 appendix A.12 and A.17 allow (1*VSCHAR,
 * %x20-7E)?  Anything else -- a newline, an ESC -- would break the
 * helper's one-line answer to outboxd or the AUTH command, and is never
 * passed on nor quoted. */
static bool token_ok(const char *t)
{
	if (!t || !*t)
		return false;
	for (; *t; t++)
		if ((unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e)
			return false;
	return true;
}

/* ---- the refresh token's file ---- */

/* What the new file at fd takes from the one it replaces (old, from an
 * lstat; none: it stays the writer's, 0600): owner and group where this
 * process may give them (root: always; else the group when it is one of
 * ours), and the mode, never readable by others. */
static int keep_owner_and_mode(int fd, const struct stat *old, const char *tmp, struct err *e)
{
	if (!old)
		return 0;
	if (fchown(fd, old->st_uid, old->st_gid) < 0) {
		if (geteuid() == 0)
			return err_sys(e, "chown %s", tmp);
		(void)!fchown(fd, (uid_t)-1, old->st_gid);	/* the group at least, if ours */
	}
	if (fchmod(fd, (old->st_mode & 0770) | S_IRUSR | S_IWUSR) < 0)
		return err_sys(e, "chmod %s", tmp);
	return 0;
}

int oauth2_store_token(const char *path, const char *text, struct err *e)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *copy = xstrdup(path);
	struct stat old;
	/* the file replaced, never followed: a link there is replaced by the file */
	bool had = lstat(path, &old) == 0 && S_ISREG(old.st_mode);
	int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		rc = err_sys(e, "cannot write %s", tmp);
	else if (keep_owner_and_mode(fd, had ? &old : NULL, tmp, e) < 0)
		rc = -1;
	else if (write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0 || fsync(fd) < 0)
		rc = err_sys(e, "write %s", tmp);
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = err_sys(e, "close %s", tmp);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = err_sys(e, "rename %s", path);
	if (rc == 0)
		rc = fsync_dir(dirname(copy), e);
	if (rc < 0 && fd >= 0)
		(void)unlink(tmp);
	free(tmp);
	free(copy);
	return rc;
}

/* ---- access tokens ---- */

/* The client's part of a token request. */
static int add_client(struct buf *form, const struct relay *r, struct err *e)
{
	form_add(form, "client_id", r->oauth2_client_id);
	if (!*r->oauth2_client_secret_file)
		return 0;
	char *secret = secret_read_file(r->oauth2_client_secret_file, "oauth2_client_secret_file", e);
	if (!secret)
		return -1;
	form_add(form, "client_secret", secret);
	secret_free(secret);
	return 0;
}

int oauth2_refresh(const struct relay *r, char **token, long *seconds, struct buf *notes, struct err *e)
{
	char *refresh_token = secret_read_file(r->oauth2_refresh_token_file, "oauth2_refresh_token_file", e);
	if (!refresh_token)
		return -1;
	if (!*refresh_token) {
		secret_free(refresh_token);
		return err_set(e, "%s is empty: run outbox oauth2 login", r->oauth2_refresh_token_file);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct buf form, body;
	buf_init(&form);
	buf_init(&body);
	form_add(&form, "grant_type", "refresh_token");
	form_add(&form, "refresh_token", refresh_token);
	long status = 0;
	int rc = add_client(&form, r, e);
	if (rc == 0)
		rc = post(r, r->oauth2_token_url, form.data, &status, &body, e);
	form_free(&form);
	json_t *j = rc == 0 ? answer(r->oauth2_token_url, status, &body, e) : NULL;
	form_free(&body);
	if (!j) {
		secret_free(refresh_token);
		curl_global_cleanup();
		return -1;
	}
	const char *access = str(j, "access_token"), *rotated = str(j, "refresh_token");
	json_int_t expires_in = json_integer_value(json_object_get(j, "expires_in"));
	if (!access || !*access) {
		rc = err_set(e, "%s: no access_token in the answer", r->oauth2_token_url);
	} else if (!token_ok(access) || (rotated && *rotated && !token_ok(rotated))) {
		rc = err_set(e, "%s: the answer's token has characters RFC 6749 does not allow "
				"(a control or non-ASCII octet): refused", r->oauth2_token_url);
	} else {
		*token = xstrdup(access);
		*seconds = expires_in > 0 ? (long)expires_in : 3600;
	}
	if (rc == 0 && rotated && *rotated && strcmp(rotated, refresh_token) != 0) {
		struct err we;
		if (oauth2_store_token(r->oauth2_refresh_token_file, rotated, &we) < 0)
			buf_printf(notes, "the provider rotated the refresh token and it could not be stored (%s): "
					  "the next refresh may fail; make its directory writable by outboxd\n", we.msg);
		else
			buf_printf(notes, "rotated OAuth2 refresh token stored in %s\n", r->oauth2_refresh_token_file);
	}
	json_decref(j);
	secret_free(refresh_token);
	curl_global_cleanup();
	return rc;
}

/* ---- the device flow (RFC 8628) ---- */

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

const char *oauth2_device_url(const struct relay *r, char *out, size_t n)
{
	const char *t = r->oauth2_token_url, *ms = "https://login.microsoftonline.com/";
	if (*r->oauth2_device_url)
		snprintf(out, n, "%s", r->oauth2_device_url);
	else if (has_prefix(t, "https://oauth2.googleapis.com/") || has_prefix(t, "https://accounts.google.com/"))
		snprintf(out, n, "https://oauth2.googleapis.com/device/code");
	else if (has_prefix(t, ms) && strlen(t) > 6 && strcmp(t + strlen(t) - 6, "/token") == 0)
		snprintf(out, n, "%.*s/devicecode", (int)(strlen(t) - 6), t);
	else
		snprintf(out, n, "%s", "");
	return out;
}

const char *oauth2_scope(const struct relay *r)
{
	if (*r->oauth2_scope)
		return r->oauth2_scope;
	if (strstr(r->oauth2_token_url, "google"))
		return "https://mail.google.com/";
	if (strstr(r->oauth2_token_url, "microsoftonline"))
		return "https://outlook.office.com/SMTP.Send offline_access";
	return "";
}

/* The device authorization request: its answer, or NULL with e. */
static json_t *device_request(const struct relay *r, const char *url, struct err *e)
{
	struct buf form, body;
	long status = 0;
	buf_init(&form);
	buf_init(&body);
	form_add(&form, "client_id", r->oauth2_client_id);
	if (*oauth2_scope(r))
		form_add(&form, "scope", oauth2_scope(r));
	int rc = post(r, url, form.data, &status, &body, e);
	form_free(&form);
	json_t *j = rc == 0 ? answer(url, status, &body, e) : NULL;
	buf_free(&body);
	if (j && (!str(j, "device_code") || !str(j, "user_code")
		  || (!str(j, "verification_uri") && !str(j, "verification_url")))) {
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
	int rc = add_client(&form, r, e);
	if (rc == 0)
		rc = post(r, r->oauth2_token_url, form.data, &status, &body, e);
	form_free(&form);
	if (rc < 0) {
		buf_free(&body);
		return -1;
	}
	json_t *j = json_loads(body.data ? body.data : "", 0, NULL);
	const char *error = j ? str(j, "error") : NULL;
	int result;
	if (status == 200 && j && str(j, "refresh_token") && !token_ok(str(j, "refresh_token"))) {
		err_set(e, "%s: the refresh_token has characters RFC 6749 does not allow: refused",
			r->oauth2_token_url);
		result = -1;
	} else if (status == 200 && j && str(j, "refresh_token")) {
		*out = xstrdup(str(j, "refresh_token"));
		result = 1;
	} else if (error && strcmp(error, "authorization_pending") == 0) {
		result = 0;
	} else if (error && strcmp(error, "slow_down") == 0) {
		*interval += 5;	/* RFC 8628 section 3.5 */
		result = 0;
	} else {
		json_decref(answer(r->oauth2_token_url, status == 200 ? 400 : status, &body, e));
		if (status == 200)
			err_set(e, "%s: approved, but no refresh_token came (is offline access in the scope?)",
				r->oauth2_token_url);
		result = -1;
	}
	json_decref(j);
	form_free(&body);
	return result;
}

int oauth2_device_login(const struct relay *r, FILE *out, struct err *e)
{
	char url[512];
	if (!*oauth2_device_url(r, url, sizeof url))
		return err_set(e, "no device authorization endpoint known for %s: set oauth2_device_url",
			       r->oauth2_token_url);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	json_t *dev = device_request(r, url, e);
	if (!dev)
		return -1;
	const char *uri = str(dev, "verification_uri_complete");
	long interval = (long)json_integer_value(json_object_get(dev, "interval"));
	json_int_t expires_in = json_integer_value(json_object_get(dev, "expires_in"));
	if (interval <= 0)
		interval = 5;
	fprintf(out, "To let outbox send mail as %s through relay %s, open\n\n    %s\n\nand enter the code\n\n"
		     "    %s\n\n", r->user, relay_label(r),
		str(dev, "verification_uri") ? str(dev, "verification_uri") : str(dev, "verification_url"),
		str(dev, "user_code"));
	if (uri)
		fprintf(out, "(or open %s)\n\n", uri);
	fprintf(out, "Waiting for the approval...\n");
	fflush(out);
	double deadline = now_real() + (double)(expires_in > 0 ? expires_in : 900);
	char *refresh_token = NULL;
	int rc = 0;
	while (rc == 0) {
		if (now_real() > deadline) {
			rc = err_set(e, "the code expired before it was approved: run outbox oauth2 login again");
			break;
		}
		sleep((unsigned)interval);
		rc = poll_once(r, str(dev, "device_code"), &interval, &refresh_token, e);
	}
	json_decref(dev);
	curl_global_cleanup();
	if (rc < 0)
		return -1;
	rc = oauth2_store_token(r->oauth2_refresh_token_file, refresh_token, e);
	secret_free(refresh_token);
	if (rc == 0)
		fprintf(out, "Approved: the refresh token is in %s.\n", r->oauth2_refresh_token_file);
	return rc;
}
