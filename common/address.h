/*
 * address.h - email addresses: syntax and SMTP paths.
 *
 * Owns: what counts as a valid address (RFC 5321 Mailbox, plus a bare
 * local name such as "root" that outbox qualifies) and parsing the
 * <path> of MAIL FROM / RCPT TO; no configuration (the rewriting rules
 * of [address], [aliases] and [senders] are rewrite.h's).
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

#define ADDR_MAX 254

int addr_check(const char *a, struct err *e);
/* "a@b, c@d, root": each element checked; empty elements are errors. */
int addr_list_check(const char *list, struct err *e);
bool addr_is_local_name(const char *a);
bool addr_is_domain(const char *d);
/* The '@' that separates local part and domain (not one inside
 * quotes); NULL for a bare local name. */
const char *addr_at(const char *a);
/* The '>' that closes a path whose text (after its '<') is the n octets
 * at p: the first one not inside a quoted local part ("a>b"@x is an
 * address); NULL if none. */
const char *addr_path_end(const char *p, size_t n);
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

#endif
