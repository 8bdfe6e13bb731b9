/*
 * config_check.c - the rules of a configuration that involve more than
 * one key, or the world outside the file: relays' authentication and
 * OAuth2 settings, secret files' modes, a remote TCP listener, aliases
 * that expand.  Each broken rule is an error of config_load() at the
 * line that set the key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "address.h"
#include "config_keys.h"
#include "rewrite.h"


static void ignore_address(const char *a, void *arg)
{
	(void)a;
	(void)arg;
}

/* Every alias expands: no loop, no chain deeper than rcpt_expand goes. */
void check_aliases(struct load_ctx *x)
{
	for (size_t i = 0; i < x->c->aliases.n; i++) {
		struct err e;
		const struct map_entry *a = &x->c->aliases.v[i];
		if (rcpt_expand(x->c, a->name, ignore_address, NULL, &e) < 0) {
			x->line = a->line;
			x->path = x->c->files[a->file];
			conf_error(x, "aliases", a->name, "%s", e.msg);
		}
	}
}

static void check_secret_file(struct load_ctx *x, const struct relay *r, const char *key, const char *p)
{
	struct stat st;
	char msg[PATH_MAX + 64];
	if (!*p)
		return;
	if (stat(p, &st) < 0)
		snprintf(msg, sizeof msg, "cannot read %s: %s", p, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(msg, sizeof msg, "%s is not a regular file", p);
	else if (st.st_mode & S_IROTH)
		snprintf(msg, sizeof msg, "%s is readable by others (chmod o-r)", p);
	else
		return;
	relay_error(x, r, key, msg);
}

static void check_oauth2(struct load_ctx *x, const struct relay *r)
{
	if (!*r->oauth2_token_url && r->oauth2_grant == OAUTH2_CLIENT_CREDENTIALS)
		relay_error(x, r, "oauth2_grant", "client_credentials, but oauth2_token_url is not set");
	if (!*r->oauth2_token_url)
		return;
	if (strncmp(r->oauth2_token_url, "https://", 8) != 0)
		relay_error(x, r, "oauth2_token_url", "must be an https:// URL");
	if (!*r->oauth2_client_id)
		relay_error(x, r, "oauth2_token_url", "set, but oauth2_client_id is not");
	if (r->oauth2_grant == OAUTH2_CLIENT_CREDENTIALS && !*r->oauth2_client_secret_file)
		relay_error(x, r, "oauth2_grant", "client_credentials, but oauth2_client_secret_file is not set");
	if (r->oauth2_grant == OAUTH2_REFRESH_TOKEN && !*r->oauth2_refresh_token_file)
		relay_error(x, r, "oauth2_token_url", "set, but oauth2_refresh_token_file is not "
			    "(outbox oauth2 login writes it)");
	if (!*r->user)
		relay_error(x, r, "oauth2_token_url", "set, but user (the mailbox to send as) is not");
	if (*r->password_file || *r->password_command)
		relay_error(x, r, "oauth2_token_url", "set together with password_file or password_command");
	if (r->auth != AUTH_AUTO && r->auth != AUTH_XOAUTH2 && r->auth != AUTH_OAUTHBEARER)
		relay_error(x, r, "auth", "OAuth2 needs auto, xoauth2 or oauthbearer");
	if (*r->oauth2_device_url && strncmp(r->oauth2_device_url, "https://", 8) != 0)
		relay_error(x, r, "oauth2_device_url", "must be an https:// URL");
	if (*r->oauth2_auth_url && strncmp(r->oauth2_auth_url, "https://", 8) != 0)
		relay_error(x, r, "oauth2_auth_url", "must be an https:// URL");
}

static void check_relay(struct load_ctx *x, const struct relay *r, unsigned flags)
{
	check_oauth2(x, r);
	if (*r->password_file && *r->password_command)
		relay_error(x, r, "password_command", "password_file and password_command are both set");
	if (*r->user && !*r->password_file && !*r->password_command && r->auth != AUTH_NONE
	    && !*r->oauth2_token_url)
		relay_error(x, r, "user", "set, but neither password_file nor password_command is");
	if (r->tls == TLS_NONE && *r->user && r->auth != AUTH_NONE && !r->plaintext_auth)
		relay_error(x, r, "tls", "none with a user would send AUTH in clear text; "
			    "set plaintext_auth = yes if you really mean it");
	if (!(flags & CONF_CLIENT)) {
		check_secret_file(x, r, "password_file", r->password_file);
		check_secret_file(x, r, "oauth2_client_secret_file", r->oauth2_client_secret_file);
	}
}

bool tcp_is_loopback(const char *spec)
{
	char host[64];
	const char *end = spec[0] == '[' ? strchr(spec, ']') : strrchr(spec, ':');
	size_t n = end ? (size_t)(end - spec) - (spec[0] == '[') : strlen(spec);
	if (n >= sizeof host)
		return false;
	memcpy(host, spec + (spec[0] == '['), n);
	host[n] = '\0';
	unsigned char a[16];
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	return inet_pton(AF_INET6, host, a) == 1 && memcmp(a, &in6addr_loopback, 16) == 0;
}

/* Rules that involve more than one key. */
void check_combinations(struct load_ctx *x, unsigned flags)
{
	struct config *c = x->c;
	if (*c->listen.tcp && !tcp_is_loopback(c->listen.tcp) && !c->listen.tcp_allow_remote) {
		key_line(x, "listen", "tcp");
		conf_error(x, "listen", "tcp", "%s is not a loopback address: anyone reaching it "
			   "could relay through the upstream; set tcp_allow_remote = yes if you mean it",
			   c->listen.tcp);
	}
	if (c->queue.retry_min > c->queue.retry_max)
		key_error(x, "queue", "retry_min", "larger than retry_max");
	for (size_t i = 0; i < c->nrelays; i++)
		check_relay(x, c->relays[i], flags);
	if (!*c->queue.spool)
		key_error(x, "queue", "spool", "must be set");
	if (!*c->listen.socket)
		key_error(x, "listen", "socket", "must be set");
	if (*c->address.postmaster && addr_check(c->address.postmaster, NULL) < 0)
		key_error(x, "address", "postmaster", "not a valid address");
	if (*c->address.domain && !addr_is_domain(c->address.domain))
		key_error(x, "address", "domain", "not a valid domain");
}
