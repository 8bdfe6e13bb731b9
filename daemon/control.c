/*
 * control.c - the control socket's connections (control.h has the
 * protocol and the limits, control_int.h the threads): accepting within
 * the limits, reading the request line, the timers, the output and the
 * thread-pool work of every request.  The verbs themselves are in
 * control_list.c and control_act.c.
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
 * (about CONTROL_OUT_HIGH); a connection is freed only once its handles
 * are closed and no work item of it runs.
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
#define TICK_MS 1000
#define ADMIN_CACHE 64		/* users whose admin check is remembered */
#define ADMIN_CACHE_S 10.0	/* for so long */

struct control {
	struct daemon *d;
	struct ctl *conns;
	size_t nconns;
	struct ctl *wait_head, *wait_tail;	/* work waiting for a thread */
	unsigned busy;				/* work items running */
	bool stopped;
	struct { long uid; bool admin; double at; } admins[ADMIN_CACHE];
};

struct control *control_new(struct daemon *d)
{
	struct control *srv = xcalloc(1, sizeof *srv);
	srv->d = d;
	return srv;
}

void control_free(struct control *srv)
{
	free(srv);
}

bool control_busy(const struct control *srv)
{
	return srv && srv->busy;
}

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

static void ctl_close(struct ctl *c);

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
	sched_file_name(c->d, r, it->name);
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

static void ctl_close(struct ctl *c)
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

static void on_tick(uv_timer_t *t)
{
	struct ctl *c = t->data;
	double now = now_mono();
	const char *why = NULL;
	if (!c->have_request && now >= c->deadline)
		why = "no request line in time";
	else if (c->have_request && now >= c->deadline)
		why = "the request took too long";
	else if (c->queued && now - c->last_progress >= CONTROL_STALL_MS / 1000.0)
		why = "the client reads no more";
	if (!why)
		return;
	if (c->have_request)	/* (an idle connection is not worth a line) */
		log_notice("control: uid %ld: closed: %s", c->uid, why);
	ctl_close(c);
}

static const struct { const char *name; enum verb v; int min, max; } verbs[] = {
	{ "QUEUE", V_QUEUE, 0, 0 }, { "SHOW", V_SHOW, 1, 1 }, { "FLUSH", V_FLUSH, 0, 512 },
	{ "DELETE", V_DELETE, 1, 512 }, { "HOLD", V_HOLD, 1, 512 }, { "RELEASE", V_RELEASE, 1, 512 },
	{ "STATUS", V_STATUS, 0, 0 }, { "METRICS", V_METRICS, 0, 0 },
};

/* The request line is whole: split it and start. */
static void start_request(struct ctl *c)
{
	if (c->closing)
		return;
	char *args[513], *save = NULL;
	int nargs = 0, k = -1;
	char *verb = strtok_r(c->in.data, " ", &save);
	for (char *a; nargs < 513 && (a = strtok_r(NULL, " ", &save));) {
		if (strcmp(a, "--json") == 0)
			c->json = true;
		else
			args[nargs++] = a;
	}
	for (size_t i = 0; verb && i < sizeof verbs / sizeof verbs[0]; i++)
		if (strcmp(verb, verbs[i].name) == 0)
			k = (int)i;
	if (k < 0 || nargs < verbs[k].min || nargs > verbs[k].max) {
		ctl_put(&c->out, 2, "outbox: the daemon does not take that request");
		c->exit_code = 64;
		ctl_end(c);
		return;
	}
	c->verb = verbs[k].v;
	c->have_request = true;
	c->deadline = now_mono() + CONTROL_DEADLINE_MS / 1000.0;
	switch (c->verb) {
	case V_QUEUE: ctl_start_queue(c); break;
	case V_SHOW:
		snprintf(c->arg0, sizeof c->arg0, "%.40s", args[0]);
		ctl_start_show(c);
		break;
	case V_STATUS: ctl_start_status(c); break;
	case V_METRICS: ctl_do_metrics(c); break;
	default: ctl_start_action(c, args, nargs); break;
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct ctl *c = h->data;
	(void)hint;
	buf_reserve(&c->in, 1024);
	b->base = c->in.data + c->in.len;
	b->len = c->in.cap - c->in.len - 1;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct ctl *c = st->data;
	(void)b;
	if (c->closing)
		return;
	if (n < 0) {
		ctl_close(c);
		return;
	}
	c->in.len += (size_t)n;
	c->in.data[c->in.len] = '\0';
	char *nl = memchr(c->in.data, '\n', c->in.len);
	if (!nl && c->in.len < CONTROL_LINE_MAX)
		return;
	uv_read_stop(st);	/* one request a connection: nothing more is read */
	if (!nl) {
		ctl_put(&c->out, 2, "outbox: request line too long");
		c->exit_code = 64;
		ctl_end(c);
		return;
	}
	*nl = '\0';
	if (nl > c->in.data && nl[-1] == '\r')
		nl[-1] = '\0';
	start_request(c);
}

static size_t conns_of(const struct control *srv, long uid)
{
	size_t n = 0;
	for (const struct ctl *c = srv->conns; c; c = c->next)
		n += c->uid == uid;
	return n;
}

/* Over a limit (c is counted already): say so and close (a few octets
 * into an empty socket buffer: uv_try_write does not wait). */
static bool over_limit(struct control *srv, struct ctl *c)
{
	bool privileged = c->uid == 0 || c->uid == (long)geteuid();
	const char *why = NULL;
	if (srv->stopped)
		why = "outboxd is stopping";
	else if (!privileged && conns_of(srv, c->uid) > CONTROL_PER_UID)
		why = "too many requests of this user at once";
	else if (srv->nconns > CONTROL_MAX + (privileged ? CONTROL_ADMIN_EXTRA : 0))
		why = "too many requests at once";
	if (!why)
		return false;
	struct buf b;
	buf_init(&b);
	ctl_put(&b, 2, "outbox: %s; try again in a moment", why);
	ctl_put(&b, 0, "exit 75");
	uv_buf_t ub = uv_buf_init(b.data, (unsigned)b.len);
	(void)uv_try_write((uv_stream_t *)&c->pipe, &ub, 1);
	buf_free(&b);
	return true;
}

void control_accept(struct daemon *d, uv_stream_t *server)
{
	struct control *srv = d->control;
	struct ctl *c = xcalloc(1, sizeof *c);
	struct ucred cred;
	socklen_t len = sizeof cred;
	uv_os_fd_t fd;
	c->d = d;
	c->srv = srv;
	c->uid = -1;
	buf_init(&c->in);
	buf_init(&c->out);
	buf_init(&c->chunk);
	uv_pipe_init(d->loop, &c->pipe, 0);
	c->pipe.data = c;
	uv_timer_init(d->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 2;
	c->next = srv->conns;	/* counted at once: ctl_close takes it back */
	if (c->next)
		c->next->prev = c;
	srv->conns = c;
	srv->nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 || uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0
	    || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		ctl_close(c);
		return;
	}
	c->uid = (long)cred.uid;
	if (over_limit(srv, c)) {
		ctl_close(c);
		return;
	}
	c->deadline = now_mono() + CONTROL_IDLE_MS / 1000.0;
	uv_timer_start(&c->timer, on_tick, TICK_MS / 4, TICK_MS / 4);
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

void control_stop(struct daemon *d)
{
	struct control *srv = d->control;
	srv->stopped = true;
	while (srv->conns)
		ctl_close(srv->conns);
}
