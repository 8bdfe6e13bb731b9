/*
 * control.c - the control socket's listener side (control.h has the
 * protocol and the limits): accepting within the limits, the request
 * line and its timers, and handing the request to its verb
 * (control_list.c: queue, show; control_act.c: the actions, status,
 * metrics).  A connection's output, work and close are control_conn.c's.
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

#define TICK_MS 1000

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

