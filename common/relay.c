/*
 * relay.c - the relay as a value and routing by sender (relay.h).
 */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "units.h"
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

int relay_parse_senders(struct relay *r, struct err *e)
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
			err_set(e, "'%s' is neither an address nor *@domain", one);
			free(one);
			return -1;
		}
		free(one);
		add_pattern(r, p, len);
		p += len;
	}
	return 0;
}

int relay_parse_rate(struct relay *r, struct err *e)
{
	const char *s = r->max_rate, *slash = strchr(s, '/');
	uint64_t count = 0, per = 0;
	r->rate_n = r->rate_per = 0;
	if (strcmp(s, "0") == 0 || !*s)
		return 0;
	char num[24];
	size_t len = slash ? (size_t)(slash - s) : 0;
	if (!slash || len == 0 || len >= sizeof num || strspn(s, "0123456789") != len) {
		return err_set(e, "'%s' is not N/s, N/m, N/h, N/d (or N/DURATION), or 0", s);
	}
	memcpy(num, s, len);
	num[len] = '\0';
	count = strtoull(num, NULL, 10);
	const char *unit = slash + 1;
	if (strlen(unit) == 1 && strchr("smhd", *unit))	/* "30/m": per one of them */
		per = *unit == 's' ? 1 : *unit == 'm' ? 60 : *unit == 'h' ? 3600 : 86400;
	else if (parse_duration(unit, &per) < 0)
		per = 0;
	if (count == 0 || count > 1000000 || per == 0 || per > 30 * 86400) {
		return err_set(e, "'%s': 1 to 1000000 messages per 1 s to 30 d", s);
	}
	r->rate_n = count;
	r->rate_per = per;
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
