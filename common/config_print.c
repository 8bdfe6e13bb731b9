/*
 * config_print.c - the effective configuration as text: `outboxd -t -v`
 * (every value) and `outbox config` (marks: "# default", the file that
 * set a value, the preset's; secrets shown as "(set)"), in the key
 * table's order.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "providers.h"
#include "units.h"


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

/* " = " before a value; " =" before one that begins with ';', which
 * inih would take for a comment after a space ("user =;x" loads as
 * ";x", "user = ;x" as nothing): the dump loads as the file did. */
static const char *assign(const char *val)
{
	return val[0] == ';' ? " =" : " = ";
}

static void print_relay(const struct config *c, const struct relay *r, FILE *out, bool changed_only,
			bool marks)
{
	char from[PATH_MAX + 8];
	const struct provider *p = provider_find(r->provider);	/* (Postmark's user is its token) */
	struct relay *def = conf_relay_new(r->name);
	char v[64], dv[64];
	bool header = *r->name != '\0';	/* a named relay shows at least its section */
	if (header)
		fprintf(out, "\n[relay.%s]\n", r->name);
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key *k = &config_keys[i];
		if (key_home_of(k) == IN_CONFIG || (key_home_of(k) == IN_NAMED && !*r->name))
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
		val = marks && secret && *val ? "(set)" : val;
		fprintf(out, "%s%s%s%s\n", k->name, assign(val), val,
			preset ? (marks ? from : "")
			       : mark(c, marks, is_default, r->seen[i] ? r->set_in[i] : -1, from, sizeof from));
	}
	conf_relay_destroy(def);
}

/* Every key of c in the table's order, the relays where [relay] is;
 * outbox config (marks: "# default", secrets hidden) or outboxd -t -v. */
static void print_keys(const struct config *c, FILE *out, bool changed_only, bool marks)
{
	struct config *def = xcalloc(1, sizeof *def);
	const char *section = "";
	char v[64], dv[64], from[PATH_MAX + 8];
	bool relays_done = false;
	config_apply_defaults(def);
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key *k = &config_keys[i];
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
		val = marks && key_is_secret(k) && *val ? "(set)" : val;
		fprintf(out, "%s%s%s%s\n", k->name, assign(val), val,
			mark(c, marks, is_default, c->set_in ? c->set_in[i] : -1, from, sizeof from));
	}
	for (size_t i = 0; i < config_nmaps; i++) {
		const struct map *m = (const struct map *)((const char *)c + config_maps[i].off);
		if (changed_only && m->n == 0)
			continue;
		fprintf(out, "%s[%s]%s\n", *section ? "\n" : "", config_maps[i].section, marks && !m->n ? "    # empty" : "");
		section = config_maps[i].section;
		for (size_t j = 0; j < m->n; j++)
			fprintf(out, "%s%s%s%s\n", m->v[j].name, assign(m->v[j].value), m->v[j].value,
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
