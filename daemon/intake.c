/*
 * intake.c - the one way into the queue (intake.h): envelope
 * completion, the Received: line, the commit on the thread pool, and
 * the bookkeeping after it (log, index, scheduler); room on the spool
 * ([queue] min_free), checked at the commit for every way in but the
 * daemon's own reports, and said once each time it runs out or comes
 * back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../common/address.h"
#include "../common/config.h"
#include "../common/rewrite.h"
#include "../common/headers.h"
#include "../common/log.h"
#include "intake.h"
#include "scheduler.h"
#include "spool_log.h"

/* The Received: line (RFC 5321 4.4): who handed the message in, as
 * the daemon knows it (SO_PEERCRED, the peer's address), never as the
 * client claims it but for the HELO name, which passed helo_name_ok. */
static void write_received(struct intake *in, const struct envelope *env, const struct origin *o)
{
	char date[64];
	struct buf b;
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_init(&b);
	if (o->way == WAY_BOUNCE) {	/* made here: only "by" (RFC 5321 4.4) */
		buf_printf(&b, "Received: by %s (outbox) id %s; %s\r\n", in->ic->hostname, in->w.id, date);
		qwriter_write(&in->w, b.data, b.len);
		buf_free(&b);
		return;
	}
	buf_printf(&b, "Received: from %s (", *o->helo ? o->helo : "local");
	if (o->way == WAY_TCP)
		buf_adds(&b, o->peer);
	else
		buf_printf(&b, "uid %ld%s%s", o->uid, *o->login ? " " : "", o->login);
	buf_printf(&b, ")\r\n\tby %s (outbox) with %s%s id %s", in->ic->hostname,
		   o->way == WAY_PICKUP ? "" : o->smtputf8 ? "UTF8" : "",
		   o->way == WAY_PICKUP ? "local" : o->esmtp ? "ESMTP" : "SMTP", in->w.id);
	if (env->nrcpt == 1)
		buf_printf(&b, "\r\n\tfor <%s>", env->rcpt[0].addr);
	buf_printf(&b, "; %s\r\n", date);
	qwriter_write(&in->w, b.data, b.len);
	buf_free(&b);
}

#define HEAD_MAX (256 * 1024)	/* a longer header section is left as it is */

/* A sender of this host: a bare local name, or one at this host's
 * name, at localhost or at a .invalid name (what cron, mailx and
 * scripts write when the host has no mail domain). */
static bool local_sender(const struct intake_ctx *ic, const char *a)
{
	const char *at = strrchr(a, '@');
	if (!*a)
		return false;
	if (!at)
		return addr_is_local_name(a);
	const char *dom = at + 1;
	size_t n = strlen(dom);
	return strcasecmp(dom, ic->hostname) == 0 || strcasecmp(dom, "localhost") == 0
	       || strcasecmp(dom, "localhost.localdomain") == 0
	       || (n > 8 && strcasecmp(dom + n - 8, ".invalid") == 0);	/* RFC 2606: never real */
}

/* a local sender through [senders] (then qualified); NULL when a is
 * not local or stays as it is. */
static char *local_rewrite(const struct intake_ctx *ic, const char *a)
{
	if (!local_sender(ic, a))
		return NULL;
	const char *at = strrchr(a, '@');
	char *name = at ? xstrndup(a, (size_t)(at - a)) : xstrdup(a);
	char *to = addr_is_local_name(name) ? sender_rewrite(*ic->conf, name, name) : NULL;
	free(name);
	if (to && (strcasecmp(to, a) == 0 || addr_check(to, NULL) < 0)) {
		free(to);
		to = NULL;
	}
	return to;
}

int intake_begin(struct intake_ctx *ic, struct intake *in, struct envelope *env,
		 const struct origin *o, struct err *e)
{
	memset(in, 0, sizeof *in);
	in->ic = ic;
	in->way = o->way;
	in->env = env;
	buf_init(&in->head);
	char *sender = local_rewrite(ic, env->sender);
	if (sender) {
		free(env->sender);
		env->sender = sender;
	}
	env->arrival = now_real();
	env->uid = o->uid;
	/* min_free is kept for the work of queued mail; 0: the write says */
	in->check_room = o->way != WAY_BOUNCE && (*ic->conf)->queue.min_free > 0;
	in->min_free = (*ic->conf)->queue.min_free;
	if (o->smtputf8 || addr_needs_utf8(env->sender))
		env->flags |= ENV_SMTPUTF8;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (addr_needs_utf8(env->rcpt[i].addr))
			env->flags |= ENV_SMTPUTF8;
	if (o->way == WAY_TCP)
		snprintf(in->who, sizeof in->who, "client=%s", o->peer);
	else
		snprintf(in->who, sizeof in->who, "uid=%ld%s", o->uid,
			 o->way == WAY_PICKUP ? " via=pickup" : "");
	if (qwriter_begin_as(ic->store, env, o->id, &in->w, e) < 0)
		return -1;
	write_received(in, env, o);
	return 0;
}

static void collect(const char *a, void *arg)
{
	struct buf *list = arg;
	buf_add(list, a, strlen(a) + 1);
}

/* The From: field with its one local address replaced, into out; false
 * when it stays as it is. */
static bool rewrite_from(struct intake *in, const struct header *f, struct buf *out)
{
	struct buf list;
	struct err e;
	bool done = false;
	buf_init(&list);
	if (addrlist_parse(f->value, f->value_len, collect, &list, &e) == 0 && list.len
	    && strlen(list.data) + 1 == list.len) {	/* exactly one address */
		char *to = local_rewrite(in->ic, list.data);
		size_t alen = strlen(list.data);
		const char *v = f->value, *end = f->value + f->value_len, *hit = NULL;
		/* the address as a token of its own in the field */
		for (const char *p = v; to && !hit && p + alen <= end; p++)
			if (strncasecmp(p, list.data, alen) == 0 && (p == v || strchr(" \t<:", p[-1]))
			    && (p + alen == end || strchr(" \t>(\r", p[alen])))
				hit = p;
		if (hit) {
			buf_add(out, f->start, (size_t)(hit - f->start));
			buf_adds(out, to);
			buf_add(out, hit + alen, (size_t)(f->start + f->len - hit - alen));
			done = true;
		}
		free(to);
	}
	buf_free(&list);
	return done;
}

/* The header section is whole (or as whole as it gets): out it goes. */
static void head_out(struct intake *in)
{
	struct header_list h;
	struct buf out;
	bool changed = false;
	buf_init(&out);
	headers_parse(in->head.data ? in->head.data : "", in->head.len, &h);
	for (size_t i = 0; i < h.n; i++) {
		const struct header *f = &h.v[i];
		if (!(header_is(f, "From") && rewrite_from(in, f, &out)))
			buf_add(&out, f->start, f->len);
		else
			changed = true;
	}
	if (changed) {	/* then the empty line and what came of the body */
		size_t rest = (size_t)(h.v[h.n - 1].start + h.v[h.n - 1].len - in->head.data);
		buf_add(&out, in->head.data + rest, in->head.len - rest);
		qwriter_write(&in->w, out.data, out.len);
	} else {
		qwriter_write(&in->w, in->head.data, in->head.len);
	}
	headers_free(&h);
	buf_free(&out);
	buf_free(&in->head);
	in->head_done = true;
}

void intake_write(struct intake *in, const void *p, size_t n)
{
	if (in->head_done) {
		qwriter_write(&in->w, p, n);
		return;
	}
	size_t from = in->head.len > 3 ? in->head.len - 3 : 0;
	buf_add(&in->head, p, n);
	const char *h = in->head.data;
	bool whole = (in->head.len >= 2 && memcmp(h, "\r\n", 2) == 0)
		     || memmem(h + from, in->head.len - from, "\r\n\r\n", 4);
	if (whole || in->head.len > HEAD_MAX)
		head_out(in);
}

void intake_add_flags(struct intake *in, unsigned flags)
{
	in->w.flags |= flags;
}

bool intake_flush_due(const struct intake *in)
{
	return qwriter_flush_due(&in->w);
}

/* ---- room on the spool ---- */

static void below_min_free(uint64_t min_free, uint64_t avail, struct err *e)
{
	err_set(e, "free space (%llu KB) is below [queue] min_free (%llu KB)",
		(unsigned long long)(avail / 1024), (unsigned long long)(min_free / 1024));
	e->sys = ENOSPC;
}

/* A change of state is said once (ic->spool_full). */
static void room_state(struct intake_ctx *ic, bool room, const char *why)
{
	const char *spool = (*ic->conf)->queue.spool;
	if (room && ic->spool_full)
		log_info("spool %s has room again: new mail is accepted", spool);
	if (!room && !ic->spool_full)
		log_warn("spool %s: %s: new mail is refused (452) and files wait in pickup/new/ until "
			 "there is room; queued mail still flows", spool, why);
	ic->spool_full = !room;
}

void intake_room_seen(struct intake_ctx *ic, bool room, uint64_t avail)
{
	struct err e = { .msg = "" };
	if (!room)
		below_min_free((*ic->conf)->queue.min_free, avail, &e);
	room_state(ic, room, e.msg);
}

void intake_room_failed(struct intake_ctx *ic, const struct err *e)
{
	room_state(ic, false, e->msg);
}

bool intake_room(struct intake_ctx *ic, uint64_t need)
{
	uint64_t avail = 0;
	bool room = store_has_room(ic->store, (*ic->conf)->queue.min_free, need, &avail);
	intake_room_seen(ic, room, avail);
	return room;
}

/* ---- the commit ---- */

static void flush_work(uv_work_t *req)
{
	struct intake *in = req->data;
	qwriter_flush(&in->w);	/* an error sticks: the commit reports it */
}

static void work_done(uv_work_t *req, int status)
{
	struct intake *in = req->data;
	(void)status;
	in->cb(in, in->arg);
}

void intake_flush(struct intake *in, intake_cb cb, void *arg)
{
	in->cb = cb;
	in->arg = arg;
	in->req.data = in;
	uv_queue_work(in->ic->loop, &in->req, flush_work, work_done);
}

static void commit_work(uv_work_t *req)
{
	struct intake *in = req->data;
	uint64_t avail = 0;
	if (in->check_room && !store_has_room(in->ic->store, in->min_free, in->w.pending.len, &avail)) {
		below_min_free(in->min_free, avail, &in->err);
		qwriter_abort(&in->w);
		in->rc = -1;
		return;
	}
	in->rc = qwriter_commit(&in->w, &in->err);
	if (in->rc == 0 && in->after_commit)
		in->after_commit(in, in->arg);
}

static void log_queued(const struct intake *in)
{
	char from[ADDR_MAX * 4 + 1];
	log_info("%s: %s from=<%s> size=%llu nrcpt=%zu (queued)", in->w.id, in->who,
		 log_safe(in->env->sender, from, sizeof from), (unsigned long long)in->w.size,
		 in->env->nrcpt);
}

/* The client first (cb may free in), the bookkeeping after. */
static void commit_done(uv_work_t *req, int status)
{
	struct intake *in = req->data;
	struct intake_ctx *ic = in->ic;
	uint64_t id = in->rc == 0 ? qid_value(in->w.id) : 0;
	uint32_t uid = quid_of(in->env->uid);
	enum way_in way = in->way;
	(void)status;
	spool_log_news(ic->store);	/* what the commit's fsyncs found */
	if (in->rc == 0)
		log_queued(in);
	in->cb(in, in->arg);
	if (id) {
		bool added;
		qref r = qindex_add(ic->queue, id, &added);
		qindex_set_uid(ic->queue, r, uid);
		if (added)
			sched_new(ic->sched, r);
		sched_dispatch(ic->sched);
		ic->counts->received++;
		ic->counts->received_by[way]++;
	}
}

void intake_commit(struct intake *in, intake_cb cb, void *arg)
{
	if (!in->head_done)
		head_out(in);	/* a message of headers only */
	in->w.flags |= in->env->flags;
	in->cb = cb;
	in->arg = arg;
	in->req.data = in;
	uv_queue_work(in->ic->loop, &in->req, commit_work, commit_done);
}

void intake_abort(struct intake *in)
{
	buf_free(&in->head);
	qwriter_abort(&in->w);
}

void intake_free(struct intake *in)
{
	buf_free(&in->head);
	qwriter_free(&in->w);
}
