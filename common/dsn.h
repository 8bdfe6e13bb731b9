/*
 * dsn.h - delivery status notifications (RFC 3464, RFC 3462/6522, RFC
 * 6533): the report outboxd sends to a message's sender about
 * recipients that failed for good (Action: failed), that are still
 * being tried after [queue] delay_warning (Action: delayed), or that a
 * relay without DSN took while the sender asked NOTIFY=SUCCESS (Action:
 * relayed, RFC 3461 section 6.2.3; daemon/bounce*.c sends them all).
 * dsn_build is a pure function of its input (time and randomness come
 * in as fields), so the unit tests can hold its every byte.
 *
 * The report is multipart/report with three parts (two for a summary):
 * a plain-text explanation in words, the delivery-status part
 * (per-message and per-recipient fields, in the order of RFC 3464
 * section 2.1), and the original: its header section, or, for a
 * failure report of a message sent RET=FULL and within [queue]
 * max_message_size, the whole message.  Plain ASCII reports are
 * report-type=delivery-status with message/delivery-status,
 * text/rfc822-headers and message/rfc822; a report about a message
 * that needed SMTPUTF8, or holding any UTF-8 address or reply, is the
 * global form of RFC 6533: report-type=global-delivery-status,
 * message/global-delivery-status, message/global-headers and
 * message/global (RFC 6522: the report-type names the second part).
 *
 * Every line the builder makes ends in CRLF and is at most 998 octets;
 * no text that came from the upstream or the message can end a header
 * early or make a boundary.  An attached whole message goes as the
 * queue holds it (CRLF lines), so the sender gets it byte for byte.
 */
#ifndef OUTBOX_DSN_H
#define OUTBOX_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"
#include "util.h"

enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_RELAYED };

struct dsn_rcpt {
	const char *addr;		/* the envelope recipient */
	enum dsn_action action;
	const char *reply;		/* the upstream's reply ("550 5.1.1 ...") or our reason
					 * ("5.3.4 message size ...": a local reason opens with
					 * its enhanced code) */
	const char *remote_mta;		/* the upstream's host name, "" if never reached */
	const char *orcpt;		/* ORCPT as given ("rfc822;" and xtext), or NULL */
};

/* One message reported on: its failed, late or relayed recipients. */
struct dsn_message {
	const char *queue_id;
	double arrival;			/* Unix time */
	const struct dsn_rcpt *rcpt;
	size_t nrcpt;
	const char *headers;		/* its header section (CRLF lines) */
	size_t headers_len;
	const char *envid;		/* ENVID as given (xtext), or NULL */
	enum dsn_ret ret;		/* RET= as given */
	bool utf8;			/* it needed SMTPUTF8: the report is global */
	uint64_t size;			/* its size in octets */
	uint64_t size_max;		/* the most returned whole ([queue] max_message_size) */
	const char *content;		/* the whole message when RET=FULL and size <= size_max,
					 * else NULL */
	size_t content_len;
};

/* One report: about one message (the usual), or a summary of several
 * messages of one sender ([queue] report_interval, bounce_gather.c).  A
 * summary holds every recipient of each in its status part (each block
 * naming its message by X-Outbox-Queue-ID) and, in its words, each
 * message's queue ID, arrival and Subject; RFC 3462 allows one header
 * section, so a summary attaches none (a message with an ENVID or
 * RET=FULL is never summarized: bounce_gather.c). */
struct dsn_input {
	const char *reporting_mta;	/* this host's name */
	const char *from_domain;	/* for MAILER-DAEMON@ and the Message-ID */
	const char *sender;		/* the original envelope sender: the report's To */
	double now;			/* the report's Date */
	const struct dsn_message *msg;
	size_t nmsg;			/* at least 1 */
	const char *lifetime;		/* "5d", for the words of a delay report */
	unsigned long long rnd;		/* for the boundary and the Message-ID */
};

/* The Status field of a recipient (RFC 3463) from its reply or reason:
 * the enhanced code it gives (after the reply code, or first in a local
 * reason); else class.0.0 by its action (5 failed, 4 delayed, 2
 * relayed).  A relayed recipient's status is always of class 2. */
void dsn_status_of(const char *reply, enum dsn_action action, char out[16]);

/* An ENVID or ORCPT value decoded from xtext (dsnparam.h), appended to
 * out and terminated; a value that is not xtext goes as it is. */
void dsn_xtext_decode(const char *s, struct buf *out);

/* Is the report global (RFC 6533)?  A message needed SMTPUTF8, or an
 * address, reply or (in a summary) Subject it shows is not ASCII. */
bool dsn_is_global(const struct dsn_input *in);

/* The whole message (header and body), appended to out. */
void dsn_build(const struct dsn_input *in, struct buf *out);

#endif
