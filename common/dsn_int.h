/*
 * dsn_int.h - what the parts of the report builder share (dsn.c the
 * helpers, dsn_report.c the structure and fields, dsn_words.c the words
 * for a human).  Not a
 * public interface: dsn.h is.
 *
 * Invariant: outside text (an address, a reply, a Subject, a decoded
 * ENVID or ORCPT) reaches the report only through dsn_one_line().
 */
#ifndef OUTBOX_DSN_INT_H
#define OUTBOX_DSN_INT_H

#include "dsn.h"

#define DSN_REPLY_MAX 900	/* a reply quoted in the report, in octets: lines stay under 998 */

/* s on one line: control characters become spaces, runs of spaces one,
 * at most max octets (not in the middle of a UTF-8 character). */
void dsn_one_line(struct buf *out, const char *s, size_t max);
void dsn_date(double t, char *out, size_t n);
bool dsn_ascii(const char *s);
/* The Subject field of a header section, unfolded, or NULL; free() it. */
char *dsn_subject_of(const char *h, size_t n);
/* Does message m (or, with m NULL, the report) hold a recipient of this action? */
bool dsn_has(const struct dsn_input *in, const struct dsn_message *m, enum dsn_action a);
/* Is message m returned whole (a failure, RET=FULL, within size_max)? */
bool dsn_returns_whole(const struct dsn_input *in, const struct dsn_message *m);

/* The text part: what happened, to whom, and why (dsn_words.c). */
void dsn_explanation(const struct dsn_input *in, struct buf *b);
/* The report's Subject (dsn_words.c). */
const char *dsn_subject(const struct dsn_input *in);

#endif
