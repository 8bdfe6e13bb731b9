/*
 * config.c - the declarative key table and the inih-driven loader.
 *
 * Everything about a key lives in its row of `keys[]`: section, name,
 * type, default (as the user would write it), the field it fills and a
 * line of documentation.  Parsing, defaults, `outboxd -t -v` and the
 * outbox.conf(5) reference all walk that one table; adding a key is
 * adding a row (and its field in struct config).
 *
 * Line numbers: inih reports only the first error, so we feed it through
 * our own reader that counts lines and refuses over-long ones, and the
 * handler records every error with the current line.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "address.h"
#include "conftrust.h"
#include "log.h"
#include "providers.h"
#include "units.h"

enum key_type { KT_STRING, KT_PATH, KT_DURATION, KT_SIZE, KT_UINT, KT_BOOL, KT_MODE, KT_ENUM, KT_HOSTPORT };

enum key_home { IN_CONFIG, IN_RELAY, IN_NAMED };

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	const char *def;
	size_t off;
	const char *const *choices;	/* KT_ENUM: index = stored value */
	uint64_t min, max;		/* KT_UINT, KT_DURATION, KT_SIZE */
	const char *doc;
};

/* Where a key's value lands: struct config, or a struct relay of
 * [relay] and every [relay.NAME] (section "relay"), or of the named
 * relays only (section "relay.NAME"). */
static enum key_home home_of(const struct key *k)
{
	if (strcmp(k->section, "relay") == 0)
		return IN_RELAY;
	return strcmp(k->section, "relay.NAME") == 0 ? IN_NAMED : IN_CONFIG;
}

static const char *const tls_choices[] = { "starttls", "tls", "none", NULL };
static const char *const auth_choices[] = { "auto", "plain", "login", "xoauth2", "oauthbearer", "none", NULL };
static const char *const bool_choices[] = { "no", "yes", NULL };
static const char *const target_choices[] = { "syslog", "stderr", NULL };
static const char *const level_choices[] = { "err", "warning", "notice", "info", "debug", NULL };
static const char *const grant_choices[] = { "refresh_token", "client_credentials", NULL };	/* enum oauth2_grant */

#define F(field) offsetof(struct config, field)
#define R(field) offsetof(struct relay, field)
#define DAY (86400ULL)

static const struct key keys[] = {
	{ "queue", "spool", KT_PATH, "/var/spool/outbox", F(queue.spool), 0, 0, 0,
	  "Queue store and pickup directory.  outboxd started as root makes it and gives it to "
	  "[queue] user; an existing one must be that user's already (a root-owned one is refused, "
	  "never chowned)." },
	{ "queue", "user", KT_STRING, "outbox", F(queue.user), 0, 0, 0,
	  "outboxd started as root runs as this user; started as another user, it runs as that user." },
	{ "queue", "lifetime", KT_DURATION, "5d", F(queue.lifetime), 0, 1, 365 * DAY,
	  "How long a message may stay queued; then its waiting recipients fail and the "
	  "sender gets a report." },
	{ "queue", "retry_min", KT_DURATION, "1m", F(queue.retry_min), 0, 1, 30 * DAY,
	  "First retry delay; each further retry doubles it, with jitter." },
	{ "queue", "retry_max", KT_DURATION, "1h", F(queue.retry_max), 0, 1, 30 * DAY,
	  "Cap on the retry delay." },
	{ "queue", "max_message_size", KT_SIZE, "35M", F(queue.max_message_size), 0, 1024, 4ULL << 30,
	  "Largest message accepted, in bytes (SIZE extension)." },
	{ "queue", "min_free", KT_SIZE, "100M", F(queue.min_free), 0, 0, 1ULL << 50,
	  "Below this much free space on the spool's file system new mail is refused "
	  "(452 4.3.1, sendmail exits 75); queued mail still flows. 0 refuses only when "
	  "a write fails." },
	{ "queue", "max_recipients", KT_UINT, "1000", F(queue.max_recipients), 0, 1, 100000,
	  "Most recipients of one message." },
	{ "queue", "delay_warning", KT_DURATION, "4h", F(queue.delay_warning), 0, 0, 365 * DAY,
	  "A message still waiting this long after it arrived gets one \"still trying\" report "
	  "(Action: delayed) to its sender; 0 = never." },
	{ "queue", "report_interval", KT_DURATION, "10m", F(queue.report_interval), 0, 0, 7 * DAY,
	  "No bounce storms: after a report to an address, the reports to it in the next "
	  "interval wait and go together as one summary when it has passed (at most 100 "
	  "messages each; failures and delays apart); 0 = one report per message at once." },

	{ "listen", "socket", KT_PATH, "/run/outbox/outbox.sock", F(listen.socket), 0, 0, 0,
	  "SMTP submission on a Unix socket." },
	{ "listen", "socket_mode", KT_MODE, "0666", F(listen.socket_mode), 0, 0, 0777,
	  "Permissions of the submission socket: who may submit over it. A user it refuses "
	  "gets exit 77 from sendmail, which falls back to pickup/ only when outboxd is not "
	  "running. Under socket activation (outboxd.socket) the unit's SocketMode= decides "
	  "instead; outboxd warns at start and reload when the two differ." },
	{ "listen", "control", KT_PATH, "/run/outbox/control.sock", F(listen.control), 0, 0, 0,
	  "Control socket used by the outbox command." },
	{ "listen", "tcp", KT_HOSTPORT, "", F(listen.tcp), 0, 0, 0,
	  "Optional TCP listener such as 127.0.0.1:2525 or [::1]:2525; empty means off." },
	{ "listen", "tcp_allow_remote", KT_BOOL, "no", F(listen.tcp_allow_remote), bool_choices, 0, 0,
	  "Allow a tcp address that is not loopback (127.0.0.0/8, ::1). Anyone who reaches it "
	  "can relay through your authenticated upstream: firewall it." },
	{ "listen", "idle_timeout", KT_DURATION, "5m", F(listen.idle_timeout), 0, 1, DAY,
	  "A submission client silent this long is disconnected (421)." },
	{ "listen", "max_sessions_per_user", KT_UINT, "50", F(listen.max_sessions_per_user), 0, 1,
	  MAX_SESSIONS,
	  "Most submission sessions open at once for one local user (all TCP clients count as "
	  "one), so that no user can shut the others out; the daemon takes 1000 in all." },

	{ "relay", "provider", KT_STRING, "", R(provider), 0, 0, 0,
	  "A preset: gmail, google-workspace, microsoft365, outlook, ses, sendgrid, mailgun, postmark "
	  "or brevo fills in the keys the provider needs (see PROVIDERS); a key set in any file wins "
	  "over the preset's value, and outbox config marks the preset's." },
	{ "relay", "host", KT_STRING, "smtp.example.org", R(host), 0, 0, 0,
	  "The upstream SMTP server (smarthost)." },
	{ "relay", "port", KT_UINT, "587", R(port), 0, 1, 65535,
	  "Its port." },
	{ "relay", "tls", KT_ENUM, "starttls", R(tls), tls_choices, 0, 0,
	  "starttls, tls (implicit, port 465) or none." },
	{ "relay", "verify", KT_BOOL, "yes", R(verify), bool_choices, 0, 0,
	  "Verify the certificate chain and host name of the upstream." },
	{ "relay", "ca_file", KT_PATH, "", R(ca_file), 0, 0, 0,
	  "CA bundle; empty means the system bundle /etc/ssl/certs/ca-certificates.crt." },
	{ "relay", "auth", KT_ENUM, "auto", R(auth), auth_choices, 0, 0,
	  "auto, plain, login, xoauth2, oauthbearer or none." },
	{ "relay", "user", KT_STRING, "", R(user), 0, 0, 0,
	  "User name for AUTH." },
	{ "relay", "password_file", KT_PATH, "", R(password_file), 0, 0, 0,
	  "File holding the password; must not be readable by others." },
	{ "relay", "password_command", KT_STRING, "", R(password_command), 0, 0, 0,
	  "Command (run without a shell, as [queue] user, also by outbox probe run as root) that "
	  "prints the password or OAuth2 access token." },
	{ "relay", "workers", KT_UINT, "4", R(workers), 0, 1, 256,
	  "Concurrent upstream sessions." },
	{ "relay", "timeout", KT_DURATION, "5m", R(timeout), 0, 1, DAY,
	  "Timeout for each SMTP command and each network read or write." },
	{ "relay", "oauth2_token_url", KT_STRING, "", R(oauth2_token_url), 0, 0, 0,
	  "Built-in OAuth2: the provider's token endpoint (https://oauth2.googleapis.com/token, "
	  "https://login.microsoftonline.com/TENANT/oauth2/v2.0/token); outboxd gets and caches "
	  "access tokens itself and authenticates with XOAUTH2 or OAUTHBEARER; empty = off." },
	{ "relay", "oauth2_client_id", KT_STRING, "", R(oauth2_client_id), 0, 0, 0,
	  "The OAuth2 client (application) ID." },
	{ "relay", "oauth2_client_secret_file", KT_PATH, "", R(oauth2_client_secret_file), 0, 0, 0,
	  "File holding the client secret, if the client has one; must not be readable by others." },
	{ "relay", "oauth2_refresh_token_file", KT_PATH, "", R(oauth2_refresh_token_file), 0, 0, 0,
	  "The refresh token, written by outbox oauth2 login and replaced (tmp, fsync, rename) when "
	  "the provider rotates it, keeping the old file's group and mode: its directory must be "
	  "writable by [queue] user." },
	{ "relay", "oauth2_device_url", KT_STRING, "", R(oauth2_device_url), 0, 0, 0,
	  "Device authorization endpoint for outbox oauth2 login (RFC 8628); empty = the known one "
	  "for Google's and Microsoft's token URLs." },
	{ "relay", "oauth2_scope", KT_STRING, "", R(oauth2_scope), 0, 0, 0,
	  "Scope asked for by outbox oauth2 login (and by outboxd with client_credentials); empty = "
	  "https://mail.google.com/ for Google, https://outlook.office.com/SMTP.Send offline_access "
	  "for Microsoft, https://outlook.office365.com/.default with client_credentials." },
	{ "relay", "oauth2_auth_url", KT_STRING, "", R(oauth2_auth_url), 0, 0, 0,
	  "Authorization endpoint for outbox oauth2 login --browser (the authorization code grant "
	  "with PKCE and a redirect to 127.0.0.1); empty = https://accounts.google.com/o/oauth2/v2/auth "
	  "for Google's token URL, https://login.microsoftonline.com/TENANT/oauth2/v2.0/authorize "
	  "(the token URL's tenant) for Microsoft's." },
	{ "relay", "oauth2_grant", KT_ENUM, "refresh_token", R(oauth2_grant), grant_choices, 0, 0,
	  "refresh_token: outboxd gets access tokens with the refresh token outbox oauth2 login "
	  "stored.  client_credentials (Microsoft 365 app-only access, for unattended servers): "
	  "with the client secret alone (oauth2_client_secret_file), no refresh token and no login; "
	  "user names the mailbox to send as (the application needs the SMTP.SendAsApp permission "
	  "and an Exchange service principal with rights on that mailbox)." },
	{ "relay", "max_rate", KT_STRING, "0", R(max_rate), 0, 0, 0,
	  "At most this many messages per interval through this relay, across its workers and "
	  "across restarts (the times are kept in SPOOL/rate/): 30/m, 2000/d, 100/h, 5/s or "
	  "N/DURATION such as 2/10s; 0 = no limit (Microsoft 365 takes 30/m)." },
	{ "relay", "chunking", KT_BOOL, "yes", R(chunking), bool_choices, 0, 0,
	  "Send messages with BDAT (RFC 3030) when the upstream offers CHUNKING and PIPELINING." },
	{ "relay", "plaintext_auth", KT_BOOL, "no", R(plaintext_auth), bool_choices, 0, 0,
	  "With tls = none, allow AUTH in clear text anyway (the second 'yes, really')." },

	{ "relay.NAME", "priority", KT_UINT, "10", R(priority), 0, 0, 1000,
	  "Lower is tried first; [relay] is 0.  Relays of equal priority are tried in the "
	  "order of the file." },
	{ "relay.NAME", "senders", KT_STRING, "", R(senders), 0, 0, 0,
	  "Only mail from these envelope senders goes here: addresses and *@domain, separated "
	  "by commas or spaces; the most specific match wins (an address, then its domain, "
	  "then a relay with senders empty, which takes any sender)." },

	{ "address", "domain", KT_STRING, "", F(address.domain), 0, 0, 0,
	  "Domain that qualifies bare local names such as root; empty means the host name." },
	{ "address", "postmaster", KT_STRING, "", F(address.postmaster), 0, 0, 0,
	  "Gets a copy of each report of failed delivery (bounce), and the report about a "
	  "report that failed (double bounce); empty = nobody." },

	{ "log", "target", KT_ENUM, "syslog", F(log.target), target_choices, 0, 0,
	  "syslog (facility mail) or stderr." },
	{ "log", "level", KT_ENUM, "info", F(log.level), level_choices, 0, 0,
	  "err, warning, notice, info or debug." },
	{ "log", "metrics_file", KT_PATH, "", F(log.metrics_file), 0, 0, 0,
	  "The counters of outbox metrics in the Prometheus text format, rewritten "
	  "atomically every 15 s (for node exporter's textfile collector); empty = none." },
};

/* Keys whose value is a secret: outbox config shows "(set)". */
static bool key_is_secret(const struct key *k)
{
	return strcmp(k->name, "password_command") == 0;	/* may hold the password itself */
}
/* (the files of secrets are shown: a path is no secret) */

/* Sections that hold free-form name = value maps. */
static const struct {
	const char *section;
	size_t off;
	const char *doc;
} maps[] = {
	{ "aliases", F(aliases), "Recipients: local name = address[, address...]." },
	{ "senders", F(senders), "Envelope senders: local user = address; * is the default for every local user." },
};

#define FIELD(base, k, T) ((T *)((char *)(base) + (k)->off))

struct load_ctx {
	struct config *c;
	FILE *fp;
	const char *path;	/* the file being read, or that an error is about */
	int file;		/* its index in c->files */
	int line;
	int line_too_long;
	int seen[ARRAY_LEN(keys)];	/* line where each key was set (in c->set_in[i]) */
	struct buf errors;
	int nerrors;
	int last_error_line;
};

static void conf_error(struct load_ctx *x, const char *section, const char *name,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void conf_error(struct load_ctx *x, const char *section, const char *name,
		       const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (x->nerrors++)
		buf_addc(&x->errors, '\n');
	if (x->line > 0)
		buf_printf(&x->errors, "%s:%d: ", x->path, x->line);
	else
		buf_printf(&x->errors, "%s: ", x->path);
	if (name)
		buf_printf(&x->errors, "[%s] %s: %s", section, name, msg);
	else
		buf_printf(&x->errors, "%s", msg);
	x->last_error_line = x->line;
}

/* Point x->path and x->line at the file and line that set a key (the
 * main file, line 0, when it was defaulted). */
static void key_line(struct load_ctx *x, const char *section, const char *name)
{
	x->line = 0;
	x->path = x->c->files[0];
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0 && x->seen[i]) {
			x->line = x->seen[i];
			x->path = x->c->files[x->c->set_in[i]];
		}
}

/* An error about a key as a whole: reported at the line that set it. */
static void key_error(struct load_ctx *x, const char *section, const char *name, const char *msg)
{
	key_line(x, section, name);
	conf_error(x, section, name, "%s", msg);
}

static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) { *out = 1; return 0; }
		if (strcasecmp(v, no[i]) == 0) { *out = 0; return 0; }
	}
	return -1;
}

static int parse_hostport(const char *v)
{
	const char *colon;
	uint64_t port;
	if (*v == '\0')
		return 0;
	if (*v == '[') {
		const char *end = strchr(v, ']');
		if (!end || end == v + 1 || end[1] != ':')
			return -1;
		colon = end + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon || colon == v || memchr(v, ':', (size_t)(colon - v)))
			return -1;
	}
	return parse_uint(colon + 1, 65535, &port) < 0 || port == 0 ? -1 : 0;
}

/* Store value v for key k in c (a struct config, or a struct relay for
 * the relay keys); returns an error message or NULL. */
static const char *set_value(void *c, const struct key *k, const char *v)
{
	uint64_t n = 0;
	int b;
	switch (k->type) {
	case KT_STRING:
	case KT_PATH:
		if (k->type == KT_PATH && *v && *v != '/')
			return "must be an absolute path";
		free(*FIELD(c, k, char *));
		*FIELD(c, k, char *) = xstrdup(v);
		return NULL;
	case KT_HOSTPORT:
		if (parse_hostport(v) < 0)
			return "must be HOST:PORT or [IPV6]:PORT";
		free(*FIELD(c, k, char *));
		*FIELD(c, k, char *) = xstrdup(v);
		return NULL;
	case KT_DURATION:
		if (parse_duration(v, &n) < 0)
			return "not a duration (a number with s, m, h or d)";
		break;
	case KT_SIZE:
		if (parse_size(v, &n) < 0)
			return "not a size (a number with K, M or G)";
		break;
	case KT_UINT:
		if (parse_uint(v, UINT64_MAX, &n) < 0)
			return "not a whole number";
		break;
	case KT_MODE:
		if (!*v || strspn(v, "01234567") != strlen(v) || strlen(v) > 4)
			return "not an octal mode such as 0660";
		n = strtoull(v, NULL, 8);
		break;
	case KT_BOOL:
		if (parse_bool(v, &b) < 0)
			return "must be yes or no";
		*FIELD(c, k, int) = b;
		return NULL;
	case KT_ENUM:
		for (int i = 0; k->choices[i]; i++) {
			if (strcasecmp(v, k->choices[i]) == 0) {
				*FIELD(c, k, int) = i;
				return NULL;
			}
		}
		return "not one of the allowed values";
	}
	if ((k->max && n > k->max) || n < k->min)
		return "out of range";
	*FIELD(c, k, uint64_t) = n;
	return NULL;
}

static void map_add(struct map *m, const char *name, const char *value, int line)
{
	m->v = xrealloc(m->v, (m->n + 1) * sizeof *m->v);
	m->v[m->n].name = xstrdup(name);
	m->v[m->n].value = xstrdup(value);
	m->v[m->n].line = line;
	m->n++;
}

const char *map_get(const struct map *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcasecmp(m->v[i].name, name) == 0)
			return m->v[i].value;
	return NULL;
}

/* [aliases] and [senders]; continuation lines append to an alias. */
static void handle_map(struct load_ctx *x, size_t mi, const char *name, const char *value)
{
	struct map *m = (struct map *)((char *)x->c + maps[mi].off);
	struct err e;
	int is_alias = strcmp(maps[mi].section, "aliases") == 0;

	if (!*name || strpbrk(name, "@ \t") || (!is_alias && strcmp(name, "*") != 0 && !addr_is_local_name(name))) {
		conf_error(x, maps[mi].section, name, "not a local name");
		return;
	}
	if (is_alias ? addr_list_check(value, &e) < 0 : addr_check(value, &e) < 0) {
		conf_error(x, maps[mi].section, name, "%s", e.msg);
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		if (strcasecmp(m->v[i].name, name) != 0)
			continue;
		if (m->v[i].file != x->file) {	/* a later file's entry replaces an earlier one's */
			free(m->v[i].value);
			m->v[i].value = xstrdup(value);
			m->v[i].line = x->line;
			m->v[i].file = x->file;
			return;
		}
		if (is_alias && m->v[i].line == x->line - 1) {
			char *joined = xasprintf("%s, %s", m->v[i].value, value);
			free(m->v[i].value);
			m->v[i].value = joined;
			m->v[i].line = x->line;
			return;
		}
		conf_error(x, maps[mi].section, name, "given twice (first on line %d)", m->v[i].line);
		return;
	}
	map_add(m, name, value, x->line);
	m->v[m->n - 1].file = x->file;
}

static void ignore_address(const char *a, void *arg)
{
	(void)a;
	(void)arg;
}

/* Every alias expands: no loop, no chain deeper than rcpt_expand goes. */
static void check_aliases(struct load_ctx *x)
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

/* ---- relays: [relay] and [relay.NAME] ---- */

static bool relay_key(const struct key *k)
{
	return home_of(k) != IN_CONFIG;
}

static void relay_defaults(struct relay *r, bool named)
{
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (home_of(&keys[i]) == IN_RELAY || (named && home_of(&keys[i]) == IN_NAMED))
			(void)set_value(r, &keys[i], keys[i].def);
	if (!named) {
		r->senders = xstrdup("");
		r->priority = 0;
	}
}

static struct relay *relay_new(const char *name)
{
	struct relay *r = xcalloc(1, sizeof *r);
	r->name = xstrdup(name);
	r->seen = xcalloc(ARRAY_LEN(keys), sizeof *r->seen);
	r->set_in = xcalloc(ARRAY_LEN(keys), sizeof *r->set_in);
	relay_defaults(r, *name != '\0');
	return r;
}

static void relay_destroy(struct relay *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		if (relay_key(k) && (k->type == KT_STRING || k->type == KT_PATH || k->type == KT_HOSTPORT))
			free(*FIELD(r, k, char *));
	}
	for (size_t i = 0; i < r->npatterns; i++)
		free(r->patterns[i]);
	free(r->patterns);
	free(r->seen);
	free(r->set_in);
	free(r->name);
	free(r);
}

static bool relay_name_ok(const char *n)
{
	size_t len = strlen(n);
	return len > 0 && len <= RELAY_NAME_MAX && strspn(n, "abcdefghijklmnopqrstuvwxyz"
						      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == len;
}

/* The relay of section ("relay" or "relay.NAME"), made at its first
 * key; NULL (reported) for a bad name or too many relays. */
static struct relay *relay_of_section(struct load_ctx *x, const char *section)
{
	const char *name = section[5] == '.' ? section + 6 : "";
	struct config *c = x->c;
	for (size_t i = 0; i < c->nrelays; i++)
		if (strcmp(c->relays[i]->name, name) == 0)
			return c->relays[i];
	if (section[5] == '.' && !relay_name_ok(name)) {
		conf_error(x, NULL, NULL, "[%s]: a relay's NAME is 1 to %d letters, digits, '-' or '_'", section,
			   RELAY_NAME_MAX);
		return NULL;
	}
	if (strcmp(name, "default") == 0) {	/* outbox probe default, SPOOL/rate/default: [relay]'s */
		conf_error(x, NULL, NULL, "[relay.default]: \"default\" names [relay]; choose another NAME");
		return NULL;
	}
	if (c->nrelays >= RELAYS_MAX) {
		conf_error(x, NULL, NULL, "[%s]: more than %d relays", section, RELAYS_MAX);
		return NULL;
	}
	struct relay *r = relay_new(name);
	r->line = x->line;
	r->file = x->file;
	c->relays = xrealloc(c->relays, (c->nrelays + 1) * sizeof *c->relays);
	c->relays[c->nrelays++] = r;
	return r;
}

static bool is_relay_section(const char *section)
{
	return strncmp(section, "relay", 5) == 0 && (section[5] == '\0' || section[5] == '.');
}

static void relay_entry(struct load_ctx *x, const char *section, const char *name, const char *value)
{
	struct relay *r = relay_of_section(x, section);
	if (!r)
		return;
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		if (!relay_key(k) || strcmp(name, k->name) != 0)
			continue;
		if (home_of(k) == IN_NAMED && !*r->name) {
			conf_error(x, section, name, "only in a [relay.NAME] section ([relay] takes any sender, "
				   "at priority 0)");
			return;
		}
		if (r->seen[i] && r->set_in[i] == x->file) {
			conf_error(x, section, name, "given twice");
			return;
		}
		r->seen[i] = x->line;
		r->set_in[i] = (short)x->file;
		const char *why = set_value(r, k, value);
		if (why)
			conf_error(x, section, name, "%s: '%s'", why, value);
		return;
	}
	conf_error(x, section, name, "unknown key");
}

/* An error about a relay's key as a whole, at the line that set it. */
static void relay_error(struct load_ctx *x, const struct relay *r, const char *name, const char *msg)
{
	char section[RELAY_NAME_MAX + 8];
	snprintf(section, sizeof section, "relay%s%s", *r->name ? "." : "", r->name);
	x->line = r->line;
	x->path = x->c->files[r->file];
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (relay_key(&keys[i]) && strcmp(keys[i].name, name) == 0 && r->seen[i]) {
			x->line = r->seen[i];
			x->path = x->c->files[r->set_in[i]];
		}
	conf_error(x, section, name, "%s", msg);
}

#define SET_BY_PRESET (-2)	/* set_in[k] of a value the relay's provider gave it */

static int relay_key_index(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (home_of(&keys[i]) == IN_RELAY && strcmp(keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* provider = NAME: the preset's value for each key no file set
 * (providers.h); its OAuth2 values only with oauth2_client_id set. */
static void apply_preset(struct load_ctx *x, struct relay *r)
{
	const struct provider *p = provider_find(r->provider);
	char why[300];
	if (!*r->provider)
		return;
	if (!p) {
		snprintf(why, sizeof why, "unknown provider '%s': one of %s", r->provider, provider_names());
		relay_error(x, r, "provider", why);
		return;
	}
	for (const struct preset_value *v = p->values; v->key; v++) {
		int i = relay_key_index(v->key);
		if (i >= 0 && !r->seen[i] && preset_applies(v, *r->oauth2_client_id != '\0')) {
			(void)set_value(r, &keys[i], v->value);
			r->set_in[i] = SET_BY_PRESET;
		}
	}
	if (p->needs_host && !r->seen[relay_key_index("host")]) {
		snprintf(why, sizeof why, "%s: %s", p->name, p->needs_host);
		relay_error(x, r, "provider", why);
	}
}

static int relay_cmp(const void *a, const void *b)
{
	const struct relay *ra = *(const struct relay *const *)a, *rb = *(const struct relay *const *)b;
	if (ra->priority != rb->priority)
		return ra->priority < rb->priority ? -1 : 1;
	return ra->line < rb->line ? -1 : ra->line > rb->line;	/* the file's order */
}

/* [relay] when the file has no relay section; the list by priority;
 * senders parsed; a relay for any sender. */
static void relays_finish(struct load_ctx *x)
{
	struct config *c = x->c;
	if (c->nrelays == 0) {
		c->relays = xcalloc(1, sizeof *c->relays);
		c->relays[c->nrelays++] = relay_new("");
	}
	qsort(c->relays, c->nrelays, sizeof *c->relays, relay_cmp);
	bool any = false;
	for (size_t i = 0; i < c->nrelays; i++) {
		char why[300];
		apply_preset(x, c->relays[i]);
		if (relay_parse_senders(c->relays[i], why, sizeof why) < 0)
			relay_error(x, c->relays[i], "senders", why);
		if (relay_parse_rate(c->relays[i], why, sizeof why) < 0)
			relay_error(x, c->relays[i], "max_rate", why);
		any |= c->relays[i]->npatterns == 0;
	}
	if (!any) {
		x->line = 0;
		x->path = c->files[0];
		conf_error(x, NULL, NULL, "no relay takes mail from any sender: leave senders empty on one "
			   "(mail from root or a report must go somewhere)");
	}
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *x = user;
	if (x->line_too_long)
		return 1;	/* already reported by the reader */
	if (is_relay_section(section)) {
		relay_entry(x, section, name, value);
		return 1;
	}
	for (size_t i = 0; i < ARRAY_LEN(maps); i++) {
		if (strcmp(section, maps[i].section) == 0) {
			handle_map(x, i, name, value);
			return 1;
		}
	}
	int known_section = 0;
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		if (strcmp(section, k->section) != 0 || relay_key(k))
			continue;
		known_section = 1;
		if (strcmp(name, k->name) != 0)
			continue;
		if (x->seen[i] && x->c->set_in[i] == x->file) {
			conf_error(x, section, name, "given twice");
			return 1;
		}
		x->seen[i] = x->line;	/* a later file's value replaces an earlier one's */
		x->c->set_in[i] = (short)x->file;
		const char *why = set_value(x->c, k, value);
		if (why)
			conf_error(x, section, name, "%s: '%s'", why, value);
		return 1;
	}
	if (known_section)
		conf_error(x, section, name, "unknown key");
	else
		conf_error(x, section, name, "unknown section [%s]", section);
	return 1;
}

/* fgets-style reader that counts lines and refuses lines inih would split. */
static char *ini_reader_counting(char *str, int num, void *stream)
{
	struct load_ctx *x = stream;
	if (!fgets(str, num, x->fp))
		return NULL;
	x->line++;
	x->line_too_long = 0;
	size_t n = strlen(str);
	if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(x->fp)) {
		int ch;
		while ((ch = fgetc(x->fp)) != EOF && ch != '\n')
			;
		conf_error(x, NULL, NULL, "line longer than %d characters", num - 2);
		x->line_too_long = 1;
		str[0] = '\0';
	}
	return str;
}

static void apply_defaults(struct config *c)
{
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (!relay_key(&keys[i]))
			(void)set_value(c, &keys[i], keys[i].def);
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
static void check_combinations(struct load_ctx *x, unsigned flags)
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

/* Read one file (the main one or a snippet) into x->c; fd was opened
 * under the trust rule (conftrust.h) and is closed here. */
static void read_file(struct load_ctx *x, int fd)
{
	FILE *fp = fdopen(fd, "r");
	if (!fp) {
		x->line = 0;
		conf_error(x, NULL, NULL, "%s", strerror(errno));
		close(fd);
		return;
	}
	x->fp = fp;
	x->line = 0;
	x->last_error_line = 0;
	int rc = ini_parse_stream(ini_reader_counting, x, on_ini_entry, x);
	if (rc > 0 && rc != x->last_error_line) {
		x->line = rc;
		conf_error(x, NULL, NULL, "syntax error (expected [section] or key = value)");
	}
	fclose(fp);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.conf names in the directory d, by name; NULL-ended. */
static char **snippet_names(DIR *d)
{
	char **list = xcalloc(1, sizeof *list);
	size_t n = 0;
	for (struct dirent *de; d && (de = readdir(d));) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;	/* not *.conf (editor backups, .dpkg-dist and the like) */
		list = xrealloc(list, (n + 2) * sizeof *list);
		list[n++] = xstrdup(de->d_name);
		list[n] = NULL;
	}
	qsort(list, n, sizeof *list, by_name);
	return list;
}

static void add_file(struct config *c, const char *path)
{
	c->files = xrealloc(c->files, (c->nfiles + 1) * sizeof *c->files);
	c->files[c->nfiles++] = xstrdup(path);
}

/* outbox.conf.d/ beside path, itself under the trust rule, and each
 * *.conf in it, opened through the directory's descriptor. */
static void read_snippets(struct load_ctx *x, const char *path)
{
	char *copy = xstrdup(path), *slash = strrchr(copy, '/');
	char *dir = xasprintf("%s/outbox.conf.d", slash ? (*slash = '\0', *copy ? copy : "/") : ".");
	struct err e;
	int fd = conf_open_dir(dir, &e);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	x->line = 0;
	x->path = dir;	/* what the errors below are about */
	if (fd < 0 && errno != ENOENT)
		conf_error(x, NULL, NULL, "%s", e.msg);
	else if (fd >= 0 && !d)
		conf_error(x, NULL, NULL, "cannot read it: %s", strerror(errno));
	if (fd >= 0 && !d)
		close(fd);
	char **names = snippet_names(d);
	for (char **p = names; *p; p++) {
		x->file = (int)x->c->nfiles;
		char *full = xasprintf("%s/%s", dir, *p);
		add_file(x->c, full);
		free(full);
		x->path = x->c->files[x->file];
		int sfd = conf_open_at(dirfd(d), *p, x->path, &e);
		if (sfd < 0) {
			x->line = 0;
			conf_error(x, NULL, NULL, "%s", e.msg);
		} else {
			read_file(x, sfd);
		}
		free(*p);
	}
	free(names);
	if (d)
		closedir(d);
	free(dir);
	free(copy);
}

struct config *config_load(const char *path, unsigned flags, struct buf *errors)
{
	struct load_ctx x = { .path = path };
	struct err e;
	x.c = xcalloc(1, sizeof *x.c);
	x.c->refs = 1;
	x.c->path = xstrdup(path);
	x.c->set_in = xcalloc(ARRAY_LEN(keys), sizeof *x.c->set_in);
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		x.c->set_in[i] = -1;
	add_file(x.c, path);
	apply_defaults(x.c);
	buf_init(&x.errors);

	int fd = conf_open_file(path, &e);
	if (fd < 0) {
		if (errno == ENOENT && (flags & CONF_MISSING_OK)) {
			relays_finish(&x);
			buf_free(&x.errors);
			return x.c;
		}
		if (errors)
			buf_printf(errors, "%s: %s", path, e.msg);
		buf_free(&x.errors);
		config_free(x.c);
		return NULL;
	}
	read_file(&x, fd);
	read_snippets(&x, path);
	x.file = 0;
	x.path = path;
	relays_finish(&x);
	check_combinations(&x, flags);
	check_aliases(&x);
	if (x.nerrors) {
		if (errors)
			buf_add(errors, x.errors.data, x.errors.len);
		buf_free(&x.errors);
		config_free(x.c);
		return NULL;
	}
	buf_free(&x.errors);
	return x.c;
}

static void map_free(struct map *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].name);
		free(m->v[i].value);
	}
	free(m->v);
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		if (!relay_key(k) && (k->type == KT_STRING || k->type == KT_PATH || k->type == KT_HOSTPORT))
			free(*FIELD(c, k, char *));
	}
	for (size_t i = 0; i < c->nrelays; i++)
		relay_destroy(c->relays[i]);
	free(c->relays);
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i]);
	free(c->files);
	free(c->set_in);
	map_free(&c->aliases);
	map_free(&c->senders);
	free(c->path);
	free(c);
}

struct config *config_ref(struct config *c)
{
	c->refs++;
	return c;
}

void config_unref(struct config *c)
{
	if (c && --c->refs == 0)
		config_free(c);
}

static const char *format_value(const void *c, const struct key *k, char *out, size_t n)
{
	uint64_t v = 0;
	if (k->type != KT_STRING && k->type != KT_PATH && k->type != KT_HOSTPORT
	    && k->type != KT_BOOL && k->type != KT_ENUM)
		v = *FIELD(c, k, uint64_t);
	switch (k->type) {
	case KT_STRING: case KT_PATH: case KT_HOSTPORT:
		return *FIELD(c, k, char *);
	case KT_DURATION: return format_duration(v, out, n);
	case KT_SIZE: return format_size(v, out, n);
	case KT_UINT: snprintf(out, n, "%llu", (unsigned long long)v); return out;
	case KT_MODE: snprintf(out, n, "0%03llo", (unsigned long long)v); return out;
	case KT_BOOL: case KT_ENUM: return k->choices[*FIELD(c, k, int)];
	}
	return "";
}

/* The keys of one relay, as a section: [relay] or [relay.NAME]; those
 * equal to def's skipped when changed_only; "# default" marks when
 * marks. */
/* The mark after a value in outbox config: "# default", or with
 * snippets in outbox.conf.d/ the file that set it. */
static const char *mark(const struct config *c, bool marks, bool is_default, int file, char *out, size_t n)
{
	if (!marks)
		return "";
	if (is_default)
		return "    # default";
	if (c->nfiles > 1 && file >= 0 && (size_t)file < c->nfiles) {
		snprintf(out, n, "    # %s", c->files[file]);
		return out;
	}
	return "";
}

static void print_relay(const struct config *c, const struct relay *r, FILE *out, bool changed_only,
			bool marks)
{
	char from[PATH_MAX + 8];
	const struct provider *p = provider_find(r->provider);	/* (Postmark's user is its token) */
	struct relay *def = relay_new(r->name);
	char v[64], dv[64];
	bool header = *r->name != '\0';	/* a named relay shows at least its section */
	if (header)
		fprintf(out, "\n[relay.%s]\n", r->name);
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		if (home_of(k) == IN_CONFIG || (home_of(k) == IN_NAMED && !*r->name))
			continue;
		const char *val = format_value(r, k, v, sizeof v);
		bool preset = r->set_in[i] == SET_BY_PRESET;
		bool is_default = !preset && strcmp(val, format_value(def, k, dv, sizeof dv)) == 0;
		bool secret = key_is_secret(k) || (strcmp(k->name, "user") == 0 && p && p->user == PU_SECRET);
		if (changed_only && is_default)
			continue;
		if (!header)
			fprintf(out, "\n[relay%s%s]\n", *r->name ? "." : "", r->name);
		header = true;
		if (preset)	/* "# provider gmail": a value of the preset */
			snprintf(from, sizeof from, "    # provider %s", r->provider);
		fprintf(out, "%s = %s%s\n", k->name, marks && secret && *val ? "(set)" : val,
			preset ? (marks ? from : "")
			       : mark(c, marks, is_default, r->seen[i] ? r->set_in[i] : -1, from, sizeof from));
	}
	relay_destroy(def);
}

/* Every key of c in the table's order, the relays where [relay] is;
 * outbox config (marks: "# default", secrets hidden) or outboxd -t -v. */
static void print_keys(const struct config *c, FILE *out, bool changed_only, bool marks)
{
	struct config *def = xcalloc(1, sizeof *def);
	const char *section = "";
	char v[64], dv[64], from[PATH_MAX + 8];
	bool relays_done = false;
	apply_defaults(def);
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		if (relay_key(k)) {
			for (size_t j = 0; !relays_done && j < c->nrelays; j++)
				print_relay(c, c->relays[j], out, changed_only, marks);
			relays_done = true;
			section = "relay";
			continue;
		}
		const char *val = format_value(c, k, v, sizeof v);
		bool is_default = strcmp(val, format_value(def, k, dv, sizeof dv)) == 0;
		if (changed_only && is_default)
			continue;
		if (strcmp(section, k->section) != 0) {
			fprintf(out, "%s[%s]\n", *section ? "\n" : "", k->section);
			section = k->section;
		}
		fprintf(out, "%s = %s%s\n", k->name, marks && key_is_secret(k) && *val ? "(set)" : val,
			mark(c, marks, is_default, c->set_in ? c->set_in[i] : -1, from, sizeof from));
	}
	for (size_t i = 0; i < ARRAY_LEN(maps); i++) {
		const struct map *m = (const struct map *)((const char *)c + maps[i].off);
		if (changed_only && m->n == 0)
			continue;
		fprintf(out, "%s[%s]%s\n", *section ? "\n" : "", maps[i].section, marks && !m->n ? "    # empty" : "");
		section = maps[i].section;
		for (size_t j = 0; j < m->n; j++)
			fprintf(out, "%s = %s%s\n", m->v[j].name, m->v[j].value,
				mark(c, marks, false, m->v[j].file, from, sizeof from));
	}
	config_free(def);
}

void config_dump(const struct config *c, FILE *out)
{
	print_keys(c, out, false, false);
}

void config_print(const struct config *c, FILE *out, bool changed_only)
{
	print_keys(c, out, changed_only, true);
}

/* Text for an mdoc page: a sentence a line (mdoc's rule), no line over
 * 78 columns, never a line that starts with '.' or '\'' (a macro). */
void config_doc_text(FILE *out, const char *text)
{
	const char *p = text;
	while (*p) {
		const char *sentence = NULL, *space = NULL, *cut;
		for (const char *q = p + 1; *q && q - p <= 78; q++) {
			if (*q != ' ' || q[1] == '.' || q[1] == '\'')
				continue;
			if (q[-1] == '.') {
				sentence = q;
				break;
			}
			space = q;
		}
		if (sentence)
			cut = sentence;
		else if (strlen(p) <= 78)
			cut = p + strlen(p);
		else
			cut = space ? space : strchrnul(p + 1, ' ');
		fprintf(out, "%.*s\n", (int)(cut - p), p);
		for (p = cut; *p == ' '; p++)
			;
	}
}

void config_doc_mdoc(FILE *out)
{
	const char *section = "";
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		const char *sec = home_of(k) == IN_NAMED ? "relay.NAME" : k->section;
		if (strcmp(section, sec) != 0) {
			if (*section)
				fprintf(out, ".El\n");
			fprintf(out, ".Ss [%s]\\&\n", section = sec);
			if (home_of(k) == IN_NAMED)
				fprintf(out, "A further relay (see\n.Sx RELAYS ) :\nevery key of\n.Ic [relay] ,\n"
					     "with the same defaults, and these.\n");
			fprintf(out, ".Bl -tag -width Ds\n");
		}
		fprintf(out, ".It Ic %s No = Ar %s\n", k->name, *k->def ? k->def : "(empty)");
		config_doc_text(out, k->doc);
	}
	fprintf(out, ".El\n");
	for (size_t i = 0; i < ARRAY_LEN(maps); i++) {
		fprintf(out, ".Ss [%s]\\&\n", maps[i].section);
		config_doc_text(out, maps[i].doc);
	}
}

const char *tls_mode_name(int mode)
{
	return tls_choices[mode];
}

const char *auth_mode_name(int mode)
{
	return auth_choices[mode];
}
