/*
 * bounce_member.c - what every step of a report needs of its members
 * (bounce_int.h): which recipients a member reports and to whom, its
 * marks once its report is committed, its way back to the scheduler or
 * out at a stop, and the reports' state.  The member's way itself is
 * told in bounce.c's opening; bounce.c, bounce_gather.c and
 * bounce_report.c stand on this file and it on none of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "bounce_int.h"
#include "scheduler.h"

struct bounces *bounces_of(struct daemon *d)
{
	if (!d->bounces) {
		d->bounces = xcalloc(1, sizeof *d->bounces);
		d->bounces->d = d;
		d->bounces->whole_tail = &d->bounces->whole_waiting;
	}
	return d->bounces;
}

bool bounce_reports(const struct rcpt *r, bool warn)
{
	if (warn)	/* without NOTIFY, or with DELAY in it (RFC 3461 section 4.1) */
		return r->status == RCPT_PENDING && (r->notify == 0 || (r->notify & NOTIFY_DELAY));
	return r->status == RCPT_BOUNCING || r->status == RCPT_RELAYED;
}

const char *bounce_report_to(const struct envelope *env, const struct config *c)
{
	return *env->sender ? env->sender : c->address.postmaster;
}

static void member_free(struct member *m)
{
	config_unref(m->conf);
	free(m->to);
	free(m);
}

static void on_member_closed(uv_handle_t *h)
{
	member_free(h->data);
}

void bounce_member_done(struct member *m)
{
	qref r = qindex_find(&m->d->queue, m->id);
	if (r)
		sched_bounced(&m->d->sched, r, m->pending_left);
	uv_close((uv_handle_t *)&m->retry, on_member_closed);
}

/* ---- the marks (commit thread, or thread pool) ---- */

int bounce_mark(struct daemon *d, struct member *m)
{
	if (m->marked)
		return 0;	/* (a retry of a report's marks) */
	if (m->warn) {	/* nothing failed: the one report about the delay is sent */
		store_note_warned(&d->store, m->orig);
		m->pending_left = true;
		m->marked = true;
		return 0;
	}
	struct err e;
	struct envelope env;
	size_t off;
	uint64_t size;
	int fd = -1, rc = 0;
	if (store_load(&d->store, m->name, &env, &off, &fd, &size, &e) < 0) {
		log_err("%s: cannot mark the reported recipients done: %s", m->orig, e.msg);
		return -1;
	}
	for (size_t i = 0; i < env.nrcpt && rc == 0; i++)
		if (bounce_reports(&env.rcpt[i], false))
			rc = store_set_status(fd, &env.rcpt[i],
					      env.rcpt[i].status == RCPT_RELAYED ? RCPT_SENT : RCPT_FAILED, &e);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = err_sys(&e, "fdatasync");
	bool pending = envelope_pending(&env) > 0;
	close(fd);
	envelope_free(&env);
	if (rc == 0 && !pending)	/* nothing left to do: the file goes */
		rc = store_remove(&d->store, m->name, off + size, &e);
	else if (rc == 0)
		rc = store_set_mark(&d->store, m->name, 0, &e);
	if (rc < 0)
		log_err("%s: cannot mark the reported recipients done: %s", m->orig, e.msg);
	m->pending_left = pending;
	m->marked = rc == 0;
	return rc;
}

void bounce_drop(struct member *m)
{
	uv_close((uv_handle_t *)&m->retry, on_member_closed);
}
