/*
 * operator.c - the operator's actions on one queued message (operator.h).
 *
 * The scheduler's part comes first, on the loop: hold and delete take
 * the message out of its lane or the heap (or, while a worker has it,
 * are remembered for the attempt's end: SA_LATER), release and flush
 * make it due.  The file's part follows on the pool: the held mark is
 * in the file's name (queue.c FILE NAME), a delete unlinks the file;
 * the scheduler learns a release or a delete only once the file agrees,
 * so a crash between the two leaves what the file says.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../common/log.h"
#include "operator.h"
#include "outboxd.h"

bool op_begin(struct daemon *d, qref r, struct op *o)
{
	bool file_held = qindex_get(&d->queue, r)->state == QE_HELD;	/* its name has .H */
	o->answer = sched_act(&d->sched, r, o->a);
	o->file_op = o->answer == SA_NOW && o->a != SA_FLUSH;
	if (o->file_op) {
		sched_file_name(&d->sched, r, o->name);
		qname_set_held(o->name, file_held);
	}
	return o->file_op;
}

void op_file(const struct store *s, struct op *o)
{
	struct err e;
	if (!o->file_op)
		return;
	o->file_rc = o->a == SA_DELETE ? store_delete(s, o->name, &e)
				       : store_set_held(s, o->name, o->a == SA_HOLD, &e);
	if (o->file_rc < 0)
		snprintf(o->why, sizeof o->why, "%s", e.msg);
}

void op_done(struct daemon *d, uint64_t id, struct op *o)
{
	qref r = qindex_find(&d->queue, id);
	if (!r || o->answer != SA_NOW || (o->file_op && o->file_rc < 0))
		return;
	if (o->a == SA_RELEASE)
		sched_released(&d->sched, r);
	if (o->a == SA_DELETE)
		sched_deleted(&d->sched, r);
}

/* ---- actions that waited for an attempt's end ---- */

struct later {
	uv_work_t req;
	struct daemon *d;
	uint64_t id;
	struct op op;
};

static void later_work(uv_work_t *req)
{
	struct later *l = req->data;
	op_file(&l->d->store, &l->op);
}

static void later_done(uv_work_t *req, int status)
{
	struct later *l = req->data;
	char id[QID_LEN + 1];
	const char *what = l->op.a == SA_DELETE ? "delete" : "hold";
	(void)status;
	qid_format(l->id, id);
	if (l->op.file_rc < 0)
		log_err("%s: %s after its attempt failed: %s", id, what, l->op.why);
	else
		log_info("%s: %s (after its attempt)", id, l->op.a == SA_DELETE ? "deleted" : "held");
	op_done(l->d, l->id, &l->op);
	free(l);
}

void op_later(struct daemon *d, qref r, enum sched_action a)
{
	struct later *l = xcalloc(1, sizeof *l);
	l->d = d;
	l->id = qindex_get(&d->queue, r)->id;
	l->op = (struct op){ .a = a, .answer = SA_NOW, .file_op = true };
	sched_file_name(&d->sched, r, l->op.name);	/* (QE_HELD now: out of the schedule while the file is done) */
	l->req.data = l;
	uv_queue_work(d->loop, &l->req, later_work, later_done);
}
