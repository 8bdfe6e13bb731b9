/*
 * intake.c - the one way into the queue (intake.h): envelope
 * completion, the Received: line, the commit on the thread pool, and
 * the bookkeeping after it (log, index, scheduler).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/address.h"
#include "../common/log.h"
#include "intake.h"
#include "outboxd.h"

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
	buf_printf(&b, "Received: from %s (", *o->helo ? o->helo : "local");
	if (o->way == WAY_TCP)
		buf_adds(&b, o->peer);
	else
		buf_printf(&b, "uid %ld%s%s", o->uid, *o->login ? " " : "", o->login);
	buf_printf(&b, ")\r\n\tby %s (outbox) with %s%s id %s", in->d->hostname,
		   o->way == WAY_PICKUP ? "" : o->smtputf8 ? "UTF8" : "",
		   o->way == WAY_PICKUP ? "local" : o->esmtp ? "ESMTP" : "SMTP", in->w.id);
	if (env->nrcpt == 1)
		buf_printf(&b, "\r\n\tfor <%s>", env->rcpt[0].addr);
	buf_printf(&b, "; %s\r\n", date);
	qwriter_write(&in->w, b.data, b.len);
	buf_free(&b);
}

int intake_begin(struct daemon *d, struct intake *in, struct envelope *env,
		 const struct origin *o, struct err *e)
{
	memset(in, 0, sizeof *in);
	in->d = d;
	in->env = env;
	env->arrival = now_real();
	env->uid = o->uid;
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
	if (qwriter_begin_as(&d->store, env, o->id, &in->w, e) < 0)
		return -1;
	write_received(in, env, o);
	return 0;
}

void intake_write(struct intake *in, const void *p, size_t n)
{
	qwriter_write(&in->w, p, n);
}

void intake_add_flags(struct intake *in, unsigned flags)
{
	in->w.flags |= flags;
}

bool intake_flush_due(const struct intake *in)
{
	return qwriter_flush_due(&in->w);
}

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
	uv_queue_work(in->d->loop, &in->req, flush_work, work_done);
}

static void commit_work(uv_work_t *req)
{
	struct intake *in = req->data;
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
	struct daemon *d = in->d;
	uint64_t id = in->rc == 0 ? qid_value(in->w.id) : 0;
	(void)status;
	if (in->rc == 0)
		log_queued(in);
	in->cb(in, in->arg);
	if (id) {
		bool added;
		qref r = qindex_add(&d->queue, id, &added);
		if (added)
			sched_new(d, r);
		sched_dispatch(d);
		d->received++;
	}
}

void intake_commit(struct intake *in, intake_cb cb, void *arg)
{
	in->w.flags |= in->env->flags;
	in->cb = cb;
	in->arg = arg;
	in->req.data = in;
	uv_queue_work(in->d->loop, &in->req, commit_work, commit_done);
}

void intake_abort(struct intake *in)
{
	qwriter_abort(&in->w);
}

void intake_free(struct intake *in)
{
	qwriter_free(&in->w);
}
