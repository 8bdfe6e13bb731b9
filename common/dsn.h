/*
 * dsn.h - delivery status notifications (RFC 3464, RFC 3462): the report
 * outboxd sends to a message's sender when recipients failed for good
 * (Action: failed) or are still being tried after [queue]
 * delay_warning (Action: delayed; daemon/bounce.c sends both).  dsn_build is a pure function of its
 * input (time and randomness come in as fields), so the unit tests can
 * hold its every byte.
 *
 * The report is multipart/report; report-type=delivery-status with
 * three parts (two for a summary): a plain-text explanation in words, message/delivery-
 * status (per-message and per-recipient fields), and the original
 * header section as text/rfc822-headers (never the body).  Every line
 * ends in CRLF and is at most 998 octets; no text that came from the
 * upstream or the message can end a header early or make a boundary.
 */
#ifndef OUTBOX_DSN_H
#define OUTBOX_DSN_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

enum dsn_action { DSN_FAILED, DSN_DELAYED };

struct dsn_rcpt {
	const char *addr;		/* the envelope recipient */
	enum dsn_action action;
	const char *reply;		/* the upstream's reply ("550 5.1.1 ...") or our reason */
	const char *remote_mta;		/* the upstream's host name, "" if never reached */
};

/* One message reported on: its failed (or late) recipients. */
struct dsn_message {
	const char *queue_id;
	double arrival;			/* Unix time */
	const struct dsn_rcpt *rcpt;
	size_t nrcpt;
	const char *headers;		/* its header section (CRLF lines) */
	size_t headers_len;
};

/* One report: about one message (the usual), or a summary of several
 * messages of one sender ([queue] report_interval, bounce.c).  A
 * summary holds every recipient of each in its status part (each block
 * naming its message by X-Outbox-Queue-ID) and, in its words, each
 * message's queue ID, arrival and Subject; RFC 3462 allows one header
 * section, so a summary attaches none. */
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

/* The Status field of a recipient (RFC 3463) from its reply: the
 * enhanced code the reply gives, else 5.0.0 / 4.0.0 by its class. */
void dsn_status_of(const char *reply, enum dsn_action action, char out[16]);

/* The whole message (header and body), appended to out. */
void dsn_build(const struct dsn_input *in, struct buf *out);

#endif
