/*
 * headers.h - RFC 5322 message headers: finding fields, reading address
 * lists (for sendmail -t), and building the fields outbox adds.
 *
 * Owns: header-section parsing of a CRLF message, the address-list
 * reader, and the generated Date:, Message-ID: and From: fields.
 *
 * Invariant: a field outbox builds contains only values it checked or
 * encoded itself (addresses that passed addr_check(), a display name
 * quoted or RFC 2047-encoded, digits of a date): no input can add a
 * line or a field.
 */
#ifndef OUTBOX_HEADERS_H
#define OUTBOX_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct header {
	const char *start;	/* first octet of the field name */
	size_t len;		/* whole field with folded lines and final CRLF */
	size_t name_len;
	const char *value;	/* after the colon, raw (may span lines) */
	size_t value_len;
};

struct header_list {
	struct header *v;
	size_t n;
	size_t body_off;	/* offset of the body (after the empty line), or
				   the message length if there is none */
};

/* Parse the header section of msg (CRLF line endings).  Stops at the
 * empty line or at the first line that is not a header field. */
void headers_parse(const char *msg, size_t len, struct header_list *h);
void headers_free(struct header_list *h);
const struct header *headers_find(const struct header_list *h, const char *name);
bool header_is(const struct header *f, const char *name);

/* Call add() for every address in an RFC 5322 address-list (groups,
 * display names, comments, quoted strings).  Returns -1 with e set on an
 * address that fails addr_check(). */
int addrlist_parse(const char *value, size_t len, void (*add)(const char *addr, void *arg),
		   void *arg, struct err *e);

/* The header fields without Bcc and Resent-Bcc (as Postfix does),
 * appended to kept; with add non-NULL (sendmail -t, the pickup
 * directory) the recipients are handed to it: those of To, Cc and Bcc,
 * or of Resent-To, Resent-Cc and Resent-Bcc only when the message was
 * resent (has any Resent- field, RFC 5322 3.6.6), as with Sendmail and
 * Postfix.  -1 with e naming the field when an address list is bad. */
int headers_envelope(const struct header_list *h, void (*add)(const char *addr, void *arg),
		     void *arg, struct buf *kept, struct err *e);

/* Generated fields, each ending in CRLF. */
void header_add_date(struct buf *out, double when);
void header_add_message_id(struct buf *out, const char *domain);
void header_add_from(struct buf *out, const char *display_name, const char *addr);
/* Header text (UTF-8): as it is when ASCII and short, else RFC 2047
 * encoded words "=?UTF-8?Q?...?=" of at most 75 octets, folded with
 * CRLF SP, never splitting a character; col: where it starts. */
void header_words(struct buf *out, const char *s, size_t col);
/* A display name: a quoted string (controls dropped), or encoded words
 * when it is not ASCII. */
void header_display_name(struct buf *out, const char *s);

#endif
