/*
 * mime.h - the encodings of the composer (outbox-compose): quoted-
 * printable (RFC 2045 6.7), base64 in 76-column lines and RFC 2231
 * parameters for file names.  Pure functions on buffers; every
 * line they make ends in CRLF and stays within 78 columns (76 for the
 * bodies).
 */
#ifndef OUTBOX_MIME_H
#define OUTBOX_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include "../../common/util.h"

/* Is s valid UTF-8 (no overlong forms, no surrogates, no NUL)? */
bool utf8_valid(const char *s, size_t n);
bool is_ascii(const char *s, size_t n);
/* Text (LF or CRLF lines) as quoted-printable with CRLF line ends. */
void qp_encode(struct buf *out, const char *s, size_t n);
/* Does text need quoted-printable (non-ASCII, a line over 998 octets,
 * a bare CR, or trailing space that a relay could strip)? */
bool text_needs_qp(const char *s, size_t n);
/* Binary as base64, 76 characters a line, CRLF. */
void base64_lines(struct buf *out, const void *p, size_t n);
/* (header text and display names: common/headers.h header_words,
 * header_display_name) */
/* `; name=value` for a file name: a quoted ASCII value, or RFC 2231
 * name*=UTF-8''%XX... for any other. */
void filename_param(struct buf *out, const char *param, const char *name);

#endif
