/*
 * pickup.c - the pickup directory SPOOL/pickup/ (SPEC "Ways in" 3).
 *
 * A program writes a whole message into pickup/tmp/ and renames it into
 * pickup/new/.  outboxd notices (a libuv fs event, and a rescan every
 * PICKUP_RESCAN_MS for what an event missed; at start for what was
 * dropped while it was down), reads the file on the thread pool
 * (pickup_read.c: the envelope from its leading X-Sender:/X-Receiver:
 * lines or else from its headers as sendmail -t does), and hands the message to the intake
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
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "pickup_int.h"

#define PICKUP_RESCAN_MS 2000
#define PICKUP_JOBS 8
#define PICKUP_PENDING_MAX 10000

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
	uv_queue_work(p->d->loop, &j->req, pickup_read_work, read_done);
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
