/*
 * address.h - email addresses: syntax, SMTP paths, and rewriting.
 *
 * Owns: what counts as a valid address (RFC 5321 Mailbox, plus a bare
 * local name such as "root" that outbox qualifies), parsing the <path>
 * of MAIL FROM / RCPT TO, and the rewriting rules of [address],
 * [aliases] and [senders].
 *
 * Invariant: an address that passed addr_check() contains no control
 * characters, no CR or LF, no unquoted space, no '<' '>' and is at most
 * ADDR_MAX octets, so it is safe to write into queue files, log lines
 * and headers.
 */
#ifndef OUTBOX_ADDRESS_H
#define OUTBOX_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct config;

#define ADDR_MAX 254

int addr_check(const char *a, struct err *e);
/* "a@b, c@d, root": each element checked; empty elements are errors. */
int addr_list_check(const char *list, struct err *e);
bool addr_is_local_name(const char *a);
bool addr_is_domain(const char *d);
/* Any octet >= 0x80 (needs SMTPUTF8 upstream). */
bool addr_needs_utf8(const char *a);

/*
 * Parse the argument of MAIL FROM: / RCPT TO: ("<a@b> SIZE=10").
 * Accepts optional spaces before '<', strips an RFC 5321 source route,
 * and an address without brackets.  The empty path "<>" is allowed only
 * with allow_null.  On success out holds the address ("" for <>) and
 * *params points at the ESMTP parameters (leading spaces skipped).
 */
int smtp_path_parse(const char *arg, bool allow_null, char *out, size_t n,
		    const char **params, struct err *e);

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
