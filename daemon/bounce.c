/*
 * bounce.c - reports of failed and of late delivery (bounce.h).
 *
 * A message in QE_BOUNCING is a *member*: its file says B for the
 * recipients that failed (the worker marked them and named the file
 * .B, queue.c BOUNCES), or, for a "still trying" report ([queue]
 * delay_warning), it is late.  Its way to a report:
 *
 * 1. check (thread pool): is its report in the queue already (a crash
 *    came after the commit)?  That is its own report, qid_bounce(ID,
 *    tries), or the summary its defer/XX/ID.report mark names.  Then,
 *    or when it has nothing left to report, only its marks are
 *    finished.  The scheduler sends no report while a member has not
 *    passed this (sched_bounce_checked), so a report that step 1
 *    looks for is still there to be found.
 * 2. gather (loop): a report goes to one address: the sender, or the
 *    postmaster for a report that failed itself.  The first to an
 *    address goes at once; the ones that follow within [queue]
 *    report_interval wait and go together as one summary when it has
 *    passed (at most SUMMARY_MAX messages or SUMMARY_RCPTS recipients
 *    in one): a cron job failing every minute makes a report per
 *    interval, not one per run.  Failures and delays are kept apart.
 * 3. build (thread pool): each member's envelope, last replies and
 *    header section make the report (dsn_build); the members of a
 *    summary get their .report mark, synced, before the commit.
 * 4. commit through the intake (way "bounce", the null sender, the ID
 *    the first member's qid_bounce): on the commit's thread, right
 *    after the report is durable and before it is indexed, each
 *    member's B recipients become F and its name loses its .B
 *    (after_commit); a delay report marks store_note_warned instead.
 *    A report found already committed (EEXIST) is not made again.
 *
 * A failure in 3 or 4 (a full disk) tries the report again after
 * RETRY_MS.  Members wait only in memory: a stop or a crash leaves
 * their .B names, which bring them back at the next start.  Each
 * failure report also goes to [address] postmaster when set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../common/address.h"
#include "../common/rewrite.h"
#include "../common/dsn.h"
#include "../common/log.h"
#include "../common/units.h"
#include "bounce.h"
#include "intake.h"
#include "outboxd.h"
#include "scheduler.h"

#define RETRY_MS 60000
#define HEADERS_MAX (64 * 1024)	/* the original header section attached, at most */
#define SUMMARY_MAX 100		/* messages in one summary */
#define SUMMARY_RCPTS 1000	/* recipients in one summary */

struct member {
	uv_work_t req;		/* the check */
	uv_timer_t retry;	/* of a check that failed */
	struct daemon *d;
	struct member *next;	/* waiting in its storm */
	uint64_t id;
	unsigned tries;
	bool warn;
	char orig[QID_LEN + 1];
	char name[QNAME_MAX];	/* its file (.B for a failure report) */
	char own_report[QID_LEN + 1];	/* its report's ID when it goes alone */
	char *to;		/* who gets its report */
	size_t nrcpt;		/* the recipients to report */
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
	struct member **m;
	size_t n;
	bool warn;
	char id[QID_LEN + 1];
	struct envelope env;	/* null sender, to the member's `to` (+ postmaster) */
	struct buf msg;
	struct intake in;
	int rc;
	char why[512];
};

/* The reports to one address (and kind) in the last report_interval. */
struct storm {
	struct storm *next;
	struct bounces *all;
	uv_timer_t timer;	/* report_interval after the last report */
	char *to;
	bool warn;
	struct member *head, **tail;	/* waiting for the summary */
	size_t n, nrcpt;
};

struct bounces {
	struct daemon *d;
	struct storm *storms;
};

static void report_make(struct daemon *d, struct member *list, bool warn);

/* ---- members ---- */

static void member_free(struct member *m)
{
	free(m->to);
	free(m);
}

static void on_member_closed(uv_handle_t *h)
{
	member_free(h->data);
}

/* Its report is queued and its marks done (or it had none to make). */
static void member_done(struct member *m)
{
	qref r = qindex_find(&m->d->queue, m->id);
	if (r)
		sched_bounced(&m->d->sched, r, m->pending_left);
	uv_close((uv_handle_t *)&m->retry, on_member_closed);
}

/* Who gets the report: the sender, or for a report that failed (null
 * sender), the postmaster. */
static const char *report_to(const struct envelope *env, const struct config *c)
{
	return *env->sender ? env->sender : c->address.postmaster;
}

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
	char want = m->warn ? RCPT_PENDING : RCPT_BOUNCING;
	m->nrcpt = 0;
	for (size_t i = 0; i < env.nrcpt; i++)
		m->nrcpt += env.rcpt[i].status == want;
	m->pending_left = envelope_pending(&env) > 0;
	free(m->to);
	m->to = xstrdup(report_to(&env, m->d->conf));
	envelope_free(&env);
}

/* ---- the marks (commit thread, or thread pool) ---- */

static int mark_failed(struct daemon *d, struct member *m)
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
		log_err("%s: cannot mark the reported recipients failed: %s", m->orig, e.msg);
		return -1;
	}
	for (size_t i = 0; i < env.nrcpt && rc == 0; i++)
		if (env.rcpt[i].status == RCPT_BOUNCING)
			rc = store_set_status(fd, &env.rcpt[i], RCPT_FAILED, &e);
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
		log_err("%s: cannot mark the reported recipients failed: %s", m->orig, e.msg);
	m->pending_left = pending;
	m->marked = rc == 0;
	return rc;
}

static void mark_work(uv_work_t *req)
{
	struct member *m = req->data;
	m->rc = mark_failed(m->d, m);
}

static void on_check_retry(uv_timer_t *t);

static void mark_done(uv_work_t *req, int status)
{
	struct member *m = req->data;
	(void)status;
	if (m->rc < 0) {
		log_warn("%s: the marks of its report are not made yet: trying again in %d s", m->orig,
			 RETRY_MS / 1000);
		uv_timer_start(&m->retry, on_check_retry, RETRY_MS, 0);
		return;
	}
	member_done(m);
}

/* ---- storms: gathering the reports to one address ---- */

static struct bounces *bounces_of(struct daemon *d)
{
	if (!d->bounces) {
		d->bounces = xcalloc(1, sizeof *d->bounces);
		d->bounces->d = d;
	}
	return d->bounces;
}

static void on_storm_closed(uv_handle_t *h)
{
	struct storm *st = h->data;
	free(st->to);
	free(st);
}

static void storm_unlink(struct storm *st)
{
	for (struct storm **p = &st->all->storms; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
}

/* The waiting members go as one report; the interval starts again. */
static void storm_flush(struct daemon *d, struct storm *st)
{
	struct member *list = st->head;
	st->head = NULL;
	st->tail = &st->head;
	st->n = st->nrcpt = 0;
	uv_timer_again(&st->timer);
	if (list)
		report_make(d, list, st->warn);
}

static void on_storm_timer(uv_timer_t *t)
{
	struct storm *st = t->data;
	struct daemon *d = st->all->d;
	if (st->head) {
		storm_flush(d, st);
		return;
	}
	storm_unlink(st);	/* quiet for an interval: the next report goes at once */
	uv_close((uv_handle_t *)&st->timer, on_storm_closed);
}

static struct storm *storm_find(struct bounces *b, const char *to, bool warn)
{
	for (struct storm *st = b->storms; st; st = st->next)
		if (st->warn == warn && strcasecmp(st->to, to) == 0)
			return st;
	return NULL;
}

static void gather(struct daemon *d, struct member *m)
{
	uint64_t interval = d->conf->queue.report_interval;
	struct bounces *b = bounces_of(d);
	struct storm *st = interval ? storm_find(b, m->to, m->warn) : NULL;
	if (!st) {	/* the first report to this address in an interval goes now */
		if (interval) {
			st = xcalloc(1, sizeof *st);
			st->all = b;
			st->to = xstrdup(m->to);
			st->warn = m->warn;
			st->tail = &st->head;
			uv_timer_init(d->loop, &st->timer);
			uv_unref((uv_handle_t *)&st->timer);	/* a stop does not wait for it */
			st->timer.data = st;
			uv_timer_start(&st->timer, on_storm_timer, interval * 1000, interval * 1000);
			st->next = b->storms;
			b->storms = st;
		}
		m->next = NULL;
		report_make(d, m, m->warn);
		return;
	}
	m->next = NULL;
	*st->tail = m;
	st->tail = &m->next;
	st->n++;
	st->nrcpt += m->nrcpt;
	if (st->n >= SUMMARY_MAX || st->nrcpt >= SUMMARY_RCPTS)
		storm_flush(d, st);
	else if (st->n == 1)
		log_info("%s: its report to <%s> waits up to %llu s, to go with others to that address", m->orig,
			 m->to, (unsigned long long)interval);
}

static void check_done(uv_work_t *req, int status)
{
	struct member *m = req->data;
	struct daemon *d = m->d;
	(void)status;
	if (m->rc < 0) {
		log_err("%s: cannot read it for its report: %s", m->orig, m->why);
		log_warn("%s: the report about its failed recipients is not queued yet (%s): trying again in %d s",
			 m->orig, m->why, RETRY_MS / 1000);
		uv_timer_start(&m->retry, on_check_retry, RETRY_MS, 0);
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
	gather(d, m);
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
	struct member *m = xcalloc(1, sizeof *m);
	const struct qentry *e = qindex_get(&d->queue, r);
	m->d = d;
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
	struct bounces *b = d->bounces;
	while (b && b->storms) {
		struct storm *st = b->storms;
		b->storms = st->next;
		for (struct member *m = st->head, *next; m; m = next) {
			next = m->next;	/* its .B name brings it back at the next start */
			uv_close((uv_handle_t *)&m->retry, on_member_closed);
		}
		uv_close((uv_handle_t *)&st->timer, on_storm_closed);
	}
}

void bounce_free(struct daemon *d)
{
	free(d->bounces);
	d->bounces = NULL;
}

/* ---- a report: build (thread pool) ---- */

static void read_headers(int fd, size_t off, struct buf *out)
{
	char *b = xmalloc(HEADERS_MAX + 1);
	ssize_t n = pread(fd, b, HEADERS_MAX, (off_t)off);
	b[n > 0 ? n : 0] = '\0';
	char *end = strstr(b, "\r\n\r\n");
	buf_add(out, b, end ? (size_t)(end - b) + 2 : (size_t)(n > 0 ? n : 0));
	free(b);
}

/* What one member gives its report; freed with part_free. */
struct part {
	struct envelope env;
	struct dsn_rcpt *r;
	char **why;
	char *relay;
	struct buf headers;
};

static int part_load(const struct report *rep, struct member *m, struct part *p, struct err *e)
{
	struct store *s = &rep->d->store;
	size_t off;
	uint64_t size;
	int fd = -1;
	buf_init(&p->headers);
	envelope_init(&p->env);
	p->r = NULL;
	p->why = NULL;
	p->relay = NULL;
	if (store_load(s, m->name, &p->env, &off, &fd, &size, e) < 0)
		return -1;
	size_t cap = p->env.nrcpt ? p->env.nrcpt : 1, n = 0;
	p->r = xcalloc(cap, sizeof *p->r);
	p->why = xcalloc(cap, sizeof *p->why);
	p->relay = store_reason(s, m->orig, "@relay");
	char want = rep->warn ? RCPT_PENDING : RCPT_BOUNCING;
	for (size_t i = 0; i < p->env.nrcpt; i++) {
		if (p->env.rcpt[i].status != want)
			continue;
		p->why[n] = store_reason(s, m->orig, p->env.rcpt[i].addr);
		p->r[n] = (struct dsn_rcpt){ .addr = p->env.rcpt[i].addr,
					     .action = rep->warn ? DSN_DELAYED : DSN_FAILED,
					     .reply = p->why[n] ? p->why[n]
								: "failed (its reply was lost in a restart of outboxd)",
					     .remote_mta = p->relay ? p->relay : "" };
		n++;
	}
	read_headers(fd, off, &p->headers);
	close(fd);
	return (int)n;
}

static void part_free(struct part *p)
{
	for (size_t i = 0; p->why && i < p->env.nrcpt; i++)
		free(p->why[i]);
	free(p->why);
	free(p->r);
	free(p->relay);
	buf_free(&p->headers);
	envelope_free(&p->env);
}

static void build_work(uv_work_t *req)
{
	struct report *rep = req->data;
	const struct config *c = rep->d->conf;
	struct err e;
	rep->rc = 0;
	buf_reset(&rep->msg);
	if (store_has(&rep->d->store, rep->id))
		return;	/* queued before (a retry after its marks failed) */
	struct part *p = xcalloc(rep->n, sizeof *p);
	struct dsn_message *msg = xcalloc(rep->n, sizeof *msg);
	int *n = xcalloc(rep->n, sizeof *n);
	for (size_t k = 0; k < rep->n && rep->rc == 0; k++) {
		n[k] = part_load(rep, rep->m[k], &p[k], &e);
		if (n[k] < 0) {
			rep->rc = -1;
			snprintf(rep->why, sizeof rep->why, "%s", e.msg);
			break;
		}
		msg[k] = (struct dsn_message){ .queue_id = rep->m[k]->orig, .arrival = p[k].env.arrival,
					       .rcpt = p[k].r, .nrcpt = (size_t)n[k],
					       .headers = p[k].headers.data ? p[k].headers.data : "",
					       .headers_len = p[k].headers.len };
	}
	for (size_t i = 0; rep->rc == 0 && rep->n > 1 && i < rep->n; i++)
		if (store_note_report(&rep->d->store, rep->m[i]->orig, rep->warn ? 0 : rep->m[i]->tries, rep->id,
				      &e) < 0) {
			rep->rc = -1;
			snprintf(rep->why, sizeof rep->why, "%s", e.msg);
		}
	if (rep->rc == 0) {
		char dom[256], life[32];
		struct dsn_input in = {
			.reporting_mta = rep->d->hostname, .from_domain = addr_domain(c, dom, sizeof dom),
			.sender = rep->m[0]->to, .now = now_real(), .msg = msg, .nmsg = rep->n,
			.lifetime = format_duration(c->queue.lifetime, life, sizeof life),
			.rnd = rep->m[0]->id ^ (uint64_t)(now_real() * 1e6),
		};
		dsn_build(&in, &rep->msg);
	}
	for (size_t i = 0; i < rep->n; i++)
		part_free(&p[i]);	/* (zeroed or loaded, each) */
	free(n);
	free(msg);
	free(p);
}

/* ---- a report: commit (loop), marks on the commit's thread ---- */

static void after_commit(struct intake *in, void *arg)
{
	struct report *rep = arg;
	(void)in;
	rep->rc = 0;
	for (size_t i = 0; i < rep->n; i++)
		if (mark_failed(rep->d, rep->m[i]) < 0)
			rep->rc = -1;
}

static void report_free(struct report *rep)
{
	envelope_free(&rep->env);
	buf_free(&rep->msg);
	free(rep->m);
	free(rep);
}

static void on_report_closed(uv_handle_t *h)
{
	report_free(h->data);
}

static void report_done(struct report *rep)
{
	for (size_t i = 0; i < rep->n; i++)
		member_done(rep->m[i]);
	uv_close((uv_handle_t *)&rep->retry, on_report_closed);
}

static void build_done(uv_work_t *req, int status);

static void on_report_retry(uv_timer_t *t)
{
	struct report *rep = t->data;
	if (rep->d->stopping)
		return;	/* the .B names finish it at the next start */
	uv_queue_work(rep->d->loop, &rep->req, build_work, build_done);
}

static void try_later(struct report *rep, const char *what)
{
	log_warn("%s: the report about its failed recipients is not queued yet (%s): trying again in %d s",
		 rep->m[0]->orig, what, RETRY_MS / 1000);
	uv_timer_start(&rep->retry, on_report_retry, RETRY_MS, 0);
}

static void marks_work(uv_work_t *req)
{
	struct report *rep = req->data;
	after_commit(NULL, rep);
}

static void marks_done(uv_work_t *req, int status)
{
	struct report *rep = req->data;
	(void)status;
	if (rep->rc < 0)
		try_later(rep, "the marks");
	else
		report_done(rep);
}

static void log_queued(const struct report *rep)
{
	const char *what = rep->warn ? "delayed delivery" : "failed delivery";
	if (rep->n == 1) {
		log_info("%s: report of %s queued as %s to <%s>", rep->m[0]->orig, what, rep->id,
			 rep->env.rcpt[0].addr);
		return;
	}
	for (size_t i = 0; i < rep->n; i++)
		log_info("%s: report of %s queued as %s to <%s> (a summary of %zu messages)", rep->m[i]->orig, what,
			 rep->id, rep->env.rcpt[0].addr, rep->n);
}

static void commit_done(struct intake *in, void *arg)
{
	struct report *rep = arg;
	int rc = in->rc;
	bool exists = rc < 0 && in->err.sys == EEXIST;
	char why[sizeof in->err.msg];
	snprintf(why, sizeof why, "%s", in->err.msg);
	if (rc == 0)
		log_queued(rep);
	intake_free(in);
	if (exists) {	/* queued before: only the marks are left */
		log_info("%s: report %s was queued before a restart", rep->m[0]->orig, rep->id);
		uv_queue_work(rep->d->loop, &rep->req, marks_work, marks_done);
	} else if (rc < 0) {
		try_later(rep, why);
	} else if (rep->rc < 0) {
		try_later(rep, "the marks");
	} else {
		report_done(rep);
	}
}

static void build_done(uv_work_t *req, int status)
{
	struct report *rep = req->data;
	struct daemon *d = rep->d;
	const struct config *c = d->conf;
	const char *to = rep->m[0]->to;
	struct err e;
	(void)status;
	if (rep->rc < 0) {
		log_err("%s: cannot make its report: %s", rep->m[0]->orig, rep->why);
		try_later(rep, rep->why);
		return;
	}
	if (!rep->msg.len) {	/* queued before a retry: the marks are left */
		uv_queue_work(d->loop, &rep->req, marks_work, marks_done);
		return;
	}
	envelope_free(&rep->env);
	envelope_init(&rep->env);
	rep->env.sender = xstrdup("");
	envelope_add_rcpt(&rep->env, to);
	if (!rep->warn && *c->address.postmaster && strcasecmp(c->address.postmaster, to) != 0)
		envelope_add_rcpt(&rep->env, c->address.postmaster);	/* a copy of each report */
	struct origin o = { .way = WAY_BOUNCE, .uid = -1, .login = "", .helo = "", .peer = "", .id = rep->id };
	if (intake_begin(&d->intake, &rep->in, &rep->env, &o, &e) < 0) {
		try_later(rep, e.msg);
		return;
	}
	intake_write(&rep->in, rep->msg.data, rep->msg.len);
	rep->in.after_commit = after_commit;
	intake_commit(&rep->in, commit_done, rep);
}

static void report_make(struct daemon *d, struct member *list, bool warn)
{
	struct report *rep = xcalloc(1, sizeof *rep);
	rep->d = d;
	rep->warn = warn;
	for (struct member *m = list; m; m = m->next)
		rep->n++;
	rep->m = xcalloc(rep->n, sizeof *rep->m);
	size_t i = 0;
	for (struct member *m = list; m; m = m->next)
		rep->m[i++] = m;
	memcpy(rep->id, rep->m[0]->own_report, sizeof rep->id);
	buf_init(&rep->msg);
	envelope_init(&rep->env);
	uv_timer_init(d->loop, &rep->retry);
	uv_unref((uv_handle_t *)&rep->retry);	/* a stop does not wait: the .B names finish it */
	rep->retry.data = rep;
	rep->req.data = rep;
	uv_queue_work(d->loop, &rep->req, build_work, build_done);
}
