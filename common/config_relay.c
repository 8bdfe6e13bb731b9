/*
 * config_relay.c - the relays of a configuration: [relay] and each
 * [relay.NAME], their defaults, a provider's preset (providers.h), the
 * list by priority (relay.h).
 *
 * INVARIANT: a loaded configuration has at least one relay, and one that
 * takes mail from any sender (relays_finish reports it otherwise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "providers.h"


static void relay_defaults(struct relay *r, bool named)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (key_home_of(&config_keys[i]) == IN_RELAY || (named && key_home_of(&config_keys[i]) == IN_NAMED))
			(void)key_set_value(r, &config_keys[i], config_keys[i].def);
	if (!named) {
		r->senders = xstrdup("");
		r->priority = 0;
	}
}

struct relay *conf_relay_new(const char *name)
{
	struct relay *r = xcalloc(1, sizeof *r);
	r->name = xstrdup(name);
	r->seen = xcalloc(config_nkeys, sizeof *r->seen);
	r->set_in = xcalloc(config_nkeys, sizeof *r->set_in);
	relay_defaults(r, *name != '\0');
	return r;
}

void conf_relay_destroy(struct relay *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key *k = &config_keys[i];
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
	struct relay *r = conf_relay_new(name);
	r->line = x->line;
	r->file = x->file;
	c->relays = xrealloc(c->relays, (c->nrelays + 1) * sizeof *c->relays);
	c->relays[c->nrelays++] = r;
	return r;
}

bool is_relay_section(const char *section)
{
	return strncmp(section, "relay", 5) == 0 && (section[5] == '\0' || section[5] == '.');
}

void relay_entry(struct load_ctx *x, const char *section, const char *name, const char *value)
{
	struct relay *r = relay_of_section(x, section);
	if (!r)
		return;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key *k = &config_keys[i];
		if (!relay_key(k) || strcmp(name, k->name) != 0)
			continue;
		if (key_home_of(k) == IN_NAMED && !*r->name) {
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
		const char *why = key_set_value(r, k, value);
		if (why)
			conf_error(x, section, name, "%s: '%s'", why, value);
		return;
	}
	conf_error(x, section, name, "unknown key");
}

/* An error about a relay's key as a whole, at the line that set it. */
void relay_error(struct load_ctx *x, const struct relay *r, const char *name, const char *msg)
{
	char section[RELAY_NAME_MAX + 8];
	snprintf(section, sizeof section, "relay%s%s", *r->name ? "." : "", r->name);
	x->line = r->line;
	x->path = x->c->files[r->file];
	for (size_t i = 0; i < config_nkeys; i++)
		if (relay_key(&config_keys[i]) && strcmp(config_keys[i].name, name) == 0 && r->seen[i]) {
			x->line = r->seen[i];
			x->path = x->c->files[r->set_in[i]];
		}
	conf_error(x, section, name, "%s", msg);
}

static int relay_key_index(const char *name)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (key_home_of(&config_keys[i]) == IN_RELAY && strcmp(config_keys[i].name, name) == 0)
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
			(void)key_set_value(r, &config_keys[i], v->value);
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
void relays_finish(struct load_ctx *x)
{
	struct config *c = x->c;
	if (c->nrelays == 0) {
		c->relays = xcalloc(1, sizeof *c->relays);
		c->relays[c->nrelays++] = conf_relay_new("");
	}
	qsort(c->relays, c->nrelays, sizeof *c->relays, relay_cmp);
	bool any = false;
	for (size_t i = 0; i < c->nrelays; i++) {
		struct err e;
		apply_preset(x, c->relays[i]);
		if (relay_parse_senders(c->relays[i], &e) < 0)
			relay_error(x, c->relays[i], "senders", e.msg);
		if (relay_parse_rate(c->relays[i], &e) < 0)
			relay_error(x, c->relays[i], "max_rate", e.msg);
		any |= c->relays[i]->npatterns == 0;
	}
	if (!any) {
		x->line = 0;
		x->path = c->files[0];
		conf_error(x, NULL, NULL, "no relay takes mail from any sender: leave senders empty on one "
			   "(mail from root or a report must go somewhere)");
	}
}
