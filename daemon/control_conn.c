/*
 * control_conn.c - a control connection's own machinery (control_int.h
 * has the threads): its output (escaped lines handed to libuv, never
 * waited for), its work on the thread pool (at most CONTROL_THREADS
 * items of all connections at once), who the peer is (root, outboxd's
 * user or its group, remembered ADMIN_CACHE_S), and its close.  The
 * verbs (control_list.c, control_act.c) and the listener side
 * (control.c) use these; this file calls none of them.
 *
 * PERMISSIONS come from SO_PEERCRED, which the peer cannot forge: root,
 * outboxd's own user and the members of its group (by the user
 * database, getgrouplist: not the peer's group ID, which the set-group-ID
 * outbox command would make the daemon's for everyone) see and act on
 * every message; any other user sees and acts on the messages its uid
 * submitted only (the index keeps each message's uid), and another
 * user's message is "not in the queue" to it (it learns nothing of it).
 * The group check uses the name service, so it runs on the pool.
 *
 * INVARIANTS: nothing here blocks the loop (no poll, no disk, no NSS);
 * a connection holds at most its request line (CONTROL_LINE_MAX), one
 * batch's output (about CHUNK_MAX) and what libuv has not yet written
 * (about CONTROL_OUT_HIGH); a connection is freed only once both its
 * handles are closed and no work item of it runs; a closed connection
 * starts no work.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/escape.h"
#include "../common/log.h"
#include "control_int.h"
#include "outboxd.h"

#define GROUPS_MAX 256

/* ---- output ---- */

void ctl_put(struct buf *b, int stream, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof tmp)
		n = (int)sizeof tmp - 1;
	buf_addc(b, (char)('0' + stream));
	buf_addc(b, ' ');
	esc_buf(b, tmp, (size_t)n, false);
	buf_addc(b, '\n');
}

struct wreq {
	uv_write_t w;
	struct ctl *c;
	char *data;
	size_t len;
};

static void on_written(uv_write_t *w, int status)
{
	struct wreq *r = (struct wreq *)w;
	struct ctl *c = r->c;
	c->queued -= r->len;
	free(r->data);
	free(r);
	if (c->closing)
		return;
	if (status < 0) {	/* the client went */
		ctl_close(c);
		return;
	}
	c->last_progress = now_mono();
	if (c->ended && c->queued == 0) {
		ctl_close(c);
		return;
	}
	if (c->resume && !ctl_full(c)) {
		void (*resume)(struct ctl *) = c->resume;
		c->resume = NULL;
		resume(c);
	}
}

bool ctl_full(const struct ctl *c)
{
	return c->queued >= CONTROL_OUT_HIGH / 4;	/* resume once most is read */
}

void ctl_send(struct ctl *c, struct buf *b)
{
	if (!b->len || c->closing) {
		buf_reset(b);
		return;
	}
	struct wreq *r = xcalloc(1, sizeof *r);
	r->c = c;
	r->len = b->len;
	r->data = b->data;
	buf_init(b);
	uv_buf_t ub = uv_buf_init(r->data, (unsigned)r->len);
	if (c->queued == 0)
		c->last_progress = now_mono();
	c->queued += r->len;
	if (uv_write(&r->w, (uv_stream_t *)&c->pipe, &ub, 1, on_written) < 0) {
		c->queued -= r->len;
		free(r->data);
		free(r);
		ctl_close(c);
	}
}

void ctl_end(struct ctl *c)
{
	if (c->closing || c->ended)
		return;
	ctl_put(&c->out, 0, "exit %d", c->exit_code);
	c->ended = true;
	ctl_send(c, &c->out);
	if (c->queued == 0)
		ctl_close(c);
}

/* ---- work on the pool ---- */

static void work_run(uv_work_t *req)
{
	struct ctl *c = req->data;
	c->work(c);
}

static void work_submit(struct ctl *c);

static void free_ctl(struct ctl *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->chunk);
	free(c->items);
	free(c->ids);
	free(c);
}

static void work_after(uv_work_t *req, int status)
{
	struct ctl *c = req->data;
	struct control *srv = c->srv;
	(void)status;
	c->work_busy = false;
	srv->busy--;
	struct ctl *next = srv->wait_head;
	if (next && srv->busy < CONTROL_THREADS) {
		srv->wait_head = next->wnext;
		if (!srv->wait_head)
			srv->wait_tail = NULL;
		next->work_waiting = false;
		work_submit(next);
	}
	if (c->closing) {
		if (!c->open_handles)
			free_ctl(c);
		return;
	}
	c->done(c);
}

static void work_submit(struct ctl *c)
{
	c->srv->busy++;
	c->work_busy = true;
	c->req.data = c;
	uv_queue_work(c->d->loop, &c->req, work_run, work_after);
}

void ctl_work(struct ctl *c, void (*work)(struct ctl *), void (*done)(struct ctl *))
{
	struct control *srv = c->srv;
	if (c->closing)
		return;	/* (freed once its handles are closed) */
	c->work = work;
	c->done = done;
	if (srv->busy < CONTROL_THREADS) {
		work_submit(c);
		return;
	}
	c->wnext = NULL;
	c->work_waiting = true;
	if (srv->wait_tail)
		srv->wait_tail->wnext = c;
	else
		srv->wait_head = c;
	srv->wait_tail = c;
}

/* ---- who may see what ---- */

/* Pool thread only (the user database): called from admin_work,
 * check_work and show_work, never on the loop; the loop answers from
 * known_admin's cache or not at all. */
static bool in_daemon_group(long uid)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];
	if (getpwuid_r((uid_t)uid, &pw, tmp, sizeof tmp, &res) != 0 || !res)
		return false;
	gid_t g[GROUPS_MAX];
	int n = GROUPS_MAX;
	if (pw.pw_gid == getegid())
		return true;
	if (getgrouplist(pw.pw_name, pw.pw_gid, g, &n) < 0)
		n = GROUPS_MAX;	/* more than that: the first ones are enough to look at */
	for (int i = 0; i < n; i++)
		if (g[i] == getegid())
			return true;
	return false;
}

bool ctl_check_admin(long uid)
{
	return uid == 0 || uid == (long)geteuid() || in_daemon_group(uid);
}

uint32_t ctl_peer_quid(const struct ctl *c)
{
	return c->uid < 0 || c->uid >= (long)QUID_NONE ? QUID_UNKNOWN : (uint32_t)c->uid;
}

static void remember_admin(struct ctl *c)
{
	struct control *srv = c->srv;
	size_t k = 0;
	for (size_t i = 0; i < ADMIN_CACHE; i++) {
		if (srv->admins[i].uid == c->uid && srv->admins[i].at > 0) {
			k = i;
			break;
		}
		if (srv->admins[i].at < srv->admins[k].at)
			k = i;	/* else the oldest gives way */
	}
	srv->admins[k].uid = c->uid;
	srv->admins[k].admin = c->admin;
	srv->admins[k].at = now_mono();
}

static bool known_admin(struct ctl *c)
{
	if (c->uid == 0 || c->uid == (long)geteuid()) {
		c->admin = true;
		return true;
	}
	for (size_t i = 0; i < ADMIN_CACHE; i++) {
		if (c->srv->admins[i].uid == c->uid && c->srv->admins[i].at > 0
		    && now_mono() - c->srv->admins[i].at < ADMIN_CACHE_S) {
			c->admin = c->srv->admins[i].admin;
			return true;
		}
	}
	return false;
}

static void admin_work(struct ctl *c)
{
	c->admin = ctl_check_admin(c->uid);
}

static void admin_done(struct ctl *c)
{
	remember_admin(c);
	c->done = c->after_admin;
	c->after_admin(c);
}

void ctl_with_admin(struct ctl *c, void (*done)(struct ctl *))
{
	if (known_admin(c)) {
		done(c);
		return;
	}
	c->after_admin = done;
	ctl_work(c, admin_work, admin_done);
}

bool ctl_may_see(struct ctl *c, struct item *it)
{
	if (c->admin)
		return true;
	if (!it->found || ctl_peer_quid(c) == QUID_UNKNOWN)
		return false;
	if (it->uid != QUID_UNKNOWN)
		return it->uid == ctl_peer_quid(c);
	struct envelope env;	/* found at the start, its owner not read yet */
	struct err e;
	size_t off;
	uint64_t size;
	if (store_load(&c->d->store, it->name, &env, &off, NULL, &size, &e) < 0)
		return false;
	bool own = env.uid == c->uid;
	envelope_free(&env);
	return own;
}

void ctl_item_of(struct ctl *c, qref r, struct item *it)
{
	const struct qentry *e = qindex_get(&c->d->queue, r);
	it->id = e->id;
	it->found = true;
	it->state = e->state;
	it->tries = e->tries;
	it->next_try = e->next_try;
	it->uid = e->uid;
	sched_file_name(&c->d->sched, r, it->name);
	qname_set_held(it->name, e->state == QE_HELD);
}

/* ---- the connection ---- */

/* Both handles' close callbacks come here; the last one frees, unless a
 * work item still runs (work_after frees then). */
static void on_closed(uv_handle_t *h)
{
	struct ctl *c = h->data;
	if (--c->open_handles == 0 && !c->work_busy)
		free_ctl(c);
}

void ctl_close(struct ctl *c)
{
	struct control *srv = c->srv;
	if (c->closing)
		return;
	c->closing = true;
	c->resume = NULL;
	if (c->work_waiting) {	/* out of the queue for a thread */
		struct ctl **p = &srv->wait_head, *prev = NULL;
		while (*p && *p != c) {
			prev = *p;
			p = &(*p)->wnext;
		}
		if (*p)
			*p = c->wnext;
		if (srv->wait_tail == c)
			srv->wait_tail = prev;
		c->work_waiting = false;
	}
	if (c->prev)
		c->prev->next = c->next;
	else if (srv->conns == c)
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	/* the descriptor goes now (uv_close closes it at once), whatever
	 * else this turn of the loop reads or accepts */
	uv_read_stop((uv_stream_t *)&c->pipe);
	uv_close((uv_handle_t *)&c->timer, on_closed);
	uv_close((uv_handle_t *)&c->pipe, on_closed);
}

