/*
 * attempt.h - one message's delivery attempt, as a value (attempt.c):
 * load its queue file, give each recipient its result from the replies
 * (struct rcpt_result), and at the end record the results in the file
 * and return the outcome (struct delivery_result, pool.h) for the
 * caller to report.  It knows neither the pool nor the worker: whoever
 * runs the attempt passes the store and what the log lines name
 * (struct attempt_site).
 *
 * Invariants: a recipient gets at most one result per attempt
 * (set_result keeps the first); a recipient already sent or bounced in
 * the queue file is never touched again; only smtp_classify() decides
 * sent, deferred or bounced, and a session failure never bounces.
 */
#ifndef OUTBOXD_ATTEMPT_H
#define OUTBOXD_ATTEMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/queue.h"
#include "../common/smtp_client.h"

struct delivery_result;	/* pool.h */
struct job;		/* the pool's (jobs.h): carried, never looked into */

/* A recipient's outcome in one attempt. */
enum outcome { OUT_NONE, OUT_SENT, OUT_DEFERRED, OUT_BOUNCED };

struct rcpt_result {
	enum outcome state;	/* the first one set stays (set_result) */
	bool accepted;		/* its RCPT got 2xx in this transaction */
	bool postponed;		/* its RCPT got "452 too many recipients" in this
				 * transaction: no result yet, why holds the reply */
	char *why;		/* the reply or the local reason */
};

/* What happens to one message in one attempt. */
struct attempt {
	struct job *job;	/* its owner's, for the owner */
	char id[QID_LEN + 1];
	unsigned tries;		/* attempts before this one */
	const struct config *conf;	/* the configuration it is tried under */
	const struct relay *relay;	/* the relay it is tried at (in conf), once routed; or NULL */
	char name[QNAME_MAX];	/* the queue file's name (queue.c FILE NAME) */
	struct envelope env;
	int fd;
	size_t body_off;
	uint64_t size;
	struct rcpt_result *res;	/* one per envelope recipient */
	/* the transaction on the wire (transfer.c) */
	bool mail_ok;		/* MAIL got 2xx */
	bool data_go;		/* DATA got 354 with recipients accepted: send the message */
	size_t taken;		/* recipients accepted */
	size_t postponed;	/* recipients postponed (rcpt_result.postponed) */
	unsigned ext;		/* the session's extensions (attempt_fits): with EXT_DSN
				 * the relay reports, without it a NOTIFY=SUCCESS
				 * recipient it took gets our "relayed" notice */
};

/* Where an attempt is recorded, and what its log lines name. */
struct attempt_site {
	const struct store *store;
	const char *peer;	/* the session's "host[addr]:port", or "" (none opened) */
	const char *tls;	/* its TLS version, or "" */
	double rnd;		/* in [0, 1): the jitter of the next retry */
};

/* Load message id (its file named by next_try and tries) for an attempt
 * under conf.  False when there is nothing to deliver: *r is then the
 * outcome to report (the file gone, set aside as unreadable, or done
 * before a crash and now removed). */
bool attempt_load(const struct store *s, const char *id, unsigned tries, uint32_t next_try,
		  const struct config *conf, struct attempt *a, struct delivery_result *r);
void attempt_free(struct attempt *a);

/* Recipient i's result, unless it has one. */
void set_result(struct attempt *a, size_t i, enum outcome what, const char *why);
/* Every pending recipient without a result gets this one. */
void set_all(struct attempt *a, enum outcome what, const char *why);
/* What a reply code (0: a failure without one) at a stage means for the
 * recipients it answers. */
enum outcome outcome_of(enum smtp_stage st, int code);
/* The same for a verdict already given (smtp_classify). */
enum outcome outcome_of_verdict(enum smtp_verdict v);
/* A reply judged v (reason why) applied to recipient which, to every
 * pending one (RES_ALL) or to every one accepted in this attempt
 * (RES_ACCEPTED): the one place the engine gives results from replies. */
#define RES_ALL SIZE_MAX
#define RES_ACCEPTED (SIZE_MAX - 1)
#define RES_POSTPONED (SIZE_MAX - 2)	/* every postponed one, with its own reply */
void attempt_apply(struct attempt *a, size_t which, enum smtp_verdict v, const char *why);
/* Recipient i got a reply (why) that postpones it to the next
 * transaction of the same message on this session (RFC 5321 4.5.3.1.10). */
void attempt_postpone_rcpt(struct attempt *a, size_t i, const char *why);
/* The session's failure, for every recipient left: deferred, or bounced
 * only when the failure is a permanent reply. */
void fail_from_session(struct attempt *a, const struct smtp_client *s);
/* Can a session with these extensions and SIZE limit take the message
 * at all?  False with a permanent result for every recipient if not,
 * the reason opening with its enhanced status code (RFC 3463, 6531:
 * 5.3.4 too big, 5.6.3 8-bit, 5.6.7 SMTPUTF8).  The extensions are kept
 * in a->ext for the end of the attempt. */
bool attempt_fits(struct attempt *a, unsigned ext, uint64_t size_max);

/* The attempt's end, as counted (attempt_settle). */
struct attempt_tally {
	unsigned pending;	/* recipients left for a later attempt */
	unsigned sent, deferred, bounced;
	unsigned warnable;	/* pending ones whose NOTIFY lets a delay warning go */
	bool bouncing;		/* a report is due: a bounced recipient's (NOTIFY
				 * empty or with FAILURE) or a relayed notice */
};
/* Settle every pending recipient at now: one without a result was "not
 * attempted" (deferred), a deferral past [queue] lifetime bounces with
 * 4.4.7 (RFC 3463 X.4.7, delivery time expired: a persistent transient
 * code, so the class stays 4 under Action: failed).  Pure: no file, no
 * log. */
void attempt_settle(struct attempt *a, double now, struct attempt_tally *t);
/* Settle, log a line per recipient, record the results in the queue file
 * (status bytes, the schedule in the name, the reasons, the B mark) or
 * remove it when every recipient is final, and fill *r. */
void attempt_finish(const struct attempt_site *site, struct attempt *a, struct delivery_result *r);
/* Not tried now: due again at until (its tries unchanged), why logged;
 * *r filled, a freed. */
void attempt_postpone(const struct attempt_site *site, struct attempt *a, double until, const char *why,
		      struct delivery_result *r);

#endif
