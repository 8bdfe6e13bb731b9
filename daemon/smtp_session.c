/*
 * smtp_session.c - the SMTP server session of the submission listeners:
 * the connection (reading, writing, the state machine, the commit and
 * the work on the thread pool, accepting and closing).  The commands
 * and their parameters are smtp_commands.c (smtp_commands.h); the
 * session's output and its end are smtp_conn.c (smtp_conn.h), which both
 * stand on.
 *
 * One session per accepted connection, an explicit state machine:
 *
 *   CMD ──DATA+354──> DATA ──<CRLF>.<CRLF>──> COMMIT ──fsync done──> CMD
 *    │                                              (250 or 451)
 *    └─QUIT/error/idle──> CLOSING
 *
 * Commands are read one line at a time from the input buffer, so a
 * client may pipeline (RFC 2920); replies are gathered and written once
 * the buffered input is used up, or once OUT_HIGH_WATER octets of
 * replies wait: then no command runs and nothing is read until the
 * client has read them.  While a message is committing, input is not
 * parsed (the 250 must come before any later reply); it is only
 * buffered, up to IN_HIGH_WATER.
 *
 * Invariants:
 *  - the message goes into the queue through intake.h only, and "250 ...
 *    queued as ID" is sent only from its commit callback, after the
 *    commit succeeded (file and directory fsync'd);
 *  - limits hold while reading: command lines (SMTP_CMD_LINE_MAX), text
 *    lines (SMTP_TEXT_LINE_MAX), message size (SIZE) and recipients;
 *    breaking one costs the client that message, never the session;
 *  - DATA ends only on <CRLF>.<CRLF> (see smtp.h);
 *  - a session is freed only when its handles are closed and no work
 *    (commit, flush, name lookup) is in flight;
 *  - nothing on the loop thread waits for the disk or the name service:
 *    a large message's octets are written, and the uid's login name is
 *    looked up, on the thread pool.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "../common/log.h"
#include "../common/smtp.h"
#include "intake.h"
#include "outboxd.h"
#include "sessions.h"
#include "smtp_commands.h"
#include "smtp_conn.h"

#define IN_HIGH_WATER (256 * 1024)

static void process_input(struct session *s);

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct session *s = h->data;
	(void)suggested;
	buf_reserve(&s->in, 64 * 1024);
	*b = uv_buf_init(s->in.data + s->in.len, (unsigned)(s->in.cap - s->in.len - 1));
}

static void on_idle_timeout(uv_timer_t *t);

static void idle_restart(struct session *s)
{
	uv_timer_start(&s->idle, on_idle_timeout, s->d->conf->listen.idle_timeout * 1000, 0);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct session *s = st->data;
	(void)b;
	if (n < 0) {
		if (n != UV_EOF)
			log_debug("%s: read: %s", s->peer, uv_strerror((int)n));
		if (s->state == S_DATA)
			log_info("%s: lost connection after DATA (%llu bytes)", s->peer,
				 (unsigned long long)s->data_bytes);
		sess_close(s);
		return;
	}
	if (n == 0)
		return;
	s->in.len += (size_t)n;
	s->in.data[s->in.len] = '\0';
	idle_restart(s);
	process_input(s);
}

static void reading(struct session *s, bool on)
{
	if (on == s->reading || s->state == S_CLOSING)
		return;
	s->reading = on;
	if (on)
		uv_read_start(&s->h.stream, on_alloc, on_read);
	else
		uv_read_stop(&s->h.stream);
}

/* ---- commit ---- */

/* Hand work to the thread pool; the session is not freed until done
 * runs (session_close waits while works > 0). */
static void start_work(struct session *s, uv_work_t *req, uv_work_cb work, uv_after_work_cb done)
{
	s->works++;
	req->data = s;
	uv_queue_work(s->d->loop, req, work, done);
}

/* The commit is done (intake.c logs, indexes and schedules the message
 * after this reply). */
static void commit_done(struct intake *in, void *arg)
{
	struct session *s = arg;
	s->writing = false;
	s->committing = false;
	s->works--;
	if (in->rc == 0) {
		if (s->state != S_CLOSING) {
			sess_reply(s, "250 2.0.0 Ok: queued as %s", intake_id(in));
			sess_flush(s);
		}
	} else {
		log_err("%s: cannot queue message: %s", s->peer, in->err.msg);
		bool full = sess_no_room_after(s, &in->err);
		if (s->state != S_CLOSING)
			sess_reply(s, full ? NO_ROOM : "451 4.3.0 Error: queue file write error");
	}
	intake_free(in);
	sess_tx_reset(s);
	if (s->state == S_CLOSING) {
		sess_close(s);	/* finish the close that waited for us */
		return;
	}
	s->state = S_CMD;
	idle_restart(s);	/* the timer may have fired, unheeded, during the commit */
	if (s->d->stopping) {
		sess_reply(s, "421 4.3.2 %s Service shutting down", s->d->hostname);
		sess_flush(s);
		sess_close(s);
		return;
	}
	process_input(s);
}

static void end_of_data(struct session *s)
{
	const char *reject = NULL;
	if (s->too_big)
		reject = "552 5.3.4 Error: message file too big";
	else if (s->dr.line_too_long)
		reject = "552 5.3.4 Error: message line too long (limit 65536 octets)";
	if (reject) {
		log_info("%s: message rejected: %s", s->peer, reject + 10);
		sess_reply(s, "%s", reject);
		sess_tx_reset(s);
		s->state = S_CMD;
		return;
	}
	if (s->dr.eight_bit)
		intake_add_flags(&s->intake, ENV_8BITMIME);
	if (s->dr.nul_dropped)
		log_info("%s: %llu NUL octets removed", intake_id(&s->intake),
			 (unsigned long long)s->dr.nul_dropped);
	s->state = S_COMMIT;
	s->committing = true;
	s->works++;
	intake_commit(&s->intake, commit_done, s);
}

/* ---- disk and name service work, off the loop thread ---- */

static void flush_done(struct intake *in, void *arg)
{
	struct session *s = arg;
	(void)in;
	s->flushing = false;
	s->works--;
	if (s->state == S_CLOSING)
		sess_close(s);	/* finish the close that waited for us */
	else
		process_input(s);
}

/* A large message: its octets so far go to the file on the thread pool;
 * no more data is taken until they are written (memory stays bounded). */
static void start_flush(struct session *s)
{
	s->flushing = true;
	s->works++;
	intake_flush(&s->intake, flush_done, s);
}

/* The login name for the Received: line, looked up (NSS may block for
 * long) while the client says EHLO, MAIL and RCPT. */
static void lookup_work(uv_work_t *req)
{
	struct session *s = req->data;
	struct passwd pw, *res = NULL;
	char tmp[4096];
	if (getpwuid_r((uid_t)s->uid, &pw, tmp, sizeof tmp, &res) == 0 && res
	    && sess_helo_name_ok(res->pw_name))
		snprintf(s->login, sizeof s->login, "%s", res->pw_name);
}

static void lookup_done(uv_work_t *req, int status)
{
	struct session *s = req->data;
	(void)status;
	s->works--;
	s->looking_up = false;
	if (s->state == S_CLOSING)
		sess_close(s);
	else
		process_input(s);	/* a DATA may be waiting */
}

static void start_lookup(struct session *s)
{
	s->looking_up = true;
	start_work(s, &s->lookup_req, lookup_work, lookup_done);
}

static void process_data(struct session *s)
{
	bool done;
	buf_reset(&s->scratch);
	size_t used = data_reader_feed(&s->dr, s->in.data, s->in.len, &s->scratch, &done);
	buf_consume(&s->in, used);
	s->data_bytes += s->scratch.len;
	if (!s->too_big && s->data_bytes > s->d->conf->queue.max_message_size) {
		s->too_big = true;
		intake_abort(&s->intake);
		s->writing = false;
	}
	if (s->writing && !s->too_big && !s->dr.line_too_long)
		intake_write(&s->intake, s->scratch.data, s->scratch.len);
	if (done)
		end_of_data(s);
	else if (s->writing && intake_flush_due(&s->intake))
		start_flush(s);
}

/* One command line from the input buffer; false when none is complete. */
static bool process_command_line(struct session *s)
{
	char *nl = memchr(s->in.data, '\n', s->in.len);
	if (!nl) {
		if (s->in.len >= SMTP_CMD_LINE_MAX) {
			if (!s->discard_line)
				sess_reply(s, "500 5.5.2 Error: line too long");
			s->discard_line = true;
			buf_reset(&s->in);
		}
		return false;
	}
	size_t used = (size_t)(nl - s->in.data) + 1;
	size_t len = used - 1;
	if (len > 0 && s->in.data[len - 1] == '\r')
		len--;
	char *line = xstrndup(s->in.data, len);
	buf_consume(&s->in, used);
	if (s->discard_line)
		s->discard_line = false;
	else if (len >= SMTP_CMD_LINE_MAX)
		sess_reply(s, "500 5.5.2 Error: line too long");
	else if (strlen(line) != len)
		sess_reply(s, "500 5.5.2 Error: NUL in command");
	else
		sess_dispatch(s, line);
	free(line);
	return true;
}

/* Replies waiting to be written, ours or in libuv's queue. */
static size_t output_pending(const struct session *s)
{
	return s->out.len + s->h.stream.write_queue_size;
}

/* Run the buffered commands (or message data); true when it stopped
 * because OUT_HIGH_WATER octets of replies wait. */
static bool run_input(struct session *s)
{
	while (s->state == S_CMD || s->state == S_DATA) {
		if (output_pending(s) >= OUT_HIGH_WATER)
			return true;
		if (s->flushing)
			break;	/* flush_done() goes on */
		if (s->looking_up && s->state == S_CMD && s->in.len >= 4
		    && strncasecmp(s->in.data, "DATA", 4) == 0)
			break;	/* the Received: line needs the name: lookup_done() goes on */
		if (s->state == S_DATA) {
			if (s->in.len == 0)
				break;
			process_data(s);
			continue;
		}
		if (s->in.len == 0 || !process_command_line(s))
			break;
	}
	return false;
}

static void process_input(struct session *s)
{
	/* a client that pipelines without reading its replies gets no more
	 * commands run (nor read) until they drain: memory stays bounded */
	bool stalled;
	do {
		stalled = run_input(s);
		if (s->state == S_CLOSING)
			return;
		sess_flush(s);	/* may write it all at once: then go on */
	} while (stalled && output_pending(s) < OUT_HIGH_WATER);
	/* Input is not parsed while a commit runs (its 250 comes first), but
	 * reading goes on unless the client piles up too much meanwhile or
	 * does not read its replies. */
	bool backlog = output_pending(s) >= OUT_HIGH_WATER || s->in.len > IN_HIGH_WATER;
	reading(s, !backlog);
}

/* ---- life cycle ---- */

static void on_idle_timeout(uv_timer_t *t)
{
	struct session *s = t->data;
	if (s->committing || s->flushing || s->state == S_CLOSING)
		return;
	log_info("%s: idle timeout", s->peer);
	sess_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->d->hostname);
	sess_flush(s);
	sess_close(s);
}

static void peer_identity(struct session *s)
{
	if (s->is_unix) {
		struct ucred cred;
		socklen_t len = sizeof cred;
		uv_os_fd_t fd;
		s->uid = -1;
		if (uv_fileno(&s->h.handle, &fd) == 0
		    && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			s->uid = (long)cred.uid;
		snprintf(s->peer, sizeof s->peer, "local uid=%ld", s->uid);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[64] = "?";
	int port = 0;
	s->uid = -1;
	if (uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	snprintf(s->peer, sizeof s->peer, "[%s]:%d", ip, port);
}

/* Live sessions of one uid (-1: every TCP client), this one included. */
static size_t sessions_of(const struct daemon *d, long uid)
{
	size_t n = 0;
	for (const struct session *s = d->sessions; s; s = s->next)
		n += s->uid == uid && s->state != S_CLOSING;
	return n;
}

void session_accept(struct daemon *d, uv_stream_t *server, bool is_unix)
{
	struct session *s = xcalloc(1, sizeof *s);
	s->d = d;
	s->resume = process_input;
	s->is_unix = is_unix;
	if (is_unix)
		uv_pipe_init(d->loop, &s->h.pipe, 0);
	else
		uv_tcp_init(d->loop, &s->h.tcp);
	s->h.handle.data = s;
	uv_timer_init(d->loop, &s->idle);
	s->idle.data = s;
	s->open_handles = 2;
	s->next = d->sessions;
	if (s->next)
		s->next->prev = s;
	d->sessions = s;
	d->nsessions++;
	buf_init(&s->in);
	buf_init(&s->out);
	buf_init(&s->scratch);
	envelope_init(&s->env);
	if (uv_accept(server, &s->h.stream) < 0) {
		sess_close(s);
		return;
	}
	if (!is_unix)
		uv_tcp_nodelay(&s->h.tcp, 1);
	peer_identity(s);
	if (s->is_unix && s->uid >= 0)
		start_lookup(s);
	log_debug("%s: connect", s->peer);
	if (d->nsessions > d->max_sessions || d->stopping) {
		sess_reply(s, "421 4.3.2 %s Service not available, too many connections", d->hostname);
		sess_flush(s);
		sess_close(s);
		return;
	}
	if (sessions_of(d, s->uid) > d->conf->listen.max_sessions_per_user) {
		log_warn("%s: refused: more than %llu sessions of this user ([listen] max_sessions_per_user)",
			 s->peer, (unsigned long long)d->conf->listen.max_sessions_per_user);
		sess_reply(s, "421 4.7.0 %s Error: too many connections from you", d->hostname);
		sess_flush(s);
		sess_close(s);
		return;
	}
	sess_reply(s, "220 %s ESMTP outbox", d->hostname);
	idle_restart(s);
	process_input(s);
}

void sessions_shutdown(struct daemon *d, bool force)
{
	struct session *s, *next;
	for (s = d->sessions; s; s = next) {
		next = s->next;
		if (s->state == S_CMD || (force && s->state == S_DATA)) {
			sess_reply(s, "421 4.3.2 %s Service shutting down", d->hostname);
			sess_flush(s);
			sess_close(s);
		}
	}
}
