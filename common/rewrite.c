/*
 * rewrite.c - the rewriting of addresses by the configuration (rewrite.h):
 * qualification of bare local names, [senders], [aliases].
 *
 * INVARIANT: what comes out passed addr_check() when what went in and the
 * configuration did (config_load checks every map entry and refuses
 * alias loops), so rewriting cannot make an address unsafe.
 */
#include "rewrite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "config.h"

const char *addr_domain(const struct config *c, char *buf, size_t n)
{
	if (c && *c->address.domain) {
		snprintf(buf, n, "%s", c->address.domain);
		return buf;
	}
	return local_hostname(buf, n);
}

static char *qualify(const struct config *c, const char *a)
{
	char dom[256];
	if (!*a || addr_at(a))
		return xstrdup(a);
	return xasprintf("%s@%s", a, addr_domain(c, dom, sizeof dom));
}

char *sender_rewrite(const struct config *c, const char *sender, const char *login)
{
	const char *name = sender ? sender : login;
	if (!*name || addr_at(name))
		return xstrdup(name);
	const char *mapped = map_get(&c->senders, name);
	if (!mapped)
		mapped = map_get(&c->senders, "*");
	return qualify(c, mapped ? mapped : name);
}

#define ALIAS_DEPTH 8	/* aliases of aliases, at most */

/* rcpt, with path[0..depth) the alias names that led to it. */
static int expand(const struct config *c, const char *rcpt, const char *path[ALIAS_DEPTH],
		  int depth, void (*add)(const char *addr, void *arg), void *arg, struct err *e)
{
	const char *list = addr_at(rcpt) ? NULL : map_get(&c->aliases, rcpt);
	if (!list) {
		char *q = qualify(c, rcpt);
		add(q, arg);
		free(q);
		return 0;
	}
	for (int i = 0; i <= depth; i++) {
		if (i == depth || strcasecmp(path[i], rcpt) != 0)
			continue;
		char chain[512] = "";
		for (int k = i; k < depth; k++)
			snprintf(chain + strlen(chain), sizeof chain - strlen(chain), "%s -> ", path[k]);
		return err_set(e, "alias loop: %s%s", chain, rcpt);
	}
	if (depth == ALIAS_DEPTH)
		return err_set(e, "aliases nested deeper than %d at %s", ALIAS_DEPTH, rcpt);
	path[depth] = rcpt;
	char *copy = xstrdup(list), *save = NULL;
	int rc = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save))
		rc = expand(c, trim(tok), path, depth + 1, add, arg, e);
	free(copy);
	return rc;
}

int rcpt_expand(const struct config *c, const char *rcpt,
		void (*add)(const char *addr, void *arg), void *arg, struct err *e)
{
	const char *path[ALIAS_DEPTH];
	return expand(c, rcpt, path, 0, add, arg, e);
}
