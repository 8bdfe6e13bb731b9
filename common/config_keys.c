/*
 * config_keys.c - the declarative key table of the configuration.
 *
 * Everything about a key lives in its row of config_keys[]: section,
 * name, type, default (as the user would write it), the field it fills
 * and a line of documentation.  Parsing (config_load.c), defaults, the
 * checks, `outboxd -t -v` and `outbox config` (config_print.c) and the
 * outbox.conf(5) reference (man/confdoc.c) all walk that one table;
 * adding a key is adding a row (and its field in struct config or
 * struct relay).  Also here: how a value of each key type is read
 * (key_set_value) and the [aliases]/[senders] maps.
 *
 * INVARIANT: every default in the table is a valid value of its key
 * (config_apply_defaults ignores what key_set_value says).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_keys.h"
#include "units.h"


static const char *const tls_choices[] = { "starttls", "tls", "none", NULL };
static const char *const auth_choices[] = { "auto", "plain", "login", "xoauth2", "oauthbearer", "none", NULL };
static const char *const bool_choices[] = { "no", "yes", NULL };
static const char *const target_choices[] = { "syslog", "stderr", NULL };
static const char *const level_choices[] = { "err", "warning", "notice", "info", "debug", NULL };
static const char *const grant_choices[] = { "refresh_token", "client_credentials", NULL };	/* enum oauth2_grant */

#define F(field) offsetof(struct config, field)
#define R(field) offsetof(struct relay, field)
#define DAY (86400ULL)

const struct key config_keys[] = {
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

const size_t config_nkeys = sizeof config_keys / sizeof config_keys[0];

/* (the files of secrets are shown: a path is no secret) */

/* Sections that hold free-form name = value maps. */
const struct map_doc config_maps[] = {
	{ "aliases", F(aliases), "Recipients: local name = address[, address...]." },
	{ "senders", F(senders), "Envelope senders: local user = address; * is the default for every local user." },
};

const size_t config_nmaps = sizeof config_maps / sizeof config_maps[0];


/* Where a key's value lands: struct config, or a struct relay of
 * [relay] and every [relay.NAME] (section "relay"), or of the named
 * relays only (section "relay.NAME"). */
enum key_home key_home_of(const struct key *k)
{
	if (strcmp(k->section, "relay") == 0)
		return IN_RELAY;
	return strcmp(k->section, "relay.NAME") == 0 ? IN_NAMED : IN_CONFIG;
}

/* ---- relays: [relay] and [relay.NAME] ---- */

bool relay_key(const struct key *k)
{
	return key_home_of(k) != IN_CONFIG;
}

/* Keys whose value is a secret: outbox config shows "(set)". */
bool key_is_secret(const struct key *k)
{
	return strcmp(k->name, "password_command") == 0;	/* may hold the password itself */
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
const char *key_set_value(void *c, const struct key *k, const char *v)
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

void config_apply_defaults(struct config *c)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (!relay_key(&config_keys[i]))
			(void)key_set_value(c, &config_keys[i], config_keys[i].def);
}

const char *map_get(const struct map *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcasecmp(m->v[i].name, name) == 0)
			return m->v[i].value;
	return NULL;
}

const char *tls_mode_name(int mode)
{
	return tls_choices[mode];
}

const char *auth_mode_name(int mode)
{
	return auth_choices[mode];
}
