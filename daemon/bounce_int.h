/*
 * bounce_int.h - what the three files of the reports share (not a
 * public interface: bounce.h is).  A *member* is a message with news
 * to report (bounce.c: its check; bounce_member.c: its marks and its
 * end, what every step needs of it); members to one address
 * gather into storms (bounce_gather.c); a *report* is one message of
 * news about one member or a summary of several (bounce_report.c: build
 * and commit).  The way of a member is told in bounce.c's opening.
 *
 * Kinds: a member is a *final* one (its file is named .B: recipients B,
 * failed, and R, relayed by a relay without DSN, wait for their report)
 * or a *delay* one (warn: pending recipients whose NOTIFY lets a delay
 * warning go).  The two kinds never share a report.
 *
 * Loop thread, but for the *_work functions (thread pool) and the
 * marks (the commit's thread or the pool).
 */
#ifndef OUTBOXD_BOUNCE_INT_H
#define OUTBOXD_BOUNCE_INT_H

#include "bounce.h"
#include "intake.h"
#include "outboxd.h"

#define BOUNCE_RETRY_MS 60000
/* Reports that return a whole message (RET=FULL) hold it in memory
 * while built and written: one at a time, the others wait their turn. */
#define WHOLE_REPORTS_MAX 1

/* The reports' state, d->bounces: the storms (bounce_gather.c) and the
 * whole-message reports running and waiting (bounce_report.c). */
struct bounces {
	struct daemon *d;
	struct storm *storms;
	unsigned whole_running;
	struct report *whole_waiting, **whole_tail;
};
struct bounces *bounces_of(struct daemon *d);	/* (bounce_member.c) */

struct member {
	uv_work_t req;		/* the check */
	uv_timer_t retry;	/* of a check that failed */
	struct daemon *d;
	struct config *conf;	/* a reference (config_ref) for the _work functions:
				 * a SIGHUP may free the daemon's meanwhile */
	struct member *next;	/* waiting in its storm */
	uint64_t id;
	unsigned tries;
	bool warn;
	char orig[QID_LEN + 1];
	char name[QNAME_MAX];	/* its file (.B for a final report) */
	char own_report[QID_LEN + 1];	/* its report's ID when it goes alone */
	char *to;		/* who gets its report */
	size_t nrcpt;		/* the recipients to report */
	bool alone;		/* never in a summary: it has an ENVID or RET=FULL */
	bool whole;		/* RET=FULL and a final report: it may return the message */
	bool exists;		/* its report is queued already (before a crash) */
	char found[QID_LEN + 1];	/* that report's ID */
	bool checked;		/* step 1 passed (sched_bounce_checked called) */
	bool marked;		/* its marks are made */
	bool pending_left;	/* it still has recipients to try */
	int rc;
	char why[512];
};

struct report {
	uv_work_t req;
	uv_timer_t retry;
	struct daemon *d;
	struct config *conf;	/* a reference, as struct member's */
	struct member **m;
	size_t n;
	bool warn;
	bool failed, relayed;	/* what it tells (build_work) */
	bool eight_bit;		/* its bytes are not all ASCII */
	bool returned;		/* it returns a whole message (build_work) */
	char id[QID_LEN + 1];
	struct envelope env;	/* null sender, to the member's `to` (+ postmaster) */
	struct buf msg;
	size_t sent;		/* of msg, given to the intake so far */
	struct intake in;
	bool whole;		/* it may return a whole message (WHOLE_REPORTS_MAX) */
	struct report *next;	/* waiting its turn */
	int rc;
	char why[512];
};

/* Is recipient r of a member of this kind to be reported? */
bool bounce_reports(const struct rcpt *r, bool warn);
/* Who gets a message's report: its sender, or for a report that failed
 * (null sender) the postmaster. */
const char *bounce_report_to(const struct envelope *env, const struct config *c);

/* bounce_member.c: a member's marks once its report is committed (B -> F,
 * R -> D, the .B name gone or the file removed; a delay report notes
 * store_note_warned); a retry makes them once.  Any thread. */
int bounce_mark(struct daemon *d, struct member *m);
/* Its report is queued and its marks made: back to the scheduler. */
void bounce_member_done(struct member *m);
/* A stop: m is dropped (its .B name brings it back at the next start). */
void bounce_drop(struct member *m);

/* bounce_gather.c: m goes now, or waits for others to its address. */
void bounce_gather(struct daemon *d, struct member *m);
void bounce_gather_stop(struct daemon *d);

/* bounce_report.c: one report of the members in list (linked by next). */
void bounce_report_make(struct daemon *d, struct member *list, bool warn);
/* A stop: the reports waiting their turn are dropped (their members'
 * .B names bring them back at the next start). */
void bounce_report_stop(struct daemon *d);

#endif
