/*
 * bounce.c - reports of failed delivery (bounce.h).
 *
 * For a message whose file says B for some recipients (the worker
 * marked them, and named the file .B, queue.c BOUNCES): on the thread
 * pool the file is read (envelope, header section) with the last reply
 * of each B recipient (the defer file), and the report is built
 * (dsn_build); on the loop it goes through the intake (way "bounce",
 * the null sender, its ID from qid_bounce); on the commit's thread,
 * right after the report is durable and before it is indexed, the B
 * recipients become F and the name loses its .B (after_commit).  A
 * report found already committed (EEXIST: a crash came between the
 * commit and the marks) is not made again; the marks are finished.
 * Each report also goes to [address] postmaster when set.  The same
 * path makes the one "still trying" report of a message waiting past
 * [queue] delay_warning (warn: about its pending recipients, ID
 * qid_bounce(ID, 0), then the mark store_note_warned).  A failure
 * to queue the report (a full disk) leaves the message QE_BOUNCING and
 * tries again after RETRY_MS.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../common/address.h"
#include "../common/dsn.h"
#include "../common/log.h"
#include "../common/units.h"
#include "bounce.h"
#include "intake.h"
#include "outboxd.h"
#include "scheduler.h"

#define RETRY_MS 60000
#define HEADERS_MAX (64 * 1024)	/* the original header section attached, at most */

struct bounce {
	uv_work_t req;
	uv_timer_t retry;
	struct daemon *d;
	uint64_t id;
	char orig[QID_LEN + 1];
	char name[QNAME_MAX];	/* the original's file, .B */
	char report_id[QID_LEN + 1];
	struct envelope orig_env;
	struct envelope env;	/* the report's: null sender, to the sender (+ postmaster) */
	struct buf msg;		/* the report */
	struct intake in;
	bool pending_left;	/* the original still has recipients to try */
	bool nothing;		/* no B recipient (marks done before a crash): only the name */
	bool exists;		/* the report is in the queue already (queued before a crash) */
	bool warn;		/* no failure: a "still trying" report about the waiting ones */
	int rc;
	char why[512];
};

/* ---- thread: read the original, build the report ---- */

static void read_headers(int fd, size_t off, struct buf *out)
{
	char *b = xmalloc(HEADERS_MAX + 1);
	ssize_t n = pread(fd, b, HEADERS_MAX, (off_t)off);
	b[n > 0 ? n : 0] = '\0';
	char *end = strstr(b, "\r\n\r\n");
	buf_add(out, b, end ? (size_t)(end - b) + 2 : (size_t)(n > 0 ? n : 0));
	free(b);
}

/* Who gets the report: the sender, or for a report that failed (null
 * sender), the postmaster. */
static const char *report_to(const struct bounce *b, const struct config *c)
{
	return *b->orig_env.sender ? b->orig_env.sender : c->address.postmaster;
}

static void build_work(uv_work_t *req)
{
	struct bounce *b = req->data;
	const struct config *c = b->d->conf;
	struct err e;
	size_t off;
	uint64_t size;
	int fd = -1;
	envelope_free(&b->orig_env);
	if ((b->exists = store_has(&b->d->store, b->report_id))) {
		b->rc = 0;
		return;	/* under any name: deferred since, it is still that report */
	}
	if (store_load(&b->d->store, b->name, &b->orig_env, &off, &fd, &size, &e) < 0) {
		b->rc = -1;
		snprintf(b->why, sizeof b->why, "%s", e.msg);
		return;
	}
	struct dsn_rcpt *r = xcalloc(b->orig_env.nrcpt ? b->orig_env.nrcpt : 1, sizeof *r);
	char **why = xcalloc(b->orig_env.nrcpt ? b->orig_env.nrcpt : 1, sizeof *why);
	char *relay = store_reason(&b->d->store, b->orig, "@relay");
	size_t n = 0;
	b->pending_left = envelope_pending(&b->orig_env) > 0;
	char want = b->warn ? RCPT_PENDING : RCPT_BOUNCING;
	for (size_t i = 0; i < b->orig_env.nrcpt; i++) {
		if (b->orig_env.rcpt[i].status != want)
			continue;
		why[n] = store_reason(&b->d->store, b->orig, b->orig_env.rcpt[i].addr);
		r[n] = (struct dsn_rcpt){ .addr = b->orig_env.rcpt[i].addr,
					  .action = b->warn ? DSN_DELAYED : DSN_FAILED,
					  .reply = why[n] ? why[n] : "failed (its reply was lost in a restart of outboxd)",
					  .remote_mta = relay ? relay : "" };
		n++;
	}
	b->nothing = n == 0;
	if (n) {
		struct buf h;
		char dom[256], life[32];
		buf_init(&h);
		read_headers(fd, off, &h);
		struct dsn_input in = {
			.reporting_mta = b->d->hostname, .from_domain = addr_domain(c, dom, sizeof dom),
			.sender = report_to(b, c), .queue_id = b->orig, .arrival = b->orig_env.arrival,
			.now = now_real(), .rcpt = r, .nrcpt = n, .headers = h.data ? h.data : "",
			.headers_len = h.len, .lifetime = format_duration(c->queue.lifetime, life, sizeof life),
			.rnd = b->id ^ (uint64_t)(now_real() * 1e6),
		};
		buf_reset(&b->msg);
		dsn_build(&in, &b->msg);
		buf_free(&h);
	}
	for (size_t i = 0; i < n; i++)
		free(why[i]);
	free(why);
	free(r);
	free(relay);
	close(fd);
	b->rc = 0;
}

/* ---- commit thread (after_commit) or thread pool: B becomes F ---- */

static int mark_failed(struct bounce *b)
{
	if (b->warn) {	/* nothing failed: the one report about the delay is sent */
		store_note_warned(&b->d->store, b->orig);
		b->pending_left = true;
		return 0;
	}
	struct err e;
	struct envelope env;
	size_t off;
	uint64_t size;
	int fd = -1, rc = 0;
	if (store_load(&b->d->store, b->name, &env, &off, &fd, &size, &e) < 0) {
		log_err("%s: cannot mark the reported recipients failed: %s", b->orig, e.msg);
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
		rc = store_remove(&b->d->store, b->name, off + size, &e);
	else if (rc == 0)
		rc = store_set_mark(&b->d->store, b->name, 0, &e);
	if (rc < 0)
		log_err("%s: cannot mark the reported recipients failed: %s", b->orig, e.msg);
	b->pending_left = pending;
	return rc;
}

static void after_commit(struct intake *in, void *arg)
{
	struct bounce *b = arg;
	(void)in;
	b->rc = mark_failed(b);
}

static void mark_work(uv_work_t *req)
{
	struct bounce *b = req->data;
	b->rc = mark_failed(b);
}

/* ---- loop ---- */

static void bounce_free(struct bounce *b)
{
	envelope_free(&b->orig_env);
	envelope_free(&b->env);
	buf_free(&b->msg);
	free(b);
}

static void on_retry_closed(uv_handle_t *h)
{
	bounce_free(h->data);
}

static void finish(struct bounce *b)
{
	qref r = qindex_find(&b->d->queue, b->id);
	if (r)
		sched_bounced(b->d, r, b->pending_left);
	uv_close((uv_handle_t *)&b->retry, on_retry_closed);
}

static void build_done(uv_work_t *req, int status);

static void on_retry(uv_timer_t *t)
{
	struct bounce *b = t->data;
	if (b->d->stopping)
		return;	/* the .B name finishes it at the next start */
	uv_queue_work(b->d->loop, &b->req, build_work, build_done);
}

static void try_later(struct bounce *b, const char *what)
{
	log_warn("%s: the report about its failed recipients is not queued yet (%s): trying again in %d s",
		 b->orig, what, RETRY_MS / 1000);
	uv_timer_start(&b->retry, on_retry, RETRY_MS, 0);
}

static void mark_done(uv_work_t *req, int status)
{
	struct bounce *b = req->data;
	(void)status;
	if (b->rc < 0)
		try_later(b, "the marks");
	else
		finish(b);
}

static void commit_done(struct intake *in, void *arg)
{
	struct bounce *b = arg;
	int rc = in->rc;
	bool exists = rc < 0 && in->err.sys == EEXIST;
	char why[sizeof in->err.msg];
	snprintf(why, sizeof why, "%s", in->err.msg);
	if (rc == 0)
		log_info("%s: report of %s queued as %s to <%s>", b->orig,
			 b->warn ? "delayed delivery" : "failed delivery", b->report_id, b->env.rcpt[0].addr);
	intake_free(in);
	if (exists) {	/* queued before a crash: only the marks are left */
		log_info("%s: report %s was queued before a restart", b->orig, b->report_id);
		uv_queue_work(b->d->loop, &b->req, mark_work, mark_done);
	} else if (rc < 0) {
		try_later(b, why);
	} else if (b->rc < 0) {
		try_later(b, "the marks");
	} else {
		finish(b);
	}
}

static void build_done(uv_work_t *req, int status)
{
	struct bounce *b = req->data;
	struct daemon *d = b->d;
	const struct config *c = d->conf;
	struct err e;
	(void)status;
	if (b->rc < 0) {
		log_err("%s: cannot read it for its report: %s", b->orig, b->why);
		try_later(b, b->why);
		return;
	}
	if (b->nothing || b->exists) {	/* a crash came after the report, or after the marks */
		if (b->exists)
			log_info("%s: report %s was queued before a restart", b->orig, b->report_id);
		uv_queue_work(d->loop, &b->req, mark_work, mark_done);
		return;
	}
	envelope_free(&b->env);
	envelope_init(&b->env);
	b->env.sender = xstrdup("");
	envelope_add_rcpt(&b->env, report_to(b, c));
	if (!b->warn && *b->orig_env.sender && *c->address.postmaster
	    && strcasecmp(c->address.postmaster, b->orig_env.sender) != 0)
		envelope_add_rcpt(&b->env, c->address.postmaster);	/* a copy of each report */
	struct origin o = { .way = WAY_BOUNCE, .uid = -1, .login = "", .helo = "", .peer = "",
			    .id = b->report_id };
	if (intake_begin(d, &b->in, &b->env, &o, &e) < 0) {
		try_later(b, e.msg);
		return;
	}
	intake_write(&b->in, b->msg.data, b->msg.len);
	b->in.after_commit = after_commit;
	intake_commit(&b->in, commit_done, b);
}

void bounce_start(struct daemon *d, qref r, bool warn)
{
	struct bounce *b = xcalloc(1, sizeof *b);
	b->d = d;
	b->warn = warn;
	b->id = qindex_get(&d->queue, r)->id;
	qid_format(b->id, b->orig);
	sched_file_name(d, r, b->name);
	qname_set_mark(b->name, warn ? 0 : 'B');
	/* the same after a crash; tries 0 (never a failure's) is the delay report's */
	qid_bounce(b->orig, warn ? 0 : qindex_get(&d->queue, r)->tries, b->report_id);
	buf_init(&b->msg);
	envelope_init(&b->orig_env);
	envelope_init(&b->env);
	uv_timer_init(d->loop, &b->retry);
	uv_unref((uv_handle_t *)&b->retry);	/* a stop does not wait: the .B name finishes it */
	b->retry.data = b;
	b->req.data = b;
	uv_queue_work(d->loop, &b->req, build_work, build_done);
}
