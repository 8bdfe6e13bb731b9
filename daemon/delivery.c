/*
 * delivery.c - the delivery worker pool.
 *
 * The loop hands message IDs to a job queue; each of [relay] workers
 * threads runs a plain, blocking SMTP client (smtp_client.c) with a
 * timeout on every read and write, keeps its upstream session open
 * for the next message, and reports each message's outcome back to the
 * loop through a uv_async handle.  Workers read the queue file
 * themselves and record results in it (status bytes, fdatasync, unlink),
 * so no disk wait ever happens on the loop thread.
 *
 * One message, on an open session:
 *   MAIL FROM, RCPT TO..., DATA      (one write with PIPELINING)
 *   354 -> the message, dot-stuffed, lines kept within 998 octets, ".",
 *          followed in the same write by the next queued message's
 *          MAIL/RCPT/DATA when there is one (RFC 2920 allows it), so a
 *          busy session costs one round trip per message
 *   reply to "." -> every accepted recipient gets that result
 * With CHUNKING (RFC 3030) and PIPELINING offered, and [relay] chunking
 * on, messages go as MAIL, RCPT..., BDAT <n> LAST + the octets instead,
 * up to BATCH_MAX of them in one write: the message needs no reply
 * before its octets, so a batch costs one round trip (see CHUNKING).
 * Per recipient: 2xx sent, 4xx deferred, 5xx bounced (failed).  A
 * recipient that got sent or bounced is recorded before anything else
 * happens and never tried again.  Anything that breaks the session
 * (network, TLS, AUTH, timeout, 421) defers what is not yet recorded.
 *
 * A session idle for SESSION_IDLE_S is closed with QUIT; a session
 * reused after waiting is checked with RSET first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>

#include "../common/address.h"
#include "../common/auth.h"
#include "../common/log.h"
#include "../common/retry.h"
#include "../common/smtp_client.h"
#include "../common/units.h"
#include "outboxd.h"

#define SESSION_IDLE_S 10
#define BODY_CHUNK (256 * 1024)
#define BATCH_MAX 8		/* messages in one BDAT batch: also the most a crash can duplicate per worker */
#define BATCH_BYTES (1024 * 1024)	/* a batch stops growing here */

struct job {
	char id[QID_LEN + 1];
	unsigned tries;		/* attempts before this one */
	struct config *conf;	/* the configuration when it was handed out */
	struct job *next;
};

struct worker {
	struct pool *pool;
	uv_thread_t thread;
	int idx;
	struct smtp_client smtp;
	struct config *session_conf;	/* the config the open session was made with */
	struct tls_client tls;
	struct config *tls_conf;
	unsigned rnd_state;
	double last_used;	/* monotonic: end of the last delivery */
	char *chunk;		/* BODY_CHUNK octets read from a queue file */
	struct buf out;		/* encoded message on its way out */
};

struct pool {
	struct daemon *d;	/* loop-thread fields only; workers use store */
	const struct store *store;
	uv_mutex_t mu;
	uv_cond_t cv;
	struct job *head, *tail;
	size_t queued;		/* jobs between head and tail */
	struct delivery_result *results;
	bool stopping;
	size_t nworkers, running;
	struct worker *workers;
	uv_async_t async;
};

/* What happens to one message in one attempt. */
struct attempt {
	struct job *job;
	struct envelope env;
	int fd;
	size_t body_off;
	uint64_t size;
	char *result;		/* per recipient: 0 untouched, RCPT_SENT, RCPT_FAILED, 'T' deferred */
	bool *accepted;		/* RCPT got 2xx in this attempt */
	char **why;		/* per recipient: reply or reason */
	double started;
	unsigned nbdat;		/* BDAT commands sent (CHUNKING) */
};

/* ---- job queue (any thread) ---- */

/* Unlink the first job; the caller holds p->mu. */
static struct job *take_head_locked(struct pool *p)
{
	struct job *j = NULL;
	if (p->head && !p->stopping) {
		j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
	}
	return j;
}

static struct job *pop_job(struct pool *p, int wait_s, bool *timed_out)
{
	struct job *j;
	*timed_out = false;
	uv_mutex_lock(&p->mu);
	while (!p->head && !p->stopping) {
		if (wait_s < 0) {
			uv_cond_wait(&p->cv, &p->mu);
		} else if (uv_cond_timedwait(&p->cv, &p->mu, (uint64_t)wait_s * 1000000000ULL) != 0) {
			*timed_out = true;
			break;
		}
	}
	j = take_head_locked(p);
	uv_mutex_unlock(&p->mu);
	return j;
}

/* How many messages a worker's next batch may take: its share of what
 * is queued, so one worker does not take it all while others idle. */
static size_t batch_share(struct pool *p, size_t max)
{
	uv_mutex_lock(&p->mu);
	size_t n = 1 + p->queued / p->nworkers;
	uv_mutex_unlock(&p->mu);
	return n < max ? n : max;
}

static struct job *try_pop_job(struct pool *p)
{
	uv_mutex_lock(&p->mu);
	struct job *j = take_head_locked(p);
	uv_mutex_unlock(&p->mu);
	return j;
}

static void post_result(struct pool *p, const struct delivery_result *r)
{
	struct delivery_result *c = xmalloc(sizeof *c);
	*c = *r;
	uv_mutex_lock(&p->mu);
	c->next = p->results;
	p->results = c;
	uv_mutex_unlock(&p->mu);
	uv_async_send(&p->async);
}

/* ---- one attempt ---- */

static double rnd01(struct worker *w)
{
	return (double)rand_r(&w->rnd_state) / ((double)RAND_MAX + 1.0);
}

static void attempt_free(struct attempt *a)
{
	if (a->fd >= 0)
		close(a->fd);
	for (size_t i = 0; i < a->env.nrcpt && a->why; i++)
		free(a->why[i]);
	free(a->why);
	free(a->result);
	free(a->accepted);
	envelope_free(&a->env);
	memset(a, 0, sizeof *a);
	a->fd = -1;
}

/* Load the queue file; false when there is nothing to do. */
static bool attempt_load(struct worker *w, struct job *j, struct attempt *a)
{
	struct err e;
	memset(a, 0, sizeof *a);
	a->fd = -1;
	a->job = j;
	a->started = now_real();
	if (store_load(w->pool->store, j->id, &a->env, &a->body_off, &a->fd, &a->size, &e) < 0) {
		bool gone = errno == ENOENT;	/* deleted meanwhile: nothing left to do */
		log_err("%s: cannot read queue file: %s", j->id, e.msg);
		struct delivery_result r = { .done = gone, .retry_in = 60 };
		memcpy(r.id, j->id, sizeof r.id);
		post_result(w->pool, &r);
		return false;
	}
	a->result = xcalloc(a->env.nrcpt, 1);
	a->accepted = xcalloc(a->env.nrcpt, sizeof *a->accepted);
	a->why = xcalloc(a->env.nrcpt, sizeof *a->why);
	return true;
}

static void set_result(struct attempt *a, size_t i, char what, const char *why)
{
	if (a->result[i])
		return;
	a->result[i] = what;
	free(a->why[i]);
	a->why[i] = xstrdup(why);
}

/* Every pending recipient without a result yet gets one. */
static void set_all(struct attempt *a, char what, const char *why)
{
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].status == RCPT_PENDING)
			set_result(a, i, what, why);
}

/* The session's failure, classified, for every recipient left. */
static void fail_from_session(struct attempt *a, const struct smtp_client *s)
{
	bool perm = smtp_failure_is_permanent(s->fail_stage, s->fail_code);
	set_all(a, perm ? RCPT_FAILED : 'T', s->fail_text);
}

static void log_recipient(struct worker *w, struct attempt *a, size_t i, const char *status,
			  const char *extra)
{
	char to[ADDR_MAX * 4 + 1], why[700];
	const struct smtp_client *s = &w->smtp;
	const struct config *c = a->job->conf;
	char relay[320];
	if (*s->relay)
		snprintf(relay, sizeof relay, "%s", s->relay);
	else
		snprintf(relay, sizeof relay, "%s:%llu", c->relay.host, (unsigned long long)c->relay.port);
	log_info("%s: to=<%s> relay=%s tls=%s delay=%.2f tries=%u status=%s (%s)%s", a->job->id,
		 log_safe(a->env.rcpt[i].addr, to, sizeof to), relay,
		 *s->net.tls_version ? s->net.tls_version : "none",
		 now_real() - a->env.arrival, a->job->tries + 1, status,
		 log_safe(a->why[i] ? a->why[i] : "", why, sizeof why), extra);
}

/* Write the results to the queue file, log them, tell the loop. */
static void attempt_finish(struct worker *w, struct attempt *a)
{
	struct err e;
	const struct config *c = a->job->conf;
	bool expired = now_real() - a->env.arrival > (double)c->queue.lifetime;
	unsigned pending = 0;
	double retry_in = retry_delay(c->queue.retry_min, c->queue.retry_max, a->job->tries + 1, rnd01(w));
	char next[48], dur[32];
	snprintf(next, sizeof next, " next=+%s", format_duration((uint64_t)(retry_in + 0.5), dur, sizeof dur));
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		if (!a->result[i])
			set_result(a, i, 'T', "not attempted");
		if (a->result[i] == 'T' && expired) {
			char *why = xasprintf("message expired after %s in the queue: %s",
					      format_duration(c->queue.lifetime, dur, sizeof dur), a->why[i]);
			free(a->why[i]);
			a->why[i] = why;
			a->result[i] = RCPT_FAILED;
		}
		if (a->result[i] == 'T') {
			pending++;
			log_recipient(w, a, i, "deferred", next);
			continue;
		}
		log_recipient(w, a, i, a->result[i] == RCPT_SENT ? "sent" : "bounced", "");
	}
	for (size_t i = 0; i < a->env.nrcpt && pending > 0; i++) {
		/* the file stays: record the final results in it */
		char r = a->result[i];
		if (a->env.rcpt[i].status == RCPT_PENDING && (r == RCPT_SENT || r == RCPT_FAILED)
		    && store_set_status(a->fd, &a->env.rcpt[i], r, &e) < 0)
			log_err("%s: %s", a->job->id, e.msg);
	}
	struct delivery_result r = { .done = pending == 0, .retry_in = retry_in, .npending = pending };
	memcpy(r.id, a->job->id, sizeof r.id);
	if (pending == 0) {
		/* Every recipient is final: the file goes.  Without a directory
		 * fsync a power loss may bring it back, and then its status
		 * bytes (synced below only when it stays) would resend it:
		 * the "crash between the upstream's 250 and the local record"
		 * case that SPEC allows. */
		if (store_remove(w->pool->store, a->job->id, &e) < 0)
			log_err("%s: %s", a->job->id, e.msg);
		else
			log_info("%s: removed", a->job->id);
	} else if (fdatasync(a->fd) < 0) {
		log_err("%s: fdatasync: %s", a->job->id, strerror(errno));
	}
	post_result(w->pool, &r);
}

/* Can this upstream take this message at all?  Sets a permanent result
 * when it cannot. */
static bool attempt_fits(struct worker *w, struct attempt *a)
{
	const struct smtp_client *s = &w->smtp;
	char why[300];
	if ((s->ext & EXT_SIZE) && s->size_max && a->size > s->size_max) {
		snprintf(why, sizeof why, "message size %llu exceeds the upstream's limit of %llu",
			 (unsigned long long)a->size, (unsigned long long)s->size_max);
		set_all(a, RCPT_FAILED, why);
		return false;
	}
	if ((a->env.flags & ENV_8BITMIME) && !(s->ext & EXT_8BITMIME)) {
		set_all(a, RCPT_FAILED, "message has 8-bit content and the upstream lacks 8BITMIME");
		return false;
	}
	if ((a->env.flags & ENV_SMTPUTF8) && !(s->ext & EXT_SMTPUTF8)) {
		set_all(a, RCPT_FAILED, "message needs SMTPUTF8 and the upstream lacks it");
		return false;
	}
	return true;
}

/* MAIL and RCPT... for a, appended to out; returns the count. */
static size_t mail_rcpt_commands(struct worker *w, struct attempt *a, struct buf *out)
{
	size_t n = 1;
	buf_printf(out, "MAIL FROM:<%s>", a->env.sender);
	if (w->smtp.ext & EXT_SIZE)
		buf_printf(out, " SIZE=%llu", (unsigned long long)a->size);
	if ((a->env.flags & ENV_8BITMIME) && (w->smtp.ext & EXT_8BITMIME))
		buf_adds(out, " BODY=8BITMIME");
	if (a->env.flags & ENV_SMTPUTF8)
		buf_adds(out, " SMTPUTF8");
	buf_adds(out, "\r\n");
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		buf_printf(out, "RCPT TO:<%s>\r\n", a->env.rcpt[i].addr);
		n++;
	}
	return n;
}

/* MAIL, RCPT... and DATA for a, appended to out; returns the count. */
static size_t envelope_commands(struct worker *w, struct attempt *a, struct buf *out)
{
	size_t n = mail_rcpt_commands(w, a, out);
	buf_adds(out, "DATA\r\n");
	return n + 1;
}

/* Read the replies to MAIL and RCPT...; false on a session failure.
 * *taken counts the recipients accepted (a->accepted). */
static bool mail_rcpt_replies(struct worker *w, struct attempt *a, size_t *taken)
{
	struct smtp_client *s = &w->smtp;
	char line[600];
	bool mail_ok = false;
	*taken = 0;
	if (smtp_read_reply(s, ST_MAIL) < 0)
		return false;
	smtp_last_reply(s, line, sizeof line);
	if (s->reply.code / 100 == 2)
		mail_ok = true;
	else
		set_all(a, s->reply.code / 100 == 5 ? RCPT_FAILED : 'T', line);
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		if (smtp_read_reply(s, ST_RCPT) < 0)
			return false;
		smtp_last_reply(s, line, sizeof line);
		if (s->reply.code / 100 == 2 && mail_ok) {
			a->accepted[i] = true;
			(*taken)++;
		} else if (mail_ok) {
			set_result(a, i, smtp_failure_is_permanent(ST_RCPT, s->reply.code) ? RCPT_FAILED : 'T', line);
		}
	}
	return true;
}

/* The reply just read applies to every accepted recipient (end of
 * data: "." or the last BDAT; or a refused DATA / BDAT). */
static void result_for_accepted(struct worker *w, struct attempt *a, enum smtp_stage st)
{
	char line[600];
	struct smtp_client *s = &w->smtp;
	smtp_last_reply(s, line, sizeof line);
	char what = s->reply.code / 100 == 2 ? RCPT_SENT
		  : smtp_failure_is_permanent(st, s->reply.code) ? RCPT_FAILED : 'T';
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->accepted[i])
			set_result(a, i, what, line);
}

/* Read the replies to MAIL, RCPT... and DATA.  True when the server is
 * now waiting for the message (354) and at least one recipient took. */
static bool envelope_replies(struct worker *w, struct attempt *a)
{
	struct smtp_client *s = &w->smtp;
	size_t taken;
	if (!mail_rcpt_replies(w, a, &taken) || smtp_read_reply(s, ST_DATA) < 0)
		return false;
	if (s->reply.code == 354 && taken > 0)
		return true;
	if (s->reply.code == 354) {	/* nobody to send to, yet the server waits: end it */
		if (smtp_send(s, ".\r\n", 3, ST_DOT) == 0)
			(void)smtp_read_reply(s, ST_DOT);
		return false;
	}
	result_for_accepted(w, a, ST_DATA);
	return false;
}

/* Send the message body (and, pipelined behind it, tail); returns -1 on
 * a session failure. */
static int send_body(struct worker *w, struct attempt *a, const struct buf *tail)
{
	struct stuffer st;
	struct buf out = w->out;	/* the worker's, reused from message to message */
	char *chunk = w->chunk;
	off_t off = (off_t)a->body_off;
	int rc = 0;
	stuffer_init(&st);
	buf_reset(&out);
	for (;;) {
		ssize_t r = pread(a->fd, chunk, BODY_CHUNK, off);
		if (r < 0) {
			rc = smtp_fail(&w->smtp, ST_LOCAL, 0, "reading the queue file: %s", strerror(errno));
			break;
		}
		if (r > 0) {
			stuffer_feed(&st, chunk, (size_t)r, &out);
			off += r;
		}
		if (r == 0 || (uint64_t)(off - (off_t)a->body_off) >= a->size) {
			stuffer_end(&st, &out);
			if (tail)
				buf_add(&out, tail->data, tail->len);
		}
		if (out.len && smtp_send(&w->smtp, out.data, out.len, ST_DOT) < 0) {
			rc = -1;
			break;
		}
		buf_reset(&out);
		if (r == 0 || (uint64_t)(off - (off_t)a->body_off) >= a->size)
			break;
	}
	if (rc == 0 && st.lines_broken)
		log_info("%s: %llu lines over %d octets were broken", a->job->id,
			 (unsigned long long)st.lines_broken, SMTP_LINE_OUT_MAX);
	if (out.cap > 4 * BODY_CHUNK) {	/* do not keep a huge buffer around */
		buf_free(&out);
	}
	w->out = out;
	return rc;
}

static void dot_reply(struct worker *w, struct attempt *a)
{
	if (smtp_read_reply(&w->smtp, ST_DOT) == 0)
		result_for_accepted(w, a, ST_DOT);
}

/* ---- sessions ---- */

static bool session_usable(struct worker *w, struct job *j, bool waited)
{
	struct smtp_client *s = &w->smtp;
	if (s->open && w->session_conf != j->conf) {
		smtp_quit(s);	/* the configuration changed: new session */
	}
	if (s->open && waited) {
		if (smtp_send(s, "RSET\r\n", 6, ST_LOCAL) < 0 || smtp_read_reply(s, ST_LOCAL) < 0
		    || s->reply.code / 100 != 2)
			smtp_close(s);
	}
	return s->open;
}

static int session_open(struct worker *w, struct job *j)
{
	struct err e;
	if (w->tls_conf != j->conf && j->conf->relay.tls != TLS_NONE) {	/* CA bundle loaded once per config */
		tls_client_free(&w->tls);
		if (w->tls_conf)
			config_unref(w->tls_conf);
		w->tls_conf = config_ref(j->conf);
		if (tls_client_init(&w->tls, j->conf->relay.ca_file, j->conf->relay.verify, &e) < 0) {
			tls_client_free(&w->tls);
			config_unref(w->tls_conf);
			w->tls_conf = NULL;
			return smtp_fail(&w->smtp, ST_TLS, 0, "%s", e.msg);
		}
	}
	if (w->session_conf)
		config_unref(w->session_conf);
	w->session_conf = config_ref(j->conf);
	if (smtp_open(&w->smtp, j->conf, &w->tls) < 0) {
		log_warn("relay %s: %s", *w->smtp.relay ? w->smtp.relay : j->conf->relay.host,
			 w->smtp.fail_text);
		return -1;
	}
	log_debug("worker %d: session open to %s tls=%s auth=%s", w->idx, w->smtp.relay,
		  w->smtp.net.tls ? w->smtp.net.tls_version : "none",
		  w->smtp.auth_used ? w->smtp.auth_used : "none");
	return 0;
}

/* After an attempt: a 421 or a broken connection ends the session. */
static void session_after(struct worker *w)
{
	struct smtp_client *s = &w->smtp;
	if (s->open && (s->net.fd < 0 || s->reply.code == 421 || (s->fail_code == 0 && *s->fail_text)))
		smtp_close(s);
}

/* MAIL, RCPT... and DATA one at a time, for a server without
 * PIPELINING.  True when the server waits for the message. */
static bool envelope_one_by_one(struct worker *w, struct attempt *a)
{
	struct smtp_client *s = &w->smtp;
	struct buf cmds;
	char line[600];
	size_t taken = 0;
	bool ok = false;
	buf_init(&cmds);
	envelope_commands(w, a, &cmds);
	char *cmd = cmds.data, *end;
	/* MAIL */
	end = strstr(cmd, "\r\n") + 2;
	if (smtp_send(s, cmd, (size_t)(end - cmd), ST_MAIL) < 0 || smtp_read_reply(s, ST_MAIL) < 0)
		goto out;
	if (s->reply.code / 100 != 2) {
		set_all(a, smtp_failure_is_permanent(ST_MAIL, s->reply.code) ? RCPT_FAILED : 'T',
			smtp_last_reply(s, line, sizeof line));
		goto out;
	}
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		if (a->env.rcpt[i].status != RCPT_PENDING)
			continue;
		cmd = end;
		end = strstr(cmd, "\r\n") + 2;
		if (smtp_send(s, cmd, (size_t)(end - cmd), ST_RCPT) < 0 || smtp_read_reply(s, ST_RCPT) < 0)
			goto out;
		if (s->reply.code / 100 == 2) {
			a->accepted[i] = true;
			taken++;
		} else {
			set_result(a, i, smtp_failure_is_permanent(ST_RCPT, s->reply.code) ? RCPT_FAILED : 'T',
				   smtp_last_reply(s, line, sizeof line));
		}
	}
	if (taken == 0) {
		if (smtp_send(s, "RSET\r\n", 6, ST_LOCAL) == 0)
			(void)smtp_read_reply(s, ST_LOCAL);
		goto out;
	}
	if (smtp_send(s, "DATA\r\n", 6, ST_DATA) < 0 || smtp_read_reply(s, ST_DATA) < 0)
		goto out;
	ok = s->reply.code == 354;
	if (!ok)
		for (size_t i = 0; i < a->env.nrcpt; i++)
			if (a->accepted[i])
				set_result(a, i, smtp_failure_is_permanent(ST_DATA, s->reply.code) ? RCPT_FAILED : 'T',
					   smtp_last_reply(s, line, sizeof line));
out:
	buf_free(&cmds);
	return ok;
}

static void job_free(struct job *j)
{
	config_unref(j->conf);
	free(j);
}

/* Put a job back at the head of the queue (another worker may take it). */
static void push_back_job(struct pool *p, struct job *j)
{
	uv_mutex_lock(&p->mu);
	j->next = p->head;
	p->head = j;
	if (!p->tail)
		p->tail = j;
	p->queued++;
	uv_mutex_unlock(&p->mu);
	uv_cond_signal(&p->cv);
}

/* The next queued message that can go on this session now, loaded into
 * a; messages this upstream cannot take are finished on the way.  False
 * when there is none (or the next was made under another configuration:
 * it needs a new session). */
static bool take_fitting(struct worker *w, const struct config *conf, struct attempt *a)
{
	for (;;) {
		struct job *nj = try_pop_job(w->pool);	/* NULL once the pool stops */
		if (!nj)
			return false;
		if (nj->conf != conf) {
			push_back_job(w->pool, nj);
			return false;
		}
		if (!attempt_load(w, nj, a)) {
			job_free(nj);
			continue;
		}
		if (attempt_fits(w, a))
			return true;
		attempt_finish(w, a);
		attempt_free(a);
		job_free(nj);
	}
}

/* The next message to pipeline behind the current one, its envelope
 * commands in ahead. */
static bool take_next(struct worker *w, const struct config *conf, struct attempt *next,
		      struct buf *ahead)
{
	if (!take_fitting(w, conf, next))
		return false;
	buf_reset(ahead);
	envelope_commands(w, next, ahead);
	return true;
}

/* A network or local failure (no reply code) leaves the session unusable. */
static bool session_broken(const struct smtp_client *s)
{
	return s->fail_text[0] && s->fail_code == 0;
}

/* Record an attempt's results and free it (and its job unless it is
 * the caller's). */
static void attempt_close(struct worker *w, struct attempt *a, const struct job *caller_job)
{
	if (session_broken(&w->smtp))
		fail_from_session(a, &w->smtp);
	attempt_finish(w, a);
	if (a->job != caller_job)
		job_free(a->job);
	attempt_free(a);
}

/* ---- CHUNKING (RFC 3030) ----
 * A message goes as MAIL, RCPT..., BDAT <n> LAST and its n octets (CRLF
 * lines kept within 998 octets as with DATA, but not dot-stuffed); a
 * body over BODY_CHUNK is sent as several BDATs.  No reply is needed
 * before the octets (a server that refused every recipient still reads
 * them, and refuses the BDAT), so up to BATCH_MAX messages (BATCH_BYTES)
 * go out together, and their replies are read in order: MAIL, each
 * RCPT, each BDAT.  The first refused BDAT, else the last one's reply,
 * is every accepted recipient's result.  Replies are a few lines per
 * message, so the server cannot block on writing them while we write. */

static bool chunking_usable(const struct worker *w, const struct config *c)
{
	unsigned need = EXT_CHUNKING | EXT_PIPELINING;
	return c->relay.chunking && (w->smtp.ext & need) == need;
}

/* Append a's commands and octets to out, writing out whenever it holds
 * BODY_CHUNK or more.  -1 on a session failure. */
static int chunked_message(struct worker *w, struct attempt *a, struct buf *out)
{
	struct stuffer st;
	struct buf *body = &w->out;
	off_t off = (off_t)a->body_off;
	uint64_t left = a->size;
	bool last = false;
	stuffer_init(&st);
	st.chunked = true;
	buf_reset(body);
	mail_rcpt_commands(w, a, out);
	a->nbdat = 0;
	while (!last) {
		size_t want = left < BODY_CHUNK ? (size_t)left : BODY_CHUNK;
		ssize_t r = want ? pread(a->fd, w->chunk, want, off) : 0;
		if (r < 0)
			return smtp_fail(&w->smtp, ST_LOCAL, 0, "reading the queue file: %s", strerror(errno));
		stuffer_feed(&st, w->chunk, (size_t)r, body);
		off += r;
		left -= (uint64_t)r;
		last = r == 0 || left == 0;
		if (last)
			stuffer_end(&st, body);
		if (body->len >= BODY_CHUNK || last) {
			buf_printf(out, "BDAT %zu%s\r\n", body->len, last ? " LAST" : "");
			buf_add(out, body->data, body->len);
			buf_reset(body);
			a->nbdat++;
		}
		if (out->len >= BODY_CHUNK) {
			if (smtp_send(&w->smtp, out->data, out->len, ST_DOT) < 0)
				return -1;
			buf_reset(out);
		}
	}
	if (st.lines_broken)
		log_info("%s: %llu lines over %d octets were broken", a->job->id,
			 (unsigned long long)st.lines_broken, SMTP_LINE_OUT_MAX);
	return 0;
}

/* Read a chunked message's replies and record its results. */
static void chunked_replies(struct worker *w, struct attempt *a)
{
	size_t taken;
	if (!mail_rcpt_replies(w, a, &taken))
		return;
	for (unsigned i = 0; i < a->nbdat; i++) {
		if (smtp_read_reply(&w->smtp, ST_DOT) < 0)
			return;
		if (w->smtp.reply.code / 100 != 2 || i + 1 == a->nbdat)
			result_for_accepted(w, a, ST_DOT);	/* keeps the first result */
	}
}

/* Deliver first (loaded, fits) and whatever else is queued, in batches.
 * Each message's results are recorded as soon as its replies are read,
 * while the upstream still works on the rest of the batch; the last
 * one's wait until the next batch is on the wire.  So at most two
 * accepted messages per worker are unrecorded at any time (the
 * duplicates a crash can cause), as with DATA. */
static void deliver_chunked(struct worker *w, struct job *j, struct attempt *first)
{
	struct attempt *batch = xcalloc(BATCH_MAX, sizeof *batch), held;
	size_t nb = 1;
	bool have_held = false;
	unsigned total = 0, batches = 0;
	struct buf out;
	buf_init(&out);
	batch[0] = *first;
	for (;;) {
		size_t share = 1 + batch_share(w->pool, BATCH_MAX - 1);	/* batch[0] is taken */
		bool failed = chunked_message(w, &batch[0], &out) < 0;
		while (!failed && nb < share && out.len < BATCH_BYTES
		       && take_fitting(w, j->conf, &batch[nb]))
			failed = chunked_message(w, &batch[nb++], &out) < 0;
		if (!failed && out.len)
			(void)smtp_send(&w->smtp, out.data, out.len, ST_DOT);
		buf_reset(&out);
		if (have_held)
			attempt_close(w, &held, j);
		for (size_t i = 0; i < nb; i++) {
			if (!session_broken(&w->smtp))
				chunked_replies(w, &batch[i]);
			if (i + 1 < nb)
				attempt_close(w, &batch[i], j);
		}
		held = batch[nb - 1];
		have_held = true;
		total += (unsigned)nb;
		batches++;
		if (session_broken(&w->smtp) || w->smtp.reply.code == 421
		    || !take_fitting(w, j->conf, &batch[0]))
			break;
		nb = 1;
	}
	attempt_close(w, &held, j);
	log_debug("worker %d: %u messages in %u BDAT batches", w->idx, total, batches);
	buf_free(&out);
	free(batch);
}

/*
 * Deliver job j, then, while the session is busy, whatever else is
 * queued: each next envelope goes out behind the previous message's
 * final ".", and the bookkeeping of a finished message (status bytes,
 * unlink, log) is done while the next message is on the wire.  The
 * caller keeps ownership of j; jobs taken here are freed here.
 */
static void deliver(struct worker *w, struct job *j, bool waited)
{
	struct attempt cur, next, done;
	struct buf ahead;
	bool have_done = false;
	if (!attempt_load(w, j, &cur))
		return;
	w->smtp.fail_text[0] = '\0';
	w->smtp.fail_code = 0;
	if (!session_usable(w, j, waited) && session_open(w, j) < 0) {
		fail_from_session(&cur, &w->smtp);	/* always temporary */
		attempt_close(w, &cur, j);
		return;
	}
	if (chunking_usable(w, j->conf)) {
		if (attempt_fits(w, &cur))
			deliver_chunked(w, j, &cur);
		else
			attempt_close(w, &cur, j);
		session_after(w);
		return;
	}
	buf_init(&ahead);
	bool pipelining = w->smtp.ext & EXT_PIPELINING;
	bool ready = false;
	unsigned chain = 1;
	if (attempt_fits(w, &cur) && pipelining) {
		envelope_commands(w, &cur, &ahead);
		ready = smtp_send(&w->smtp, ahead.data, ahead.len, ST_MAIL) == 0 && envelope_replies(w, &cur);
	} else if (attempt_fits(w, &cur)) {
		ready = envelope_one_by_one(w, &cur);
	}
	for (;;) {
		bool have_next = false, body_sent = false;
		if (ready) {
			have_next = pipelining && take_next(w, j->conf, &next, &ahead);
			body_sent = send_body(w, &cur, have_next ? &ahead : NULL) == 0;
		}
		if (have_done) {	/* while the upstream works on cur */
			attempt_close(w, &done, j);
			have_done = false;
		}
		if (body_sent)
			dot_reply(w, &cur);
		if (!have_next) {
			attempt_close(w, &cur, j);
			break;
		}
		if (session_broken(&w->smtp) || w->smtp.reply.code == 421) {
			attempt_close(w, &cur, j);
			attempt_close(w, &next, j);	/* deferred with the session's reason */
			break;
		}
		ready = envelope_replies(w, &next);
		done = cur;
		have_done = true;
		cur = next;
		chain++;
	}
	log_debug("worker %d: %u messages in one pipelined run", w->idx, chain);
	session_after(w);
	buf_free(&ahead);
}

/* ---- the worker thread ---- */

static void worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->pool;
	bool timed_out;
	for (;;) {
		struct job *j = pop_job(p, w->smtp.open ? SESSION_IDLE_S : -1, &timed_out);
		if (!j) {
			if (!timed_out)
				break;	/* pop_job returns nothing else only when stopping */
			if (w->smtp.open) {
				log_debug("worker %d: closing idle session to %s", w->idx, w->smtp.relay);
				smtp_quit(&w->smtp);
			}
			continue;
		}
		deliver(w, j, w->smtp.open && now_mono() - w->last_used > 2.0);
		w->last_used = now_mono();
		job_free(j);
	}
	smtp_quit(&w->smtp);
	smtp_client_free(&w->smtp);
	free(w->chunk);
	buf_free(&w->out);
	if (w->session_conf)
		config_unref(w->session_conf);
	if (w->tls_conf) {
		tls_client_free(&w->tls);
		config_unref(w->tls_conf);
	}
	uv_mutex_lock(&p->mu);
	p->running--;
	uv_mutex_unlock(&p->mu);
	uv_async_send(&p->async);
}

/* ---- the loop side ---- */

static void on_results(uv_async_t *h)
{
	struct pool *p = h->data;
	struct daemon *d = p->d;
	uv_mutex_lock(&p->mu);
	struct delivery_result *r = p->results;
	p->results = NULL;
	size_t running = p->running;
	uv_mutex_unlock(&p->mu);
	/* the list is newest first: handle oldest first */
	struct delivery_result *rev = NULL;
	while (r) {
		struct delivery_result *n = r->next;
		r->next = rev;
		rev = r;
		r = n;
	}
	for (r = rev; r;) {
		struct delivery_result *n = r->next;
		sched_result(d, r);
		free(r);
		r = n;
	}
	if (p->stopping && running == 0)
		daemon_maybe_finish(d);
	else
		sched_dispatch(d);
}

int pool_start(struct daemon *d, struct err *e)
{
	struct pool *p = xcalloc(1, sizeof *p);
	p->d = d;
	p->store = &d->store;
	uv_mutex_init(&p->mu);
	uv_cond_init(&p->cv);
	uv_async_init(d->loop, &p->async, on_results);
	p->async.data = p;
	p->nworkers = (size_t)d->conf->relay.workers;
	p->workers = xcalloc(p->nworkers, sizeof *p->workers);
	d->pool = p;
	for (size_t i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		w->pool = p;
		w->idx = (int)i;
		w->rnd_state = (unsigned)(now_real() * 1000) ^ (unsigned)(i * 7919);
		w->chunk = xmalloc(BODY_CHUNK);
		buf_init(&w->out);
		smtp_client_init(&w->smtp);
		p->running++;
		if (uv_thread_create(&w->thread, worker_main, w) != 0) {
			p->running--;
			return err_set(e, "cannot start delivery worker %zu", i);
		}
	}
	log_info("%zu delivery workers for %s:%llu", p->nworkers, d->conf->relay.host,
		 (unsigned long long)d->conf->relay.port);
	return 0;
}

size_t pool_size(const struct daemon *d)
{
	return d->pool ? d->pool->nworkers : 0;
}

void pool_submit(struct daemon *d, const char *id, unsigned tries)
{
	struct pool *p = d->pool;
	struct job *j = xcalloc(1, sizeof *j);
	memcpy(j->id, id, QID_LEN);
	j->tries = tries;
	j->conf = config_ref(d->conf);
	uv_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	uv_mutex_unlock(&p->mu);
	uv_cond_signal(&p->cv);
}

void pool_stop(struct daemon *d)
{
	struct pool *p = d->pool;
	if (!p)
		return;
	uv_mutex_lock(&p->mu);
	p->stopping = true;
	uv_mutex_unlock(&p->mu);
	uv_cond_broadcast(&p->cv);
	uv_async_send(&p->async);
}

bool pool_stopped(const struct daemon *d)
{
	struct pool *p = d->pool;
	if (!p)
		return true;
	uv_mutex_lock(&p->mu);
	bool done = p->stopping && p->running == 0;
	uv_mutex_unlock(&p->mu);
	return done;
}

static void on_async_closed(uv_handle_t *h)
{
	(void)h;
}

/* After the loop: join the workers if they are gone, free what is left. */
void pool_free(struct daemon *d)
{
	struct pool *p = d->pool;
	if (!p)
		return;
	if (pool_stopped(d)) {
		for (size_t i = 0; i < p->nworkers; i++)
			uv_thread_join(&p->workers[i].thread);
		for (struct job *j = p->head, *n; j; j = n) {
			n = j->next;
			job_free(j);
		}
		for (struct delivery_result *r = p->results, *n; r; r = n) {
			n = r->next;
			free(r);
		}
		free(p->workers);
		uv_mutex_destroy(&p->mu);
		uv_cond_destroy(&p->cv);
		free(p);
	}
	d->pool = NULL;
}

void pool_close_handle(struct daemon *d)
{
	if (d->pool && !uv_is_closing((uv_handle_t *)&d->pool->async))
		uv_close((uv_handle_t *)&d->pool->async, on_async_closed);
}
