/*
 * rewrite.h - addresses as the configuration rewrites them: bare local
 * names qualified with [address] domain, envelope senders through
 * [senders], recipients through [aliases].  The syntax of addresses is
 * address.h's, which knows nothing of the configuration.
 */
#ifndef OUTBOX_REWRITE_H
#define OUTBOX_REWRITE_H

#include <stddef.h>

#include "util.h"

struct config;

/* The domain that qualifies bare local names: [address] domain or the
 * host name. */
const char *addr_domain(const struct config *c, char *buf, size_t n);

/* The envelope sender for `sender` (a -f argument or MAIL FROM address;
 * NULL means "the submitting user", login).  Bare local names go through
 * [senders] (name, then "*"), then get the domain.  "" stays "". */
char *sender_rewrite(const struct config *c, const char *sender, const char *login);

/* Expand one recipient: a bare local name through [aliases], whose
 * lists may name other aliases (followed, up to 8 deep), every result
 * qualified.  add() is called once per resulting address.  -1 with e on
 * a loop (naming it) or too deep a chain; the config loader refuses
 * those, so at run time this does not fail. */
int rcpt_expand(const struct config *c, const char *rcpt,
		void (*add)(const char *addr, void *arg), void *arg, struct err *e);

#endif
