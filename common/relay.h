/*
 * relay.h - an upstream as a value (SPEC "Relays").
 *
 * `[relay]` is the default relay; every `[relay.NAME]` adds one with
 * the same keys plus `priority` and `senders`.  The config (config.c)
 * builds the list, sorted by priority (lower first; [relay] is 0, a
 * named relay 10 unless it says), and a relay never changes once
 * loaded: SIGHUP builds a new list.
 *
 * Routing (relay_route, pure): the relays whose `senders` match the
 * envelope sender most specifically (an exact address, then
 * `*@domain`, then an empty `senders`, which takes any sender), in
 * priority order; a message fails over along that list.  The null
 * sender (a report) goes where any sender may.  The config refuses a
 * list where no relay takes any sender, so every message has a route.
 */
#ifndef OUTBOX_RELAY_H
#define OUTBOX_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define RELAYS_MAX 32		/* relays in one configuration */
#define RELAY_NAME_MAX 32	/* octets of NAME in [relay.NAME] */

/* How outboxd gets a relay's access tokens (SPEC "OAuth2"). */
enum oauth2_grant { OAUTH2_REFRESH_TOKEN, OAUTH2_CLIENT_CREDENTIALS };

struct relay {
	char *name;		/* NAME of [relay.NAME]; "" for [relay] */
	char *provider;		/* a preset (providers.h), "" none */
	char *host;
	uint64_t port;
	int tls;		/* enum tls_mode */
	int verify;
	char *ca_file;
	int auth;		/* enum auth_mode */
	char *user;
	char *password_file;
	char *password_command;
	uint64_t workers;
	uint64_t timeout;
	int plaintext_auth;
	int chunking;
	char *oauth2_token_url;		/* built-in OAuth2 (SPEC "OAuth2"): "" = off */
	char *oauth2_client_id;
	char *oauth2_client_secret_file;
	char *oauth2_refresh_token_file;
	char *oauth2_device_url;	/* "": the known one for the token URL's provider */
	char *oauth2_scope;		/* "": the known one for the token URL's provider */
	char *oauth2_auth_url;		/* "": the known one for the token URL's provider */
	int oauth2_grant;		/* enum oauth2_grant */
	char *max_rate;		/* as written: "0", "30/m", "2000/d", "2/5s" */
	uint64_t rate_n, rate_per;	/* the same: n messages per rate_per seconds; n 0: no limit */
	uint64_t priority;
	char *senders;		/* as written: "*@example.org, bob@x.org" */
	char **patterns;	/* the same, split: an address, or *@domain */
	size_t npatterns;
	int line, file;		/* where its section first came, for errors */
	int *seen;		/* while loading: the line that set each key */
	short *set_in;		/* the file (config.files) that set each key, -1 none */
	/* (config.c frees a relay, through its key table) */
};

/* What the log and the metrics call it: NAME, or for [relay] its host. */
const char *relay_label(const struct relay *r);

/* Split r->senders into patterns; -1 with e naming the bad one. */
int relay_parse_senders(struct relay *r, struct err *e);

/* Parse r->max_rate into rate_n and rate_per; -1 with e. */
int relay_parse_rate(struct relay *r, struct err *e);

/* How specifically r takes mail from sender: 3 its address is listed,
 * 2 its domain is, 1 r takes any sender, 0 not at all. */
int relay_match(const struct relay *r, const char *sender);

/* The route for sender: indexes into relays[0..n) (sorted by
 * priority), the most specific ones in order; how many (0 if none). */
size_t relay_route(const struct relay *const *relays, size_t n, const char *sender, uint8_t out[RELAYS_MAX]);

#endif
