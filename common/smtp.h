/*
 * smtp.h - SMTP protocol pieces shared by the server session, the
 * sendmail tool and the delivery client.
 *
 * Owns: reply parsing (multi-line, enhanced status codes), the DATA
 * reader that turns received text into stored message bytes, dot-
 * stuffing for sending, and line-ending normalization of local input.
 *
 * Invariants (SMTP smuggling, CVE-2023-51764):
 *  - the DATA reader ends the message only on <CRLF>.<CRLF>; a bare CR or
 *    bare LF never ends a line for that purpose;
 *  - every bare CR and bare LF is stored as CRLF and NULs are dropped, so
 *    stored messages contain only CRLF line endings;
 *  - the stuffer doubles every leading '.', so what the upstream reads
 *    as the end of data is exactly where outbox put it, and no line it
 *    writes is longer than max_line octets.
 */
#ifndef OUTBOX_SMTP_H
#define OUTBOX_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SMTP_CMD_LINE_MAX 2048		/* command line, incl. CRLF (RFC 5321 4.5.3.1.4 + extensions) */
#define SMTP_TEXT_LINE_MAX 65536	/* a DATA line longer than this refuses the message */
#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_REPLY_MAX (64 * 1024)	/* a whole multi-line reply */

struct smtp_reply {
	int code;		/* 3 digits */
	char enh[16];		/* "2.0.0" when the server sent one, else "" */
	struct buf text;	/* lines after the code, joined with '\n' */
	int lines;
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);
/*
 * Parse one complete reply from in[0..len).  Returns 1 and sets
 * *consumed when a full reply was read, 0 when more input is needed,
 * -1 on a protocol violation (with e set).
 */
int smtp_reply_parse(const char *in, size_t len, struct smtp_reply *r, size_t *consumed,
		     struct err *e);
/*
 * The whole reply on one line, for logs, outbox queue, the quota and
 * hint tables and reports: "550 5.1.1 first line's text next line's
 * text ...", the lines' texts (without their codes, nor the enhanced
 * code when it repeats the first line's) joined with a space, escaped
 * as escape.h says (never a control character).  Appended to out;
 * returns the offset of the last line's text in out, where a server
 * puts its queue ID ("250 OK id=1abc-000123-XY").
 */
size_t smtp_reply_join(const struct smtp_reply *r, struct buf *out);
/* The same within n octets (NUL included, n >= 8): a longer reply is
 * cut at a character boundary and marked "...", keeping its last line
 * when that takes at most half of n ("head... last line"). */
#define SMTP_REPLY_SHOWN 1000	/* octets of a reply kept (+1 for a buffer) */
const char *smtp_reply_line(const struct smtp_reply *r, char *out, size_t n);

/* Streaming DATA reader (server side). */
struct data_reader {
	bool bol;		/* at the start of a CRLF-delimited line */
	bool cr;		/* the previous octet was a CR not yet handled */
	bool dot_only;		/* the line so far is the single '.' */
	bool eight_bit;		/* saw an octet >= 0x80 */
	bool line_too_long;
	size_t line_len;
	uint64_t nul_dropped;
	uint64_t bare_fixed;	/* bare CR or LF turned into CRLF */
};

void data_reader_init(struct data_reader *d);
/*
 * Consume received octets, appending message bytes to out.  Returns the
 * number of input octets used; *done is set once <CRLF>.<CRLF> was seen
 * (the octets after it are the next pipelined command).
 */
size_t data_reader_feed(struct data_reader *d, const char *in, size_t n, struct buf *out,
			bool *done);

/*
 * The encoder of a message for the wire (the one dot-stuffer): doubles
 * every leading '.', adds a final CRLF if missing and the terminating
 * ".\r\n", and keeps every line within max_line octets (a stuffed dot
 * counts): a longer line is broken by inserting CRLF (in the header
 * section CRLF + SPACE, which folds the field) at a UTF-8 character
 * boundary when one lies within the last BREAK_SLACK octets, else at
 * max_line octets regardless (raw 8-bit data has no boundaries).
 */
#define SMTP_LINE_OUT_MAX 998
#define STUFFER_BREAK_SLACK 3

struct stuffer {
	bool bol;		/* at the start of a line */
	bool in_header;		/* before the first empty line */
	bool cr;		/* the previous octet was CR */
	size_t line_len;	/* octets on this line, CR LF not counted */
	size_t max_line;	/* SMTP_LINE_OUT_MAX; 0 = lines kept as they are */
	uint64_t lines_broken;
	bool chunked;		/* for BDAT (RFC 3030): no dot-stuffing, no final "." */
};

/* msg (CRLF line endings) in one piece, lines kept as they are: what the
 * sendmail command sends to outboxd, which keeps lines up to
 * SMTP_TEXT_LINE_MAX and breaks them on the way out. */
void smtp_dotstuff(const char *msg, size_t len, struct buf *out);

void stuffer_init(struct stuffer *st);
void stuffer_feed(struct stuffer *st, const char *p, size_t n, struct buf *out);
/* Final CRLF if missing, then ".\r\n" (unless chunked). */
void stuffer_end(struct stuffer *st, struct buf *out);

/*
 * Local input (sendmail): LF, CRLF or bare CR line endings to CRLF.  With
 * dot_ends, a line holding a single '.' ends the input (sendmail without
 * -i); *ended tells whether that happened.  Returns octets consumed.
 */
size_t normalize_crlf(const char *in, size_t n, struct buf *out, bool dot_ends, bool *ended);

#endif
