/*
 * relay.c - the relay as a value and routing by sender (relay.h).
 */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "util.h"

const char *relay_label(const struct relay *r)
{
	return *r->name ? r->name : r->host;
}

static void add_pattern(struct relay *r, const char *p, size_t len)
{
	r->patterns = xrealloc(r->patterns, (r->npatterns + 1) * sizeof *r->patterns);
	r->patterns[r->npatterns++] = xstrndup(p, len);
}

int relay_parse_senders(struct relay *r, char *why, size_t n)
{
	const char *p = r->senders;
	while (*p) {
		p += strspn(p, ", \t");
		size_t len = strcspn(p, ", \t");
		if (!len)
			break;
		char *one = xstrndup(p, len);
		bool ok = strncmp(one, "*@", 2) == 0 ? addr_is_domain(one + 2)
						     : strchr(one, '@') && addr_check(one, NULL) == 0;
		if (!ok) {
			snprintf(why, n, "'%s' is neither an address nor *@domain", one);
			free(one);
			return -1;
		}
		free(one);
		add_pattern(r, p, len);
		p += len;
	}
	return 0;
}

int relay_match(const struct relay *r, const char *sender)
{
	if (r->npatterns == 0)
		return 1;
	const char *at = strrchr(sender, '@');
	int best = 0;
	for (size_t i = 0; i < r->npatterns; i++) {
		const char *p = r->patterns[i];
		if (strcasecmp(p, sender) == 0 && *sender)
			return 3;
		if (at && strncmp(p, "*@", 2) == 0 && strcasecmp(p + 2, at + 1) == 0)
			best = 2;
	}
	return best;
}

size_t relay_route(const struct relay *const *relays, size_t n, const char *sender, uint8_t out[RELAYS_MAX])
{
	int level[RELAYS_MAX], best = 0;
	for (size_t i = 0; i < n && i < RELAYS_MAX; i++) {
		level[i] = relay_match(relays[i], sender);
		if (level[i] > best)
			best = level[i];
	}
	size_t k = 0;
	for (size_t i = 0; best && i < n && i < RELAYS_MAX; i++)
		if (level[i] == best)
			out[k++] = (uint8_t)i;
	return k;
}
