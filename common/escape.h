/*
 * escape.h - text from outside made safe for a log line or a terminal.
 *
 * Owns: the one rule for what may reach a log or a terminal as it is:
 * printable ASCII, and UTF-8 sequences that are valid (shortest form, no
 * surrogate, at most U+10FFFF) and are not C1 controls.  Every other
 * octet -- the C0 controls (CR, LF, ESC, ...), DEL, the C1 controls
 * (U+0080..U+009F, which a terminal may take for CSI), and each octet of
 * a malformed sequence -- is written as \xHH.  A backslash is left as it
 * is, so text escaped once (log_safe, JSON) passes unchanged.
 *
 * Invariant: the output never contains an octet below 0x20, 0x7F, or an
 * octet that is not part of such a valid sequence; an escape is never
 * cut in half by truncation.
 */
#ifndef OUTBOX_ESCAPE_H
#define OUTBOX_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* How many octets at s (n > 0 of them) make one character that may be
 * shown as it is; 0 when s[0] must be escaped. */
size_t esc_char_len(const unsigned char *s, size_t n);

/* Copy s (n octets) into out (cap octets, cap > 0), escaped, truncated at
 * a character boundary to fit; NUL-terminated.  The length written. */
size_t esc_copy(char *out, size_t cap, const char *s, size_t n);

/* Append s (n octets) to b, escaped.  json: inside a JSON string (the
 * backslash of each escape doubled, so the JSON stays valid and its
 * value reads \xHH). */
void esc_buf(struct buf *b, const char *s, size_t n, bool json);

#endif
