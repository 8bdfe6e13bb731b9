/*
 * bounce_report.c - one report (bounce_int.h): built on the thread pool
 * from each member's queue file (dsn_build), then committed through the
 * intake with the null sender, its members' marks made on the commit's
 * thread (bounce_mark) right after the report is durable.
 *
 * What a member gives its report: its recipients of the report's kind
 * (bounce_reports: B failed, R relayed; or, for a delay report, the
 * pending ones whose NOTIFY lets it go), each with its last reply, the
 * relay's name and its ORCPT; the message's ENVID, RET and SMTPUTF8
 * flag; its header section, or its whole self when RET=FULL, a
 * recipient failed, and it is at most [queue] max_message_size.
 *
 * Invariants: a report is committed under its first member's
 * qid_bounce ID, so a second commit finds the first (EEXIST) and only
 * the marks are left; a failure (a full disk) tries the report again
 * after BOUNCE_RETRY_MS; the postmaster gets a copy of failure reports
 * only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../common/address.h"
#include "../common/dsn.h"
#include "../common/log.h"
#include "../common/rewrite.h"
#include "../common/units.h"
#include "bounce_int.h"

#define HEADERS_MAX (64 * 1024)	/* the original header section attached, at most */
/* What a report adds to the message it returns (its header, words and
 * status parts): a whole message is returned only when it and this fit
 * in [queue] max_message_size, so the report is never refused as too
 * big by outbox itself. */
#define REPORT_MARGIN (64 * 1024)
/* The report goes to the intake this much at a time, each slice written
 * on the thread pool before the next (the loop never copies a whole
 * returned message at once). */
#define REPORT_SLICE (256 * 1024)

/* ---- build (thread pool) ---- */

static void read_headers(int fd, size_t off, struct buf *out)
{
	char *b = xmalloc(HEADERS_MAX + 1);
	ssize_t n = pread(fd, b, HEADERS_MAX, (off_t)off);
	b[n > 0 ? n : 0] = '\0';
	char *end = strstr(b, "\r\n\r\n");
	buf_add(out, b, end ? (size_t)(end - b) + 2 : (size_t)(n > 0 ? n : 0));
	free(b);
}

/* The whole message (size octets at off); -1 if it cannot be read. */
static int read_whole(int fd, size_t off, uint64_t size, struct buf *out, struct err *e)
{
	buf_reserve(out, (size_t)size + 1);
	while (out->len < size) {
		ssize_t n = pread(fd, out->data + out->len, (size_t)size - out->len, (off_t)(off + out->len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? err_sys(e, "read") : err_set(e, "the queue file ends early");
		out->len += (size_t)n;
	}
	out->data[out->len] = '\0';
	return 0;
}

/* What one member gives its report; freed with part_free. */
struct part {
	struct envelope env;
	struct dsn_rcpt *r;
	char **why;
	char *relay;
	struct buf headers, whole;
};

static const char *lost_reply(bool warn, char status)
{
	if (warn)
		return "not delivered yet (its reply was lost in a restart of outboxd)";
	return status == RCPT_RELAYED ? "relayed (its reply was lost in a restart of outboxd)"
				      : "failed (its reply was lost in a restart of outboxd)";
}

/* Its recipients to report, into p->r; their number. */
static size_t part_rcpts(const struct report *rep, struct member *m, struct part *p)
{
	struct store *s = &rep->d->store;
	size_t n = 0;
	for (size_t i = 0; i < p->env.nrcpt; i++) {
		const struct rcpt *rc = &p->env.rcpt[i];
		if (!bounce_reports(rc, rep->warn))
			continue;
		p->why[n] = store_reason(s, m->orig, rc->addr);
		p->r[n] = (struct dsn_rcpt){ .addr = rc->addr,
					     .action = rep->warn ? DSN_DELAYED
						       : rc->status == RCPT_RELAYED ? DSN_RELAYED : DSN_FAILED,
					     .reply = p->why[n] ? p->why[n] : lost_reply(rep->warn, rc->status),
					     .remote_mta = p->relay ? p->relay : "", .orcpt = rc->orcpt };
		n++;
	}
	return n;
}

static int part_load(const struct report *rep, struct member *m, struct part *p, struct dsn_message *out,
		     struct err *e)
{
	struct store *s = &rep->d->store;
	uint64_t max = rep->conf->queue.max_message_size;
	size_t off;
	uint64_t size;
	int fd = -1;
	if (store_load(s, m->name, &p->env, &off, &fd, &size, e) < 0)
		return -1;
	size_t cap = p->env.nrcpt ? p->env.nrcpt : 1;
	p->r = xcalloc(cap, sizeof *p->r);
	p->why = xcalloc(cap, sizeof *p->why);
	p->relay = store_reason(s, m->orig, "@relay");
	size_t n = part_rcpts(rep, m, p);
	bool failed = false;
	for (size_t i = 0; i < n; i++)
		failed |= p->r[i].action == DSN_FAILED;
	read_headers(fd, off, &p->headers);
	int rc = 0;
	if (failed && rep->n == 1 && p->env.ret == RET_FULL && size + REPORT_MARGIN <= max)
		rc = read_whole(fd, off, size, &p->whole, e);
	close(fd);
	*out = (struct dsn_message){ .queue_id = m->orig, .arrival = p->env.arrival, .rcpt = p->r, .nrcpt = n,
				     .headers = p->headers.data ? p->headers.data : "",
				     .headers_len = p->headers.len, .envid = p->env.envid, .ret = p->env.ret,
				     .utf8 = (p->env.flags & ENV_SMTPUTF8) != 0, .size = size, .size_max = max,
				     .content = p->whole.data, .content_len = p->whole.len };
	return rc;
}

static void part_free(struct part *p)
{
	for (size_t i = 0; p->why && i < p->env.nrcpt; i++)
		free(p->why[i]);
	free(p->why);
	free(p->r);
	free(p->relay);
	buf_free(&p->headers);
	buf_free(&p->whole);
	envelope_free(&p->env);
}

static int note_summary(struct report *rep, struct err *e)
{
	for (size_t i = 0; rep->n > 1 && i < rep->n; i++)
		if (store_note_report(&rep->d->store, rep->m[i]->orig, rep->warn ? 0 : rep->m[i]->tries, rep->id,
				      e) < 0)
			return -1;
	return 0;
}

static void build(struct report *rep, const struct dsn_message *msg)
{
	const struct config *c = rep->conf;
	char dom[256], life[32];
	struct dsn_input in = {
		.reporting_mta = rep->d->hostname, .from_domain = addr_domain(c, dom, sizeof dom),
		.sender = rep->m[0]->to, .now = now_real(), .msg = msg, .nmsg = rep->n,
		.lifetime = format_duration(c->queue.lifetime, life, sizeof life),
		.rnd = rep->m[0]->id ^ (uint64_t)(now_real() * 1e6),
	};
	dsn_build(&in, &rep->msg);
	rep->failed = rep->relayed = rep->eight_bit = false;
	rep->returned = rep->n == 1 && msg[0].content != NULL;	/* (part_load: RET=FULL, failed, fits) */
	for (size_t k = 0; k < rep->n; k++)
		for (size_t i = 0; i < msg[k].nrcpt; i++) {
			rep->failed |= msg[k].rcpt[i].action == DSN_FAILED;
			rep->relayed |= msg[k].rcpt[i].action == DSN_RELAYED;
		}
	for (size_t i = 0; i < rep->msg.len && !rep->eight_bit; i++)
		rep->eight_bit = (unsigned char)rep->msg.data[i] >= 0x80;
}

static void build_work(uv_work_t *req)
{
	struct report *rep = req->data;
	struct err e;
	rep->rc = 0;
	buf_reset(&rep->msg);
	if (store_has(&rep->d->store, rep->id))
		return;	/* queued before (a retry after its marks failed) */
	struct part *p = xcalloc(rep->n, sizeof *p);
	struct dsn_message *msg = xcalloc(rep->n, sizeof *msg);
	for (size_t k = 0; k < rep->n && rep->rc == 0; k++)
		rep->rc = part_load(rep, rep->m[k], &p[k], &msg[k], &e);
	if (rep->rc == 0)
		rep->rc = note_summary(rep, &e);
	if (rep->rc == 0)
		build(rep, msg);
	else
		snprintf(rep->why, sizeof rep->why, "%s", e.msg);
	for (size_t i = 0; i < rep->n; i++)
		part_free(&p[i]);	/* (zeroed or loaded, each) */
	free(msg);
	free(p);
}

/* ---- commit (loop), marks on the commit's thread ---- */

static void after_commit(struct intake *in, void *arg)
{
	struct report *rep = arg;
	(void)in;
	rep->rc = 0;
	for (size_t i = 0; i < rep->n; i++)
		if (bounce_mark(rep->d, rep->m[i]) < 0)
			rep->rc = -1;
}

static void report_free(struct report *rep)
{
	config_unref(rep->conf);
	envelope_free(&rep->env);
	buf_free(&rep->msg);
	free(rep->m);
	free(rep);
}

static void report_start(struct report *rep);

/* A whole-message report is over: the next one waiting takes its turn. */
static void whole_done(struct report *rep)
{
	struct bounces *b = rep->d->bounces;
	if (!rep->whole || !b)
		return;
	b->whole_running--;
	struct report *next = b->whole_waiting;
	if (!next || rep->d->stopping)
		return;
	if (!(b->whole_waiting = next->next))
		b->whole_tail = &b->whole_waiting;
	b->whole_running++;
	report_start(next);
}

static void on_report_closed(uv_handle_t *h)
{
	whole_done(h->data);
	report_free(h->data);
}

static void report_done(struct report *rep)
{
	for (size_t i = 0; i < rep->n; i++)
		bounce_member_done(rep->m[i]);
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
	log_warn("%s: the report about its recipients is not queued yet (%s): trying again in %d s",
		 rep->m[0]->orig, what, BOUNCE_RETRY_MS / 1000);
	uv_timer_start(&rep->retry, on_report_retry, BOUNCE_RETRY_MS, 0);
}

static void marks_work(uv_work_t *req)
{
	after_commit(NULL, req->data);
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

static const char *news_of(const struct report *rep)
{
	if (rep->warn)
		return "delayed delivery";
	if (rep->failed)
		return rep->relayed ? "failed and relayed delivery" : "failed delivery";
	return "relayed delivery";
}

static void log_queued(const struct report *rep)
{
	if (rep->n == 1) {
		log_info("%s: report of %s queued as %s to <%s>", rep->m[0]->orig, news_of(rep), rep->id,
			 rep->env.rcpt[0].addr);
		return;
	}
	for (size_t i = 0; i < rep->n; i++)
		log_info("%s: report of %s queued as %s to <%s> (a summary of %zu messages)", rep->m[i]->orig,
			 news_of(rep), rep->id, rep->env.rcpt[0].addr, rep->n);
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

/* The report's envelope: the null sender, to `to`, a copy of a failure
 * report to the postmaster -- but not of one that returns the whole
 * message (RET=FULL): the sender asked for the body, the postmaster did
 * not (the failure is in the log); 8BITMIME when its bytes need it.  A global
 * report's UTF-8 is in its body parts, not its own header: it needs
 * SMTPUTF8 only when an address does (the intake sees to that). */
static void report_envelope(struct report *rep, const struct config *c, const char *to)
{
	envelope_free(&rep->env);
	envelope_init(&rep->env);
	rep->env.sender = xstrdup("");
	envelope_add_rcpt(&rep->env, to);
	if (rep->failed && !rep->returned && *c->address.postmaster && strcasecmp(c->address.postmaster, to) != 0)
		envelope_add_rcpt(&rep->env, c->address.postmaster);
	rep->env.flags = rep->eight_bit ? ENV_8BITMIME : 0;
}

/* The next slice of the report to the intake: written on the thread
 * pool (intake_flush, whose error sticks and fails the commit) before
 * the one after; the last is committed. */
static void write_on(struct intake *in, void *arg)
{
	struct report *rep = arg;
	size_t n = rep->msg.len - rep->sent;
	if (n > REPORT_SLICE)
		n = REPORT_SLICE;
	intake_write(in, rep->msg.data + rep->sent, n);
	rep->sent += n;
	if (rep->sent < rep->msg.len) {
		intake_flush(in, write_on, rep);
		return;
	}
	in->after_commit = after_commit;
	intake_commit(in, commit_done, rep);
}

static void build_done(uv_work_t *req, int status)
{
	struct report *rep = req->data;
	struct daemon *d = rep->d;
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
	report_envelope(rep, rep->conf, rep->m[0]->to);
	struct origin o = { .way = WAY_BOUNCE, .uid = -1, .login = "", .helo = "", .peer = "", .id = rep->id };
	if (intake_begin(&d->intake, &rep->in, &rep->env, &o, &e) < 0) {
		try_later(rep, e.msg);
		return;
	}
	rep->sent = 0;
	write_on(&rep->in, rep);
}

static void report_start(struct report *rep)
{
	uv_timer_init(rep->d->loop, &rep->retry);
	uv_unref((uv_handle_t *)&rep->retry);	/* a stop does not wait: the .B names finish it */
	uv_queue_work(rep->d->loop, &rep->req, build_work, build_done);
}

void bounce_report_make(struct daemon *d, struct member *list, bool warn)
{
	struct report *rep = xcalloc(1, sizeof *rep);
	rep->d = d;
	rep->conf = config_ref(d->conf);
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
	rep->retry.data = rep;
	rep->req.data = rep;
	rep->whole = rep->n == 1 && rep->m[0]->whole;
	struct bounces *b = bounces_of(d);
	if (rep->whole && b->whole_running >= WHOLE_REPORTS_MAX) {
		*b->whole_tail = rep;	/* its turn comes when one running is over */
		b->whole_tail = &rep->next;
		return;
	}
	b->whole_running += rep->whole;
	report_start(rep);
}

void bounce_report_stop(struct daemon *d)
{
	struct bounces *b = d->bounces;
	while (b && b->whole_waiting) {
		struct report *rep = b->whole_waiting;
		b->whole_waiting = rep->next;
		for (size_t i = 0; i < rep->n; i++)
			bounce_drop(rep->m[i]);	/* its .B name brings it back at the next start */
		report_free(rep);
	}
	if (b)
		b->whole_tail = &b->whole_waiting;
}
