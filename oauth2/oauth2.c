/*
 * oauth2.c - access tokens (the refresh_token and client_credentials
 * grants) and the refresh token's file (oauth2.h).  The logins are
 * device.c and browser.c; HTTPS and answers, http.c.
 */
#include "oauth2.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/auth.h"
#include "http.h"

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

/* The access token of answer j into *token and *seconds: 0 or -1 with e. */
static int take_access(const struct relay *r, json_t *j, char **token, long *seconds, struct err *e)
{
	const char *access = json_str(j, "access_token"), *rotated = json_str(j, "refresh_token");
	json_int_t expires_in = json_integer_value(json_object_get(j, "expires_in"));
	if (!access || !*access)
		return err_set(e, "%s: no access_token in the answer", r->oauth2_token_url);
	if (!token_ok(access) || (rotated && *rotated && !token_ok(rotated)))
		return err_set(e, "%s: the answer's token has characters RFC 6749 does not allow "
				  "(a control or non-ASCII octet): refused", r->oauth2_token_url);
	*token = xstrdup(access);
	*seconds = expires_in > 0 ? (long)expires_in : 3600;
	return 0;
}

/* A rotated refresh token (Microsoft rotates it at every refresh) stored,
 * and what happened to it a line in notes. */
static void keep_rotated(const struct relay *r, const char *rotated, const char *old, struct buf *notes)
{
	struct err we;
	if (!rotated || !*rotated || strcmp(rotated, old) == 0)
		return;
	if (oauth2_store_token(r->oauth2_refresh_token_file, rotated, &we) < 0)
		buf_printf(notes, "the provider rotated the refresh token and it could not be stored (%s): "
				  "the next refresh may fail; make its directory writable by outboxd\n", we.msg);
	else
		buf_printf(notes, "rotated OAuth2 refresh token stored in %s\n", r->oauth2_refresh_token_file);
}

/* The grant in form (wiped): the answer, with
 * its access token taken into *token and *seconds; NULL with e. */
static json_t *grant(const struct relay *r, struct buf *form, char **token, long *seconds, struct err *e)
{
	json_t *j = token_request(r, form, e);
	if (j && take_access(r, j, token, seconds, e) < 0) {
		json_decref(j);
		j = NULL;
	}
	return j;
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
	struct buf form;
	buf_init(&form);
	form_add(&form, "grant_type", "refresh_token");
	form_add(&form, "refresh_token", refresh_token);
	json_t *j = grant(r, &form, token, seconds, e);
	if (j)
		keep_rotated(r, json_str(j, "refresh_token"), refresh_token, notes);
	json_decref(j);
	secret_free(refresh_token);
	curl_global_cleanup();
	return j ? 0 : -1;
}

/* RFC 6749 section 4.4, as Microsoft takes it for SMTP (app-only,
 * learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
 * "Get a token"): the client's own id and secret, the resource's
 * .default scope; no refresh token. */
int oauth2_client_credentials(const struct relay *r, char **token, long *seconds, struct err *e)
{
	if (!*r->oauth2_client_secret_file)
		return err_set(e, "oauth2_grant = client_credentials needs oauth2_client_secret_file");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct buf form;
	buf_init(&form);
	form_add(&form, "grant_type", "client_credentials");
	if (*oauth2_scope(r))
		form_add(&form, "scope", oauth2_scope(r));
	json_t *j = grant(r, &form, token, seconds, e);
	json_decref(j);
	curl_global_cleanup();
	return j ? 0 : -1;
}

int oauth2_login_done(const struct relay *r, char *refresh_token, FILE *out, struct err *e)
{
	int rc = oauth2_store_token(r->oauth2_refresh_token_file, refresh_token, e);
	secret_free(refresh_token);
	if (rc == 0)
		fprintf(out, "Approved: the refresh token is in %s.\n", r->oauth2_refresh_token_file);
	return rc;
}

int oauth2_access_token(const struct relay *r, char **token, long *seconds, struct buf *notes, struct err *e)
{
	if (r->oauth2_grant == OAUTH2_CLIENT_CREDENTIALS)
		return oauth2_client_credentials(r, token, seconds, e);
	return oauth2_refresh(r, token, seconds, notes, e);
}
