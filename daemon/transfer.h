/*
 * transfer.h - the SMTP transaction engine (transfer.c): on an open
 * upstream session, one message after another with DATA (pipelined
 * when the server offers PIPELINING) or in BDAT batches (CHUNKING).
 *
 * The engine takes its messages from, and hands each finished one back
 * to, a source the caller supplies (struct transfer_source: two
 * functions, as OpenSMTPD's session asks its route for the next task);
 * it knows nothing of queues, relays or workers.  What the session
 * taught about the relay (a quota reply, the session's end) is in its
 * result.
 *
 * Threads: a struct transfer is used by one thread at a time.
 */
#ifndef OUTBOXD_TRANSFER_H
#define OUTBOXD_TRANSFER_H

#include <stdbool.h>

#include "../common/relay.h"
#include "../common/smtp_pipe.h"
#include "attempt.h"

#define BODY_CHUNK SMTP_BODY_CHUNK	/* queue file octets read at a time (smtp_pipe.h) */
#define BATCH_MAX 8		/* messages in one BDAT batch: also the most a crash can duplicate per worker */
#define BATCH_BYTES (1024 * 1024)	/* a batch takes no more messages once this big */

struct transfer;

/* Where the messages come from and go back to. */
struct transfer_source {
	/* The next message that can go on this session now, loaded into a
	 * (attempt_load, attempt_fits done); false when there is none.
	 * batched: the messages of the BDAT batch in the making (0: a new
	 * run of one, with DATA or as a batch's first): the source may say
	 * no to keep its share of a batch. */
	bool (*next)(void *arg, struct attempt *a, size_t batched);
	/* a's transaction is over and every recipient that got a reply
	 * has its result (the rest: "not attempted", or the session's
	 * failure): record it and free it.  Called exactly once for each
	 * message the engine was given. */
	void (*done)(void *arg, struct attempt *a);
	void *arg;
};

/* What a run on the session found out. */
struct transfer_result {
	unsigned messages;	/* given to the engine (first included) */
	unsigned batches;	/* BDAT batches (0 with DATA) */
	bool session_ends;	/* broken, or a 421: close the session */
	unsigned quota_hold;	/* a provider's quota or rate reply: hold the relay back this long */
	char quota_reply[200];	/* (that reply) */
};

/* The engine for session s, which stays the caller's. */
struct transfer *transfer_new(struct smtp_client *s);
void transfer_free(struct transfer *t);
/* A new session was opened: nothing outstanding, no transaction open. */
void transfer_reset(struct transfer *t);
/* RSET now (a session reused after waiting); false when it is broken. */
bool transfer_rset(struct transfer *t);
/* Will the run use BDAT (the relay allows it, the session offers
 * CHUNKING and PIPELINING)? */
bool transfer_chunked(const struct smtp_client *s, const struct relay *r);
/* Deliver first (loaded, fits the session), then whatever src hands
 * out, until it has nothing more or the session ends; every message
 * given is handed back to src->done, first included. */
void transfer_run(struct transfer *t, struct attempt *first, const struct transfer_source *src,
		  bool chunked, struct transfer_result *res);

#endif
