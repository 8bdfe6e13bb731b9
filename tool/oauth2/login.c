/*
 * login.c - outbox-oauth2, run by `outbox oauth2 login [--browser |
 * --device] [RELAY]` (a program of its own: the sendmail command never
 * loads libcurl).  Runs the browser login (the authorization code grant
 * with PKCE and a loopback redirect, oauth2/browser.c) or the device
 * authorization grant (RFC 8628, oauth2/device.c), by default the one
 * the provider allows (oauth2_login_default: Google the browser,
 * Microsoft the device), for the
 * relay named (NAME of [relay.NAME], "default" for [relay]) or the
 * first relay with oauth2_token_url, and writes the refresh token to its
 * oauth2_refresh_token_file (oauth2_store_token: a new file is 0600, a
 * replaced one keeps its owner, group and mode).  Run as root, both
 * modes become [queue] user first, once the configuration is read
 * (tool_become_daemon_user): the file is then written, and the client
 * secret read, as outboxd would, and a token file outboxd could not
 * read or replace is found now rather than at its first refresh.  Then
 * it gets one access token with it, as outboxd will.  A relay with
 * oauth2_grant = client_credentials needs no login: its login only gets
 * one access token, as a check.
 * `outbox-oauth2 token RELAY` is how outboxd gets its access tokens
 * (common/tokens.c), by the relay's grant, so that outboxd never loads
 * libcurl.
 *
 * Exit 0 when the token is stored and works, 1 when the provider
 * refused or the code expired, 64 for a usage error, 78 for the
 * configuration.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "../../common/auth.h"
#include "../../oauth2/oauth2.h"
#include "../tool.h"

static const struct relay *pick(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nrelays; i++) {
		const struct relay *r = c->relays[i];
		if (name ? strcmp(name, *r->name ? r->name : "default") == 0 : *r->oauth2_token_url != '\0')
			return r;
	}
	return NULL;
}

/* token RELAY (outboxd's, common/tokens.c): one grant, the relay's,
 * answered on stdout as "note ..." lines and "ok SECONDS TOKEN" or
 * "error TEXT"; exit 0 whenever it could answer. */
static int token_mode(const struct relay *r)
{
	struct buf notes;
	struct err e;
	char *token = NULL;
	long seconds = 0;
	buf_init(&notes);
	int rc = oauth2_access_token(r, &token, &seconds, &notes, &e);
	for (char *l = notes.data, *n; l && *l; l = n) {
		n = strchr(l, '\n');
		if (n)
			*n++ = '\0';
		printf("note %s\n", l);
	}
	if (rc == 0)
		printf("ok %ld %s\n", seconds, token);
	else
		printf("error %s\n", e.msg);
	secret_free(token);
	buf_free(&notes);
	return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

/* One access token, as outboxd will get it: 0 or 1. */
static int check_token(const struct relay *r)
{
	struct err e;
	struct buf notes;
	char *token = NULL;
	long seconds;
	buf_init(&notes);
	int rc = oauth2_access_token(r, &token, &seconds, &notes, &e);
	if (rc == 0)
		printf("An access token was obtained%s: outboxd can authenticate as %s.\n",
		       r->oauth2_grant == OAUTH2_CLIENT_CREDENTIALS ? " with the client secret" : " with it",
		       r->user);
	else if (r->oauth2_grant == OAUTH2_CLIENT_CREDENTIALS)
		fprintf(stderr, "outbox oauth2: getting an access token with the client secret failed: %s\n", e.msg);
	else
		fprintf(stderr, "outbox oauth2: the refresh token was stored, but getting an access token "
				"with it failed: %s\n", e.msg);
	secret_free(token);
	buf_free(&notes);
	return rc == 0 ? 0 : 1;
}

/* login [--browser | --device] [RELAY]: the login, then one access token
 * as a check. */
static int login_mode(const struct relay *r, int how)
{
	struct err e;
	if (r->oauth2_grant == OAUTH2_CLIENT_CREDENTIALS) {
		printf("Relay %s has oauth2_grant = client_credentials: outboxd gets its tokens with the "
		       "client secret, no login is needed.\n", relay_label(r));
		return check_token(r);
	}
	if (how < 0)
		how = (int)oauth2_login_default(r);
	int rc = how == OAUTH2_LOGIN_BROWSER ? oauth2_browser_login(r, STDIN_FILENO, stdout, &e)
					     : oauth2_device_login(r, stdout, &e);
	if (rc < 0) {
		fprintf(stderr, "outbox oauth2: %s\n", e.msg);
		return 1;
	}
	return check_token(r);
}

/* --browser or --device at argv[*i] (then skipped): the login asked
 * for, else -1 (the provider's default). */
static int login_option(int argc, char **argv, int *i)
{
	if (*i < argc && strcmp(argv[*i], "--browser") == 0)
		return (*i)++, OAUTH2_LOGIN_BROWSER;
	if (*i < argc && strcmp(argv[*i], "--device") == 0)
		return (*i)++, OAUTH2_LOGIN_DEVICE;
	return -1;
}

int main(int argc, char **argv)
{
	const char *conf_path;
	int i = tool_helper_args(argc, argv, &conf_path), how = -1;
	bool token = i < argc && strcmp(argv[i], "token") == 0 && argc - i == 2;
	if (!token && i < argc && strcmp(argv[i], "login") == 0) {
		int k = i + 1;
		how = login_option(argc, argv, &k);
		if (k > i + 1) {	/* the option dropped: login [RELAY] remains */
			argv[k - 1] = argv[i];
			i = k - 1;
		}
	}
	if (!token && (i >= argc || strcmp(argv[i], "login") != 0 || argc - i > 2
		       || (i + 1 < argc && argv[i + 1][0] == '-'))) {
		fprintf(stderr, "usage: outbox [-C FILE] oauth2 login [--browser | --device] [RELAY]\n");
		return EX_USAGE;
	}
	const char *name = i + 1 < argc ? argv[i + 1] : NULL;
	struct config *c = tool_config(conf_path);
	tool_become_daemon_user(c, "outbox oauth2");	/* the token files are outboxd's */
	const struct relay *r = pick(c, name);
	int rc;
	if (!r || !*r->oauth2_token_url) {
		if (token)
			printf("error relay %s has no oauth2_token_url in %s\n", name, c->path);
		else
			fprintf(stderr, "outbox oauth2: %s in %s\n",
				name ? "no such relay, or it has no oauth2_token_url," : "no relay has oauth2_token_url",
				c->path);
		rc = token ? 0 : EX_USAGE;
	} else {
		rc = token ? token_mode(r) : login_mode(r, how);
	}
	config_unref(c);
	return rc;
}
