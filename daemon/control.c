/*
 * control.c - the control socket (control.h has the protocol).
 *
 * PERMISSIONS come from SO_PEERCRED, which the peer cannot forge: root,
 * outboxd's own user and the members of its group (by the user
 * database, getgrouplist: not the peer's group ID, which the set-group-ID
 * outbox command would make the daemon's for everyone) see and act on
 * every message; any other user sees and acts on the messages its uid
 * submitted only, and another user's message is "not in the queue" to it
 * (it learns nothing of it).
 *
 * THREADS: the loop reads the request, takes what it needs from the
 * index (a snapshot of IDs and states) and does the scheduler's part of
 * an action (scheduler.h sched_act); everything that touches the disk or
 * the name service (the permission check, reading queue files, the
 * renames and unlinks of hold, release and delete) runs on the thread
 * pool.  A long listing is written from the thread straight to the
 * socket, each write with its own timeout, so memory stays bounded
 * however large the queue is.
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/units.h"
#include "control.h"
#include "metrics.h"
#include "outboxd.h"
#include "pool.h"

#define CONTROL_WRITE_TIMEOUT_MS 30000
#define CONTROL_READ_TIMEOUT_MS 10000
#define GROUPS_MAX 256

enum verb { V_QUEUE, V_SHOW, V_FLUSH, V_DELETE, V_HOLD, V_RELEASE, V_STATUS, V_METRICS };

/* One message the request names (or, for QUEUE and FLUSH, every one). */
struct item {
	uint64_t id;
	char name[QNAME_MAX];	/* its file's name when the request came */
	uint8_t state;		/* enum qstate then */
	bool held;		/* the file's name ends in .H */
	bool allowed;		/* the peer may see it (thread) */
	bool found;		/* it was in the index */
	enum sched_answer answer;
	bool file_op;		/* a rename or unlink to do on the thread */
	int file_rc;
	char why[512];
};

struct ctl {
	uv_pipe_t pipe;
	struct daemon *d;
	uv_timer_t timer;
	uv_work_t req;
	long uid;
	bool admin;
	enum verb verb;
	bool json;
	bool all;		/* FLUSH of every message the peer may act on: quiet */
	struct buf in;
	struct item *items;
	size_t nitems;
	bool fail;		/* write error or timeout: stop */
	int exit_code;
	struct buf out;		/* reply lines not yet written */
	int fd;
};

/* ---- replies (any thread; the loop leaves the socket alone meanwhile) ---- */

static void put_raw(struct ctl *c, const char *p, size_t n)
{
	while (n && !c->fail) {
		ssize_t w = write(c->fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
		if ((w < 0 && errno != EAGAIN && errno != EINTR)
		    || (errno == EAGAIN && poll(&pf, 1, CONTROL_WRITE_TIMEOUT_MS) <= 0))
			c->fail = true;	/* the client went, or reads no more */
	}
}

/* One line for the client's stdout (stream 1) or stderr (2). */
static void line(struct ctl *c, int stream, const char *fmt, ...)
{
	char b[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b + 2, sizeof b - 3, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof b - 4)
		n = (int)sizeof b - 4;
	b[0] = (char)('0' + stream);
	b[1] = ' ';
	b[n + 2] = '\n';
	put_raw(c, b, (size_t)n + 3);
}

static void json_str(struct buf *b, const char *s)
{
	buf_addc(b, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			buf_printf(b, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			buf_printf(b, "\\u%04x", ch);
		else
			buf_addc(b, (char)ch);
	}
	buf_addc(b, '"');
}

/* ---- who may see what (thread) ---- */

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

static bool is_admin(long uid)
{
	return uid == 0 || uid == (long)geteuid() || in_daemon_group(uid);
}

/* The envelope of an item's file; false when it is gone or unreadable. */
static bool load(struct ctl *c, struct item *it, struct envelope *env, uint64_t *size)
{
	struct err e;
	size_t off;
	if (store_load(&c->d->store, it->name, env, &off, NULL, size, &e) < 0)
		return false;
	it->held = qname_held(it->name);
	return true;
}

/* May the peer see this message?  (Its file is read for the uid.) */
static bool may_see(struct ctl *c, struct item *it)
{
	struct envelope env;
	uint64_t size;
	if (c->admin)
		return true;
	if (!load(c, it, &env, &size))
		return false;
	bool own = env.uid == c->uid;
	envelope_free(&env);
	return own;
}

/* ---- QUEUE and SHOW (thread) ---- */

static const char *state_word(uint8_t state)
{
	switch (state) {
	case QE_READY: return "queued";
	case QE_DEFERRED: return "deferred";
	case QE_HELD: return "held";
	case QE_BOUNCING: return "bouncing";
	default: return "active";
	}
}

static const char *rcpt_word(char status, uint8_t state)
{
	if (status == RCPT_SENT)
		return "sent";
	if (status == RCPT_FAILED)
		return "failed";
	if (status == RCPT_BOUNCING)
		return "bouncing";
	return state == QE_DEFERRED ? "deferred" : "queued";
}

static void time_text(double t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(out, n, "%a %b %e %H:%M:%S", &tm);
}

static void list_json(struct ctl *c, const struct item *it, const struct envelope *env, uint64_t size,
		      uint16_t tries, uint32_t next_try)
{
	struct buf b;
	buf_init(&b);
	char id[QID_LEN + 1];
	qid_format(it->id, id);
	buf_printf(&b, "{\"id\":\"%s\",\"size\":%llu,\"arrival\":%.3f,\"uid\":%ld,\"sender\":", id,
		   (unsigned long long)size, env->arrival, env->uid);
	json_str(&b, env->sender);
	buf_printf(&b, ",\"state\":\"%s\",\"held\":%s,\"tries\":%u", state_word(it->state),
		   it->state == QE_HELD || it->held ? "true" : "false", tries);
	if (tries)
		buf_printf(&b, ",\"next_try\":%u", next_try);
	buf_adds(&b, ",\"recipients\":[");
	for (size_t i = 0; i < env->nrcpt; i++) {
		buf_adds(&b, i ? ",{\"address\":" : "{\"address\":");
		json_str(&b, env->rcpt[i].addr);
		buf_printf(&b, ",\"state\":\"%s\"", rcpt_word(env->rcpt[i].status, it->state));
		char *why = env->rcpt[i].status == RCPT_PENDING && tries ? store_reason(&c->d->store, id,
											 env->rcpt[i].addr) : NULL;
		if (why) {
			buf_adds(&b, ",\"last_reply\":");
			json_str(&b, why);
			free(why);
		}
		buf_addc(&b, '}');
	}
	buf_adds(&b, "]}");
	line(c, 1, "%s", b.data);
	buf_free(&b);
}

static void list_text(struct ctl *c, const struct item *it, const struct envelope *env, uint64_t size,
		      uint16_t tries, uint32_t next_try)
{
	char id[QID_LEN + 1], when[64], next[64];
	qid_format(it->id, id);
	time_text(env->arrival, when, sizeof when);
	char mark = it->state == QE_HELD ? '!' : it->state >= QE_ACTIVE && it->state != QE_HELD ? '*' : ' ';
	line(c, 1, "%s%c %8llu %s  %s", id, mark, (unsigned long long)size, when,
	     *env->sender ? env->sender : "MAILER-DAEMON");
	if (tries) {
		time_text(next_try, next, sizeof next);
		line(c, 1, "%18s(%s: %u %s, next try %s)", "", state_word(it->state), tries,
		     tries == 1 ? "try" : "tries", it->state == QE_HELD ? "when released" : next);
	} else if (it->state == QE_HELD) {
		line(c, 1, "%18s(held)", "");
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		char *why = env->rcpt[i].status == RCPT_PENDING && tries ? store_reason(&c->d->store, id,
										       env->rcpt[i].addr) : NULL;
		if (why)	/* as mailq: the reason in parentheses, then the address */
			line(c, 1, "%18s(%s)", "", why);
		line(c, 1, "%44s%s%s%s", "", env->rcpt[i].addr,
		     env->rcpt[i].status == RCPT_PENDING ? "" : "  ",
		     env->rcpt[i].status == RCPT_PENDING ? "" : rcpt_word(env->rcpt[i].status, it->state));
		free(why);
	}
}

static void do_queue(struct ctl *c)
{
	uint64_t total = 0;
	size_t shown = 0;
	if (!c->json)
		line(c, 1, "-Queue ID-        --Size-- ----Arrival Time---- -Sender/Recipient-------");
	for (size_t i = 0; i < c->nitems && !c->fail; i++) {
		struct item *it = &c->items[i];
		struct envelope env;
		uint64_t size;
		uint32_t next;
		unsigned tries;
		char id[QID_LEN + 1];
		if (!load(c, it, &env, &size))
			continue;	/* delivered meanwhile */
		if (c->admin || env.uid == c->uid) {
			(void)qname_parse(it->name, id, &next, &tries);
			(c->json ? list_json : list_text)(c, it, &env, size, (uint16_t)tries, next);
			total += size;
			shown++;
		}
		envelope_free(&env);
	}
	if (!c->json)
		line(c, 1, shown ? "-- %llu Kbytes in %zu Request%s." : "Mail queue is empty",
		     (unsigned long long)((total + 1023) / 1024), shown, shown == 1 ? "" : "s");
}

/* SHOW: the envelope with each recipient's state, then the header
 * section (the body is not shown). */
static void do_show(struct ctl *c)
{
	struct item *it = &c->items[0];
	struct envelope env;
	uint64_t size;
	size_t off;
	int fd = -1;
	struct err e;
	if (!it->found || !may_see(c, it)
	    || store_load(&c->d->store, it->name, &env, &off, &fd, &size, &e) < 0) {
		line(c, 2, "outbox: %s: not in the queue", c->in.data + 5);
		c->exit_code = 1;
		return;
	}
	char id[QID_LEN + 1], when[64];
	uint32_t next;
	unsigned tries;
	qid_format(it->id, id);
	(void)qname_parse(it->name, id, &next, &tries);
	time_text(env.arrival, when, sizeof when);
	line(c, 1, "id: %s", id);
	line(c, 1, "state: %s%s", state_word(it->state), qname_held(it->name) ? " (held)" : "");
	line(c, 1, "arrival: %s", when);
	line(c, 1, "uid: %ld", env.uid);
	line(c, 1, "size: %llu", (unsigned long long)size);
	line(c, 1, "sender: <%s>", env.sender);
	line(c, 1, "tries: %u", tries);
	for (size_t i = 0; i < env.nrcpt; i++) {
		char *why = env.rcpt[i].status == RCPT_PENDING && tries ? store_reason(&c->d->store, id,
										      env.rcpt[i].addr) : NULL;
		line(c, 1, "recipient: <%s> %s%s%s%s", env.rcpt[i].addr, rcpt_word(env.rcpt[i].status, it->state),
		     why ? " (" : "", why ? why : "", why ? ")" : "");
		free(why);
	}
	line(c, 1, "%s", "");
	char buf[65536];
	ssize_t n = pread(fd, buf, sizeof buf - 1, (off_t)off);
	buf[n > 0 ? n : 0] = '\0';
	char *end = strstr(buf, "\r\n\r\n");
	if (end)
		*end = '\0';
	for (char *p = buf, *nl; *p; p = nl ? nl + 2 : p + strlen(p)) {
		nl = strstr(p, "\r\n");
		line(c, 1, "%.*s", (int)(nl ? nl - p : (ptrdiff_t)strlen(p)), p);
	}
	close(fd);
	envelope_free(&env);
}

/* ---- the request's phases ---- */

static void finish(struct ctl *c);
static void after_check(uv_work_t *req, int status);
static void after_files(uv_work_t *req, int status);

static void check_work(uv_work_t *req)
{
	struct ctl *c = req->data;
	c->admin = is_admin(c->uid);
	if (c->verb == V_QUEUE) {
		do_queue(c);
		return;
	}
	if (c->verb == V_SHOW) {
		do_show(c);
		return;
	}
	for (size_t i = 0; i < c->nitems; i++)
		c->items[i].allowed = c->items[i].found && may_see(c, &c->items[i]);
}

static void files_work(uv_work_t *req)
{
	struct ctl *c = req->data;
	for (size_t i = 0; i < c->nitems; i++) {
		struct item *it = &c->items[i];
		struct err e;
		if (!it->file_op)
			continue;
		it->file_rc = c->verb == V_DELETE ? store_delete(&c->d->store, it->name, &e)
			    : store_set_held(&c->d->store, it->name, c->verb == V_HOLD, &e);
		if (it->file_rc < 0)
			snprintf(it->why, sizeof it->why, "%s", e.msg);
	}
}

static const char *verb_name(enum verb v)
{
	static const char *const n[] = { "queue", "show", "flush", "delete", "hold", "release", "status",
					 "metrics" };
	return n[v];
}

/* Loop: the scheduler's part of each allowed item. */
static void after_check(uv_work_t *req, int status)
{
	struct ctl *c = req->data;
	(void)status;
	if (c->verb == V_QUEUE || c->verb == V_SHOW) {
		finish(c);
		return;
	}
	static const enum sched_action act[] = { [V_FLUSH] = SA_FLUSH, [V_DELETE] = SA_DELETE,
						 [V_HOLD] = SA_HOLD, [V_RELEASE] = SA_RELEASE };
	if (c->verb == V_FLUSH && c->admin)	/* before they are handed out: held relays go now too */
		pool_flush_relays(c->d, c->uid);
	bool any = false;
	for (size_t i = 0; i < c->nitems; i++) {
		struct item *it = &c->items[i];
		qref r = it->allowed ? qindex_find(&c->d->queue, it->id) : 0;
		it->allowed = r != 0;
		if (!r)
			continue;
		bool file_held = qindex_get(&c->d->queue, r)->state == QE_HELD;	/* its name has .H */
		it->answer = sched_act(c->d, r, act[c->verb]);
		if (it->answer == SA_NOW && c->verb != V_FLUSH) {
			sched_file_name(c->d, r, it->name);
			qname_set_held(it->name, file_held);
			it->file_op = any = true;
		}
	}
	if (any) {
		uv_queue_work(c->d->loop, &c->req, files_work, after_files);
		return;
	}
	after_files(&c->req, 0);
}

/* Loop: the outcome of each item, told to the client and the log. */
static void after_files(uv_work_t *req, int status)
{
	struct ctl *c = req->data;
	size_t flushed = 0;
	(void)status;
	for (size_t i = 0; i < c->nitems; i++) {
		struct item *it = &c->items[i];
		char id[QID_LEN + 1];
		qid_format(it->id, id);
		qref r = qindex_find(&c->d->queue, it->id);
		if (c->all && (!it->allowed || it->answer == SA_UNCHANGED))
			continue;	/* another user's, or not deferred: not asked about */
		if (!it->allowed) {
			line(c, 2, "outbox: %s: not in the queue", id);
			c->exit_code = 1;
			continue;
		}
		if (it->file_op && it->file_rc < 0) {
			line(c, 2, "outbox: %s: %s failed: %s", id, verb_name(c->verb), it->why);
			log_err("%s: %s by uid %ld failed: %s", id, verb_name(c->verb), c->uid, it->why);
			c->exit_code = 1;
			continue;
		}
		if (it->answer == SA_BUSY) {
			if (!c->all) {
				line(c, 2, "outbox: %s: a report about it is being queued; try again in a moment", id);
				c->exit_code = 75;
			}
			continue;
		}
		if (it->answer == SA_UNCHANGED) {
			line(c, 1, "%s: %s", id, c->verb == V_FLUSH ? "not waiting for a retry"
					: c->verb == V_RELEASE ? "not held" : "already so");
			continue;
		}
		if (it->answer == SA_LATER) {
			line(c, 1, "%s: in delivery now; %s when this attempt ends", id,
			     c->verb == V_HOLD ? "held" : "deleted");
			log_info("%s: %s asked by uid %ld, once its attempt ends", id, verb_name(c->verb), c->uid);
			continue;
		}
		if (c->verb == V_RELEASE && r)
			sched_released(c->d, r);
		if (c->verb == V_DELETE && r)
			sched_deleted(c->d, r);
		static const char *const done[] = { [V_FLUSH] = "due now", [V_DELETE] = "deleted",
						    [V_HOLD] = "held", [V_RELEASE] = "released" };
		if (c->all) {
			flushed++;
			continue;
		}
		line(c, 1, "%s: %s", id, done[c->verb]);
		log_info("%s: %s by uid %ld", id, done[c->verb], c->uid);
	}
	if (c->all)	/* one line, however large the queue */
		log_info("flush asked by uid %ld: %zu messages due now", c->uid, flushed);
	finish(c);
}

/* ---- STATUS (loop) ---- */

static void do_status(struct ctl *c)
{
	struct daemon *d = c->d;
	size_t n[QE_NSTATES] = { 0 };
	for (uint32_t i = 0; i <= d->queue.mask; i++)
		if (d->queue.table[i])
			n[qindex_get(&d->queue, d->queue.table[i])->state]++;
	size_t active = n[QE_ACTIVE] + n[QE_ACTIVE_HOLD] + n[QE_ACTIVE_DELETE] + n[QE_BOUNCING];
	const struct daemon_stats *st = &d->stats;
	char last[64] = "";
	if (st->last_at > 0)
		time_text(st->last_at, last, sizeof last);
	if (c->json) {
		struct buf b;
		buf_init(&b);
		buf_printf(&b, "{\"up\":true,\"version\":\"%s\",\"pid\":%ld,\"uptime\":%.0f,"
			   "\"queue\":{\"total\":%zu,\"queued\":%zu,\"deferred\":%zu,\"active\":%zu,\"held\":%zu},"
			   "\"since_start\":{\"received\":%llu,\"sent\":%llu,\"deferred\":%llu,\"bounced\":%llu},"
			   "\"last_result\":", OUTBOX_VERSION, (long)getpid(), now_real() - st->started,
			   d->queue.count, n[QE_READY], n[QE_DEFERRED], active, n[QE_HELD],
			   (unsigned long long)d->received, (unsigned long long)st->sent,
			   (unsigned long long)st->deferred, (unsigned long long)st->bounced);
		if (st->last_at > 0) {
			buf_printf(&b, "{\"at\":%.3f,\"reply\":", st->last_at);
			json_str(&b, st->last_reply);
			buf_adds(&b, "}}");
		} else {
			buf_adds(&b, "null}");
		}
		line(c, 1, "%s", b.data);
		buf_free(&b);
		return;
	}
	char up[32];
	line(c, 1, "outboxd %s is running (pid %ld), up %s", OUTBOX_VERSION, (long)getpid(),
	     format_duration((uint64_t)(now_real() - st->started), up, sizeof up));
	line(c, 1, "queue: %zu messages: %zu queued, %zu deferred, %zu in delivery, %zu held",
	     d->queue.count, n[QE_READY], n[QE_DEFERRED], active, n[QE_HELD]);
	line(c, 1, "since start: %llu received, %llu sent, %llu deferred, %llu bounced",
	     (unsigned long long)d->received, (unsigned long long)st->sent,
	     (unsigned long long)st->deferred, (unsigned long long)st->bounced);
	if (st->last_at > 0)
		line(c, 1, "last upstream result: %s at %s", st->last_reply, last);
	else
		line(c, 1, "last upstream result: none yet");
}

/* ---- METRICS (loop): the same text as [log] metrics_file ---- */

static void do_metrics(struct ctl *c)
{
	struct buf b;
	buf_init(&b);
	metrics_render(c->d, &b);
	for (char *p = b.data, *nl; p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		line(c, 1, "%.*s", (int)(nl - p), p);
	}
	buf_free(&b);
}

/* ---- the connection (loop) ---- */

static void on_closed(uv_handle_t *h)
{
	struct ctl *c = h->data;
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->items);
	free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct ctl *c = h->data;
	uv_close((uv_handle_t *)&c->pipe, on_closed);
}

static void finish(struct ctl *c)
{
	line(c, 0, "exit %d", c->exit_code);	/* (stream 0: the status line) */
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* Every message in the index, for QUEUE and a FLUSH of all. */
static void snapshot(struct ctl *c, bool deferred_only)
{
	struct queue_index *q = &c->d->queue;
	c->items = xcalloc(q->count ? q->count : 1, sizeof *c->items);
	for (uint32_t i = 0; i <= q->mask; i++) {
		qref r = q->table[i];
		if (!r || (deferred_only && qindex_get(q, r)->state != QE_DEFERRED))
			continue;
		struct item *it = &c->items[c->nitems++];
		it->id = qindex_get(q, r)->id;
		it->state = qindex_get(q, r)->state;
		it->found = true;
		sched_file_name(c->d, r, it->name);
		qname_set_held(it->name, it->state == QE_HELD);
	}
}

/* The IDs named in the request. */
static bool named_items(struct ctl *c, char **args, int nargs)
{
	c->items = xcalloc((size_t)nargs, sizeof *c->items);
	for (int i = 0; i < nargs; i++) {
		struct item *it = &c->items[c->nitems++];
		if (!qid_valid(args[i])) {
			line(c, 2, "outbox: %.40s: not a queue ID", args[i]);
			c->exit_code = 64;
			return false;
		}
		it->id = qid_value(args[i]);
		qref r = qindex_find(&c->d->queue, it->id);
		if (!r) {
			qid_format(it->id, it->name);
			continue;
		}
		it->found = true;
		it->state = qindex_get(&c->d->queue, r)->state;
		sched_file_name(c->d, r, it->name);
		qname_set_held(it->name, it->state == QE_HELD);
	}
	return true;
}

static const struct { const char *name; enum verb v; int min, max; } verbs[] = {
	{ "QUEUE", V_QUEUE, 0, 0 }, { "SHOW", V_SHOW, 1, 1 }, { "FLUSH", V_FLUSH, 0, 512 },
	{ "DELETE", V_DELETE, 1, 512 }, { "HOLD", V_HOLD, 1, 512 }, { "RELEASE", V_RELEASE, 1, 512 },
	{ "STATUS", V_STATUS, 0, 0 }, { "METRICS", V_METRICS, 0, 0 },
};

/* The request line is whole: split it and start. */
static void start_request(struct ctl *c)
{
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
		line(c, 2, "outbox: the daemon does not take that request");
		c->exit_code = 64;
		finish(c);
		return;
	}
	c->verb = verbs[k].v;
	if (c->verb == V_STATUS || c->verb == V_METRICS) {
		(c->verb == V_STATUS ? do_status : do_metrics)(c);
		finish(c);
		return;
	}
	c->all = c->verb == V_FLUSH && nargs == 0;
	if (c->verb == V_QUEUE || c->all)
		snapshot(c, c->all);
	else if (!named_items(c, args, nargs)) {
		finish(c);
		return;
	}
	c->req.data = c;
	uv_queue_work(c->d->loop, &c->req, check_work, after_check);
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
	if (n < 0) {
		uv_read_stop(st);
		c->fail = true;
		finish(c);
		return;
	}
	c->in.len += (size_t)n;
	c->in.data[c->in.len] = '\0';
	char *nl = memchr(c->in.data, '\n', c->in.len);
	if (!nl && c->in.len < CONTROL_LINE_MAX)
		return;
	uv_read_stop(st);
	if (!nl) {
		line(c, 2, "outbox: request line too long");
		c->exit_code = 64;
		finish(c);
		return;
	}
	*nl = '\0';
	if (nl > c->in.data && nl[-1] == '\r')
		nl[-1] = '\0';
	start_request(c);
}

static void on_timeout(uv_timer_t *t)
{
	struct ctl *c = t->data;
	uv_read_stop((uv_stream_t *)&c->pipe);
	c->fail = true;	/* no request in time: close (a request in work finishes first) */
	if (!c->req.data)
		finish(c);
}

void control_accept(struct daemon *d, uv_stream_t *server)
{
	struct ctl *c = xcalloc(1, sizeof *c);
	struct ucred cred;
	socklen_t len = sizeof cred;
	uv_os_fd_t fd;
	c->d = d;
	c->uid = -1;
	buf_init(&c->in);
	buf_init(&c->out);
	uv_pipe_init(d->loop, &c->pipe, 0);
	c->pipe.data = c;
	uv_timer_init(d->loop, &c->timer);
	c->timer.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 || uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0
	    || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		uv_close((uv_handle_t *)&c->timer, on_timer_closed);
		return;
	}
	c->fd = fd;
	c->uid = (long)cred.uid;
	uv_timer_start(&c->timer, on_timeout, CONTROL_READ_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* ---- actions that waited for an attempt's end ---- */

struct later {
	uv_work_t req;
	struct daemon *d;
	uint64_t id;
	enum sched_action a;
	char name[QNAME_MAX];
	int rc;
	char why[512];
};

static void later_work(uv_work_t *req)
{
	struct later *l = req->data;
	struct err e;
	l->rc = l->a == SA_DELETE ? store_delete(&l->d->store, l->name, &e)
				  : store_set_held(&l->d->store, l->name, true, &e);
	if (l->rc < 0)
		snprintf(l->why, sizeof l->why, "%s", e.msg);
}

static void later_done(uv_work_t *req, int status)
{
	struct later *l = req->data;
	char id[QID_LEN + 1];
	(void)status;
	qid_format(l->id, id);
	qref r = qindex_find(&l->d->queue, l->id);
	if (l->rc < 0)
		log_err("%s: %s after its attempt failed: %s", id, l->a == SA_DELETE ? "delete" : "hold",
			l->why);
	else
		log_info("%s: %s (after its attempt)", id, l->a == SA_DELETE ? "deleted" : "held");
	if (r && l->a == SA_DELETE && l->rc == 0)
		sched_deleted(l->d, r);
	free(l);
}

void control_later(struct daemon *d, qref r, enum sched_action a)
{
	struct later *l = xcalloc(1, sizeof *l);
	l->d = d;
	l->a = a;
	l->id = qindex_get(&d->queue, r)->id;
	sched_file_name(d, r, l->name);
	l->req.data = l;
	uv_queue_work(d->loop, &l->req, later_work, later_done);
}
