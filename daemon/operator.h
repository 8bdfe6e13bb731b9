/*
 * operator.h - the operator's actions on one queued message (outbox
 * hold, release, delete, flush: the control socket asks, control_act.c).
 * One owner for both halves of each: the scheduler's, in memory on the
 * loop (scheduler.h sched_act), and the file's, a rename (hold, release:
 * the name's .H) or an unlink (delete) on the thread pool, fsynced
 * before it is answered; and for an action asked while a worker has the
 * message, done on its own once the attempt ends (op_later, the
 * scheduler's hook).
 */
#ifndef OUTBOXD_OPERATOR_H
#define OUTBOXD_OPERATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/queue.h"
#include "index.h"
#include "scheduler.h"

struct daemon;

/* One message's action and what came of it. */
struct op {
	enum sched_action a;
	char name[QNAME_MAX];		/* its file's name, for the file's part */
	enum sched_answer answer;	/* the scheduler's (SA_NOW: done, or the file's part follows) */
	bool file_op;			/* a file's part follows */
	int file_rc;			/* its result: 0, or -1 with why */
	char why[512];
};

/* Loop: the scheduler's part for message r; true when the file's part
 * is to follow: op_file on the pool, then op_done on the loop. */
bool op_begin(struct daemon *d, qref r, struct op *o);
/* A pool thread: the file's part. */
void op_file(const struct store *s, struct op *o);
/* Loop: the file's part is done (or there was none): the scheduler
 * learns the end of a release or a delete.  id is the message's. */
void op_done(struct daemon *d, uint64_t id, struct op *o);
/* The scheduler's hook (scheduler.h later): an action that waited for
 * an attempt's end, done now; logged. */
void op_later(struct daemon *d, qref r, enum sched_action a);

#endif
