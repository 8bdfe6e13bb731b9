/*
 * pickup.c - the pickup directory SPOOL/pickup/ (SPEC "Ways in" 3).
 *
 * A program writes a whole message into pickup/tmp/ and renames it into
 * pickup/new/.  outboxd notices (a libuv fs event, and a rescan every
 * PICKUP_RESCAN_MS for what an event missed; at start for what was
 * dropped while it was down), reads the file on the thread pool, takes
 * the envelope from its leading X-Sender:/X-Receiver: lines or else from
 * its headers as sendmail -t does, and hands the message to the intake
 * (intake.h) like any other way in; the file's owner is the submitting
 * user.  A file that cannot be a message (a link, not a regular file, a
 * hard link, over max_message_size, NUL octets, no recipients, a bad
 * address) goes to pickup/bad/ with the reason logged, never deleted.
 *
 * EXACTLY ONCE: a file is first renamed to pickup/taking/ID, ID a new
 * queue ID, committed under that ID and removed right after the commit
 * on its thread, before the message can be scheduled; a commit that
 * failed gives the file back to new/.  pickup_take.c has the protocol
 * and what a kill at each step leaves; pickup_recover(), run at start
 * before the indexer, settles it.
 *
 * ROOM: a file is taken only when the spool has [queue] min_free and
 * the file's size free (the intake checks again at the commit, for
 * every way in); below, it stays in new/ and a later scan takes it once
 * there is room (SPEC "full disk"); the intake logs the state once.
 *
 * At most PICKUP_JOBS files are read at once and PICKUP_PENDING_MAX
 * names kept from a scan; the rest wait for the next one.  Loop thread
 * but for the *_work functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/address.h"
#include "../common/dsnparam.h"
#include "../common/rewrite.h"
#include "../common/headers.h"
#include "../common/log.h"
#include "../common/smtp.h"
#include "intake.h"
#include "outboxd.h"
#include "pickup.h"
#include "pickup_take.h"

#define PICKUP_RESCAN_MS 2000
#define PICKUP_JOBS 8
#define PICKUP_PENDING_MAX 10000
#define PICKUP_NAME_MAX 255

struct pickup {
	struct daemon *d;
	struct pickup_dirs dirs;
	uv_fs_event_t watch;
	uv_timer_t timer;
	bool watching;
	bool scanning, rescan, stopping;
	uv_work_t scan_req;
	char **names;		/* the last scan's, not yet started */
	size_t nnames, next;
	char **scanned;		/* filled on the thread pool */
	size_t nscanned;
	struct pjob *active;	/* jobs in flight */
	size_t nactive;
	char **stuck;		/* bad files that could not be moved (logged once) */
	size_t nstuck;
};

enum verdict { P_TAKE, P_GONE, P_BAD, P_NO_ROOM };

struct pjob {
	struct pickup *p;
	struct pjob *next;
	char name[PICKUP_NAME_MAX + 1];
	struct config *conf;	/* as when the job began */
	uv_work_t req;
	enum verdict verdict;
	char why[600];		/* P_BAD */
	bool stuck;		/* P_BAD, and it could not be moved to bad/ */
	bool taken;		/* it is taking/ID now, not new/NAME */
	uint64_t avail;		/* free octets on the spool, when it was looked at */
	char id[QID_LEN + 1];
	long uid;
	char login[64];
	struct envelope env;
	struct buf msg;		/* the message to queue, CRLF */
	struct intake in;
};

/* ---- reading one file (thread pool) ---- */

static bool bad(struct pjob *j, const char *why)
{
	snprintf(j->why, sizeof j->why, "%s", why);
	j->verdict = P_BAD;
	return false;
}

/* Steps 1 and 2 of TAKING (pickup_take.c); the file is then read from
 * taking/ID. */
static bool take_it(struct pjob *j)
{
	char why[200];
	switch (take_file(&j->p->d->store, &j->p->dirs, j->name, j->conf->queue.min_free, j->id,
			  &j->avail, why, sizeof why)) {
	case TAKEN:
		j->taken = true;
		return true;
	case TAKE_GONE:
		j->verdict = P_GONE;
		return false;
	case TAKE_NO_ROOM:
		j->verdict = P_NO_ROOM;
		return false;
	default:
		return bad(j, why);
	}
}

/* taking/ID, which nobody but outboxd can change or swap. */
static bool open_file(struct pjob *j, int *fd, struct stat *st)
{
	char *path = xasprintf("%s/%s", j->p->dirs.taking_dir, j->id);
	*fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	free(path);
	if (*fd < 0)
		return bad(j, errno == ELOOP ? "a symbolic link" : strerror(errno));
	if (fstat(*fd, st) < 0)
		return bad(j, strerror(errno));
	if (!S_ISREG(st->st_mode))
		return bad(j, "not a regular file");
	if (st->st_nlink != 1)	/* a hard link could show another's file */
		return bad(j, "a hard link");
	if ((uint64_t)st->st_size > j->conf->queue.max_message_size)
		return bad(j, "larger than [queue] max_message_size");
	return true;
}

static bool read_all(struct pjob *j, int fd, size_t size, struct buf *raw)
{
	buf_reserve(raw, size + 1);
	while (raw->len < size) {
		ssize_t n = read(fd, raw->data + raw->len, size - raw->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return bad(j, n < 0 ? strerror(errno) : "shorter than its size");
		raw->len += (size_t)n;
	}
	if (memchr(raw->data, '\0', raw->len))
		return bad(j, "binary: it holds NUL octets");
	return true;
}

static void add_rcpt(const char *a, void *arg)
{
	struct envelope *env = arg;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (strcasecmp(env->rcpt[i].addr, a) == 0)
			return;	/* the same recipient twice gets one copy */
	envelope_add_rcpt(env, a);
}

/* A recipient as written: through [aliases], qualified (as on the
 * socket, smtp_session.c). */
static void add_written(const char *a, void *arg)
{
	struct pjob *j = arg;
	struct err e;
	if (rcpt_expand(j->conf, a, add_rcpt, &j->env, &e) < 0)
		bad(j, e.msg);
}

/* Leading "X-Sender: <a> RET=HDRS ENVID=x" and "X-Receiver: <b> NOTIFY=..
 * ORCPT=.." lines (Exchange's pickup convention, dsnparam.h) give the
 * envelope; returns the offset of the message after them. */
static size_t envelope_lines(struct pjob *j, const char *p, size_t len, char **sender, bool *bad_line)
{
	size_t off = 0;
	*bad_line = false;
	for (;;) {
		const char *nl = memchr(p + off, '\n', len - off);
		size_t l = nl ? (size_t)(nl - p - off) : len - off;
		const char *line = p + off, *why;
		bool is_sender = l > 9 && strncasecmp(line, "X-Sender:", 9) == 0;
		bool is_rcpt = l > 11 && strncasecmp(line, "X-Receiver:", 11) == 0;
		if (!nl || (!is_sender && !is_rcpt))
			return off;
		char *v = xstrndup(line + (is_sender ? 9 : 11), l - (is_sender ? 9 : 11));
		char *a = trim(v), *params = "";
		char *gt = a[0] == '<' ? (char *)addr_path_end(a + 1, strlen(a + 1)) : NULL;	/* "a>b"@x */
		if (gt) {
			*gt = '\0';
			params = gt + 1;
			a++;
		}
		struct err e;
		size_t from = j->env.nrcpt;
		bool first_sender = is_sender && !*sender;
		if ((*a || is_rcpt) && addr_check(a, &e) < 0)
			*bad_line = true;
		else if (first_sender)
			*sender = xstrdup(a);
		else if (is_rcpt)
			add_written(a, j);
		if (!*bad_line && (first_sender || is_rcpt) && j->verdict != P_BAD
		    && dsn_line_params(params, &j->env, is_rcpt, from, &why) < 0)
			bad(j, why);	/* "Bad NOTIFY parameter syntax" ... */
		free(v);
		off += l + 1;
	}
}

static void owner_login(struct pjob *j)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];
	if (getpwuid_r((uid_t)j->uid, &pw, tmp, sizeof tmp, &res) == 0 && res
	    && addr_is_local_name(res->pw_name))
		snprintf(j->login, sizeof j->login, "%s", res->pw_name);
	else
		snprintf(j->login, sizeof j->login, "uid%ld", j->uid);
}

/* The message as it will be queued: headers without Bcc, the fields
 * outbox adds when missing, then the body. */
static bool compose(struct pjob *j, const char *text, size_t len, bool rcpts_from_headers)
{
	struct buf crlf;
	struct header_list h;
	struct err e;
	char dom[256];
	bool ended, ok = true;
	buf_init(&crlf);
	normalize_crlf(text, len, &crlf, false, &ended);
	headers_parse(crlf.data ? crlf.data : "", crlf.len, &h);
	if (headers_envelope(&h, rcpts_from_headers ? add_written : NULL, j, &j->msg, &e) < 0)
		ok = bad(j, e.msg);
	if (ok) {
		if (!headers_find(&h, "From"))
			header_add_from(&j->msg, NULL, *j->env.sender ? j->env.sender : "MAILER-DAEMON");
		if (!headers_find(&h, "Date"))
			header_add_date(&j->msg, now_real());
		if (!headers_find(&h, "Message-ID"))
			header_add_message_id(&j->msg, addr_domain(j->conf, dom, sizeof dom));
		buf_add(&j->msg, "\r\n", 2);
		buf_add(&j->msg, crlf.data + h.body_off, crlf.len - h.body_off);
	}
	headers_free(&h);
	buf_free(&crlf);
	return ok;
}

static void read_work(uv_work_t *req)
{
	struct pjob *j = req->data;
	struct stat st;
	struct buf raw;
	int fd = -1;
	char *sender = NULL;
	bool bad_line;
	buf_init(&raw);
	j->verdict = P_TAKE;
	if (!take_it(j) || !open_file(j, &fd, &st) || !read_all(j, fd, (size_t)st.st_size, &raw))
		goto out;
	j->uid = (long)st.st_uid;
	owner_login(j);
	size_t off = envelope_lines(j, raw.data ? raw.data : "", raw.len, &sender, &bad_line);
	if (bad_line || j->verdict == P_BAD) {
		if (bad_line)
			bad(j, "a bad address in an X-Sender: or X-Receiver: line");
		goto out;
	}
	bool from_headers = j->env.nrcpt == 0;
	j->env.sender = sender_rewrite(j->conf, sender, j->login);
	if (!compose(j, raw.data + off, raw.len - off, from_headers) || j->verdict == P_BAD)
		goto out;
	for (size_t i = 0; i < j->env.nrcpt && j->verdict != P_BAD; i++)
		if (addr_check(j->env.rcpt[i].addr, NULL) < 0)	/* too long once qualified */
			bad(j, "a recipient address too long once qualified");
	if (j->verdict == P_BAD)
		goto out;
	if (j->env.nrcpt == 0)
		bad(j, "no recipients (no X-Receiver: line, none in To, Cc or Bcc)");
	else if (j->env.nrcpt > j->conf->queue.max_recipients)
		bad(j, "more recipients than [queue] max_recipients");
out:
	free(sender);
	if (fd >= 0)
		close(fd);
	buf_free(&raw);
}

/* ---- what follows a read (thread pool) ---- */

static void to_bad_work(uv_work_t *req)
{
	struct pjob *j = req->data;
	j->stuck = move_to_bad(&j->p->dirs, j->name, j->taken ? j->id : NULL, j->why) < 0 && !j->taken;
}

/* Its commit failed (or never began): the file goes back to new/. */
static void give_back_work(uv_work_t *req)
{
	struct pjob *j = req->data;
	taking_give_back(&j->p->dirs, j->id, j->name);
}

/* ---- the loop side ---- */

static void fill(struct pickup *p);

static void job_free(struct pjob *j)
{
	struct pickup *p = j->p;
	for (struct pjob **pp = &p->active; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	p->nactive--;
	envelope_free(&j->env);
	buf_free(&j->msg);
	config_unref(j->conf);
	free(j);
	if (p->stopping)
		p->d->part_stopped(p->d);
	else
		fill(p);
}

static bool listed(char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

static void after_done(uv_work_t *req, int status)
{
	struct pjob *j = req->data;
	struct pickup *p = j->p;
	(void)status;
	if (j->stuck && p->nstuck < PICKUP_JOBS * 128) {
		p->stuck = xrealloc(p->stuck, (p->nstuck + 1) * sizeof *p->stuck);
		p->stuck[p->nstuck++] = xstrdup(j->name);
	}
	job_free(j);
}

/* On the commit's thread, right after it succeeded: the file goes
 * before the message can be scheduled (step 5 of TAKING). */
static void after_commit(struct intake *in, void *arg)
{
	struct pjob *j = arg;
	(void)in;
	taking_remove(&j->p->dirs, j->id);
}

/* The file could not be queued: back to new/, where a later scan takes
 * it again.  Want of room is the intake's to say, once. */
static void not_queued(struct pjob *j, const struct err *e)
{
	char safe[PICKUP_NAME_MAX * 4 + 1];
	if (store_error_is_storage(e->sys))
		intake_room_failed(&j->p->d->intake, e);
	else
		log_err("pickup/new/%s: cannot queue it: %s", log_safe(j->name, safe, sizeof safe),
			e->msg);
	uv_queue_work(j->p->d->loop, &j->req, give_back_work, after_done);
}

static void commit_done(struct intake *in, void *arg)
{
	struct pjob *j = arg;
	int rc = in->rc;
	if (rc < 0)
		not_queued(j, &in->err);
	intake_free(in);
	if (rc == 0)
		job_free(j);
}

static void take(struct pjob *j)
{
	struct err e;
	struct origin o = { .way = WAY_PICKUP, .uid = j->uid, .login = j->login, .helo = "",
			    .peer = "", .id = j->id };
	if (intake_begin(&j->p->d->intake, &j->in, &j->env, &o, &e) < 0) {
		not_queued(j, &e);
		return;
	}
	intake_write(&j->in, j->msg.data, j->msg.len);
	j->in.after_commit = after_commit;
	intake_commit(&j->in, commit_done, j);
}

static void read_done(uv_work_t *req, int status)
{
	struct pjob *j = req->data;
	(void)status;
	if (j->verdict == P_NO_ROOM || (j->verdict == P_TAKE && !j->p->stopping))
		intake_room_seen(&j->p->d->intake, j->verdict != P_NO_ROOM, j->avail);
	if (j->p->stopping && j->taken) {
		uv_queue_work(j->p->d->loop, &j->req, give_back_work, after_done);
	} else if (j->p->stopping || j->verdict == P_GONE || j->verdict == P_NO_ROOM) {
		job_free(j);	/* a file without room stays in new/ for a later scan */
	} else if (j->verdict == P_BAD) {
		uv_queue_work(j->p->d->loop, &j->req, to_bad_work, after_done);
	} else {
		take(j);
	}
}

static bool active(const struct pickup *p, const char *name)
{
	for (const struct pjob *j = p->active; j; j = j->next)
		if (strcmp(j->name, name) == 0)
			return true;
	return false;
}

static void start_job(struct pickup *p, const char *name)
{
	struct pjob *j = xcalloc(1, sizeof *j);
	j->p = p;
	snprintf(j->name, sizeof j->name, "%s", name);
	j->conf = config_ref(p->d->conf);
	envelope_init(&j->env);
	buf_init(&j->msg);
	j->next = p->active;
	p->active = j;
	p->nactive++;
	j->req.data = j;
	uv_queue_work(p->d->loop, &j->req, read_work, read_done);
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void fill(struct pickup *p)
{
	while (!p->stopping && p->nactive < PICKUP_JOBS && p->next < p->nnames) {
		const char *name = p->names[p->next++];
		if (!active(p, name) && !listed(p->stuck, p->nstuck, name))
			start_job(p, name);
	}
}

static void scan_work(uv_work_t *req)
{
	struct pickup *p = req->data;
	DIR *d = opendir(p->dirs.new_dir);
	struct dirent *de;
	size_t cap = 0;
	p->scanned = NULL;
	p->nscanned = 0;
	while (d && p->nscanned < PICKUP_PENDING_MAX && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > PICKUP_NAME_MAX)
			continue;
		if (p->nscanned == cap) {
			cap = cap ? cap * 2 : 64;
			p->scanned = xrealloc(p->scanned, cap * sizeof *p->scanned);
		}
		p->scanned[p->nscanned++] = xstrdup(de->d_name);
	}
	if (d)
		closedir(d);
	else
		log_err("opendir %s: %s", p->dirs.new_dir, strerror(errno));
}

static void scan(struct pickup *p);

static void scan_done(uv_work_t *req, int status)
{
	struct pickup *p = req->data;
	(void)status;
	p->scanning = false;
	size_t keep = 0;	/* a stuck name that is gone is forgotten */
	for (size_t i = 0; i < p->nstuck; i++) {
		if (listed(p->scanned, p->nscanned, p->stuck[i]))
			p->stuck[keep++] = p->stuck[i];
		else
			free(p->stuck[i]);
	}
	p->nstuck = keep;
	free_names(p->names, p->nnames);
	p->names = p->scanned;
	p->nnames = p->nscanned;
	p->next = 0;
	p->scanned = NULL;
	if (p->stopping) {
		p->d->part_stopped(p->d);
		return;
	}
	fill(p);
	if (p->rescan) {
		p->rescan = false;
		scan(p);
	}
}

static void scan(struct pickup *p)
{
	if (p->stopping)
		return;
	if (p->scanning || p->next < p->nnames) {
		p->rescan = p->scanning;	/* names still waiting: the next scan comes after them */
		return;
	}
	p->scanning = true;
	p->scan_req.data = p;
	uv_queue_work(p->d->loop, &p->scan_req, scan_work, scan_done);
}

static void on_event(uv_fs_event_t *h, const char *name, int events, int status)
{
	(void)name;
	(void)events;
	(void)status;
	scan(h->data);
}

static void on_timer(uv_timer_t *t)
{
	scan(t->data);
}

void pickup_recover(struct daemon *d)
{
	struct pickup_dirs pd;
	pickup_dirs_init(&pd, d->store.spool);
	taking_recover(&d->store, &pd);
	pickup_dirs_free(&pd);
}

int pickup_start(struct daemon *d, struct err *e)
{
	struct pickup *p = xcalloc(1, sizeof *p);
	p->d = d;
	pickup_dirs_init(&p->dirs, d->store.spool);
	d->pickup = p;
	uv_timer_init(d->loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, on_timer, PICKUP_RESCAN_MS, PICKUP_RESCAN_MS);
	uv_fs_event_init(d->loop, &p->watch);
	p->watch.data = p;
	int rc = uv_fs_event_start(&p->watch, on_event, p->dirs.new_dir, 0);
	p->watching = rc == 0;
	if (rc < 0)	/* the rescan still finds every file */
		log_warn("cannot watch %s (%s): looking every %d ms", p->dirs.new_dir, uv_strerror(rc),
			 PICKUP_RESCAN_MS);
	(void)e;
	scan(p);
	return 0;
}

void pickup_stop(struct daemon *d)
{
	struct pickup *p = d->pickup;
	if (!p || p->stopping)
		return;
	p->stopping = true;
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, NULL);
	if (p->watching)
		uv_fs_event_stop(&p->watch);
	uv_close((uv_handle_t *)&p->watch, NULL);
}

bool pickup_idle(const struct daemon *d)
{
	const struct pickup *p = d->pickup;
	return !p || (!p->scanning && p->nactive == 0);
}

void pickup_free(struct daemon *d)
{
	struct pickup *p = d->pickup;
	if (!p || !pickup_idle(d))
		return;
	free_names(p->names, p->nnames);
	free_names(p->stuck, p->nstuck);
	pickup_dirs_free(&p->dirs);
	free(p);
	d->pickup = NULL;
}
