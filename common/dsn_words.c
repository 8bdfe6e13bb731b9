/*
 * dsn_words.c - the words of a delivery status notification (dsn.h):
 * the plain-text part a human reads, and the report's Subject.  One
 * paragraph per kind of news the report holds (failed, relayed,
 * delayed), each followed by its recipients and the reason given for
 * each; a summary then names each message.
 *
 * Invariant: every outside string goes through dsn_one_line() (dsn_int.h).
 */
#include "dsn_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const enum dsn_action KINDS[] = { DSN_FAILED, DSN_RELAYED, DSN_DELAYED };
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

const char *dsn_subject(const struct dsn_input *in)
{
	if (dsn_has(in, NULL, DSN_FAILED))
		return "Undelivered Mail Returned to Sender";
	if (dsn_has(in, NULL, DSN_RELAYED))
		return "Successful Mail Delivery Report";
	return "Delayed Mail (still being retried)";
}

static void what_happened(const struct dsn_input *in, enum dsn_action a, struct buf *b)
{
	bool one = in->nmsg == 1;
	switch (a) {
	case DSN_FAILED:
		buf_printf(b, "%s could not be delivered to the recipients below, and\r\n"
			      "will not be tried again for them. The reason is given after each\r\n"
			      "address, as the receiving mail system gave it.\r\n\r\n",
			   one ? "Your message" : "Messages you sent");
		break;
	case DSN_RELAYED:
		buf_printf(b, "%s passed on to the recipients below by a relay that does not\r\n"
			      "offer delivery status notifications (DSN). You asked to be told of\r\n"
			      "the delivery (NOTIFY=SUCCESS); the relay cannot tell, so this is the\r\n"
			      "last notice this system can give: %s relayed. The relay's reply is\r\n"
			      "given after each address.\r\n\r\n",
			   one ? "Your message was" : "Messages you sent were", one ? "it was" : "they were");
		break;
	case DSN_DELAYED:
		buf_printf(b, "%s not been delivered yet to the recipients below.\r\n"
			      "Nothing needs to be done: %s tried again until %s after it\r\n"
			      "arrived, and you will hear again only if it fails for good.\r\n\r\n",
			   one ? "Your message has" : "Messages you sent have", one ? "it is" : "each is",
			   in->lifetime);
		break;
	}
}

static void list_rcpts(const struct dsn_message *m, enum dsn_action a, struct buf *b)
{
	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct dsn_rcpt *r = &m->rcpt[i];
		if (r->action != a)
			continue;
		buf_adds(b, "  <");
		dsn_one_line(b, r->addr, DSN_REPLY_MAX);
		buf_adds(b, ">:\r\n    ");
		dsn_one_line(b, *r->reply ? r->reply : "no reason given", DSN_REPLY_MAX);
		buf_adds(b, "\r\n");
	}
}

/* What is attached of a single message, and why not more. */
static void what_is_attached(const struct dsn_input *in, const struct dsn_message *m, struct buf *b)
{
	if (dsn_returns_whole(in, m)) {
		buf_adds(b, "The message is attached whole, as you asked (RET=FULL).\r\n");
		return;
	}
	buf_adds(b, "Its header section is attached; the message itself is not");
	if (m->ret == RET_FULL && dsn_has(in, m, DSN_FAILED))
		buf_printf(b, ":\r\nyou asked for it whole (RET=FULL), but it is %" PRIu64 " octets, and a\r\n"
			      "report returning it must fit in %" PRIu64 " ([queue] max_message_size).\r\n",
			   m->size, m->size_max);
	else
		buf_adds(b, ".\r\n");
}

static void one_message(const struct dsn_input *in, struct buf *b)
{
	const struct dsn_message *m = &in->msg[0];
	char when[64];
	for (size_t k = 0; k < NKINDS; k++) {
		if (!dsn_has(in, m, KINDS[k]))
			continue;
		what_happened(in, KINDS[k], b);
		list_rcpts(m, KINDS[k], b);
		buf_adds(b, "\r\n");
	}
	dsn_date(m->arrival, when, sizeof when);
	buf_printf(b, "The message arrived on %s\r\n(queue ID %s).\r\n", when, m->queue_id);
	what_is_attached(in, m, b);
}

static void summary(const struct dsn_input *in, struct buf *b)
{
	size_t kinds = 0;
	char when[64];
	for (size_t k = 0; k < NKINDS; k++)
		if (dsn_has(in, NULL, KINDS[k])) {
			what_happened(in, KINDS[k], b);
			kinds++;
		}
	buf_printf(b, "These %zu messages are reported together, so that many failures\r\n"
		      "make one report.\r\n", in->nmsg);
	for (size_t i = 0; i < in->nmsg; i++) {
		const struct dsn_message *m = &in->msg[i];
		char *subj = dsn_subject_of(m->headers, m->headers_len);
		dsn_date(m->arrival, when, sizeof when);
		buf_printf(b, "\r\nMessage %zu of %zu (queue ID %s), arrived on %s\r\n", i + 1, in->nmsg,
			   m->queue_id, when);
		buf_adds(b, "Subject: ");
		dsn_one_line(b, subj ? subj : "(none)", 200);
		buf_adds(b, "\r\n");
		free(subj);
		for (size_t k = 0; k < NKINDS; k++) {
			if (kinds > 1 && dsn_has(in, m, KINDS[k]))
				buf_adds(b, KINDS[k] == DSN_FAILED ? "Not delivered:\r\n" : "Relayed:\r\n");
			list_rcpts(m, KINDS[k], b);
		}
	}
}

void dsn_explanation(const struct dsn_input *in, struct buf *b)
{
	buf_printf(b, "This is the mail system at %s.\r\n\r\n", in->reporting_mta);
	if (in->nmsg == 1)
		one_message(in, b);
	else
		summary(in, b);
}
