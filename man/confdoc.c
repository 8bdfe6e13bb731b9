/*
 * confdoc - copy an mdoc page from stdin to stdout, replacing the line
 * ".\" @KEYS@" with the key reference generated from the configuration
 * table (common/config_keys.c), and ".\" @PROVIDERS@" with the presets
 * of common/providers.c, so outbox.conf(5) cannot drift from the code.
 * The generator is this program's alone: the daemon and the tool carry
 * none of its text code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config_keys.h"
#include "../common/providers.h"


/* Text for an mdoc page: a sentence a line (mdoc's rule), no line over
 * 78 columns, never a line that starts with '.' or '\'' (a macro). */
static void doc_text(FILE *out, const char *text)
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

static void keys_mdoc(FILE *out)
{
	const char *section = "";
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key *k = &config_keys[i];
		const char *sec = key_home_of(k) == IN_NAMED ? "relay.NAME" : k->section;
		if (strcmp(section, sec) != 0) {
			if (*section)
				fprintf(out, ".El\n");
			fprintf(out, ".Ss [%s]\\&\n", section = sec);
			if (key_home_of(k) == IN_NAMED)
				fprintf(out, "A further relay (see\n.Sx RELAYS ) :\nevery key of\n.Ic [relay] ,\n"
					     "with the same defaults, and these.\n");
			fprintf(out, ".Bl -tag -width Ds\n");
		}
		fprintf(out, ".It Ic %s No = Ar %s\n", k->name, *k->def ? k->def : "(empty)");
		doc_text(out, k->doc);
	}
	fprintf(out, ".El\n");
	for (size_t i = 0; i < config_nmaps; i++) {
		fprintf(out, ".Ss [%s]\\&\n", config_maps[i].section);
		doc_text(out, config_maps[i].doc);
	}
}

/* One sentence a line (mdoc), a long value on a line of its own. */
static void doc_values(FILE *out, const struct provider *p, enum preset_when when, const char *intro)
{
	bool any = false;
	for (const struct preset_value *v = p->values; v->key; v++) {
		if (v->when != when)
			continue;
		if (!any)
			fprintf(out, "%s\n.Bl -item -compact\n", intro);
		any = true;
		fprintf(out, ".It\n.Ic %s No = Li \"%s\"\n", v->key, v->value);
	}
	if (any)
		fprintf(out, ".El\n");
}

static const char *const login_doc[] = {
	[PL_PASSWORD] = "outbox setup reads the secret into password_file.",
	[PL_OAUTH2] = "outbox setup runs outbox oauth2 login (a client ID is needed).",
	[PL_EITHER] = "outbox setup reads an app password, or with --client-id runs outbox oauth2 login.",
};

static void providers_mdoc(FILE *out)
{
	fprintf(out, ".Bl -tag -width Ds\n");
	const struct provider *p;
	for (size_t i = 0; (p = provider_at(i)); i++) {
		fprintf(out, ".It Ic %s\n%s.\n", p->name, p->title);
		doc_values(out, p, PV_ALWAYS, "Sets:");
		doc_values(out, p, PV_OAUTH2, "With oauth2_client_id set, also:");
		if (p->needs_host) {
			char *text = xasprintf("No host: %s.", p->needs_host);
			doc_text(out, text);
			free(text);
		}
		doc_text(out, login_doc[p->login]);
		doc_text(out, p->limits);
	}
	fprintf(out, ".El\n");
}


int main(void)
{
	char line[4096];
	int found = 0;
	while (fgets(line, sizeof line, stdin)) {
		if (strcmp(line, ".\\\" @KEYS@\n") == 0) {
			keys_mdoc(stdout);
			found = 1;
		} else if (strcmp(line, ".\\\" @PROVIDERS@\n") == 0) {
			providers_mdoc(stdout);
		} else {
			fputs(line, stdout);
		}
	}
	if (!found) {
		fprintf(stderr, "confdoc: no @KEYS@ marker in input\n");
		return 1;
	}
	return 0;
}
