/*
 * bounce.c - reports of failed, relayed and late delivery (bounce.h):
 * the members and their check.  bounce_gather.c gathers them by
 * address, bounce_report.c builds and commits the reports, and
 * bounce_member.c holds what all of them need of a member (its marks,
 * its end).
 *
 * A message in QE_BOUNCING is a *member*: its file says B for the
 * recipients that failed and R for those a relay without DSN took while
 * the sender asked NOTIFY=SUCCESS (the worker marked them and named the
 * file .B, qrecord.c BOUNCES), or, for a "still trying" report ([queue]
 * delay_warning), it is late.  Its way to a report:
 *
 * 1. check (thread pool): is its report in the queue already (a crash
 *    came after the commit)?  That is its own report, qid_bounce(ID,
 *    tries), or the summary its defer/XX/ID.report mark names.  Then,
 *    or when it has nothing left to report, only its marks are
 *    finished.  The scheduler sends no report while a member has not
 *    passed this (sched_bounce_checked), so a report that step 1
 *    looks for is still there to be found.
 * 2. gather (loop, bounce_gather.c): a report goes to one address: the
 *    sender, or the postmaster for a report that failed itself.
 * 3. build (thread pool, bounce_report.c): each member's envelope, last
 *    replies and header section (or, RET=FULL, its whole message) make
 *    the report (dsn_build); the members of a summary get their .report
 *    mark, synced, before the commit.
 * 4. commit through the intake (way "bounce", the null sender, the ID
 *    the first member's qid_bounce): on the commit's thread, right
 *    after the report is durable and before it is indexed, each
 *    member's B recipients become F, its R recipients D, and its name
 *    loses its .B (bounce_mark); a delay report marks
 *    store_note_warned instead.  A report found already committed
 *    (EEXIST) is not made again.
 *
 * Invariants: one code path for every kind of news; a recipient is
 * reported once (the report's ID is a function of the message's ID and
 * tries, and its marks follow its commit); a file is removed only when
 * no recipient is pending and its report is committed.  A failure in
 * 1, 3 or 4 (a full disk) tries again after BOUNCE_RETRY_MS.  Members
 * wait only in memory: a stop or a crash leaves their .B names, which
 * bring them back at the next start.  Each failure report also goes to
 * [address] postmaster when set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "bounce_int.h"
#include "scheduler.h"

/* ---- 1. the check (thread pool) ---- */

static void check_work(uv_work_t *req)
{
	struct member *m = req->data;
	struct store *s = &m->d->store;
	char summary[QID_LEN + 1];
	struct envelope env;
	struct err e;
	size_t off;
	uint64_t size;
	int fd = -1;
	m->rc = 0;
	/* under any name: deferred since, it is still that report */
	unsigned attempt = m->warn ? 0 : m->tries;
	if (store_has(s, m->own_report))
		memcpy(m->found, m->own_report, sizeof m->found);
	else if (store_report_of(s, m->orig, attempt, summary) && store_has(s, summary))
		memcpy(m->found, summary, sizeof m->found);
	else
		m->found[0] = '\0';
	if ((m->exists = m->found[0] != '\0'))
		return;
	if (store_load(s, m->name, &env, &off, &fd, &size, &e) < 0) {
		m->rc = -1;
		snprintf(m->why, sizeof m->why, "%s", e.msg);
		return;
	}
	close(fd);
	m->nrcpt = 0;
	for (size_t i = 0; i < env.nrcpt; i++)
		m->nrcpt += bounce_reports(&env.rcpt[i], m->warn);
	m->pending_left = envelope_pending(&env) > 0;
	/* RFC 3464 has one Original-Envelope-Id per report, and a summary
	 * returns no message: such a message's report goes alone */
	m->alone = env.envid || env.ret == RET_FULL;
	m->whole = env.ret == RET_FULL && !m->warn;
	free(m->to);
	m->to = xstrdup(bounce_report_to(&env, m->conf));
	envelope_free(&env);
}

static void mark_work(uv_work_t *req)
{
	struct member *m = req->data;
	m->rc = bounce_mark(m->d, m);
}

static void on_check_retry(uv_timer_t *t);

static void mark_done(uv_work_t *req, int status)
{
	struct member *m = req->data;
	(void)status;
	if (m->rc < 0) {
		log_warn("%s: the marks of its report are not made yet: trying again in %d s", m->orig,
			 BOUNCE_RETRY_MS / 1000);
		uv_timer_start(&m->retry, on_check_retry, BOUNCE_RETRY_MS, 0);
		return;
	}
	bounce_member_done(m);
}

static void check_done(uv_work_t *req, int status)
{
	struct member *m = req->data;
	struct daemon *d = m->d;
	(void)status;
	if (m->rc < 0) {
		log_err("%s: cannot read it for its report: %s", m->orig, m->why);
		log_warn("%s: the report about its recipients is not queued yet (%s): trying again in %d s",
			 m->orig, m->why, BOUNCE_RETRY_MS / 1000);
		uv_timer_start(&m->retry, on_check_retry, BOUNCE_RETRY_MS, 0);
		return;
	}
	if (d->stopping) {
		bounce_drop(m);	/* its .B name finishes it at the next start */
		return;
	}
	if (!m->checked)
		sched_bounce_checked(&d->sched);
	m->checked = true;
	if (m->exists || m->nrcpt == 0) {	/* a crash came after the report, or after the marks */
		if (m->exists)
			log_info("%s: report %s was queued before a restart", m->orig, m->found);
		uv_queue_work(d->loop, &m->req, mark_work, mark_done);
		return;
	}
	bounce_gather(d, m);
}

static void on_check_retry(uv_timer_t *t)
{
	struct member *m = t->data;
	if (m->d->stopping)
		return;	/* the .B name finishes it at the next start */
	uv_queue_work(m->d->loop, &m->req, check_work, check_done);
}

void bounce_start(struct daemon *d, qref r, bool warn)
{
	if (d->stopping)
		return;	/* (an attempt that ended after the stop) its .B name finishes it */
	struct member *m = xcalloc(1, sizeof *m);
	const struct qentry *e = qindex_get(&d->queue, r);
	m->d = d;
	m->conf = config_ref(d->conf);
	m->warn = warn;
	m->id = e->id;
	m->tries = e->tries;
	qid_format(m->id, m->orig);
	sched_file_name(&d->sched, r, m->name);
	qname_set_mark(m->name, warn ? 0 : 'B');
	/* the same after a crash; tries 0 (never a failure's) is the delay report's */
	qid_bounce(m->orig, warn ? 0 : m->tries, m->own_report);
	uv_timer_init(d->loop, &m->retry);
	uv_unref((uv_handle_t *)&m->retry);	/* a stop does not wait: the .B name finishes it */
	m->retry.data = m;
	m->req.data = m;
	uv_queue_work(d->loop, &m->req, check_work, check_done);
}

void bounce_stop(struct daemon *d)
{
	bounce_gather_stop(d);
	bounce_report_stop(d);
}

void bounce_free(struct daemon *d)
{
	free(d->bounces);
	d->bounces = NULL;
}
