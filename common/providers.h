/*
 * providers.h - the presets of `provider = NAME` (SPEC "Providers").
 *
 * Owns: the table of known mail providers, each with the relay keys its
 * preset fills in (as the user would write them), what `outbox setup`
 * asks for (an OAuth2 login, an app password or an API key) and the
 * provider's published limits with the date they were checked; and the
 * outbox.conf(5) section generated from that same table.
 *
 * Invariants: every key a preset names is a relay key of the config
 * table (tests/unit/test_config.c loads each preset); a preset value
 * only applies to a key no file sets (config.c applies it, and marks it
 * for `outbox config`); OAuth2 values (PV_OAUTH2) apply only to a relay
 * with oauth2_client_id set, so that the same preset serves an app
 * password.
 */
#ifndef OUTBOX_PROVIDERS_H
#define OUTBOX_PROVIDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define PRESET_VALUES_MAX 12
#define PROVIDERS_CHECKED "2026-12-07"	/* when the figures below were looked up */

enum preset_when {
	PV_ALWAYS,	/* applies whenever provider = NAME */
	PV_OAUTH2,	/* only with oauth2_client_id set (built-in OAuth2) */
	PV_PASSWORD,	/* only without it (a password or an API key) */
};

struct preset_value {
	const char *key;	/* a [relay] key */
	const char *value;
	enum preset_when when;
};

/* What the relay's `user` is, for `outbox setup`. */
enum provider_user {
	PU_ADDRESS,	/* the mailbox or login given to setup */
	PU_PRESET,	/* fixed by the preset (SendGrid: "apikey") */
	PU_SECRET,	/* the secret itself (Postmark's server token) */
};

/* How `outbox setup` logs in. */
enum provider_login {
	PL_PASSWORD,	/* an app password or API key, read into password_file */
	PL_OAUTH2,	/* outbox oauth2 login (needs a client ID) */
	PL_EITHER,	/* a password, or OAuth2 when a client ID is given */
};

struct provider {
	const char *name;		/* as in provider = NAME */
	const char *title;		/* for people */
	enum provider_login login;
	enum provider_user user;
	const char *secret_name;	/* what setup asks for: "app password" */
	const char *needs_host;		/* non-NULL: no usable host without it; why */
	struct preset_value values[PRESET_VALUES_MAX];	/* ended by a NULL key */
	const char *limits;		/* the published limits, for outbox.conf(5) */
};

/* The provider called name (exact, lower case); NULL if none. */
const struct provider *provider_find(const char *name);
/* The i-th provider, NULL past the last. */
const struct provider *provider_at(size_t i);
/* "gmail, google-workspace, ...": for messages. */
const char *provider_names(void);
/* Does this preset value apply to a relay with (oauth2) or without
 * OAuth2? */
bool preset_applies(const struct preset_value *v, bool oauth2);


#endif
